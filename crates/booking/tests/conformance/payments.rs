//! Payment intents charged for a hold and confirmed once, and the idempotency keys that replay
//! answers and guard running requests.

use crate::support::{
    HOLD_TTL, KEY_TTL, LOCK, NOW, POLICY, SECRET, Subject, hold_seats, intent, intent_status, key,
    paid, purchase_of, refused, reserved_event,
};
use evently_booking::domain::{IntentStatus, PaymentIntent, PaymentIntentId, sha256_hex};
use evently_booking::error::BookingError;
use evently_booking::store::{Confirmation, IdempotencyKey, IdempotencyStart, NewIntent};
use serde_json::Value;
use uuid::Uuid;

/// An intent charges the hold's seats at their prices; confirmation checks the secret and
/// follows the simulated processor's outcome.
async fn payment_intents_charge_the_hold_and_confirm_once((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 2)]), ("B", &[("1", 2)])]).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let hold = hold_seats(&store, event_id, alice, &["A-1-1", "B-1-1"], NOW)
        .await
        .unwrap();

    let first = intent(&store, &hold, NOW + 1).await;

    assert_eq!(
        first,
        PaymentIntent {
            id: first.id,
            hold_id: hold.id,
            event_id,
            user_id: alice,
            amount: 5000 + 3000,
            currency: "EUR".into(),
            status: IntentStatus::RequiresConfirmation,
            secret_hash: sha256_hex(SECRET.as_bytes()),
        }
    );
    let confirm = |id: PaymentIntentId, user: Uuid, secret: &'static str, outcome: Confirmation| {
        let store = store.clone();
        async move {
            store
                .confirm_intent(id, user, secret, outcome, NOW + 2)
                .await
                .map(|paid| {
                    // Answered with the hold's seats, whichever way the confirmation went.
                    assert_eq!(paid.seat_ids, ["A-1-1", "B-1-1"]);
                    paid.intent
                })
        }
    };
    refused!(
        confirm(first.id, alice, "wrong", Confirmation::Succeed).await,
        BookingError::WrongSecret
    );
    refused!(
        confirm(first.id, bob, SECRET, Confirmation::Succeed).await,
        BookingError::IntentNotFound
    );
    refused!(
        confirm(PaymentIntentId::new(), alice, SECRET, Confirmation::Succeed).await,
        BookingError::IntentNotFound
    );
    refused!(
        confirm(first.id, alice, SECRET, Confirmation::Fail).await,
        BookingError::PaymentFailed
    );
    // The failure changed nothing: the intent can still be declined…
    refused!(
        confirm(first.id, alice, SECRET, Confirmation::Decline).await,
        BookingError::PaymentDeclined
    );
    // …and a declined intent is declined for good.
    refused!(
        confirm(first.id, alice, SECRET, Confirmation::Succeed).await,
        BookingError::IntentNotConfirmable(status) if status == "declined"
    );

    let second = intent(&store, &hold, NOW + 3).await;
    let third = intent(&store, &hold, NOW + 4).await;

    refused!(
        confirm(second.id, alice, SECRET, Confirmation::Succeed).await,
        BookingError::IntentNotConfirmable(status) if status == "cancelled"
    );
    let succeeded = confirm(third.id, alice, SECRET, Confirmation::Succeed)
        .await
        .unwrap();
    assert_eq!(succeeded.status, IntentStatus::Succeeded);
    assert_eq!((succeeded.id, succeeded.amount), (third.id, 8000));
    let again = confirm(third.id, alice, SECRET, Confirmation::Succeed)
        .await
        .unwrap();
    assert_eq!(again, succeeded);
    // A paid hold gets no second intent (a second charge), and its payment stands.
    let fourth = NewIntent {
        intent_id: PaymentIntentId::new(),
        user_id: alice,
        hold_id: hold.id,
        secret_hash: sha256_hex(SECRET.as_bytes()),
    };
    refused!(
        store.create_intent(&fourth, NOW + 5).await,
        BookingError::HoldPaid
    );
    assert_eq!(intent_status(&store, &third, NOW + 6).await, "succeeded");
    assert_eq!(intent_status(&store, &first, NOW + 6).await, "declined");
    let bobs_hold = hold_seats(&store, event_id, bob, &["A-1-2"], NOW)
        .await
        .unwrap();
    let bobs_unpaid = intent(&store, &bobs_hold, NOW + 5).await;

    // Only for the buyer's live hold.
    let bobs_try = NewIntent {
        intent_id: PaymentIntentId::new(),
        user_id: bob,
        hold_id: hold.id,
        secret_hash: sha256_hex(SECRET.as_bytes()),
    };
    refused!(
        store.create_intent(&bobs_try, NOW + 7).await,
        BookingError::HoldNotFound
    );
    let late = NewIntent {
        intent_id: PaymentIntentId::new(),
        user_id: alice,
        hold_id: hold.id,
        secret_hash: sha256_hex(SECRET.as_bytes()),
    };
    refused!(
        store.create_intent(&late, NOW + HOLD_TTL).await,
        BookingError::HoldExpired
    );
    refused!(
        store
            .confirm_intent(
                bobs_unpaid.id,
                bob,
                SECRET,
                Confirmation::Succeed,
                NOW + HOLD_TTL
            )
            .await,
        BookingError::HoldExpired
    );
}

