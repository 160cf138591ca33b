//! Holds: all or nothing, best available, one live hold per buyer, expiry and refresh; every
//! change sweeps the holds expired before it.

use crate::support::{
    HOLD_TTL, MINUTE, NOW, POLICY, Subject, buy, change, counters, figures, general_event,
    hold_best, hold_seats, intent_status, last_seq, paid, publish, refused, reserved_event,
    seats_in, since, snapshot, strings, types,
};
use evently_booking::domain::{Hold, HoldId, HoldKind, HoldStatus};
use evently_booking::error::BookingError;
use evently_bus::DomainEvent;
use evently_bus::catalog::PaymentRefund;
use uuid::Uuid;

/// A hold takes every seat asked for or none; counters and outbox rows (with the sell-out)
/// follow each hold exactly.
async fn hold_is_all_or_nothing_and_counted((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 3)])]).await;
    let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mark = last_seq(&outbox).await;
    let bobs = hold_seats(&store, event_id, bob, &["A-1-2"], NOW)
        .await
        .unwrap();

    let conflict = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW + 1).await;
    let unknown = hold_seats(&store, event_id, alice, &["A-1-1", "Z-9-9"], NOW + 2).await;

    refused!(conflict, BookingError::SeatsUnavailable(seats) if seats == ["A-1-2"]);
    refused!(unknown, BookingError::UnknownSeats(_));
    assert_eq!(
        seats_in(&store, event_id, NOW + 2, "available").await,
        ["A-1-1", "A-1-3"]
    );
    assert_eq!(seats_in(&store, event_id, NOW + 2, "held").await, ["A-1-2"]);
    assert_eq!(counters(&store, event_id).await, (1, 0, 1));
    assert_eq!(
        bobs,
        Hold {
            id: bobs.id,
            event_id,
            user_id: bob,
            seat_ids: strings(&["A-1-2"]),
            kind: HoldKind::Buyer,
            status: HoldStatus::Active,
            created_at: NOW,
            expires_at: NOW + HOLD_TTL,
        }
    );
    assert_eq!(store.hold(bobs.id).await.unwrap().unwrap(), bobs);
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["SeatsHeld"]);
    let held = change(&rows[0]);
    assert_eq!(held.event_id, event_id);
    assert_eq!((held.user_id, held.hold_id), (Some(bob), Some(bobs.id.0)));
    assert_eq!(held.seat_ids, ["A-1-2"]);
    assert_eq!(held.availability, figures(3, 2, 1, 0, 1));
    assert_eq!(rows[0].aggregate_id, event_id);
    assert_eq!(rows[0].aggregate_version, 1);

    // The hold that takes the last seats also reports the sell-out.
    let alices = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-3"], NOW + 3)
        .await
        .unwrap();

    assert_eq!(alices.seat_ids, ["A-1-1", "A-1-3"]);
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["SeatsHeld", "SeatsHeld", "SoldOut"]);
    assert_eq!(change(&rows[1]).availability, figures(3, 0, 3, 0, 2));
    assert_eq!(change(&rows[2]).availability, figures(3, 0, 3, 0, 3));
    assert_eq!(counters(&store, event_id).await, (3, 0, 3));
    let view = store
        .availability(event_id, NOW + 3)
        .await
        .unwrap()
        .unwrap();
    assert!(view.sold_out);
    assert_eq!((view.available, view.held, view.version), (0, 3, 3));

    // Refused on a sold-out event: nothing written.
    refused!(
        hold_seats(&store, event_id, carol, &["A-1-1"], NOW + 4).await,
        BookingError::SeatsUnavailable(seats) if seats == ["A-1-1"]
    );
    refused!(
        hold_best(&store, event_id, carol, 1, None, NOW + 4).await,
        BookingError::SoldOut { available: 0 }
    );
    assert_eq!(since(&outbox, mark).await.len(), 3);
    assert_eq!(counters(&store, event_id).await, (3, 0, 3));
}

