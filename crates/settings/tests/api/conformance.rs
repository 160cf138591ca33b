//! The behaviour every [`SettingsStore`] backend must show. Each function is one test;
//! `evently_testkit::conformance_suite!` at the bottom runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database.

use std::path::Path;
use std::sync::Arc;

use evently_bus::DomainEvent;
use evently_core::config::DatabaseConfig;
use evently_settings::domain::{DocKey, Expected, Scope};
use evently_settings::store::{NewDocument, SettingsStore, SqlSettingsStore, Write};
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

type Subject = (Arc<dyn SettingsStore>, Arc<dyn evently_bus::Outbox>);

async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("settings.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    let store = SqlSettingsStore::sqlite(db).await.unwrap();
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
    let store = SqlSettingsStore::postgres(pool).await.unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

const NOW: i64 = 1_900_000_000_000;

fn actor(n: u128) -> Uuid {
    Uuid::from_u128(7_000 + n)
}

async fn write(
    store: &Arc<dyn SettingsStore>,
    key: DocKey,
    expected: Expected,
    value: &Value,
    who: u128,
    now: i64,
) -> Write {
    store
        .write(
            NewDocument {
                key,
                expected,
                value,
                actor: actor(who),
            },
            now,
        )
        .await
        .unwrap()
}

fn written(w: Write) -> evently_settings::store::Document {
    match w {
        Write::Written(d) => d,
        Write::Stale { current } => panic!("refused as stale at {current}"),
    }
}

pub async fn a_document_reads_back_as_written_with_its_version((store, _): Subject) {
    let key = DocKey::new(Scope::User, Uuid::now_v7());
    let value = json!({"locale": "nb-NO", "favouriteCities": ["Tromsø", "Zürich"], "notifications": {"email": false}});

    assert_eq!(store.document(key).await.unwrap(), None);
    let first = written(write(&store, key, Expected::Version(0), &value, 1, NOW).await);
    let read = store.document(key).await.unwrap().unwrap();

    assert_eq!(first.version, 1);
    assert_eq!(read, first);
    assert_eq!(read.value, value);
    assert_eq!(read.updated_by, actor(1));
    assert_eq!(read.updated_at, NOW);
}

pub async fn a_stale_version_is_refused_and_changes_nothing((store, _): Subject) {
    let key = DocKey::platform();
    written(
        write(
            &store,
            key,
            Expected::Version(0),
            &json!({"maxTicketsPerUser": 4}),
            1,
            NOW,
        )
        .await,
    );
    written(
        write(
            &store,
            key,
            Expected::Version(1),
            &json!({"maxTicketsPerUser": 3}),
            1,
            NOW + 1,
        )
        .await,
    );

    let stale = write(
        &store,
        key,
        Expected::Version(1),
        &json!({"maxTicketsPerUser": 9}),
        2,
        NOW + 2,
    )
    .await;
    let again_first = write(&store, key, Expected::Version(0), &json!({}), 2, NOW + 2).await;

    assert_eq!(stale, Write::Stale { current: 2 });
    assert_eq!(again_first, Write::Stale { current: 2 });
    let read = store.document(key).await.unwrap().unwrap();
    assert_eq!(read.version, 2);
    assert_eq!(read.value, json!({"maxTicketsPerUser": 3}));
    assert_eq!(store.audit(Some(key), None, 10).await.unwrap().len(), 2);
}

pub async fn any_version_overwrites_whatever_is_there((store, _): Subject) {
    let key = DocKey::new(Scope::Organizer, Uuid::now_v7());

    let first = written(
        write(
            &store,
            key,
            Expected::Any,
            &json!({"holdTtlSeconds": 120}),
            1,
            NOW,
        )
        .await,
    );
    let second = written(write(&store, key, Expected::Any, &json!({}), 1, NOW).await);

    assert_eq!((first.version, second.version), (1, 2));
    assert_eq!(store.document(key).await.unwrap().unwrap().value, json!({}));
}

pub async fn concurrent_writes_of_one_version_let_exactly_one_through((store, _): Subject) {
    let key = DocKey::new(Scope::Event, Uuid::now_v7());
    let mut tasks = Vec::new();
    for i in 0..8u128 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let value = json!({"maxTicketsPerUser": i + 1});
            write(&store, key, Expected::Version(0), &value, i, NOW).await
        }));
    }

    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Write::Written(d) => {
                wins += 1;
                assert_eq!(d.version, 1);
            }
            Write::Stale { current } => assert_eq!(current, 1),
        }
    }

    assert_eq!(wins, 1);
    assert_eq!(store.document(key).await.unwrap().unwrap().version, 1);
    assert_eq!(store.audit(Some(key), None, 10).await.unwrap().len(), 1);
}

