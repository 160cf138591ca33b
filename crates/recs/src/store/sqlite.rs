//! The SQLite side of the recommendations store (the embedded default): its migrations, and the
//! in-process connections the store's body runs on. Writes go through the single write
//! connection ([`evently_core::sqlite`]), so the consumers' transactions never interleave.

use evently_core::db::SqliteDb;
use evently_core::sql::Db;

use super::sql::SqlRecsStore;

/// Read connections: each request reads a user's purchases and co-purchase edges.
const READERS: usize = 4;

impl SqlRecsStore {
    /// Opens the store on the SQLite database `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails or the file cannot be opened.
    pub async fn sqlite(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying recs SQLite migrations: {e}"))?;
        Ok(Self {
            db: Db::sqlite(&db.path, READERS)?,
        })
    }
}
