//! One SQL API over both engines, so that a store's body is written once.
//!
//! A store holds a [`Db`] and writes each statement once:
//!
//! ```ignore
//! let mut tx = db.begin().await?;
//! let rows = query("SELECT id, name FROM users WHERE email = $1")
//!     .bind(email)
//!     .fetch_all(&mut tx)
//!     .await?;
//! let id: Uuid = rows[0].get("id")?;
//! tx.commit().await?;
//! ```
//!
//! The same text runs on SQLite, through the in-process connections of [`crate::sqlite`] (a
//! reader pool and the single write connection with group commit), and on PostgreSQL, through
//! sqlx's pool. Each type here is an enum with one variant per engine ([`Pool`], [`Tx`],
//! [`Row`]); a statement is dispatched to its engine once, when it runs. Placeholders are `$N`
//! on both engines.
//!
//! What truly differs between the engines is said where it differs, not hidden:
//! [`Engine::pick`] chooses between two statement texts, and [`Tx::for_update`] adds
//! PostgreSQL's row lock to a read (on SQLite the single write connection already serialises
//! every write transaction, so the read needs no lock).
//!
//! Values are bound as [`Arg`]s, which keep their type even when they are `NULL`: PostgreSQL
//! plans a statement with the types of its parameters. Columns are read through [`Column`],
//! implemented for the few types evently's tables hold; on PostgreSQL an `i64` is also read
//! from an `INTEGER` column, so one body reads both engines' integer columns alike.

use std::borrow::Cow;
use std::path::Path;

use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::{Row as _, TypeInfo as _, ValueRef as _};
use uuid::Uuid;

use crate::db::{Engine, StoreError};
use crate::sqlite;
use crate::sqlite::Row as _;

impl Engine {
    /// `sqlite` on SQLite, `postgres` on PostgreSQL: for the few statements whose text
    /// differs between the engines.
    #[must_use]
    pub fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Engine::Sqlite => sqlite,
            Engine::Postgres => postgres,
        }
    }
}

/// Connections to one service's database.
#[derive(Debug, Clone)]
pub enum Pool {
    /// In-process SQLite connections (a reader pool, or the single write connection).
    Sqlite(sqlite::Pool),
    /// A PostgreSQL pool.
    Postgres(PgPool),
}

impl Pool {
    /// The engine behind the pool.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match self {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }
}

/// A store's database: where it reads and where it writes. On SQLite these are a pool of
/// read-only connections and the single write connection (whose transactions commit in
/// groups, see [`crate::sqlite`]); on PostgreSQL both are the same pool.
#[derive(Debug, Clone)]
pub struct Db {
    reader: Pool,
    writer: Pool,
}

impl Db {
    /// Opens the SQLite file at `path` (which must exist, its tables migrated) with `readers`
    /// read-only connections and the write connection.
    ///
    /// # Errors
    /// When the file cannot be opened or configured.
    pub fn sqlite(path: &Path, readers: usize) -> anyhow::Result<Self> {
        Ok(Self {
            reader: Pool::Sqlite(sqlite::Pool::open(path, readers, false)?),
            writer: Pool::Sqlite(sqlite::Pool::open(path, 1, true)?),
        })
    }

    /// Uses SQLite pools already open: `reader` (read-only connections) and `writer` (the
    /// write connection).
    #[must_use]
    pub fn sqlite_pools(reader: sqlite::Pool, writer: sqlite::Pool) -> Self {
        Self {
            reader: Pool::Sqlite(reader),
            writer: Pool::Sqlite(writer),
        }
    }

    /// Uses the PostgreSQL `pool` for reads and writes.
    #[must_use]
    pub fn postgres(pool: PgPool) -> Self {
        Self {
            reader: Pool::Postgres(pool.clone()),
            writer: Pool::Postgres(pool),
        }
    }

