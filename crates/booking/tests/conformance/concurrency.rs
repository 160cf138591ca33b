//! Refusals and races: a refused change leaves nothing behind, concurrent buyers never share a
//! seat, and racing holds and purchases keep every rule.

use crate::support::{
    HOLD_TTL, KEY_TTL, LOCK, NOW, POLICY, Subject, counters, general_event, hold_best, hold_seats,
    intent, last_seq, paid, purchase_of, refused, reserved_event, seats_in, since,
};
use evently_booking::domain::{HoldId, HoldStatus, Policy, Selection};
use evently_booking::error::BookingError;
use evently_booking::store::{IdempotencyStart, NewHold};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// A refused change rolls back whole: no seat, order, hold, key or outbox row changes.
async fn refused_changes_leave_nothing_behind((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 3)])]).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let bobs = hold_seats(&store, event_id, bob, &["A-1-3"], NOW)
        .await
        .unwrap();
    let hold = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW + 1)
        .await
        .unwrap();
    let unpaid = intent(&store, &hold, NOW + 1).await;
    let input = purchase_of(&hold, unpaid.id, "k-1");
    store
        .idempotency_begin(&input.key, "fp", NOW + 1, LOCK, KEY_TTL)
        .await
        .unwrap();
    // Bob's hold has expired but is not swept yet; Alice's is live.
    let later = NOW + HOLD_TTL;
    let inventory = store.inventory(event_id).await.unwrap();
    let map = store.seat_map(event_id, later).await.unwrap();
    let audit = store.audit(event_id, later).await.unwrap();
    let seq = last_seq(&outbox).await;

    refused!(
        store.purchase(&input, later, POLICY).await,
        BookingError::PaymentIncomplete(_)
    );

    assert_eq!(store.inventory(event_id).await.unwrap(), inventory);
    assert_eq!(store.seat_map(event_id, later).await.unwrap(), map);
    assert_eq!(store.audit(event_id, later).await.unwrap(), audit);
    assert_eq!(last_seq(&outbox).await, seq);
    assert!(store.order(input.order_id).await.unwrap().is_none());
    assert_eq!(
        store.orders_of(alice, 10, 0).await.unwrap(),
        (Vec::new(), 0)
    );
    assert_eq!(
        store.hold(hold.id).await.unwrap().unwrap().status,
        HoldStatus::Active
    );
    // The sweep inside the refused purchase was rolled back with it.
    assert_eq!(
        store.hold(bobs.id).await.unwrap().unwrap().status,
        HoldStatus::Active
    );
    // No answer was stored for the key: it is still in flight.
    refused!(
        store
            .idempotency_begin(&input.key, "fp", NOW + 2, LOCK, KEY_TTL)
            .await,
        BookingError::InFlight
    );

    // A refused hold keeps the buyer's previous one.
    refused!(
        hold_seats(&store, event_id, alice, &["A-1-3"], NOW + 2).await,
        BookingError::SeatsUnavailable(_)
    );
    refused!(
        hold_seats(&store, event_id, alice, &["A-1-1", "Z-1-1"], NOW + 2).await,
        BookingError::UnknownSeats(_)
    );
    // Two seats are free for Alice (her own hold's), but one is all she may have.
    let over_limit = NewHold {
        hold_id: HoldId::new(),
        event_id,
        user_id: alice,
        selection: Selection::Best {
            quantity: 2,
            section: None,
        },
        ttl_ms: HOLD_TTL,
    };
    let strict = Policy {
        max_tickets_per_user: 1,
        ..POLICY
    };
    refused!(
        store.create_hold(&over_limit, NOW + 2, strict).await,
        BookingError::TicketLimit { limit: 1, owned: 0 }
    );

    assert_eq!(
        store.hold(hold.id).await.unwrap().unwrap().status,
        HoldStatus::Active
    );
    assert_eq!(store.inventory(event_id).await.unwrap(), inventory);
    assert_eq!(last_seq(&outbox).await, seq);
    assert_eq!(
        seats_in(&store, event_id, NOW + 2, "held").await,
        ["A-1-1", "A-1-2", "A-1-3"]
    );
}

