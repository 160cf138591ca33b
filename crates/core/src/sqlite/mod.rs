//! In-process SQLite connections for hot write paths.
//!
//! sqlx drives each SQLite connection from its own worker thread, so every statement is a
//! round trip between a tokio worker and that thread: two wake-ups and, on a busy two-core
//! machine, two context switches. A write transaction of a dozen statements then spends most of
//! its time switching threads while it holds the database's only write lock. The connections
//! here run statements directly on the calling task's thread (rusqlite, prepared statements
//! cached per connection), so a whole transaction runs without a single hand-off.
//!
//! The API mirrors the small part of sqlx that evently's stores use (`query(..).bind(..)`,
//! `execute`/`fetch_*`, `QueryBuilder::push_values`, `Transaction::commit`, rows read by column
//! name), so one store body can be written once and compiled for PostgreSQL through sqlx and
//! for SQLite through this module. Placeholders are `$N` and are bound by number, as sqlx does.
//!
//! A [`Pool`] is a fixed set of connections, each behind an async mutex: waiting for a
//! connection is a cheap async wait, never a blocked thread. The write pool has one connection
//! and opens transactions with `BEGIN IMMEDIATE`, so a write transaction owns the write lock
//! from its first statement and can never fail to upgrade. The statements of a transaction run
//! on the tokio worker that holds the connection: they are short (pages are in memory, and with
//! WAL and `synchronous = NORMAL` a commit does not wait for the disk).
//!
//! Other connections to the same file (sqlx's, used for migrations and the outbox relay) may
//! write too; SQLite's own lock serialises them, with a busy timeout.
//!
//! Layout: this file holds the [`Pool`] of connections, how a connection is taken from it,
//! the write pool's checkpointer thread and how rusqlite's errors map to [`StoreError`];
//! `transaction` holds [`Transaction`] and the write pool's group commit (batches, and how
//! a failed request takes back its changes); `query` holds [`query`] and its binds,
//! [`QueryBuilder`], the [`Executor`]s statements run on, and the rows they return.

mod query;
#[cfg(test)]
mod tests;
mod transaction;

pub use query::{
    AssertSqlSafe, BoxFuture, Executor, Outcome, OwnedRow, Query, QueryBuilder, QueryResult, Row,
    Separated, Sql, query,
};
pub use transaction::Transaction;

use rusqlite::{Connection, OpenFlags};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::db::StoreError;
use transaction::{Batch, InLine, Line, flush};

/// How long a caller waits for a free connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (a store has a few dozen distinct statements, plus
/// the `IN (…)` lists of each length).
const STATEMENT_CACHE: usize = 256;
/// The write connection's page cache in KiB (SQLite's negative `cache_size`): the pages it
/// changes stay in memory between group commits.
const WRITER_CACHE_KIB: i64 = 16_000;
/// Each read-only connection's page cache in KiB. Readers find the file's pages in the
/// operating system's cache; a private cache per reader would only hold copies of them, and
/// a long read (an export of a million orders) would fill every reader's to the brim: four
/// readers of 16 MB each were 64 MB of resident memory that never went back.
pub const READER_CACHE_KIB: i64 = 2_000;

/// The database type parameter of this module's types (the counterpart of `sqlx::Sqlite`).
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

/// One connection, and on the write connection the group commit in progress.
#[derive(Debug)]
pub struct Conn {
    conn: Connection,
    batch: Option<Batch>,
    /// Until when every write transaction runs in a savepoint, after a batch was rolled back
    /// for one request's failure (see `transaction`).
    guarded_until: Option<std::time::Instant>,
    /// Batches rolled back whole for one request's failure.
    aborted_batches: u64,
}

/// A fixed set of connections to one SQLite file.
#[derive(Debug, Clone)]
pub struct Pool<DB = Sqlite> {
    conns: Arc<[Arc<Mutex<Conn>>]>,
    next: Arc<AtomicUsize>,
    /// Set on the write pool: transactions are grouped (see [`Batch`]).
    line: Option<Arc<Line>>,
    _db: PhantomData<DB>,
}

/// A connection taken from a [`Pool`]; returned when dropped, and on the write pool the
/// group commit is completed then if nobody else is in line for it.
#[derive(Debug)]
pub struct PoolConnection {
    guard: Option<OwnedMutexGuard<Conn>>,
    line: Option<Arc<Line>>,
}

impl Deref for PoolConnection {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.guard
            .as_deref()
            .expect("a pool connection holds its connection until dropped")
    }
}

