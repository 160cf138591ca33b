//! Purchases: a live, paid hold sold once into an order and its tickets, and a cancelled order
//! returning its seats with a refund.

use crate::support::{
    HOLD_TTL, KEY_TTL, LOCK, MINUTE, NOW, POLICY, SECRET, Subject, buy, change, counters, figures,
    general_event, hold_best, hold_seats, intent, intent_status, last_seq, paid, purchase_of,
    refused, reserved_event, seats_in, since, strings, types,
};
use evently_booking::domain::{
    HoldId, HoldStatus, IntentStatus, Order, OrderId, OrderStatus, PaymentIntent, PaymentIntentId,
    Policy, Selection, TicketStatus, sha256_hex,
};
use evently_booking::error::BookingError;
use evently_booking::store::{Confirmation, IdempotencyStart, NewHold, NewIntent, Purchase};
use serde_json::Value;
use std::collections::BTreeSet;
use uuid::Uuid;

/// A purchase needs the buyer's live hold, its paid intent and its exact seats; it sells the
/// seats once, with tickets and an `OrderPlaced` row.
async fn purchase_needs_a_live_paid_hold_and_sells_it_once((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 4)]), ("B", &[("1", 2)])]).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let old = hold_seats(&store, event_id, alice, &["B-1-1"], NOW)
        .await
        .unwrap();
    let old_payment = paid(&store, &old, NOW).await;
    let hold = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW + 1)
        .await
        .unwrap();
    let unpaid = intent(&store, &hold, NOW + 2).await;
    let bobs = hold_seats(&store, event_id, bob, &["A-1-4"], NOW + 2)
        .await
        .unwrap();
    let bobs_payment = paid(&store, &bobs, NOW + 2).await;
    let input = purchase_of(&hold, unpaid.id, "k-1");
    assert_eq!(
        store
            .idempotency_begin(&input.key, "fp", NOW + 3, LOCK, KEY_TTL)
            .await
            .unwrap(),
        IdempotencyStart::Started
    );
    let attempt = |input: Purchase| {
        let store = store.clone();
        async move { store.purchase(&input, NOW + 3, POLICY).await }
    };

    refused!(
        attempt(input.clone()).await,
        BookingError::PaymentIncomplete(status) if status == "requires_confirmation"
    );
    refused!(
        attempt(Purchase {
            intent_id: old_payment.id,
            ..input.clone()
        })
        .await,
        BookingError::IntentForAnotherHold
    );
    refused!(
        attempt(Purchase {
            intent_id: bobs_payment.id,
            ..input.clone()
        })
        .await,
        BookingError::IntentNotFound
    );
    refused!(
        attempt(Purchase {
            intent_id: PaymentIntentId::new(),
            ..input.clone()
        })
        .await,
        BookingError::IntentNotFound
    );
    refused!(
        attempt(Purchase {
            user_id: bob,
            intent_id: bobs_payment.id,
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
    // The event the request names must be the hold's: another event, or none booking knows.
    let other_event = general_event(&store, 10).await;
    let untouched = counters(&store, other_event).await;
    for event_id in [other_event, Uuid::now_v7()] {
        refused!(
            attempt(Purchase {
                event_id,
                ..input.clone()
            })
            .await,
            BookingError::HoldForAnotherEvent
        );
        refused!(
            attempt(Purchase {
                event_id,
                hold_id: HoldId::new(),
                ..input.clone()
            })
            .await,
            BookingError::HoldNotFound
        );
    }
    assert_eq!(counters(&store, other_event).await, untouched);
    refused!(
        attempt(purchase_of(&old, old_payment.id, "k-1")).await,
        BookingError::HoldExpired
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
        attempt(Purchase {
            seat_ids: strings(&["A-1-1", "A-1-2", "A-1-3"]),
            ..input.clone()
        })
        .await,
        BookingError::SeatsMismatch
    );
    refused!(
        attempt(Purchase {
            event_id: Uuid::now_v7(),
            ..input.clone()
        })
        .await,
        BookingError::HoldForAnotherEvent
    );
    assert_eq!(
        intent_status(&store, &old_payment, NOW + 3).await,
        "refunded"
    );

    let confirmed = store
        .confirm_intent(unpaid.id, alice, SECRET, Confirmation::Succeed, NOW + 4)
        .await
        .unwrap()
        .intent;
    let mark = last_seq(&outbox).await;
    let (held, sold, version) = counters(&store, event_id).await;
    // The buyer names the seats in any order.
    let reordered = Purchase {
        seat_ids: strings(&["A-1-2", "A-1-1"]),
        ..input.clone()
    };

    let (order, body) = store.purchase(&reordered, NOW + 5, POLICY).await.unwrap();

    assert_eq!(
        (order.order_id, order.event_id, order.user_id, order.hold_id),
        (input.order_id, event_id, alice, hold.id)
    );
    assert_eq!(order.payment_intent_id, unpaid.id);
    assert_eq!(order.seat_ids, ["A-1-1", "A-1-2"]);
    assert_eq!((order.amount, order.currency.as_str()), (10_000, "EUR"));
    assert_eq!(confirmed.amount, order.amount);
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(
        (order.refunded_amount, order.cancel_reason.as_deref()),
        (None, None)
    );
    let ticket_seats: Vec<&str> = order.tickets.iter().map(|t| t.seat_id.as_str()).collect();
    assert_eq!(ticket_seats, ["A-1-1", "A-1-2"]);
    assert!(
        order
            .tickets
            .iter()
            .all(|t| t.status == TicketStatus::Valid)
    );
    let codes: BTreeSet<&str> = order.tickets.iter().map(|t| t.code.as_str()).collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.iter().all(|c| c.len() >= 16));
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["orderId"], order.order_id.to_string());
    assert_eq!(store.order(order.order_id).await.unwrap().unwrap(), order);
    let (mine, total) = store.orders_of(alice, 10, 0).await.unwrap();
    assert_eq!((mine, total), (vec![order.clone()], 1));
    assert_eq!(store.orders_of(bob, 10, 0).await.unwrap(), (Vec::new(), 0));
    // An event's orders by keyset: the page after the last order is empty.
    assert_eq!(
        store.orders_of_event(event_id, None, 10).await.unwrap(),
        vec![order.clone()]
    );
    assert!(
        store
            .orders_of_event(event_id, Some(order.order_id), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .orders_of_event(Uuid::from_u128(404), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.hold(hold.id).await.unwrap().unwrap().status,
        HoldStatus::Purchased
    );
    assert_eq!(
        seats_in(&store, event_id, NOW + 5, "reserved").await,
        ["A-1-1", "A-1-2"]
    );
    assert_eq!(
        counters(&store, event_id).await,
        (held - 2, sold + 2, version + 1)
    );
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["OrderPlaced"]);
    let placed = change(&rows[0]);
    assert_eq!(
        (placed.order_id, placed.hold_id, placed.user_id),
        (Some(order.order_id.0), Some(hold.id.0), Some(alice))
    );
    assert_eq!(placed.seat_ids, ["A-1-1", "A-1-2"]);
    assert_eq!(
        (placed.amount, placed.currency.as_deref()),
        (Some(10_000), Some("EUR"))
    );
    assert_eq!(placed.availability, figures(6, 3, 1, 2, version + 1));

    // Once only, whatever the key.
    refused!(
        store
            .purchase(&purchase_of(&hold, unpaid.id, "k-2"), NOW + 6, POLICY)
            .await,
        BookingError::HoldPurchased
    );
    refused!(
        store.release_hold(hold.id, alice, NOW + 6, POLICY).await,
        BookingError::HoldPurchased
    );
    refused!(
        store
            .refresh_hold(hold.id, alice, MINUTE, HOLD_TTL * 3, NOW + 6, POLICY)
            .await,
        BookingError::HoldPurchased
    );
    let after_purchase = NewIntent {
        intent_id: PaymentIntentId::new(),
        user_id: alice,
        hold_id: hold.id,
        secret_hash: sha256_hex(SECRET.as_bytes()),
    };
    refused!(
        store.create_intent(&after_purchase, NOW + 6).await,
        BookingError::HoldPurchased
    );
    let audit = store.audit(event_id, NOW + 6).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(
        (
            audit.capacity,
            audit.sold_seats,
            audit.tickets,
            audit.orders,
            audit.live_holds
        ),
        (6, 2, 2, 1, 1)
    );

    // An expired hold is not bought, paid or not.
    refused!(
        store
            .purchase(
                &purchase_of(&bobs, bobs_payment.id, "k-3"),
                NOW + 2 + HOLD_TTL,
                POLICY
            )
            .await,
        BookingError::HoldExpired
    );
    // The ticket limit counts what the buyer already owns.
    let strict = Policy {
        max_tickets_per_user: 4,
        ..POLICY
    };
    let three = NewHold {
        hold_id: HoldId::new(),
        event_id,
        user_id: alice,
        selection: Selection::Best {
            quantity: 3,
            section: None,
        },
        ttl_ms: HOLD_TTL,
    };
    refused!(
        store.create_hold(&three, NOW + 7, strict).await,
        BookingError::TicketLimit { limit: 4, owned: 2 }
    );
    let two = NewHold {
        hold_id: HoldId::new(),
        selection: Selection::Best {
            quantity: 2,
            section: None,
        },
        ..three
    };
    assert_eq!(
        store
            .create_hold(&two, NOW + 7, strict)
            .await
            .unwrap()
            .seat_ids
            .len(),
        2
    );
}

/// Under a limit lowered since the hold was taken (`limit_purchases`), a purchase counts the
/// tickets the buyer already bought; the hold's own check stands otherwise.
async fn a_lowered_ticket_limit_refuses_a_purchase_that_no_longer_fits((store, _): Subject) {
    let event_id = general_event(&store, 10).await;
    let alice = Uuid::now_v7();
    let first = hold_best(&store, event_id, alice, 2, None, NOW)
        .await
        .unwrap();
    buy(&store, &first, NOW + 1).await;
    let second = hold_best(&store, event_id, alice, 2, None, NOW + 2)
        .await
        .unwrap();
    let payment = paid(&store, &second, NOW + 3).await;
    let lowered = Policy {
        max_tickets_per_user: 3,
        limit_purchases: true,
        ..POLICY
    };

    refused!(
        store
            .purchase(&purchase_of(&second, payment.id, "k-low"), NOW + 4, lowered)
            .await,
        BookingError::TicketLimit { limit: 3, owned: 2 }
    );
    let fits = Policy {
        max_tickets_per_user: 4,
        ..lowered
    };
    let (order, _) = store
        .purchase(&purchase_of(&second, payment.id, "k-fits"), NOW + 5, fits)
        .await
        .unwrap();

    assert_eq!(order.seat_ids.len(), 2);
}

/// An event's orders are read page by page by order id: every order once, in id order,
/// with its tickets, cancelled ones included, other events' left out.
async fn an_events_orders_are_paged_by_keyset((store, _outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 7)])]).await;
    let other = reserved_event(&store, &[("B", &[("1", 2)])]).await;
    let mut orders = Vec::new();
    for n in 1..=5 {
        let seats = [format!("A-1-{n}")];
        let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
        let hold = hold_seats(&store, event_id, Uuid::now_v7(), &seats, NOW + n)
            .await
            .unwrap();
        orders.push(buy(&store, &hold, NOW + n).await);
    }
    let hold = hold_seats(&store, other, Uuid::now_v7(), &["B-1-1"], NOW)
        .await
        .unwrap();
    buy(&store, &hold, NOW + 1).await;
    let cancelled = store
        .cancel_order(orders[2].order_id, "buyer", NOW + 9, POLICY)
        .await
        .unwrap();
    orders[2] = cancelled;
    orders.sort_by_key(|o| o.order_id.0);

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.orders_of_event(event_id, after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.order_id);
        paged.extend(page);
    }
    assert_eq!(paged, orders);
    assert!(paged.iter().all(|o| o.tickets.len() == 1));
}

