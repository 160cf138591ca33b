//! The booking store's body, written once for both engines ([`evently_core::sql`]): every
//! inventory transaction, the reads, and the batches of PostgreSQL (see the module docs of
//! [`super`] for the concurrency design). What truly differs between the engines is in
//! `sqlite.rs` and `postgres.rs`: opening the store, and how a transaction's row writes are
//! sent ([`send_writes`], [`write_alone`]).

use std::sync::Arc;

use evently_core::sql::{Db, On, Pool, Row, Sql, Tx, query};

/// Booking's tables on either engine: in one SQLite file, or in the `booking` schema (any
/// schema on the pool's `search_path`) of a PostgreSQL database. Opened by
/// [`SqlBookingStore::sqlite`] or [`SqlBookingStore::postgres`].
#[derive(Debug, Clone)]
pub struct SqlBookingStore {
    pub(super) db: Db,
    /// The in-process queue per event in front of the database's lock.
    pub(super) gates: Arc<super::EventGates>,
    /// Holds and purchases decided together per event (PostgreSQL, where a statement is a
    /// round trip); `None` where each runs alone.
    pub(super) batches: Option<Arc<super::Batches>>,
}

impl SqlBookingStore {
    /// The booking outbox on this store's connections, so the relay's and the consumers'
    /// writes queue with the store's own.
    #[must_use]
    pub fn outbox(&self) -> evently_bus::outbox::SqlOutbox {
        evently_bus::outbox::SqlOutbox::new(self.db.clone())
    }

    /// Refreshes the planner's statistics of the tables the audit counts, where the engine
    /// keeps them.
    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        match self.db.writer() {
            Pool::Postgres(pool) => super::postgres::analyze(pool).await,
            Pool::Sqlite(_) => Ok(()),
        }
    }
}

/// Sends `writes` and appends `envelopes` inside `tx`, the way its engine does it best;
/// returns the rows each write changed.
async fn send_writes(
    tx: &mut Tx,
    writes: &Writes,
    envelopes: &[Envelope],
) -> Result<Vec<u64>, StoreError> {
    match tx {
        Tx::Sqlite(tx) => super::sqlite::send_writes(tx, writes, envelopes).await,
        Tx::Postgres(tx) => super::postgres::send_writes(tx, writes, envelopes).await,
    }
}

/// Sends `writes` on their own (one atomic unit).
async fn write_alone(pool: &Pool, writes: &Writes) -> Result<Vec<u64>, StoreError> {
    match pool {
        Pool::Sqlite(pool) => super::sqlite::write_alone(pool, writes).await,
        Pool::Postgres(pool) => super::postgres::write_alone(pool, writes).await,
    }
}

use evently_bus::catalog::{EventSnapshot, InventoryChange};
use evently_bus::envelope::time_to_ms as to_ms;
use evently_bus::{DomainEvent, Envelope};
use evently_core::db::StoreError;
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::domain::{
    Audit, AvailabilityView, GA_SECTION, Hold, HoldKind, Inventory, Order, PaymentIntent, Policy,
    SeatView, Selection, Ticket, WaitlistEntry, constant_time_eq, ga_seat_id, hold_is_live,
    random_token, seat_price, seat_state, section_of, sha256_hex,
};
use crate::error::BookingError;
use crate::store::{
    Arg, BookingStore, Confirmation, HOLD_INSERTED, HOLD_PURCHASED, IdempotencyKey,
    IdempotencyStart, Job, KEY_COMPLETED, NewHold, NewIntent, ORDER_INSERTED, Overlay,
    PurchaseInput, SEAT_HELD, SEATS_SOLD, TICKET_INSERTED, Writes, corrupt, count, is_refusal,
    json, placeholders, seat_list, wanted_seats,
};

const INVENTORY_READ: &str = "SELECT event_id, organizer_id, status, deleted, event_date, \
    sale_start, sale_end, currency, base_price, section_prices, reserved, capacity, held, sold, \
    version, sweep_at FROM inventories WHERE event_id = $1";
const HOLD_COLUMNS: &str = "id, event_id, user_id, seat_ids, kind, status, created_at, expires_at";
const ORDER_COLUMNS: &str = "id, event_id, user_id, hold_id, payment_intent_id, \
    seat_ids, amount, currency, status, refunded_amount, cancel_reason, created_at";

fn inventory_from(row: &Row) -> Result<Inventory, StoreError> {
    let prices: String = row.get("section_prices")?;
    Ok(Inventory {
        event_id: row.get("event_id")?,
        organizer_id: row.get("organizer_id")?,
        status: row.get("status")?,
        deleted: row.get::<i64>("deleted")? != 0,
        event_date: row.get("event_date")?,
        sale_start: row.get("sale_start")?,
        sale_end: row.get("sale_end")?,
        currency: row.get("currency")?,
        base_price: row.get("base_price")?,
        section_prices: serde_json::from_str(&prices).map_err(|e| corrupt("section_prices", e))?,
        reserved: row.get::<i64>("reserved")? != 0,
        capacity: row.get("capacity")?,
        held: row.get("held")?,
        sold: row.get("sold")?,
        version: row.get("version")?,
        sweep_at: row.get("sweep_at")?,
    })
}

fn hold_from(row: &Row) -> Result<Hold, StoreError> {
    let seats: String = row.get("seat_ids")?;
    Ok(Hold {
        id: row.get("id")?,
        event_id: row.get("event_id")?,
        user_id: row.get("user_id")?,
        seat_ids: seat_list(&seats)?,
        kind: row.get("kind")?,
        status: row.get("status")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
    })
}

fn intent_from(row: &Row) -> Result<PaymentIntent, StoreError> {
    intent_named(
        row,
        [
            "id",
            "hold_id",
            "event_id",
            "user_id",
            "amount",
            "currency",
            "status",
            "secret_hash",
        ],
    )
}

/// The payment intent of a purchase's hold-and-intent row, if there was one.
fn joined_intent_from(row: &Row) -> Result<Option<PaymentIntent>, StoreError> {
    if row.get::<Option<Uuid>>("intent_id")?.is_none() {
        return Ok(None);
    }
    intent_named(
        row,
        [
            "intent_id",
            "intent_hold_id",
            "intent_event_id",
            "intent_user_id",
            "intent_amount",
            "intent_currency",
            "intent_status",
            "intent_secret_hash",
        ],
    )
    .map(Some)
}

/// A payment intent from the columns `names`: id, hold, event, user, amount, currency,
/// status and secret hash.
fn intent_named(row: &Row, names: [&str; 8]) -> Result<PaymentIntent, StoreError> {
    let [
        id,
        hold_id,
        event_id,
        user_id,
        amount,
        currency,
        status,
        secret_hash,
    ] = names;
    Ok(PaymentIntent {
        id: row.get(id)?,
        hold_id: row.get(hold_id)?,
        event_id: row.get(event_id)?,
        user_id: row.get(user_id)?,
        amount: row.get(amount)?,
        currency: row.get(currency)?,
        status: row.get(status)?,
        secret_hash: row.get(secret_hash)?,
    })
}

fn order_from(row: &Row, tickets: Vec<Ticket>) -> Result<Order, StoreError> {
    let seats: String = row.get("seat_ids")?;
    Ok(Order {
        order_id: row.get("id")?,
        event_id: row.get("event_id")?,
        user_id: row.get("user_id")?,
        hold_id: row.get("hold_id")?,
        payment_intent_id: row.get("payment_intent_id")?,
        seat_ids: seat_list(&seats)?,
        amount: row.get("amount")?,
        currency: row.get("currency")?,
        status: row.get("status")?,
        refunded_amount: row.get("refunded_amount")?,
        cancel_reason: row.get("cancel_reason")?,
        created_at: evently_bus::envelope::time_from_ms(row.get("created_at")?),
        tickets,
    })
}

fn ticket_from(row: &Row) -> Result<Ticket, StoreError> {
    Ok(Ticket {
        ticket_id: row.get("id")?,
        seat_id: row.get("seat_id")?,
        code: row.get("code")?,
        status: row.get("status")?,
    })
}

/// The changes of one transaction: the envelopes to append, whether seats were freed
/// (waiting buyers may be offered them), and the counters before the transaction.
struct Changes {
    envelopes: Vec<Envelope>,
    freed: bool,
    was_available: i64,
    was_sweep_at: i64,
}

impl Changes {
    fn new(inv: &Inventory) -> Self {
        Self {
            envelopes: Vec::new(),
            freed: false,
            was_available: inv.available(),
            was_sweep_at: inv.sweep_at,
        }
    }

    /// Records one inventory change (the caller already moved the counters).
    fn push(
        &mut self,
        inv: &mut Inventory,
        now: i64,
        make: fn(InventoryChange) -> DomainEvent,
        mut change: InventoryChange,
    ) {
        inv.version += 1;
        change.availability = inv.availability();
        self.envelopes.push(
            make(change).into_envelope(inv.version, evently_bus::envelope::time_from_ms(now)),
        );
    }
}

fn change(inv: &Inventory) -> InventoryChange {
    InventoryChange {
        event_id: inv.event_id,
        user_id: None,
        hold_id: None,
        order_id: None,
        seat_ids: Vec::new(),
        amount: None,
        currency: None,
        reason: None,
        availability: inv.availability(),
    }
}

/// An event's inventory row.
async fn fetch_inventory<'a>(
    on: impl Into<On<'a>>,
    event_id: Uuid,
) -> Result<Option<Inventory>, StoreError> {
    let row = query(INVENTORY_READ)
        .bind(event_id)
        .fetch_optional(on)
        .await?;
    row.as_ref().map(inventory_from).transpose()
}

/// An event's inventory row, locked for the transaction (see the module docs).
async fn lock_inventory(tx: &mut Tx, event_id: Uuid) -> Result<Option<Inventory>, StoreError> {
    let row = query(tx.for_update(INVENTORY_READ, ""))
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(inventory_from).transpose()
}

async fn fetch_hold<'a>(on: impl Into<On<'a>>, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1");
    let row = query(Sql::assert_safe(sql))
        .bind(hold_id)
        .fetch_optional(on)
        .await?;
    row.as_ref().map(hold_from).transpose()
}

async fn hold_in(tx: &mut Tx, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
    fetch_hold(&mut *tx, hold_id).await
}

