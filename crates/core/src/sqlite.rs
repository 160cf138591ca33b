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

use rusqlite::types::{FromSql, ToSql, ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use crate::db::StoreError;

/// How long a caller waits for a free connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (a store has a few dozen distinct statements, plus
/// the `IN (…)` lists of each length).
const STATEMENT_CACHE: usize = 256;

/// The database type parameter of this module's types (the counterpart of `sqlx::Sqlite`).
#[derive(Debug, Clone, Copy)]
pub struct Sqlite;

/// Marks SQL built at run time as safe (it interpolates only constants and placeholders), as
/// `sqlx::AssertSqlSafe` does.
#[derive(Debug)]
pub struct AssertSqlSafe<T>(pub T);

/// SQL text for [`query`].
#[derive(Debug)]
pub struct Sql(Cow<'static, str>);

impl From<&'static str> for Sql {
    fn from(sql: &'static str) -> Self {
        Sql(Cow::Borrowed(sql))
    }
}

impl From<AssertSqlSafe<String>> for Sql {
    fn from(sql: AssertSqlSafe<String>) -> Self {
        Sql(Cow::Owned(sql.0))
    }
}

/// One connection, and on the write connection the group commit in progress.
#[derive(Debug)]
pub struct Conn {
    conn: Connection,
    batch: Option<Batch>,
}

/// A write transaction shared by consecutive requests (group commit): each request's
/// statements run in a savepoint of it, and each request hears of the one `COMMIT` that makes
/// its changes durable before it answers.
#[derive(Debug, Default)]
struct Batch {
    waiters: Vec<oneshot::Sender<Result<(), Arc<str>>>>,
}

/// Requests in line for the write connection. The last of a run of requests commits.
#[derive(Debug, Default)]
struct Line {
    waiting: AtomicUsize,
}

/// Counts a request in [`Line`] until it holds the connection or gives up waiting.
struct InLine<'a> {
    line: &'a Line,
    conn: &'a Arc<Mutex<Conn>>,
    served: bool,
}

impl<'a> InLine<'a> {
    fn enter(line: &'a Line, conn: &'a Arc<Mutex<Conn>>) -> Self {
        line.waiting.fetch_add(1, Ordering::SeqCst);
        Self {
            line,
            conn,
            served: false,
        }
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let before = self.line.waiting.fetch_sub(1, Ordering::SeqCst);
        // The last request in line gave up (its caller went away): the batch it was to
        // continue is committed now if the connection is free, else by whoever holds it.
        if !self.served
            && before == 1
            && let Ok(mut conn) = self.conn.try_lock()
        {
            flush(&mut conn);
        }
    }
}

/// Requests whose changes one `COMMIT` makes durable at most.
const MAX_BATCH: usize = 64;

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

/// Commits the batch in progress (if any) and tells every request in it how that went.
fn flush(conn: &mut Conn) {
    let Some(batch) = conn.batch.take() else {
        return;
    };
    let outcome = if conn.conn.is_autocommit() {
        // SQLite rolled the transaction back by itself (an I/O error, for instance).
        Err(Arc::<str>::from("the transaction was rolled back"))
    } else {
        match conn.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = conn.conn.execute_batch("ROLLBACK");
                Err(Arc::<str>::from(e.to_string()))
            }
        }
    };
    for waiter in batch.waiters {
        let _ = waiter.send(outcome.clone());
    }
}

/// An open transaction; rolled back when dropped without [`Transaction::commit`].
#[derive(Debug)]
pub struct Transaction<'a, DB = Sqlite> {
    conn: Option<PoolConnection>,
    _marker: PhantomData<(&'a (), DB)>,
}

impl Deref for Transaction<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_deref()
            .expect("a transaction holds its connection until commit or drop")
    }
}

impl DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_deref_mut()
            .expect("a transaction holds its connection until commit or drop")
    }
}

impl Transaction<'_> {
    /// Commits the transaction. On the write pool it joins the group commit in progress and
    /// returns once that is durable.
    ///
    /// # Errors
    /// The database's error; the transaction's changes are then gone.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        if conn.line.is_none() {
            conn.conn.execute_batch("COMMIT").map_err(store_error)?;
            return Ok(());
        }
        if let Err(e) = conn.conn.execute_batch("RELEASE op") {
            undo_op(&conn);
            return Err(store_error(e));
        }
        let (tx, rx) = oneshot::channel();
        let full = match conn.batch.as_mut() {
            Some(batch) => {
                batch.waiters.push(tx);
                batch.waiters.len() >= MAX_BATCH
            }
            None => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "a grouped transaction without its batch"
                )));
            }
        };
        if full {
            flush(&mut conn);
        }
        drop(conn);
        match tokio::time::timeout(ACQUIRE_TIMEOUT, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(StoreError::Other(anyhow::anyhow!("commit failed: {e}"))),
            Ok(Err(_)) => Err(StoreError::Other(anyhow::anyhow!(
                "the group commit ended without an answer"
            ))),
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!(
                "no group commit within {ACQUIRE_TIMEOUT:?}"
            ))),
        }
    }

    /// Rolls the transaction back.
    ///
    /// # Errors
    /// The database's error.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        if let Some(conn) = self.conn.take() {
            rollback(&conn);
        }
        Ok(())
    }
}

