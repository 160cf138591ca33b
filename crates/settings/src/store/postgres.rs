//! The PostgreSQL side of the settings store: its migrations. A write reads the document's
//! version `FOR UPDATE`, so a concurrent write of the same document waits and then sees the
//! new version (and is refused as stale); two first writes of a document race on its primary
//! key instead, and the loser is refused the same way.

use evently_core::sql::Db;
use sqlx::PgPool;

use super::sql::SqlSettingsStore;

impl SqlSettingsStore {
    /// Opens the store on `pool` (its `search_path` names the settings schema) and applies
    /// pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn postgres(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying settings PostgreSQL migrations: {e}"))?;
        Ok(Self {
            db: Db::postgres(pool),
        })
    }
}
