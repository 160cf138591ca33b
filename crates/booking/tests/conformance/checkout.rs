//! Checkouts: a live hold paid for and bought in one transaction (`Payment::AtCheckout`),
//! refused exactly as a purchase is, never charging a hold twice, and sold once however many
//! checkouts race for it.

use crate::support::{
    HOLD_TTL, NOW, POLICY, Subject, buy, checkout_of, counters, general_event, hold_best,
    hold_seats, last_seq, paid, purchase_of, refused, reserved_event, since, strings, types,
};
use evently_booking::domain::{HoldId, HoldStatus, IntentStatus, OrderStatus, Policy};
use evently_booking::error::BookingError;
use evently_booking::store::{Confirmation, IdempotencyStart, Purchase};
use std::sync::Arc;
use uuid::Uuid;

/// A checkout charges a new intent for the hold's price and buys the hold with it: intent,
/// order, tickets, sold seats, the key's answer and `OrderPlaced`, all in one commit.
async fn a_checkout_pays_for_and_buys_a_live_hold_at_once((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 3)]), ("B", &[("1", 2)])]).await;
    let alice = Uuid::now_v7();
    let hold = hold_seats(&store, event_id, alice, &["A-1-1", "B-1-2"], NOW)
        .await
        .unwrap();
    let seq = last_seq(&outbox).await;
    let input = checkout_of(&store, &hold, Confirmation::Succeed, "k-1", NOW + 1).await;

    let (order, body) = store.purchase(&input, NOW + 1, POLICY).await.unwrap();

    assert_eq!(order.order_id, input.order_id);
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.seat_ids, ["A-1-1", "B-1-2"]);
    assert_eq!(order.tickets.len(), 2);
    // The fixture's prices: section A 5000, every other seat the base price 3000, in EUR.
    assert_eq!(
        (order.amount, order.currency.as_str()),
        (5000 + 3000, "EUR")
    );
    assert_eq!(order.payment_intent_id, input.intent_id);
    let (intent, paid_for) = store
        .payment_intent(input.intent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!((intent.hold_id, intent.user_id), (hold.id, alice));
    assert_eq!(intent.amount, order.amount);
    assert_eq!(paid_for, Some(order.order_id));
    assert_eq!(
        store.hold(hold.id).await.unwrap().unwrap().status,
        HoldStatus::Purchased
    );
    assert_eq!(counters(&store, event_id).await.0, 0);
    assert_eq!(counters(&store, event_id).await.1, 2);
    assert_eq!(types(&since(&outbox, seq).await), ["OrderPlaced"]);
    // The key was completed with the order in the same transaction.
    assert_eq!(
        store
            .idempotency_begin(&input.key, "fingerprint", NOW + 2, 1_000, 60_000)
            .await
            .unwrap(),
        IdempotencyStart::Replay { status: 201, body }
    );
    let audit = store.audit(event_id, NOW + 2).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.sold_seats, audit.tickets, audit.orders), (2, 2, 1));
    assert_eq!(audit.unpaid_orders, 0);
}

/// A declined card and a processor error refuse the checkout after every check of the hold
/// and leave nothing behind: no intent, no order, the hold still live. The hold then sells.
async fn a_declined_checkout_leaves_nothing_behind((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 2)])]).await;
    let alice = Uuid::now_v7();
    let hold = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();
    let counted = counters(&store, event_id).await;
    let seq = last_seq(&outbox).await;

    let declined = checkout_of(&store, &hold, Confirmation::Decline, "k-1", NOW + 1).await;
    refused!(
        store.purchase(&declined, NOW + 1, POLICY).await,
        BookingError::PaymentDeclined
    );
    let failed = checkout_of(&store, &hold, Confirmation::Fail, "k-2", NOW + 1).await;
    refused!(
        store.purchase(&failed, NOW + 1, POLICY).await,
        BookingError::PaymentFailed
    );
    for input in [&declined, &failed] {
        assert!(
            store
                .payment_intent(input.intent_id)
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.order(input.order_id).await.unwrap().is_none());
    }
    assert_eq!(counters(&store, event_id).await, counted);
    assert_eq!(last_seq(&outbox).await, seq);
    assert_eq!(
        store.hold(hold.id).await.unwrap().unwrap().status,
        HoldStatus::Active
    );
    // The checks of the hold come first: a declined card on a hold that is not the buyer's
    // is 404, as it would be with any card.
    let stranger = Purchase {
        user_id: Uuid::now_v7(),
        ..declined.clone()
    };
    refused!(
        store.purchase(&stranger, NOW + 1, POLICY).await,
        BookingError::HoldNotFound
    );

    let good = checkout_of(&store, &hold, Confirmation::Succeed, "k-3", NOW + 2).await;
    let (order, _) = store.purchase(&good, NOW + 2, POLICY).await.unwrap();
    assert_eq!(order.seat_ids, ["A-1-1"]);
}

