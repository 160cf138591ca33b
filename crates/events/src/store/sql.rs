//! The events store's one body, for both engines ([`evently_core::sql`]).
//!
//! The SQL is the same on both engines (portable `$N` placeholders, `RETURNING`, epoch-ms
//! integers); what differs (migrations, connections) is in `sqlite.rs` and `postgres.rs`.
//! Every change appends its domain events with [`evently_bus::outbox::append`] in its own
//! transaction.
//!
//! Each method runs in a span named after it, carrying the ids it is about (`event.id`,
//! `venue.id`, the version it expects). Reads, the sale scheduler's tick and booking's
//! availability figures run far more often than organizers change anything, so they span at
//! debug level.

use evently_bus::Envelope;
use evently_bus::outbox::append;
use evently_core::db::StoreError;
use evently_core::ids::UserId;
use evently_core::sql::{Db, Row, Sql, Tx, query};

use super::{
    AvailabilityApplied, BatchWrite, EVENT_COLUMNS, EventStore, FILTER, VENUE_COLUMNS,
    VERSION_CONFLICT, corrupt, json,
};
use crate::domain::{
    Event, EventFilter, EventId, EventStatus, EventType, Page, Seating, Venue, VenueId,
};

/// The events service's tables on either engine: in one SQLite file, or in the `events`
/// schema (any schema on the pool's `search_path`) of a PostgreSQL database. Opened by
/// [`SqlEventStore::sqlite`] or [`SqlEventStore::postgres`].
#[derive(Debug, Clone)]
pub struct SqlEventStore {
    pub(super) db: Db,
}

impl SqlEventStore {
    /// The outbox in the store's database, on the store's connections.
    #[must_use]
    pub fn outbox(&self) -> evently_bus::outbox::SqlOutbox {
        evently_bus::outbox::SqlOutbox::new(self.db.clone())
    }
}

