//! The SQLite side of the auth store (the embedded default): its migrations, and the
//! in-process connections the store's body runs on.
//!
//! Writes go through the single write connection ([`evently_core::sqlite`]), so a write
//! transaction is never interleaved with another write: read-then-write sequences such as
//! rotation and the throttle update are atomic without row locks.

use evently_core::db::SqliteDb;
use evently_core::sql::Db;

use super::sql::SqlAuthStore;

/// Read connections: sign-ins and token checks read one row each, and hashing, not reading,
/// is what a sign-in waits for.
const READERS: usize = 4;

impl SqlAuthStore {
    /// Opens the store on the SQLite database `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails or the file cannot be opened.
    pub async fn sqlite(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying auth SQLite migrations: {e}"))?;
        Ok(Self {
            db: Db::sqlite(&db.path, READERS)?,
        })
    }
}
