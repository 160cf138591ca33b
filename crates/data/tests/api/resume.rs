//! A stopped import resumes without duplicates: the import is stopped after some writes (the
//! events service accepts a write and the job stops before recording it, as a crash would),
//! then resumed, and every row's event exists exactly once: row by row (`partial`), and
//! after its one batch (`atomic`).

use async_trait::async_trait;
use evently_core::Problem;
use evently_core::clock::SystemClock;
use evently_core::config::{Config, DataConfig};
use evently_core::identity::{Identity, Role};
use evently_core::ids::UserId;
use evently_data::client::{BatchWritten, EventsClient, LocalEvents};
use evently_data::service::{DataService, ImportRequest};
use evently_data::store::{DataStore, ImportMode, SqlDataStore};
use evently_events::EventsService;
use evently_events::domain::{EventFilter, Page};
use evently_events::http::events::EventResponse;
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// The events service of this process, stopping the import after `writes` writes: the
/// last one reaches the events service, and the import is told it failed.
struct StopsAfter {
    inner: LocalEvents,
    writes: usize,
    done: AtomicUsize,
}

#[async_trait]
impl EventsClient for StopsAfter {
    async fn check(&self, caller: &Identity, body: &serde_json::Value) -> Result<(), Problem> {
        self.inner.check(caller, body).await
    }

    async fn upsert(
        &self,
        caller: &Identity,
        id: Uuid,
        body: &serde_json::Value,
    ) -> Result<bool, Problem> {
        let created = self.inner.upsert(caller, id, body).await?;
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.writes {
            return Err(Problem::unavailable("stopped", 1));
        }
        Ok(created)
    }

    async fn upsert_all(
        &self,
        caller: &Identity,
        rows: &[(Uuid, serde_json::Value)],
    ) -> Result<BatchWritten, Problem> {
        let written = self.inner.upsert_all(caller, rows).await?;
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.writes {
            return Err(Problem::unavailable("stopped", 1));
        }
        Ok(written)
    }

    async fn list(
        &self,
        filter: &EventFilter,
        page: u32,
        size: u32,
    ) -> Result<Vec<EventResponse>, Problem> {
        self.inner.list(filter, page, size).await
    }
}

fn file(rows: usize) -> Vec<u8> {
    let mut csv =
        "eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime\n".to_owned();
    for i in 0..rows {
        csv.push_str(&format!(
            "Show {i},2031-0{}-01T20:00:00Z,Hall,10,100,EUR,2030-12-01T09:00:00Z\n",
            1 + i % 9
        ));
    }
    csv.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_partial_import_resumes_without_duplicates() {
    // The third write reached events; two were recorded.
    stopped_import_resumes(ImportMode::Partial, 3, 3, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_atomic_import_resumes_without_duplicates() {
    // One batch wrote every row, and the job stopped before recording any.
    stopped_import_resumes(ImportMode::Atomic, 1, 7, 0).await;
}

/// Stops an import of 7 rows in `mode` after `writes` writes, with `written` events made
/// and `recorded` rows recorded, then resumes it.
async fn stopped_import_resumes(mode: ImportMode, writes: usize, written: u64, recorded: usize) {
    let dir = evently_testkit::TempDir::new();
    let url =
        |name: &str| SecretString::from(format!("sqlite://{}", dir.path().join(name).display()));
    let config = Config::default();
    let (event_store, _outbox) = evently_events::open_store(&url("events.db"), &config)
        .await
        .unwrap();
    let events = Arc::new(EventsService::new(event_store, Arc::new(SystemClock)));
    let db = evently_core::db::connect_sqlite(&url("data.db"))
        .await
        .unwrap();
    let store: Arc<dyn DataStore> = Arc::new(SqlDataStore::sqlite(db).await.unwrap());
    let organizer = Identity {
        user_id: UserId(Uuid::now_v7()),
        role: Role::Organizer,
    };
    let total = || async {
        events
            .list_events(
                &EventFilter::default(),
                Page {
                    number: 0,
                    size: 100,
                },
            )
            .await
            .unwrap()
            .1
    };

    // Stopped after `writes` writes: the last one reached events but was not recorded.
    let stopping = DataService::new(
        store.clone(),
        Arc::new(StopsAfter {
            inner: LocalEvents(events.clone()),
            writes,
            done: AtomicUsize::new(0),
        }),
        Arc::new(SystemClock),
        DataConfig::default(),
    );
    let job = Uuid::now_v7();
    let request = ImportRequest {
        file_name: "shows.csv".into(),
        bytes: file(7),
        mode,
        dry_run: false,
    };
    let stopped = stopping.import(&organizer, request, job).await;
    assert!(stopped.is_err());
    assert_eq!(total().await, written);
    assert_eq!(store.done_rows(job).await.unwrap().len(), recorded);
    assert_eq!(store.running_jobs().await.unwrap(), vec![job]);

    // After a restart, running jobs are resumed: the written rows are not written again,
    // and the one written but not recorded finds its own event.
    let service = DataService::new(
        store.clone(),
        Arc::new(LocalEvents(events.clone())),
        Arc::new(SystemClock),
        DataConfig::default(),
    );
    service.resume_all().await;
    assert_eq!(total().await, 7);
    let view = service.job(&organizer, job).await.unwrap();
    assert_eq!(view.status, "done");
    let report = view.report.unwrap();
    assert_eq!(
        (report.rows, report.created, report.updated, report.failed),
        (7, 7, 0, 0)
    );
    let (list, _) = events
        .list_events(
            &EventFilter::default(),
            Page {
                number: 0,
                size: 100,
            },
        )
        .await
        .unwrap();
    let mut names: Vec<String> = list.into_iter().map(|e| e.name).collect();
    names.sort();
    assert_eq!(
        names,
        (0..7).map(|i| format!("Show {i}")).collect::<Vec<_>>()
    );
    assert!(store.running_jobs().await.unwrap().is_empty());

    // Resuming a finished job is refused; running it again changes nothing.
    assert!(service.resume(job).await.is_err());
    assert_eq!(total().await, 7);
}
