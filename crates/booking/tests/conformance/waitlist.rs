//! The waitlist: freed seats offered to those waiting, in order.

use crate::support::{
    NOW, POLICY, Subject, at, buy, change, counters, figures, general_event, hold_best, last_seq,
    refused, since, types,
};
use evently_booking::domain::{HoldStatus, WaitlistStatus, rfc3339};
use evently_booking::error::BookingError;
use evently_bus::DomainEvent;
use evently_bus::catalog::WaitlistChange;
use uuid::Uuid;

/// Sold-out events keep a waitlist; freed seats are offered to its head in the same
/// transaction, and a lapsed or left offer passes to the next.
async fn waitlist_is_offered_freed_seats_in_order((store, outbox): Subject) {
    let event_id = general_event(&store, 3).await;
    let [b, e, c, d, g] = [(); 5].map(|()| Uuid::now_v7());
    let join = |user: Uuid, quantity: i64, now: i64| {
        let store = store.clone();
        async move {
            store
                .join_waitlist(event_id, user, quantity, now, POLICY)
                .await
        }
    };
    let entry = |user: Uuid| {
        let store = store.clone();
        async move { store.waitlist_entry(event_id, user).await.unwrap().unwrap() }
    };

    // Nobody waits while seats are on sale.
    refused!(
        join(c, 1, NOW).await,
        BookingError::SeatsAvailable { available: 3 }
    );
    assert!(store.waitlist_entry(event_id, c).await.unwrap().is_none());
    let b_hold = hold_best(&store, event_id, b, 2, None, NOW).await.unwrap();
    let b_order = buy(&store, &b_hold, NOW).await;
    let e_hold = hold_best(&store, event_id, e, 1, None, NOW).await.unwrap();
    buy(&store, &e_hold, NOW).await;

    let mark = last_seq(&outbox).await;
    let c_joined = join(c, 2, NOW + 1).await.unwrap();
    let d_joined = join(d, 2, NOW + 2).await.unwrap();
    let g_joined = join(g, 1, NOW + 3).await.unwrap();
    let c_again = join(c, 2, NOW + 4).await.unwrap();

    assert_eq!(
        (
            c_joined.status.as_str(),
            c_joined.position,
            c_joined.quantity
        ),
        ("waiting", Some(1), 2)
    );
    assert_eq!(
        (c_joined.hold_id, c_joined.offer_expires_at.clone()),
        (None, None)
    );
    assert_eq!(d_joined.position, Some(2));
    assert_eq!(g_joined.position, Some(3));
    assert_eq!(c_again, c_joined);
    assert_eq!(entry(d).await.position, Some(2));
    // Each join is published with the list's length after it; joining again is not one.
    let rows = since(&outbox, mark).await;
    assert_eq!(
        types(&rows),
        ["WaitlistJoined", "WaitlistJoined", "WaitlistJoined"]
    );
    let joins: Vec<_> = rows.iter().map(waitlist_change).collect();
    assert_eq!(
        joins
            .iter()
            .map(|j| (j.user_id, j.quantity, j.waiting, j.waitlist_length))
            .collect::<Vec<_>>(),
        [(c, 2, true, 1), (d, 2, true, 2), (g, 1, true, 3)]
    );
    assert_eq!(rows[0].aggregate_type, "waitlist");
    assert_eq!(rows[0].aggregate_id, event_id);
    assert_eq!(
        store
            .audit(event_id, NOW + 4)
            .await
            .unwrap()
            .unwrap()
            .waiting,
        3
    );

    // Seats freed by a cancellation go to the head of the list in the same transaction.
    let mark = last_seq(&outbox).await;
    let t1 = NOW + 10;
    store
        .cancel_order(b_order.order_id, "buyer", t1, POLICY)
        .await
        .unwrap();

    let c_offered = entry(c).await;
    assert_eq!(
        (c_offered.status.as_str(), c_offered.position),
        ("offered", None)
    );
    assert_eq!(
        c_offered.offer_expires_at,
        Some(rfc3339(t1 + POLICY.offer_ttl_ms))
    );
    let offer = store
        .hold(c_offered.hold_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (offer.user_id, offer.kind.as_str(), offer.status.as_str()),
        (c, "waitlist", "active")
    );
    assert_eq!(offer.seat_ids.len(), 2);
    assert_eq!(offer.expires_at, t1 + POLICY.offer_ttl_ms);
    assert_eq!(entry(d).await.position, Some(1));
    assert_eq!(entry(g).await.position, Some(2));
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["OrderCancelled", "WaitlistOffered"]);
    let offered = change(&rows[1]);
    assert_eq!(
        (offered.user_id, offered.hold_id),
        (Some(c), Some(offer.id.0))
    );
    assert_eq!(offered.reason.as_deref(), Some("waitlist-offer"));
    assert_eq!(offered.seat_ids, offer.seat_ids);
    let (_, _, version) = counters(&store, event_id).await;
    assert_eq!(offered.availability, figures(3, 0, 2, 1, version));

    // An offer not taken lapses and passes to the next in line.
    let t2 = t1 + POLICY.offer_ttl_ms;
    let mark = last_seq(&outbox).await;
    assert_eq!(store.expire_due(t2, POLICY).await.unwrap(), 1);

    assert_eq!(entry(c).await.status, WaitlistStatus::Lapsed);
    assert_eq!(
        store.hold(offer.id).await.unwrap().unwrap().status,
        HoldStatus::Expired
    );
    let d_offered = entry(d).await;
    assert_eq!(d_offered.status, WaitlistStatus::Offered);
    assert_eq!(entry(g).await.position, Some(1));
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["SeatsReleased", "WaitlistOffered"]);
    assert_eq!(change(&rows[0]).reason.as_deref(), Some("expired"));
    assert_eq!(change(&rows[1]).user_id, Some(d));

    // Leaving gives the offer up, and it moves on.
    let mark = last_seq(&outbox).await;
    store
        .leave_waitlist(event_id, d, t2 + 1, POLICY)
        .await
        .unwrap();
    let rows = since(&outbox, mark).await;
    assert_eq!(
        types(&rows),
        ["SeatsReleased", "WaitlistLeft", "WaitlistOffered"]
    );
    let left = waitlist_change(&rows[1]);
    // d had been offered seats (off the list already); g still waited when d left.
    assert_eq!(
        (
            left.user_id,
            left.waiting,
            left.reason.as_str(),
            left.waitlist_length
        ),
        (d, false, "left", 1)
    );

    assert_eq!(entry(d).await.status, WaitlistStatus::Left);
    let d_offer = d_offered.hold_id.unwrap();
    assert_eq!(
        store.hold(d_offer).await.unwrap().unwrap().status,
        HoldStatus::Released
    );
    let g_offered = entry(g).await;
    assert_eq!(g_offered.status, WaitlistStatus::Offered);
    let view = store.availability(event_id, t2 + 1).await.unwrap().unwrap();
    assert_eq!((view.available, view.held, view.sold), (1, 1, 1));
    refused!(
        store.leave_waitlist(event_id, d, t2 + 2, POLICY).await,
        BookingError::NotWaitlisted
    );

    // Buying the offer claims the entry.
    let g_offer = store
        .hold(g_offered.hold_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    buy(&store, &g_offer, t2 + 3).await;
    assert_eq!(entry(g).await.status, WaitlistStatus::Claimed);
    let audit = store.audit(event_id, t2 + 3).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.sold_seats, audit.orders), (2, 2));
    assert_eq!(audit.waiting, 0);
}