/// Idempotency keys, scoped by caller and route, replay a completed answer, refuse a reused
/// key or a running request, and are taken over or forgotten in time.
async fn idempotency_keys_replay_answers_and_guard_running_requests((store, _): Subject) {
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let k1 = key(alice, "k-1");
    let begin = |k: IdempotencyKey, fingerprint: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .idempotency_begin(&k, fingerprint, now, LOCK, KEY_TTL)
                .await
        }
    };

    assert_eq!(
        begin(k1.clone(), "fp-a", NOW).await.unwrap(),
        IdempotencyStart::Started
    );
    refused!(
        begin(k1.clone(), "fp-a", NOW + 1).await,
        BookingError::InFlight
    );
    refused!(
        begin(k1.clone(), "fp-b", NOW + 2).await,
        BookingError::KeyReused
    );
    // Keys are the caller's and the route's.
    assert_eq!(
        begin(key(bob, "k-1"), "fp-b", NOW + 3).await.unwrap(),
        IdempotencyStart::Started
    );
    let other_route = IdempotencyKey {
        route: "POST /api/orders/other".into(),
        ..k1.clone()
    };
    assert_eq!(
        begin(other_route, "fp-b", NOW + 3).await.unwrap(),
        IdempotencyStart::Started
    );
    // A request that holds the key past the lock is presumed gone: the key is taken over once.
    refused!(
        begin(k1.clone(), "fp-a", NOW + LOCK - 1).await,
        BookingError::InFlight
    );
    assert_eq!(
        begin(k1.clone(), "fp-a", NOW + LOCK).await.unwrap(),
        IdempotencyStart::Started
    );
    refused!(
        begin(k1.clone(), "fp-a", NOW + LOCK + 1).await,
        BookingError::InFlight
    );

    store
        .idempotency_finish(&k1, 422, r#"{"status":422}"#)
        .await
        .unwrap();
    // Abandoning is for keys in flight: a stored answer stays.
    store.idempotency_abandon(&k1).await.unwrap();

    let replay = IdempotencyStart::Replay {
        status: 422,
        body: r#"{"status":422}"#.into(),
    };
    assert_eq!(
        begin(k1.clone(), "fp-a", NOW + LOCK + 2).await.unwrap(),
        replay
    );
    assert_eq!(
        begin(k1.clone(), "fp-a", NOW + KEY_TTL - 1).await.unwrap(),
        replay
    );
    refused!(
        begin(k1.clone(), "fp-b", NOW + LOCK + 2).await,
        BookingError::KeyReused
    );
    // Past its retention the key starts afresh, whatever the body.
    assert_eq!(
        begin(k1.clone(), "fp-b", NOW + KEY_TTL).await.unwrap(),
        IdempotencyStart::Started
    );

    let k2 = key(alice, "k-2");
    assert_eq!(
        begin(k2.clone(), "fp-a", NOW + 10).await.unwrap(),
        IdempotencyStart::Started
    );
    store.idempotency_abandon(&k2).await.unwrap();
    assert_eq!(
        begin(k2.clone(), "fp-z", NOW + 11).await.unwrap(),
        IdempotencyStart::Started
    );

    // A purchase completes its key with the order as the answer, in its transaction.
    let event_id = reserved_event(&store, &[("A", &[("1", 2)])]).await;
    let hold = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();
    let payment = paid(&store, &hold, NOW).await;
    let input = purchase_of(&hold, payment.id, "k-3");
    assert_eq!(
        begin(input.key.clone(), "fp-p", NOW).await.unwrap(),
        IdempotencyStart::Started
    );

    let (order, body) = store.purchase(&input, NOW + 1, POLICY).await.unwrap();

    assert_eq!(
        begin(input.key.clone(), "fp-p", NOW + 2).await.unwrap(),
        IdempotencyStart::Replay {
            status: 201,
            body: body.clone(),
        }
    );
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["orderId"], order.order_id.to_string());
    assert_eq!(answer["tickets"].as_array().unwrap().len(), 1);

    // Forgotten once past retention: bob's, the other route's, k-2 and k-3; k-1 was renewed.
    let purged = store.purge_idempotency(NOW + KEY_TTL + 11).await.unwrap();
    assert_eq!(purged, 4);
    assert_eq!(
        begin(input.key.clone(), "fp-other", NOW + KEY_TTL + 12)
            .await
            .unwrap(),
        IdempotencyStart::Started
    );
    refused!(
        begin(k1.clone(), "fp-a", NOW + KEY_TTL + 12).await,
        BookingError::KeyReused
    );
}

