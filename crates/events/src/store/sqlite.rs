//! The SQLite events store (the embedded default). Writes go through the single writer
//! connection (see `evently_core::db`), so write transactions never interleave and outbox
//! `seq` order is commit order.

use evently_bus::Envelope;
use evently_core::db::{SqliteDb, StoreError};
use evently_core::ids::UserId;
use sqlx::sqlite::{SqlitePool, SqliteRow};

use super::{
    AvailabilityApplied, EVENT_COLUMNS, EventStore, FILTER, VENUE_COLUMNS, VERSION_CONFLICT,
    corrupt, json,
};
use crate::domain::{
    Event, EventFilter, EventId, EventStatus, EventType, Page, Seating, Venue, VenueId,
};

/// Events tables in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    db: SqliteDb,
}

impl SqliteEventStore {
    /// Opens the store on `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn new(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying events SQLite migrations: {e}"))?;
        Ok(Self { db })
    }

    /// The database (its outbox is read by the bus).
    pub fn db(&self) -> &SqliteDb {
        &self.db
    }

    fn reader(&self) -> &SqlitePool {
        &self.db.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.db.writer
    }
}

async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    envelope: &Envelope,
) -> Result<i64, sqlx::Error> {
    evently_bus::outbox::append_sqlite(tx, envelope).await
}

super::backend!(SqliteEventStore, SqliteRow, append);
