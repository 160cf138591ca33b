//! The PostgreSQL side of the recommendations store: its migrations. Booking's stream is
//! applied in order by one durable consumer, one transaction per order change; the ownership
//! row it reads is locked (`FOR UPDATE`) so that a redelivery racing it waits for it.

use evently_core::sql::Db;
use sqlx::PgPool;

use super::sql::SqlRecsStore;

impl SqlRecsStore {
    /// Opens the store on `pool` (its `search_path` names the recs schema) and applies
    /// pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn postgres(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying recs PostgreSQL migrations: {e}"))?;
        Ok(Self {
            db: Db::postgres(pool),
        })
    }
}
