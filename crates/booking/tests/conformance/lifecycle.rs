//! The lifecycle of holds, payments, orders and the waitlist as a state machine (TESTPLAN
//! C-13): random sequences of hold, refresh, release, clock advance (expiry, offer lapse),
//! intent, confirm, decline, purchase, replay, order cancellation, event cancellation and
//! waitlist join/leave run through [`BookingService`] on a manual clock, and after every step
//! the invariants of ARCHITECTURE §4 are checked against a simple model of what the service
//! answered:
//!
//! - the store's audit is sound (nothing double-sold or oversold, counters equal rows, no paid
//!   intent kept without its order once its hold ended, every order paid);
//! - the seats sold are exactly the seats of the orders the model holds confirmed, and
//!   available + held + sold is the capacity;
//! - an order is made only for the buyer's live, paid hold; a key replays its one order; a
//!   hold has at most one order; a refused purchase of a live, paid hold is a bug;
//! - a hold past its expiry holds nothing once the expiry task ran;
//! - a refused step changes nothing.

use crate::support::{NOW, POLICY, Subject, layout, publish, snapshot};
use evently_booking::BookingService;
use evently_booking::domain::{
    Hold, HoldId, HoldStatus, OrderId, Payment, PaymentIntentId, Purchase,
};
use evently_booking::idempotency::Answer;
use evently_booking::store::IdempotencyKey;
use evently_bus::DomainEvent;
use evently_core::clock::{ManualClock, SharedClock};
use evently_core::config::BookingConfig;
use evently_core::identity::{Identity, Role};
use evently_core::ids::UserId;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

const SEATS: usize = 6;
const USERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Hold { user: usize, seats: u8 },
    Refresh { user: usize },
    Release { user: usize },
    Advance { seconds: i64 },
    Intent { user: usize },
    Confirm { user: usize, decline: bool },
    Purchase { user: usize },
    Replay { user: usize },
    CancelOrder { user: usize },
    CancelEvent,
    Join { user: usize, quantity: i64 },
    Leave { user: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS;
    prop_oneof![
        4 => (user.clone(), 1u8..64).prop_map(|(user, seats)| Op::Hold { user, seats }),
        1 => user.clone().prop_map(|user| Op::Refresh { user }),
        1 => user.clone().prop_map(|user| Op::Release { user }),
        2 => prop_oneof![Just(1i64), Just(29), Just(31), Just(61), Just(301)]
            .prop_map(|seconds| Op::Advance { seconds }),
        3 => user.clone().prop_map(|user| Op::Intent { user }),
        3 => (user.clone(), proptest::bool::weighted(0.2))
            .prop_map(|(user, decline)| Op::Confirm { user, decline }),
        3 => user.clone().prop_map(|user| Op::Purchase { user }),
        1 => user.clone().prop_map(|user| Op::Replay { user }),
        1 => user.clone().prop_map(|user| Op::CancelOrder { user }),
        1 => Just(Op::CancelEvent),
        1 => (user.clone(), 1i64..4).prop_map(|(user, quantity)| Op::Join { user, quantity }),
        1 => user.prop_map(|user| Op::Leave { user }),
    ]
}

/// What the model knows of one buyer.
#[derive(Debug, Default, Clone)]
struct Buyer {
    /// Their latest hold of their own, and whether the model takes it as ended (released,
    /// replaced, purchased).
    hold: Option<(Hold, bool)>,
    /// Their latest intent: id, secret, the hold it pays, and whether it succeeded.
    intent: Option<(PaymentIntentId, String, HoldId, bool)>,
    /// Their latest purchase: request and the order it answered.
    purchase: Option<(Purchase, String, OrderId)>,
    /// Their orders, newest last.
    orders: Vec<OrderId>,
}

#[derive(Debug, Default)]
struct Model {
    buyers: Vec<Buyer>,
    /// Order → (seats, confirmed).
    orders: BTreeMap<OrderId, (Vec<String>, bool)>,
    /// Hold → its order.
    by_hold: BTreeMap<HoldId, OrderId>,
    cancelled: bool,
}

