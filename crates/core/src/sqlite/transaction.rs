//! Transactions, and the group commit of the write pool.
//!
//! On a read pool a transaction is a plain `BEGIN` … `COMMIT`. On the write pool consecutive
//! requests share one write transaction, a batch: the first request opens it with
//! `BEGIN IMMEDIATE`, each request runs in a savepoint (`op`) of it, and the last request in
//! line for the connection commits it, answering every request of the batch with the outcome
//! of that one `COMMIT`.
//!
//! Invariants: a commit returns only once the `COMMIT` that holds its changes has run, so what
//! a caller was told is committed is durable and visible to every other connection; a request
//! that fails or is dropped takes back its own savepoint and nothing else of the batch; a
//! batch never stays open with nobody left to commit it (the last request in line commits it,
//! also when it gives up waiting and the connection is free); a batch holds at most
//! `MAX_BATCH` requests.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, oneshot};

use super::{ACQUIRE_TIMEOUT, Conn, Pool, PoolConnection, Sqlite, store_error};
use crate::db::StoreError;

/// A write transaction shared by consecutive requests (group commit): each request's
/// statements run in a savepoint of it, and each request hears of the one `COMMIT` that makes
/// its changes durable before it answers.
#[derive(Debug, Default)]
pub(super) struct Batch {
    waiters: Vec<oneshot::Sender<Result<(), Arc<str>>>>,
}

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
        Err(Arc::<str>::from("the transaction was rolled back"))
    } else {
        match control(&conn.conn, "COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = control(&conn.conn, "ROLLBACK");
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
            control(&conn.conn, "COMMIT").map_err(store_error)?;
            return Ok(());
        }
        if let Err(e) = control(&conn.conn, "RELEASE op") {
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
        && let Err(e) =
            control(&conn.conn, "ROLLBACK TO op").and_then(|()| control(&conn.conn, "RELEASE op"))
    {
        tracing::warn!(error = %e, "rolling back a SQLite savepoint failed");
    }
}

fn rollback(conn: &PoolConnection) {
    if conn.line.is_some() {
        undo_op(conn);
    } else if !conn.conn.is_autocommit()
        && let Err(e) = control(&conn.conn, "ROLLBACK")
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
    /// Begins a transaction on a connection of the pool (on the write pool: a savepoint of
    /// the group commit in progress, which it opens if there is none).
    ///
    /// # Errors
    /// As [`Pool::acquire`], or the database's error.
    pub async fn begin(&self) -> Result<Transaction<'static>, StoreError> {
        let mut conn = self.acquire().await?;
        if self.line.is_none() {
            control(&conn.conn, "BEGIN").map_err(store_error)?;
        } else {
            if conn.batch.is_none() {
                control(&conn.conn, "BEGIN IMMEDIATE").map_err(store_error)?;
                conn.batch = Some(Batch::default());
            }
            control(&conn.conn, "SAVEPOINT op").map_err(store_error)?;
        }
        Ok(Transaction {
            conn: Some(conn),
            _marker: PhantomData,
        })
    }
}