impl DerefMut for PoolConnection {
    fn deref_mut(&mut self) -> &mut Conn {
        self.guard
            .as_deref_mut()
            .expect("a pool connection holds its connection until dropped")
    }
}

impl Drop for PoolConnection {
    fn drop(&mut self) {
        let (Some(mut guard), Some(line)) = (self.guard.take(), self.line.as_ref()) else {
            return;
        };
        // Whoever is in line continues the batch and commits it later; the last one commits.
        if line.waiting.load(Ordering::SeqCst) == 0 {
            flush(&mut guard);
            return;
        }
        let mutex = OwnedMutexGuard::mutex(&guard).clone();
        drop(guard);
        // Those in line may all have given up meanwhile (see `InLine`'s drop).
        if line.waiting.load(Ordering::SeqCst) == 0
            && let Ok(mut conn) = mutex.try_lock()
        {
            flush(&mut conn);
        }
    }
}

impl Pool<Sqlite> {
    /// Opens `size` connections to the database file at `path` (which must exist, with its
    /// tables migrated); `writer` selects the write pool (one connection, `BEGIN IMMEDIATE`,
    /// group commit) or a read-only one.
    ///
    /// # Errors
    /// When the file cannot be opened or configured.
    pub fn open(path: &Path, size: usize, writer: bool) -> anyhow::Result<Self> {
        Self::open_with(path, size, writer, Checkpoints::DEFAULT)
    }

    fn open_with(
        path: &Path,
        size: usize,
        writer: bool,
        checkpoints: Checkpoints,
    ) -> anyhow::Result<Self> {
        let flags = if writer {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let size = if writer { 1 } else { size.max(1) };
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = Connection::open_with_flags(path, flags)
                .map_err(|e| anyhow::anyhow!("opening SQLite database {}: {e}", path.display()))?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            let cache_kib = if writer {
                WRITER_CACHE_KIB
            } else {
                READER_CACHE_KIB
            };
            conn.execute_batch(&format!(
                "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{cache_kib};"
            ))?;
            if writer {
                // Checkpoints (which wait for the disk) run on their own thread, not inside a
                // commit on the request path: see `spawn_checkpointer`.
                conn.execute_batch(&format!(
                    "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
                ))?;
            }
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            conns.push(Arc::new(Mutex::new(Conn {
                conn,
                batch: None,
                guarded_until: None,
                aborted_batches: 0,
            })));
        }
        let conns: Arc<[Arc<Mutex<Conn>>]> = conns.into();
        if writer {
            spawn_checkpointer(path, Arc::downgrade(&conns), checkpoints)?;
        }
        Ok(Self {
            conns,
            next: Arc::new(AtomicUsize::new(0)),
            line: writer.then(|| Arc::new(Line::default())),
            _db: PhantomData,
        })
    }

    /// How many batches of the group commit were rolled back whole because a request that
    /// ran without a savepoint failed after changing rows (see [`Pool::begin_decided`]); 0
    /// on a read pool. Each is also counted in `evently_sqlite_group_aborts_total`.
    pub async fn aborted_batches(&self) -> u64 {
        if self.line.is_none() {
            return 0;
        }
        self.conns[0].lock().await.aborted_batches
    }

    /// Takes a connection: a free one if there is one, else waits for the next in turn.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] after waiting 30 s.
    pub async fn acquire(&self) -> Result<PoolConnection, StoreError> {
        let connection = |guard| PoolConnection {
            guard: Some(guard),
            line: self.line.clone(),
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        let mut in_line = self
            .line
            .as_deref()
            .map(|line| InLine::enter(line, &self.conns[start % n]));
        for i in 0..n {
            if let Ok(guard) = self.conns[(start + i) % n].clone().try_lock_owned() {
                if let Some(in_line) = in_line.as_mut() {
                    in_line.served = true;
                }
                return Ok(connection(guard));
            }
        }
        let wanted = self.conns[start % n].clone();
        match tokio::time::timeout(ACQUIRE_TIMEOUT, wanted.lock_owned()).await {
            Ok(guard) => {
                if let Some(in_line) = in_line.as_mut() {
                    in_line.served = true;
                }
                Ok(connection(guard))
            }
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!(
                "no SQLite connection became free within {ACQUIRE_TIMEOUT:?}"
            ))),
        }
    }
}

