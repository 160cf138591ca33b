//! Database connections for both engines, behind one URL.
//!
//! - `sqlite:` — the embedded default. One file per service. WAL journal so readers never wait
//!   for the writer; a pool of readers and a single writer connection, so that writes queue in
//!   the pool (a cheap async wait) instead of spinning on `SQLITE_BUSY`, and a write transaction
//!   can never fail to upgrade its lock.
//! - `postgres:` — each service keeps its tables in its own schema (set as `search_path` on
//!   every connection), so services sharing one database never see each other's tables.
//!
//! [`StoreError`] is the error every store method returns; its mapping to HTTP is deliberate
//! (a unique violation is a named conflict, an unreachable database is 503).

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;

use crate::config::DatabaseConfig;
use crate::problem::Problem;

/// The engine a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Engine {
    /// The engine for `url`, from its scheme.
    ///
    /// # Errors
    /// For any other scheme.
    pub fn of(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Engine::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Engine::Postgres)
        } else {
            anyhow::bail!("unsupported database URL scheme (expected sqlite: or postgres://)")
        }
    }
}

/// SQLite pools: many readers, one writer.
#[derive(Debug, Clone)]
pub struct SqliteDb {
    /// Read-only work.
    pub reader: SqlitePool,
    /// Every write transaction (a single connection).
    pub writer: SqlitePool,
    /// The database file (for the in-process connections of [`crate::sqlite`]).
    pub path: std::path::PathBuf,
}

/// Opens the SQLite database at `url`, creating the file (and its directory) if needed.
///
/// # Errors
/// When the URL is invalid or the file cannot be opened.
pub async fn connect_sqlite(url: &SecretString) -> anyhow::Result<SqliteDb> {
    let options = SqliteConnectOptions::from_str(url.expose_secret())
        .context("parsing the SQLite URL")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        .pragma("cache_size", "-16000")
        .log_statements(tracing::log::LevelFilter::Trace);
    let filename = options.get_filename().to_path_buf();
    if let Some(dir) = filename.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .with_context(|| format!("opening SQLite database {}", filename.display()))?;
    let reader = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.read_only(true).pragma(
            "cache_size",
            format!("-{}", crate::sqlite::READER_CACHE_KIB),
        ))
        .await
        .with_context(|| format!("opening SQLite database {} for reading", filename.display()))?;
    Ok(SqliteDb {
        reader,
        writer,
        path: filename,
    })
}

/// Connects to PostgreSQL at `url`, with `schema` created if missing and used as the
/// `search_path` of every pooled connection.
///
/// # Errors
/// When the URL is invalid, the server cannot be reached or the schema cannot be created.
pub async fn connect_postgres(
    url: &SecretString,
    schema: &str,
    config: &DatabaseConfig,
) -> anyhow::Result<PgPool> {
    anyhow::ensure!(
        !schema.is_empty()
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "schema names are lowercase letters, digits and underscores"
    );
    let options = PgConnectOptions::from_str(url.expose_secret())
        .context("parsing the PostgreSQL URL")?
        .log_statements(tracing::log::LevelFilter::Trace);
    let mut conn = options
        .clone()
        .connect()
        .await
        .context("connecting to PostgreSQL")?;
    // Concurrent first starts of several processes may race to create the schema.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
    )))
    .execute(&mut conn)
    .await
    .or_else(|e| match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            Ok(Default::default())
        }
        _ => Err(e),
    })
    .with_context(|| format!("creating schema {schema}"))?;
    conn.close().await.ok();
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_seconds))
        .connect_with(options.options([("search_path", schema)]))
        .await
        .context("opening the PostgreSQL pool")?;
    Ok(pool)
}

/// The error of every store method.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness or other constraint refused the write.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint (or index) name.
        constraint: String,
    },
    /// The database cannot be reached or has no free connection.
    #[error("database unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
                constraint: db.constraint().unwrap_or("unique").to_owned(),
            },
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(error.into()),
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("5" | "6" | "57P01" | "57P03")) =>
            {
                // SQLite BUSY/LOCKED; PostgreSQL admin shutdown / cannot connect now.
                StoreError::Unavailable(error.into())
            }
            _ => StoreError::Other(error.into()),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Problem::not_found("no such resource"),
            StoreError::Conflict { constraint } => Problem::conflict("conflict", "Conflict")
                .detail(format!(
                    "the change conflicts with existing data ({constraint})"
                )),
            StoreError::Unavailable(e) => {
                Problem::unavailable("the database is unavailable; retry shortly", 1)
                    .with_internal(e)
            }
            StoreError::Other(e) => Problem::internal(e),
        }
    }
}

/// Checks that a pool answers; used by readiness probes.
///
/// # Errors
/// When the database does not answer `SELECT 1`.
pub async fn ping_sqlite(db: &SqliteDb) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(&db.reader).await?;
    Ok(())
}

/// Checks that a PostgreSQL pool answers.
///
/// # Errors
/// When the database does not answer `SELECT 1`.
pub async fn ping_postgres(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