/// Takes back what the current request did inside the batch.
fn undo_op(conn: &Conn) {
    if !conn.conn.is_autocommit()
        && let Err(e) = conn.conn.execute_batch("ROLLBACK TO op; RELEASE op")
    {
        tracing::warn!(error = %e, "rolling back a SQLite savepoint failed");
    }
}

fn rollback(conn: &PoolConnection) {
    if conn.line.is_some() {
        undo_op(conn);
    } else if !conn.conn.is_autocommit()
        && let Err(e) = conn.conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %e, "rolling back a SQLite transaction failed");
    }
}

impl<DB> Drop for Transaction<'_, DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            rollback(&conn);
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
            conn.execute_batch(
                "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                 PRAGMA temp_store = MEMORY; PRAGMA cache_size = -16000;",
            )?;
            if writer {
                // Checkpoints (which wait for the disk) run on their own thread, not inside a
                // commit on the request path: see `spawn_checkpointer`.
                conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
            }
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            conns.push(Arc::new(Mutex::new(Conn { conn, batch: None })));
        }
        let conns: Arc<[Arc<Mutex<Conn>>]> = conns.into();
        if writer {
            spawn_checkpointer(path, Arc::downgrade(&conns))?;
        }
        Ok(Self {
            conns,
            next: Arc::new(AtomicUsize::new(0)),
            line: writer.then(|| Arc::new(Line::default())),
            _db: PhantomData,
        })
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

    /// Begins a transaction on a connection of the pool (on the write pool: a savepoint of
    /// the group commit in progress, which it opens if there is none).
    ///
    /// # Errors
    /// As [`Pool::acquire`], or the database's error.
    pub async fn begin(&self) -> Result<Transaction<'static>, StoreError> {
        let mut conn = self.acquire().await?;
        if self.line.is_none() {
            conn.conn.execute_batch("BEGIN").map_err(store_error)?;
        } else {
            if conn.batch.is_none() {
                conn.conn
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(store_error)?;
                conn.batch = Some(Batch::default());
            }
            conn.conn
                .execute_batch("SAVEPOINT op")
                .map_err(store_error)?;
        }
        Ok(Transaction {
            conn: Some(conn),
            _marker: PhantomData,
        })
    }
}

/// What a statement is run for.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Execute,
    Fetch(usize),
}

/// What running a statement gave.
#[derive(Debug)]
pub enum Outcome {
    /// Rows changed.
    Changed(u64),
    /// Rows read.
    Rows(Vec<OwnedRow>),
}

/// A boxed, sendable future (the executor's answer; boxed so that the store's `async_trait`
/// methods stay `Send` without higher-ranked bounds on an opaque type).
pub type BoxFuture<'e, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'e>>;

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Starts the thread that checkpoints the write-ahead log of the file at `path` while the pool
/// whose connections are `alive` exists. A `PASSIVE` checkpoint neither blocks nor waits for
/// readers and writers; it copies what it can, and the log is reused from its start once all of
/// it has been copied, so the file stays bounded while commits never wait for the disk.
fn spawn_checkpointer(
    path: &Path,
    alive: std::sync::Weak<[Arc<Mutex<Conn>>]>,
) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if alive.strong_count() == 0 {
                    return;
                }
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; retrying");
                }
            }
        })?;
    Ok(())
}

/// Something statements run on: a connection (inside a transaction or not) or a pool.
pub trait Executor<'e>: Send {
    /// The database (for signatures shared with sqlx).
    type Database;

    /// Runs `query` on a connection.
    fn run(
        self,
        query: Query,
        mode_fetch: Option<usize>,
    ) -> BoxFuture<'e, Result<Outcome, StoreError>>;
}

fn mode(fetch: Option<usize>) -> Mode {
    fetch.map_or(Mode::Execute, Mode::Fetch)
}

impl<'e> Executor<'e> for &'e mut Conn {
    type Database = Sqlite;

    fn run(self, query: Query, fetch: Option<usize>) -> BoxFuture<'e, Result<Outcome, StoreError>> {
        Box::pin(std::future::ready(run_on(&self.conn, &query, mode(fetch))))
    }
}