/// Begins an inventory transaction on `event_id`: locks its row and sweeps its
/// expired holds (whatever `sweep_at` says when `force`, as the expiry task does once
/// it has seen a hold due). `None` when booking does not know the event.
async fn open_event(
    pool: &Pool,
    event_id: Uuid,
    now: i64,
    force: bool,
) -> Result<Option<(Tx, Inventory, Changes, usize)>, StoreError> {
    let mut tx = pool.begin().await?;
    let Some(mut inv) = lock_inventory(&mut tx, event_id).await? else {
        return Ok(None);
    };
    let mut changes = Changes::new(&inv);
    if force {
        inv.sweep_at = i64::MIN;
    }
    let swept = sweep(&mut tx, &mut inv, &mut changes, now).await?;
    Ok(Some((tx, inv, changes, swept)))
}

/// Ends an active hold: its seats go back on sale, its unconfirmed or paid intents
/// are cancelled or refunded, and a waitlist offer lapses.
async fn end_hold(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    hold: &Hold,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    let freed =
        query("UPDATE seats SET state = 0, hold_id = NULL WHERE hold_id = $1 AND state = 1")
            .bind(hold.id)
            .execute(&mut *tx)
            .await?;
    query("UPDATE holds SET status = $2, ended_at = $3 WHERE id = $1")
        .bind(hold.id)
        .bind(status)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    query(
        "UPDATE payment_intents SET status = CASE WHEN status = 'succeeded' \
         THEN 'refunded' ELSE 'cancelled' END, updated_at = $2 \
         WHERE hold_id = $1 AND status IN ('requires_confirmation', 'succeeded')",
    )
    .bind(hold.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if hold.kind == HoldKind::Waitlist.as_str() {
        query(
            "UPDATE waitlist SET status = 'lapsed', updated_at = $2 \
             WHERE hold_id = $1 AND status = 'offered'",
        )
        .bind(hold.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let freed = i64::try_from(freed).unwrap_or(0);
    inv.held -= freed;
    changes.freed = true;
    changes.push(
        inv,
        now,
        DomainEvent::SeatsReleased,
        InventoryChange {
            user_id: Some(hold.user_id),
            hold_id: Some(hold.id),
            seat_ids: hold.seat_ids.clone(),
            reason: Some(status.to_owned()),
            ..change(inv)
        },
    );
    Ok(())
}

/// Ends the event's holds that expired at `now`, when a sweep is due.
async fn sweep(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    now: i64,
) -> Result<usize, StoreError> {
    if inv.sweep_at > now {
        return Ok(0);
    }
    let sql = format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = $1 AND status = 'active' \
         AND expires_at <= $2"
    );
    let rows = query(Sql::assert_safe(sql))
        .bind(inv.event_id)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
    let expired = rows.iter().map(hold_from).collect::<Result<Vec<_>, _>>()?;
    for hold in &expired {
        end_hold(tx, inv, changes, hold, "expired", now).await?;
    }
    let next: Option<i64> =
        query("SELECT MIN(expires_at) AS t FROM holds WHERE event_id = $1 AND status = 'active'")
            .bind(inv.event_id)
            .fetch_one(&mut *tx)
            .await?
            .get("t")?;
    inv.sweep_at = next.unwrap_or(i64::MAX);
    Ok(expired.len())
}

/// Available seats in layout order (id, section, row, number), at most `limit`.
async fn candidates(
    tx: &mut Tx,
    event_id: Uuid,
    section: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, String, String, i64)>, StoreError> {
    let rows = query(
        "SELECT seat_id, section, row_label, number FROM seats \
         WHERE event_id = $1 AND state = 0 AND ($2 IS NULL OR section = $2) \
         ORDER BY ord LIMIT $3",
    )
    .bind(event_id)
    .bind(section)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.get("seat_id")?,
                r.get("section")?,
                r.get("row_label")?,
                r.get("number")?,
            ))
        })
        .collect()
}

/// Sends `writes` and appends `envelopes` (see [`Writes`]), checking what each
/// write changed.
async fn flush(tx: &mut Tx, writes: &Writes, envelopes: &[Envelope]) -> Result<(), StoreError> {
    // Each statement's changed rows are checked as it is sent.
    send_writes(tx, writes, envelopes).await.map(drop)
}

/// Writes a new hold row and moves its seats and the counters; the seats (which the
/// reads before saw available under the inventory lock) and the row are written with
/// `writes`.
#[allow(clippy::too_many_arguments)]
fn insert_hold(
    writes: &mut Writes,
    inv: &mut Inventory,
    changes: &mut Changes,
    hold_id: Uuid,
    user_id: Uuid,
    seats: Vec<String>,
    kind: HoldKind,
    expires_at: i64,
    now: i64,
) -> Result<Hold, BookingError> {
    for seat in &seats {
        writes.push_row(
            &SEAT_HELD,
            vec![
                Arg::Uuid(inv.event_id),
                Arg::Uuid(hold_id),
                Arg::Text(seat.clone()),
            ],
            Some(1),
        );
    }
    writes.push_row(
        &HOLD_INSERTED,
        vec![
            Arg::Uuid(hold_id),
            Arg::Uuid(inv.event_id),
            Arg::Uuid(user_id),
            Arg::Text(json(&seats)?),
            Arg::Int(count(seats.len())),
            Arg::Text(kind.as_str().to_owned()),
            Arg::Int(now),
            Arg::Int(expires_at),
        ],
        None,
    );
    inv.held += count(seats.len());
    inv.sweep_at = inv.sweep_at.min(expires_at);
    let make = match kind {
        HoldKind::Buyer => DomainEvent::SeatsHeld,
        HoldKind::Waitlist => DomainEvent::WaitlistOffered,
    };
    changes.push(
        inv,
        now,
        make,
        InventoryChange {
            user_id: Some(user_id),
            hold_id: Some(hold_id),
            seat_ids: seats.clone(),
            reason: (kind == HoldKind::Waitlist).then(|| "waitlist-offer".to_owned()),
            ..change(inv)
        },
    );
    Ok(Hold {
        id: hold_id,
        event_id: inv.event_id,
        user_id,
        seat_ids: seats,
        kind: kind.as_str().to_owned(),
        status: "active".into(),
        created_at: now,
        expires_at,
    })
}

/// Offers freed seats to the head of the waitlist, in order, while the head's
/// quantity fits (the list is first come, first served: nobody is skipped).
async fn promote(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    now: i64,
    policy: Policy,
) -> Result<(), BookingError> {
    if inv.sale_closed(now).is_some() {
        return Ok(());
    }
    loop {
        let head = query(
            "SELECT id, user_id, quantity FROM waitlist WHERE event_id = $1 \
             AND status = 'waiting' ORDER BY seq LIMIT 1",
        )
        .bind(inv.event_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(head) = head else { return Ok(()) };
        let entry: Uuid = head.get("id")?;
        let user: Uuid = head.get("user_id")?;
        let quantity: i64 = head.get("quantity")?;
        if quantity > inv.available() {
            return Ok(());
        }
        let window = (quantity * 20).max(200);
        let found = candidates(tx, inv.event_id, None, window).await?;
        let wanted = usize::try_from(quantity).unwrap_or(usize::MAX);
        let Some(seats) = crate::domain::pick_best(&found, wanted) else {
            return Ok(());
        };
        let hold_id = Uuid::now_v7();
        let mut writes = Writes::default();
        insert_hold(
            &mut writes,
            inv,
            changes,
            hold_id,
            user,
            seats,
            HoldKind::Waitlist,
            now + policy.offer_ttl_ms,
            now,
        )?;
        writes.push(
            "UPDATE waitlist SET status = 'offered', hold_id = $2, updated_at = $3 \
             WHERE id = $1",
            vec![Arg::Uuid(entry), Arg::Uuid(hold_id), Arg::Int(now)],
            Some(1),
        );
        // The next head's seats are looked for after these are taken.
        flush(tx, &writes, &[]).await?;
    }
}

/// Finishes an inventory transaction: sends its pending `writes`, offers freed seats
/// to waiting buyers, notes a sell-out, saves the counters and appends the domain
/// events (the last of which go with the pending writes when nobody is offered seats).
async fn finish(
    tx: &mut Tx,
    inv: &mut Inventory,
    mut changes: Changes,
    now: i64,
    policy: Policy,
    mut writes: Writes,
) -> Result<(), BookingError> {
    if changes.freed {
        flush(tx, &std::mem::take(&mut writes), &[]).await?;
        promote(tx, inv, &mut changes, now, policy).await?;
    }
    if changes.envelopes.is_empty() && inv.sweep_at == changes.was_sweep_at {
        flush(tx, &writes, &[]).await?;
        return Ok(());
    }
    if changes.was_available > 0 && inv.available() == 0 {
        changes.push(inv, now, DomainEvent::SoldOut, change(inv));
    }
    writes.push(
        "UPDATE inventories SET held = $2, sold = $3, version = $4, updated_at = $5, \
         sweep_at = $6 WHERE event_id = $1",
        vec![
            Arg::Uuid(inv.event_id),
            Arg::Int(inv.held),
            Arg::Int(inv.sold),
            Arg::Int(inv.version),
            Arg::Int(now),
            Arg::Int(inv.sweep_at),
        ],
        Some(1),
    );
    flush(tx, &writes, &changes.envelopes).await?;
    Ok(())
}

/// The seats of a new inventory: the layout's, or numbered general-admission places.
fn seats_of(snapshot: &EventSnapshot) -> Vec<(String, String, String, i64)> {
    match &snapshot.layout {
        Some(layout) => {
            let mut seats = Vec::new();
            for section in &layout.sections {
                for row in &section.rows {
                    for n in 1..=row.seats {
                        seats.push((
                            format!("{}-{}-{n}", section.name, row.label),
                            section.name.clone(),
                            row.label.clone(),
                            n,
                        ));
                    }
                }
            }
            seats
        }
        None => (1..=snapshot.total_seats)
            .map(|n| (ga_seat_id(n), GA_SECTION.to_owned(), "1".to_owned(), n))
            .collect(),
    }
}

async fn insert_seats(
    tx: &mut Tx,
    event_id: Uuid,
    seats: &[(String, String, String, i64)],
    first_ord: i64,
) -> Result<(), StoreError> {
    let mut ord = first_ord;
    for chunk in seats.chunks(1000) {
        let values = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * 6 + 1, 6)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut insert = query(Sql::assert_safe(format!(
            "INSERT INTO seats (event_id, seat_id, section, row_label, number, ord) VALUES {values}"
        )));
        for (id, section, row, number) in chunk {
            ord += 1;
            insert = insert
                .bind(event_id)
                .bind(id)
                .bind(section)
                .bind(row)
                .bind(*number)
                .bind(ord);
        }
        insert.execute(&mut *tx).await?;
    }
    Ok(())
}

