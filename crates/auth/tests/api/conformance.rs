//! The behaviour every [`AuthStore`] backend must show. Each function is one test;
//! `evently_testkit::conformance_suite!` at the bottom runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database. A new
//! test is added to that list, next to its function.

use std::path::Path;
use std::sync::Arc;

use evently_auth::AuthStore;
use evently_auth::domain::{
    Contact, Email, Name, NewUser, Phone, ProfileUpdate, ThrottlePolicy, User,
};
use evently_auth::store::{MAX_LOOKUP, NewRefreshToken, Rotation, SqlAuthStore, UserFilter};
use evently_core::config::DatabaseConfig;
use evently_core::db::StoreError;
use evently_core::identity::Role;
use evently_core::ids::UserId;
use secrecy::SecretString;

async fn sqlite_store(dir: &Path) -> Arc<dyn AuthStore> {
    let url = SecretString::from(format!("sqlite://{}", dir.join("auth.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    Arc::new(SqlAuthStore::sqlite(db).await.unwrap())
}

async fn postgres_store(url: String, schema: String) -> Arc<dyn AuthStore> {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    Arc::new(SqlAuthStore::postgres(pool).await.unwrap())
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        email: Email::parse(email).unwrap(),
        name: Name::parse("Zoë Example 🎟").unwrap(),
        role: Role::User,
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        now: 1_000,
    }
}

fn token(hash: &str, expires_at: i64) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: hash.into(),
        expires_at,
    }
}

async fn user_round_trips_byte_for_byte(store: Arc<dyn AuthStore>) {
    let new = new_user("Round.Trip@Example.io");
    let created = store.insert_user(&new).await.unwrap();
    assert_eq!(created.email.as_str(), "round.trip@example.io");
    assert_eq!(created.name.as_str(), "Zoë Example 🎟");
    let by_email = store.user_by_email(&new.email).await.unwrap().unwrap();
    assert_eq!(by_email.user, created);
    assert_eq!(by_email.password_hash, new.password_hash);
    let by_id = store.user_by_id(new.id).await.unwrap().unwrap();
    assert_eq!(by_id, created);
    assert!(store.user_by_id(UserId::new()).await.unwrap().is_none());
}

async fn duplicate_email_is_a_named_conflict(store: Arc<dyn AuthStore>) {
    store
        .insert_user(&new_user("dup@example.io"))
        .await
        .unwrap();
    let err = store
        .insert_user(&new_user("DUP@example.io"))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict { constraint } => assert_eq!(constraint, "users_email_key"),
        other => panic!("expected conflict, got {other:?}"),
    }
}

async fn profile_update_is_partial(store: Arc<dyn AuthStore>) {
    let new = new_user("profile@example.io");
    store.insert_user(&new).await.unwrap();
    let phone = Phone::parse("+44 20 7946 0000").unwrap();
    let u = store
        .update_profile(
            new.id,
            &ProfileUpdate {
                name: None,
                phone: Some(Some(phone.clone())),
            },
            2_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.phone, Some(phone));
    assert_eq!(u.name.as_str(), "Zoë Example 🎟");
    assert_eq!(u.updated_at, 2_000);
    let u = store
        .update_profile(
            new.id,
            &ProfileUpdate {
                name: Some(Name::parse("New Name").unwrap()),
                phone: None,
            },
            3_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.name.as_str(), "New Name");
    assert!(u.phone.is_some(), "phone untouched");
    let u = store
        .update_profile(
            new.id,
            &ProfileUpdate {
                name: None,
                phone: Some(None),
            },
            4_000,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.phone, None);
    assert!(
        store
            .update_profile(UserId::new(), &ProfileUpdate::default(), 1)
            .await
            .unwrap()
            .is_none()
    );
}

async fn role_and_password_hash_can_change(store: Arc<dyn AuthStore>) {
    let new = new_user("role@example.io");
    store.insert_user(&new).await.unwrap();
    let u = store
        .set_role(new.id, Role::Organizer, 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.role, Role::Organizer);
    assert!(
        store
            .set_role(UserId::new(), Role::Admin, 5)
            .await
            .unwrap()
            .is_none()
    );
    store.set_password_hash(new.id, "$new$", 6).await.unwrap();
    let c = store.user_by_email(&new.email).await.unwrap().unwrap();
    assert_eq!(c.password_hash, "$new$");
}

