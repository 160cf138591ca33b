//! Transactions, and the group commit of the write pool.
//!
//! On a read pool a transaction is a plain `BEGIN` … `COMMIT`. On the write pool consecutive
//! requests share one write transaction, a batch: the first request opens it with
//! `BEGIN IMMEDIATE`, and the last request in line for the connection commits it, answering
//! every request of the batch with the outcome of that one `COMMIT`.
//!
//! How a request that fails inside a batch takes back its changes depends on how it began:
//!
//! - [`Pool::begin`]: in a savepoint (`op`) of the batch, which a failure rolls back. SQLite
//!   copies every page the request changes into the savepoint's journal first.
//! - [`Pool::begin_decided`]: for code that decides before it writes, so that a refusal
//!   comes before its first change. It runs without a savepoint and skips those copies. Its
//!   rollback takes back nothing when it changed nothing. If it did change rows (a failure of
//!   the database, or a check that found the store inconsistent), the whole batch is rolled
//!   back and every request of it hears so ([`StoreError::Unavailable`]: nothing of theirs
//!   was kept, and they may retry). For [`GUARDED_AFTER_ABORT`] after that, such requests run
//!   in savepoints too, so a request that fails again fails alone. Code that may refuse after
//!   a write calls [`Transaction::isolate`] before that write.
//! - A single statement run on the pool ([`super::Executor`] for `&Pool`) runs without a
//!   savepoint: SQLite takes back a failed statement by itself.
//!
//! Invariants: a commit returns only once the `COMMIT` that holds its changes has run, so what
//! a caller was told is committed is durable and visible to every other connection; a request
//! that fails or is dropped takes back its own changes, and never leaves half of them in a
//! batch that commits; a batch never stays open with nobody left to commit it (the last
//! request in line commits it, also when it gives up waiting and the connection is free); a
//! batch holds at most `MAX_BATCH` requests.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, oneshot};

use super::{ACQUIRE_TIMEOUT, Conn, Pool, PoolConnection, Sqlite, store_error};
use crate::db::StoreError;

/// A write transaction shared by consecutive requests (group commit): each request hears of
/// the one `COMMIT` that makes its changes durable before it answers.
#[derive(Debug, Default)]
pub(super) struct Batch {
    waiters: Vec<oneshot::Sender<Result<(), Failed>>>,
}

/// Why a batch did not commit.
#[derive(Debug, Clone)]
enum Failed {
    /// The `COMMIT` failed, or SQLite had rolled the transaction back by itself.
    Commit(Arc<str>),
    /// A request of the batch that ran without a savepoint failed after changing rows.
    Aborted,
}

/// How long after a batch was rolled back for one request's failure every request runs in a
/// savepoint: a request that fails each time it runs then fails alone when it is retried.
pub(super) const GUARDED_AFTER_ABORT: Duration = Duration::from_secs(5);

/// Requests in line for the write connection. The last of a run of requests commits.
#[derive(Debug, Default)]
pub(super) struct Line {
    pub(super) waiting: AtomicUsize,
}

/// Counts a request in [`Line`] until it holds the connection or gives up waiting.
pub(super) struct InLine<'a> {
    line: &'a Line,
    conn: &'a Arc<Mutex<Conn>>,
    pub(super) served: bool,
}

impl<'a> InLine<'a> {
    pub(super) fn enter(line: &'a Line, conn: &'a Arc<Mutex<Conn>>) -> Self {
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

/// Runs a transaction-control statement (`BEGIN`, `SAVEPOINT op`, `COMMIT`…) from the
/// connection's statement cache: each request runs several, and preparing them anew each
/// time was a visible share of a purchase's SQLite work.
fn control(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Requests whose changes one `COMMIT` makes durable at most.
const MAX_BATCH: usize = 64;

/// Commits the batch in progress (if any) and tells every request in it how that went.
pub(super) fn flush(conn: &mut Conn) {
    let Some(batch) = conn.batch.take() else {
        return;
    };
    let outcome = if conn.conn.is_autocommit() {
        // SQLite rolled the transaction back by itself (an I/O error, for instance).
        Err(Failed::Commit(Arc::from("the transaction was rolled back")))
    } else {
        match control(&conn.conn, "COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = control(&conn.conn, "ROLLBACK");
                Err(Failed::Commit(Arc::from(e.to_string())))
            }
        }
    };
    for waiter in batch.waiters {
        let _ = waiter.send(outcome.clone());
    }
}

/// Rolls back the batch in progress, because a request of it that ran without a savepoint
/// failed after changing rows: every request of the batch hears that nothing of it was kept,
/// and the requests of the next [`GUARDED_AFTER_ABORT`] run in savepoints.
fn abort(conn: &mut Conn) {
    if !conn.conn.is_autocommit()
        && let Err(e) = control(&conn.conn, "ROLLBACK")
    {
        tracing::warn!(error = %e, "rolling back a SQLite group commit failed");
    }
    conn.guarded_until = Some(Instant::now() + GUARDED_AFTER_ABORT);
    conn.aborted_batches += 1;
    let waiters = conn.batch.take().map(|b| b.waiters).unwrap_or_default();
    tracing::warn!(
        requests = waiters.len(),
        "a request failed after changing rows outside a savepoint: its group commit was \
         rolled back"
    );
    metrics::counter!("evently_sqlite_group_aborts_total").increment(1);
    for waiter in waiters {
        let _ = waiter.send(Err(Failed::Aborted));
    }
}

/// How a write transaction's changes are taken back if it fails (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// A transaction of its own (a read pool's): `ROLLBACK`.
    Own,
    /// A savepoint of the batch: `ROLLBACK TO op`.
    Savepoint,
    /// No savepoint; the connection's count of changed rows when it began.
    Decided { changes_at_begin: u64 },
}

/// An open transaction; rolled back when dropped without [`Transaction::commit`].
#[derive(Debug)]
pub struct Transaction<'a, DB = Sqlite> {
    conn: Option<PoolConnection>,
    guard: Guard,
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
        match self.guard {
            Guard::Own => {
                control(&conn.conn, "COMMIT").map_err(store_error)?;
                return Ok(());
            }
            Guard::Savepoint => {
                if let Err(e) = control(&conn.conn, "RELEASE op") {
                    undo_op(&conn);
                    return Err(store_error(e));
                }
            }
            Guard::Decided { .. } => {}
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
            Ok(Ok(Err(Failed::Commit(e)))) => {
                Err(StoreError::Other(anyhow::anyhow!("commit failed: {e}")))
            }
            Ok(Ok(Err(Failed::Aborted))) => Err(StoreError::Unavailable(anyhow::anyhow!(
                "rolled back with a request of the same group commit that failed; \
                 nothing of this one was kept"
            ))),
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
        if let Some(mut conn) = self.conn.take() {
            rollback(&mut conn, self.guard);
        }
        Ok(())
    }