impl<'e> Executor<'e> for &'e Pool<Sqlite> {
    type Database = Sqlite;

    fn run(self, query: Query, fetch: Option<usize>) -> BoxFuture<'e, Result<Outcome, StoreError>> {
        Box::pin(async move {
            if self.line.is_some() {
                // A write outside a transaction is a transaction of its own, grouped as any.
                let tx = self.begin().await?;
                let conn: &Conn = &tx;
                let outcome = run_on(&conn.conn, &query, mode(fetch))?;
                tx.commit().await?;
                return Ok(outcome);
            }
            let conn = self.acquire().await?;
            run_on(&conn.conn, &query, mode(fetch))
        })
    }
}

fn run_on(conn: &Connection, query: &Query, mode: Mode) -> Result<Outcome, StoreError> {
    match mode {
        Mode::Fetch(limit) => rows(conn, &query.sql, &query.args, limit).map(Outcome::Rows),
        Mode::Execute => {
            let mut stmt = prepare(conn, &query.sql, &query.args)?;
            if stmt.readonly() {
                let mut rows = stmt.raw_query();
                while rows.next().map_err(store_error)?.is_some() {}
                return Ok(Outcome::Changed(0));
            }
            let n = stmt.raw_execute().map_err(store_error)?;
            Ok(Outcome::Changed(u64::try_from(n).unwrap_or(u64::MAX)))
        }
    }
}

/// What a statement changed.
#[derive(Debug, Clone, Copy)]
pub struct QueryResult {
    rows_affected: u64,
}

impl QueryResult {
    /// Rows inserted, updated or deleted.
    #[must_use]
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// A row read into memory, its columns readable by name.
#[derive(Debug, Clone)]
pub struct OwnedRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

/// Reading a column of a row by name (the counterpart of `sqlx::Row`).
pub trait Row {
    /// The value of column `name`.
    ///
    /// # Errors
    /// An unknown column, or a value of another type.
    fn try_get<T: FromSql, I: AsRef<str>>(&self, name: I) -> Result<T, StoreError>;
}

impl Row for OwnedRow {
    fn try_get<T: FromSql, I: AsRef<str>>(&self, name: I) -> Result<T, StoreError> {
        let name = name.as_ref();
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("no column {name}")))?;
        T::column_result(ValueRef::from(&self.values[index]))
            .map_err(|e| StoreError::Other(anyhow::anyhow!("column {name}: {e}")))
    }
}

/// A statement and its arguments.
#[derive(Debug)]
pub struct Query {
    sql: Cow<'static, str>,
    args: Vec<Value>,
}

/// Starts a statement; bind its `$N` placeholders with [`Query::bind`].
pub fn query(sql: impl Into<Sql>) -> Query {
    Query {
        sql: sql.into().0,
        args: Vec::new(),
    }
}

fn owned(value: &dyn ToSql) -> Value {
    match value.to_sql() {
        Ok(ToSqlOutput::Borrowed(r)) => Value::try_from(r).unwrap_or(Value::Null),
        Ok(ToSqlOutput::Owned(v)) => v,
        // Every type evently binds converts; anything else binds as NULL, and the
        // statement's constraints refuse it.
        _ => Value::Null,
    }
}

impl Query {
    /// Binds the next `$N`.
    #[must_use]
    pub fn bind<T: ToSql>(mut self, value: T) -> Self {
        self.args.push(owned(&value));
        self
    }

    /// Runs the statement; returns what it changed.
    ///
    /// # Errors
    /// The database's error.
    pub async fn execute<'e, E: Executor<'e>>(self, on: E) -> Result<QueryResult, StoreError> {
        match on.run(self, None).await? {
            Outcome::Changed(rows_affected) => Ok(QueryResult { rows_affected }),
            Outcome::Rows(_) => Ok(QueryResult { rows_affected: 0 }),
        }
    }

    /// Every row the statement returns.
    ///
    /// # Errors
    /// The database's error.
    pub async fn fetch_all<'e, E: Executor<'e>>(self, on: E) -> Result<Vec<OwnedRow>, StoreError> {
        match on.run(self, Some(usize::MAX)).await? {
            Outcome::Rows(rows) => Ok(rows),
            Outcome::Changed(_) => Ok(Vec::new()),
        }
    }

    /// The first row, if any.
    ///
    /// # Errors
    /// The database's error.
    pub async fn fetch_optional<'e, E: Executor<'e>>(
        self,
        on: E,
    ) -> Result<Option<OwnedRow>, StoreError> {
        match on.run(self, Some(1)).await? {
            Outcome::Rows(mut rows) => Ok(rows.pop()),
            Outcome::Changed(_) => Ok(None),
        }
    }

