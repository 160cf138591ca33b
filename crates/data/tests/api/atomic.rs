//! An atomic import is all or nothing even when a row fails only as it is written: its rows
//! are written in one transaction of the events service, so a refused last row leaves every
//! row before it unwritten, with no domain event in the outbox. On both engines. A batch
//! refused whole fails every row and finishes the job.

use evently_bus::Outbox;
use evently_core::Problem;
use evently_core::clock::SystemClock;
use evently_core::config::{DataConfig, DatabaseConfig};
use evently_core::identity::{Identity, Role};
use evently_core::ids::UserId;
use evently_data::client::{BatchWritten, EventsClient, LocalEvents};
use evently_data::import::external_event_id;
use evently_data::service::{DataService, ImportRequest};
use evently_data::store::{DataStore, ImportMode, SqlDataStore};
use evently_events::EventsService;
use evently_events::domain::{EventFilter, EventId, EventStatus, Page};
use evently_events::http::events::EventResponse;
use evently_events::store::SqlEventStore;
use secrecy::SecretString;
use std::sync::Arc;
use uuid::Uuid;

struct Subject {
    events: Arc<EventsService>,
    outbox: Arc<dyn Outbox>,
    data: DataService,
}

fn subject(events: SqlEventStore, data: Arc<dyn DataStore>) -> Subject {
    let outbox = Arc::new(events.outbox());
    let events = Arc::new(EventsService::new(Arc::new(events), Arc::new(SystemClock)));
    let data = DataService::new(
        data,
        Arc::new(LocalEvents(events.clone())),
        Arc::new(SystemClock),
        DataConfig::default(),
    );
    Subject {
        events,
        outbox,
        data,
    }
}

const HEADER: &str =
    "externalId,eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime\n";

fn row(external: &str, name: &str, seats: u32) -> String {
    format!("{external},{name},2031-05-01T20:00:00Z,Hall,{seats},100,EUR,2030-12-01T09:00:00Z\n")
}

fn request(rows: &[String], mode: ImportMode) -> ImportRequest {
    ImportRequest {
        file_name: "shows.csv".into(),
        bytes: format!("{HEADER}{}", rows.concat()).into_bytes(),
        mode,
        dry_run: false,
    }
}

async fn names(events: &EventsService) -> Vec<String> {
    let page = Page {
        number: 0,
        size: 100,
    };
    let (list, _) = events
        .list_events(&EventFilter::default(), page)
        .await
        .unwrap();
    let mut names: Vec<String> = list.into_iter().map(|e| e.name).collect();
    names.sort();
    names
}

