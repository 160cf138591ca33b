//! The PostgreSQL booking store. Each inventory change locks its event's row
//! (`SELECT … FOR UPDATE`) before reading seats, so changes of one event are serialised and
//! changes of different events run in parallel; the outbox append takes the per-schema
//! outbox lock last (see `evently_bus::outbox`).

use sqlx as sql;
use sqlx::PgPool;
use sqlx::postgres::PgRow;

/// Booking tables in the `booking` schema (or any schema on the pool's `search_path`).
#[derive(Debug, Clone)]
pub struct PgBookingStore {
    pool: PgPool,
    gates: std::sync::Arc<super::EventGates>,
}

impl PgBookingStore {
    /// Opens the store on `pool` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn new(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying booking PostgreSQL migrations: {e}"))?;
        Ok(Self {
            pool,
            gates: std::sync::Arc::default(),
        })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn gates(&self) -> &super::EventGates {
        &self.gates
    }
}

async fn append(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    envelope: &evently_bus::Envelope,
) -> Result<i64, sqlx::Error> {
    evently_bus::outbox::append_postgres(tx, envelope).await
}

super::backend!(PgBookingStore, sqlx::Postgres, PgRow, "FOR UPDATE", append);