async fn create_inventory(
    tx: &mut Tx,
    snapshot: &EventSnapshot,
    now: i64,
) -> Result<(), StoreError> {
    let seats = seats_of(snapshot);
    let inserted = query(
        "INSERT INTO inventories (event_id, organizer_id, status, event_date, \
         sale_start, sale_end, currency, base_price, section_prices, reserved, \
         capacity, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(snapshot.event_id)
    .bind(snapshot.organizer_id)
    .bind(&snapshot.status)
    .bind(to_ms(snapshot.event_date))
    .bind(to_ms(snapshot.sale_start_time))
    .bind(snapshot.sale_end_time.map(to_ms))
    .bind(&snapshot.currency)
    .bind(snapshot.base_price)
    .bind(json(&snapshot.section_prices)?)
    .bind(i64::from(snapshot.layout.is_some()))
    .bind(count(seats.len()))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted == 1 {
        insert_seats(tx, snapshot.event_id, &seats, 0).await?;
    }
    Ok(())
}

/// Follows an event's details; a general-admission capacity change adds places, or
/// removes unsold ones from the end (never below what is sold or held).
async fn update_inventory(
    tx: &mut Tx,
    snapshot: &EventSnapshot,
    now: i64,
    policy: Policy,
) -> Result<(), BookingError> {
    let Some(mut inv) = lock_inventory(tx, snapshot.event_id).await? else {
        create_inventory(tx, snapshot, now).await?;
        return Ok(());
    };
    query(
        "UPDATE inventories SET status = $2, event_date = $3, sale_start = $4, \
         sale_end = $5, currency = $6, base_price = $7, section_prices = $8 \
         WHERE event_id = $1",
    )
    .bind(inv.event_id)
    .bind(&snapshot.status)
    .bind(to_ms(snapshot.event_date))
    .bind(to_ms(snapshot.sale_start_time))
    .bind(snapshot.sale_end_time.map(to_ms))
    .bind(&snapshot.currency)
    .bind(snapshot.base_price)
    .bind(json(&snapshot.section_prices)?)
    .execute(&mut *tx)
    .await?;
    inv.status = snapshot.status.clone();
    if inv.reserved || snapshot.total_seats == inv.capacity {
        return Ok(());
    }
    let mut changes = Changes::new(&inv);
    let last = query(
        "SELECT COALESCE(MAX(ord), 0) AS ord, COALESCE(MAX(number), 0) AS number \
         FROM seats WHERE event_id = $1",
    )
    .bind(inv.event_id)
    .fetch_one(&mut *tx)
    .await?;
    let (last_ord, last_number): (i64, i64) = (last.get("ord")?, last.get("number")?);
    if snapshot.total_seats > inv.capacity {
        // New places are numbered after every place there ever was.
        let extra: Vec<_> = (1..=snapshot.total_seats - inv.capacity)
            .map(|i| {
                let n = last_number + i;
                (ga_seat_id(n), GA_SECTION.to_owned(), "1".to_owned(), n)
            })
            .collect();
        insert_seats(tx, inv.event_id, &extra, last_ord).await?;
        changes.freed = true;
    } else {
        // The last free places go; sold and held ones stay.
        query(
            "DELETE FROM seats WHERE event_id = $1 AND seat_id IN (SELECT seat_id \
             FROM seats WHERE event_id = $1 AND state = 0 ORDER BY ord DESC LIMIT $2)",
        )
        .bind(inv.event_id)
        .bind(inv.capacity - snapshot.total_seats)
        .execute(&mut *tx)
        .await?;
    }
    let capacity: i64 = query("SELECT COUNT(*) AS n FROM seats WHERE event_id = $1")
        .bind(inv.event_id)
        .fetch_one(&mut *tx)
        .await?
        .get("n")?;
    query("UPDATE inventories SET capacity = $2 WHERE event_id = $1")
        .bind(inv.event_id)
        .bind(capacity)
        .execute(&mut *tx)
        .await?;
    inv.capacity = capacity;
    let capacity_changed = InventoryChange {
        reason: Some("capacity-changed".into()),
        ..change(&inv)
    };
    changes.push(&mut inv, now, DomainEvent::SeatsReleased, capacity_changed);
    finish(tx, &mut inv, changes, now, policy, Writes::default()).await
}

/// Cancels one confirmed order inside an inventory transaction.
async fn cancel_in(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    order_id: Uuid,
    reason: &str,
    now: i64,
) -> Result<Order, BookingError> {
    let mut order = order_in(tx, order_id)
        .await?
        .ok_or(BookingError::OrderNotFound)?;
    if order.status != "confirmed" {
        return Err(BookingError::OrderCancelled);
    }
    let freed = query(
        "UPDATE seats SET state = 0, order_id = NULL WHERE event_id = $1 \
         AND order_id = $2 AND state = 2",
    )
    .bind(inv.event_id)
    .bind(order_id)
    .execute(&mut *tx)
    .await?;
    query("UPDATE tickets SET status = 'void' WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
    query(
        "UPDATE orders SET status = 'cancelled', refunded_amount = amount, \
         cancel_reason = $2, cancelled_at = $3 WHERE id = $1",
    )
    .bind(order_id)
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    query("UPDATE payment_intents SET status = 'refunded', updated_at = $2 WHERE id = $1")
        .bind(order.payment_intent_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    inv.sold -= i64::try_from(freed).unwrap_or(0);
    changes.freed = true;
    changes.push(
        inv,
        now,
        DomainEvent::OrderCancelled,
        InventoryChange {
            user_id: Some(order.user_id),
            order_id: Some(order_id),
            seat_ids: order.seat_ids.clone(),
            amount: Some(order.amount),
            currency: Some(order.currency.clone()),
            reason: Some(reason.to_owned()),
            ..change(inv)
        },
    );
    order.status = "cancelled".into();
    order.refunded_amount = Some(order.amount);
    order.cancel_reason = Some(reason.to_owned());
    for ticket in &mut order.tickets {
        ticket.status = "void".into();
    }
    Ok(order)
}

/// The event is cancelled or deleted: every live hold ends, every order is cancelled
/// and refunded, the waitlist closes.
async fn cancel_event(
    tx: &mut Tx,
    event_id: Uuid,
    deleted: bool,
    now: i64,
    policy: Policy,
) -> Result<(), BookingError> {
    let Some(mut inv) = lock_inventory(tx, event_id).await? else {
        return Ok(());
    };
    query("UPDATE inventories SET status = 'CANCELLED', deleted = $2 WHERE event_id = $1")
        .bind(event_id)
        .bind(i64::from(deleted || inv.deleted))
        .execute(&mut *tx)
        .await?;
    inv.status = "CANCELLED".into();
    let mut changes = Changes::new(&inv);
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = $1 AND status = 'active'");
    let holds = query(Sql::assert_safe(sql))
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await?;
    for row in &holds {
        let hold = hold_from(row)?;
        end_hold(tx, &mut inv, &mut changes, &hold, "cancelled", now).await?;
    }
    let orders: Vec<Uuid> =
        query("SELECT id FROM orders WHERE event_id = $1 AND status = 'confirmed' ORDER BY id")
            .bind(event_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get("id"))
            .collect::<Result<_, _>>()?;
    for order in orders {
        cancel_in(tx, &mut inv, &mut changes, order, "event-cancelled", now).await?;
    }
    query(
        "UPDATE waitlist SET status = 'closed', updated_at = $2 WHERE event_id = $1 \
         AND status IN ('waiting', 'offered')",
    )
    .bind(event_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    finish(tx, &mut inv, changes, now, policy, Writes::default()).await
}

async fn tickets_of(tx: &mut Tx, order_id: Uuid) -> Result<Vec<Ticket>, StoreError> {
    let rows =
        query("SELECT id, seat_id, code, status FROM tickets WHERE order_id = $1 ORDER BY seat_id")
            .bind(order_id)
            .fetch_all(&mut *tx)
            .await?;
    rows.iter().map(ticket_from).collect()
}

async fn order_in(tx: &mut Tx, order_id: Uuid) -> Result<Option<Order>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
    let Some(row) = query(Sql::assert_safe(sql))
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let tickets = tickets_of(tx, order_id).await?;
    order_from(&row, tickets).map(Some)
}

async fn waitlist_in(
    tx: &mut Tx,
    event_id: Uuid,
    user_id: Uuid,
) -> Result<Option<WaitlistEntry>, StoreError> {
    let row = query(
        "SELECT w.quantity, w.status, w.seq, w.hold_id, h.expires_at FROM waitlist w \
         LEFT JOIN holds h ON h.id = w.hold_id \
         WHERE w.event_id = $1 AND w.user_id = $2 ORDER BY w.seq DESC LIMIT 1",
    )
    .bind(event_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.get("status")?;
    let seq: i64 = row.get("seq")?;
    let position = if status == "waiting" {
        let ahead: i64 = query(
            "SELECT COUNT(*) AS n FROM waitlist WHERE event_id = $1 \
             AND status = 'waiting' AND seq <= $2",
        )
        .bind(event_id)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?
        .get("n")?;
        Some(ahead)
    } else {
        None
    };
    let expires: Option<i64> = row.get("expires_at")?;
    Ok(Some(WaitlistEntry {
        event_id,
        quantity: row.get("quantity")?,
        offer_expires_at: if status == "offered" {
            expires.map(crate::domain::rfc3339)
        } else {
            None
        },
        hold_id: row.get("hold_id")?,
        status,
        position,
    }))
}

#[async_trait::async_trait]
impl BookingStore for SqlBookingStore {
    async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1").execute(self.db.reader()).await?;
        Ok(())
    }

    async fn apply_catalog(
        &self,
        envelope: &Envelope,
        event: &DomainEvent,
        now: i64,
        policy: Policy,
    ) -> Result<bool, BookingError> {
        let relevant = matches!(
            event,
            DomainEvent::EventCreated(_)
                | DomainEvent::EventUpdated(_)
                | DomainEvent::EventStatusChanged { .. }
                | DomainEvent::EventDeleted { .. }
        );
        if !relevant {
            return Ok(false);
        }
        let mut tx = self.db.begin().await?;
        let first = query(
            "INSERT INTO applied_events (id, applied_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(envelope.id)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if first == 0 {
            return Ok(false);
        }
        match event {
            DomainEvent::EventCreated(snapshot) => {
                create_inventory(&mut tx, snapshot, now).await?;
                if snapshot.status == "CANCELLED" {
                    cancel_event(&mut tx, snapshot.event_id, false, now, policy).await?;
                }
            }
            DomainEvent::EventUpdated(snapshot) => {
                if snapshot.status == "CANCELLED" {
                    cancel_event(&mut tx, snapshot.event_id, false, now, policy).await?;
                } else {
                    update_inventory(&mut tx, snapshot, now, policy).await?;
                }
            }
            DomainEvent::EventStatusChanged { event_id, to, .. } => {
                if to == "CANCELLED" {
                    cancel_event(&mut tx, *event_id, false, now, policy).await?;
                } else if let Some(mut inv) = lock_inventory(&mut tx, *event_id).await? {
                    query("UPDATE inventories SET status = $2 WHERE event_id = $1")
                        .bind(event_id)
                        .bind(to)
                        .execute(&mut tx)
                        .await?;
                    inv.status = to.clone();
                    // Seats freed while the sale had not opened go to waiting buyers.
                    let mut changes = Changes::new(&inv);
                    changes.freed = true;
                    finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                }
            }
            DomainEvent::EventDeleted { event_id } => {
                cancel_event(&mut tx, *event_id, true, now, policy).await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn inventory(&self, event_id: Uuid) -> Result<Option<Inventory>, StoreError> {
        fetch_inventory(self.db.reader(), event_id).await
    }

    async fn availability(
        &self,
        event_id: Uuid,
        now: i64,
    ) -> Result<Option<AvailabilityView>, StoreError> {
        let mut conn = self.db.reader().acquire().await?;
        let Some(inv) = fetch_inventory(&mut conn, event_id).await? else {
            return Ok(None);
        };
        if inv.deleted {
            return Ok(None);
        }
        let expired: i64 = query(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS n FROM holds WHERE event_id = $1 \
             AND status = 'active' AND expires_at <= $2",
        )
        .bind(event_id)
        .bind(now)
        .fetch_one(&mut conn)
        .await?
        .get("n")?;
        let held = inv.held - expired;
        let available = inv.capacity - held - inv.sold;
        Ok(Some(AvailabilityView {
            event_id,
            status: inv.status.clone(),
            on_sale: inv.sale_closed(now).is_none(),
            capacity: inv.capacity,
            available,
            held,
            sold: inv.sold,
            sold_out: available == 0,
            version: inv.version,
        }))
    }

    async fn seat_map(
        &self,
        event_id: Uuid,
        now: i64,
    ) -> Result<Option<Vec<SeatView>>, StoreError> {
        let Some(inv) = self.inventory(event_id).await? else {
            return Ok(None);
        };
        if inv.deleted {
            return Ok(None);
        }
        let rows = query(
            "SELECT s.seat_id, s.section, s.row_label, s.number, CAST(s.state AS BIGINT) AS state, h.expires_at \
             FROM seats s LEFT JOIN holds h ON h.id = s.hold_id \
             WHERE s.event_id = $1 ORDER BY s.ord",
        )
        .bind(event_id)
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let section: String = r.get("section")?;
                let state: i64 = r.get("state")?;
                let expires: Option<i64> = r.get("expires_at")?;
                let state = match state {
                    seat_state::SOLD => "reserved",
                    seat_state::HELD if expires.is_some_and(|e| e > now) => "held",
                    _ => "available",
                };
                Ok(SeatView {
                    seat_id: r.get("seat_id")?,
                    row: r.get("row_label")?,
                    number: r.get("number")?,
                    price_tier: inv.tier_of(&section).to_owned(),
                    price: inv.price_of(&section),
                    section,
                    state: state.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }

    async fn create_hold(
        &self,
        new: &NewHold,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError> {
        self.refuse_early(new, now).await?;
        let Some(batches) = self.batches.as_deref() else {
            return self.hold_alone(new, now, policy).await;
        };
        self.queue(batches, new.event_id, |reply| Job::Hold {
            new: new.clone(),
            now,
            policy,
            reply,
            decided: None,
        })
        .await
    }

    async fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        fetch_hold(self.db.reader(), hold_id).await
    }

    async fn refresh_hold(
        &self,
        hold_id: Uuid,
        user_id: Uuid,
        extend_ms: i64,
        max_lifetime_ms: i64,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError> {
        let found = self
            .hold(hold_id)
            .await?
            .filter(|h| h.user_id == user_id)
            .ok_or(BookingError::HoldNotFound)?;
        let _gate = self.gates.enter(found.event_id).await;
        let (mut tx, mut inv, changes, _) =
            open_event(self.db.writer(), found.event_id, now, false)
                .await?
                .ok_or(BookingError::HoldNotFound)?;
        let mut hold = hold_in(&mut tx, hold_id)
            .await?
            .ok_or(BookingError::HoldNotFound)?;
        let outcome = match hold.status.as_str() {
            "active" => {
                let target = (now + extend_ms).min(hold.created_at + max_lifetime_ms);
                if target > hold.expires_at {
                    query("UPDATE holds SET expires_at = $2 WHERE id = $1")
                        .bind(hold_id)
                        .bind(target)
                        .execute(&mut tx)
                        .await?;
                    hold.expires_at = target;
                }
                Ok(hold)
            }
            "purchased" => Err(BookingError::HoldPurchased),
            _ => Err(BookingError::HoldExpired),
        };
        finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
        tx.commit().await?;
        outcome
    }

    async fn release_hold(
        &self,
        hold_id: Uuid,
        user_id: Uuid,
        now: i64,
        policy: Policy,
    ) -> Result<(), BookingError> {
        let found = self
            .hold(hold_id)
            .await?
            .filter(|h| h.user_id == user_id)
            .ok_or(BookingError::HoldNotFound)?;
        let _gate = self.gates.enter(found.event_id).await;
        let (mut tx, mut inv, mut changes, _) =
            open_event(self.db.writer(), found.event_id, now, false)
                .await?
                .ok_or(BookingError::HoldNotFound)?;
        let hold = hold_in(&mut tx, hold_id)
            .await?
            .ok_or(BookingError::HoldNotFound)?;
        let outcome = match hold.status.as_str() {
            "active" => {
                end_hold(&mut tx, &mut inv, &mut changes, &hold, "released", now).await?;
                Ok(())
            }
            "purchased" => Err(BookingError::HoldPurchased),
            _ => Ok(()),
        };
        finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
        tx.commit().await?;
        outcome
    }

    async fn create_intent(
        &self,
        new: &NewIntent,
        now: i64,
    ) -> Result<PaymentIntent, BookingError> {
        // One read of the hold with its event's prices, then one write that inserts
        // the intent only while the hold is still live (no transaction around them:
        // the write's condition is what the read's checks were).
        let row = query(
            "SELECT h.id, h.event_id, h.user_id, h.seat_ids, h.kind, h.status, \
             h.created_at, h.expires_at, i.currency, i.base_price, i.section_prices \
             FROM holds h LEFT JOIN inventories i ON i.event_id = h.event_id \
             WHERE h.id = $1",
        )
        .bind(new.hold_id)
        .fetch_optional(self.db.reader())
        .await?;
        let Some(row) = row else {
            return Err(BookingError::HoldNotFound);
        };
        let hold = hold_from(&row)?;
        if hold.user_id != new.user_id {
            return Err(BookingError::HoldNotFound);
        }
        match hold.status.as_str() {
            "purchased" => return Err(BookingError::HoldPurchased),
            _ if !hold.is_live(now) => return Err(BookingError::HoldExpired),
            _ => {}
        }
        let Some(currency) = row.get::<Option<String>>("currency")? else {
            return Err(BookingError::EventNotFound);
        };
        let base_price: i64 = row.get("base_price")?;
        let prices: String = row.get("section_prices")?;
        let prices: BTreeMap<String, i64> =
            serde_json::from_str(&prices).map_err(|e| corrupt("section_prices", e))?;
        let mut amount: i64 = 0;
        for seat in &hold.seat_ids {
            amount = amount
                .checked_add(seat_price(&prices, base_price, section_of(seat)))
                .ok_or_else(|| anyhow::anyhow!("order amount overflows"))?;
        }
        const LIVE: &str = "EXISTS (SELECT 1 FROM holds WHERE id = $1 \
            AND status = 'active' AND expires_at > $2)";
        let mut writes = Writes::default();
        // An intent not yet confirmed for the same hold is superseded by the new one.
        writes.push(
            format!(
                "UPDATE payment_intents SET status = 'cancelled', updated_at = $2 \
                 WHERE hold_id = $1 AND status = 'requires_confirmation' AND {LIVE}"
            ),
            vec![Arg::Uuid(hold.id), Arg::Int(now)],
            None,
        );
        writes.push(
            format!(
                "INSERT INTO payment_intents (id, hold_id, event_id, user_id, amount, \
                 currency, secret_hash, status, created_at, updated_at) \
                 SELECT $3, $1, $4, $5, $6, $7, $8, 'requires_confirmation', $2, $2 \
                 WHERE {LIVE}"
            ),
            vec![
                Arg::Uuid(hold.id),
                Arg::Int(now),
                Arg::Uuid(new.intent_id),
                Arg::Uuid(hold.event_id),
                Arg::Uuid(new.user_id),
                Arg::Int(amount),
                Arg::Text(currency.clone()),
                Arg::Text(new.secret_hash.clone()),
            ],
            None,
        );
        let changed = write_alone(self.db.writer(), &writes).await?;
        if changed.get(1) != Some(&1) {
            // The hold ended between the read and the write.
            let status = fetch_hold(self.db.writer(), hold.id)
                .await?
                .map(|h| h.status);
            return Err(if status.as_deref() == Some("purchased") {
                BookingError::HoldPurchased
            } else {
                BookingError::HoldExpired
            });
        }
        Ok(PaymentIntent {
            id: new.intent_id,
            hold_id: hold.id,
            event_id: hold.event_id,
            user_id: new.user_id,
            amount,
            currency,
            status: "requires_confirmation".into(),
            secret_hash: new.secret_hash.clone(),
        })
    }

    async fn confirm_intent(
        &self,
        intent_id: Uuid,
        user_id: Uuid,
        secret: &str,
        outcome: Confirmation,
        now: i64,
    ) -> Result<PaymentIntent, BookingError> {
        let (mut intent, hold_live) = self
            .intent_and_hold(intent_id, now)
            .await?
            .filter(|(i, _)| i.user_id == user_id)
            .ok_or(BookingError::IntentNotFound)?;
        if !constant_time_eq(&sha256_hex(secret.as_bytes()), &intent.secret_hash) {
            return Err(BookingError::WrongSecret);
        }
        match intent.status.as_str() {
            "succeeded" => return Ok(intent),
            "requires_confirmation" => {}
            other => return Err(BookingError::IntentNotConfirmable(other.to_owned())),
        }
        if !hold_live {
            return Err(BookingError::HoldExpired);
        }
        let status = match outcome {
            Confirmation::Fail => return Err(BookingError::PaymentFailed),
            Confirmation::Decline => "declined",
            Confirmation::Succeed => "succeeded",
        };
        // One statement, outside any transaction: the intent changes only while it
        // awaits confirmation and its hold is live.
        let changed = query(
            "UPDATE payment_intents SET status = $2, updated_at = $3 \
             WHERE id = $1 AND status = 'requires_confirmation' \
             AND EXISTS (SELECT 1 FROM holds h WHERE h.id = payment_intents.hold_id \
             AND h.status = 'active' AND h.expires_at > $3)",
        )
        .bind(intent_id)
        .bind(status)
        .bind(now)
        .execute(self.db.writer())
        .await?;
        if changed == 0 {
            // Changed meanwhile (a concurrent confirm, or the hold ended): report what
            // it is now.
            let (current, hold_live) = self
                .intent_and_hold(intent_id, now)
                .await?
                .ok_or(BookingError::IntentNotFound)?;
            return match current.status.as_str() {
                "succeeded" => {
                    intent.status = current.status;
                    Ok(intent)
                }
                "requires_confirmation" if !hold_live => Err(BookingError::HoldExpired),
                _ => Err(BookingError::IntentNotConfirmable(current.status)),
            };
        }
        if outcome == Confirmation::Decline {
            return Err(BookingError::PaymentDeclined);
        }
        intent.status = status.to_owned();
        Ok(intent)
    }

    async fn idempotency_begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: i64,
        lock_ms: i64,
        ttl_ms: i64,
    ) -> Result<IdempotencyStart, BookingError> {
        // A key rarely comes back, and an expired one is as good as new: one upsert
        // takes a new or expired key; anything else is read and decided after it.
        for _ in 0..3 {
            let started = query(
                "INSERT INTO idempotency_keys (user_id, route, key, fingerprint, \
                 status, locked_at, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, 'in_flight', $5, $5, $6) \
                 ON CONFLICT (user_id, route, key) DO UPDATE SET \
                 fingerprint = excluded.fingerprint, status = 'in_flight', \
                 response_status = NULL, response_body = NULL, \
                 locked_at = excluded.locked_at, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at \
                 WHERE idempotency_keys.expires_at <= $5 \
                 RETURNING 1",
            )
            .bind(key.user_id)
            .bind(&key.route)
            .bind(&key.key)
            .bind(fingerprint)
            .bind(now)
            .bind(now + ttl_ms)
            .fetch_optional(self.db.writer())
            .await?;
            if started.is_some() {
                return Ok(IdempotencyStart::Started);
            }
            let row = query(
                "SELECT fingerprint, status, response_status, response_body, locked_at \
                 FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3",
            )
            .bind(key.user_id)
            .bind(&key.route)
            .bind(&key.key)
            .fetch_optional(self.db.writer())
            .await?;
            let Some(row) = row else {
                // Abandoned meanwhile: take it again.
                continue;
            };
            let stored: String = row.get("fingerprint")?;
            if stored != fingerprint {
                return Err(BookingError::KeyReused);
            }
            let status: String = row.get("status")?;
            if status == "complete" {
                let code: Option<i64> = row.get("response_status")?;
                let body: Option<String> = row.get("response_body")?;
                return Ok(IdempotencyStart::Replay {
                    status: code.and_then(|c| u16::try_from(c).ok()).unwrap_or(500),
                    body: body.unwrap_or_default(),
                });
            }
            let locked_at: i64 = row.get("locked_at")?;
            if locked_at + lock_ms > now {
                return Err(BookingError::InFlight);
            }
            // The request holding the key is gone (crashed); take it over, unless
            // another request just did.
            let taken = query(
                "UPDATE idempotency_keys SET locked_at = $4 WHERE user_id = $1 \
                 AND route = $2 AND key = $3 AND status = 'in_flight' AND locked_at = $5",
            )
            .bind(key.user_id)
            .bind(&key.route)
            .bind(&key.key)
            .bind(now)
            .bind(locked_at)
            .execute(self.db.writer())
            .await?;
            return if taken == 1 {
                Ok(IdempotencyStart::Started)
            } else {
                Err(BookingError::InFlight)
            };
        }
        Err(BookingError::InFlight)
    }

    async fn idempotency_finish(
        &self,
        key: &IdempotencyKey,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE idempotency_keys SET status = 'complete', response_status = $4, \
             response_body = $5 WHERE user_id = $1 AND route = $2 AND key = $3 \
             AND status = 'in_flight'",
        )
        .bind(key.user_id)
        .bind(&key.route)
        .bind(&key.key)
        .bind(i64::from(status))
        .bind(body)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn idempotency_abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3 \
             AND status = 'in_flight'",
        )
        .bind(key.user_id)
        .bind(&key.route)
        .bind(&key.key)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn purchase(
        &self,
        input: &PurchaseInput,
        now: i64,
        policy: Policy,
    ) -> Result<(Order, String), BookingError> {
        // The purchase goes to the event its request names; the checks under that
        // event's lock refuse a hold of another buyer or another event.
        let Some(batches) = self.batches.as_deref() else {
            return self.purchase_alone(input, now, policy).await;
        };
        self.queue(batches, input.event_id, |reply| Job::Purchase {
            input: input.clone(),
            now,
            policy,
            reply,
            decided: None,
        })
        .await
    }

    async fn order(&self, order_id: Uuid) -> Result<Option<Order>, StoreError> {
        let mut tx = self.db.reader().begin().await?;
        let order = order_in(&mut tx, order_id).await?;
        tx.commit().await?;
        Ok(order)
    }

    async fn orders_of(
        &self,
        user_id: Uuid,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Order>, u64), StoreError> {
        let mut tx = self.db.reader().begin().await?;
        let total: i64 = query("SELECT COUNT(*) AS n FROM orders WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut tx)
            .await?
            .get("n")?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows = query(Sql::assert_safe(sql))
            .bind(user_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut tx)
            .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: Uuid = row.get("id")?;
            let tickets = tickets_of(&mut tx, id).await?;
            orders.push(order_from(row, tickets)?);
        }
        tx.commit().await?;
        Ok((orders, u64::try_from(total).unwrap_or(0)))
    }

    async fn cancel_order(
        &self,
        order_id: Uuid,
        reason: &str,
        now: i64,
        policy: Policy,
    ) -> Result<Order, BookingError> {
        let found = self
            .order(order_id)
            .await?
            .ok_or(BookingError::OrderNotFound)?;
        let _gate = self.gates.enter(found.event_id).await;
        let (mut tx, mut inv, mut changes, _) =
            open_event(self.db.writer(), found.event_id, now, false)
                .await?
                .ok_or(BookingError::OrderNotFound)?;
        let order = cancel_in(&mut tx, &mut inv, &mut changes, order_id, reason, now).await?;
        finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
        tx.commit().await?;
        Ok(order)
    }

    async fn join_waitlist(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        quantity: i64,
        now: i64,
        policy: Policy,
    ) -> Result<WaitlistEntry, BookingError> {
        let _gate = self.gates.enter(event_id).await;
        let mut tx = self.db.begin().await?;
        let mut inv = lock_inventory(&mut tx, event_id)
            .await?
            .filter(|i| !i.deleted)
            .ok_or(BookingError::EventNotFound)?;
        if let Some(why) = inv.sale_closed(now) {
            return Err(BookingError::NotOnSale(why));
        }
        let mut changes = Changes::new(&inv);
        sweep(&mut tx, &mut inv, &mut changes, now).await?;
        let open = query(
            "SELECT id FROM waitlist WHERE event_id = $1 AND user_id = $2 \
             AND status IN ('waiting', 'offered')",
        )
        .bind(event_id)
        .bind(user_id)
        .fetch_optional(&mut tx)
        .await?;
        // Freed seats go to those already waiting before anyone joins.
        finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
        if open.is_none() {
            if inv.available() >= quantity {
                tx.commit().await?;
                return Err(BookingError::SeatsAvailable {
                    available: inv.available(),
                });
            }
            query(
                "INSERT INTO waitlist (id, event_id, user_id, quantity, seq, status, \
                 joined_at, updated_at) VALUES ($1, $2, $3, $4, \
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM waitlist WHERE event_id = $2), \
                 'waiting', $5, $5)",
            )
            .bind(Uuid::now_v7())
            .bind(event_id)
            .bind(user_id)
            .bind(quantity)
            .bind(now)
            .execute(&mut tx)
            .await?;
        }
        let entry = waitlist_in(&mut tx, event_id, user_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("waitlist entry vanished"))?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn waitlist_entry(
        &self,
        event_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<WaitlistEntry>, StoreError> {
        let mut tx = self.db.reader().begin().await?;
        let entry = waitlist_in(&mut tx, event_id, user_id).await?;
        tx.commit().await?;
        Ok(entry)
    }

    async fn leave_waitlist(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        now: i64,
        policy: Policy,
    ) -> Result<(), BookingError> {
        let _gate = self.gates.enter(event_id).await;
        let mut tx = self.db.begin().await?;
        let mut inv = lock_inventory(&mut tx, event_id)
            .await?
            .ok_or(BookingError::EventNotFound)?;
        let mut changes = Changes::new(&inv);
        sweep(&mut tx, &mut inv, &mut changes, now).await?;
        let row = query(
            "SELECT id, status, hold_id FROM waitlist WHERE event_id = $1 \
             AND user_id = $2 AND status IN ('waiting', 'offered')",
        )
        .bind(event_id)
        .bind(user_id)
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
            tx.commit().await?;
            return Err(BookingError::NotWaitlisted);
        };
        let id: Uuid = row.get("id")?;
        let offer: Option<Uuid> = row.get("hold_id")?;
        if let Some(offer) = offer
            && let Some(hold) = hold_in(&mut tx, offer).await?
            && hold.status == "active"
        {
            end_hold(&mut tx, &mut inv, &mut changes, &hold, "released", now).await?;
        }
        query("UPDATE waitlist SET status = 'left', updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut tx)
            .await?;
        finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn expire_due(&self, now: i64, policy: Policy) -> Result<usize, BookingError> {
        let events: Vec<Uuid> = query(
            "SELECT DISTINCT event_id FROM holds WHERE status = 'active' \
             AND expires_at <= $1 LIMIT 100",
        )
        .bind(now)
        .fetch_all(self.db.reader())
        .await?
        .iter()
        .map(|r| r.get("event_id"))
        .collect::<Result<_, _>>()?;
        let mut expired = 0;
        for event_id in events {
            let _gate = self.gates.enter(event_id).await;
            let Some((mut tx, mut inv, changes, swept)) =
                open_event(self.db.writer(), event_id, now, true).await?
            else {
                continue;
            };
            expired += swept;
            finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
            tx.commit().await?;
        }
        Ok(expired)
    }

    async fn next_expiry(&self) -> Result<Option<i64>, StoreError> {
        let row = query("SELECT MIN(expires_at) AS t FROM holds WHERE status = 'active'")
            .fetch_one(self.db.reader())
            .await?;
        let next: Option<i64> = row.get("t")?;
        Ok(next)
    }

    async fn purge_idempotency(&self, now: i64) -> Result<u64, StoreError> {
        query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now)
            .execute(self.db.writer())
            .await
    }

    async fn audit(&self, event_id: Uuid, now: i64) -> Result<Option<Audit>, StoreError> {
        self.refresh_statistics().await?;
        let mut conn = self.db.reader().acquire().await?;
        let Some(capacity) = query("SELECT capacity FROM inventories WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&mut conn)
            .await?
        else {
            return Ok(None);
        };
        let capacity: i64 = capacity.get("capacity")?;
        let row = query(
            "SELECT \
             (SELECT COUNT(*) FROM seats WHERE event_id = $1 AND state = 2) AS sold_seats, \
             (SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status = 'valid') AS tickets, \
             (SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'confirmed') AS orders, \
             (SELECT COUNT(*) FROM holds WHERE event_id = $1 AND status = 'active' \
                AND expires_at > $2) AS live_holds, \
             (SELECT COUNT(*) FROM (SELECT seat_id FROM tickets WHERE event_id = $1 \
                AND status = 'valid' GROUP BY seat_id HAVING COUNT(*) > 1) d) AS double_sold, \
             (SELECT COUNT(*) FROM seats s WHERE s.event_id = $1 AND s.state = 2 \
                AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.event_id = s.event_id \
                AND t.seat_id = s.seat_id AND t.status = 'valid' \
                AND t.order_id = s.order_id)) AS unticketed, \
             (SELECT COUNT(*) FROM tickets t WHERE t.event_id = $1 AND t.status = 'valid' \
                AND NOT EXISTS (SELECT 1 FROM seats s WHERE s.event_id = t.event_id \
                AND s.seat_id = t.seat_id AND s.state = 2 \
                AND s.order_id = t.order_id)) AS unseated",
        )
        .bind(event_id)
        .bind(now)
        .fetch_one(&mut conn)
        .await?;
        let tickets: i64 = row.get("tickets")?;
        let unticketed: i64 = row.get("unticketed")?;
        let unseated: i64 = row.get("unseated")?;
        Ok(Some(Audit {
            capacity,
            sold_seats: row.get("sold_seats")?,
            tickets,
            orders: row.get("orders")?,
            live_holds: row.get("live_holds")?,
            oversold: (tickets - capacity).max(0),
            double_sold: row.get("double_sold")?,
            mismatched: unticketed + unseated,
        }))
    }
}

impl SqlBookingStore {
    /// A hold in a transaction of its own. On any refusal the transaction rolls back
    /// whole (what the sweep found is swept again by the next change or the expiry
    /// task).
    async fn hold_alone(
        &self,
        new: &NewHold,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError> {
        let _gate = self.gates.enter(new.event_id).await;
        let (mut tx, mut inv, mut changes, _) =
            open_event(self.db.writer(), new.event_id, now, false)
                .await?
                .ok_or(BookingError::EventNotFound)?;
        let mut writes = Writes::default();
        let hold = hold_step(
            &mut tx,
            &mut inv,
            &mut changes,
            &mut writes,
            None,
            new,
            now,
            policy,
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("a hold alone was sent to a batch"))?;
        finish(&mut tx, &mut inv, changes, now, policy, writes).await?;
        tx.commit().await?;
        Ok(hold)
    }

    /// A purchase in a transaction of its own (rolled back whole on any refusal).
    async fn purchase_alone(
        &self,
        input: &PurchaseInput,
        now: i64,
        policy: Policy,
    ) -> Result<(Order, String), BookingError> {
        let _gate = self.gates.enter(input.event_id).await;
        let Some((mut tx, mut inv, mut changes, _)) =
            open_event(self.db.writer(), input.event_id, now, false).await?
        else {
            // No such event: the answer is about the hold.
            let hold = fetch_hold(self.db.reader(), input.hold_id)
                .await?
                .filter(|h| h.user_id == input.user_id)
                .ok_or(BookingError::HoldNotFound)?;
            return Err(another_event(&hold, input.event_id).unwrap_or(BookingError::EventNotFound));
        };
        let mut writes = Writes::default();
        let outcome = purchase_step(
            &mut tx,
            &mut inv,
            &mut changes,
            &mut writes,
            None,
            input,
            now,
        )
        .await?;
        finish(&mut tx, &mut inv, changes, now, policy, writes).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Queues the request `job` makes for the event's next batch (starting the event's
    /// leader when none runs) and waits for its answer.
    async fn queue<T>(
        &self,
        batches: &crate::store::Batches,
        event_id: Uuid,
        job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, BookingError>>) -> Job,
    ) -> Result<T, BookingError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if batches.submit(event_id, job(reply)) {
            self.lead(event_id);
        }
        answer.await.map_err(|_| {
            BookingError::Internal(anyhow::anyhow!("the request's batch ended unanswered"))
        })?
    }

    /// Runs `job` in a transaction of its own and answers it.
    async fn run_alone(&self, job: Job) {
        match job {
            Job::Hold {
                new,
                now,
                policy,
                reply,
                ..
            } => drop(reply.send(self.hold_alone(&new, now, policy).await)),
            Job::Purchase {
                input,
                now,
                policy,
                reply,
                ..
            } => drop(reply.send(self.purchase_alone(&input, now, policy).await)),
        }
    }

    /// Starts the event's leader: a task (which a caller going away cannot stop) that
    /// runs the event's batches while requests keep queueing.
    fn lead(&self, event_id: Uuid) {
        let store = self.clone();
        tokio::spawn(async move {
            let Some(batches) = store.batches.as_deref() else {
                return;
            };
            loop {
                let jobs = batches.take(event_id);
                if jobs.is_empty() {
                    return;
                }
                let alone = if jobs.len() == 1 {
                    jobs
                } else {
                    store.run_batch(event_id, jobs).await
                };
                for job in alone {
                    store.run_alone(job).await;
                }
            }
        });
    }

    /// Decides `jobs` (of one event) in one transaction: each request's reads see what
    /// the requests before it decided (the store, plus an [`Overlay`] of their
    /// pending writes), refusals are answered at once, and the rest once the batch
    /// commits. Returns the requests to run alone instead: replacements of a live
    /// hold, and every request not yet answered when the store fails.
    async fn run_batch(&self, event_id: Uuid, jobs: Vec<Job>) -> Vec<Job> {
        let _gate = self.gates.enter(event_id).await;
        let now = jobs.iter().map(Job::now).max().unwrap_or_default();
        let policy = match &jobs[0] {
            Job::Hold { policy, .. } | Job::Purchase { policy, .. } => *policy,
        };
        let (mut tx, mut inv, mut changes) =
            match open_event(self.db.writer(), event_id, now, false).await {
                Ok(Some((tx, inv, changes, _))) => (tx, inv, changes),
                // Alone, each request gets the answer that fits it.
                Ok(None) => return jobs,
                Err(_) => return jobs,
            };
        let mut writes = Writes::default();
        let mut overlay = Overlay::default();
        if prefetch(&mut tx, &inv, &jobs, &mut overlay).await.is_err() {
            return jobs;
        }
        let mut decided = Vec::with_capacity(jobs.len());
        let mut alone = Vec::new();
        let mut jobs = jobs.into_iter();
        while let Some(mut job) = jobs.next() {
            // Whether the request was decided in the batch (or must go alone).
            let outcome = match &mut job {
                Job::Hold {
                    new, now, decided, ..
                } => hold_step(
                    &mut tx,
                    &mut inv,
                    &mut changes,
                    &mut writes,
                    Some(&mut overlay),
                    new,
                    *now,
                    policy,
                )
                .await
                .map(|hold| {
                    *decided = hold;
                    decided.is_some()
                }),
                Job::Purchase {
                    input,
                    now,
                    decided,
                    ..
                } => purchase_step(
                    &mut tx,
                    &mut inv,
                    &mut changes,
                    &mut writes,
                    Some(&mut overlay),
                    input,
                    *now,
                )
                .await
                .map(|outcome| {
                    *decided = Some(Box::new(outcome));
                    true
                }),
            };
            match outcome {
                Ok(true) => decided.push(job),
                Ok(false) => alone.push(job),
                Err(e) if is_refusal(&e) => job.refuse(e),
                Err(_) => {
                    // The transaction may be unusable: everything not answered
                    // goes alone.
                    alone.push(job);
                    alone.extend(jobs);
                    alone.extend(decided);
                    return alone;
                }
            }
        }
        let committed = match finish(&mut tx, &mut inv, changes, now, policy, writes).await {
            Ok(()) => tx.commit().await.map_err(BookingError::from),
            Err(e) => Err(e),
        };
        match committed {
            Ok(()) => decided.into_iter().for_each(Job::deliver),
            Err(_) => alone.extend(decided),
        }
        alone
    }

    /// Refuses, from a read and without the inventory lock, a hold that cannot succeed:
    /// seats sold or in another buyer's live hold, or fewer seats left than asked for
    /// (counting the caller's own live hold, which the new hold would replace). A read
    /// that is already stale can only refuse what a moment earlier would also have been
    /// refused; whatever it lets through is decided under the lock. In an on-sale rush
    /// this keeps the losers off the write path.
    async fn refuse_early(&self, new: &NewHold, now: i64) -> Result<(), BookingError> {
        let mut conn = self.db.reader().acquire().await?;
        match &new.selection {
            Selection::Seats(wanted) => {
                let sql = format!(
                    "{} SELECT s.seat_id, CAST(s.state AS BIGINT) AS state, \
                     h.user_id, h.expires_at FROM wanted \
                     JOIN seats s ON s.event_id = $1 AND s.seat_id = wanted.seat_id \
                     LEFT JOIN holds h ON h.id = s.hold_id",
                    wanted_seats(2, wanted.len())
                );
                let mut query = query(Sql::assert_safe(sql)).bind(new.event_id);
                for seat in wanted {
                    query = query.bind(seat);
                }
                let rows = query.fetch_all(&mut conn).await?;
                let mut taken = std::collections::BTreeSet::new();
                for row in &rows {
                    let state: i64 = row.get("state")?;
                    let holder: Option<Uuid> = row.get("user_id")?;
                    let expires: Option<i64> = row.get("expires_at")?;
                    let busy = match state {
                        seat_state::SOLD => true,
                        seat_state::HELD => {
                            holder != Some(new.user_id) && expires.is_some_and(|e| e > now)
                        }
                        _ => false,
                    };
                    if busy {
                        taken.insert(row.get::<String>("seat_id")?);
                    }
                }
                // Unknown seats are reported under the lock, with their fields.
                if !taken.is_empty() && rows.len() == wanted.len() {
                    let conflicts = wanted
                        .iter()
                        .filter(|s| taken.contains(*s))
                        .cloned()
                        .collect();
                    return Err(BookingError::SeatsUnavailable(conflicts));
                }
            }
            Selection::Best {
                quantity,
                section: None,
            } => {
                let row = query(
                    "SELECT i.capacity - i.held - i.sold + \
                     (SELECT CAST(COALESCE(SUM(h.quantity), 0) AS BIGINT) FROM holds h \
                      WHERE h.event_id = i.event_id AND h.status = 'active' \
                      AND (h.expires_at <= $2 OR h.user_id = $3)) AS free \
                     FROM inventories i WHERE i.event_id = $1",
                )
                .bind(new.event_id)
                .bind(now)
                .bind(new.user_id)
                .fetch_optional(&mut conn)
                .await?;
                if let Some(row) = row {
                    let free: i64 = row.get("free")?;
                    if free < *quantity {
                        return Err(BookingError::SoldOut {
                            available: free.max(0),
                        });
                    }
                }
            }
            Selection::Best { .. } => {}
        }
        Ok(())
    }

    /// A payment intent and whether its hold is live at `now`, in one read.
    async fn intent_and_hold(
        &self,
        intent_id: Uuid,
        now: i64,
    ) -> Result<Option<(PaymentIntent, bool)>, StoreError> {
        let row = query(
            "SELECT i.id, i.hold_id, i.event_id, i.user_id, i.amount, i.currency, \
             i.status, i.secret_hash, h.status AS hold_status, \
             h.expires_at AS hold_expires_at \
             FROM payment_intents i LEFT JOIN holds h ON h.id = i.hold_id \
             WHERE i.id = $1",
        )
        .bind(intent_id)
        .fetch_optional(self.db.reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let intent = intent_from(&row)?;
        let status: Option<String> = row.get("hold_status")?;
        let expires: Option<i64> = row.get("hold_expires_at")?;
        let live = status
            .zip(expires)
            .is_some_and(|(status, expires)| hold_is_live(&status, expires, now));
        Ok(Some((intent, live)))
    }
}

/// A purchase's hold and payment intent (`$2`), in one statement; the caller adds
/// which holds.
const PURCHASE_READ: &str = "SELECT h.id, h.event_id, h.user_id, h.seat_ids, h.kind, \
    h.status, h.created_at, h.expires_at, i.id AS intent_id, \
    i.hold_id AS intent_hold_id, i.event_id AS intent_event_id, \
    i.user_id AS intent_user_id, i.amount AS intent_amount, \
    i.currency AS intent_currency, i.status AS intent_status, \
    i.secret_hash AS intent_secret_hash \
    FROM holds h LEFT JOIN payment_intents i ON i.id = $2";

/// The states of `wanted` seats of the event that exist.
async fn seat_states(
    tx: &mut Tx,
    event_id: Uuid,
    wanted: &[String],
) -> Result<BTreeMap<String, i64>, StoreError> {
    let sql = format!(
        "{} SELECT s.seat_id, CAST(s.state AS BIGINT) AS state FROM wanted \
         JOIN seats s ON s.event_id = $1 AND s.seat_id = wanted.seat_id",
        wanted_seats(2, wanted.len())
    );
    let mut query = query(Sql::assert_safe(sql)).bind(event_id);
    for seat in wanted {
        query = query.bind(seat);
    }
    let mut states = BTreeMap::new();
    for row in &query.fetch_all(&mut *tx).await? {
        states.insert(row.get("seat_id")?, row.get("state")?);
    }
    Ok(states)
}

/// Reads, once for a whole batch, what its requests' checks need from the store:
/// each buyer's live holds and confirmed tickets of the event, the states of the seats
/// asked for, the first free seats, and the holds and intents being bought.
async fn prefetch(
    tx: &mut Tx,
    inv: &Inventory,
    jobs: &[Job],
    overlay: &mut Overlay,
) -> Result<(), StoreError> {
    let mut buyers = std::collections::BTreeSet::new();
    let mut wanted = std::collections::BTreeSet::new();
    // Seats the batch's holds may take, whatever their selection, and the widest
    // window a best-available hold without a section looks through.
    let mut takes = 0i64;
    let mut widest = None;
    let mut bought = Vec::new();
    for job in jobs {
        match job {
            Job::Hold { new, .. } => {
                buyers.insert(new.user_id);
                takes += new.selection.quantity();
                match &new.selection {
                    Selection::Seats(seats) => wanted.extend(seats.iter().cloned()),
                    Selection::Best {
                        quantity,
                        section: None,
                    } => {
                        let window = if inv.reserved && *quantity > 1 {
                            (quantity * 20).max(200)
                        } else {
                            *quantity
                        };
                        widest = widest.max(Some(window));
                    }
                    Selection::Best { .. } => {}
                }
            }
            Job::Purchase { input, .. } => bought.push((input.hold_id, input.intent_id)),
        }
    }
    if !buyers.is_empty() {
        let live = of_buyers(tx, "SELECT user_id, event_id FROM holds", "active", &buyers);
        for row in &live.await? {
            if row.get::<Uuid>("event_id")? == inv.event_id {
                overlay.live.insert(row.get("user_id")?);
            }
        }
        let owned = of_buyers(
            tx,
            "SELECT user_id, event_id, quantity FROM orders",
            "confirmed",
            &buyers,
        );
        for row in &owned.await? {
            if row.get::<Uuid>("event_id")? == inv.event_id {
                let quantity: i64 = row.get("quantity")?;
                *overlay.owned.entry(row.get("user_id")?).or_default() += quantity;
            }
        }
    }
    if !wanted.is_empty() {
        let wanted: Vec<String> = wanted.into_iter().collect();
        overlay.states = seat_states(tx, inv.event_id, &wanted)
            .await?
            .into_iter()
            .collect();
    }
    if let Some(widest) = widest {
        // Every request sees at least its own window once the seats taken by the
        // requests before it are left out.
        overlay.free = candidates(tx, inv.event_id, None, widest + takes).await?;
    }
    if !bought.is_empty() {
        let pairs = (0..bought.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH asked (hold_id, intent_id) AS (VALUES {pairs}) \
             SELECT asked.intent_id AS asked_intent, h.id, h.event_id, h.user_id, \
             h.seat_ids, h.kind, h.status, h.created_at, h.expires_at, \
             i.id AS intent_id, i.hold_id AS intent_hold_id, \
             i.event_id AS intent_event_id, i.user_id AS intent_user_id, \
             i.amount AS intent_amount, i.currency AS intent_currency, \
             i.status AS intent_status, i.secret_hash AS intent_secret_hash \
             FROM asked JOIN holds h ON h.id = asked.hold_id \
             LEFT JOIN payment_intents i ON i.id = asked.intent_id"
        );
        let mut query = query(Sql::assert_safe(sql));
        for (hold, intent) in &bought {
            query = query.bind(*hold).bind(*intent);
        }
        for row in &query.fetch_all(&mut *tx).await? {
            let hold = hold_from(row)?;
            let asked: Uuid = row.get("asked_intent")?;
            overlay
                .purchases
                .insert((hold.id, asked), (hold, joined_intent_from(row)?));
        }
    }
    Ok(())
}

/// The rows of `select` (a table of buyers' rows with a `status`) of the `buyers` whose
/// status is `status`.
async fn of_buyers(
    tx: &mut Tx,
    select: &str,
    status: &str,
    buyers: &std::collections::BTreeSet<Uuid>,
) -> Result<Vec<Row>, StoreError> {
    let sql = format!(
        "{select} WHERE status = $1 AND user_id IN ({})",
        placeholders(2, buyers.len())
    );
    let mut query = query(Sql::assert_safe(sql)).bind(status);
    for buyer in buyers {
        query = query.bind(*buyer);
    }
    query.fetch_all(&mut *tx).await
}

/// The checks and writes of a hold, inside the inventory transaction (the writes
/// added to `writes`). In a batch (`overlay`), `None` when the request must go alone:
/// it replaces the buyer's live hold, or the buyer already has a hold in the batch.
#[allow(clippy::too_many_arguments)]
async fn hold_step(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    writes: &mut Writes,
    overlay: Option<&mut Overlay>,
    new: &NewHold,
    now: i64,
    policy: Policy,
) -> Result<Option<Hold>, BookingError> {
    if inv.deleted {
        return Err(BookingError::EventNotFound);
    }
    if let Some(why) = inv.sale_closed(now) {
        return Err(BookingError::NotOnSale(why));
    }
    // The buyer's own live hold never blocks them: the new hold replaces it. One
    // statement reads those holds and the tickets the buyer already owns. Both are
    // found by the buyer alone (the materialised CTEs keep the event out of those
    // lookups), through `holds_of_user` and `orders_of_user`: by event and buyer, a
    // planner with stale statistics picks the event's index and walks every live hold
    // or every order of the event.
    let owned = match overlay.as_deref() {
        // In a batch, a replacement goes alone: ending the old hold is undone with
        // the new one's transaction if the new one is refused.
        Some(o) if o.live.contains(&new.user_id) || o.holders.contains(&new.user_id) => {
            return Ok(None);
        }
        Some(o) => {
            o.owned.get(&new.user_id).copied().unwrap_or(0)
                + o.bought.get(&new.user_id).copied().unwrap_or(0)
        }
        None => {
            let rows = query(
                "WITH mine AS MATERIALIZED (SELECT id, event_id, user_id, seat_ids, \
                 kind, status, created_at, expires_at FROM holds WHERE user_id = $2 \
                 AND status = 'active'), \
                 bought AS MATERIALIZED (SELECT event_id, quantity FROM orders \
                 WHERE user_id = $2 AND status = 'confirmed') \
                 SELECT (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM bought \
                 WHERE event_id = $1) AS owned, \
                 h.id AS own_hold, h.id, h.event_id, h.user_id, h.seat_ids, h.kind, \
                 h.status, h.created_at, h.expires_at FROM (SELECT 1 AS one) AS one \
                 LEFT JOIN mine h ON h.event_id = $1",
            )
            .bind(new.event_id)
            .bind(new.user_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut owned = 0;
            for row in &rows {
                owned = row.get("owned")?;
                if row.get::<Option<Uuid>>("own_hold")?.is_some() {
                    let hold = hold_from(row)?;
                    end_hold(tx, inv, changes, &hold, "released", now).await?;
                }
            }
            owned
        }
    };
    let quantity = new.selection.quantity();
    if owned + quantity > policy.max_tickets_per_user {
        return Err(BookingError::TicketLimit {
            limit: policy.max_tickets_per_user,
            owned,
        });
    }
    let seats = match &new.selection {
        Selection::Seats(wanted) => {
            let states: BTreeMap<String, i64> = match overlay.as_deref() {
                Some(o) => wanted
                    .iter()
                    .filter_map(|s| o.states.get(s).map(|state| (s.clone(), *state)))
                    .collect(),
                None => seat_states(tx, new.event_id, wanted).await?,
            };
            let unknown: Vec<&String> =
                wanted.iter().filter(|s| !states.contains_key(*s)).collect();
            if !unknown.is_empty() {
                let mut problem =
                    evently_core::Problem::validation().detail("no such seats at this event");
                for (i, seat) in wanted.iter().enumerate() {
                    if !states.contains_key(seat) {
                        problem = problem.field(
                            format!("/seatIds/{i}"),
                            format!("{seat} is not a seat of this event"),
                        );
                    }
                }
                return Err(BookingError::Invalid(problem));
            }
            let conflicts: Vec<String> = wanted
                .iter()
                .filter(|s| {
                    states.get(*s) != Some(&seat_state::AVAILABLE)
                        || overlay.as_deref().is_some_and(|o| o.taken.contains(*s))
                })
                .cloned()
                .collect();
            if !conflicts.is_empty() {
                return Err(BookingError::SeatsUnavailable(conflicts));
            }
            wanted.clone()
        }
        Selection::Best { quantity, section } => {
            let wanted = usize::try_from(*quantity).unwrap_or(usize::MAX);
            // Adjacent seats are looked for among the first free ones in layout
            // order; one seat is simply the first.
            let window = if inv.reserved && *quantity > 1 {
                (quantity * 20).max(200)
            } else {
                *quantity
            };
            let limit = usize::try_from(window).unwrap_or(usize::MAX);
            let found: Vec<_> = match (overlay.as_deref(), section) {
                (Some(o), None) => o
                    .free
                    .iter()
                    .filter(|seat| !o.taken.contains(&seat.0))
                    .take(limit)
                    .cloned()
                    .collect(),
                (o, section) => {
                    let taken = o.map_or(0, |o| o.taken.len());
                    let mut found =
                        candidates(tx, new.event_id, section.as_deref(), window + count(taken))
                            .await?;
                    if let Some(o) = o {
                        found.retain(|seat| !o.taken.contains(&seat.0));
                    }
                    found.truncate(limit);
                    found
                }
            };
            match crate::domain::pick_best(&found, wanted) {
                Some(seats) => seats,
                None => {
                    return Err(BookingError::SoldOut {
                        available: count(found.len()),
                    });
                }
            }
        }
    };
    let hold = insert_hold(
        writes,
        inv,
        changes,
        new.hold_id,
        new.user_id,
        seats,
        HoldKind::Buyer,
        now + new.ttl_ms,
        now,
    )?;
    if let Some(overlay) = overlay {
        overlay.taken.extend(hold.seat_ids.iter().cloned());
        overlay.holders.insert(new.user_id);
    }
    Ok(Some(hold))
}

/// A purchase inside the inventory transaction: its checks, and its writes (with the
/// idempotency record's answer) added to `writes`. Returns the order and its answer.
async fn purchase_step(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    writes: &mut Writes,
    overlay: Option<&mut Overlay>,
    input: &PurchaseInput,
    now: i64,
) -> Result<(Order, String), BookingError> {
    let order = purchase_in(tx, inv, changes, writes, overlay, input, now).await?;
    let body = json(&order)?;
    writes.push_row(
        &KEY_COMPLETED,
        vec![
            Arg::Uuid(input.key.user_id),
            Arg::Text(input.key.route.clone()),
            Arg::Text(input.key.key.clone()),
            Arg::Text(body.clone()),
        ],
        None,
    );
    Ok((order, body))
}

/// The refusal of a purchase that names another event than its hold's.
fn another_event(hold: &Hold, event_id: Uuid) -> Option<BookingError> {
    (hold.event_id != event_id).then(|| {
        BookingError::Invalid(evently_core::Problem::invalid_field(
            "/eventId",
            "the hold is for another event",
        ))
    })
}

/// The checks of a purchase, inside the inventory transaction, and its writes, added
/// to `writes`.
async fn purchase_in(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    writes: &mut Writes,
    overlay: Option<&mut Overlay>,
    input: &PurchaseInput,
    now: i64,
) -> Result<Order, BookingError> {
    let (hold, intent) = match overlay.as_deref() {
        Some(o) => o.purchases.get(&(input.hold_id, input.intent_id)).cloned(),
        None => {
            let sql = format!("{PURCHASE_READ} WHERE h.id = $1");
            let row = query(Sql::assert_safe(sql))
                .bind(input.hold_id)
                .bind(input.intent_id)
                .fetch_optional(&mut *tx)
                .await?;
            row.as_ref()
                .map(|row| Ok::<_, StoreError>((hold_from(row)?, joined_intent_from(row)?)))
                .transpose()?
        }
    }
    .filter(|(h, _)| h.user_id == input.user_id)
    .ok_or(BookingError::HoldNotFound)?;
    if let Some(refusal) = another_event(&hold, inv.event_id) {
        return Err(refusal);
    }
    if overlay
        .as_deref()
        .is_some_and(|o| o.purchased.contains(&hold.id))
    {
        return Err(BookingError::HoldPurchased);
    }
    match hold.status.as_str() {
        "active" => {}
        "purchased" => return Err(BookingError::HoldPurchased),
        _ => return Err(BookingError::HoldExpired),
    }
    let mut wanted = input.seat_ids.clone();
    wanted.sort();
    let mut held = hold.seat_ids.clone();
    held.sort();
    if wanted != held {
        return Err(BookingError::Invalid(evently_core::Problem::invalid_field(
            "/seatIds",
            "must be exactly the hold's seats",
        )));
    }
    if inv.deleted || inv.status == "CANCELLED" {
        return Err(BookingError::NotOnSale("the event is cancelled"));
    }
    let intent = intent
        .filter(|i| i.user_id == input.user_id)
        .ok_or(BookingError::IntentNotFound)?;
    if intent.hold_id != hold.id {
        return Err(BookingError::Invalid(evently_core::Problem::invalid_field(
            "/paymentIntentId",
            "the payment intent is for another hold",
        )));
    }
    if intent.status != "succeeded" {
        return Err(BookingError::PaymentIncomplete(intent.status));
    }
    // Every seat of an active hold is held by it (the hold owns exactly its seats).
    writes.push_row(
        &SEATS_SOLD,
        vec![Arg::Uuid(hold.id), Arg::Uuid(input.order_id)],
        Some(hold.seat_ids.len() as u64),
    );
    let quantity = count(hold.seat_ids.len());
    writes.push_row(
        &ORDER_INSERTED,
        vec![
            Arg::Uuid(input.order_id),
            Arg::Uuid(inv.event_id),
            Arg::Uuid(input.user_id),
            Arg::Uuid(hold.id),
            Arg::Uuid(intent.id),
            Arg::Text(json(&hold.seat_ids)?),
            Arg::Int(quantity),
            Arg::Int(intent.amount),
            Arg::Text(intent.currency.clone()),
            Arg::Int(now),
        ],
        None,
    );
    let mut tickets = Vec::with_capacity(hold.seat_ids.len());
    for seat in &hold.seat_ids {
        tickets.push(Ticket {
            ticket_id: Uuid::now_v7(),
            seat_id: seat.clone(),
            code: random_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?,
            status: "valid".into(),
        });
    }
    for t in &tickets {
        writes.push_row(
            &TICKET_INSERTED,
            vec![
                Arg::Uuid(t.ticket_id),
                Arg::Uuid(input.order_id),
                Arg::Uuid(inv.event_id),
                Arg::Text(t.seat_id.clone()),
                Arg::Text(t.code.clone()),
            ],
            Some(1),
        );
    }
    writes.push_row(
        &HOLD_PURCHASED,
        vec![Arg::Uuid(hold.id), Arg::Int(now)],
        Some(1),
    );
    if hold.kind == HoldKind::Waitlist.as_str() {
        writes.push(
            "UPDATE waitlist SET status = 'claimed', updated_at = $2 WHERE hold_id = $1",
            vec![Arg::Uuid(hold.id), Arg::Int(now)],
            None,
        );
    }
    inv.held -= quantity;
    inv.sold += quantity;
    if let Some(overlay) = overlay {
        overlay.purchased.insert(hold.id);
        *overlay.bought.entry(input.user_id).or_default() += quantity;
    }
    changes.push(
        inv,
        now,
        DomainEvent::OrderPlaced,
        InventoryChange {
            user_id: Some(input.user_id),
            hold_id: Some(hold.id),
            order_id: Some(input.order_id),
            seat_ids: hold.seat_ids.clone(),
            amount: Some(intent.amount),
            currency: Some(intent.currency.clone()),
            ..change(inv)
        },
    );
    tickets.sort_by(|a, b| a.seat_id.cmp(&b.seat_id));
    Ok(Order {
        order_id: input.order_id,
        event_id: inv.event_id,
        user_id: input.user_id,
        hold_id: hold.id,
        payment_intent_id: intent.id,
        seat_ids: hold.seat_ids,
        amount: intent.amount,
        currency: intent.currency,
        status: "confirmed".into(),
        refunded_amount: None,
        cancel_reason: None,
        created_at: evently_bus::envelope::time_from_ms(now),
        tickets,
    })
}
