//! The behaviour every [`BookingStore`] backend must show. Each function is one test; the
//! `evently_testkit::conformance_suite!` macro runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database. The store
//! is given with its outbox, which every inventory change must reach in the same transaction.
//!
//! Time is whatever epoch milliseconds a case passes as `now`: expiry is tested by passing a
//! later `now`, never by waiting. Inventories are created as the events service's domain
//! events would create them, through [`BookingStore::apply_catalog`].

#![expect(clippy::unwrap_used, reason = "conformance checks fail loudly")]

use evently_bus::catalog::{
    Availability, EventSnapshot, InventoryChange, SeatLayout, SeatRow, SeatSection,
};
use evently_bus::{DomainEvent, Envelope, Outbox};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

use super::{
    BookingStore, Confirmation, IdempotencyKey, IdempotencyStart, NewHold, NewIntent, Purchase,
};
use crate::domain::{
    Hold, HoldId, HoldKind, HoldStatus, IntentStatus, Order, OrderId, OrderStatus, PaymentIntent,
    PaymentIntentId, Policy, Selection, TicketStatus, WaitlistStatus, rfc3339, sha256_hex,
};
use crate::error::BookingError;

/// A store under test and its outbox.
pub type Subject = (Arc<dyn BookingStore>, Arc<dyn Outbox>);

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const DAY: i64 = 86_400_000;
const NOW: i64 = 1_900_000_000_000;
const HOLD_TTL: i64 = 10 * MINUTE;
const LOCK: i64 = 30 * SECOND;
const KEY_TTL: i64 = DAY;
const POLICY: Policy = Policy {
    max_tickets_per_user: 6,
    offer_ttl_ms: 5 * MINUTE,
};
const SECRET: &str = "pi_conformance_secret";
const ROUTE: &str = "POST /api/orders/purchase";

/// Passes when `$result` is an `Err` matching `$pattern`, and shows what it was otherwise.
macro_rules! refused {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}

fn at(ms: i64) -> time::OffsetDateTime {
    evently_bus::envelope::time_from_ms(ms)
}