/// Buyers racing for the same seats or the last places never share one.
async fn concurrent_buyers_never_share_a_seat((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 4)])]).await;
    let ga = general_event(&store, 5).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for i in 0..10_i64 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let user = Uuid::now_v7();
            barrier.wait().await;
            let same = hold_seats(&store, event_id, user, &["A-1-2", "A-1-3"], NOW + i).await;
            let any = hold_best(&store, ga, Uuid::now_v7(), 1, None, NOW + i).await;
            (same, any)
        }));
    }

    let mut same_won = Vec::new();
    let mut places = Vec::new();
    for task in tasks {
        let (same, any) = task.await.unwrap();
        match same {
            Ok(hold) => same_won.push(hold),
            Err(BookingError::SeatsUnavailable(_)) => {}
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
        match any {
            Ok(hold) => places.extend(hold.seat_ids),
            Err(BookingError::SoldOut { available: 0 }) => {}
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
    }

    assert_eq!(same_won.len(), 1);
    assert_eq!(counters(&store, event_id).await.0, 2);
    places.sort();
    assert_eq!(places, ["GA-1", "GA-2", "GA-3", "GA-4", "GA-5"]);
    assert_eq!(counters(&store, ga).await, (5, 0, 6));
    let versions: Vec<i64> = since(&outbox, 0)
        .await
        .iter()
        .filter(|e| e.aggregate_id == ga)
        .map(|e| e.aggregate_version)
        .collect();
    assert_eq!(versions, (1..=6).collect::<Vec<_>>());
}

/// Holds and purchases racing on one event (on PostgreSQL they are decided together in
/// batches): one buyer's many holds leave one live hold, a hold is bought once however often
/// it is asked, and no seat is in two live holds.
async fn racing_holds_and_purchases_keep_every_rule((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 10), ("2", 10)])]).await;
    let mut bought = Vec::new();
    for i in 1..=4 {
        let hold = hold_seats(
            &store,
            event_id,
            Uuid::now_v7(),
            &[&format!("A-2-{i}")],
            NOW,
        )
        .await
        .unwrap();
        let payment = paid(&store, &hold, NOW).await;
        bought.push((hold, payment));
    }
    let greedy = Uuid::now_v7();
    let barrier = Arc::new(tokio::sync::Barrier::new(8 + 8 + 8));
    let mut holds = Vec::new();
    let mut purchases = Vec::new();
    for i in 0..8_i64 {
        let (one, wait) = (store.clone(), barrier.clone());
        holds.push(tokio::spawn(async move {
            wait.wait().await;
            hold_best(&one, event_id, greedy, 1, None, NOW + 1 + i).await
        }));
        let (store, barrier) = (store.clone(), barrier.clone());
        holds.push(tokio::spawn(async move {
            barrier.wait().await;
            hold_seats(
                &store,
                event_id,
                Uuid::now_v7(),
                &["A-1-9", "A-1-10"],
                NOW + 1 + i,
            )
            .await
        }));
    }
    for (n, (hold, payment)) in bought.iter().enumerate() {
        for attempt in 0..2 {
            let (store, barrier) = (store.clone(), barrier.clone());
            let input = purchase_of(hold, payment.id, &format!("race-{n}-{attempt}"));
            purchases.push((
                hold.id,
                tokio::spawn(async move {
                    let started = store
                        .idempotency_begin(&input.key, "fingerprint", NOW + 1, LOCK, KEY_TTL)
                        .await
                        .unwrap();
                    assert_eq!(started, IdempotencyStart::Started);
                    barrier.wait().await;
                    store.purchase(&input, NOW + 1, POLICY).await
                }),
            ));
        }
    }

    let mut won = Vec::new();
    for task in holds {
        match task.await.unwrap() {
            Ok(hold) => won.push(hold),
            Err(BookingError::SeatsUnavailable(_)) => {}
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
    }
    let mut orders = BTreeMap::<HoldId, usize>::new();
    for (hold_id, task) in purchases {
        match task.await.unwrap() {
            Ok((order, _)) => {
                assert_eq!(order.hold_id, hold_id);
                *orders.entry(hold_id).or_default() += 1;
            }
            Err(BookingError::HoldPurchased) => {}
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
    }

    assert_eq!(orders.len(), 4);
    assert!(orders.values().all(|&n| n == 1));
    let mut live = Vec::new();
    for hold in &won {
        if store.hold(hold.id).await.unwrap().unwrap().status == HoldStatus::Active {
            live.push(hold.clone());
        }
    }
    assert_eq!(live.iter().filter(|h| h.user_id == greedy).count(), 1);
    assert_eq!(
        live.iter()
            .filter(|h| h.seat_ids == ["A-1-9", "A-1-10"])
            .count(),
        1
    );
    let mut seats: Vec<String> = live.iter().flat_map(|h| h.seat_ids.clone()).collect();
    seats.sort();
    let held = seats.len();
    seats.dedup();
    assert_eq!(seats.len(), held, "a seat in two live holds: {live:?}");
    let (held_counter, sold, _) = counters(&store, event_id).await;
    assert_eq!((held_counter, sold), (i64::try_from(held).unwrap(), 4));
    let mut on_map = seats_in(&store, event_id, NOW + 1, "held").await;
    on_map.sort();
    assert_eq!(on_map, seats);
}

/// C-02: multi-ticket buyers racing for the places of a general-admission event: each
/// gets all its places or none, together they never pass capacity, no place is held twice,
/// and each winner buys once.
async fn multi_ticket_buyers_never_pass_general_admission_capacity((store, _): Subject) {
    let ga = general_event(&store, 11).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8_i64 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let quantity = 1 + i % 4;
            let held = hold_best(&store, ga, Uuid::now_v7(), quantity, None, NOW + i).await;
            let bought = match &held {
                Ok(hold) => {
                    let payment = paid(&store, hold, NOW + 10).await;
                    Some(
                        store
                            .purchase(&purchase_of(hold, payment.id, "ga"), NOW + 20, POLICY)
                            .await,
                    )
                }
                Err(_) => None,
            };
            (quantity, held, bought)
        }));
    }

    let mut places = Vec::new();
    for task in tasks {
        let (quantity, held, bought) = task.await.unwrap();
        match held {
            Ok(hold) => {
                assert_eq!(hold.seat_ids.len() as i64, quantity);
                let (order, _) = bought.unwrap().unwrap();
                assert_eq!(order.seat_ids, hold.seat_ids);
                places.extend(hold.seat_ids);
            }
            Err(BookingError::SoldOut { .. } | BookingError::SeatsUnavailable(_)) => {}
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
    }

    let distinct: std::collections::BTreeSet<&String> = places.iter().collect();
    assert_eq!(
        distinct.len(),
        places.len(),
        "a place sold twice: {places:?}"
    );
    assert!(places.len() <= 11);
    let audit = store.audit(ga, NOW + 30).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(audit.sold_seats, places.len() as i64);
}

