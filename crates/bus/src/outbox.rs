//! The transactional outbox: a service writes each domain event into its own `outbox` table
//! in the same transaction as the change it describes, so a change and its event are committed
//! together or not at all.
//!
//! Every service's migrations create the `outbox` and `bus_positions` tables exactly as in
//! `crates/bus/migrations/{sqlite,postgres}.sql`. Rows are numbered by `seq`, and `seq` order
//! is commit order: SQLite has a single writer, and on PostgreSQL [`append`] takes a
//! transaction-scoped advisory lock before the row gets its number, so a transaction that
//! numbers a row later also commits later. Without that, a reader could pass a gap that a
//! slower transaction fills afterwards, and skip its event for good. The lock is the last thing
//! a transaction takes (appending is its final statement), so it cannot deadlock.
//!
//! [`Outbox`] is what buses read: the in-process bus delivers rows after each consumer's
//! durable position; the NATS relay publishes unpublished rows and marks them afterwards.

use async_trait::async_trait;
use evently_core::db::{SqliteDb, StoreError};
use evently_core::sql::{self, Db, Tx};
use sqlx::PgPool;

use crate::BusError;
use crate::envelope::{Envelope, time_from_ms};

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Position in the outbox (commit order).
    pub seq: i64,
    /// The event.
    pub envelope: Envelope,
}

/// Reading an outbox and keeping consumer positions next to it.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Appends `envelope` in a transaction of its own (tools and benchmarks; services append
    /// inside their own transactions with [`append`]).
    async fn append(&self, envelope: &Envelope) -> Result<i64, BusError>;

    /// Up to `limit` rows with `seq > after`, in `seq` order.
    async fn read_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxRow>, BusError>;

    /// Up to `limit` rows not yet published to an external bus, in `seq` order.
    async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxRow>, BusError>;

    /// Marks every row with `seq <= up_to` as published at `now` (epoch ms).
    async fn mark_published(&self, up_to: i64, now: i64) -> Result<(), BusError>;

    /// Rows not yet published.
    async fn unpublished_count(&self) -> Result<u64, BusError>;

    /// The durable position of `consumer` (0 before its first ack).
    async fn position(&self, consumer: &str) -> Result<i64, BusError>;

    /// Stores the durable position of `consumer`.
    async fn set_position(&self, consumer: &str, seq: i64, now: i64) -> Result<(), BusError>;
}

fn corrupt(e: impl std::fmt::Display) -> BusError {
    BusError::Corrupt(e.to_string())
}

/// The next rows after `$1`, at most `$2` (every engine).
const READ_AFTER: &str = "SELECT seq, id, event_type, schema_version, aggregate_type, \
     aggregate_id, aggregate_version, occurred_at, payload, traceparent FROM outbox WHERE seq > $1 \
     ORDER BY seq LIMIT $2";

/// The first `$1` rows not yet published (every engine).
const UNPUBLISHED: &str = "SELECT seq, id, event_type, schema_version, aggregate_type, \
     aggregate_id, aggregate_version, occurred_at, payload, traceparent FROM outbox \
     WHERE published_at IS NULL ORDER BY seq LIMIT $1";

const INSERT: &str = "INSERT INTO outbox (id, event_type, schema_version, aggregate_type, \
     aggregate_id, aggregate_version, occurred_at, payload, traceparent) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq";

/// Marks every row up to `$1` published at `$2` (every engine).
const MARK_PUBLISHED: &str =
    "UPDATE outbox SET published_at = $2 WHERE seq <= $1 AND published_at IS NULL";

/// A consumer's durable position (every engine).
const POSITION: &str = "SELECT position FROM bus_positions WHERE consumer = $1";

/// Saves a consumer's position (every engine).
const SET_POSITION: &str = "INSERT INTO bus_positions (consumer, position, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (consumer) DO UPDATE SET position = excluded.position, \
     updated_at = excluded.updated_at";

/// Binds an envelope's outbox columns `$1`…`$9` (the order of [`INSERT`]) to `query`, whichever
/// SQL API it comes from.
macro_rules! bind_envelope {
    ($query:expr, $envelope:expr, $payload:expr) => {{
        let envelope = $envelope;
        $query
            .bind(envelope.id)
            .bind(&envelope.event_type)
            .bind(i64::from(envelope.schema_version))
            .bind(&envelope.aggregate_type)
            .bind(envelope.aggregate_id)
            .bind(envelope.aggregate_version)
            .bind(envelope.occurred_at_ms())
            .bind($payload)
            .bind(envelope.traceparent.as_deref())
    }};
}

