//! The PostgreSQL side of the data store: its migrations.

use evently_core::sql::Db;
use sqlx::PgPool;

use super::sql::SqlDataStore;

impl SqlDataStore {
    /// Opens the store on `pool` (its `search_path` names the data schema) and applies
    /// pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn postgres(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying data PostgreSQL migrations: {e}"))?;
        Ok(Self {
            db: Db::postgres(pool),
        })
    }
}
