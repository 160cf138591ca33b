//! The SQLite side of the booking store (the embedded default): opening it, and sending a
//! transaction's row writes.
//!
//! Statements run on in-process connections ([`evently_core::sqlite`]): a whole inventory
//! transaction runs on the task that holds the single write connection, without a thread
//! hand-off per statement. Write transactions begin `IMMEDIATE`, so they never interleave: the
//! inventory "lock" is the write connection itself, and outbox `seq` order is commit order.
//! sqlx's pools on the same file (`evently_core::db::SqliteDb`) apply the migrations; the
//! outbox (`SqlBookingStore::outbox`) uses the store's own connections.

use evently_core::db::SqliteDb;
use evently_core::sqlite as sql;
use evently_core::sqlite::Pool;

/// Read connections: enough for the reads of concurrent requests on two cores.
const READERS: usize = 4;

impl super::SqlBookingStore {
    /// Opens the store on the SQLite database `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails or the file cannot be opened.
    pub async fn sqlite(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying booking SQLite migrations: {e}"))?;
        Ok(Self {
            db: evently_core::sql::Db::sqlite(&db.path, READERS)?,
            // The single write connection already queues every write in process; holding
            // a turn while a group commit completes would only keep the next change of the
            // event out of that commit.
            gates: std::sync::Arc::new(super::EventGates::none()),
            // A statement costs no round trip here, and the write connection already
            // commits queued transactions together.
            batches: None,
            // This process alone writes the file, so it sees every seat freed.
            sold_out: Some(std::sync::Arc::default()),
        })
    }
}

async fn append(
    tx: &mut sql::Transaction<'_, sql::Sqlite>,
    envelope: &evently_bus::Envelope,
) -> Result<i64, evently_core::db::StoreError> {
    evently_bus::outbox::append_sqlite_in_process(tx, envelope).await
}

/// Runs `writes` one after another and appends `envelopes`, on the write connection (where a
/// statement costs no round trip).
pub(super) async fn send_writes(
    tx: &mut sql::Transaction<'_, sql::Sqlite>,
    writes: &super::Writes,
    envelopes: &[evently_bus::Envelope],
) -> Result<Vec<u64>, evently_core::db::StoreError> {
    let mut changed = Vec::with_capacity(writes.parts.len());
    for statement in writes.statements(false) {
        let write = statement.writes[0];
        let mut query = sql::query(sql::AssertSqlSafe(write.sql.to_string()));
        for arg in &write.args {
            query = match arg {
                super::Arg::Uuid(v) => query.bind(*v),
                super::Arg::Int(v) => query.bind(*v),
                super::Arg::Text(v) => query.bind(v.as_str()),
            };
        }
        let n = query.execute(&mut **tx).await?.rows_affected();
        statement.check(n)?;
        changed.push(n);
    }
    for envelope in envelopes {
        append(tx, envelope).await?;
    }
    Ok(changed)
}

/// Runs `writes` in a transaction of their own (decided before: it needs no savepoint).
pub(super) async fn write_alone(
    pool: &Pool,
    writes: &super::Writes,
) -> Result<Vec<u64>, evently_core::db::StoreError> {
    let mut tx = pool.begin_decided().await?;
    let changed = send_writes(&mut tx, writes, &[]).await?;
    tx.commit().await?;
    Ok(changed)
}
