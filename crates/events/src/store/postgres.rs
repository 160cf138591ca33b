//! The PostgreSQL events store. Optimistic version checks make concurrent updates of one
//! event safe without holding row locks across requests; the outbox append takes the
//! per-schema outbox lock last (see `evently_bus::outbox`).

use evently_bus::Envelope;
use evently_core::db::StoreError;
use evently_core::ids::UserId;
use sqlx::PgPool;
use sqlx::postgres::PgRow;

use super::{
    AvailabilityApplied, EVENT_COLUMNS, EventStore, FILTER, VENUE_COLUMNS, VERSION_CONFLICT,
    corrupt, json,
};
use crate::domain::{
    Event, EventFilter, EventId, EventStatus, EventType, Page, Seating, Venue, VenueId,
};

/// Events tables in the `events` schema (or any schema on the pool's `search_path`).
#[derive(Debug, Clone)]
pub struct PgEventStore {
    pool: PgPool,
}

impl PgEventStore {
    /// Opens the store on `pool` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn new(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying events PostgreSQL migrations: {e}"))?;
        Ok(Self { pool })
    }

    /// The pool (its outbox is read by the bus).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }
}

async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    envelope: &Envelope,
) -> Result<i64, sqlx::Error> {
    evently_bus::outbox::append_postgres(tx, envelope).await
}

super::backend!(PgEventStore, PgRow, append);
