use evently_bus::Outbox;
use evently_core::config::DatabaseConfig;
use evently_events::EventStore;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;

type Subject = (Arc<dyn EventStore>, Arc<dyn Outbox>);

async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("events.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    let store = evently_events::store::SqlEventStore::sqlite(db)
        .await
        .unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

async fn postgres_store(url: String, schema: String) -> Subject {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    let store = evently_events::store::SqlEventStore::postgres(pool)
        .await
        .unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

evently_testkit::conformance_suite!(
    suite: evently_events::store::conformance,
    sqlite: super::sqlite_store,
    postgres: super::postgres_store,
    tests: [
        venue_and_event_round_trip_with_their_outbox_rows,
        failed_outbox_write_leaves_neither_row_nor_event,
        stale_update_is_a_version_conflict,
        delete_removes_the_row_and_records_it,
        listing_filters_and_pages,
        due_sales_open_once,
        outbox_seq_follows_commit_order_under_concurrency,
        newer_availability_is_stored_and_older_or_equal_is_not,
        availability_flips_sold_out_and_back_once_each,
        availability_never_flips_cancelled_or_upcoming_events,
        organizer_update_keeps_a_reported_availability,
    ]
);