/// A hold paid before through its own intent is bought with that payment: the card given at
/// checkout is not charged (a declined one does not matter), and no second intent is stored.
async fn a_checkout_of_a_paid_hold_uses_its_payment((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 2)])]).await;
    let alice = Uuid::now_v7();
    let hold = hold_seats(&store, event_id, alice, &["A-1-2"], NOW)
        .await
        .unwrap();
    let payment = paid(&store, &hold, NOW).await;
    let input = checkout_of(&store, &hold, Confirmation::Decline, "k-1", NOW + 1).await;

    let (order, _) = store.purchase(&input, NOW + 1, POLICY).await.unwrap();

    assert_eq!(order.payment_intent_id, payment.id);
    assert_eq!(order.amount, payment.amount);
    assert!(
        store
            .payment_intent(input.intent_id)
            .await
            .unwrap()
            .is_none()
    );
    let audit = store.audit(event_id, NOW + 1).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.orders, audit.unpaid_orders), (1, 0));
}

/// A checkout is refused as a purchase is: someone else's or an unknown hold, another event,
/// other seats, an expired hold, a hold bought already.
async fn a_checkout_is_refused_as_a_purchase_is((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 4)])]).await;
    let other_event = reserved_event(&store, &[("A", &[("1", 1)])]).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let hold = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW)
        .await
        .unwrap();
    let input = checkout_of(&store, &hold, Confirmation::Succeed, "k-1", NOW + 1).await;
    let attempt = |input: Purchase| {
        let store = store.clone();
        async move { store.purchase(&input, NOW + 1, POLICY).await }
    };

    refused!(
        attempt(Purchase {
            user_id: bob,
            ..input.clone()
        })
        .await,
        BookingError::HoldNotFound
    );
    refused!(
        attempt(Purchase {
            hold_id: HoldId::new(),
            ..input.clone()
        })
        .await,
        BookingError::HoldNotFound
    );
    refused!(
        attempt(Purchase {
            event_id: other_event,
            ..input.clone()
        })
        .await,
        BookingError::HoldForAnotherEvent
    );
    refused!(
        attempt(Purchase {
            seat_ids: strings(&["A-1-1"]),
            ..input.clone()
        })
        .await,
        BookingError::SeatsMismatch
    );
    refused!(
        store.purchase(&input, NOW + HOLD_TTL, POLICY).await,
        BookingError::HoldExpired
    );

    let fresh = hold_seats(&store, event_id, bob, &["A-1-3"], NOW + HOLD_TTL)
        .await
        .unwrap();
    let order = buy(&store, &fresh, NOW + HOLD_TTL).await;
    let again = checkout_of(&store, &fresh, Confirmation::Succeed, "k-2", NOW + HOLD_TTL).await;
    refused!(
        store.purchase(&again, NOW + HOLD_TTL, POLICY).await,
        BookingError::HoldPurchased
    );
    assert_eq!(
        store.orders_of(bob, 10, 0).await.unwrap().0[0].order_id,
        order.order_id
    );
}