async fn rotation_then_reuse_revokes_the_family(store: Arc<dyn AuthStore>) {
    let new = new_user("rotate@example.io");
    store.insert_user(&new).await.unwrap();
    let family = store
        .start_family(new.id, &token("r1", 10_000), 100)
        .await
        .unwrap();
    let r = store.rotate("r1", &token("r2", 10_000), 200).await.unwrap();
    assert_eq!(
        r,
        Rotation::Rotated {
            user_id: new.id,
            family_id: family
        }
    );
    let reuse = store.rotate("r1", &token("r3", 10_000), 300).await.unwrap();
    assert_eq!(
        reuse,
        Rotation::Reused {
            user_id: new.id,
            family_id: family
        }
    );
    // The successor died with its family.
    let r2 = store.rotate("r2", &token("r4", 10_000), 400).await.unwrap();
    assert_eq!(r2, Rotation::Revoked);
    assert_eq!(
        store
            .rotate("nope", &token("r5", 10_000), 400)
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

async fn expired_refresh_token_is_refused(store: Arc<dyn AuthStore>) {
    let new = new_user("expired@example.io");
    store.insert_user(&new).await.unwrap();
    store
        .start_family(new.id, &token("e1", 500), 100)
        .await
        .unwrap();
    assert_eq!(
        store.rotate("e1", &token("e2", 9_000), 500).await.unwrap(),
        Rotation::Expired
    );
}

async fn concurrent_rotations_have_exactly_one_winner(store: Arc<dyn AuthStore>) {
    let new = new_user("race@example.io");
    store.insert_user(&new).await.unwrap();
    store
        .start_family(new.id, &token("race-0", 1_000_000), 100)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate("race-0", &token(&format!("race-{}", i + 1), 1_000_000), 200)
                .await
                .unwrap()
        }));
    }
    let mut rotated = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if let Rotation::Rotated { .. } = t.await.unwrap() {
            rotated.push(i + 1);
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one rotation wins: {rotated:?}");
    // The losers were reuses, so the winner's successor is revoked as well.
    let successor = format!("race-{}", rotated[0]);
    assert_eq!(
        store
            .rotate(&successor, &token("after", 1_000_000), 300)
            .await
            .unwrap(),
        Rotation::Revoked
    );
}

async fn logout_and_revoke_all(store: Arc<dyn AuthStore>) {
    let new = new_user("logout@example.io");
    store.insert_user(&new).await.unwrap();
    store
        .start_family(new.id, &token("a1", 10_000), 1)
        .await
        .unwrap();
    store
        .start_family(new.id, &token("b1", 10_000), 1)
        .await
        .unwrap();
    store
        .start_family(new.id, &token("c1", 10_000), 1)
        .await
        .unwrap();
    assert!(store.revoke_family_of("a1", "logout", 2).await.unwrap());
    assert!(!store.revoke_family_of("a1", "logout", 2).await.unwrap());
    assert!(!store.revoke_family_of("zz", "logout", 2).await.unwrap());
    assert_eq!(
        store.rotate("a1", &token("a2", 10_000), 3).await.unwrap(),
        Rotation::Revoked
    );
    assert_eq!(
        store
            .revoke_user_families(new.id, "role-change", 4)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.rotate("b1", &token("b2", 10_000), 5).await.unwrap(),
        Rotation::Revoked
    );
}

async fn throttle_locks_after_threshold_and_clears(store: Arc<dyn AuthStore>) {
    let policy = ThrottlePolicy {
        max_failures: 3,
        window_ms: 60_000,
        base_lock_ms: 1_000,
        max_lock_ms: 10_000,
    };
    let keys = vec!["acct:x".to_owned(), "ip:1".to_owned()];
    for _ in 0..2 {
        store
            .record_login_failure("acct:x", &policy, 100)
            .await
            .unwrap();
    }
    assert_eq!(store.throttle_lock(&keys, 100).await.unwrap(), None);
    store
        .record_login_failure("acct:x", &policy, 100)
        .await
        .unwrap();
    assert_eq!(store.throttle_lock(&keys, 100).await.unwrap(), Some(1_000));
    assert_eq!(store.throttle_lock(&keys, 1_100).await.unwrap(), None);
    store.clear_login_failures("acct:x").await.unwrap();
    store
        .record_login_failure("acct:x", &policy, 2_000)
        .await
        .unwrap();
    assert_eq!(store.throttle_lock(&keys, 2_000).await.unwrap(), None);
}