/// Best available prefers a run of adjacent seats in one row, honours a section, and
/// refuses with the count left when too few remain.
async fn best_available_takes_adjacent_seats_in_one_row((store, _): Subject) {
    let event_id =
        reserved_event(&store, &[("A", &[("1", 4), ("2", 4)]), ("B", &[("1", 2)])]).await;
    hold_seats(&store, event_id, Uuid::now_v7(), &["A-1-2"], NOW)
        .await
        .unwrap();

    let three = hold_best(&store, event_id, Uuid::now_v7(), 3, None, NOW)
        .await
        .unwrap();
    let two = hold_best(&store, event_id, Uuid::now_v7(), 2, None, NOW)
        .await
        .unwrap();
    let in_b = hold_best(&store, event_id, Uuid::now_v7(), 1, Some("B"), NOW)
        .await
        .unwrap();
    let too_many = hold_best(&store, event_id, Uuid::now_v7(), 4, None, NOW).await;
    let too_many_in_b = hold_best(&store, event_id, Uuid::now_v7(), 2, Some("B"), NOW).await;

    assert_eq!(three.seat_ids, ["A-2-1", "A-2-2", "A-2-3"]);
    assert_eq!(two.seat_ids, ["A-1-3", "A-1-4"]);
    assert_eq!(in_b.seat_ids, ["B-1-1"]);
    refused!(too_many, BookingError::SoldOut { available: 3 });
    refused!(too_many_in_b, BookingError::SoldOut { available: 1 });
    assert_eq!(
        seats_in(&store, event_id, NOW, "available").await,
        ["A-1-1", "A-2-4", "B-1-2"]
    );
    assert_eq!(counters(&store, event_id).await, (7, 0, 4));

    // General admission: places by quantity.
    let ga = general_event(&store, 5).await;
    let first = hold_best(&store, ga, Uuid::now_v7(), 3, None, NOW)
        .await
        .unwrap();
    let too_many = hold_best(&store, ga, Uuid::now_v7(), 3, None, NOW).await;
    let rest = hold_best(&store, ga, Uuid::now_v7(), 2, None, NOW)
        .await
        .unwrap();

    assert_eq!(first.seat_ids, ["GA-1", "GA-2", "GA-3"]);
    refused!(too_many, BookingError::SoldOut { available: 2 });
    assert_eq!(rest.seat_ids, ["GA-4", "GA-5"]);
    let view = store.availability(ga, NOW).await.unwrap().unwrap();
    assert_eq!((view.available, view.held, view.sold_out), (0, 5, true));
}

/// A buyer's own live hold never blocks them: the new hold releases it.
async fn a_new_hold_replaces_the_buyers_previous_one((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 4)])]).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let first = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW)
        .await
        .unwrap();
    let mark = last_seq(&outbox).await;

    let second = hold_seats(&store, event_id, alice, &["A-1-2", "A-1-3"], NOW + 1)
        .await
        .unwrap();

    assert_eq!(
        store.hold(first.id).await.unwrap().unwrap().status,
        HoldStatus::Released
    );
    assert_eq!(
        store.hold(second.id).await.unwrap().unwrap().status,
        HoldStatus::Active
    );
    assert_eq!(
        seats_in(&store, event_id, NOW + 1, "held").await,
        ["A-1-2", "A-1-3"]
    );
    assert_eq!(counters(&store, event_id).await, (2, 0, 3));
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["SeatsReleased", "SeatsHeld"]);
    let released = change(&rows[0]);
    assert_eq!(released.hold_id, Some(first.id.0));
    assert_eq!(released.reason.as_deref(), Some("released"));
    assert_eq!(released.seat_ids, ["A-1-1", "A-1-2"]);
    assert_eq!(released.availability, figures(4, 4, 0, 0, 2));
    assert_eq!(change(&rows[1]).availability, figures(4, 2, 2, 0, 3));
    let bobs = hold_seats(&store, event_id, bob, &["A-1-1"], NOW + 2).await;
    assert_eq!(bobs.unwrap().seat_ids, ["A-1-1"]);

    // Releasing ends the hold; releasing again changes nothing.
    store
        .release_hold(second.id, alice, NOW + 3, POLICY)
        .await
        .unwrap();
    store
        .release_hold(second.id, alice, NOW + 4, POLICY)
        .await
        .unwrap();
    refused!(
        store.release_hold(second.id, bob, NOW + 4, POLICY).await,
        BookingError::HoldNotFound
    );

    assert_eq!(
        store.hold(second.id).await.unwrap().unwrap().status,
        HoldStatus::Released
    );
    assert_eq!(
        seats_in(&store, event_id, NOW + 4, "available").await,
        ["A-1-2", "A-1-3", "A-1-4"]
    );
    assert_eq!(
        types(&since(&outbox, mark).await),
        ["SeatsReleased", "SeatsHeld", "SeatsHeld", "SeatsReleased"]
    );
    assert_eq!(counters(&store, event_id).await, (1, 0, 5));
}

