//! The SQLite side of the analytics store (the embedded default): its migrations, and the
//! in-process connections the store's body runs on. Writes go through the single write
//! connection ([`evently_core::sqlite`]), so the consumers' transactions never interleave.

use evently_core::db::SqliteDb;
use evently_core::sql::Db;

use super::sql::SqlAnalyticsStore;

/// Read connections: each request reads an event's totals and its minutes.
const READERS: usize = 4;

impl SqlAnalyticsStore {
    /// Opens the store on the SQLite database `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails or the file cannot be opened.
    pub async fn sqlite(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying analytics SQLite migrations: {e}"))?;
        Ok(Self {
            db: Db::sqlite(&db.path, READERS)?,
        })
    }
}
