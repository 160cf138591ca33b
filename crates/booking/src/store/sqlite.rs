//! The SQLite booking store (the embedded default). Every write goes through the single
//! writer connection (see `evently_core::db`), so write transactions never interleave: the
//! inventory "lock" is the writer itself, and outbox `seq` order is commit order.

use evently_core::db::SqliteDb;
use sqlx::sqlite::{SqlitePool, SqliteRow};

/// Booking tables in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteBookingStore {
    db: SqliteDb,
}

impl SqliteBookingStore {
    /// Opens the store on `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn new(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying booking SQLite migrations: {e}"))?;
        Ok(Self { db })
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
    envelope: &evently_bus::Envelope,
) -> Result<i64, sqlx::Error> {
    evently_bus::outbox::append_sqlite(tx, envelope).await
}

super::backend!(SqliteBookingStore, sqlx::Sqlite, SqliteRow, "", append);