/// How the write pool's checkpointer keeps the write-ahead log bounded.
#[derive(Debug, Clone, Copy)]
struct Checkpoints {
    /// How often the log is copied back into the database file.
    every: Duration,
    /// The log's size from which the next write starts it over.
    restart_at: u64,
}

impl Checkpoints {
    const DEFAULT: Self = Self {
        every: Duration::from_millis(100),
        restart_at: WAL_RESTART_BYTES,
    };
}

/// The write-ahead log's size (bytes) from which the checkpointer makes the next write start
/// it over; the file itself is truncated back to [`WAL_LIMIT_BYTES`] when it is restarted
/// larger.
const WAL_RESTART_BYTES: u64 = 32 * 1024 * 1024;
/// How long a restart waits for the reads still on the log (the write connection waits as
/// long); when they take longer, the next pass tries again.
const RESTART_WAIT: Duration = Duration::from_millis(50);
/// SQLite's `journal_size_limit` on the write connection.
const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Copies back what it can of the log at `conn`'s file without waiting for anyone; returns
/// the frames in the log.
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// Starts the thread that checkpoints the write-ahead log of the file at `path` while the pool
/// whose connections are `alive` exists, and keeps the log bounded.
///
/// A `PASSIVE` checkpoint neither blocks nor waits for readers and writers; commits never wait
/// for the disk. But SQLite starts the log over only when a write transaction begins with all
/// of it copied back, and under a steady stream of group commits that never happens by itself:
/// each batch appends before the checkpoint catches up, and the file grows for as long as the
/// rush lasts (hundreds of megabytes in a minute, and appending to a growing file costs the
/// kernel several times what rewriting a bounded one does). So once the log passes
/// `restart_at`, the checkpointer takes the write connection between two requests, commits
/// the batch in progress (answering its requests, as the last of them would), and runs a
/// `RESTART` checkpoint: it copies the rest of the log back (only what arrived since the last
/// pass) and waits, at most [`RESTART_WAIT`], for reads that began before to end, so that the
/// next write transaction starts the log from its beginning; then it lets go. Reads that
/// begin meanwhile read the database file and do not hold it up. `journal_size_limit` truncates a log that
/// grew past [`WAL_LIMIT_BYTES`] when it restarts. Its size is the gauge
/// `evently_sqlite_wal_bytes{db}`.
fn spawn_checkpointer(
    path: &Path,
    alive: std::sync::Weak<[Arc<Mutex<Conn>>]>,
    checkpoints: Checkpoints,
) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(RESTART_WAIT)?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
    let page_size = u64::try_from(page_size).unwrap_or(4096);
    let db = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let wal_bytes = metrics::gauge!("evently_sqlite_wal_bytes", "db" => db);
    let wal_file = {
        let mut name = path.as_os_str().to_owned();
        name.push("-wal");
        std::path::PathBuf::from(name)
    };
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(checkpoints.every);
                let Some(conns) = alive.upgrade() else {
                    return;
                };
                let frames = match passive_checkpoint(&conn) {
                    Ok(frames) => u64::try_from(frames).unwrap_or(0),
                    Err(e) => {
                        tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
                        continue;
                    }
                };
                if frames * page_size >= checkpoints.restart_at
                    && let Some(writer) = conns.first()
                {
                    // Between two requests of the write connection: nothing is appended
                    // until the log is copied back in full.
                    let mut writer = writer.blocking_lock();
                    flush(&mut writer);
                    // Waits (at most `RESTART_WAIT`) for reads still on the log to end.
                    let restarted: rusqlite::Result<i64> =
                        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| row.get(0));
                    drop(writer);
                    match restarted {
                        Ok(0) => {
                            metrics::counter!("evently_sqlite_wal_restarts_total").increment(1)
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed; retrying"),
                    }
                }
                drop(conns);
                if let Ok(meta) = std::fs::metadata(&wal_file) {
                    #[expect(clippy::cast_precision_loss, reason = "a gauge")]
                    wal_bytes.set(meta.len() as f64);
                }
            }
        })?;
    Ok(())
}

/// Maps rusqlite's errors as [`StoreError`] maps sqlx's: a unique violation is a named
/// conflict, a busy or locked database is unavailable.
fn store_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match &error {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            let constraint = message
                .as_deref()
                .and_then(|m| m.rsplit(": ").next())
                .unwrap_or("unique")
                .to_owned();
            StoreError::Conflict { constraint }
        }
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(error.into())
        }
        _ => StoreError::Other(error.into()),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        store_error(error)
    }
}