/// C-15: one payment confirmed many times at once moves once: every answer is the same
/// succeeded intent, and the hold is bought once.
async fn concurrent_confirmations_of_one_payment_move_it_once((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 2)])]).await;
    let alice = Uuid::now_v7();
    let hold = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();
    let created = intent(&store, &hold, NOW + 1).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .confirm_intent(
                    created.id,
                    alice,
                    crate::support::SECRET,
                    evently_booking::store::Confirmation::Succeed,
                    NOW + 2,
                )
                .await
        }));
    }

    for task in tasks {
        let confirmed = task.await.unwrap().unwrap().intent;
        assert_eq!(
            confirmed.status,
            evently_booking::domain::IntentStatus::Succeeded
        );
        assert_eq!(confirmed.id, created.id);
    }
    let (order, _) = store
        .purchase(&purchase_of(&hold, created.id, "once"), NOW + 3, POLICY)
        .await
        .unwrap();
    refused!(
        store
            .purchase(&purchase_of(&hold, created.id, "twice"), NOW + 4, POLICY)
            .await,
        BookingError::HoldPurchased
    );
    let audit = store.audit(event_id, NOW + 5).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.orders, audit.tickets), (1, 1));
    assert_eq!(order.payment_intent_id, created.id);
}

/// C-11: an order cancelled while direct buyers race for its seat and a buyer waits for it:
/// the freed seat goes to the head of the waitlist (an offer, in the cancellation's own
/// transaction), never to a direct buyer, and never to both.
async fn a_cancellation_racing_direct_buyers_offers_the_seat_to_the_waitlist((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 2)])]).await;
    let (alice, dave, bob) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let alices = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();
    let order = crate::support::buy(&store, &alices, NOW + 1).await;
    let daves = hold_seats(&store, event_id, dave, &["A-1-2"], NOW + 2)
        .await
        .unwrap();
    crate::support::buy(&store, &daves, NOW + 3).await;
    store
        .join_waitlist(event_id, bob, 1, NOW + 4, POLICY)
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(7));
    let mut direct = Vec::new();
    for i in 0..6_i64 {
        let (store, barrier) = (store.clone(), barrier.clone());
        direct.push(tokio::spawn(async move {
            barrier.wait().await;
            hold_seats(&store, event_id, Uuid::now_v7(), &["A-1-1"], NOW + 10 + i).await
        }));
    }
    let cancel = {
        let store = store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .cancel_order(order.order_id, "buyer", NOW + 10, POLICY)
                .await
        })
    };

    cancel.await.unwrap().unwrap();
    for attempt in direct {
        match attempt.await.unwrap() {
            Err(BookingError::SeatsUnavailable(_) | BookingError::SoldOut { .. }) => {}
            other => panic!("a direct buyer got the waitlisted seat: {other:?}"),
        }
    }
    let entry = store.waitlist_entry(event_id, bob).await.unwrap().unwrap();
    assert_eq!(
        entry.status,
        evently_booking::domain::WaitlistStatus::Offered
    );
    let offer = store.hold(entry.hold_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (offer.user_id, offer.seat_ids.clone()),
        (bob, vec!["A-1-1".to_owned()])
    );
    assert_eq!(offer.status, HoldStatus::Active);
    let audit = store.audit(event_id, NOW + 20).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.orders, audit.live_holds), (1, 1));
}

evently_testkit::conformance_suite!(
    suite: crate::concurrency,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [
        refused_changes_leave_nothing_behind,
        concurrent_buyers_never_share_a_seat,
        racing_holds_and_purchases_keep_every_rule,
        multi_ticket_buyers_never_pass_general_admission_capacity,
        concurrent_confirmations_of_one_payment_move_it_once,
        a_cancellation_racing_direct_buyers_offers_the_seat_to_the_waitlist,
    ]
);