fn waitlist_change(row: &evently_bus::Envelope) -> WaitlistChange {
    match DomainEvent::decode(row).unwrap() {
        DomainEvent::WaitlistJoined(w) | DomainEvent::WaitlistLeft(w) => w,
        other => panic!("not a waitlist change: {other:?}"),
    }
}

/// A waiting buyer who leaves takes one off the list; the event's cancellation closes the
/// rest. Every change is published with the length after it, which is booking's own count.
async fn waitlist_joins_and_departures_are_published((store, outbox): Subject) {
    let event_id = general_event(&store, 2).await;
    let [b, c, d, e] = [(); 4].map(|()| Uuid::now_v7());
    let b_hold = hold_best(&store, event_id, b, 2, None, NOW).await.unwrap();
    buy(&store, &b_hold, NOW).await;
    for (user, quantity) in [(c, 1), (d, 2), (e, 1)] {
        store
            .join_waitlist(event_id, user, quantity, NOW + 1, POLICY)
            .await
            .unwrap();
    }
    let waiting = |now: i64| {
        let store = store.clone();
        async move { store.audit(event_id, now).await.unwrap().unwrap().waiting }
    };
    assert_eq!(waiting(NOW + 1).await, 3);

    let mark = last_seq(&outbox).await;
    store
        .leave_waitlist(event_id, d, NOW + 2, POLICY)
        .await
        .unwrap();

    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["WaitlistLeft"]);
    let left = waitlist_change(&rows[0]);
    assert_eq!(
        (
            left.user_id,
            left.quantity,
            left.waiting,
            left.waitlist_length
        ),
        (d, 2, true, 2)
    );
    assert_eq!(waiting(NOW + 2).await, 2);

    let mark = last_seq(&outbox).await;
    let cancelled = DomainEvent::EventStatusChanged {
        event_id,
        from: "ON_SALE".into(),
        to: "CANCELLED".into(),
    };
    let envelope = cancelled.clone().into_envelope(2, at(NOW + 3));
    assert!(
        store
            .apply_catalog(&envelope, &cancelled, NOW + 3, POLICY)
            .await
            .unwrap()
    );

    let rows = since(&outbox, mark).await;
    let closed: Vec<_> = rows
        .iter()
        .filter(|r| r.event_type == "WaitlistLeft")
        .map(waitlist_change)
        .map(|w| (w.user_id, w.waiting, w.reason, w.waitlist_length))
        .collect();
    assert_eq!(
        closed,
        [
            (c, true, "event-cancelled".to_owned(), 1),
            (e, true, "event-cancelled".to_owned(), 0)
        ]
    );
    assert_eq!(waiting(NOW + 3).await, 0);
}

evently_testkit::conformance_suite!(
    suite: crate::waitlist,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [
        waitlist_is_offered_freed_seats_in_order,
        waitlist_joins_and_departures_are_published,
    ]
);