    /// The engine behind the store.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.writer.engine()
    }

    /// Where reads outside a transaction run.
    #[must_use]
    pub fn reader(&self) -> &Pool {
        &self.reader
    }

    /// Where writes outside a transaction run (each is a transaction of its own).
    #[must_use]
    pub fn writer(&self) -> &Pool {
        &self.writer
    }

    /// Begins a write transaction; it is rolled back when dropped without [`Tx::commit`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no connection becomes free in time, or the
    /// database's error.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        self.writer.begin().await
    }

    /// Checks that the database answers (for readiness).
    ///
    /// # Errors
    /// When it does not answer `SELECT 1`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

impl Pool {
    /// Begins a transaction on a connection of the pool (on the SQLite write connection, a
    /// savepoint of the group commit in progress; on a SQLite reader pool, a read
    /// transaction that sees one snapshot).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no connection becomes free in time, or the
    /// database's error.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a transaction for code that decides before it writes, so that a refusal comes
    /// before its first change. On the SQLite write connection it joins the group commit
    /// without a savepoint (cheaper), and a failure after a change rolls back the whole
    /// group; call [`Tx::isolate`] before a write that a refusal may follow. Elsewhere it is
    /// [`Pool::begin`].
    ///
    /// # Errors
    /// As [`Pool::begin`].
    pub async fn begin_decided(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin_decided().await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Takes a connection of the pool, for several reads in a row on one connection.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when none becomes free in time.
    pub async fn acquire(&self) -> Result<Conn, StoreError> {
        Ok(match self {
            Pool::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
            Pool::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        })
    }
}

/// A connection taken from a [`Pool`]; returned to it when dropped.
#[derive(Debug)]
pub enum Conn {
    /// A SQLite connection.
    Sqlite(sqlite::PoolConnection),
    /// A PostgreSQL connection.
    Postgres(sqlx::pool::PoolConnection<Postgres>),
}

/// An open write transaction; rolled back when dropped without [`Tx::commit`].
#[derive(Debug)]
pub enum Tx {
    /// On the SQLite write connection (part of the group commit in progress).
    Sqlite(sqlite::Transaction<'static>),
    /// On a PostgreSQL connection.
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// The engine the transaction runs on.
    #[must_use]
    pub fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
        }
    }

    /// `sql` as a locking read: on PostgreSQL followed by ` FOR UPDATE` (`lock` names the
    /// tables to lock, e.g. `" OF t, f"`, or is empty for every table read), so concurrent
    /// transactions wait for this one; on SQLite as it is, since its single write connection
    /// runs one write transaction at a time.
    #[must_use]
    pub fn for_update(&self, sql: &'static str, lock: &str) -> Sql {
        match self {
            Tx::Sqlite(_) => Sql::from(sql),
            Tx::Postgres(_) => Sql(Cow::Owned(format!("{sql} FOR UPDATE{lock}"))),
        }
    }

    /// From here on, a failure takes back only this transaction's changes (a transaction
    /// begun with [`Pool::begin_decided`] on SQLite opens its savepoint; elsewhere that is
    /// already so). Call it before the first write that a refusal may follow.
    pub fn isolate(&mut self) {
        if let Tx::Sqlite(tx) = self {
            tx.isolate();
        }
    }

    /// Commits. On SQLite it joins the group commit in progress and returns once that is
    /// durable.
    ///
    /// # Errors
    /// The database's error; the transaction's changes are then gone.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => Ok(tx.commit().await?),
        }
    }
}

/// Statement text: static, or built at run time from constants and placeholders only (user
/// input is always bound, never interpolated).
#[derive(Debug, Clone)]
pub struct Sql(Cow<'static, str>);

impl From<&'static str> for Sql {
    fn from(sql: &'static str) -> Self {
        Sql(Cow::Borrowed(sql))
    }
}

impl Sql {
    /// Text built at run time; the caller asserts it interpolates only constants and
    /// placeholders, as `sqlx::AssertSqlSafe` does.
    #[must_use]
    pub fn assert_safe(sql: String) -> Self {
        Sql(Cow::Owned(sql))
    }
}

