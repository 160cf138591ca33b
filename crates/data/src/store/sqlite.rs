//! The SQLite side of the data store (the embedded default): its migrations, and the
//! in-process connections the store's body runs on.

use evently_core::db::SqliteDb;
use evently_core::sql::Db;

use super::sql::SqlDataStore;

/// Read connections: job polls and report downloads.
const READERS: usize = 2;

impl SqlDataStore {
    /// Opens the store on the SQLite database `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails or the file cannot be opened.
    pub async fn sqlite(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying data SQLite migrations: {e}"))?;
        Ok(Self {
            db: Db::sqlite(&db.path, READERS)?,
        })
    }
}