/// The observable state: seat states and availability figures (available, held, sold).
type Observed = (Vec<(String, String)>, (i64, i64, i64));

/// What can be observed of the event now (the audit is read once per step, by [`check`]).
async fn snapshot_of(service: &BookingService, event_id: Uuid) -> Observed {
    let seats = service
        .seat_map(event_id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.seat_id, s.state))
        .collect();
    let a = service.availability(event_id).await.unwrap();
    (seats, (a.available, a.held, a.sold))
}

fn ensure(condition: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

fn caller(users: &[Uuid], user: usize) -> Identity {
    Identity {
        user_id: UserId(users[user]),
        role: Role::User,
    }
}

#[allow(clippy::too_many_lines)]
async fn run_sequence(
    service: &BookingService,
    clock: &ManualClock,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let store = service.store().clone();
    let event_id = Uuid::now_v7();
    let created = snapshot(event_id, Some(layout(&[("A", &[("1", 6)])])), 6);
    publish(&store, DomainEvent::EventCreated(created), service.now()).await;
    let users: Vec<Uuid> = (0..USERS).map(|_| Uuid::now_v7()).collect();
    let mut model = Model {
        buyers: vec![Buyer::default(); USERS],
        ..Model::default()
    };
    for (step, op) in ops.into_iter().enumerate() {
        let before = snapshot_of(service, event_id).await;
        let now = service.now();
        // Ok(true): the step changed something; Ok(false): it was refused (and must have
        // changed nothing).
        let changed: bool = match &op {
            Op::Hold { user, seats } => {
                let ids: Vec<String> = (0..SEATS)
                    .filter(|i| seats & (1 << i) != 0)
                    .map(|i| format!("A-1-{}", i + 1))
                    .collect();
                let held = service
                    .hold(
                        &caller(&users, *user),
                        event_id,
                        evently_booking::domain::Selection::Seats(ids),
                    )
                    .await;
                match held {
                    Ok(hold) => {
                        ensure(!model.cancelled, || "a hold on a cancelled event".into())?;
                        model.buyers[*user].hold = Some((hold, false));
                        true
                    }
                    Err(_) => false,
                }
            }
            Op::Refresh { user } => match model.buyers[*user].hold.clone() {
                Some((hold, ended)) => {
                    match service.refresh(&caller(&users, *user), hold.id, None).await {
                        Ok(refreshed) => {
                            ensure(!ended && hold.expires_at > now, || {
                                format!("refreshed an ended or expired hold {hold:?}")
                            })?;
                            model.buyers[*user].hold = Some((refreshed, false));
                            true
                        }
                        Err(_) => false,
                    }
                }
                None => continue,
            },
            Op::Release { user } => match model.buyers[*user].hold.clone() {
                Some((hold, _)) => {
                    let released = service.release(&caller(&users, *user), hold.id).await;
                    let status = store.hold(hold.id).await.unwrap().unwrap().status;
                    if released.is_ok() && status == HoldStatus::Released {
                        model.buyers[*user].hold = Some((hold, true));
                    }
                    released.is_ok()
                }
                None => continue,
            },
            Op::Advance { seconds } => {
                clock.advance(time::Duration::seconds(*seconds));
                // What the expiry task does when it wakes.
                store.expire_due(service.now(), POLICY).await.unwrap();
                true
            }
            Op::Intent { user } => match model.buyers[*user].hold.clone() {
                Some((hold, _)) => {
                    match service.create_intent(&caller(&users, *user), hold.id).await {
                        Ok((paid, secret)) => {
                            model.buyers[*user].intent =
                                Some((paid.intent.id, secret, hold.id, false));
                            true
                        }
                        Err(_) => false,
                    }
                }
                None => continue,
            },
            Op::Confirm { user, decline } => match model.buyers[*user].intent.clone() {
                Some((id, secret, hold_id, _)) => {
                    let method = if *decline {
                        "pm_card_declined"
                    } else {
                        "pm_card_visa"
                    };
                    let confirmed = service
                        .confirm(&caller(&users, *user), id, &secret, Some(method))
                        .await;
                    match confirmed {
                        Ok(paid) => {
                            let succeeded = paid.intent.status
                                == evently_booking::domain::IntentStatus::Succeeded;
                            model.buyers[*user].intent = Some((id, secret, hold_id, succeeded));
                            true
                        }
                        // A decline changes the intent (declined for good).
                        Err(evently_booking::error::BookingError::PaymentDeclined) => true,
                        Err(_) => false,
                    }
                }
                None => continue,
            },
            Op::Purchase { user } => {
                let buyer = model.buyers[*user].clone();
                let (Some((hold, ended)), Some((intent, _, paid_hold, succeeded))) =
                    (buyer.hold, buyer.intent)
                else {
                    continue;
                };
                let key = Uuid::now_v7().to_string();
                let purchase = Purchase {
                    order_id: OrderId::new(),
                    user_id: users[*user],
                    event_id,
                    hold_id: hold.id,
                    seat_ids: hold.seat_ids.clone(),
                    intent_id: intent,
                    payment: Payment::Confirmed,
                    key: IdempotencyKey {
                        user_id: users[*user],
                        route: "POST /api/orders/purchase".into(),
                        key: key.clone(),
                    },
                };
                let fingerprint = format!("{:?}", (hold.id, intent));
                let answer = service
                    .purchase(purchase.clone(), fingerprint.clone())
                    .await;
                let live_and_paid = !ended
                    && !model.cancelled
                    && hold.expires_at > now
                    && paid_hold == hold.id
                    && succeeded;
                match answer {
                    Ok(Answer::Fresh(body)) => {
                        ensure(live_and_paid, || {
                            format!(
                                "an order for a hold the model holds not live and paid: {hold:?}"
                            )
                        })?;
                        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                        let order = OrderId(body["orderId"].as_str().unwrap().parse().unwrap());
                        ensure(!model.by_hold.contains_key(&hold.id), || {
                            format!("hold {} has a second order", hold.id)
                        })?;
                        model.by_hold.insert(hold.id, order);
                        model.orders.insert(order, (hold.seat_ids.clone(), true));
                        let b = &mut model.buyers[*user];
                        b.orders.push(order);
                        b.purchase = Some((purchase, fingerprint, order));
                        b.hold = Some((hold, true));
                        true
                    }
                    Ok(Answer::Replayed { .. }) => {
                        return Err(TestCaseError::fail("a fresh key replayed"));
                    }
                    Err(problem) => {
                        // A live, paid hold the store still holds active must sell.
                        let stored = store.hold(hold.id).await.unwrap().unwrap();
                        ensure(
                            !(live_and_paid
                                && stored.status == HoldStatus::Active
                                && stored.expires_at > now),
                            || format!("a live, paid hold was refused: {}", problem.body()),
                        )?;
                        false
                    }
                }
            }
            Op::Replay { user } => match model.buyers[*user].purchase.clone() {
                Some((purchase, fingerprint, order)) => {
                    let answer = service.purchase(purchase, fingerprint).await;
                    let Ok(Answer::Replayed { status: 201, body }) = answer else {
                        return Err(TestCaseError::fail(format!(
                            "a completed key did not replay its 201: {answer:?}"
                        )));
                    };
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    ensure(body["orderId"] == order.0.to_string(), || {
                        format!("the key replayed another order: {body}")
                    })?;
                    false
                }
                None => continue,
            },
            Op::CancelOrder { user } => match model.buyers[*user].orders.last().copied() {
                Some(order) => {
                    let cancelled = service.cancel(&caller(&users, *user), order).await;
                    let confirmed = model.orders[&order].1;
                    ensure(cancelled.is_ok() == confirmed, || {
                        format!(
                            "cancelling order {order:?} (confirmed: {confirmed}): {cancelled:?}"
                        )
                    })?;
                    if let Some(o) = model.orders.get_mut(&order) {
                        o.1 = false;
                    }
                    cancelled.is_ok()
                }
                None => continue,
            },
            Op::CancelEvent => {
                if model.cancelled {
                    continue;
                }
                let inventory = store.inventory(event_id).await.unwrap().unwrap();
                let event = DomainEvent::EventStatusChanged {
                    event_id,
                    from: inventory.status.clone(),
                    to: "CANCELLED".into(),
                };
                publish(&store, event, service.now()).await;
                model.cancelled = true;
                for order in model.orders.values_mut() {
                    order.1 = false;
                }
                true
            }
            Op::Join { user, quantity } => service
                .join_waitlist(&caller(&users, *user), event_id, *quantity)
                .await
                .is_ok(),
            Op::Leave { user } => service
                .leave_waitlist(&caller(&users, *user), event_id)
                .await
                .is_ok(),
        };

        let after = snapshot_of(service, event_id).await;
        if !changed {
            ensure(before == after, || {
                format!("step {step} {op:?} was refused but changed {before:?} into {after:?}")
            })?;
        }
        check(service, event_id, &model, &after)
            .await
            .map_err(|e| TestCaseError::fail(format!("after step {step} {op:?}: {e}")))?;
    }
    Ok(())
}

/// The invariants after a step.
async fn check(
    service: &BookingService,
    event_id: Uuid,
    model: &Model,
    (seats, (available, held, sold)): &Observed,
) -> Result<(), String> {
    let audit = service
        .store()
        .audit(event_id, service.now())
        .await
        .unwrap()
        .unwrap();
    if !audit.is_sound() {
        return Err(format!("unsound audit {audit:?}"));
    }
    let sold_seats: BTreeSet<&str> = seats
        .iter()
        .filter(|(_, state)| state == "reserved")
        .map(|(id, _)| id.as_str())
        .collect();
    let model_sold: BTreeSet<&str> = model
        .orders
        .values()
        .filter(|(_, confirmed)| *confirmed)
        .flat_map(|(seats, _)| seats.iter().map(String::as_str))
        .collect();
    if sold_seats != model_sold {
        return Err(format!(
            "sold {sold_seats:?}, the model's orders {model_sold:?}"
        ));
    }
    let held_seats = seats.iter().filter(|(_, s)| s == "held").count();
    if available + held + sold != SEATS as i64
        || *sold != sold_seats.len() as i64
        || *held != held_seats as i64
    {
        return Err(format!(
            "figures {available}/{held}/{sold} disagree with the seat map {seats:?}"
        ));
    }
    let now = service.now();
    for buyer in &model.buyers {
        if let Some((hold, _)) = &buyer.hold {
            let stored = service.store().hold(hold.id).await.unwrap().unwrap();
            if stored.status == HoldStatus::Active && stored.expires_at <= now {
                // Only the expiry task's next run may leave it; the steps run it on Advance.
                continue;
            }
            if stored.status == HoldStatus::Purchased && !model.by_hold.contains_key(&hold.id) {
                return Err(format!(
                    "hold {} purchased without the model's order",
                    hold.id
                ));
            }
        }
    }
    Ok(())
}

/// Random lifecycles, `cases` of them, on one store: each sequence on an event of its own.
async fn lifecycle_follows_the_model(subject: Subject, cases: u32) {
    let (store, _) = subject;
    let clock = ManualClock::new(evently_bus::envelope::time_from_ms(NOW));
    let shared: SharedClock = Arc::new(clock.clone());
    let config = BookingConfig {
        hold_ttl_seconds: 60,
        max_extend_seconds: 60,
        max_hold_lifetime_seconds: 300,
        max_seats_per_order: 6,
        max_tickets_per_user: 6,
        waitlist_offer_seconds: 30,
        ..BookingConfig::default()
    };
    let service = BookingService::new(store, shared, config);
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&proptest::collection::vec(op(), 1..24), |ops| {
            handle.block_on(run_sequence(&service, &clock, ops))
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    });
}

/// A thousand random lifecycles.
async fn a_thousand_random_lifecycles_keep_every_invariant(subject: Subject) {
    lifecycle_follows_the_model(subject, 1000).await;
}

evently_testkit::conformance_suite!(
    suite: crate::lifecycle,
    sqlite: crate::support::sqlite_store,
    postgres: crate::support::postgres_store,
    tests: [a_thousand_random_lifecycles_keep_every_invariant]
);