    /// From here on, a failure of this transaction takes back only its own changes: on the
    /// write pool, a transaction begun with [`Pool::begin_decided`] opens its savepoint now.
    /// Called before a write that a refusal may follow (ending expired holds before a
    /// decision, for instance). It must come before the transaction's first change: one made
    /// before it stays unguarded (a failure then rolls back the whole batch).
    pub fn isolate(&mut self) {
        let Guard::Decided { changes_at_begin } = self.guard else {
            return;
        };
        let Some(conn) = self.conn.as_deref() else {
            return;
        };
        if conn.conn.total_changes() != changes_at_begin {
            debug_assert!(false, "isolate() after the transaction's first change");
            tracing::warn!("a transaction asked for a savepoint after its first change");
            return;
        }
        match control(&conn.conn, "SAVEPOINT op") {
            Ok(()) => self.guard = Guard::Savepoint,
            // Still without a savepoint: a failure after a change rolls the batch back.
            Err(e) => tracing::warn!(error = %e, "opening a SQLite savepoint failed"),
        }
    }
}

/// Takes back what the current request did inside the batch.
fn undo_op(conn: &Conn) {
    if !conn.conn.is_autocommit()
        && let Err(e) =
            control(&conn.conn, "ROLLBACK TO op").and_then(|()| control(&conn.conn, "RELEASE op"))
    {
        tracing::warn!(error = %e, "rolling back a SQLite savepoint failed");
    }
}

fn rollback(conn: &mut PoolConnection, guard: Guard) {
    match guard {
        Guard::Savepoint => undo_op(conn),
        Guard::Decided { changes_at_begin } => {
            // Nothing changed, nothing to take back; otherwise only the whole batch can be.
            if conn.conn.total_changes() != changes_at_begin {
                abort(conn);
            }
        }
        Guard::Own => {
            if !conn.conn.is_autocommit()
                && let Err(e) = control(&conn.conn, "ROLLBACK")
            {
                tracing::warn!(error = %e, "rolling back a SQLite transaction failed");
            }
        }
    }
}

impl<DB> Drop for Transaction<'_, DB> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            rollback(&mut conn, self.guard);
        }
    }
}

impl Pool<Sqlite> {
    /// Begins a transaction on a connection of the pool (on the write pool: a savepoint of
    /// the group commit in progress, which it opens if there is none).
    ///
    /// # Errors
    /// As [`Pool::acquire`], or the database's error.
    pub async fn begin(&self) -> Result<Transaction<'static>, StoreError> {
        self.begin_guarded(true).await
    }

    /// Begins a transaction for code that decides before it writes (see the module docs): on
    /// the write pool it joins the group commit in progress without a savepoint, and a
    /// failure after it changed rows rolls back the whole batch. A read pool's transaction
    /// is as [`Pool::begin`]'s.
    ///
    /// # Errors
    /// As [`Pool::acquire`], or the database's error.
    pub async fn begin_decided(&self) -> Result<Transaction<'static>, StoreError> {
        self.begin_guarded(false).await
    }

    async fn begin_guarded(&self, savepoint: bool) -> Result<Transaction<'static>, StoreError> {
        let mut conn = self.acquire().await?;
        let guard = if self.line.is_none() {
            control(&conn.conn, "BEGIN").map_err(store_error)?;
            Guard::Own
        } else {
            if conn.batch.is_none() {
                control(&conn.conn, "BEGIN IMMEDIATE").map_err(store_error)?;
                conn.batch = Some(Batch::default());
            }
            let recently_aborted = conn
                .guarded_until
                .is_some_and(|until| Instant::now() < until);
            if savepoint || recently_aborted {
                control(&conn.conn, "SAVEPOINT op").map_err(store_error)?;
                Guard::Savepoint
            } else {
                Guard::Decided {
                    changes_at_begin: conn.conn.total_changes(),
                }
            }
        };
        Ok(Transaction {
            conn: Some(conn),
            guard,
            _marker: PhantomData,
        })
    }
}
