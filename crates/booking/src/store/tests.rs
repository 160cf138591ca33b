//! The SQLite store's group commit: inventory changes run without a savepoint of it, and the
//! refusals that come after a write (of a sweep of expired holds, of the buyer's replaced
//! hold) take back only their own request's changes, never the whole batch.

use super::*;
use crate::domain::{HoldStatus, Selection};
use evently_bus::catalog::EventSnapshot;
use evently_core::sql::Pool;
use secrecy::SecretString;
use std::collections::BTreeMap;

const NOW: i64 = 1_900_000_000_000;
const TTL: i64 = 600_000;
const POLICY: Policy = Policy {
    max_tickets_per_user: 6,
    offer_ttl_ms: 300_000,
    limit_purchases: false,
};

async fn aborted_batches(store: &SqlBookingStore) -> u64 {
    match store.db.writer() {
        Pool::Sqlite(pool) => pool.aborted_batches().await,
        Pool::Postgres(_) => 0,
    }
}

fn best(event_id: Uuid, user_id: Uuid, quantity: i64) -> NewHold {
    NewHold {
        hold_id: HoldId::new(),
        event_id,
        user_id,
        selection: Selection::Best {
            quantity,
            section: None,
        },
        ttl_ms: TTL,
    }
}

/// Asks for `new`, which must be refused, and checks that `kept` is still active: what the
/// refused request ended on its way was taken back with it.
async fn refused_keeping(store: &SqlBookingStore, new: &NewHold, now: i64, kept: HoldId) {
    let refused = store.create_hold(new, now, POLICY).await;
    assert!(
        matches!(&refused, Err(e) if batch::is_refusal(e)),
        "{refused:?}"
    );
    let hold = store.hold(kept).await.unwrap().unwrap();
    assert_eq!(hold.status, HoldStatus::Active, "a refusal kept a change");
}

#[tokio::test]
async fn refusals_after_a_sweep_or_a_replaced_hold_take_back_only_their_own_request() {
    let dir = evently_testkit::TempDir::new();
    let url = SecretString::from(format!("sqlite://{}", dir.path().join("b.db").display()));
    let store = SqlBookingStore::sqlite(evently_core::db::connect_sqlite(&url).await.unwrap())
        .await
        .unwrap();
    let event_id = Uuid::now_v7();
    let time = evently_bus::envelope::time_from_ms;
    let created = DomainEvent::EventCreated(EventSnapshot {
        event_id,
        organizer_id: Uuid::now_v7(),
        event_name: "Group commit night".into(),
        description: None,
        event_date: time(NOW + 30 * 86_400_000),
        venue_id: None,
        venue_name: "Hall".into(),
        city: None,
        event_type: None,
        tags: Vec::new(),
        status: "ON_SALE".into(),
        total_seats: 10,
        sale_start_time: time(NOW - 86_400_000),
        sale_end_time: None,
        base_price: 3000,
        currency: "EUR".into(),
        section_prices: BTreeMap::new(),
        layout: None,
        time_zone: None,
    });
    let envelope = created.clone().into_envelope(1, time(NOW));
    assert!(
        store
            .apply_catalog(&envelope, &created, NOW, POLICY)
            .await
            .unwrap()
    );
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let expired = store
        .create_hold(&best(event_id, first, 1), NOW, POLICY)
        .await
        .unwrap();
    let later = NOW + TTL + 1;

    // Over the ticket limit, refused after the sweep has ended the expired hold.
    refused_keeping(&store, &best(event_id, second, 7), later, expired.id).await;

    // Over the limit again, refused after ending the buyer's own live hold it would replace.
    let live = store
        .create_hold(&best(event_id, second, 1), later, POLICY)
        .await
        .unwrap();
    refused_keeping(&store, &best(event_id, second, 7), later, live.id).await;

    assert_eq!(aborted_batches(&store).await, 0);
}

/// On PostgreSQL a claimed idempotency key commits without a flush of its own, and the setting
/// that does so ends with the claim's statement: the next transaction on the same connection
/// (the purchase, whose 201 must be durable) commits synchronously.
#[tokio::test]
async fn a_postgresql_claim_leaves_its_connection_committing_synchronously() {
    let Some(url) = evently_testkit::postgres_url() else {
        evently_testkit::skip(
            "a_postgresql_claim_leaves_its_connection_committing_synchronously",
            "EVENTLY_TEST_POSTGRES_URL",
        );
        return;
    };
    let schema = evently_testkit::fresh_schema();
    let one_connection = evently_core::config::DatabaseConfig {
        max_connections: 1,
        ..evently_core::config::DatabaseConfig::default()
    };
    let pool =
        evently_core::db::connect_postgres(&SecretString::from(url), &schema, &one_connection)
            .await
            .unwrap();
    let store = SqlBookingStore::postgres(pool.clone()).await.unwrap();
    let key = IdempotencyKey {
        user_id: Uuid::now_v7(),
        route: "POST /api/orders/purchase".into(),
        key: "k-1".into(),
    };

    let claimed = store
        .idempotency_begin(&key, "body", NOW, 30_000, TTL)
        .await
        .unwrap();
    assert!(matches!(claimed, IdempotencyStart::Started));
    // The claim took: the key's second request finds it running.
    assert!(matches!(
        store
            .idempotency_begin(&key, "body", NOW + 1, 30_000, TTL)
            .await,
        Err(BookingError::InFlight)
    ));
    let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(setting, "on");

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&pool)
    .await
    .unwrap();
}
