//! Statements: [`query`] and its binds, [`QueryBuilder`], the [`Executor`]s statements run on
//! (a connection, inside a transaction or not, or a pool), and the rows they return.
//!
//! Invariants: `$N` binds the N-th value bound, whatever its place in the text, as sqlx does
//! (a placeholder with no value, or a value that does not convert, binds NULL, and the
//! statement's constraints refuse it); statements are prepared through each connection's
//! statement cache; rows are read into memory ([`OwnedRow`]) before the connection is given
//! back; a statement run on the write pool outside a transaction is a grouped transaction of
//! its own.

use rusqlite::Connection;
use rusqlite::types::{FromSql, ToSql, ToSqlOutput, Value, ValueRef};
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{Conn, Pool, Sqlite, store_error};
use crate::db::StoreError;

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
                // A write outside a transaction is a transaction of its own, grouped as any;
                // it needs no savepoint: SQLite takes back a failed statement by itself.
                let tx = self.begin_decided().await?;
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

    /// Binds the next `$N` to a value already in SQLite's representation (moved, not copied).
    #[must_use]
    pub fn bind_value(mut self, value: Value) -> Self {
        self.args.push(value);
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
