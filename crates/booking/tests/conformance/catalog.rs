//! Inventories built and followed from the events service's domain events: seats in layout
//! order, general-admission capacity following event updates, and an event's cancellation
//! refunding every order.

use crate::support::{
    DAY, NOW, POLICY, Subject, at, buy, change, figures, general_event, hold_best, hold_seats,
    intent_status, last_seq, layout, paid, publish, refused, reserved_event, seat_ids, since,
    snapshot, types,
};
use evently_booking::domain::{
    HoldStatus, OrderStatus, PaymentIntent, TicketStatus, WaitlistStatus,
};
use evently_booking::error::BookingError;
use evently_bus::DomainEvent;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// `EventCreated` builds an inventory once per envelope and per event: the layout's seats in
/// order, priced by section, or numbered general-admission places.
async fn inventory_is_created_once_with_its_seats_in_layout_order((store, _): Subject) {
    let event_id = Uuid::now_v7();
    let seating = layout(&[("A", &[("1", 3), ("2", 2)]), ("B", &[("1", 2)])]);
    let created = DomainEvent::EventCreated(snapshot(event_id, Some(seating), 7));
    let envelope = created.clone().into_envelope(1, at(NOW));

    let first = store
        .apply_catalog(&envelope, &created, NOW, POLICY)
        .await
        .unwrap();
    let again = store
        .apply_catalog(&envelope, &created, NOW, POLICY)
        .await
        .unwrap();
    publish(&store, created, NOW + 1).await;

    assert!(first);
    assert!(!again, "an envelope is applied once");
    let map = store.seat_map(event_id, NOW).await.unwrap().unwrap();
    let seen: Vec<(&str, &str, &str, i64, &str, i64, &str)> = map
        .iter()
        .map(|s| {
            (
                s.seat_id.as_str(),
                s.section.as_str(),
                s.row.as_str(),
                s.number,
                s.price_tier.as_str(),
                s.price,
                s.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("A-1-1", "A", "1", 1, "A", 5000, "available"),
            ("A-1-2", "A", "1", 2, "A", 5000, "available"),
            ("A-1-3", "A", "1", 3, "A", 5000, "available"),
            ("A-2-1", "A", "2", 1, "A", 5000, "available"),
            ("A-2-2", "A", "2", 2, "A", 5000, "available"),
            ("B-1-1", "B", "1", 1, "base", 3000, "available"),
            ("B-1-2", "B", "1", 2, "base", 3000, "available"),
        ]
    );
    let inv = store.inventory(event_id).await.unwrap().unwrap();
    assert_eq!(
        (inv.capacity, inv.held, inv.sold, inv.version, inv.reserved),
        (7, 0, 0, 0, true)
    );
    assert_eq!(
        (inv.status.as_str(), inv.currency.as_str(), inv.base_price),
        ("ON_SALE", "EUR", 3000)
    );
    assert_eq!(
        (inv.sale_start, inv.sale_end, inv.event_date, inv.deleted),
        (NOW - DAY, None, NOW + 30 * DAY, false)
    );
    assert_eq!(inv.section_prices, BTreeMap::from([("A".to_owned(), 5000)]));
    let view = store.availability(event_id, NOW).await.unwrap().unwrap();
    assert_eq!(
        (view.capacity, view.available, view.held, view.sold),
        (7, 7, 0, 0)
    );
    assert!(view.on_sale && !view.sold_out);

    let ga = general_event(&store, 4).await;
    let map = store.seat_map(ga, NOW).await.unwrap().unwrap();
    let seen: Vec<(&str, &str, i64, &str, i64)> = map
        .iter()
        .map(|s| {
            (
                s.seat_id.as_str(),
                s.section.as_str(),
                s.number,
                s.price_tier.as_str(),
                s.price,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GA-1", "GA", 1, "base", 3000),
            ("GA-2", "GA", 2, "base", 3000),
            ("GA-3", "GA", 3, "base", 3000),
            ("GA-4", "GA", 4, "base", 3000),
        ]
    );
    let inv = store.inventory(ga).await.unwrap().unwrap();
    assert_eq!((inv.capacity, inv.reserved), (4, false));

    let unknown = Uuid::now_v7();
    assert!(store.inventory(unknown).await.unwrap().is_none());
    assert!(store.availability(unknown, NOW).await.unwrap().is_none());
    assert!(store.seat_map(unknown, NOW).await.unwrap().is_none());
    refused!(
        hold_seats(&store, unknown, Uuid::now_v7(), &["A-1-1"], NOW).await,
        BookingError::EventNotFound
    );
}

/// A general-admission event's capacity follows `EventUpdated`: new places are added,
/// and only unsold, unheld places are removed.
async fn general_admission_capacity_follows_event_updates((store, outbox): Subject) {
    let event_id = general_event(&store, 5).await;
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let a_hold = hold_best(&store, event_id, a, 2, None, NOW).await.unwrap();
    buy(&store, &a_hold, NOW).await;
    hold_seats(&store, event_id, b, &["GA-5"], NOW + 1)
        .await
        .unwrap();
    let mark = last_seq(&outbox).await;
    let updated = |total: i64, base_price: i64| {
        let mut s = snapshot(event_id, None, total);
        s.base_price = base_price;
        DomainEvent::EventUpdated(s)
    };

    assert!(publish(&store, updated(8, 3500), NOW + 2).await);

    let eight: Vec<String> = (1..=8).map(|n| format!("GA-{n}")).collect();
    assert_eq!(seat_ids(&store, event_id).await, eight);
    let map = store.seat_map(event_id, NOW + 2).await.unwrap().unwrap();
    assert!(map.iter().all(|s| s.price == 3500));
    let inv = store.inventory(event_id).await.unwrap().unwrap();
    assert_eq!(
        (inv.capacity, inv.held, inv.sold, inv.base_price),
        (8, 1, 2, 3500)
    );
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["SeatsReleased"]);
    let grown = change(&rows[0]);
    assert_eq!(grown.reason.as_deref(), Some("capacity-changed"));
    assert_eq!(grown.availability, figures(8, 5, 1, 2, inv.version));

    // Shrinking removes only places neither sold nor held.
    assert!(publish(&store, updated(1, 3500), NOW + 3).await);

    assert_eq!(seat_ids(&store, event_id).await, ["GA-1", "GA-2", "GA-5"]);
    let inv = store.inventory(event_id).await.unwrap().unwrap();
    assert_eq!((inv.capacity, inv.held, inv.sold), (3, 1, 2));
    let view = store
        .availability(event_id, NOW + 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((view.capacity, view.available, view.sold_out), (3, 0, true));
    assert_eq!(
        types(&since(&outbox, mark).await),
        ["SeatsReleased", "SeatsReleased", "SoldOut"]
    );
    let audit = store.audit(event_id, NOW + 3).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");

    // Growing again adds new places beside the ones kept.
    assert!(publish(&store, updated(6, 3500), NOW + 4).await);

    let ids = seat_ids(&store, event_id).await;
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (6, 6), "{ids:?}");
    for kept in ["GA-1", "GA-2", "GA-5"] {
        assert!(ids.iter().any(|s| s == kept), "{kept} is kept: {ids:?}");
    }
    let inv = store.inventory(event_id).await.unwrap().unwrap();
    assert_eq!((inv.capacity, inv.held, inv.sold), (6, 1, 2));

    // Shrinking by one removes one unsold place, whatever the numbering.
    assert!(publish(&store, updated(5, 3500), NOW + 5).await);

    let ids = seat_ids(&store, event_id).await;
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (5, 5), "{ids:?}");
    for kept in ["GA-1", "GA-2", "GA-5"] {
        assert!(ids.iter().any(|s| s == kept), "{kept} is kept: {ids:?}");
    }
    let view = store
        .availability(event_id, NOW + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((view.capacity, view.available), (5, 2));
    let rest = hold_best(&store, event_id, c, 2, None, NOW + 6)
        .await
        .unwrap();
    assert_eq!(rest.seat_ids.len(), 2);
    let audit = store.audit(event_id, NOW + 6).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
}

/// Cancelling an event refunds every order, ends every hold and closes the waitlist;
/// deleting it hides it.
async fn cancelled_event_refunds_every_order_and_closes_the_waitlist((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 4)])]).await;
    let [a, b, c, d] = [(); 4].map(|()| Uuid::now_v7());
    let a_hold = hold_seats(&store, event_id, a, &["A-1-1", "A-1-2"], NOW)
        .await
        .unwrap();
    let a_order = buy(&store, &a_hold, NOW).await;
    let b_hold = hold_seats(&store, event_id, b, &["A-1-3"], NOW + 1)
        .await
        .unwrap();
    let b_order = buy(&store, &b_hold, NOW + 1).await;
    let c_hold = hold_seats(&store, event_id, c, &["A-1-4"], NOW + 2)
        .await
        .unwrap();
    let c_payment = paid(&store, &c_hold, NOW + 2).await;
    store
        .join_waitlist(event_id, d, 1, NOW + 3, POLICY)
        .await
        .unwrap();
    let mark = last_seq(&outbox).await;
    let t = NOW + 4;
    let cancelled = DomainEvent::EventStatusChanged {
        event_id,
        from: "ON_SALE".into(),
        to: "CANCELLED".into(),
    };
    let envelope = cancelled.clone().into_envelope(2, at(t));

    let applied = store
        .apply_catalog(&envelope, &cancelled, t, POLICY)
        .await
        .unwrap();
    let reapplied = store
        .apply_catalog(&envelope, &cancelled, t, POLICY)
        .await
        .unwrap();

    assert!(applied);
    assert!(!reapplied);
    for placed in [&a_order, &b_order] {
        let now = store.order(placed.order_id).await.unwrap().unwrap();
        assert_eq!(now.status, OrderStatus::Cancelled);
        assert_eq!(now.cancel_reason.as_deref(), Some("event-cancelled"));
        assert_eq!(now.refunded_amount, Some(placed.amount));
        assert!(now.tickets.iter().all(|t| t.status == TicketStatus::Void));
        let payment = PaymentIntent {
            id: placed.payment_intent_id,
            user_id: placed.user_id,
            ..c_payment.clone()
        };
        assert_eq!(intent_status(&store, &payment, t).await, "refunded");
    }
    assert_eq!(
        store.hold(c_hold.id).await.unwrap().unwrap().status,
        HoldStatus::Cancelled
    );
    assert_eq!(intent_status(&store, &c_payment, t).await, "refunded");
    let inv = store.inventory(event_id).await.unwrap().unwrap();
    assert_eq!(
        (inv.status.as_str(), inv.held, inv.sold),
        ("CANCELLED", 0, 0)
    );
    let view = store.availability(event_id, t).await.unwrap().unwrap();
    assert_eq!(
        (view.on_sale, view.available, view.held, view.sold),
        (false, 4, 0, 0)
    );
    let entry = store.waitlist_entry(event_id, d).await.unwrap().unwrap();
    assert_eq!(entry.status, WaitlistStatus::Closed);
    let rows = since(&outbox, mark).await;
    let mut kinds = types(&rows);
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "OrderCancelled",
            "OrderCancelled",
            "PaymentRefunded",
            "SeatsReleased",
            "WaitlistLeft"
        ]
    );
    // The waitlist closes with the event: d's waiting entry leaves the list.
    let (closed, rows): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|row| row.event_type == "WaitlistLeft");
    let DomainEvent::WaitlistLeft(closed) = DomainEvent::decode(&closed[0]).unwrap() else {
        panic!("not a departure: {:?}", closed[0]);
    };
    assert_eq!(
        (
            closed.user_id,
            closed.waiting,
            closed.reason.as_str(),
            closed.waitlist_length
        ),
        (d, true, "event-cancelled", 0)
    );
    // The orders' refunds are their `OrderCancelled`; c's paid hold had no order, so its
    // payment's refund is a `PaymentRefunded` of its own.
    let (refunds, rows): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|row| row.event_type == "PaymentRefunded");
    let DomainEvent::PaymentRefunded(refund) = DomainEvent::decode(&refunds[0]).unwrap() else {
        panic!("not a refund: {:?}", refunds[0]);
    };
    assert_eq!(
        (
            refund.payment_intent_id,
            refund.hold_id,
            refund.reason.as_str()
        ),
        (c_payment.id.0, c_hold.id.0, "cancelled")
    );
    for row in &rows {
        let reason = change(row).reason.unwrap();
        match row.event_type.as_str() {
            "OrderCancelled" => assert_eq!(reason, "event-cancelled"),
            _ => assert_eq!(reason, "cancelled"),
        }
    }
    assert_eq!(
        change(rows.last().unwrap()).availability,
        figures(4, 4, 0, 0, inv.version)
    );
    let audit = store.audit(event_id, t).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.tickets, audit.orders, audit.live_holds), (0, 0, 0));
    assert_eq!(audit.waiting, 0);
    refused!(
        hold_seats(&store, event_id, a, &["A-1-1"], t + 1).await,
        BookingError::NotOnSale(_)
    );
    refused!(
        store.join_waitlist(event_id, a, 1, t + 1, POLICY).await,
        BookingError::NotOnSale(_)
    );
    refused!(
        store
            .cancel_order(a_order.order_id, "buyer", t + 1, POLICY)
            .await,
        BookingError::OrderCancelled
    );

    // A deleted event is gone from the read side.
    assert!(publish(&store, DomainEvent::EventDeleted { event_id }, t + 2).await);
    assert!(store.availability(event_id, t + 2).await.unwrap().is_none());
    assert!(store.seat_map(event_id, t + 2).await.unwrap().is_none());
    assert!(store.inventory(event_id).await.unwrap().unwrap().deleted);
    refused!(
        hold_seats(&store, event_id, a, &["A-1-1"], t + 3).await,
        BookingError::EventNotFound
    );
}

evently_testkit::conformance_suite!(
    suite: crate::catalog,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [
        inventory_is_created_once_with_its_seats_in_layout_order,
        general_admission_capacity_follows_event_updates,
        cancelled_event_refunds_every_order_and_closes_the_waitlist,
    ]
);
