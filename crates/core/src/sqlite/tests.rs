//! Tests of the in-process connections on a temporary SQLite file: placeholders bound by
//! number, a dropped transaction rolled back, a unique violation as a conflict, and the group
//! commit under concurrent requests and under a request that gives up waiting.

use super::*;
use crate::test_dir::TempDir;

async fn pools() -> (TempDir, Pool, Pool) {
    let dir = TempDir::new();
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

/// Inserts a row with `n` as a write of its own; returns its id.
async fn row_on_its_own(writer: &Pool, n: i64) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    query("INSERT INTO t (id, n) VALUES ($1, $2)")
        .bind(id)
        .bind(n)
        .execute(writer)
        .await
        .unwrap();
    id
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
    let taken = row_on_its_own(&writer, 0).await;

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

/// Under a steady stream of group commits the write-ahead log stays bounded: the
/// checkpointer makes writes start it over instead of appending for as long as the stream
/// lasts. Here 96,000 rows of 1 KB are written (their pages take the log over 400 MB)
/// with the restart point at 1 MB; without restarts the log would end larger than the rows
/// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_continuous_commits() {
    let dir = TempDir::new();
    let path = dir.path().join("wal.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; \
             CREATE TABLE t (id BLOB PRIMARY KEY, n INTEGER NOT NULL, s TEXT)",
        )
        .unwrap();
    }
    let checkpoints = Checkpoints {
        every: std::time::Duration::from_millis(20),
        restart_at: 1024 * 1024,
    };
    let writer = Pool::open_with(&path, 1, true, checkpoints).unwrap();
    let reader = Pool::open(&path, 2, false).unwrap();
    let wal = dir.path().join("wal.db-wal");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let largest = {
        let (wal, done) = (wal.clone(), done.clone());
        tokio::spawn(async move {
            let mut largest = 0;
            while !done.load(Ordering::Relaxed) {
                largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            largest
        })
    };
    // Readers come and go meanwhile, as requests do (a read that lasts longer than the
    // restart's wait holds the log until it ends, and the next pass tries again).
    let reading = {
        let (reader, done) = (reader.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                query("SELECT n FROM t WHERE id = $1")
                    .bind(uuid::Uuid::new_v4())
                    .fetch_optional(&reader)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let text = "x".repeat(1000);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (writer, text) = (writer.clone(), text.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..12_000_i64 {
                let mut tx = writer.begin().await.unwrap();
                query("INSERT INTO t (id, n, s) VALUES ($1, $2, $3)")
                    .bind(uuid::Uuid::new_v4())
                    .bind(n)
                    .bind(text.as_str())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    reading.await.unwrap();
    let largest = largest.await.unwrap();
    eprintln!("the largest log: {largest} bytes");
    let rows = query("SELECT count(*) AS c FROM t")
        .fetch_one(&reader)
        .await
        .unwrap();
    assert_eq!(rows.try_get::<i64, _>("c").unwrap(), 96_000);
    assert!(
        largest < 40 * 1024 * 1024,
        "the log grew to {largest} bytes"
    );
}

async fn insert(tx: &mut Transaction<'static>, n: i64) {
    query("INSERT INTO t (id, n) VALUES ($1, $2)")
        .bind(uuid::Uuid::new_v4())
        .bind(n)
        .execute(&mut **tx)
        .await
        .unwrap();
}

async fn rows_in(reader: &Pool) -> Vec<i64> {
    query("SELECT n FROM t ORDER BY n")
        .fetch_all(reader)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64, _>("n").unwrap())
        .collect()
}

/// Runs `second` on the write connection right after `first` commits, in the same batch:
/// `second` lines up while `first` holds the connection. Returns how `first`'s commit went.
async fn in_one_batch<F>(
    writer: &Pool,
    mut first: Transaction<'static>,
    second: F,
) -> Result<(), StoreError>
where
    F: FnOnce(Pool) -> tokio::task::JoinHandle<()>,
{
    insert(&mut first, 1).await;
    let second = second(writer.clone());
    // The second request is in line before the first lets go of the connection.
    while writer.line.as_ref().unwrap().waiting.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let committed = first.commit().await;
    second.await.unwrap();
    committed
}

/// A request begun with `begin_decided` that fails after inserting a row.
fn fails_after_a_change(writer: Pool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tx = writer.begin_decided().await.unwrap();
        insert(&mut tx, 2).await;
        drop(tx);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_request_that_fails_after_a_change_rolls_back_its_whole_batch() {
    let (_dir, writer, reader) = pools().await;
    let first = writer.begin_decided().await.unwrap();
    let committed = in_one_batch(&writer, first, fails_after_a_change).await;

    assert!(
        matches!(committed, Err(StoreError::Unavailable(_))),
        "{committed:?}"
    );
    assert_eq!(rows_in(&reader).await, Vec::<i64>::new());
    assert_eq!(writer.aborted_batches().await, 1);

    // Right after, requests run in savepoints: one that fails again fails alone.
    let first = writer.begin_decided().await.unwrap();
    let committed = in_one_batch(&writer, first, fails_after_a_change).await;
    assert!(committed.is_ok(), "{committed:?}");
    assert_eq!(rows_in(&reader).await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_request_that_changed_nothing_or_isolated_itself_fails_alone() {
    let (_dir, writer, reader) = pools().await;
    // A refusal decided on reads alone.
    let first = writer.begin_decided().await.unwrap();
    let committed = in_one_batch(&writer, first, |writer| {
        tokio::spawn(async move {
            let mut tx = writer.begin_decided().await.unwrap();
            query("SELECT n FROM t").fetch_all(&mut *tx).await.unwrap();
            drop(tx);
        })
    })
    .await;
    assert!(committed.is_ok(), "{committed:?}");

    // A statement that fails takes back itself: the request changed nothing.
    let taken = row_on_its_own(&writer, 2).await;
    let first = writer.begin_decided().await.unwrap();
    let committed = in_one_batch(&writer, first, |writer| {
        tokio::spawn(async move {
            let mut tx = writer.begin_decided().await.unwrap();
            let again = query("INSERT INTO t (id, n) VALUES ($1, 3)")
                .bind(taken)
                .execute(&mut *tx)
                .await;
            assert!(
                matches!(again, Err(StoreError::Conflict { .. })),
                "{again:?}"
            );
            drop(tx);
        })
    })
    .await;
    assert!(committed.is_ok(), "{committed:?}");

    // A request that asked for a savepoint before its change.
    let first = writer.begin_decided().await.unwrap();
    let committed = in_one_batch(&writer, first, |writer| {
        tokio::spawn(async move {
            let mut tx = writer.begin_decided().await.unwrap();
            tx.isolate();
            insert(&mut tx, 4).await;
            drop(tx);
        })
    })
    .await;
    assert!(committed.is_ok(), "{committed:?}");

    assert_eq!(rows_in(&reader).await, vec![1, 1, 1, 2]);
    assert_eq!(writer.aborted_batches().await, 0);
}
