use evently_auth::AuthStore;
use evently_core::config::DatabaseConfig;
use secrecy::SecretString;
use std::path::Path;
use std::sync::Arc;

async fn sqlite_store(dir: &Path) -> Arc<dyn AuthStore> {
    let url = SecretString::from(format!("sqlite://{}", dir.join("auth.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    Arc::new(evently_auth::store::SqlAuthStore::sqlite(db).await.unwrap())
}

async fn postgres_store(url: String, schema: String) -> Arc<dyn AuthStore> {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    Arc::new(
        evently_auth::store::SqlAuthStore::postgres(pool)
            .await
            .unwrap(),
    )
}

evently_testkit::conformance_suite!(
    suite: evently_auth::store::conformance,
    sqlite: super::sqlite_store,
    postgres: super::postgres_store,
    tests: [
        user_round_trips_byte_for_byte,
        duplicate_email_is_a_named_conflict,
        profile_update_is_partial,
        role_and_password_hash_can_change,
        rotation_then_reuse_revokes_the_family,
        expired_refresh_token_is_refused,
        concurrent_rotations_have_exactly_one_winner,
        logout_and_revoke_all,
        throttle_locks_after_threshold_and_clears,
        concurrent_failures_are_all_counted,
    ]
);