/// A paid hold gets no second intent (it would be a second charge, left without an order);
/// the intent the order used reads back with its order, and the reconciliation finds
/// nothing to refund.
async fn a_paid_hold_gets_no_second_intent((store, _): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 2)])]).await;
    let alice = Uuid::now_v7();
    let hold = hold_seats(&store, event_id, alice, &["A-1-1"], NOW)
        .await
        .unwrap();
    let first = paid(&store, &hold, NOW + 1).await;
    let second = NewIntent {
        intent_id: PaymentIntentId::new(),
        user_id: alice,
        hold_id: hold.id,
        secret_hash: sha256_hex(SECRET.as_bytes()),
    };

    refused!(
        store.create_intent(&second, NOW + 2).await,
        BookingError::HoldPaid
    );

    let (order, _) = store
        .purchase(&purchase_of(&hold, first.id, "k-1"), NOW + 3, POLICY)
        .await
        .unwrap();
    assert_eq!(store.reconcile_payments(NOW + 4).await.unwrap(), 0);
    let (read, used_by) = store.payment_intent(first.id).await.unwrap().unwrap();
    assert_eq!(
        (read.status, used_by),
        (IntentStatus::Succeeded, Some(order.order_id))
    );
    assert!(
        store
            .payment_intent(second.intent_id)
            .await
            .unwrap()
            .is_none()
    );
    let audit = store.audit(event_id, NOW + 5).await.unwrap().unwrap();
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.refunded_payments, audit.orders), (0, 1));
}

/// A running request renews its key's lease; a renewal of a lease that another request took
/// over, or of a completed key, fails and changes nothing.
async fn a_running_request_renews_its_key_lease((store, _): Subject) {
    let k = key(Uuid::now_v7(), "lease");
    assert_eq!(
        store
            .idempotency_begin(&k, "fp", NOW, LOCK, KEY_TTL)
            .await
            .unwrap(),
        IdempotencyStart::Started
    );

    assert!(
        store
            .idempotency_renew(&k, NOW, NOW + LOCK - 1)
            .await
            .unwrap()
    );

    // The renewed lease still holds when the first one would have run out…
    refused!(
        store
            .idempotency_begin(&k, "fp", NOW + LOCK + 1, LOCK, KEY_TTL)
            .await,
        BookingError::InFlight
    );
    // …a renewal from a stale lease fails…
    assert!(!store.idempotency_renew(&k, NOW, NOW + LOCK).await.unwrap());
    // …and once it runs out a retry takes the key over; the old request cannot renew it.
    assert_eq!(
        store
            .idempotency_begin(&k, "fp", NOW + 2 * LOCK, LOCK, KEY_TTL)
            .await
            .unwrap(),
        IdempotencyStart::Started
    );
    assert!(
        !store
            .idempotency_renew(&k, NOW + LOCK - 1, NOW + 2 * LOCK)
            .await
            .unwrap()
    );
    store.idempotency_finish(&k, 201, "{}").await.unwrap();
    assert!(
        !store
            .idempotency_renew(&k, NOW + 2 * LOCK, NOW + 2 * LOCK + 1)
            .await
            .unwrap()
    );
}

evently_testkit::conformance_suite!(
    suite: crate::payments,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [
        payment_intents_charge_the_hold_and_confirm_once,
        idempotency_keys_replay_answers_and_guard_running_requests,
        a_paid_hold_gets_no_second_intent,
        a_running_request_renews_its_key_lease,
    ]
);
