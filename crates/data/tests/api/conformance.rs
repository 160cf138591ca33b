//! The behaviour every [`DataStore`] backend must show. Each function is one test;
//! `evently_testkit::conformance_suite!` at the bottom runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database.

use std::path::Path;
use std::sync::Arc;

use evently_core::config::DatabaseConfig;
use evently_core::db::StoreError;
use evently_data::store::{
    DataStore, DoneRow, ExportJob, ExportStatus, ImportJob, ImportMode, JobStatus, RowOutcome,
    SqlDataStore,
};
use secrecy::SecretString;
use uuid::Uuid;

type Subject = Arc<dyn DataStore>;

async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("data.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    Arc::new(SqlDataStore::sqlite(db).await.unwrap())
}

async fn postgres_store(url: String, schema: String) -> Subject {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    Arc::new(SqlDataStore::postgres(pool).await.unwrap())
}

const NOW: i64 = 1_900_000_000_000;

fn job(n: u128, created_at: i64) -> ImportJob {
    ImportJob {
        id: Uuid::from_u128(n),
        organizer_id: Uuid::from_u128(500),
        role: "organizer".into(),
        file_name: "événements 2026.csv".into(),
        mode: ImportMode::Partial,
        status: JobStatus::Running,
        report: None,
        created_at,
        finished_at: None,
    }
}

fn done(row: i64, outcome: RowOutcome) -> DoneRow {
    DoneRow {
        row,
        event_id: Uuid::from_u128(10_000 + row as u128),
        outcome,
    }
}

pub async fn jobs_round_trip_with_their_file(store: Subject) {
    let j = job(1, NOW);
    let file = b"name\n\xE9v\xE9nement\n\0binary".to_vec();
    store.create_job(&j, &file).await.unwrap();
    assert_eq!(store.job(j.id).await.unwrap(), Some(j.clone()));
    assert_eq!(store.job_source(j.id).await.unwrap(), Some(file));
    assert_eq!(store.job(Uuid::from_u128(2)).await.unwrap(), None);
    assert_eq!(store.job_source(Uuid::from_u128(2)).await.unwrap(), None);
    assert!(matches!(
        store.create_job(&j, b"x").await,
        Err(StoreError::Conflict { .. })
    ));
}