fn event_from_row(row: &Row) -> Result<Event, StoreError> {
    let status: String = row.get("status")?;
    let event_type: Option<String> = row.get("event_type")?;
    let tags: String = row.get("tags")?;
    let prices: String = row.get("section_prices")?;
    Ok(Event {
        id: EventId(row.get("id")?),
        organizer_id: UserId(row.get("organizer_id")?),
        name: row.get("name")?,
        description: row.get("description")?,
        event_date: row.get("event_date")?,
        venue_id: row.get::<Option<uuid::Uuid>>("venue_id")?.map(VenueId),
        venue_name: row.get("venue_name")?,
        city: row.get("city")?,
        event_type: match event_type {
            None => None,
            Some(t) => Some(EventType::parse(&t).ok_or_else(|| corrupt("event_type", &t))?),
        },
        tags: serde_json::from_str(&tags).map_err(|e| corrupt("tags", e))?,
        status: status.parse().map_err(|e: String| corrupt("status", e))?,
        total_seats: row.get("total_seats")?,
        sale_start: row.get("sale_start")?,
        sale_end: row.get("sale_end")?,
        base_price: row.get("base_price")?,
        currency: row.get("currency")?,
        section_prices: serde_json::from_str(&prices).map_err(|e| corrupt("section_prices", e))?,
        time_zone: row.get("time_zone")?,
        reserved: row.get("reserved")?,
        available: row.get("available_seats")?,
        availability_version: row.get("availability_version")?,
        version: row.get("version")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn venue_from_row(row: &Row) -> Result<Venue, StoreError> {
    let layout: Option<String> = row.get("layout")?;
    let capacity: i64 = row.get("capacity")?;
    Ok(Venue {
        id: VenueId(row.get("id")?),
        name: row.get("name")?,
        address: row.get("address")?,
        city: row.get("city")?,
        seating: match layout {
            None => Seating::General { capacity },
            Some(l) => {
                Seating::Reserved(serde_json::from_str(&l).map_err(|e| corrupt("layout", e))?)
            }
        },
        created_by: UserId(row.get("created_by")?),
        created_at: row.get("created_at")?,
    })
}

/// Inserts `event`'s row in `tx`.
async fn insert_row(tx: &mut Tx, event: &Event) -> Result<(), StoreError> {
    query(
        "INSERT INTO events (id, organizer_id, name, description, event_date, venue_id, \
             venue_name, city, city_key, event_type, tags, status, total_seats, sale_start, \
             sale_end, base_price, currency, section_prices, reserved, available_seats, \
             availability_version, version, created_at, updated_at, time_zone) VALUES ($1, \
             $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21, $22, $23, $24, $25)",
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
    .bind(&event.time_zone)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Replaces the row of `event` in `tx` if its version is still `expected_version`:
/// [`StoreError::NotFound`] if it is gone, [`StoreError::Conflict`] on [`VERSION_CONFLICT`]
/// if it moved on.
async fn update_row(tx: &mut Tx, event: &Event, expected_version: i64) -> Result<(), StoreError> {
    // Booking's figure is not the organizer's to write: it follows the seats only
    // until booking reported one, decided on the row as it is now.
    let updated = query(
        "UPDATE events SET name = $3, description = $4, event_date = $5, event_type = $6, \
             tags = $7, status = $8, total_seats = $9, sale_start = $10, sale_end = $11, \
             base_price = $12, currency = $13, section_prices = $14, version = $15, \
             updated_at = $16, venue_name = $17, time_zone = $18, available_seats = CASE WHEN \
             availability_version = 0 THEN $9 ELSE available_seats END \
             WHERE id = $1 AND version = $2",
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
    .bind(&event.venue_name)
    .bind(&event.time_zone)
    .execute(&mut *tx)
    .await?;
    if updated == 0 {
        let exists = query("SELECT version FROM events WHERE id = $1")
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
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for SqlEventStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    #[tracing::instrument(skip_all, fields(venue.id = %venue.id))]
    async fn insert_venue(&self, venue: &Venue, event: &Envelope) -> Result<(), StoreError> {
        let layout = match &venue.seating {
            Seating::General { .. } => None,
            Seating::Reserved(layout) => Some(json(layout)?),
        };
        let mut tx = self.db.begin().await?;
        query(
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
        .execute(&mut tx)
        .await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(venue.id = %id))]
    async fn venue(&self, id: VenueId) -> Result<Option<Venue>, StoreError> {
        let row = query(Sql::assert_safe(format!(
            "SELECT {VENUE_COLUMNS} FROM venues WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(self.db.reader())
        .await?;
        row.as_ref().map(venue_from_row).transpose()
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(page.number = page.number, page.size = page.size)
    )]
    async fn list_venues(&self, page: Page) -> Result<(Vec<Venue>, u64), StoreError> {
        let rows = query(Sql::assert_safe(format!(
            "SELECT {VENUE_COLUMNS} FROM venues ORDER BY created_at, id LIMIT $1 OFFSET $2"
        )))
        .bind(i64::from(page.size))
        .bind(page.offset())
        .fetch_all(self.db.reader())
        .await?;
        let total: i64 = query("SELECT COUNT(*) AS n FROM venues")
            .fetch_one(self.db.reader())
            .await?
            .get("n")?;
        let venues = rows.iter().map(venue_from_row).collect::<Result<_, _>>()?;
        Ok((venues, u64::try_from(total).unwrap_or(0)))
    }

    #[tracing::instrument(skip_all, fields(event.id = %event.id))]
    async fn insert_event(&self, event: &Event, created: &Envelope) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        insert_row(&mut tx, event).await?;
        append(&mut tx, created).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(event.id = %id))]
    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        let row = query(Sql::assert_safe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(self.db.reader())
        .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(page.number = page.number, page.size = page.size)
    )]
    async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<(Vec<Event>, u64), StoreError> {
        let status = filter.status.map(|s| s.as_str());
        let city = filter.city.as_ref().map(|c| c.to_lowercase());
        let event_type = filter.event_type.map(|t| t.as_str());
        let rows = query(Sql::assert_safe(format!(
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
        .fetch_all(self.db.reader())
        .await?;
        let total: i64 = query(Sql::assert_safe(format!(
            "SELECT COUNT(*) AS n FROM events WHERE {FILTER}"
        )))
        .bind(status)
        .bind(filter.from)
        .bind(filter.to)
        .bind(&city)
        .bind(event_type)
        .fetch_one(self.db.reader())
        .await?
        .get("n")?;
        let events = rows.iter().map(event_from_row).collect::<Result<_, _>>()?;
        Ok((events, u64::try_from(total).unwrap_or(0)))
    }

    #[tracing::instrument(skip_all, fields(event.id = %event.id, event.version = expected_version))]
    async fn update_event(
        &self,
        event: &Event,
        expected_version: i64,
        events: &[Envelope],
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        update_row(&mut tx, event, expected_version).await?;
        for envelope in events {
            append(&mut tx, envelope).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(batch.writes = writes.len()))]
    async fn write_batch(&self, writes: &[BatchWrite]) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        for write in writes {
            match write {
                BatchWrite::Insert { event, created } => {
                    insert_row(&mut tx, event).await?;
                    append(&mut tx, created).await?;
                }
                BatchWrite::Update {
                    event,
                    expected_version,
                    events,
                } => {
                    update_row(&mut tx, event, *expected_version).await?;
                    for envelope in events {
                        append(&mut tx, envelope).await?;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(event.id = %id, event.version = expected_version))]
    async fn delete_event(
        &self,
        id: EventId,
        expected_version: i64,
        deleted: &Envelope,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        let removed = query("DELETE FROM events WHERE id = $1 AND version = $2")
            .bind(id.0)
            .bind(expected_version)
            .execute(&mut tx)
            .await?;
        if removed == 0 {
            let exists = query("SELECT version FROM events WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut tx)
                .await?;
            return Err(match exists {
                None => StoreError::NotFound,
                Some(_) => StoreError::Conflict {
                    constraint: VERSION_CONFLICT.into(),
                },
            });
        }
        append(&mut tx, deleted).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn open_due_sales(&self, now: i64) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.db.begin().await?;
        // Conditional on the current status, so a row another process already flipped
        // is not matched again: each flip (and its event) happens exactly once.
        let rows = query(Sql::assert_safe(format!(
            "UPDATE events SET status = 'ON_SALE', version = version + 1, updated_at = $1 \
             WHERE status = 'UPCOMING' AND sale_start <= $1 RETURNING {EVENT_COLUMNS}"
        )))
        .bind(now)
        .fetch_all(&mut tx)
        .await?;
        let flipped = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for event in &flipped {
            append(&mut tx, &event.status_changed(EventStatus::Upcoming)).await?;
        }
        tx.commit().await?;
        Ok(flipped)
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(event.id = %id, availability.version = version)
    )]
    async fn apply_availability(
        &self,
        id: EventId,
        version: i64,
        available: i64,
        now: i64,
    ) -> Result<Option<AvailabilityApplied>, StoreError> {
        let mut tx = self.db.begin().await?;
        // Conditional on the stored inventory version: an older or equal figure (a
        // redelivery, or one overtaken by a newer) matches no row. The row stays
        // locked until commit, so the flip below is decided on the current status.
        let row = query(Sql::assert_safe(format!(
            "UPDATE events SET available_seats = $3, availability_version = $2 \
             WHERE id = $1 AND availability_version < $2 RETURNING {EVENT_COLUMNS}"
        )))
        .bind(id.0)
        .bind(version)
        .bind(available)
        .fetch_optional(&mut tx)
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
        let flipped = query(
            "UPDATE events SET status = $3, version = $4, updated_at = $5 \
             WHERE id = $1 AND version = $2",
        )
        .bind(id.0)
        .bind(event.version)
        .bind(next.status.as_str())
        .bind(next.version)
        .bind(next.updated_at)
        .execute(&mut tx)
        .await?;
        if flipped != 1 {
            return Err(StoreError::Other(anyhow::anyhow!(
                "event {id} changed while its row was locked"
            )));
        }
        append(&mut tx, &next.status_changed(event.status)).await?;
        tx.commit().await?;
        Ok(Some(AvailabilityApplied {
            event: next,
            flipped_from: Some(event.status),
        }))
    }
}
