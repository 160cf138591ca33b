//! What every area of the suite shares: the store constructors the conformance macro calls
//! (SQLite in a temporary directory, PostgreSQL in a fresh schema), the fixed clock and policy,
//! fixtures that build inventories as the events service's domain events would, and the
//! [`refused!`] assertion.
use evently_booking::domain::{
    Hold, HoldId, IntentStatus, Order, OrderId, PaymentIntent, PaymentIntentId, Policy, Selection,
    sha256_hex,
};
use evently_booking::error::BookingError;
use evently_booking::store::{
    BookingStore, Confirmation, IdempotencyKey, IdempotencyStart, NewHold, NewIntent, Payment,
    Purchase, SqlBookingStore,
};
use evently_bus::catalog::{
    Availability, EventSnapshot, InventoryChange, SeatLayout, SeatRow, SeatSection,
};
use evently_bus::{DomainEvent, Envelope, Outbox};
use evently_core::config::DatabaseConfig;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// A store under test and its outbox.
pub type Subject = (Arc<dyn BookingStore>, Arc<dyn Outbox>);

/// A SQLite store in `dir`, with its outbox.
pub async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("booking.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    let store = SqlBookingStore::sqlite(db).await.unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

/// A PostgreSQL store in `schema` of the database at `url`, with its outbox.
pub async fn postgres_store(url: String, schema: String) -> Subject {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    let store = SqlBookingStore::postgres(pool).await.unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const DAY: i64 = 86_400_000;
pub const NOW: i64 = 1_900_000_000_000;
pub const HOLD_TTL: i64 = 10 * MINUTE;
pub const LOCK: i64 = 30 * SECOND;
pub const KEY_TTL: i64 = DAY;
pub const POLICY: Policy = Policy {
    max_tickets_per_user: 6,
    offer_ttl_ms: 5 * MINUTE,
    limit_purchases: false,
};
pub const SECRET: &str = "pi_conformance_secret";
pub const ROUTE: &str = "POST /api/orders/purchase";
pub const CHECKOUT_ROUTE: &str = "POST /api/orders/checkout";

/// Passes when `$result` is an `Err` matching `$pattern`, and shows what it was otherwise.
macro_rules! refused {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}
pub(crate) use refused;

pub fn at(ms: i64) -> time::OffsetDateTime {
    evently_bus::envelope::time_from_ms(ms)
}

/// A layout of `(section, [(row, seats)])`.
pub fn layout(sections: &[(&str, &[(&str, i64)])]) -> SeatLayout {
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
pub fn snapshot(event_id: Uuid, layout: Option<SeatLayout>, total_seats: i64) -> EventSnapshot {
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
        time_zone: None,
    }
}

/// Applies `event` in a new envelope.
pub async fn publish(store: &Arc<dyn BookingStore>, event: DomainEvent, now: i64) -> bool {
    let envelope = event.clone().into_envelope(1, at(now));
    store
        .apply_catalog(&envelope, &event, now, POLICY)
        .await
        .unwrap()
}

/// A reserved-seat event on sale.
pub async fn reserved_event(
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
pub async fn general_event(store: &Arc<dyn BookingStore>, capacity: i64) -> Uuid {
    let event_id = Uuid::now_v7();
    let created = snapshot(event_id, None, capacity);
    assert!(publish(store, DomainEvent::EventCreated(created), NOW).await);
    event_id
}

pub async fn hold_seats(
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

pub async fn hold_best(
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
pub async fn intent(store: &Arc<dyn BookingStore>, hold: &Hold, now: i64) -> PaymentIntent {
    let new = NewIntent {
        intent_id: PaymentIntentId::new(),
        user_id: hold.user_id,
        hold_id: hold.id,
        secret_hash: sha256_hex(SECRET.as_bytes()),
    };
    store.create_intent(&new, now).await.unwrap().intent
}

/// A succeeded payment intent for `hold`.
pub async fn paid(store: &Arc<dyn BookingStore>, hold: &Hold, now: i64) -> PaymentIntent {
    let created = intent(store, hold, now).await;
    let confirmed = store
        .confirm_intent(created.id, hold.user_id, SECRET, Confirmation::Succeed, now)
        .await
        .unwrap()
        .intent;
    assert_eq!(confirmed.status, IntentStatus::Succeeded);
    confirmed
}

/// The status of an intent, read through a confirmation that fails (which changes nothing):
/// the trait has no getter for intents.
pub async fn intent_status(
    store: &Arc<dyn BookingStore>,
    intent: &PaymentIntent,
    now: i64,
) -> String {
    match store
        .confirm_intent(intent.id, intent.user_id, SECRET, Confirmation::Fail, now)
        .await
    {
        Ok(found) => found.intent.status.as_str().to_owned(),
        Err(BookingError::IntentNotConfirmable(status)) => status,
        Err(BookingError::PaymentFailed) => "requires_confirmation".into(),
        Err(e) => panic!("reading intent {}: {e:?}", intent.id),
    }
}

pub fn key(user_id: Uuid, key: &str) -> IdempotencyKey {
    IdempotencyKey {
        user_id,
        route: ROUTE.into(),
        key: key.into(),
    }
}

/// The purchase of `hold` as its buyer names it, paid by `intent_id`, under key `k`.
pub fn purchase_of(hold: &Hold, intent_id: PaymentIntentId, k: &str) -> Purchase {
    Purchase {
        order_id: OrderId::new(),
        user_id: hold.user_id,
        event_id: hold.event_id,
        hold_id: hold.id,
        seat_ids: hold.seat_ids.clone(),
        intent_id,
        payment: Payment::Confirmed,
        key: key(hold.user_id, k),
    }
}

/// The checkout of `hold` as its buyer names it, paid with `card`, under key `k` (begun).
pub async fn checkout_of(
    store: &Arc<dyn BookingStore>,
    hold: &Hold,
    card: Confirmation,
    k: &str,
    now: i64,
) -> Purchase {
    let input = Purchase {
        payment: Payment::AtCheckout(card),
        key: IdempotencyKey {
            route: CHECKOUT_ROUTE.into(),
            ..key(hold.user_id, k)
        },
        ..purchase_of(hold, PaymentIntentId::new(), k)
    };
    let started = store
        .idempotency_begin(&input.key, "fingerprint", now, LOCK, KEY_TTL)
        .await
        .unwrap();
    assert_eq!(started, IdempotencyStart::Started);
    input
}

/// Pays for and buys `hold` under a fresh idempotency key.
pub async fn buy(store: &Arc<dyn BookingStore>, hold: &Hold, now: i64) -> Order {
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
pub async fn counters(store: &Arc<dyn BookingStore>, event_id: Uuid) -> (i64, i64, i64) {
    let inv = store.inventory(event_id).await.unwrap().unwrap();
    (inv.held, inv.sold, inv.version)
}

/// The seat ids of the seat map at `now` whose state is `state`, in layout order.
pub async fn seats_in(
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
pub async fn seat_ids(store: &Arc<dyn BookingStore>, event_id: Uuid) -> Vec<String> {
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
pub async fn last_seq(outbox: &Arc<dyn Outbox>) -> i64 {
    outbox
        .read_after(0, 1000)
        .await
        .unwrap()
        .last()
        .map_or(0, |r| r.seq)
}

/// The outbox rows after `seq`.
pub async fn since(outbox: &Arc<dyn Outbox>, seq: i64) -> Vec<Envelope> {
    outbox
        .read_after(seq, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.envelope)
        .collect()
}

pub fn types(rows: &[Envelope]) -> Vec<&str> {
    rows.iter().map(|e| e.event_type.as_str()).collect()
}

pub fn change(row: &Envelope) -> InventoryChange {
    serde_json::from_value(row.payload.clone()).unwrap()
}

pub fn figures(capacity: i64, available: i64, held: i64, sold: i64, version: i64) -> Availability {
    Availability {
        capacity,
        available,
        held,
        sold,
        version,
    }
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