    /// The first row.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is none, or the database's error.
    pub async fn fetch_one<'e, E: Executor<'e>>(self, on: E) -> Result<OwnedRow, StoreError> {
        self.fetch_optional(on).await?.ok_or(StoreError::NotFound)
    }
}

/// Prepares (or takes from the cache) `sql` and binds `$N` to `args[N - 1]`.
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    args: &[Value],
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(store_error)?;
    for i in 1..=stmt.parameter_count() {
        let n = match stmt.parameter_name(i) {
            Some(name) => name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    StoreError::Other(anyhow::anyhow!("unsupported placeholder {name}"))
                })?,
            None => i,
        };
        let value = n.checked_sub(1).and_then(|n| args.get(n));
        match value {
            Some(v) => stmt.raw_bind_parameter(i, v),
            None => stmt.raw_bind_parameter(i, Value::Null),
        }
        .map_err(store_error)?;
    }
    Ok(stmt)
}

fn rows(
    conn: &Connection,
    sql: &str,
    args: &[Value],
    limit: usize,
) -> Result<Vec<OwnedRow>, StoreError> {
    let mut stmt = prepare(conn, sql, args)?;
    let names: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let n = names.len();
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while out.len() < limit {
        let Some(row) = rows.next().map_err(store_error)? else {
            break;
        };
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            let value = row.get_ref(i).map_err(store_error)?;
            values.push(
                Value::try_from(value)
                    .map_err(|e| StoreError::Other(anyhow::anyhow!("column {}: {e}", names[i])))?,
            );
        }
        out.push(OwnedRow {
            names: names.clone(),
            values,
        });
    }
    Ok(out)
}

/// Builds an `INSERT … VALUES (…), (…)` with bound values (the counterpart of
/// `sqlx::QueryBuilder`).
#[derive(Debug)]
pub struct QueryBuilder<DB = Sqlite> {
    sql: String,
    args: Vec<Value>,
    _db: PhantomData<DB>,
}

/// One tuple of [`QueryBuilder::push_values`].
#[derive(Debug)]
pub struct Separated<'a> {
    builder: &'a mut QueryBuilder,
    first: bool,
}

impl Separated<'_> {
    /// Adds a bound value to the tuple.
    pub fn push_bind<T: ToSql>(&mut self, value: T) -> &mut Self {
        if !self.first {
            self.builder.sql.push_str(", ");
        }
        self.first = false;
        self.builder.args.push(owned(&value));
        let n = self.builder.args.len();
        self.builder.sql.push('$');
        self.builder.sql.push_str(&n.to_string());
        self
    }
}

impl QueryBuilder<Sqlite> {
    /// Starts with `init` (e.g. `INSERT INTO t (a, b) `).
    pub fn new(init: impl Into<String>) -> Self {
        Self {
            sql: init.into(),
            args: Vec::new(),
            _db: PhantomData,
        }
    }