/// A layout of `(section, [(row, seats)])`.
fn layout(sections: &[(&str, &[(&str, i64)])]) -> SeatLayout {
    SeatLayout {
        sections: sections
            .iter()
            .map(|(name, rows)| SeatSection {
                name: (*name).to_owned(),
                rows: rows
                    .iter()
                    .map(|(label, seats)| SeatRow {
                        label: (*label).to_owned(),
                        seats: *seats,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// An event on sale since a day before `NOW`, a month ahead: base price 3000, section A
/// 5000, in EUR.
fn snapshot(event_id: Uuid, layout: Option<SeatLayout>, total_seats: i64) -> EventSnapshot {
    EventSnapshot {
        event_id,
        organizer_id: Uuid::from_u128(0x0e7e_2701),
        event_name: "Conformance night".into(),
        description: None,
        event_date: at(NOW + 30 * DAY),
        venue_id: None,
        venue_name: "Hall".into(),
        city: Some("Oslo".into()),
        event_type: Some("concert".into()),
        tags: Vec::new(),
        status: "ON_SALE".into(),
        total_seats,
        sale_start_time: at(NOW - DAY),
        sale_end_time: None,
        base_price: 3000,
        currency: "EUR".into(),
        section_prices: BTreeMap::from([("A".to_owned(), 5000)]),
        layout,
    }
}

/// Applies `event` in a new envelope.
async fn publish(store: &Arc<dyn BookingStore>, event: DomainEvent, now: i64) -> bool {
    let envelope = event.clone().into_envelope(1, at(now));
    store
        .apply_catalog(&envelope, &event, now, POLICY)
        .await
        .unwrap()
}

/// A reserved-seat event on sale.
async fn reserved_event(
    store: &Arc<dyn BookingStore>,
    sections: &[(&str, &[(&str, i64)])],
) -> Uuid {
    let event_id = Uuid::now_v7();
    let seating = layout(sections);
    let total = seating
        .sections
        .iter()
        .flat_map(|s| &s.rows)
        .map(|r| r.seats)
        .sum();
    let created = snapshot(event_id, Some(seating), total);
    assert!(publish(store, DomainEvent::EventCreated(created), NOW).await);
    event_id
}

/// A general-admission event on sale.
async fn general_event(store: &Arc<dyn BookingStore>, capacity: i64) -> Uuid {
    let event_id = Uuid::now_v7();
    let created = snapshot(event_id, None, capacity);
    assert!(publish(store, DomainEvent::EventCreated(created), NOW).await);
    event_id
}

async fn hold_seats(
    store: &Arc<dyn BookingStore>,
    event_id: Uuid,
    user_id: Uuid,
    seats: &[&str],
    now: i64,
) -> Result<Hold, BookingError> {
    let new = NewHold {
        hold_id: HoldId::new(),
        event_id,
        user_id,
        selection: Selection::Seats(seats.iter().map(|s| (*s).to_owned()).collect()),
        ttl_ms: HOLD_TTL,
    };
    store.create_hold(&new, now, POLICY).await
}

async fn hold_best(
    store: &Arc<dyn BookingStore>,
    event_id: Uuid,
    user_id: Uuid,
    quantity: i64,
    section: Option<&str>,
    now: i64,
) -> Result<Hold, BookingError> {
    let new = NewHold {
        hold_id: HoldId::new(),
        event_id,
        user_id,
        selection: Selection::Best {
            quantity,
            section: section.map(str::to_owned),
        },
        ttl_ms: HOLD_TTL,
    };
    store.create_hold(&new, now, POLICY).await
}

/// A new payment intent for `hold`, whose client secret is [`SECRET`].
async fn intent(store: &Arc<dyn BookingStore>, hold: &Hold, now: i64) -> PaymentIntent {
    let new = NewIntent {
        intent_id: PaymentIntentId::new(),
        user_id: hold.user_id,
        hold_id: hold.id,
        secret_hash: sha256_hex(SECRET.as_bytes()),
    };
    store.create_intent(&new, now).await.unwrap()
}

/// A succeeded payment intent for `hold`.
async fn paid(store: &Arc<dyn BookingStore>, hold: &Hold, now: i64) -> PaymentIntent {
    let created = intent(store, hold, now).await;
    let confirmed = store
        .confirm_intent(created.id, hold.user_id, SECRET, Confirmation::Succeed, now)
        .await
        .unwrap();
    assert_eq!(confirmed.status, IntentStatus::Succeeded);
    confirmed
}

/// The status of an intent, read through a confirmation that fails (which changes nothing):
/// the trait has no getter for intents.
async fn intent_status(store: &Arc<dyn BookingStore>, intent: &PaymentIntent, now: i64) -> String {
    match store
        .confirm_intent(intent.id, intent.user_id, SECRET, Confirmation::Fail, now)
        .await
    {
        Ok(found) => found.status.as_str().to_owned(),
        Err(BookingError::IntentNotConfirmable(status)) => status,
        Err(BookingError::PaymentFailed) => "requires_confirmation".into(),
        Err(e) => panic!("reading intent {}: {e:?}", intent.id),
    }
}

fn key(user_id: Uuid, key: &str) -> IdempotencyKey {
    IdempotencyKey {
        user_id,
        route: ROUTE.into(),
        key: key.into(),
    }
}

/// The purchase of `hold` as its buyer names it, paid by `intent_id`, under key `k`.
fn purchase_of(hold: &Hold, intent_id: PaymentIntentId, k: &str) -> Purchase {
    Purchase {
        order_id: OrderId::new(),
        user_id: hold.user_id,
        event_id: hold.event_id,
        hold_id: hold.id,
        seat_ids: hold.seat_ids.clone(),
        intent_id,
        key: key(hold.user_id, k),
    }
}

/// Pays for and buys `hold` under a fresh idempotency key.
async fn buy(store: &Arc<dyn BookingStore>, hold: &Hold, now: i64) -> Order {
    let payment = paid(store, hold, now).await;
    let input = purchase_of(hold, payment.id, &Uuid::now_v7().to_string());
    let started = store
        .idempotency_begin(&input.key, "fingerprint", now, LOCK, KEY_TTL)
        .await
        .unwrap();
    assert_eq!(started, IdempotencyStart::Started);
    store.purchase(&input, now, POLICY).await.unwrap().0
}

/// `(held, sold, version)` of an event's inventory.
async fn counters(store: &Arc<dyn BookingStore>, event_id: Uuid) -> (i64, i64, i64) {
    let inv = store.inventory(event_id).await.unwrap().unwrap();
    (inv.held, inv.sold, inv.version)
}

/// The seat ids of the seat map at `now` whose state is `state`, in layout order.
async fn seats_in(
    store: &Arc<dyn BookingStore>,
    event_id: Uuid,
    now: i64,
    state: &str,
) -> Vec<String> {
    store
        .seat_map(event_id, now)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .filter(|s| s.state == state)
        .map(|s| s.seat_id)
        .collect()
}

/// Every seat id of the seat map, in layout order.
async fn seat_ids(store: &Arc<dyn BookingStore>, event_id: Uuid) -> Vec<String> {
    store
        .seat_map(event_id, NOW)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|s| s.seat_id)
        .collect()
}

/// The `seq` of the outbox's last row (0 when empty).
async fn last_seq(outbox: &Arc<dyn Outbox>) -> i64 {
    outbox
        .read_after(0, 1000)
        .await
        .unwrap()
        .last()
        .map_or(0, |r| r.seq)
}

/// The outbox rows after `seq`.
async fn since(outbox: &Arc<dyn Outbox>, seq: i64) -> Vec<Envelope> {
    outbox
        .read_after(seq, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.envelope)
        .collect()
}

fn types(rows: &[Envelope]) -> Vec<&str> {
    rows.iter().map(|e| e.event_type.as_str()).collect()
}

fn change(row: &Envelope) -> InventoryChange {
    serde_json::from_value(row.payload.clone()).unwrap()
}

fn figures(capacity: i64, available: i64, held: i64, sold: i64, version: i64) -> Availability {
    Availability {
        capacity,
        available,
        held,
        sold,
        version,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `EventCreated` builds an inventory once per envelope and per event: the layout's seats in
/// order, priced by section, or numbered general-admission places.
pub async fn inventory_is_created_once_with_its_seats_in_layout_order((store, _): Subject) {
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

/// A hold takes every seat asked for or none; counters and outbox rows (with the sell-out)
/// follow each hold exactly.
pub async fn hold_is_all_or_nothing_and_counted((store, outbox): Subject) {
    let event_id = reserved_event(&store, &[("A", &[("1", 3)])]).await;
    let (alice, bob, carol) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mark = last_seq(&outbox).await;
    let bobs = hold_seats(&store, event_id, bob, &["A-1-2"], NOW)
        .await
        .unwrap();

    let conflict = hold_seats(&store, event_id, alice, &["A-1-1", "A-1-2"], NOW + 1).await;
    let unknown = hold_seats(&store, event_id, alice, &["A-1-1", "Z-9-9"], NOW + 2).await;

    refused!(conflict, BookingError::SeatsUnavailable(seats) if seats == ["A-1-2"]);
    refused!(unknown, BookingError::Invalid(_));
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
pub async fn best_available_takes_adjacent_seats_in_one_row((store, _): Subject) {
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
pub async fn a_new_hold_replaces_the_buyers_previous_one((store, outbox): Subject) {
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
pub async fn expired_hold_gives_its_seats_back((store, outbox): Subject) {
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
    assert_eq!(types(&rows), ["SeatsReleased"]);
    let released = change(&rows[0]);
    assert_eq!(released.reason.as_deref(), Some("expired"));
    assert_eq!(released.hold_id, Some(alices.id.0));
    assert_eq!(released.seat_ids, ["A-1-1", "A-1-2"]);
    assert_eq!(released.availability, figures(4, 3, 1, 0, 3));
    assert_eq!(counters(&store, event_id).await, (1, 0, 3));
    assert_eq!(store.next_expiry().await.unwrap(), Some(NOW + 2 + HOLD_TTL));
    assert_eq!(store.expire_due(due, POLICY).await.unwrap(), 0);
    assert_eq!(since(&outbox, mark).await.len(), 1);
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
pub async fn every_change_sweeps_the_holds_expired_before_it((store, _): Subject) {
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
pub async fn refresh_extends_a_live_hold_up_to_its_lifetime((store, _): Subject) {
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

/// An intent charges the hold's seats at their prices; confirmation checks the secret and
/// follows the simulated processor's outcome.
pub async fn payment_intents_charge_the_hold_and_confirm_once((store, _): Subject) {
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
    // A paid intent is not cancelled by a newer one.
    let fourth = intent(&store, &hold, NOW + 5).await;
    assert_eq!(intent_status(&store, &third, NOW + 6).await, "succeeded");
    assert_eq!(intent_status(&store, &first, NOW + 6).await, "declined");
    assert_eq!(
        intent_status(&store, &fourth, NOW + 6).await,
        "requires_confirmation"
    );

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
                fourth.id,
                alice,
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
pub async fn idempotency_keys_replay_answers_and_guard_running_requests((store, _): Subject) {
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

/// A purchase needs the buyer's live hold, its paid intent and its exact seats; it sells the
/// seats once, with tickets and an `OrderPlaced` row.
pub async fn purchase_needs_a_live_paid_hold_and_sells_it_once((store, outbox): Subject) {
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
        BookingError::Invalid(_)
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
            BookingError::Invalid(p) if p.body().to_string().contains("/eventId")
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
        BookingError::Invalid(_)
    );
    refused!(
        attempt(Purchase {
            seat_ids: strings(&["A-1-1", "A-1-2", "A-1-3"]),
            ..input.clone()
        })
        .await,
        BookingError::Invalid(_)
    );
    refused!(
        attempt(Purchase {
            event_id: Uuid::now_v7(),
            ..input.clone()
        })
        .await,
        BookingError::Invalid(_)
    );
    assert_eq!(
        intent_status(&store, &old_payment, NOW + 3).await,
        "refunded"
    );

    let confirmed = store
        .confirm_intent(unpaid.id, alice, SECRET, Confirmation::Succeed, NOW + 4)
        .await
        .unwrap();
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

/// Cancelling an order voids its tickets, refunds it and puts its seats back on sale.
pub async fn cancelled_order_returns_its_seats_and_refunds((store, outbox): Subject) {
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

/// Sold-out events keep a waitlist; freed seats are offered to its head in the same
/// transaction, and a lapsed or left offer passes to the next.
pub async fn waitlist_is_offered_freed_seats_in_order((store, outbox): Subject) {
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
    store
        .leave_waitlist(event_id, d, t2 + 1, POLICY)
        .await
        .unwrap();

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
}

/// Cancelling an event refunds every order, ends every hold and closes the waitlist;
/// deleting it hides it.
pub async fn cancelled_event_refunds_every_order_and_closes_the_waitlist((store, outbox): Subject) {
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
    assert_eq!(kinds, ["OrderCancelled", "OrderCancelled", "SeatsReleased"]);
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

/// A general-admission event's capacity follows `EventUpdated`: new places are added,
/// and only unsold, unheld places are removed.
pub async fn general_admission_capacity_follows_event_updates((store, outbox): Subject) {
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

/// A refused change rolls back whole: no seat, order, hold, key or outbox row changes.
pub async fn refused_changes_leave_nothing_behind((store, outbox): Subject) {
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
        BookingError::Invalid(_)
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
pub async fn concurrent_buyers_never_share_a_seat((store, outbox): Subject) {
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
pub async fn racing_holds_and_purchases_keep_every_rule((store, _): Subject) {
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