pub async fn the_audit_trail_keeps_who_when_before_and_after((store, _): Subject) {
    let key = DocKey::platform();
    let other = DocKey::new(Scope::User, Uuid::now_v7());
    written(
        write(
            &store,
            key,
            Expected::Version(0),
            &json!({"holdTtlSeconds": 600}),
            1,
            NOW,
        )
        .await,
    );
    written(
        write(
            &store,
            other,
            Expected::Version(0),
            &json!({"locale": "de"}),
            3,
            NOW + 5,
        )
        .await,
    );
    written(
        write(
            &store,
            key,
            Expected::Version(1),
            &json!({"holdTtlSeconds": 60}),
            2,
            NOW + 10,
        )
        .await,
    );

    let trail = store.audit(Some(key), None, 10).await.unwrap();
    let all = store.audit(None, None, 10).await.unwrap();
    let page = store.audit(None, Some(all[0].seq), 1).await.unwrap();

    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].version, 2);
    assert_eq!(trail[0].actor, actor(2));
    assert_eq!(trail[0].at, NOW + 10);
    assert_eq!(trail[0].previous, Some(json!({"holdTtlSeconds": 600})));
    assert_eq!(trail[0].value, json!({"holdTtlSeconds": 60}));
    assert_eq!(trail[1].previous, None);
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].key, other);
}

pub async fn every_write_publishes_its_document_once((store, outbox): Subject) {
    let key = DocKey::new(Scope::Organizer, Uuid::now_v7());
    written(
        write(
            &store,
            key,
            Expected::Version(0),
            &json!({"maxSeatsPerOrder": 4}),
            1,
            NOW,
        )
        .await,
    );
    written(
        write(
            &store,
            key,
            Expected::Version(1),
            &json!({"maxSeatsPerOrder": 2}),
            1,
            NOW,
        )
        .await,
    );
    let _ = write(
        &store,
        key,
        Expected::Version(1),
        &json!({"maxSeatsPerOrder": 9}),
        1,
        NOW,
    )
    .await;

    let rows = outbox.read_after(0, 100).await.unwrap();

    let docs: Vec<_> = rows
        .iter()
        .map(|r| match DomainEvent::decode(&r.envelope).unwrap() {
            DomainEvent::SettingsChanged(d) => d,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(docs.len(), 2, "the stale write published nothing");
    assert_eq!(docs[1].scope, "organizer");
    assert_eq!(docs[1].scope_id, key.scope_id);
    assert_eq!(docs[1].namespace, "booking");
    assert_eq!(docs[1].version, 2);
    assert_eq!(docs[1].document, json!({"maxSeatsPerOrder": 2}));
    assert_eq!(rows[1].envelope.aggregate_version, 2);
}

pub async fn event_owners_are_applied_once_per_domain_event((store, _): Subject) {
    let (event, organizer, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let created = Uuid::now_v7();

    assert!(
        store
            .apply_owner(created, event, Some(organizer), NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .apply_owner(created, event, Some(other), NOW)
            .await
            .unwrap()
    );
    assert_eq!(store.event_organizer(event).await.unwrap(), Some(organizer));

    assert!(
        store
            .apply_owner(Uuid::now_v7(), event, None, NOW)
            .await
            .unwrap()
    );
    assert_eq!(store.event_organizer(event).await.unwrap(), None);
}

evently_testkit::conformance_suite!(
    suite: crate::conformance,
    sqlite: super::sqlite_store,
    postgres: super::postgres_store,
    tests: [
        a_document_reads_back_as_written_with_its_version,
        a_stale_version_is_refused_and_changes_nothing,
        any_version_overwrites_whatever_is_there,
        concurrent_writes_of_one_version_let_exactly_one_through,
        the_audit_trail_keeps_who_when_before_and_after,
        every_write_publishes_its_document_once,
        event_owners_are_applied_once_per_domain_event,
    ]
);