/// An expired hold counts as available at once and is swept by `expire_due` (or any change
/// of its event), refunding its paid intent.
async fn expired_hold_gives_its_seats_back((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 4)])]).await;
    let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let alices = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW)
        .await
        .unwrap();
    let payment = paid(&store, &alices, NOW + 1).await;
    let bobs = hold_seats(&store, event_id, bob, &["A-1-3"], NOW + 2)
        .await
        .unwrap();
    let due = NOW + HOLD_TTL;

    assert_eq!(store.next_expiry().await.unwrap(), Some(due));
    // Exact at any instant, before the sweep runs.
    let before = store
        .availability(event_id, due - 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((before.available, before.held), (1, 3));
    let after = store.availability(event_id, due).await.unwrap().unwrap();
    assert_eq!((after.available, after.held, after.sold_out), (3, 1, false));
    assert_eq!(counters(&store, event_id).await, (3, 0, 2));
    assert_eq!(
        seats_in(&store, event_id, due, "available").await,
        ["A-1-1", "A-1-2", "A-1-4"]
    );
    let mark = last_seq(&outbox).await;

    let expired = store.expire_due(due, POLICY).await.unwrap();

    assert_eq!(expired, 1);
    assert_eq!(
        store.hold(alices.id).await.unwrap().unwrap().status,
        HoldStatus::Expired
    );
    assert_eq!(
        store.hold(bobs.id).await.unwrap().unwrap().status,
        HoldStatus::Active
    );
    assert_eq!(intent_status(&store, &payment, due).await, "refunded");
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["SeatsReleased", "PaymentRefunded"]);
    let DomainEvent::PaymentRefunded(refund) = DomainEvent::decode(&rows[1]).unwrap() else {
        panic!("not a refund: {:?}", rows[1]);
    };
    assert_eq!(
        refund,
        PaymentRefund {
            payment_intent_id: payment.id.0,
            event_id,
            hold_id: alices.id.0,
            user_id: alice,
            amount: 10_000,
            currency: "EUR".into(),
            reason: "expired".into(),
        }
    );
    // Refunded once: nothing is left for the reconciliation.
    assert_eq!(store.reconcile_payments(due + 1).await.unwrap(), 0);
    let released = change(&rows[0]);
    assert_eq!(released.reason.as_deref(), Some("expired"));
    assert_eq!(released.hold_id, Some(alices.id.0));
    assert_eq!(released.seat_ids, ["A-1-1", "A-1-2"]);
    assert_eq!(released.availability, figures(4, 3, 1, 0, 3));
    assert_eq!(counters(&store, event_id).await, (1, 0, 3));
    assert_eq!(store.next_expiry().await.unwrap(), Some(NOW + 2 + HOLD_TTL));
    assert_eq!(store.expire_due(due, POLICY).await.unwrap(), 0);
    assert_eq!(since(&outbox, mark).await.len(), 2);
    let carols = hold_seats(&store, event_id, carol, &["A-1-1", "A-1-2"], due).await;
    assert_eq!(carols.unwrap().seat_ids, ["A-1-1", "A-1-2"]);

    // A hold whose time is up is swept by any change of its event, too.
    let later = NOW + 2 + HOLD_TTL;
    hold_seats(&store, event_id, alice, &["A-1-4"], later)
        .await
        .unwrap();
    assert_eq!(
        store.hold(bobs.id).await.unwrap().unwrap().status,
        HoldStatus::Expired
    );
    assert_eq!(store.expire_due(later, POLICY).await.unwrap(), 0);
    let view = store.availability(event_id, later).await.unwrap().unwrap();
    assert_eq!((view.available, view.held), (1, 3));
    assert_eq!(counters(&store, event_id).await.0, 3);
}

