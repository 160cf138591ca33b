//! The PostgreSQL side of the auth store: its migrations. The store's body runs on the pool
//! as it is; its locking reads take `FOR UPDATE` row locks here.

use evently_core::sql::Db;
use sqlx::PgPool;

use super::sql::SqlAuthStore;

impl SqlAuthStore {
    /// Opens the store on `pool` (its `search_path` names the auth schema) and applies pending
    /// migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn postgres(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying auth PostgreSQL migrations: {e}"))?;
        Ok(Self {
            db: Db::postgres(pool),
        })
    }
}
