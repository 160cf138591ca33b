//! The SQLite side of the settings store (the embedded default): its migrations, and the
//! in-process connections the store's body runs on. Writes go through the single write
//! connection ([`evently_core::sqlite`]), which serialises them: the version read at the
//! start of a write cannot change before it commits.

use evently_core::db::SqliteDb;
use evently_core::sql::Db;

use super::sql::SqlSettingsStore;

/// Read connections: settings are read on every GET and by the effective-value view.
const READERS: usize = 2;

impl SqlSettingsStore {
    /// Opens the store on the SQLite database `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails or the file cannot be opened.
    pub async fn sqlite(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying settings SQLite migrations: {e}"))?;
        Ok(Self {
            db: Db::sqlite(&db.path, READERS)?,
        })
    }
}
