//! The PostgreSQL side of the booking store: opening it, sending a transaction's row writes
//! in one statement, and the planner's statistics. Each inventory change locks its event's row
//! (`SELECT … FOR UPDATE`) before reading seats, so changes of one event are serialised and
//! changes of different events run in parallel; the outbox append takes the per-schema
//! outbox lock last (see `evently_bus::outbox`). The writes that end a change go in one
//! statement with the append ([`send_writes`]), and the holds and purchases that queue for
//! an event while its lock is taken are decided together in its next transaction
//! ([`super::Batches`]).

use sqlx as sql;
use sqlx::PgPool;

impl super::SqlBookingStore {
    /// Opens the store on `pool` (its `search_path` names the booking schema) and applies
    /// pending migrations.
    ///
    /// # Errors
    /// If a migration fails.
    pub async fn postgres(pool: PgPool) -> anyhow::Result<Self> {
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("applying booking PostgreSQL migrations: {e}"))?;
        Ok(Self {
            db: evently_core::sql::Db::postgres(pool),
            gates: std::sync::Arc::default(),
            batches: Some(std::sync::Arc::default()),
            // Another booking process could free a seat unseen (see `sold_out`).
            sold_out: None,
        })
    }
}

/// Gathers the planner's statistics of the tables the audit counts. A sale grows them from
/// empty; with statistics from before it (or none, where autovacuum is off) the planner takes
/// them for a few rows and joins them by nested loops, a minute at 50,000 seats instead of a
/// fraction of a second.
pub(super) async fn analyze(pool: &PgPool) -> Result<(), evently_core::db::StoreError> {
    sqlx::query("ANALYZE seats, tickets, orders, holds")
        .execute(pool)
        .await?;
    Ok(())
}

/// Sends `writes` and appends `envelopes` in one statement: each write a data-modifying CTE
/// (`RETURNING 1`, so the final select counts the rows it changed), the outbox append last
/// in the list. The writes touch different rows, since a statement's CTEs all see the
/// snapshot from before it.
pub(super) async fn send_writes(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    writes: &super::Writes,
    envelopes: &[evently_bus::Envelope],
) -> Result<Vec<u64>, evently_core::db::StoreError> {
    send_on(tx, writes, envelopes).await
}

/// Sends `writes` as one statement outside any transaction: a statement is atomic by itself,
/// and it saves the `BEGIN` and `COMMIT` round trips.
pub(super) async fn write_alone(
    pool: &PgPool,
    writes: &super::Writes,
) -> Result<Vec<u64>, evently_core::db::StoreError> {
    let mut conn = pool.acquire().await?;
    send_on(&mut conn, writes, &[]).await
}

async fn send_on(
    conn: &mut sqlx::PgConnection,
    writes: &super::Writes,
    envelopes: &[evently_bus::Envelope],
) -> Result<Vec<u64>, evently_core::db::StoreError> {
    use sqlx::Row as _;
    let statements = writes.statements(true);
    if statements.is_empty() && envelopes.is_empty() {
        return Ok(Vec::new());
    }
    let mut ctes = Vec::with_capacity(statements.len() + 1);
    let mut bound = 0;
    for (i, statement) in statements.iter().enumerate() {
        ctes.push(format!(
            "w{i} AS ({} RETURNING 1)",
            super::shift_placeholders(statement.sql, bound)
        ));
        bound += statement.writes[0].args.len();
    }
    if !envelopes.is_empty() {
        ctes.push(evently_bus::outbox::append_postgres_ctes(
            "appended",
            bound + 1,
        ));
    }
    let counts = if statements.is_empty() {
        "(SELECT count(*) FROM appended) AS appended".to_owned()
    } else {
        (0..statements.len())
            .map(|i| format!("(SELECT count(*) FROM w{i}) AS c{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!("WITH {} SELECT {counts}", ctes.join(", "));
    let mut query = sql::query(sql::AssertSqlSafe(text));
    for statement in &statements {
        query = if statement.many {
            bind_columns(query, &statement.writes)?
        } else {
            statement.writes[0]
                .args
                .iter()
                .fold(query, |query, arg| match arg {
                    super::Arg::Uuid(v) => query.bind(*v),
                    super::Arg::Int(v) => query.bind(*v),
                    super::Arg::Text(v) => query.bind(v.as_str()),
                })
        };
    }
    let query = evently_bus::outbox::bind_envelopes_postgres(query, envelopes)?;
    let row = query.fetch_one(&mut *conn).await?;
    statements
        .iter()
        .enumerate()
        .map(|(i, statement)| {
            let n: i64 = row.try_get(i)?;
            let n = u64::try_from(n).unwrap_or(0);
            statement.check(n)?;
            Ok(n)
        })
        .collect()
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the rows of one kind of row write as one array per column.
fn bind_columns<'q>(
    mut query: PgQuery<'q>,
    rows: &[&super::Write],
) -> Result<PgQuery<'q>, evently_core::db::StoreError> {
    use super::Arg;
    for column in 0..rows[0].args.len() {
        query = match rows[0].args[column] {
            Arg::Uuid(_) => query.bind(column_of(rows, column, |a| match a {
                Arg::Uuid(v) => Some(*v),
                _ => None,
            })?),
            Arg::Int(_) => query.bind(column_of(rows, column, |a| match a {
                Arg::Int(v) => Some(*v),
                _ => None,
            })?),
            Arg::Text(_) => query.bind(column_of(rows, column, |a| match a {
                Arg::Text(v) => Some(v.clone()),
                _ => None,
            })?),
        };
    }
    Ok(query)
}

/// Column `column` of every row, each value taken by `value` (which refuses another type).
fn column_of<T>(
    rows: &[&super::Write],
    column: usize,
    value: impl Fn(&super::Arg) -> Option<T>,
) -> Result<Vec<T>, evently_core::db::StoreError> {
    rows.iter()
        .map(|row| row.args.get(column).and_then(&value))
        .collect::<Option<Vec<T>>>()
        .ok_or_else(|| {
            evently_core::db::StoreError::Other(anyhow::anyhow!(
                "the rows of one kind of write have different columns"
            ))
        })
}
