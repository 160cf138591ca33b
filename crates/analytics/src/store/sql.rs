//! The analytics store's one body, for both engines ([`evently_core::sql`]): the statements
//! are the same text on SQLite and PostgreSQL (`$N` placeholders, `ON CONFLICT`, epoch-ms
//! integers, sums cast to `BIGINT`). What differs (migrations, connections) is in
//! `sqlite.rs` and `postgres.rs`.

use std::collections::BTreeMap;

use evently_core::db::StoreError;
use evently_core::sql::{Db, Row, Sql, Tx, query};
use uuid::Uuid;

use super::{AnalyticsSnapshot, AnalyticsStore, EventFigures, Scope};
use crate::domain::{
    Activity, Change, EventInfo, InventoryFact, InventoryKind, MINUTE_MS, Release,
};

/// The analytics service's tables on either engine: in one SQLite file, or in the
/// `analytics` schema of a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct SqlAnalyticsStore {
    pub(super) db: Db,
}

/// Records `id` as applied; `false` if it already was.
async fn first_time(tx: &mut Tx, id: Uuid, now: i64) -> Result<bool, StoreError> {
    let inserted = query(
        "INSERT INTO applied_events (id, applied_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(inserted == 1)
}

async fn upsert_event(tx: &mut Tx, info: &EventInfo, at: i64) -> Result<(), StoreError> {
    query(
        "INSERT INTO events (event_id, organizer_id, name, currency, status, sale_start, \
         created_at, time_zone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (event_id) DO UPDATE SET organizer_id = excluded.organizer_id, \
         name = excluded.name, currency = excluded.currency, status = excluded.status, \
         sale_start = excluded.sale_start, time_zone = excluded.time_zone",
    )
    .bind(info.event_id)
    .bind(info.organizer_id)
    .bind(&info.name)
    .bind(&info.currency)
    .bind(&info.status)
    .bind(info.sale_start)
    .bind(at)
    .bind(&info.time_zone)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How one inventory change moves the counters: the totals' deltas, then the minute's.
#[derive(Default)]
struct Deltas {
    orders: i64,
    tickets: i64,
    cancellations: i64,
    holds_created: i64,
    holds_expired: i64,
    holds_released: i64,
    holds_cancelled: i64,
    holds_converted: i64,
    waitlist_offers: i64,
    waitlist_length: i64,
    minute: Activity,
    /// `(gross, refunded)` in the change's currency.
    money: (i64, i64),
}

fn deltas(fact: &InventoryFact) -> Deltas {
    let mut d = Deltas::default();
    match fact.kind {
        InventoryKind::Held => {
            d.holds_created = 1;
            d.minute.holds = 1;
        }
        InventoryKind::Offered => {
            d.holds_created = 1;
            d.waitlist_offers = 1;
            // Offers go to waiting entries only, and take them off the list.
            d.waitlist_length = -1;
            d.minute.holds = 1;
        }
        InventoryKind::Released(why) => match why {
            Release::Released => d.holds_released = 1,
            Release::Expired => d.holds_expired = 1,
            Release::Cancelled => d.holds_cancelled = 1,
            Release::Other => {}
        },
        InventoryKind::Placed => {
            d.orders = 1;
            d.tickets = fact.seats;
            d.holds_converted = 1;
            d.minute.orders_placed = 1;
            d.minute.tickets_sold = fact.seats;
            d.money = (fact.amount, 0);
        }
        InventoryKind::Cancelled => {
            // The reverse of a placed order: its order, tickets and money come back out.
            d.orders = -1;
            d.tickets = -fact.seats;
            d.cancellations = 1;
            d.minute.orders_cancelled = 1;
            d.minute.tickets_cancelled = fact.seats;
            d.money = (0, fact.amount);
        }
        InventoryKind::SoldOut => {}
    }
    d
}

async fn apply_waitlist(tx: &mut Tx, event: Uuid, delta: i64) -> Result<(), StoreError> {
    query("INSERT INTO totals (event_id) VALUES ($1) ON CONFLICT (event_id) DO NOTHING")
        .bind(event)
        .execute(&mut *tx)
        .await?;
    query("UPDATE totals SET waitlist_length = waitlist_length + $2 WHERE event_id = $1")
        .bind(event)
        .bind(delta)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn apply_inventory(tx: &mut Tx, fact: &InventoryFact) -> Result<(), StoreError> {
    let event = fact.event_id;
    let a = fact.availability;
    let d = deltas(fact);
    // One statement for the event's row: the figures read from availability only when
    // their inventory version is newer than the row's (a new row has version 0), the
    // counters moved by the deltas, and the moment it sold out kept from the first time.
    // Every `SET` expression reads the row as it was before the statement.
    const UPSERT: &str = "INSERT INTO totals (event_id, capacity, available, held, sold, version, orders, \
         tickets, cancellations, holds_created, holds_expired, holds_released, \
         holds_cancelled, holds_converted, waitlist_offers, waitlist_length, sold_out_at) \
         VALUES ($1, CASE WHEN $6 > 0 THEN $2 ELSE 0 END, CASE WHEN $6 > 0 THEN $3 ELSE 0 END, \
         CASE WHEN $6 > 0 THEN $4 ELSE 0 END, CASE WHEN $6 > 0 THEN $5 ELSE 0 END, \
         CASE WHEN $6 > 0 THEN $6 ELSE 0 END, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17) \
         ON CONFLICT (event_id) DO UPDATE SET \
         capacity = CASE WHEN totals.version < excluded.version THEN excluded.capacity \
         ELSE totals.capacity END, \
         available = CASE WHEN totals.version < excluded.version THEN excluded.available \
         ELSE totals.available END, \
         held = CASE WHEN totals.version < excluded.version THEN excluded.held \
         ELSE totals.held END, \
         sold = CASE WHEN totals.version < excluded.version THEN excluded.sold \
         ELSE totals.sold END, \
         version = CASE WHEN totals.version < excluded.version THEN excluded.version \
         ELSE totals.version END, \
         orders = totals.orders + excluded.orders, \
         tickets = totals.tickets + excluded.tickets, \
         cancellations = totals.cancellations + excluded.cancellations, \
         holds_created = totals.holds_created + excluded.holds_created, \
         holds_expired = totals.holds_expired + excluded.holds_expired, \
         holds_released = totals.holds_released + excluded.holds_released, \
         holds_cancelled = totals.holds_cancelled + excluded.holds_cancelled, \
         holds_converted = totals.holds_converted + excluded.holds_converted, \
         waitlist_offers = totals.waitlist_offers + excluded.waitlist_offers, \
         waitlist_length = totals.waitlist_length + excluded.waitlist_length, \
         sold_out_at = COALESCE(totals.sold_out_at, excluded.sold_out_at)";
    let sold_out_at = (fact.kind == InventoryKind::SoldOut).then_some(fact.at);
    query(UPSERT)
        .bind(event)
        .bind(a.capacity)
        .bind(a.available)
        .bind(a.held)
        .bind(a.sold)
        .bind(a.version)
        .bind(d.orders)
        .bind(d.tickets)
        .bind(d.cancellations)
        .bind(d.holds_created)
        .bind(d.holds_expired)
        .bind(d.holds_released)
        .bind(d.holds_cancelled)
        .bind(d.holds_converted)
        .bind(d.waitlist_offers)
        .bind(d.waitlist_length)
        .bind(sold_out_at)
        .execute(&mut *tx)
        .await?;
    let minute = fact.at.div_euclid(MINUTE_MS) * MINUTE_MS;
    let m = &d.minute;
    if *m != Activity::default() {
        query(
            "INSERT INTO minutes (event_id, minute, holds, orders_placed, orders_cancelled, \
             tickets_sold, tickets_cancelled) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (event_id, minute) DO UPDATE SET \
             holds = minutes.holds + excluded.holds, \
             orders_placed = minutes.orders_placed + excluded.orders_placed, \
             orders_cancelled = minutes.orders_cancelled + excluded.orders_cancelled, \
             tickets_sold = minutes.tickets_sold + excluded.tickets_sold, \
             tickets_cancelled = minutes.tickets_cancelled + excluded.tickets_cancelled",
        )
        .bind(event)
        .bind(minute)
        .bind(m.holds)
        .bind(m.orders_placed)
        .bind(m.orders_cancelled)
        .bind(m.tickets_sold)
        .bind(m.tickets_cancelled)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(currency) = &fact.currency
        && d.money != (0, 0)
    {
        query(
            "INSERT INTO money (event_id, currency, gross, refunded) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id, currency) DO UPDATE SET \
             gross = money.gross + excluded.gross, refunded = money.refunded + excluded.refunded",
        )
        .bind(event)
        .bind(currency)
        .bind(d.money.0)
        .bind(d.money.1)
        .execute(&mut *tx)
        .await?;
        query(
            "INSERT INTO minute_money (event_id, minute, currency, gross, refunded) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id, minute, currency) DO UPDATE SET \
             gross = minute_money.gross + excluded.gross, \
             refunded = minute_money.refunded + excluded.refunded",
        )
        .bind(event)
        .bind(minute)
        .bind(currency)
        .bind(d.money.0)
        .bind(d.money.1)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The `WHERE` condition restricting table rows (by their `event_id`) to `scope`, its
/// parameter `$1` if it has one, and the number of the next parameter.
fn scoped(scope: Scope) -> (&'static str, Option<Uuid>, usize) {
    match scope {
        Scope::Event(id) => ("event_id = $1", Some(id), 2),
        Scope::Organizer(id) => (
            "event_id IN (SELECT event_id FROM events WHERE organizer_id = $1)",
            Some(id),
            2,
        ),
        Scope::Platform => ("1 = 1", None, 1),
    }
}

fn with_scope(sql: String, scope: Scope) -> evently_core::sql::Query {
    let (_, param, _) = scoped(scope);
    let q = query(Sql::assert_safe(sql));
    match param {
        Some(id) => q.bind(id),
        None => q,
    }
}

fn totals_into(row: &Row, f: &mut EventFigures) -> Result<(), StoreError> {
    f.capacity = row.get("capacity")?;
    f.available = row.get("available")?;
    f.held = row.get("held")?;
    f.sold = row.get("sold")?;
    f.version = row.get("version")?;
    f.orders = row.get("orders")?;
    f.tickets = row.get("tickets")?;
    f.cancellations = row.get("cancellations")?;
    f.holds_created = row.get("holds_created")?;
    f.holds_expired = row.get("holds_expired")?;
    f.holds_released = row.get("holds_released")?;
    f.holds_cancelled = row.get("holds_cancelled")?;
    f.holds_converted = row.get("holds_converted")?;
    f.waitlist_offers = row.get("waitlist_offers")?;
    // A sum of changes, so that any order of delivery gives the same figure; on a stream
    // recorded before booking published joins, offers and departures of entries it never
    // saw join take the sum below zero, which reads as nobody waiting.
    f.waitlist_length = row.get::<i64>("waitlist_length")?.max(0);
    f.sold_out_at = row.get("sold_out_at")?;
    Ok(())
}

fn activity_from(row: &Row) -> Result<Activity, StoreError> {
    Ok(Activity {
        holds: row.get("holds")?,
        orders_placed: row.get("orders_placed")?,
        orders_cancelled: row.get("orders_cancelled")?,
        tickets_sold: row.get("tickets_sold")?,
        tickets_cancelled: row.get("tickets_cancelled")?,
        money: BTreeMap::new(),
    })
}

/// Applies `change` of domain event `envelope_id` in `tx` unless it was applied already;
/// `false` for a redelivery.
async fn apply_in(
    tx: &mut Tx,
    envelope_id: Uuid,
    change: &Change,
    now: i64,
) -> Result<bool, StoreError> {
    if !first_time(tx, envelope_id, now).await? {
        return Ok(false);
    }
    match change {
        Change::Event(info, at) => upsert_event(tx, info, *at).await?,
        Change::Status { event_id, status } => {
            query("UPDATE events SET status = $2 WHERE event_id = $1")
                .bind(*event_id)
                .bind(status)
                .execute(&mut *tx)
                .await?;
        }
        Change::Deleted { event_id } => {
            query("UPDATE events SET deleted = 1 WHERE event_id = $1")
                .bind(*event_id)
                .execute(&mut *tx)
                .await?;
        }
        Change::Inventory(fact) => apply_inventory(tx, fact).await?,
        Change::Waitlist { event_id, delta } => apply_waitlist(tx, *event_id, *delta).await?,
    }
    Ok(true)
}

#[async_trait::async_trait]
impl AnalyticsStore for SqlAnalyticsStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(envelope.id = %envelope_id, event.id = %change.event_id()))]
    async fn apply(
        &self,
        envelope_id: Uuid,
        change: &Change,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        let applied = apply_in(&mut tx, envelope_id, change, now).await?;
        tx.commit().await?;
        Ok(applied)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(batch.len = batch.len()))]
    async fn apply_batch(
        &self,
        batch: &[(Uuid, Change)],
        now: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.db.begin().await?;
        let mut applied = Vec::with_capacity(batch.len());
        for (envelope_id, change) in batch {
            applied.push(apply_in(&mut tx, *envelope_id, change, now).await?);
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn event(&self, event_id: Uuid) -> Result<Option<EventFigures>, StoreError> {
        Ok(self
            .events(Scope::Event(event_id))
            .await?
            .into_iter()
            .next())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn events(&self, scope: Scope) -> Result<Vec<EventFigures>, StoreError> {
        let (condition, _, _) = scoped(scope);
        let mut conn = self.db.reader().acquire().await?;
        let mut all: BTreeMap<Uuid, EventFigures> = BTreeMap::new();
        let described = with_scope(
            format!(
                "SELECT event_id, organizer_id, name, status, sale_start, created_at, deleted, \
                 time_zone FROM events WHERE {condition}"
            ),
            scope,
        )
        .fetch_all(&mut conn)
        .await?;
        for row in &described {
            let id: Uuid = row.get("event_id")?;
            let deleted: i64 = row.get("deleted")?;
            let f = all.entry(id).or_default();
            f.event_id = id;
            f.organizer_id = Some(row.get("organizer_id")?);
            f.name = row.get("name")?;
            f.status = row.get("status")?;
            f.sale_start = Some(row.get("sale_start")?);
            f.time_zone = row.get("time_zone")?;
            f.created_at = Some(row.get("created_at")?);
            f.deleted = deleted != 0;
        }
        let totals = with_scope(format!("SELECT * FROM totals WHERE {condition}"), scope)
            .fetch_all(&mut conn)
            .await?;
        for row in &totals {
            let id: Uuid = row.get("event_id")?;
            let f = all.entry(id).or_default();
            f.event_id = id;
            totals_into(row, f)?;
        }
        let money = with_scope(
            format!("SELECT event_id, currency, gross, refunded FROM money WHERE {condition}"),
            scope,
        )
        .fetch_all(&mut conn)
        .await?;
        for row in &money {
            let id: Uuid = row.get("event_id")?;
            if let Some(f) = all.get_mut(&id) {
                f.money.insert(
                    row.get("currency")?,
                    (row.get("gross")?, row.get("refunded")?),
                );
            }
        }
        Ok(all.into_values().collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn minutes(
        &self,
        scope: Scope,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Activity)>, StoreError> {
        let (condition, _, next) = scoped(scope);
        let (a, b) = (next, next + 1);
        let mut conn = self.db.reader().acquire().await?;
        let counts = with_scope(
            format!(
                "SELECT minute, CAST(SUM(holds) AS BIGINT) AS holds, \
                 CAST(SUM(orders_placed) AS BIGINT) AS orders_placed, \
                 CAST(SUM(orders_cancelled) AS BIGINT) AS orders_cancelled, \
                 CAST(SUM(tickets_sold) AS BIGINT) AS tickets_sold, \
                 CAST(SUM(tickets_cancelled) AS BIGINT) AS tickets_cancelled \
                 FROM minutes WHERE {condition} AND minute >= ${a} AND minute < ${b} \
                 GROUP BY minute ORDER BY minute"
            ),
            scope,
        )
        .bind(from)
        .bind(to)
        .fetch_all(&mut conn)
        .await?;
        let mut all: BTreeMap<i64, Activity> = BTreeMap::new();
        for row in &counts {
            all.insert(row.get("minute")?, activity_from(row)?);
        }
        let money = with_scope(
            format!(
                "SELECT minute, currency, CAST(SUM(gross) AS BIGINT) AS gross, \
                 CAST(SUM(refunded) AS BIGINT) AS refunded FROM minute_money \
                 WHERE {condition} AND minute >= ${a} AND minute < ${b} \
                 GROUP BY minute, currency ORDER BY minute, currency"
            ),
            scope,
        )
        .bind(from)
        .bind(to)
        .fetch_all(&mut conn)
        .await?;
        for row in &money {
            all.entry(row.get("minute")?).or_default().money.insert(
                row.get("currency")?,
                (row.get("gross")?, row.get("refunded")?),
            );
        }
        Ok(all.into_iter().collect())
    }

    async fn snapshot(&self) -> Result<AnalyticsSnapshot, StoreError> {
        let events = self.events(Scope::Platform).await?;
        let mut conn = self.db.reader().acquire().await?;
        let mut minutes: BTreeMap<(Uuid, i64), Activity> = BTreeMap::new();
        for row in &query("SELECT * FROM minutes").fetch_all(&mut conn).await? {
            minutes.insert(
                (row.get("event_id")?, row.get("minute")?),
                activity_from(row)?,
            );
        }
        for row in &query("SELECT * FROM minute_money")
            .fetch_all(&mut conn)
            .await?
        {
            minutes
                .entry((row.get("event_id")?, row.get("minute")?))
                .or_default()
                .money
                .insert(
                    row.get("currency")?,
                    (row.get("gross")?, row.get("refunded")?),
                );
        }
        Ok(AnalyticsSnapshot {
            events,
            minutes: minutes.into_iter().map(|((e, m), a)| (e, m, a)).collect(),
        })
    }
}