pub async fn rows_are_recorded_once_and_read_in_order(store: Subject) {
    let j = job(1, NOW);
    store.create_job(&j, b"x").await.unwrap();
    store
        .record_row(j.id, &done(5, RowOutcome::Updated))
        .await
        .unwrap();
    store
        .record_row(j.id, &done(2, RowOutcome::Created))
        .await
        .unwrap();
    // Recording a row again (a resumed job) keeps the first record.
    store
        .record_row(j.id, &done(2, RowOutcome::Updated))
        .await
        .unwrap();
    assert_eq!(
        store.done_rows(j.id).await.unwrap(),
        vec![done(2, RowOutcome::Created), done(5, RowOutcome::Updated)]
    );
    assert!(
        store
            .done_rows(Uuid::from_u128(9))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn finishing_stores_the_report_and_drops_the_file(store: Subject) {
    let (a, b) = (job(1, NOW), job(2, NOW + 1));
    store.create_job(&a, b"a").await.unwrap();
    store.create_job(&b, b"b").await.unwrap();
    assert_eq!(store.running_jobs().await.unwrap(), vec![a.id, b.id]);
    assert!(
        store
            .finish_job(a.id, "{\"rows\":1}", NOW + 5)
            .await
            .unwrap()
    );
    // Only a running job finishes, once.
    assert!(!store.finish_job(a.id, "{}", NOW + 6).await.unwrap());
    let stored = store.job(a.id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Done);
    assert_eq!(stored.report.as_deref(), Some("{\"rows\":1}"));
    assert_eq!(stored.finished_at, Some(NOW + 5));
    assert_eq!(store.job_source(a.id).await.unwrap(), None);
    assert_eq!(store.running_jobs().await.unwrap(), vec![b.id]);
}

pub async fn purge_deletes_only_expired_finished_jobs(store: Subject) {
    let (a, b, c) = (job(1, NOW), job(2, NOW), job(3, NOW));
    for j in [&a, &b, &c] {
        store.create_job(j, b"x").await.unwrap();
        store
            .record_row(j.id, &done(2, RowOutcome::Created))
            .await
            .unwrap();
    }
    store.finish_job(a.id, "{}", NOW).await.unwrap();
    store.finish_job(b.id, "{}", NOW + 100).await.unwrap();
    assert_eq!(store.purge(NOW + 50).await.unwrap(), 1);
    assert_eq!(store.job(a.id).await.unwrap(), None);
    assert!(store.done_rows(a.id).await.unwrap().is_empty());
    assert!(store.job(b.id).await.unwrap().is_some());
    // A running job is never purged, however old.
    assert!(store.job(c.id).await.unwrap().is_some());
    assert_eq!(store.done_rows(c.id).await.unwrap().len(), 1);
}

fn export(n: u128, organizer: u128) -> ExportJob {
    ExportJob {
        id: Uuid::from_u128(n),
        organizer_id: Uuid::from_u128(organizer),
        kind: "orders".into(),
        format: "xlsx".into(),
        status: ExportStatus::Running,
        rows_written: 0,
        error: None,
        created_at: NOW,
        finished_at: None,
    }
}

pub async fn at_most_two_exports_run_per_organizer(store: Subject) {
    assert!(store.start_export(&export(1, 7), 2).await.unwrap());
    assert!(store.start_export(&export(2, 7), 2).await.unwrap());
    assert!(!store.start_export(&export(3, 7), 2).await.unwrap());
    assert_eq!(store.export_job(Uuid::from_u128(3)).await.unwrap(), None);
    // Another organizer is not held up.
    assert!(store.start_export(&export(4, 8), 2).await.unwrap());
    store
        .export_progress(Uuid::from_u128(1), 500)
        .await
        .unwrap();
    assert_eq!(
        store
            .export_job(Uuid::from_u128(1))
            .await
            .unwrap()
            .unwrap()
            .rows_written,
        500
    );
    store
        .finish_export(Uuid::from_u128(1), ExportStatus::Done, 1000, None, NOW + 5)
        .await
        .unwrap();
    let done = store.export_job(Uuid::from_u128(1)).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.rows_written, done.finished_at),
        (ExportStatus::Done, 1000, Some(NOW + 5))
    );
    // A finished export's progress and end no longer change.
    store.export_progress(Uuid::from_u128(1), 1).await.unwrap();
    store
        .finish_export(
            Uuid::from_u128(1),
            ExportStatus::Failed,
            0,
            Some("x"),
            NOW + 6,
        )
        .await
        .unwrap();
    assert_eq!(
        store.export_job(Uuid::from_u128(1)).await.unwrap().unwrap(),
        done
    );
    assert!(store.start_export(&export(3, 7), 2).await.unwrap());
}

pub async fn interrupted_exports_fail_and_finished_ones_expire(store: Subject) {
    for (n, organizer) in [(1, 7), (2, 7), (3, 8)] {
        store.start_export(&export(n, organizer), 2).await.unwrap();
    }
    store
        .finish_export(Uuid::from_u128(1), ExportStatus::Done, 3, None, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.fail_running_exports(NOW + 1).await.unwrap(),
        vec![Uuid::from_u128(2), Uuid::from_u128(3)]
    );
    let failed = store.export_job(Uuid::from_u128(2)).await.unwrap().unwrap();
    assert_eq!(failed.status, ExportStatus::Failed);
    assert!(failed.error.is_some());
    assert_eq!(
        store.purge_exports(NOW + 1).await.unwrap(),
        vec![Uuid::from_u128(1)]
    );
    assert_eq!(store.export_job(Uuid::from_u128(1)).await.unwrap(), None);
    assert!(
        store
            .export_job(Uuid::from_u128(3))
            .await
            .unwrap()
            .is_some()
    );
}

evently_testkit::conformance_suite!(
    suite: crate::conformance,
    sqlite: super::sqlite_store,
    postgres: super::postgres_store,
    tests: [
        jobs_round_trip_with_their_file,
        rows_are_recorded_once_and_read_in_order,
        finishing_stores_the_report_and_drops_the_file,
        purge_deletes_only_expired_finished_jobs,
        at_most_two_exports_run_per_organizer,
        interrupted_exports_fail_and_finished_ones_expire,
    ]
);