/// A bound value. Each variant keeps its type when it is `NULL` (`None`).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `BIGINT` on PostgreSQL, `INTEGER` on SQLite.
    Int(Option<i64>),
    /// `BOOLEAN` on PostgreSQL, `INTEGER` 0/1 on SQLite.
    Bool(Option<bool>),
    /// `TEXT`.
    Text(Option<String>),
    /// `UUID` on PostgreSQL, a 16-byte `BLOB` on SQLite.
    Uuid(Option<Uuid>),
    /// `BYTEA` on PostgreSQL, `BLOB` on SQLite.
    Bytes(Option<Vec<u8>>),
}

macro_rules! into_arg {
    ($($t:ty => $variant:ident($convert:expr)),+ $(,)?) => {$(
        impl From<$t> for Arg {
            fn from(value: $t) -> Self {
                Arg::$variant(Some($convert(value)))
            }
        }
        impl From<Option<$t>> for Arg {
            fn from(value: Option<$t>) -> Self {
                Arg::$variant(value.map($convert))
            }
        }
    )+};
}

into_arg!(
    i64 => Int(|v| v),
    i32 => Int(i64::from),
    u32 => Int(i64::from),
    bool => Bool(|v| v),
    String => Text(|v| v),
    &str => Text(str::to_owned),
    &String => Text(String::clone),
    Uuid => Uuid(|v| v),
    &Uuid => Uuid(|v: &Uuid| *v),
    &i64 => Int(|v: &i64| *v),
    Vec<u8> => Bytes(|v| v),
);

impl From<&Option<String>> for Arg {
    fn from(value: &Option<String>) -> Self {
        Arg::Text(value.clone())
    }
}

/// A statement and its bound values.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is executed or fetched"]
pub struct Query {
    sql: Sql,
    args: Vec<Arg>,
}

/// Starts a statement; bind its `$N` placeholders in order with [`Query::bind`].
pub fn query(sql: impl Into<Sql>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

/// Where a statement runs: a pool (a transaction of its own for a write) or an open
/// transaction.
#[derive(Debug)]
pub enum On<'a> {
    /// A pool.
    Pool(&'a Pool),
    /// A transaction.
    Tx(&'a mut Tx),
    /// A connection taken from a pool.
    Conn(&'a mut Conn),
}

impl<'a> From<&'a mut Conn> for On<'a> {
    fn from(conn: &'a mut Conn) -> Self {
        On::Conn(conn)
    }
}

impl<'a> From<&'a Pool> for On<'a> {
    fn from(pool: &'a Pool) -> Self {
        On::Pool(pool)
    }
}

impl<'a> From<&'a mut Tx> for On<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        On::Tx(tx)
    }
}

