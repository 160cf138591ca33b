//! The booking store conformance suite (`evently_booking::store::conformance`) on SQLite, and
//! on PostgreSQL when `EVENTLY_TEST_POSTGRES_URL` is set, each test on a fresh database or
//! schema.

#![expect(
    clippy::unwrap_used,
    reason = "store set-up fails loudly; these fns are not #[test]s"
)]

use evently_booking::BookingStore;
use evently_bus::Outbox;
use evently_core::config::DatabaseConfig;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;

type Subject = (Arc<dyn BookingStore>, Arc<dyn Outbox>);

async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("booking.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    let store = evently_booking::store::SqlBookingStore::sqlite(db)
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
    let store = evently_booking::store::SqlBookingStore::postgres(pool)
        .await
        .unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

evently_testkit::conformance_suite!(
    suite: evently_booking::store::conformance,
    sqlite: super::sqlite_store,
    postgres: super::postgres_store,
    tests: [
        inventory_is_created_once_with_its_seats_in_layout_order,
        hold_is_all_or_nothing_and_counted,
        best_available_takes_adjacent_seats_in_one_row,
        a_new_hold_replaces_the_buyers_previous_one,
        expired_hold_gives_its_seats_back,
        every_change_sweeps_the_holds_expired_before_it,
        refresh_extends_a_live_hold_up_to_its_lifetime,
        payment_intents_charge_the_hold_and_confirm_once,
        idempotency_keys_replay_answers_and_guard_running_requests,
        purchase_needs_a_live_paid_hold_and_sells_it_once,
        cancelled_order_returns_its_seats_and_refunds,
        waitlist_is_offered_freed_seats_in_order,
        cancelled_event_refunds_every_order_and_closes_the_waitlist,
        general_admission_capacity_follows_event_updates,
        refused_changes_leave_nothing_behind,
        concurrent_buyers_never_share_a_seat,
        racing_holds_and_purchases_keep_every_rule,
    ]
);