/// Every rule is checked before the card is charged: a checkout over a lowered ticket limit
/// is refused for the limit whatever the card, and nothing is stored.
async fn a_checkout_checks_the_ticket_limit_before_the_card((store, _): Subject) {
    let event_id = general_event(&store, 10).await;
    let alice = Uuid::now_v7();
    let first = hold_best(&store, event_id, alice, 2, None, NOW)
        .await
        .unwrap();
    buy(&store, &first, NOW + 1).await;
    let second = hold_best(&store, event_id, alice, 2, None, NOW + 2)
        .await
        .unwrap();
    let lowered = Policy {
        max_tickets_per_user: 3,
        limit_purchases: true,
        ..POLICY
    };
    for card in [Confirmation::Decline, Confirmation::Succeed] {
        let input = checkout_of(&store, &second, card, &format!("{card:?}"), NOW + 3).await;
        refused!(
            store.purchase(&input, NOW + 3, lowered).await,
            BookingError::TicketLimit { limit: 3, owned: 2 }
        );
        assert!(
            store
                .payment_intent(input.intent_id)
                .await
                .unwrap()
                .is_none()
        );
    }
    let input = checkout_of(&store, &second, Confirmation::Succeed, "fits", NOW + 4).await;
    let fits = Policy {
        max_tickets_per_user: 4,
        ..lowered
    };
    let (order, _) = store.purchase(&input, NOW + 4, fits).await.unwrap();
    assert_eq!(order.seat_ids.len(), 2);
}

/// Many checkouts of one hold under different keys, racing with purchases of other holds of
/// the same event (on PostgreSQL decided together in batches): the hold is bought once, with
/// one intent, and every other hold once each.
async fn racing_checkouts_sell_a_hold_once((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 8)])]).await;
    let alice = Uuid::now_v7();
    let contested = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();
    let mut others = Vec::new();
    for seat in 2..=8 {
        let hold = hold_seats(
            &store,
            event_id,
            Uuid::now_v7(),
            &[format!("A-1-{seat}").as_str()],
            NOW,
        )
        .await
        .unwrap();
        others.push(hold);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(8 + others.len()));
    let mut contested_tasks = Vec::new();
    for k in 0..8 {
        let input = checkout_of(
            &store,
            &contested,
            Confirmation::Succeed,
            &format!("c-{k}"),
            NOW + 1,
        )
        .await;
        let (store, barrier) = (store.clone(), barrier.clone());
        contested_tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.purchase(&input, NOW + 1, POLICY).await
        }));
    }
    let mut other_tasks = Vec::new();
    for (i, hold) in others.iter().enumerate() {
        // Half pay at checkout, half by an intent confirmed before.
        let input = if i % 2 == 0 {
            checkout_of(&store, hold, Confirmation::Succeed, "o", NOW + 1).await
        } else {
            let payment = paid(&store, hold, NOW).await;
            let input = purchase_of(hold, payment.id, "o");
            store
                .idempotency_begin(&input.key, "fp", NOW + 1, 1_000, 60_000)
                .await
                .unwrap();
            input
        };
        let (store, barrier) = (store.clone(), barrier.clone());
        other_tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.purchase(&input, NOW + 1, POLICY).await
        }));
    }

    let mut won = Vec::new();
    for task in contested_tasks {
        match task.await.unwrap() {
            Ok((order, _)) => won.push(order),
            Err(BookingError::HoldPurchased) => {}
            Err(e) => panic!("unexpected refusal: {e:?}"),
        }
    }
    for task in other_tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(won.len(), 1);
    let (intent, order_id) = store
        .payment_intent(won[0].payment_intent_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(order_id, Some(won[0].order_id));
    assert_eq!(counters(&store, event_id).await.1, 8);
    let audit = store.audit(event_id, NOW + 2).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.sold_seats, audit.tickets, audit.orders), (8, 8, 8));
    // Only the winning checkout stored an intent: a paid intent without an order would be
    // money taken for nothing.
    assert_eq!(audit.unrefunded_payments, 0);
}

evently_testkit::conformance_suite!(
    suite: crate::checkout,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [
        a_checkout_pays_for_and_buys_a_live_hold_at_once,
        a_declined_checkout_leaves_nothing_behind,
        a_checkout_of_a_paid_hold_uses_its_payment,
        a_checkout_is_refused_as_a_purchase_is,
        a_checkout_checks_the_ticket_limit_before_the_card,
        racing_checkouts_sell_a_hold_once,
    ]
);