impl Query {
    /// Binds the next `$N`.
    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs the statement; returns the number of rows it changed.
    ///
    /// # Errors
    /// The database's error, as a [`StoreError`].
    pub async fn execute<'a>(self, on: impl Into<On<'a>>) -> Result<u64, StoreError> {
        match on.into() {
            On::Pool(Pool::Sqlite(pool)) => Ok(self.sqlite().execute(pool).await?.rows_affected()),
            On::Tx(Tx::Sqlite(tx)) => Ok(self.sqlite().execute(&mut **tx).await?.rows_affected()),
            On::Conn(Conn::Sqlite(conn)) => {
                Ok(self.sqlite().execute(&mut **conn).await?.rows_affected())
            }
            On::Pool(Pool::Postgres(pool)) => {
                Ok(self.postgres().execute(pool).await?.rows_affected())
            }
            On::Tx(Tx::Postgres(tx)) => {
                Ok(self.postgres().execute(&mut **tx).await?.rows_affected())
            }
            On::Conn(Conn::Postgres(conn)) => {
                Ok(self.postgres().execute(&mut **conn).await?.rows_affected())
            }
        }
    }

    /// Every row the statement returns.
    ///
    /// # Errors
    /// The database's error, as a [`StoreError`].
    pub async fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> Result<Vec<Row>, StoreError> {
        Ok(match on.into() {
            On::Pool(Pool::Sqlite(pool)) => sqlite_rows(self.sqlite().fetch_all(pool).await?),
            On::Tx(Tx::Sqlite(tx)) => sqlite_rows(self.sqlite().fetch_all(&mut **tx).await?),
            On::Pool(Pool::Postgres(pool)) => pg_rows(self.postgres().fetch_all(pool).await?),
            On::Tx(Tx::Postgres(tx)) => pg_rows(self.postgres().fetch_all(&mut **tx).await?),
            On::Conn(Conn::Sqlite(conn)) => {
                sqlite_rows(self.sqlite().fetch_all(&mut **conn).await?)
            }
            On::Conn(Conn::Postgres(conn)) => {
                pg_rows(self.postgres().fetch_all(&mut **conn).await?)
            }
        })
    }

    /// The first row, if any.
    ///
    /// # Errors
    /// The database's error, as a [`StoreError`].
    pub async fn fetch_optional<'a>(
        self,
        on: impl Into<On<'a>>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(match on.into() {
            On::Pool(Pool::Sqlite(pool)) => {
                self.sqlite().fetch_optional(pool).await?.map(Row::Sqlite)
            }
            On::Tx(Tx::Sqlite(tx)) => self
                .sqlite()
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            On::Pool(Pool::Postgres(pool)) => self
                .postgres()
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
            On::Tx(Tx::Postgres(tx)) => self
                .postgres()
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
            On::Conn(Conn::Sqlite(conn)) => self
                .sqlite()
                .fetch_optional(&mut **conn)
                .await?
                .map(Row::Sqlite),
            On::Conn(Conn::Postgres(conn)) => self
                .postgres()
                .fetch_optional(&mut **conn)
                .await?
                .map(Row::Postgres),
        })
    }

    /// The first row.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is none, or the database's error.
    pub async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<Row, StoreError> {
        self.fetch_optional(on).await?.ok_or(StoreError::NotFound)
    }

    fn sqlite(self) -> sqlite::Query {
        use rusqlite::types::Value;
        let mut query = match self.sql.0 {
            Cow::Borrowed(sql) => sqlite::query(sql),
            Cow::Owned(sql) => sqlite::query(sqlite::AssertSqlSafe(sql)),
        };
        for arg in self.args {
            // The representation rusqlite's own conversions give (a UUID is its 16 bytes),
            // with text and blobs moved rather than copied.
            let value = match arg {
                Arg::Int(Some(v)) => Value::Integer(v),
                Arg::Bool(Some(v)) => Value::Integer(i64::from(v)),
                Arg::Text(Some(v)) => Value::Text(v),
                Arg::Uuid(Some(v)) => Value::Blob(v.as_bytes().to_vec()),
                Arg::Bytes(Some(v)) => Value::Blob(v),
                Arg::Int(None)
                | Arg::Bool(None)
                | Arg::Text(None)
                | Arg::Uuid(None)
                | Arg::Bytes(None) => Value::Null,
            };
            query = query.bind_value(value);
        }
        query
    }

    fn postgres(self) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        let mut query = match self.sql.0 {
            Cow::Borrowed(sql) => sqlx::query(sql),
            Cow::Owned(sql) => sqlx::query(sqlx::AssertSqlSafe(sql)),
        };
        for arg in self.args {
            query = match arg {
                Arg::Int(v) => query.bind(v),
                Arg::Bool(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::Uuid(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
            };
        }
        query
    }
}

fn sqlite_rows(rows: Vec<sqlite::OwnedRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Sqlite).collect()
}

fn pg_rows(rows: Vec<PgRow>) -> Vec<Row> {
    rows.into_iter().map(Row::Postgres).collect()
}

/// A row read, its columns readable by name with [`Row::get`].
#[derive(Debug)]
pub enum Row {
    /// From SQLite.
    Sqlite(sqlite::OwnedRow),
    /// From PostgreSQL.
    Postgres(PgRow),
}