async fn concurrent_failures_are_all_counted(store: Arc<dyn AuthStore>) {
    let policy = ThrottlePolicy {
        max_failures: 10,
        window_ms: 60_000,
        base_lock_ms: 1_000,
        max_lock_ms: 10_000,
    };
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_login_failure("ip:9", &policy, 100)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let keys = vec!["ip:9".to_owned()];
    assert_eq!(
        store.throttle_lock(&keys, 100).await.unwrap(),
        Some(1_000),
        "ten concurrent failures must reach the threshold of ten"
    );
}

async fn users_list_by_id_prefix_and_role_a_page_at_a_time(store: Arc<dyn AuthStore>) {
    let mut made = Vec::new();
    for (email, name) in [
        ("ana@example.io", "Zed Ana"),
        ("bob@example.io", "Ana Bob"),
        ("carla@example.io", "Carla"),
        ("a_b.c@example.io", "Percent"),
    ] {
        let mut new = new_user(email);
        new.name = Name::parse(name).unwrap();
        made.push(store.insert_user(&new).await.unwrap());
    }
    store
        .set_role(made[2].id, Role::Organizer, 2_000)
        .await
        .unwrap();
    let ids = |users: &[evently_auth::domain::User]| users.iter().map(|u| u.id).collect::<Vec<_>>();
    let mut by_id: Vec<UserId> = made.iter().map(|u| u.id).collect();
    by_id.sort_by_key(|id| id.0);

    let all = store.list_users(&UserFilter::default(), 10).await.unwrap();
    let first = store.list_users(&UserFilter::default(), 2).await.unwrap();
    let rest = store
        .list_users(
            &UserFilter {
                after: Some(first[1].id),
                ..UserFilter::default()
            },
            10,
        )
        .await
        .unwrap();
    let prefix = |p: &str| UserFilter {
        prefix: Some(p.into()),
        ..UserFilter::default()
    };
    let ana = store.list_users(&prefix("ANA"), 10).await.unwrap();
    let literal = store.list_users(&prefix("a_"), 10).await.unwrap();
    let wildcard = store.list_users(&prefix("a%"), 10).await.unwrap();
    let organizers = store
        .list_users(
            &UserFilter {
                role: Some(Role::Organizer),
                ..UserFilter::default()
            },
            10,
        )
        .await
        .unwrap();

    assert_eq!(ids(&all), by_id);
    assert_eq!([ids(&first), ids(&rest)].concat(), by_id);
    assert_eq!(
        all[0],
        made.iter().find(|u| u.id == by_id[0]).unwrap().clone()
    );
    let mut expected = vec![made[0].id, made[1].id];
    expected.sort_by_key(|id| id.0);
    assert_eq!(ids(&ana), expected, "the start of an email or of a name");
    assert_eq!(ids(&literal), vec![made[3].id], "_ and % are characters");
    assert!(wildcard.is_empty());
    assert_eq!(ids(&organizers), vec![made[2].id]);
    assert_eq!(organizers[0].role, Role::Organizer);
}

async fn users_are_looked_up_by_many_ids_at_once(store: Arc<dyn AuthStore>) {
    let mut created = Vec::new();
    for i in 0..3 {
        created.push(
            store
                .insert_user(&new_user(&format!("many{i}@example.io")))
                .await
                .unwrap(),
        );
    }
    let unknown = UserId::new();
    let ids = [created[2].id, unknown, created[0].id, created[2].id];

    let contact = |u: &User| Contact {
        id: u.id,
        name: u.name.clone(),
        email: u.email.clone(),
    };

    let mut found = store.contacts_by_ids(&ids).await.unwrap();
    found.sort_by_key(|u| u.email.as_str().to_owned());

    assert_eq!(found, vec![contact(&created[0]), contact(&created[2])]);
    assert!(store.contacts_by_ids(&[]).await.unwrap().is_empty());
    // As many ids as a lookup takes, in one statement.
    let mut many: Vec<UserId> = (0..MAX_LOOKUP - 1).map(|_| UserId::new()).collect();
    many.push(created[1].id);
    assert_eq!(
        store.contacts_by_ids(&many).await.unwrap(),
        vec![contact(&created[1])]
    );
    many.push(UserId::new());
    assert!(store.contacts_by_ids(&many).await.is_err());
}

evently_testkit::conformance_suite!(
    suite: crate::conformance,
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
        users_list_by_id_prefix_and_role_a_page_at_a_time,
        users_are_looked_up_by_many_ids_at_once,
    ]
);