fn payload_text(envelope: &Envelope) -> Result<String, sqlx::Error> {
    serde_json::to_string(&envelope.payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Appends `envelope` to the outbox on an in-process SQLite connection (see
/// [`evently_core::sqlite`]), inside the transaction of the change it describes. Returns its
/// `seq`.
///
/// # Errors
/// The database's error (a duplicate envelope id is a conflict).
pub async fn append_sqlite_in_process(
    conn: &mut evently_core::sqlite::Conn,
    envelope: &Envelope,
) -> Result<i64, StoreError> {
    use evently_core::sqlite::Row;
    let payload =
        serde_json::to_string(&envelope.payload).map_err(|e| StoreError::Other(e.into()))?;
    bind_envelope!(evently_core::sqlite::query(INSERT), envelope, payload)
        .fetch_one(conn)
        .await?
        .try_get("seq")
}

/// Takes the outbox lock of the connection's schema (see the module docs).
macro_rules! outbox_lock {
    () => {
        "SELECT pg_advisory_xact_lock(1163280201, hashtext(current_schema()))"
    };
}

const APPEND_POSTGRES: &str = concat!(
    "WITH locked AS MATERIALIZED (",
    outbox_lock!(),
    ") INSERT INTO outbox (id, event_type, schema_version, aggregate_type, aggregate_id, \
     aggregate_version, occurred_at, payload, traceparent) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM locked RETURNING seq"
);

/// The common-table expressions that append envelopes, in order, inside a larger PostgreSQL
/// statement whose other parts are also data-modifying CTEs: `outbox_lock` takes the outbox
/// lock before any of the rows draws its `seq`, and `{name}` inserts the rows (its
/// `RETURNING seq` counts them). The envelopes' columns are nine array parameters `$first`…
/// `$first+8`, bound by [`bind_envelopes_postgres`]; the text is the same for any number of
/// envelopes, so the server plans it once per connection. The statement must be the
/// transaction's last, as with [`append`].
#[must_use]
pub fn append_postgres_ctes(name: &str, first: usize) -> String {
    let p = |i: usize| first + i;
    format!(
        concat!(
            "outbox_lock AS MATERIALIZED (",
            outbox_lock!(),
            "), {name} AS (INSERT INTO outbox (id, event_type, schema_version, \
             aggregate_type, aggregate_id, aggregate_version, occurred_at, payload, \
             traceparent) \
             SELECT v.id, v.event_type, v.schema_version, v.aggregate_type, v.aggregate_id, \
             v.aggregate_version, v.occurred_at, v.payload, v.traceparent FROM outbox_lock, \
             unnest(${a}::uuid[], ${b}::text[], ${c}::bigint[], ${d}::text[], ${e}::uuid[], \
             ${f}::bigint[], ${g}::bigint[], ${h}::text[], ${i}::text[]) WITH ORDINALITY \
             AS v (id, event_type, schema_version, aggregate_type, aggregate_id, \
             aggregate_version, occurred_at, payload, traceparent, n) ORDER BY v.n \
             RETURNING seq)"
        ),
        name = name,
        a = p(0),
        b = p(1),
        c = p(2),
        d = p(3),
        e = p(4),
        f = p(5),
        g = p(6),
        h = p(7),
        i = p(8),
    )
}

/// Binds the columns of `envelopes`, one array per column, for [`append_postgres_ctes`],
/// after whatever `query` already binds.
///
/// # Errors
/// If a payload cannot be serialised.
pub fn bind_envelopes_postgres<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    envelopes: &[Envelope],
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>, sqlx::Error> {
    let payloads = envelopes
        .iter()
        .map(payload_text)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(query
        .bind(envelopes.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(
            envelopes
                .iter()
                .map(|e| e.event_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            envelopes
                .iter()
                .map(|e| i64::from(e.schema_version))
                .collect::<Vec<_>>(),
        )
        .bind(
            envelopes
                .iter()
                .map(|e| e.aggregate_type.clone())
                .collect::<Vec<_>>(),
        )
        .bind(envelopes.iter().map(|e| e.aggregate_id).collect::<Vec<_>>())
        .bind(
            envelopes
                .iter()
                .map(|e| e.aggregate_version)
                .collect::<Vec<_>>(),
        )
        .bind(
            envelopes
                .iter()
                .map(Envelope::occurred_at_ms)
                .collect::<Vec<_>>(),
        )
        .bind(payloads)
        .bind(
            envelopes
                .iter()
                .map(|e| e.traceparent.clone())
                .collect::<Vec<_>>(),
        ))
}

/// Appends `envelope` to the outbox inside `tx`, the transaction of the change it describes,
/// on either engine. On PostgreSQL it first takes the outbox lock that makes `seq` order
/// commit order (see the module docs), in the same round trip: call it as the transaction's
/// last statement. Returns its `seq`.
///
/// # Errors
/// The database's error (a duplicate envelope id is a conflict).
pub async fn append(tx: &mut Tx, envelope: &Envelope) -> Result<i64, StoreError> {
    let payload =
        serde_json::to_string(&envelope.payload).map_err(|e| StoreError::Other(e.into()))?;
    let sql = tx.engine().pick(INSERT, APPEND_POSTGRES);
    bind_envelope!(sql::query(sql), envelope, payload)
        .fetch_one(tx)
        .await?
        .get("seq")
}

fn outbox_row(row: &sql::Row) -> Result<OutboxRow, BusError> {
    let payload: String = row.get("payload")?;
    let schema_version: i64 = row.get("schema_version")?;
    let occurred_at: i64 = row.get("occurred_at")?;
    Ok(OutboxRow {
        seq: row.get("seq")?,
        envelope: Envelope {
            id: row.get("id")?,
            event_type: row.get("event_type")?,
            schema_version: u32::try_from(schema_version).map_err(corrupt)?,
            aggregate_type: row.get("aggregate_type")?,
            aggregate_id: row.get("aggregate_id")?,
            aggregate_version: row.get("aggregate_version")?,
            occurred_at: time_from_ms(occurred_at),
            payload: serde_json::from_str(&payload).map_err(corrupt)?,
            traceparent: row.get("traceparent")?,
        },
    })
}

/// The outbox in a service's own database, on the service store's connections
/// ([`evently_core::sql`]): on SQLite the relay's and the consumers' writes queue on the same
/// write connection as the store's changes (and join its group commit) instead of waiting for
/// SQLite's file lock beside it, which a busy store hardly ever lets go.
///
/// Its methods span at debug level: the relay and the consumers call them on every poll.
#[derive(Debug, Clone)]
pub struct SqlOutbox {
    db: Db,
}

impl SqlOutbox {
    /// An outbox over `db`, whose tables the service's migrations created.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl Outbox for SqlOutbox {
    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(envelope.id = %envelope.id, envelope.type = %envelope.event_type)
    )]
    async fn append(&self, envelope: &Envelope) -> Result<i64, BusError> {
        let mut tx = self.db.begin().await?;
        let seq = append(&mut tx, envelope).await?;
        tx.commit().await?;
        Ok(seq)
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(outbox.after = after, outbox.limit = limit)
    )]
    async fn read_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxRow>, BusError> {
        let rows = sql::query(READ_AFTER)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(self.db.reader())
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(outbox.limit = limit))]
    async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxRow>, BusError> {
        let rows = sql::query(UNPUBLISHED)
            .bind(i64::from(limit))
            .fetch_all(self.db.reader())
            .await?;
        rows.iter().map(outbox_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(outbox.up_to = up_to))]
    async fn mark_published(&self, up_to: i64, now: i64) -> Result<(), BusError> {
        sql::query(MARK_PUBLISHED)
            .bind(up_to)
            .bind(now)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn unpublished_count(&self) -> Result<u64, BusError> {
        let n: i64 = sql::query("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")
            .fetch_one(self.db.reader())
            .await?
            .get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(consumer = consumer))]
    async fn position(&self, consumer: &str) -> Result<i64, BusError> {
        let row = sql::query(POSITION)
            .bind(consumer)
            .fetch_optional(self.db.reader())
            .await?;
        Ok(match row {
            Some(row) => row.get("position")?,
            None => 0,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(consumer = consumer, outbox.seq = seq))]
    async fn set_position(&self, consumer: &str, seq: i64, now: i64) -> Result<(), BusError> {
        sql::query(SET_POSITION)
            .bind(consumer)
            .bind(seq)
            .bind(now)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }
}

/// Creates the outbox tables on SQLite (for tools and tests that have no service migrations).
///
/// # Errors
/// The database's error.
pub async fn create_sqlite_tables(db: &SqliteDb) -> Result<(), StoreError> {
    sqlx::raw_sql(include_str!("../migrations/sqlite.sql"))
        .execute(&db.writer)
        .await?;
    sqlx::raw_sql(include_str!("../migrations/outbox_traceparent.sql"))
        .execute(&db.writer)
        .await?;
    Ok(())
}

/// Creates the outbox tables on PostgreSQL (for tools and tests that have no service
/// migrations).
///
/// # Errors
/// The database's error.
pub async fn create_postgres_tables(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::raw_sql(include_str!("../migrations/postgres.sql"))
        .execute(pool)
        .await?;
    sqlx::raw_sql(include_str!("../migrations/outbox_traceparent.sql"))
        .execute(pool)
        .await?;
    Ok(())
}
