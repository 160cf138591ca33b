//! The events store: one trait, two backends (SQLite, PostgreSQL), one conformance suite.
//!
//! Every method that changes state writes the change's domain events to the outbox in the
//! same transaction, so a change and its events are committed together or not at all.
//! Updates are optimistic: a write names the version it was computed from, and the store
//! refuses it ([`StoreError::Conflict`] on `events_version`) if the row moved on meanwhile.
//! The sale scheduler's flip is one conditional `UPDATE … WHERE status = 'UPCOMING' AND
//! sale_start <= now`, so any number of processes may run it: each row flips once, and only
//! the process whose update flipped it writes its `EventStatusChanged`.
//!
//! Booking's inventory figures are applied the same way: one conditional `UPDATE … WHERE
//! availability_version < $2`, so a redelivered or out-of-order figure changes nothing, and
//! the status flip it calls for (ON_SALE ⇄ SOLD_OUT) is made on the row that update locked,
//! in the same transaction, with its `EventStatusChanged`. A figure does not bump the event's
//! `version` (booking changes it far more often than organizers edit details, and an
//! organizer's update never overwrites it); a flip does, like any status change.
//!
//! The SQL is the same on both engines (portable `$N` placeholders, `RETURNING`, epoch-ms
//! integers), so both backends are generated from [`backend!`]; what differs — pools, the
//! outbox append, engine tuning — is given per backend in `sqlite.rs` and `postgres.rs`.

use async_trait::async_trait;
use evently_bus::Envelope;
use evently_core::db::StoreError;

use crate::domain::{Event, EventFilter, EventId, EventStatus, Page, Venue, VenueId};

pub mod conformance;
pub mod postgres;
pub mod sqlite;

/// The constraint name of a refused optimistic write.
pub const VERSION_CONFLICT: &str = "events_version";

/// What storing one of booking's availability figures did.
#[derive(Debug, Clone, PartialEq)]
pub struct AvailabilityApplied {
    /// The event as stored afterwards.
    pub event: Event,
    /// The status before, when the figure flipped it.
    pub flipped_from: Option<EventStatus>,
}

/// Everything the events service persists.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new venue with its `VenueCreated`.
    async fn insert_venue(&self, venue: &Venue, event: &Envelope) -> Result<(), StoreError>;

    /// The venue with this id.
    async fn venue(&self, id: VenueId) -> Result<Option<Venue>, StoreError>;

    /// One page of venues, oldest first, and how many there are.
    async fn list_venues(&self, page: Page) -> Result<(Vec<Venue>, u64), StoreError>;

    /// Stores a new event with its `EventCreated`.
    async fn insert_event(&self, event: &Event, created: &Envelope) -> Result<(), StoreError>;

    /// The event with this id.
    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError>;

    /// One page of the events matching `filter`, by date then id, and how many match.
    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<(Vec<Event>, u64), StoreError>;

    /// Replaces the event with `event` (its next version) if the stored version is still
    /// `expected_version`, writing `events` to the outbox. [`StoreError::NotFound`] if it is
    /// gone, [`StoreError::Conflict`] on [`VERSION_CONFLICT`] if it moved on.
    async fn update_event(
        &self,
        event: &Event,
        expected_version: i64,
        events: &[Envelope],
    ) -> Result<(), StoreError>;

    /// Deletes the event if its version is still `expected_version`, writing `deleted`.
    async fn delete_event(
        &self,
        id: EventId,
        expected_version: i64,
        deleted: &Envelope,
    ) -> Result<(), StoreError>;

    /// Flips every UPCOMING event whose sale started at or before `now` to ON_SALE, each
    /// with its `EventStatusChanged`; returns the events this call flipped.
    async fn open_due_sales(&self, now: i64) -> Result<Vec<Event>, StoreError>;

    /// Stores booking's figure of `available` seats of event `id` at inventory `version` if
    /// that version is higher than the stored one and, in the same transaction, changes the
    /// status as [`Event::follow_availability`] says (at `now`), with its
    /// `EventStatusChanged`. `None` when nothing changed: no such event (deleted), or a
    /// version no higher than the stored one (a redelivery or a late duplicate).
    async fn apply_availability(
        &self,
        id: EventId,
        version: i64,
        available: i64,
        now: i64,
    ) -> Result<Option<AvailabilityApplied>, StoreError>;
}

