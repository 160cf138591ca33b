//! The events store: one trait, one body for both engines, one conformance suite (in the
//! crate's tests, `tests/api/conformance.rs`, run on both engines).
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
//! integers), so it is written once, in [`sql::SqlEventStore`]; what differs (migrations,
//! connections) is in `sqlite.rs` and `postgres.rs`.

use async_trait::async_trait;
use evently_bus::Envelope;
use evently_core::db::StoreError;

use crate::domain::{Event, EventFilter, EventId, EventStatus, Page, Venue, VenueId};

mod postgres;
pub mod sql;
mod sqlite;

pub use sql::SqlEventStore;

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

/// One write of [`EventStore::write_batch`].
#[derive(Debug, Clone)]
pub enum BatchWrite {
    /// A new event with its `EventCreated`.
    Insert {
        /// The event.
        event: Event,
        /// Its `EventCreated`.
        created: Envelope,
    },
    /// An event's next version, if the stored one is still `expected_version`, with the
    /// domain events of the change.
    Update {
        /// The event's next version.
        event: Event,
        /// The version it was computed from.
        expected_version: i64,
        /// The change's domain events.
        events: Vec<Envelope>,
    },
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

    /// Makes every write of `writes` in one transaction, each with its domain events in
    /// the outbox: all of them, or, when one fails, none. Fails as [`EventStore::insert_event`]
    /// ([`StoreError::Conflict`] for an id that exists) or [`EventStore::update_event`] would
    /// for the first write that fails.
    async fn write_batch(&self, writes: &[BatchWrite]) -> Result<(), StoreError>;

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
     created_at, updated_at, time_zone";

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
