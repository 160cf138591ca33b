//! The PostgreSQL side of the events store: its migrations. Optimistic version checks make
//! concurrent updates of one event safe without holding row locks across requests; the outbox
//! append takes the per-schema outbox lock last (see `evently_bus::outbox`).

use evently_core::sql::Db;
use sqlx::PgPool;

use super::sql::SqlEventStore;

impl SqlEventStore {
    /// Opens the store on `pool` (its `search_path` names the events schema) and applies
    /// pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn postgres(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying events PostgreSQL migrations: {e}"))?;
        Ok(Self {
            db: Db::postgres(pool),
        })
    }
}