async fn a_row_refused_at_write_time_writes_no_row(s: Subject) {
    let organizer = Identity {
        user_id: UserId(Uuid::now_v7()),
        role: Role::Organizer,
    };
    let first = s
        .data
        .import(
            &organizer,
            request(
                &[row("X1", "One", 10), row("X2", "Two", 10)],
                ImportMode::Atomic,
            ),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    assert_eq!((first.created, first.failed), (2, 0));
    // X2's sale opens: booking owns its seats, so its seat count can no longer change.
    let two = EventId(external_event_id(organizer.user_id.0, "X2"));
    s.events
        .change_status(&organizer, two, EventStatus::OnSale)
        .await
        .unwrap();
    let outbox_rows = s.outbox.read_after(0, 1000).await.unwrap().len();

    // Every row passes the checks; the last fails only as it is written.
    let rows = [
        row("X3", "Three", 10),
        row("X1", "One renamed", 10),
        row("X2", "Two", 20),
    ];
    let report = s
        .data
        .import(
            &organizer,
            request(&rows, ImportMode::Atomic),
            Uuid::now_v7(),
        )
        .await
        .unwrap();

    assert_eq!(
        (report.rows, report.created, report.updated, report.failed),
        (3, 0, 0, 1)
    );
    assert_eq!(report.errors.len(), 1);
    assert_eq!(report.errors[0].row, 4);
    assert_eq!(report.errors[0].code, "capacity-locked");
    assert_eq!(names(&s.events).await, ["One", "Two"]);
    assert_eq!(
        s.outbox.read_after(0, 1000).await.unwrap().len(),
        outbox_rows,
        "a refused batch leaves no domain event"
    );

    // The same file in partial mode writes the rows that can be written.
    let partial = s
        .data
        .import(
            &organizer,
            request(&rows, ImportMode::Partial),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    assert_eq!(
        (partial.created, partial.updated, partial.failed),
        (1, 1, 1)
    );
    assert_eq!(names(&s.events).await, ["One renamed", "Three", "Two"]);

    // Importing it atomically once the last row is fixed writes all of it, once.
    let fixed = [
        row("X3", "Three", 10),
        row("X1", "One again", 10),
        row("X2", "Two again", 10),
    ];
    let report = s
        .data
        .import(
            &organizer,
            request(&fixed, ImportMode::Atomic),
            Uuid::now_v7(),
        )
        .await
        .unwrap();
    assert_eq!((report.created, report.updated, report.failed), (0, 3, 0));
    assert_eq!(names(&s.events).await, ["One again", "Three", "Two again"]);
}

async fn sqlite(dir: &std::path::Path) -> Subject {
    let url = |name: &str| SecretString::from(format!("sqlite://{}", dir.join(name).display()));
    let events = evently_core::db::connect_sqlite(&url("events.db"))
        .await
        .unwrap();
    let data = evently_core::db::connect_sqlite(&url("data.db"))
        .await
        .unwrap();
    subject(
        SqlEventStore::sqlite(events).await.unwrap(),
        Arc::new(SqlDataStore::sqlite(data).await.unwrap()),
    )
}

async fn postgres(url: String) -> Subject {
    let url = SecretString::from(url);
    let config = DatabaseConfig::default();
    let events =
        evently_core::db::connect_postgres(&url, &evently_testkit::fresh_schema(), &config)
            .await
            .unwrap();
    let data = evently_core::db::connect_postgres(&url, &evently_testkit::fresh_schema(), &config)
        .await
        .unwrap();
    subject(
        SqlEventStore::postgres(events).await.unwrap(),
        Arc::new(SqlDataStore::postgres(data).await.unwrap()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_atomic_import_refused_at_write_time_writes_nothing() {
    let dir = evently_testkit::TempDir::new();
    a_row_refused_at_write_time_writes_no_row(sqlite(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_atomic_import_refused_at_write_time_writes_nothing() {
    let Some(url) = evently_testkit::postgres_url() else {
        evently_testkit::skip(
            "postgres_an_atomic_import_refused_at_write_time_writes_nothing",
            "EVENTLY_TEST_POSTGRES_URL",
        );
        return;
    };
    a_row_refused_at_write_time_writes_no_row(postgres(url).await).await;
}

/// The events service of this process, refusing every batch whole as a contended one.
struct Contended(LocalEvents);

#[async_trait::async_trait]
impl EventsClient for Contended {
    async fn check(&self, caller: &Identity, body: &serde_json::Value) -> Result<(), Problem> {
        self.0.check(caller, body).await
    }

    async fn upsert(
        &self,
        caller: &Identity,
        id: Uuid,
        body: &serde_json::Value,
    ) -> Result<bool, Problem> {
        self.0.upsert(caller, id, body).await
    }

    async fn upsert_all(
        &self,
        _caller: &Identity,
        _rows: &[(Uuid, serde_json::Value)],
    ) -> Result<BatchWritten, Problem> {
        Err(Problem::conflict("concurrent-update", "Concurrent update"))
    }

    async fn list(
        &self,
        filter: &EventFilter,
        page: u32,
        size: u32,
    ) -> Result<Vec<EventResponse>, Problem> {
        self.0.list(filter, page, size).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_whole_fails_every_row_and_finishes_the_job() {
    let dir = evently_testkit::TempDir::new();
    let s = sqlite(dir.path()).await;
    let db = evently_core::db::connect_sqlite(&SecretString::from(format!(
        "sqlite://{}",
        dir.path().join("contended.db").display()
    )))
    .await
    .unwrap();
    let store: Arc<dyn DataStore> = Arc::new(SqlDataStore::sqlite(db).await.unwrap());
    let data = DataService::new(
        store.clone(),
        Arc::new(Contended(LocalEvents(s.events.clone()))),
        Arc::new(SystemClock),
        DataConfig::default(),
    );
    let organizer = Identity {
        user_id: UserId(Uuid::now_v7()),
        role: Role::Organizer,
    };
    let job = Uuid::now_v7();

    let report = data
        .import(
            &organizer,
            request(
                &[row("X1", "One", 10), row("X2", "Two", 10)],
                ImportMode::Atomic,
            ),
            job,
        )
        .await
        .unwrap();

    assert_eq!((report.created, report.updated, report.failed), (0, 0, 2));
    assert!(report.errors.iter().all(|e| e.code == "concurrent-update"));
    assert_eq!(
        report.errors.iter().map(|e| e.row).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(names(&s.events).await.is_empty());
    assert!(store.running_jobs().await.unwrap().is_empty());
}
