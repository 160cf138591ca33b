//! The recommendations store's one body, for both engines ([`evently_core::sql`]): the
//! statements are the same text on SQLite and PostgreSQL (`$N` placeholders, `ON CONFLICT`,
//! epoch-ms integers). What differs (migrations, connections) is in `sqlite.rs` and
//! `postgres.rs`.

use evently_core::db::StoreError;
use evently_core::sql::{Db, Query, Row, Sql, Tx, query};
use uuid::Uuid;

use super::{
    CatalogChange, ImportedOrder, MAX_EVENTS_PER_BUYER, MIN_PAIR_BUYERS, OrderChange,
    PreferencesChange, RecsSnapshot, RecsStore,
};
use crate::domain::rank::{CoEdge, Purchase};
use crate::domain::{EventFeatures, EventId, EventStatus, Favourites};

/// The recommendations service's tables on either engine: in one SQLite file, or in the
/// `recs` schema of a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct SqlRecsStore {
    pub(super) db: Db,
}

const CATALOGUE_COLUMNS: &str = "event_id, organizer_id, name, description, event_type, tags, \
     city, venue_id, base_price, currency, event_date, status";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt {what} column: {e}"))
}

fn json_list(what: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

fn features_from_row(row: &Row) -> Result<EventFeatures, StoreError> {
    let tags: String = row.get("tags")?;
    let status: String = row.get("status")?;
    Ok(EventFeatures {
        id: EventId(row.get("event_id")?),
        organizer_id: row.get("organizer_id")?,
        name: row.get("name")?,
        description: row.get("description")?,
        event_type: row.get("event_type")?,
        tags: serde_json::from_str(&tags).map_err(|e| corrupt("tags", e))?,
        city: row.get("city")?,
        venue_id: row.get("venue_id")?,
        base_price: row.get("base_price")?,
        currency: row.get("currency")?,
        event_date: row.get("event_date")?,
        status: EventStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
    })
}

/// Binds `f`'s catalogue columns (`CATALOGUE_COLUMNS`, in order) and `updated_at` to `q`.
fn bind_features(q: Query, f: &EventFeatures, now: i64) -> Result<Query, StoreError> {
    let tags = serde_json::to_string(&f.tags).map_err(|e| StoreError::Other(e.into()))?;
    Ok(q.bind(f.id.0)
        .bind(f.organizer_id)
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.event_type)
        .bind(tags)
        .bind(&f.city)
        .bind(f.venue_id)
        .bind(f.base_price)
        .bind(&f.currency)
        .bind(f.event_date)
        .bind(f.status.as_str())
        .bind(now))
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

/// Adds `delta` to the count of buyers of both `a` and `b`, in both directions; a count
/// that reaches zero is removed.
async fn bump_pair(tx: &mut Tx, a: Uuid, b: Uuid, delta: i64) -> Result<(), StoreError> {
    for (x, y) in [(a, b), (b, a)] {
        query(
            "INSERT INTO item_pairs (a, b, together) VALUES ($1, $2, $3) \
             ON CONFLICT (a, b) DO UPDATE SET together = item_pairs.together + excluded.together",
        )
        .bind(x)
        .bind(y)
        .bind(delta)
        .execute(&mut *tx)
        .await?;
    }
    query("DELETE FROM item_pairs WHERE ((a = $1 AND b = $2) OR (a = $2 AND b = $1)) AND together <= 0")
        .bind(a)
        .bind(b)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Adds `delta` to every pair among `events`.
async fn bump_all_pairs(tx: &mut Tx, events: &[Uuid], delta: i64) -> Result<(), StoreError> {
    for (i, a) in events.iter().enumerate() {
        for b in &events[i + 1..] {
            bump_pair(tx, *a, *b, delta).await?;
        }
    }
    Ok(())
}

/// The events `user` owns, other than `except`.
async fn owned_except(tx: &mut Tx, user: Uuid, except: Uuid) -> Result<Vec<Uuid>, StoreError> {
    query("SELECT event_id FROM ownership WHERE user_id = $1 AND event_id <> $2 ORDER BY event_id")
        .bind(user)
        .bind(except)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get("event_id"))
        .collect()
}

async fn bump_buyers(tx: &mut Tx, event: Uuid, delta: i64) -> Result<(), StoreError> {
    query(
        "INSERT INTO item_stats (event_id, buyers) VALUES ($1, $2) \
         ON CONFLICT (event_id) DO UPDATE SET buyers = item_stats.buyers + excluded.buyers",
    )
    .bind(event)
    .bind(delta)
    .execute(&mut *tx)
    .await?;
    query("DELETE FROM item_stats WHERE event_id = $1 AND buyers <= 0")
        .bind(event)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A first order of `change.user_id` for `change.event_id`: one more buyer, and pairs with
/// the buyer's other events while they own at most [`MAX_EVENTS_PER_BUYER`].
async fn gain(tx: &mut Tx, change: &OrderChange) -> Result<(), StoreError> {
    let (user, event) = (change.user_id, change.event_id.0);
    query("INSERT INTO ownership (user_id, event_id, orders, last_at) VALUES ($1, $2, 1, $3)")
        .bind(user)
        .bind(event)
        .bind(change.at)
        .execute(&mut *tx)
        .await?;
    bump_buyers(tx, event, 1).await?;
    let others = owned_except(tx, user, event).await?;
    let owned = i64::try_from(others.len()).unwrap_or(i64::MAX) + 1;
    if owned <= MAX_EVENTS_PER_BUYER {
        for other in others {
            bump_pair(tx, event, other, 1).await?;
        }
    } else if owned == MAX_EVENTS_PER_BUYER + 1 {
        // The buyer just crossed the line: their pairs no longer count.
        bump_all_pairs(tx, &others, -1).await?;
    }
    Ok(())
}

/// The last live order of `change.user_id` for `change.event_id` was cancelled: the reverse
/// of [`gain`].
async fn lose(tx: &mut Tx, change: &OrderChange) -> Result<(), StoreError> {
    let (user, event) = (change.user_id, change.event_id.0);
    query("DELETE FROM ownership WHERE user_id = $1 AND event_id = $2")
        .bind(user)
        .bind(event)
        .execute(&mut *tx)
        .await?;
    bump_buyers(tx, event, -1).await?;
    let others = owned_except(tx, user, event).await?;
    let owned_before = i64::try_from(others.len()).unwrap_or(i64::MAX) + 1;
    if owned_before <= MAX_EVENTS_PER_BUYER {
        for other in others {
            bump_pair(tx, event, other, -1).await?;
        }
    } else if owned_before == MAX_EVENTS_PER_BUYER + 1 {
        // Back under the line: the remaining events' pairs count again.
        bump_all_pairs(tx, &others, 1).await?;
    }
    Ok(())
}

/// Rows per multi-row `INSERT` of an import: well under both engines' bound on parameters.
const IMPORT_ROWS: usize = 400;

impl SqlRecsStore {
    /// [`RecsStore::import`]: buyer and pair counts are computed from the ownership rows in
    /// SQL, under the same rules as the incremental counts.
    async fn import_world(
        &self,
        events: &[EventFeatures],
        orders: &[ImportedOrder],
        favourites: &[PreferencesChange],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        let held: i64 = query("SELECT COUNT(*) AS n FROM ownership")
            .fetch_one(&mut tx)
            .await?
            .get("n")?;
        if held > 0 {
            return Err(StoreError::Other(anyhow::anyhow!(
                "an import needs an empty store"
            )));
        }
        let rows = |columns: usize, n: usize| {
            (0..n)
                .map(|r| {
                    let cells: Vec<String> = (1..=columns)
                        .map(|c| format!("${}", r * columns + c))
                        .collect();
                    format!("({})", cells.join(", "))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for chunk in events.chunks(IMPORT_ROWS) {
            let sql = Sql::assert_safe(format!(
                "INSERT INTO catalogue ({CATALOGUE_COLUMNS}, updated_at) VALUES {}",
                rows(13, chunk.len())
            ));
            let mut q = query(sql);
            for f in chunk {
                q = bind_features(q, f, now)?;
            }
            q.execute(&mut tx).await?;
        }
        // (orders, latest) per user and event, in key order.
        let mut owned: std::collections::BTreeMap<(Uuid, Uuid), (i64, i64)> =
            std::collections::BTreeMap::new();
        for o in orders {
            let entry = owned.entry((o.user, o.event.0)).or_insert((0, o.at));
            entry.0 += 1;
            entry.1 = entry.1.max(o.at);
        }
        let owned: Vec<_> = owned.into_iter().collect();
        for chunk in owned.chunks(IMPORT_ROWS) {
            let sql = Sql::assert_safe(format!(
                "INSERT INTO ownership (user_id, event_id, orders, last_at) VALUES {}",
                rows(4, chunk.len())
            ));
            let mut q = query(sql);
            for ((user, event), (n, at)) in chunk {
                q = q.bind(*user).bind(*event).bind(*n).bind(*at);
            }
            q.execute(&mut tx).await?;
        }
        query(
            "INSERT INTO item_stats (event_id, buyers) \
             SELECT event_id, COUNT(*) FROM ownership GROUP BY event_id",
        )
        .execute(&mut tx)
        .await?;
        query(
            "INSERT INTO item_pairs (a, b, together) \
             SELECT x.event_id, y.event_id, COUNT(*) FROM ownership x \
             JOIN ownership y ON y.user_id = x.user_id AND y.event_id <> x.event_id \
             WHERE x.user_id IN \
             (SELECT user_id FROM ownership GROUP BY user_id HAVING COUNT(*) <= $1) \
             GROUP BY x.event_id, y.event_id",
        )
        .bind(MAX_EVENTS_PER_BUYER)
        .execute(&mut tx)
        .await?;
        // The newest document per user.
        let mut newest: std::collections::BTreeMap<Uuid, &PreferencesChange> =
            std::collections::BTreeMap::new();
        for change in favourites {
            let slot = newest.entry(change.user_id).or_insert(change);
            if slot.version < change.version {
                *slot = change;
            }
        }
        let newest: Vec<&PreferencesChange> = newest.into_values().collect();
        for chunk in newest.chunks(IMPORT_ROWS) {
            let sql = Sql::assert_safe(format!(
                "INSERT INTO favourites (user_id, version, cities, types, updated_at) VALUES {}",
                rows(5, chunk.len())
            ));
            let mut q = query(sql);
            for change in chunk {
                let cities = serde_json::to_string(&change.cities)
                    .map_err(|e| StoreError::Other(e.into()))?;
                let types = serde_json::to_string(&change.types)
                    .map_err(|e| StoreError::Other(e.into()))?;
                q = q
                    .bind(change.user_id)
                    .bind(change.version)
                    .bind(cities)
                    .bind(types)
                    .bind(now);
            }
            q.execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl RecsStore for SqlRecsStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(envelope.id = %envelope_id))]
    async fn apply_catalog(
        &self,
        envelope_id: Uuid,
        change: &CatalogChange,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        if !first_time(&mut tx, envelope_id, now).await? {
            return Ok(false);
        }
        match change {
            CatalogChange::Upsert(f) => {
                let upsert = query(
                    "INSERT INTO catalogue (event_id, organizer_id, name, description, event_type, \
                     tags, city, venue_id, base_price, currency, event_date, status, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (event_id) DO UPDATE SET organizer_id = excluded.organizer_id, \
                     name = excluded.name, description = excluded.description, \
                     event_type = excluded.event_type, tags = excluded.tags, city = excluded.city, \
                     venue_id = excluded.venue_id, base_price = excluded.base_price, \
                     currency = excluded.currency, event_date = excluded.event_date, \
                     status = excluded.status, updated_at = excluded.updated_at",
                );
                bind_features(upsert, f, now)?.execute(&mut tx).await?;
            }
            CatalogChange::Status { event_id, status } => {
                query("UPDATE catalogue SET status = $2, updated_at = $3 WHERE event_id = $1")
                    .bind(event_id.0)
                    .bind(status.as_str())
                    .bind(now)
                    .execute(&mut tx)
                    .await?;
            }
            CatalogChange::Deleted { event_id } => {
                query("DELETE FROM catalogue WHERE event_id = $1")
                    .bind(event_id.0)
                    .execute(&mut tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(envelope.id = %envelope_id, event.id = %change.event_id, placed = change.placed)
    )]
    async fn apply_order(
        &self,
        envelope_id: Uuid,
        change: &OrderChange,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        if !first_time(&mut tx, envelope_id, now).await? {
            return Ok(false);
        }
        let read = tx.for_update(
            "SELECT orders FROM ownership WHERE user_id = $1 AND event_id = $2",
            "",
        );
        let orders: Option<i64> = query(read)
            .bind(change.user_id)
            .bind(change.event_id.0)
            .fetch_optional(&mut tx)
            .await?
            .map(|r| r.get("orders"))
            .transpose()?;
        match (change.placed, orders) {
            (true, None) => gain(&mut tx, change).await?,
            (true, Some(_)) => {
                query(
                    "UPDATE ownership SET orders = orders + 1, \
                     last_at = CASE WHEN last_at > $3 THEN last_at ELSE $3 END \
                     WHERE user_id = $1 AND event_id = $2",
                )
                .bind(change.user_id)
                .bind(change.event_id.0)
                .bind(change.at)
                .execute(&mut tx)
                .await?;
            }
            (false, Some(n)) if n > 1 => {
                query(
                    "UPDATE ownership SET orders = orders - 1 WHERE user_id = $1 AND event_id = $2",
                )
                .bind(change.user_id)
                .bind(change.event_id.0)
                .execute(&mut tx)
                .await?;
            }
            (false, Some(_)) => lose(&mut tx, change).await?,
            // A cancellation of an order this projection never saw placed.
            (false, None) => {}
        }
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(events = events.len(), orders = orders.len()))]
    async fn import(
        &self,
        events: &[EventFeatures],
        orders: &[ImportedOrder],
        favourites: &[PreferencesChange],
        now: i64,
    ) -> Result<(), StoreError> {
        self.import_world(events, orders, favourites, now).await
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(envelope.id = %envelope_id, user.id = %change.user_id, version = change.version)
    )]
    async fn apply_preferences(
        &self,
        envelope_id: Uuid,
        change: &PreferencesChange,
        now: i64,
    ) -> Result<bool, StoreError> {
        let cities =
            serde_json::to_string(&change.cities).map_err(|e| StoreError::Other(e.into()))?;
        let types =
            serde_json::to_string(&change.types).map_err(|e| StoreError::Other(e.into()))?;
        let mut tx = self.db.begin().await?;
        if !first_time(&mut tx, envelope_id, now).await? {
            return Ok(false);
        }
        query(
            "INSERT INTO favourites (user_id, version, cities, types, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET version = excluded.version, \
             cities = excluded.cities, types = excluded.types, updated_at = excluded.updated_at \
             WHERE favourites.version < excluded.version",
        )
        .bind(change.user_id)
        .bind(change.version)
        .bind(cities)
        .bind(types)
        .bind(now)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %user))]
    async fn favourites(&self, user: Uuid) -> Result<Favourites, StoreError> {
        let Some(row) = query("SELECT cities, types FROM favourites WHERE user_id = $1")
            .bind(user)
            .fetch_optional(self.db.reader())
            .await?
        else {
            return Ok(Favourites::default());
        };
        let cities: String = row.get("cities")?;
        let types: String = row.get("types")?;
        Ok(Favourites::new(
            &json_list("cities", &cities)?,
            &json_list("types", &types)?,
        ))
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn events(&self) -> Result<Vec<EventFeatures>, StoreError> {
        query(Sql::assert_safe(format!(
            "SELECT {CATALOGUE_COLUMNS} FROM catalogue ORDER BY event_id"
        )))
        .fetch_all(self.db.reader())
        .await?
        .iter()
        .map(features_from_row)
        .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %user))]
    async fn purchases(&self, user: Uuid) -> Result<Vec<Purchase>, StoreError> {
        query("SELECT event_id, last_at FROM ownership WHERE user_id = $1 ORDER BY event_id")
            .bind(user)
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(Purchase {
                    event_id: EventId(r.get("event_id")?),
                    at: r.get("last_at")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(anchors = anchors.len()))]
    async fn co_purchases(
        &self,
        anchors: &[EventId],
        per_anchor: usize,
    ) -> Result<Vec<CoEdge>, StoreError> {
        if anchors.is_empty() || per_anchor == 0 {
            return Ok(Vec::new());
        }
        // One index range per anchor (`item_pairs_top`, most shared buyers first), each cut
        // at `per_anchor`, so a best seller with thousands of partners costs no more than
        // any other event.
        let per_anchor = i64::try_from(per_anchor).unwrap_or(i64::MAX);
        let parts: Vec<String> = (0..anchors.len())
            .map(|i| {
                format!(
                    "SELECT * FROM (SELECT a, b, together FROM item_pairs \
                     WHERE a = ${} AND together >= $1 ORDER BY together DESC, b LIMIT $2) t{i}",
                    i + 3
                )
            })
            .collect();
        let sql = Sql::assert_safe(format!(
            "SELECT p.a, p.b, p.together, sa.buyers AS buyers_a, sb.buyers AS buyers_b \
             FROM ({}) p \
             JOIN item_stats sa ON sa.event_id = p.a \
             JOIN item_stats sb ON sb.event_id = p.b \
             ORDER BY p.a, p.together DESC, p.b",
            parts.join(" UNION ALL ")
        ));
        let mut q = query(sql).bind(MIN_PAIR_BUYERS).bind(per_anchor);
        for a in anchors {
            q = q.bind(a.0);
        }
        q.fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|row| {
                Ok(CoEdge {
                    anchor: EventId(row.get("a")?),
                    other: EventId(row.get("b")?),
                    together: row.get("together")?,
                    anchor_buyers: row.get("buyers_a")?,
                    other_buyers: row.get("buyers_b")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn popularity(&self, since: i64) -> Result<Vec<(EventId, i64, i64)>, StoreError> {
        // Buyers from their running count; recent ones by a range over `ownership_recent`,
        // so the cost follows the week's sales, not every order ever placed.
        let mut conn = self.db.reader().acquire().await?;
        let mut figures: std::collections::BTreeMap<Uuid, (i64, i64)> =
            query("SELECT event_id, buyers FROM item_stats")
                .fetch_all(&mut conn)
                .await?
                .iter()
                .map(|r| Ok((r.get("event_id")?, (r.get("buyers")?, 0))))
                .collect::<Result<_, StoreError>>()?;
        let recent = query(
            "SELECT event_id, COUNT(*) AS recent FROM ownership WHERE last_at >= $1 \
             GROUP BY event_id",
        )
        .bind(since)
        .fetch_all(&mut conn)
        .await?;
        for row in &recent {
            let id: Uuid = row.get("event_id")?;
            figures.entry(id).or_default().1 = row.get("recent")?;
        }
        Ok(figures
            .into_iter()
            .map(|(id, (buyers, recent))| (EventId(id), buyers, recent))
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn snapshot(&self) -> Result<RecsSnapshot, StoreError> {
        let events = self.events().await?;
        let ownership =
            query("SELECT user_id, event_id, orders FROM ownership ORDER BY user_id, event_id")
                .fetch_all(self.db.reader())
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.get("user_id")?,
                        EventId(r.get("event_id")?),
                        r.get("orders")?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?;
        let buyers = query("SELECT event_id, buyers FROM item_stats ORDER BY event_id")
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|r| Ok((EventId(r.get("event_id")?), r.get("buyers")?)))
            .collect::<Result<_, StoreError>>()?;
        let pairs = query("SELECT a, b, together FROM item_pairs ORDER BY a, b")
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    EventId(r.get("a")?),
                    EventId(r.get("b")?),
                    r.get("together")?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let favourites =
            query("SELECT user_id, version, cities, types FROM favourites ORDER BY user_id")
                .fetch_all(self.db.reader())
                .await?
                .iter()
                .map(|r| {
                    let cities: String = r.get("cities")?;
                    let types: String = r.get("types")?;
                    Ok((
                        r.get("user_id")?,
                        r.get("version")?,
                        json_list("cities", &cities)?,
                        json_list("types", &types)?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?;
        Ok(RecsSnapshot {
            events,
            ownership,
            buyers,
            pairs,
            favourites,
        })
    }
}