/// Cancelling an order voids its tickets, refunds it and puts its seats back on sale.
async fn cancelled_order_returns_its_seats_and_refunds((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 3)])]).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let hold = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW)
        .await
        .unwrap();
    let order = buy(&store, &hold, NOW + 1).await;
    let mark = last_seq(&outbox).await;
    let (_, _, version) = counters(&store, event_id).await;

    let cancelled = store
        .cancel_order(order.order_id, "buyer", NOW + 2, POLICY)
        .await
        .unwrap();

    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.refunded_amount, Some(order.amount));
    assert_eq!(cancelled.cancel_reason.as_deref(), Some("buyer"));
    assert!(
        cancelled
            .tickets
            .iter()
            .all(|t| t.status == TicketStatus::Void)
    );
    let codes = |o: &Order| o.tickets.iter().map(|t| t.code.clone()).collect::<Vec<_>>();
    assert_eq!(codes(&cancelled), codes(&order));
    assert_eq!(
        store.order(order.order_id).await.unwrap().unwrap(),
        cancelled
    );
    assert_eq!(
        seats_in(&store, event_id, NOW + 2, "available").await,
        ["A-1-1", "A-1-2", "A-1-3"]
    );
    assert_eq!(counters(&store, event_id).await, (0, 0, version + 1));
    let payment = PaymentIntent {
        id: order.payment_intent_id,
        hold_id: hold.id,
        event_id,
        user_id: alice,
        amount: order.amount,
        currency: order.currency.clone(),
        status: IntentStatus::Succeeded,
        secret_hash: String::new(),
    };
    assert_eq!(intent_status(&store, &payment, NOW + 2).await, "refunded");
    let rows = since(&outbox, mark).await;
    assert_eq!(types(&rows), ["OrderCancelled"]);
    let refunded = change(&rows[0]);
    assert_eq!(
        (refunded.order_id, refunded.user_id),
        (Some(order.order_id.0), Some(alice))
    );
    assert_eq!(
        (refunded.amount, refunded.reason.as_deref()),
        (Some(order.amount), Some("buyer"))
    );
    assert_eq!(refunded.seat_ids, ["A-1-1", "A-1-2"]);
    assert_eq!(refunded.availability, figures(3, 3, 0, 0, version + 1));
    refused!(
        store
            .cancel_order(order.order_id, "buyer", NOW + 3, POLICY)
            .await,
        BookingError::OrderCancelled
    );
    refused!(
        store
            .cancel_order(OrderId::new(), "buyer", NOW + 3, POLICY)
            .await,
        BookingError::OrderNotFound
    );
    assert_eq!(since(&outbox, mark).await.len(), 1);
    let audit = store.audit(event_id, NOW + 3).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.sold_seats, audit.tickets, audit.orders), (0, 0, 0));

    // The seats sell again.
    let again = hold_seats(&store, event_id, bob, &["A-1-1", "A-1-2"], NOW + 4)
        .await
        .unwrap();
    let resold = buy(&store, &again, NOW + 5).await;
    assert_eq!(resold.seat_ids, ["A-1-1", "A-1-2"]);
    let audit = store.audit(event_id, NOW + 5).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.sold_seats, audit.tickets, audit.orders), (2, 2, 1));
}

evently_testkit::conformance_suite!(
    suite: crate::purchase,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [
        purchase_needs_a_live_paid_hold_and_sells_it_once,
        cancelled_order_returns_its_seats_and_refunds,
        a_lowered_ticket_limit_refuses_a_purchase_that_no_longer_fits,
        an_events_orders_are_paged_by_keyset,
    ]
);