/// Any change of an event sweeps the holds that expired before it, however the event's holds
/// came and went: the first hold after a sweep that found none, a refreshed hold, a hold that
/// outlives an earlier one.
async fn every_change_sweeps_the_holds_expired_before_it((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 6)])]).await;
    let [alice, bob, carol, dave, erin] = [(); 5].map(|()| Uuid::now_v7());
    let status = |id: HoldId| {
        let store = store.clone();
        async move { store.hold(id).await.unwrap().unwrap().status }
    };
    // The event's first hold: the sweep before it found nothing to sweep.
    let alices = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();
    // A hold that lives longer does not postpone the sweep of the earlier one.
    let bobs = hold_seats(&store, event_id, bob, &["A-1-2"], NOW + MINUTE)
        .await
        .unwrap();
    let due = NOW + HOLD_TTL;
    let carols = hold_seats(&store, event_id, carol, &["A-1-3"], due)
        .await
        .unwrap();
    assert_eq!(status(alices.id).await, HoldStatus::Expired);
    assert_eq!(status(bobs.id).await, HoldStatus::Active);
    assert_eq!(counters(&store, event_id).await, (2, 0, 4));

    // A refreshed hold lives on past its first expiry ...
    let refreshed = store
        .refresh_hold(bobs.id, bob, HOLD_TTL, 3 * HOLD_TTL, due, POLICY)
        .await
        .unwrap();
    assert_eq!(refreshed.expires_at, due + HOLD_TTL);
    hold_seats(&store, event_id, dave, &["A-1-4"], bobs.expires_at)
        .await
        .unwrap();
    assert_eq!(status(bobs.id).await, HoldStatus::Active);
    assert_eq!(status(carols.id).await, HoldStatus::Active);
    // ... and still expires on time, with the hold beside it.
    hold_seats(&store, event_id, erin, &["A-1-5"], due + HOLD_TTL)
        .await
        .unwrap();
    assert_eq!(status(bobs.id).await, HoldStatus::Expired);
    assert_eq!(status(carols.id).await, HoldStatus::Expired);
    assert_eq!(counters(&store, event_id).await.0, 2);
    let view = store
        .availability(event_id, due + HOLD_TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((view.available, view.held), (4, 2));
}

/// Refreshing extends a live hold, capped by its lifetime, never shortening it.
async fn refresh_extends_a_live_hold_up_to_its_lifetime((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 4)])]).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let max = 30 * MINUTE;
    let hold = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();

    let extended = store
        .refresh_hold(hold.id, alice, 10 * MINUTE, max, NOW + 5 * MINUTE, POLICY)
        .await
        .unwrap();
    let not_shortened = store
        .refresh_hold(hold.id, alice, 2 * MINUTE, max, NOW + 6 * MINUTE, POLICY)
        .await
        .unwrap();
    let capped = store
        .refresh_hold(hold.id, alice, 20 * MINUTE, max, NOW + 14 * MINUTE, POLICY)
        .await
        .unwrap();

    assert_eq!(extended.expires_at, NOW + 15 * MINUTE);
    assert_eq!(not_shortened.expires_at, NOW + 15 * MINUTE);
    assert_eq!(capped.expires_at, NOW + max);
    assert_eq!((capped.created_at, capped.status.as_str()), (NOW, "active"));
    assert_eq!(
        store.hold(hold.id).await.unwrap().unwrap().expires_at,
        NOW + max
    );
    assert_eq!(store.next_expiry().await.unwrap(), Some(NOW + max));
    assert_eq!(store.expire_due(NOW + HOLD_TTL, POLICY).await.unwrap(), 0);
    let view = store
        .availability(event_id, NOW + max - 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.held, 1);
    refused!(
        store
            .refresh_hold(hold.id, bob, MINUTE, max, NOW + 20 * MINUTE, POLICY)
            .await,
        BookingError::HoldNotFound
    );
    refused!(
        store
            .refresh_hold(HoldId::new(), alice, MINUTE, max, NOW + 20 * MINUTE, POLICY)
            .await,
        BookingError::HoldNotFound
    );
    refused!(
        store
            .refresh_hold(hold.id, alice, MINUTE, max, NOW + max, POLICY)
            .await,
        BookingError::HoldExpired
    );
    assert_eq!(
        store.hold(hold.id).await.unwrap().unwrap().status,
        HoldStatus::Expired
    );

    let released = hold_seats(&store, event_id, alice, &["A-1-2"], NOW + max)
        .await
        .unwrap();
    store
        .release_hold(released.id, alice, NOW + max + 1, POLICY)
        .await
        .unwrap();
    refused!(
        store
            .refresh_hold(released.id, alice, MINUTE, max, NOW + max + 2, POLICY)
            .await,
        BookingError::HoldExpired
    );
    assert_eq!(store.next_expiry().await.unwrap(), None);
}

