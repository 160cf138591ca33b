//! The PostgreSQL side of the analytics store: its migrations. Each stream is applied in
//! order by one durable consumer, one transaction per domain event; every counter moves by
//! an `UPDATE … SET n = n + delta` (or an upsert), which row locks make safe between the two
//! consumers, and a redelivery racing its first delivery waits on the `applied_events` key.

use evently_core::sql::Db;
use sqlx::PgPool;

use super::sql::SqlAnalyticsStore;

impl SqlAnalyticsStore {
    /// Opens the store on `pool` (its `search_path` names the analytics schema) and applies
    /// pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn postgres(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying analytics PostgreSQL migrations: {e}"))?;
        Ok(Self {
            db: Db::postgres(pool),
        })
    }
}