impl Row {
    /// The value of column `name`.
    ///
    /// # Errors
    /// An unknown column, or a value that is not a `T`.
    pub fn get<T: Column>(&self, name: &str) -> Result<T, StoreError> {
        match self {
            Row::Sqlite(row) => T::from_sqlite(row, name),
            Row::Postgres(row) => T::from_postgres(row, name),
        }
    }
}

/// A type a column is read as, on either engine.
pub trait Column: Sized {
    /// Reads column `name` of a SQLite row.
    ///
    /// # Errors
    /// An unknown column, or a value of another type.
    fn from_sqlite(row: &sqlite::OwnedRow, name: &str) -> Result<Self, StoreError>;

    /// Reads column `name` of a PostgreSQL row.
    ///
    /// # Errors
    /// An unknown column, or a value of another type.
    fn from_postgres(row: &PgRow, name: &str) -> Result<Self, StoreError>;
}

/// Implements [`Column`] for types (and their `Option`) that both drivers decode directly.
macro_rules! column {
    ($($t:ty),+ $(,)?) => {$(
        impl Column for $t {
            fn from_sqlite(row: &sqlite::OwnedRow, name: &str) -> Result<Self, StoreError> {
                row.try_get(name)
            }
            fn from_postgres(row: &PgRow, name: &str) -> Result<Self, StoreError> {
                Ok(row.try_get(name)?)
            }
        }
        impl Column for Option<$t> {
            fn from_sqlite(row: &sqlite::OwnedRow, name: &str) -> Result<Self, StoreError> {
                row.try_get(name)
            }
            fn from_postgres(row: &PgRow, name: &str) -> Result<Self, StoreError> {
                Ok(row.try_get(name)?)
            }
        }
    )+};
}

column!(bool, String, Uuid, Vec<u8>, f64);

/// Reads a PostgreSQL integer column of any width as an `i64`.
fn pg_integer(row: &PgRow, name: &str) -> Result<Option<i64>, StoreError> {
    let value = row.try_get_raw(name)?;
    if value.is_null() {
        return Ok(None);
    }
    let width = value.type_info().name().to_owned();
    Ok(Some(match width.as_str() {
        "INT2" => i64::from(row.try_get::<i16, _>(name)?),
        "INT4" => i64::from(row.try_get::<i32, _>(name)?),
        _ => row.try_get::<i64, _>(name)?,
    }))
}

impl Column for i64 {
    fn from_sqlite(row: &sqlite::OwnedRow, name: &str) -> Result<Self, StoreError> {
        row.try_get(name)
    }
    fn from_postgres(row: &PgRow, name: &str) -> Result<Self, StoreError> {
        pg_integer(row, name)?
            .ok_or_else(|| StoreError::Other(anyhow::anyhow!("column {name} is NULL")))
    }
}

impl Column for Option<i64> {
    fn from_sqlite(row: &sqlite::OwnedRow, name: &str) -> Result<Self, StoreError> {
        row.try_get(name)
    }
    fn from_postgres(row: &PgRow, name: &str) -> Result<Self, StoreError> {
        pg_integer(row, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    #[test]
    fn engine_picks_its_own_text() {
        assert_eq!(Engine::Sqlite.pick("a", "b"), "a");
        assert_eq!(Engine::Postgres.pick("a", "b"), "b");
    }

    #[test]
    fn nulls_keep_their_type() {
        assert_eq!(Arg::from(None::<i64>), Arg::Int(None));
        assert_eq!(Arg::from(None::<&str>), Arg::Text(None));
        assert_eq!(Arg::from(Some(7_i32)), Arg::Int(Some(7)));
        assert_eq!(Arg::from("x"), Arg::Text(Some("x".into())));
    }

    async fn sqlite_db() -> (TempDir, Db) {
        let dir = TempDir::new();
        let path = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (id BLOB PRIMARY KEY, n INTEGER NOT NULL, \
             small INTEGER, name TEXT, flag INTEGER NOT NULL, data BLOB); \
             CREATE UNIQUE INDEX t_name_key ON t (name);",
        )
        .unwrap();
        drop(conn);
        (dir, Db::sqlite(&path, 2).unwrap())
    }

    async fn postgres_db() -> Option<Db> {
        let url = std::env::var("EVENTLY_TEST_POSTGRES_URL").ok()?;
        let schema = format!("t_{}", Uuid::new_v4().simple());
        let pool = crate::db::connect_postgres(
            &secrecy::SecretString::from(url),
            &schema,
            &crate::config::DatabaseConfig::default(),
        )
        .await
        .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE t (id UUID PRIMARY KEY, n BIGINT NOT NULL, small INTEGER, name TEXT, \
             flag BOOLEAN NOT NULL, data BYTEA); CREATE UNIQUE INDEX t_name_key ON t (name);",
        )
        .execute(&pool)
        .await
        .unwrap();
        Some(Db::postgres(pool))
    }