pub(crate) const EVENT_COLUMNS: &str = "id, organizer_id, name, description, event_date, venue_id, \
     venue_name, city, event_type, tags, status, total_seats, sale_start, sale_end, base_price, \
     currency, section_prices, reserved, available_seats, availability_version, version, \
     created_at, updated_at";

pub(crate) const VENUE_COLUMNS: &str =
    "id, name, address, city, capacity, layout, created_by, created_at";

/// Filter conditions as `NULL`-able parameters, so one statement serves every combination.
pub(crate) const FILTER: &str = "($1 IS NULL OR status = $1) AND ($2 IS NULL OR event_date >= $2) \
     AND ($3 IS NULL OR event_date <= $3) AND ($4 IS NULL OR city_key = $4) \
     AND ($5 IS NULL OR event_type = $5)";

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt {what} column: {e}"))
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(e.into()))
}

/// Generates an [`EventStore`] implementation for a backend type with `reader()` and
/// `writer()` pool accessors, its row type and its outbox append function.
macro_rules! backend {
    ($store:ty, $row:ty, $append:path) => {
        fn event_from_row(row: &$row) -> Result<Event, StoreError> {
            use sqlx::Row;
            let status: String = row.try_get("status")?;
            let event_type: Option<String> = row.try_get("event_type")?;
            let tags: String = row.try_get("tags")?;
            let prices: String = row.try_get("section_prices")?;
            Ok(Event {
                id: EventId(row.try_get("id")?),
                organizer_id: UserId(row.try_get("organizer_id")?),
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                event_date: row.try_get("event_date")?,
                venue_id: row.try_get::<Option<uuid::Uuid>, _>("venue_id")?.map(VenueId),
                venue_name: row.try_get("venue_name")?,
                city: row.try_get("city")?,
                event_type: match event_type {
                    None => None,
                    Some(t) => Some(EventType::parse(&t).ok_or_else(|| corrupt("event_type", &t))?),
                },
                tags: serde_json::from_str(&tags).map_err(|e| corrupt("tags", e))?,
                status: status.parse().map_err(|e: String| corrupt("status", e))?,
                total_seats: row.try_get("total_seats")?,
                sale_start: row.try_get("sale_start")?,
                sale_end: row.try_get("sale_end")?,
                base_price: row.try_get("base_price")?,
                currency: row.try_get("currency")?,
                section_prices: serde_json::from_str(&prices)
                    .map_err(|e| corrupt("section_prices", e))?,
                reserved: row.try_get("reserved")?,
                available: row.try_get("available_seats")?,
                availability_version: row.try_get("availability_version")?,
                version: row.try_get("version")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn venue_from_row(row: &$row) -> Result<Venue, StoreError> {
            use sqlx::Row;
            let layout: Option<String> = row.try_get("layout")?;
            let capacity: i64 = row.try_get("capacity")?;
            Ok(Venue {
                id: VenueId(row.try_get("id")?),
                name: row.try_get("name")?,
                address: row.try_get("address")?,
                city: row.try_get("city")?,
                seating: match layout {
                    None => Seating::General { capacity },
                    Some(l) => Seating::Reserved(
                        serde_json::from_str(&l).map_err(|e| corrupt("layout", e))?,
                    ),
                },
                created_by: UserId(row.try_get("created_by")?),
                created_at: row.try_get("created_at")?,
            })
        }

        fn outbox_error(e: sqlx::Error) -> StoreError {
            StoreError::from(e)
        }

        #[async_trait::async_trait]
        impl EventStore for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn insert_venue(&self, venue: &Venue, event: &Envelope) -> Result<(), StoreError> {
                let layout = match &venue.seating {
                    Seating::General { .. } => None,
                    Seating::Reserved(layout) => Some(json(layout)?),
                };
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO venues (id, name, address, city, capacity, layout, created_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(venue.id.0)
                .bind(&venue.name)
                .bind(&venue.address)
                .bind(&venue.city)
                .bind(venue.seating.capacity())
                .bind(layout)
                .bind(venue.created_by.0)
                .bind(venue.created_at)
                .execute(&mut *tx)
                .await?;
                $append(&mut tx, event).await.map_err(outbox_error)?;
                tx.commit().await?;
                Ok(())
            }

            async fn venue(&self, id: VenueId) -> Result<Option<Venue>, StoreError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {VENUE_COLUMNS} FROM venues WHERE id = $1"
                )))
                .bind(id.0)
                .fetch_optional(self.reader())
                .await?;
                row.as_ref().map(venue_from_row).transpose()
            }

            async fn list_venues(&self, page: Page) -> Result<(Vec<Venue>, u64), StoreError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {VENUE_COLUMNS} FROM venues ORDER BY created_at, id LIMIT $1 OFFSET $2"
                )))
                .bind(i64::from(page.size))
                .bind(page.offset())
                .fetch_all(self.reader())
                .await?;
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM venues")
                    .fetch_one(self.reader())
                    .await?;
                let venues = rows.iter().map(venue_from_row).collect::<Result<_, _>>()?;
                Ok((venues, u64::try_from(total).unwrap_or(0)))
            }

            async fn insert_event(&self, event: &Event, created: &Envelope) -> Result<(), StoreError> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(
                    "INSERT INTO events (id, organizer_id, name, description, event_date, venue_id, \
                     venue_name, city, city_key, event_type, tags, status, total_seats, sale_start, \
                     sale_end, base_price, currency, section_prices, reserved, available_seats, \
                     availability_version, version, created_at, updated_at) VALUES ($1, $2, $3, \
                     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                     $20, $21, $22, $23, $24)",
                )
                .bind(event.id.0)
                .bind(event.organizer_id.0)
                .bind(&event.name)
                .bind(&event.description)
                .bind(event.event_date)
                .bind(event.venue_id.map(|v| v.0))
                .bind(&event.venue_name)
                .bind(&event.city)
                .bind(event.city.as_ref().map(|c| c.to_lowercase()))
                .bind(event.event_type.map(|t| t.as_str()))
                .bind(json(&event.tags)?)
                .bind(event.status.as_str())
                .bind(event.total_seats)
                .bind(event.sale_start)
                .bind(event.sale_end)
                .bind(event.base_price)
                .bind(&event.currency)
                .bind(json(&event.section_prices)?)
                .bind(event.reserved)
                .bind(event.available)
                .bind(event.availability_version)
                .bind(event.version)
                .bind(event.created_at)
                .bind(event.updated_at)
                .execute(&mut *tx)
                .await?;
                $append(&mut tx, created).await.map_err(outbox_error)?;
                tx.commit().await?;
                Ok(())
            }

            async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"
                )))
                .bind(id.0)
                .fetch_optional(self.reader())
                .await?;
                row.as_ref().map(event_from_row).transpose()
            }

            async fn list_events(
                &self,
                filter: &EventFilter,
                page: Page,
            ) -> Result<(Vec<Event>, u64), StoreError> {
                let status = filter.status.map(|s| s.as_str());
                let city = filter.city.as_ref().map(|c| c.to_lowercase());
                let event_type = filter.event_type.map(|t| t.as_str());
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE {FILTER} \
                     ORDER BY event_date, id LIMIT $6 OFFSET $7"
                )))
                .bind(status)
                .bind(filter.from)
                .bind(filter.to)
                .bind(&city)
                .bind(event_type)
                .bind(i64::from(page.size))
                .bind(page.offset())
                .fetch_all(self.reader())
                .await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM events WHERE {FILTER}"
                )))
                .bind(status)
                .bind(filter.from)
                .bind(filter.to)
                .bind(&city)
                .bind(event_type)
                .fetch_one(self.reader())
                .await?;
                let events = rows.iter().map(event_from_row).collect::<Result<_, _>>()?;
                Ok((events, u64::try_from(total).unwrap_or(0)))
            }

            async fn update_event(
                &self,
                event: &Event,
                expected_version: i64,
                events: &[Envelope],
            ) -> Result<(), StoreError> {
                let mut tx = self.writer().begin().await?;
                // Booking's figure is not the organizer's to write: it follows the seats only
                // until booking reported one, decided on the row as it is now.
                let updated = sqlx::query(
                    "UPDATE events SET name = $3, description = $4, event_date = $5, event_type = $6, \
                     tags = $7, status = $8, total_seats = $9, sale_start = $10, sale_end = $11, \
                     base_price = $12, currency = $13, section_prices = $14, version = $15, \
                     updated_at = $16, available_seats = CASE WHEN availability_version = 0 \
                     THEN $9 ELSE available_seats END WHERE id = $1 AND version = $2",
                )
                .bind(event.id.0)
                .bind(expected_version)
                .bind(&event.name)
                .bind(&event.description)
                .bind(event.event_date)
                .bind(event.event_type.map(|t| t.as_str()))
                .bind(json(&event.tags)?)
                .bind(event.status.as_str())
                .bind(event.total_seats)
                .bind(event.sale_start)
                .bind(event.sale_end)
                .bind(event.base_price)
                .bind(&event.currency)
                .bind(json(&event.section_prices)?)
                .bind(event.version)
                .bind(event.updated_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM events WHERE id = $1")
                            .bind(event.id.0)
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(match exists {
                        None => StoreError::NotFound,
                        Some(_) => StoreError::Conflict {
                            constraint: VERSION_CONFLICT.into(),
                        },
                    });
                }
                for envelope in events {
                    $append(&mut tx, envelope).await.map_err(outbox_error)?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn delete_event(
                &self,
                id: EventId,
                expected_version: i64,
                deleted: &Envelope,
            ) -> Result<(), StoreError> {
                let mut tx = self.writer().begin().await?;
                let removed = sqlx::query("DELETE FROM events WHERE id = $1 AND version = $2")
                    .bind(id.0)
                    .bind(expected_version)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if removed == 0 {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM events WHERE id = $1")
                            .bind(id.0)
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Err(match exists {
                        None => StoreError::NotFound,
                        Some(_) => StoreError::Conflict {
                            constraint: VERSION_CONFLICT.into(),
                        },
                    });
                }
                $append(&mut tx, deleted).await.map_err(outbox_error)?;
                tx.commit().await?;
                Ok(())
            }

            async fn open_due_sales(&self, now: i64) -> Result<Vec<Event>, StoreError> {
                let mut tx = self.writer().begin().await?;
                // Conditional on the current status, so a row another process already flipped
                // is not matched again: each flip (and its event) happens exactly once.
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE events SET status = 'ON_SALE', version = version + 1, updated_at = $1 \
                     WHERE status = 'UPCOMING' AND sale_start <= $1 RETURNING {EVENT_COLUMNS}"
                )))
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                let flipped = rows.iter().map(event_from_row).collect::<Result<Vec<_>, _>>()?;
                for event in &flipped {
                    $append(&mut tx, &event.status_changed(EventStatus::Upcoming))
                        .await
                        .map_err(outbox_error)?;
                }
                tx.commit().await?;
                Ok(flipped)
            }

            async fn apply_availability(
                &self,
                id: EventId,
                version: i64,
                available: i64,
                now: i64,
            ) -> Result<Option<AvailabilityApplied>, StoreError> {
                let mut tx = self.writer().begin().await?;
                // Conditional on the stored inventory version: an older or equal figure (a
                // redelivery, or one overtaken by a newer) matches no row. The row stays
                // locked until commit, so the flip below is decided on the current status.
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE events SET available_seats = $3, availability_version = $2 \
                     WHERE id = $1 AND availability_version < $2 RETURNING {EVENT_COLUMNS}"
                )))
                .bind(id.0)
                .bind(version)
                .bind(available)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let event = event_from_row(&row)?;
                let Some(next) = event.follow_availability(now) else {
                    tx.commit().await?;
                    return Ok(Some(AvailabilityApplied {
                        event,
                        flipped_from: None,
                    }));
                };
                let flipped = sqlx::query(
                    "UPDATE events SET status = $3, version = $4, updated_at = $5 \
                     WHERE id = $1 AND version = $2",
                )
                .bind(id.0)
                .bind(event.version)
                .bind(next.status.as_str())
                .bind(next.version)
                .bind(next.updated_at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if flipped != 1 {
                    return Err(StoreError::Other(anyhow::anyhow!(
                        "event {id} changed while its row was locked"
                    )));
                }
                $append(&mut tx, &next.status_changed(event.status))
                    .await
                    .map_err(outbox_error)?;
                tx.commit().await?;
                Ok(Some(AvailabilityApplied {
                    event: next,
                    flipped_from: Some(event.status),
                }))
            }
        }
    };
}

pub(crate) use backend;
