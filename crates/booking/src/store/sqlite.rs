//! The SQLite booking store (the embedded default).
//!
//! Statements run on in-process connections ([`evently_core::sqlite`]): a whole inventory
//! transaction runs on the task that holds the single write connection, without a thread
//! hand-off per statement. Write transactions begin `IMMEDIATE`, so they never interleave: the
//! inventory "lock" is the write connection itself, and outbox `seq` order is commit order.
//! sqlx's pools on the same file (`evently_core::db::SqliteDb`) apply the migrations; the
//! outbox ([`SqliteBookingStore::outbox`]) uses the store's own connections.

use evently_core::db::SqliteDb;
use evently_core::sqlite as sql;
use evently_core::sqlite::{OwnedRow, Pool};

/// Read connections: enough for the reads of concurrent requests on two cores.
const READERS: usize = 4;

/// Booking tables in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteBookingStore {
    reader: Pool,
    writer: Pool,
    gates: std::sync::Arc<super::EventGates>,
}

impl SqliteBookingStore {
    /// Opens the store on `db` and applies pending migrations.
    ///
    /// # Errors
    /// If a migration fails or the file cannot be opened.
    pub async fn new(db: SqliteDb) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/sqlite")
            .run(&db.writer)
            .await
            .map_err(|e| anyhow::anyhow!("applying booking SQLite migrations: {e}"))?;
        Ok(Self {
            reader: Pool::open(&db.path, READERS, false)?,
            writer: Pool::open(&db.path, 1, true)?,
            gates: std::sync::Arc::new(super::EventGates::none()),
        })
    }

    /// The booking outbox on this store's connections, so the relay's and the consumers'
    /// writes queue on the store's write connection.
    pub fn outbox(&self) -> evently_bus::outbox::SqlOutbox {
        evently_bus::outbox::SqlOutbox::new(evently_core::sql::Db::sqlite_pools(
            self.reader.clone(),
            self.writer.clone(),
        ))
    }

    fn reader(&self) -> &Pool {
        &self.reader
    }

    fn writer(&self) -> &Pool {
        &self.writer
    }

    fn gates(&self) -> &super::EventGates {
        &self.gates
    }

    /// No batches: a statement costs no round trip here, and the write connection already
    /// commits queued transactions together.
    fn batches(&self) -> Option<&super::Batches> {
        None
    }

    /// Nothing to refresh: the audit's counts are planned well here without statistics.
    #[allow(clippy::unused_async)]
    async fn refresh_statistics(&self) -> Result<(), evently_core::db::StoreError> {
        Ok(())
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
async fn send_writes(
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

/// Runs `writes` in a transaction of their own.
async fn write_alone(
    pool: &Pool,
    writes: &super::Writes,
) -> Result<Vec<u64>, evently_core::db::StoreError> {
    let mut tx = pool.begin().await?;
    let changed = send_writes(&mut tx, writes, &[]).await?;
    tx.commit().await?;
    Ok(changed)
}

super::backend!(
    SqliteBookingStore,
    sql::Sqlite,
    OwnedRow,
    "",
    send_writes,
    write_alone
);