    /// Appends `VALUES (…), (…)`, one tuple per item, filled by `push`.
    pub fn push_values<I, F>(&mut self, tuples: I, mut push: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(Separated<'_>, I::Item),
    {
        self.sql.push_str("VALUES ");
        for (i, tuple) in tuples.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self.sql.push('(');
            push(
                Separated {
                    builder: self,
                    first: true,
                },
                tuple,
            );
            self.sql.push(')');
        }
        self
    }

    /// The statement built so far (the builder starts over).
    pub fn build(&mut self) -> Query {
        Query {
            sql: Cow::Owned(std::mem::take(&mut self.sql)),
            args: std::mem::take(&mut self.args),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn pools() -> (tempfile_dir::Dir, Pool, Pool) {
        let dir = tempfile_dir::Dir::new();
        let path = dir.path().join("t.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE t (id BLOB PRIMARY KEY, n INTEGER NOT NULL, s TEXT)",
            )
            .unwrap();
        }
        let writer = Pool::open(&path, 1, true).unwrap();
        let reader = Pool::open(&path, 2, false).unwrap();
        (dir, writer, reader)
    }

    /// A temporary directory removed on drop (kept local: one test module needs it).
    mod tempfile_dir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p =
                    std::env::temp_dir().join(format!("evently-sqlite-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn placeholders_bind_by_number_not_position() {
        let (_dir, writer, reader) = pools().await;
        let id = uuid::Uuid::new_v4();

        query("INSERT INTO t (s, n, id) VALUES ($3, $2, $1)")
            .bind(id)
            .bind(7_i64)
            .bind("seven")
            .execute(&writer)
            .await
            .unwrap();

        let row = query("SELECT id, n, s FROM t WHERE id = $1")
            .bind(id)
            .fetch_one(&reader)
            .await
            .unwrap();
        assert_eq!(row.try_get::<uuid::Uuid, _>("id").unwrap(), id);
        assert_eq!(row.try_get::<i64, _>("n").unwrap(), 7);
        assert_eq!(
            row.try_get::<Option<String>, _>("s").unwrap().as_deref(),
            Some("seven")
        );
    }

    #[tokio::test]
    async fn dropped_transaction_rolls_back_and_commit_keeps() {
        let (_dir, writer, reader) = pools().await;

        let mut tx = writer.begin().await.unwrap();
        query("INSERT INTO t (id, n) VALUES ($1, 1)")
            .bind(uuid::Uuid::new_v4())
            .execute(&mut *tx)
            .await
            .unwrap();
        drop(tx);
        let mut tx = writer.begin().await.unwrap();
        let changed = query("INSERT INTO t (id, n) VALUES ($1, 2)")
            .bind(uuid::Uuid::new_v4())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        assert_eq!(changed.rows_affected(), 1);
        let rows = query("SELECT n FROM t").fetch_all(&reader).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].try_get::<i64, _>("n").unwrap(), 2);
    }

    #[tokio::test]
    async fn unique_violation_is_a_conflict_and_values_build_in_order() {
        let (_dir, writer, _reader) = pools().await;
        let id = uuid::Uuid::new_v4();
        let mut builder = QueryBuilder::new("INSERT INTO t (id, n) ");
        builder.push_values([(id, 1_i64)], |mut b, (id, n)| {
            b.push_bind(id).push_bind(n);
        });
        builder.build().execute(&writer).await.unwrap();

        let again = query("INSERT INTO t (id, n) VALUES ($1, 2)")
            .bind(id)
            .execute(&writer)
            .await;

        assert!(
            matches!(again, Err(StoreError::Conflict { .. })),
            "{again:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_are_durable_when_they_return_and_a_failure_loses_only_itself() {
        let (_dir, writer, reader) = pools().await;
        let taken = uuid::Uuid::new_v4();
        query("INSERT INTO t (id, n) VALUES ($1, 0)")
            .bind(taken)
            .execute(&writer)
            .await
            .unwrap();

        let mut tasks = Vec::new();
        for i in 0..200_i64 {
            let (writer, reader) = (writer.clone(), reader.clone());
            tasks.push(tokio::spawn(async move {
                // Every tenth request collides with the row above and must fail alone.
                let id = if i % 10 == 0 {
                    taken
                } else {
                    uuid::Uuid::new_v4()
                };
                let mut tx = writer.begin().await?;
                query("INSERT INTO t (id, n) VALUES ($1, $2)")
                    .bind(id)
                    .bind(i)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                // Committed means visible to every other connection.
                let row = query("SELECT n FROM t WHERE id = $1")
                    .bind(id)
                    .fetch_one(&reader)
                    .await?;
                row.try_get::<i64, _>("n")
            }));
        }
        let mut ok = 0;
        let mut conflicts = 0;
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(n) => {
                    assert_eq!(n, i as i64);
                    ok += 1;
                }
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("request {i}: {e}"),
            }
        }

        assert_eq!((ok, conflicts), (180, 20));
        let rows = query("SELECT COUNT(*) AS c FROM t")
            .fetch_one(&reader)
            .await
            .unwrap();
        assert_eq!(rows.try_get::<i64, _>("c").unwrap(), 181);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_gives_up_waiting_does_not_strand_the_batch() {
        let (_dir, writer, reader) = pools().await;
        let first = writer.begin().await.unwrap();
        // A second request lines up behind the first, then its caller goes away.
        let waiting = {
            let writer = writer.clone();
            tokio::spawn(async move { writer.begin().await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut first = first;
        query("INSERT INTO t (id, n) VALUES ($1, 1)")
            .bind(uuid::Uuid::new_v4())
            .execute(&mut *first)
            .await
            .unwrap();

        waiting.abort();
        let _ = waiting.await;
        let committed = tokio::spawn(first.commit());
        let outcome = tokio::time::timeout(Duration::from_secs(5), committed).await;

        assert!(matches!(outcome, Ok(Ok(Ok(())))), "{outcome:?}");
        let rows = query("SELECT COUNT(*) AS c FROM t")
            .fetch_one(&reader)
            .await
            .unwrap();
        assert_eq!(rows.try_get::<i64, _>("c").unwrap(), 1);
    }
}