    /// The same statements read and write the same values on either engine.
    async fn round_trip(db: &Db) {
        let id = Uuid::now_v7();
        let mut tx = db.begin().await.unwrap();
        let n =
            query("INSERT INTO t (id, n, small, name, flag, data) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(id)
                .bind(i64::MAX)
                .bind(Some(7_i32))
                .bind(None::<String>)
                .bind(true)
                .bind(vec![1_u8, 2, 3])
                .execute(&mut tx)
                .await
                .unwrap();
        assert_eq!(n, 1);
        let sql = tx.for_update(
            "SELECT id, n, small, name, flag, data FROM t WHERE id = $1",
            "",
        );
        let row = query(sql).bind(id).fetch_one(&mut tx).await.unwrap();
        assert_eq!(row.get::<Uuid>("id").unwrap(), id);
        assert_eq!(row.get::<i64>("n").unwrap(), i64::MAX);
        assert_eq!(row.get::<i64>("small").unwrap(), 7);
        assert_eq!(row.get::<Option<String>>("name").unwrap(), None);
        assert!(row.get::<bool>("flag").unwrap());
        assert_eq!(row.get::<Vec<u8>>("data").unwrap(), vec![1, 2, 3]);
        assert!(row.get::<i64>("missing").is_err());
        tx.commit().await.unwrap();

        let rows = query("SELECT n FROM t")
            .fetch_all(db.reader())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let none = query("SELECT n FROM t WHERE id = $1")
            .bind(Uuid::now_v7())
            .fetch_optional(db.reader())
            .await
            .unwrap();
        assert!(none.is_none());
        assert!(matches!(
            query("SELECT n FROM t WHERE n = 0")
                .fetch_one(db.reader())
                .await,
            Err(StoreError::NotFound)
        ));
        db.ping().await.unwrap();
    }

    /// A transaction dropped without commit leaves nothing; a unique violation is a conflict.
    async fn rollback_and_conflict(db: &Db) {
        let insert = |name: &'static str| {
            query("INSERT INTO t (id, n, name, flag) VALUES ($1, 1, $2, $3)")
                .bind(Uuid::now_v7())
                .bind(name)
                .bind(false)
        };
        let mut tx = db.begin().await.unwrap();
        insert("dropped").execute(&mut tx).await.unwrap();
        drop(tx);
        let n: i64 = query("SELECT COUNT(*) AS n FROM t WHERE name = 'dropped'")
            .fetch_one(db.reader())
            .await
            .unwrap()
            .get("n")
            .unwrap();
        assert_eq!(n, 0);

        insert("once").execute(db.writer()).await.unwrap();
        let err = insert("once").execute(db.writer()).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_round_trips_and_rolls_back() {
        let (_dir, db) = sqlite_db().await;
        assert_eq!(db.engine(), Engine::Sqlite);
        round_trip(&db).await;
        rollback_and_conflict(&db).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_round_trips_and_rolls_back() {
        let Some(db) = postgres_db().await else {
            eprintln!(
                "skipped: sql::postgres_round_trips_and_rolls_back: EVENTLY_TEST_POSTGRES_URL not set"
            );
            return;
        };
        assert_eq!(db.engine(), Engine::Postgres);
        round_trip(&db).await;
        rollback_and_conflict(&db).await;
    }
}