/// The sold-out board (where the store keeps one: SQLite) says an event is fully sold only
/// once a read found every seat sold, and stops before the commit of anything that frees a
/// seat: an order's cancellation, more capacity, the event's cancellation.
async fn the_sold_out_board_names_only_fully_sold_events((store, _): Subject) {
    let Some(board) = store.sold_out_board() else {
        // PostgreSQL keeps no board: another booking process could free a seat unseen.
        return;
    };
    let event_id = general_event(&store, 2).await;
    let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let alices = hold_best(&store, event_id, alice, 2, None, NOW)
        .await
        .unwrap();
    // Every seat held is not fully sold: the holder could take them again.
    refused!(
        hold_best(&store, event_id, bob, 1, None, NOW + 1).await,
        BookingError::SoldOut { available: 0 }
    );
    assert!(!board.is_fully_sold(event_id) && !board.any());

    let order = buy(&store, &alices, NOW + 2).await;
    assert!(!board.is_fully_sold(event_id), "marked only by a read");
    refused!(
        hold_best(&store, event_id, bob, 1, None, NOW + 3).await,
        BookingError::SoldOut { available: 0 }
    );
    assert!(board.is_fully_sold(event_id) && board.any());

    store
        .cancel_order(order.order_id, "buyer", NOW + 4, POLICY)
        .await
        .unwrap();
    assert!(!board.is_fully_sold(event_id) && !board.any());
    let bobs = hold_best(&store, event_id, bob, 2, None, NOW + 5)
        .await
        .unwrap();
    buy(&store, &bobs, NOW + 6).await;
    refused!(
        hold_best(&store, event_id, carol, 1, None, NOW + 7).await,
        BookingError::SoldOut { available: 0 }
    );
    assert!(board.is_fully_sold(event_id));

    assert!(
        publish(
            &store,
            DomainEvent::EventUpdated(snapshot(event_id, None, 3)),
            NOW + 8
        )
        .await
    );
    assert!(!board.is_fully_sold(event_id), "a new place frees a seat");
    let carols = hold_best(&store, event_id, carol, 1, None, NOW + 9)
        .await
        .unwrap();
    buy(&store, &carols, NOW + 10).await;
    refused!(
        hold_best(&store, event_id, alice, 1, None, NOW + 11).await,
        BookingError::SoldOut { available: 0 }
    );
    assert!(board.is_fully_sold(event_id));

    let cancelled = DomainEvent::EventStatusChanged {
        event_id,
        from: "ON_SALE".into(),
        to: "CANCELLED".into(),
    };
    assert!(publish(&store, cancelled, NOW + 12).await);
    assert!(!board.is_fully_sold(event_id) && !board.any());
}

evently_testkit::conformance_suite!(
    suite: crate::holds,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [
        hold_is_all_or_nothing_and_counted,
        best_available_takes_adjacent_seats_in_one_row,
        a_new_hold_replaces_the_buyers_previous_one,
        expired_hold_gives_its_seats_back,
        every_change_sweeps_the_holds_expired_before_it,
        refresh_extends_a_live_hold_up_to_its_lifetime,
        the_sold_out_board_names_only_fully_sold_events,
    ]
);
