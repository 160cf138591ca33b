//! An event's inventory inside its transaction: the lock on its row, the sweep of expired
//! holds, best-available candidates, the catalog's snapshots turned into seats and counters,
//! the event-cancellation saga, and sending a transaction's pending writes.

use evently_core::sql::{On, Pool, Sql, Tx, query};

use evently_bus::catalog::{EventSnapshot, InventoryChange};
use evently_bus::envelope::time_to_ms as to_ms;
use evently_bus::{DomainEvent, Envelope};
use evently_core::db::StoreError;
use uuid::Uuid;

use crate::domain::{
    Candidate, EVENT_CANCELLED, GA_SECTION, HoldStatus, Inventory, OrderId, Policy, WaitlistStatus,
    ga_seat_id,
};
use crate::error::BookingError;
use crate::sold_out::SoldOutBoard;
use crate::store::{Writes, count, json, placeholders};

use super::{
    holds::end_hold,
    purchase::cancel_in,
    rows::{HOLD_COLUMNS, INVENTORY_READ, hold_from, inventory_from},
    sql::send_writes,
    waitlist::{EntryChange, finish, waitlist_changed},
};

/// The changes of one transaction: the envelopes to append, whether seats were freed
/// (waiting buyers may be offered them), and the counters before the transaction.
pub(super) struct Changes {
    pub(super) envelopes: Vec<Envelope>,
    pub(super) freed: bool,
    pub(super) was_available: i64,
    pub(super) was_fully_sold: bool,
    pub(super) was_sweep_at: i64,
}

impl Changes {
    pub(super) fn new(inv: &Inventory) -> Self {
        Self {
            envelopes: Vec::new(),
            freed: false,
            was_available: inv.available(),
            was_fully_sold: inv.fully_sold(),
            was_sweep_at: inv.sweep_at,
        }
    }

    /// Records one inventory change (the caller already moved the counters).
    pub(super) fn push(
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

pub(super) fn change(inv: &Inventory) -> InventoryChange {
    InventoryChange::of(inv.event_id, inv.availability())
}

/// An event's inventory row.
pub(super) async fn fetch_inventory<'a>(
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
pub(super) async fn lock_inventory(
    tx: &mut Tx,
    event_id: Uuid,
) -> Result<Option<Inventory>, StoreError> {
    let row = query(tx.for_update(INVENTORY_READ, ""))
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(inventory_from).transpose()
}

/// Begins an inventory transaction on `event_id`: locks its row and sweeps its
/// expired holds (whatever `sweep_at` says when `force`, as the expiry task does once
/// it has seen a hold due). `None` when booking does not know the event.
pub(super) async fn open_event(
    pool: &Pool,
    event_id: Uuid,
    now: i64,
    force: bool,
) -> Result<Option<(Tx, Inventory, Changes, usize)>, StoreError> {
    // Every inventory change reads and decides before it writes, so it needs no savepoint
    // of SQLite's group commit; the sweep, whose writes a refusal may follow, asks for one.
    let mut tx = pool.begin_decided().await?;
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

/// Ends the event's holds that expired at `now`, when a sweep is due.
pub(super) async fn sweep(
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
    if !expired.is_empty() {
        // A refusal of the request that swept takes the sweep back with it, and only it.
        tx.isolate();
    }
    for hold in &expired {
        end_hold(tx, inv, changes, hold, HoldStatus::Expired, now).await?;
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
pub(super) async fn candidates(
    tx: &mut Tx,
    event_id: Uuid,
    section: Option<&str>,
    limit: i64,
) -> Result<Vec<Candidate>, StoreError> {
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
pub(super) async fn flush(
    tx: &mut Tx,
    writes: &Writes,
    envelopes: &[Envelope],
) -> Result<(), StoreError> {
    // Each statement's changed rows are checked as it is sent.
    send_writes(tx, writes, envelopes).await.map(drop)
}

/// The seats of a new inventory: the layout's, or numbered general-admission places.
pub(super) fn seats_of(snapshot: &EventSnapshot) -> Vec<(String, String, String, i64)> {
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

pub(super) async fn insert_seats(
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

pub(super) async fn create_inventory(
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
pub(super) async fn update_inventory(
    tx: &mut Tx,
    snapshot: &EventSnapshot,
    now: i64,
    policy: Policy,
    sold_out: Option<&SoldOutBoard>,
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
    finish(
        tx,
        &mut inv,
        changes,
        now,
        policy,
        Writes::default(),
        sold_out,
    )
    .await
}

/// The event is cancelled or deleted: every live hold ends, every order is cancelled
/// and refunded, the waitlist closes.
pub(super) async fn cancel_event(
    tx: &mut Tx,
    event_id: Uuid,
    deleted: bool,
    now: i64,
    policy: Policy,
    sold_out: Option<&SoldOutBoard>,
) -> Result<(), BookingError> {
    let Some(mut inv) = lock_inventory(tx, event_id).await? else {
        return Ok(());
    };
    query("UPDATE inventories SET status = 'CANCELLED', deleted = $2 WHERE event_id = $1")
        .bind(event_id)
        .bind(i64::from(deleted || inv.deleted))
        .execute(&mut *tx)
        .await?;
    inv.status = EVENT_CANCELLED.into();
    let mut changes = Changes::new(&inv);
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = $1 AND status = 'active'");
    let holds = query(Sql::assert_safe(sql))
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await?;
    for row in &holds {
        let hold = hold_from(row)?;
        end_hold(
            tx,
            &mut inv,
            &mut changes,
            &hold,
            HoldStatus::Cancelled,
            now,
        )
        .await?;
    }
    let orders: Vec<OrderId> =
        query("SELECT id FROM orders WHERE event_id = $1 AND status = 'confirmed' ORDER BY id")
            .bind(event_id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get("id").map(OrderId))
            .collect::<Result<_, _>>()?;
    for order in orders {
        cancel_in(tx, &mut inv, &mut changes, order, "event-cancelled", now).await?;
    }
    let open = query(
        "SELECT user_id, quantity, status FROM waitlist WHERE event_id = $1 \
         AND status IN ('waiting', 'offered') ORDER BY seq",
    )
    .bind(event_id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|row| {
        let status: String = row.get("status")?;
        Ok(EntryChange {
            user_id: row.get("user_id")?,
            quantity: row.get("quantity")?,
            waiting: status == WaitlistStatus::Waiting.as_str(),
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    query(
        "UPDATE waitlist SET status = 'closed', updated_at = $2 WHERE event_id = $1 \
         AND status IN ('waiting', 'offered')",
    )
    .bind(event_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let closed = waitlist_changed(tx, &inv, false, &open, "event-cancelled", now).await?;
    changes.envelopes.extend(closed);
    finish(
        tx,
        &mut inv,
        changes,
        now,
        policy,
        Writes::default(),
        sold_out,
    )
    .await
}
