//! A second analytics process on PostgreSQL and NATS that applies nothing to the projection:
//! its sockets still follow every sale, through that process's own consumers of both
//! streams, and take in an event created after they opened.

use std::sync::Arc;
use std::time::Duration;

use evently_analytics::Analytics;
use evently_core::clock::SystemClock;
use evently_core::service::ServiceName;
use evently_testkit::TempDir;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::live::{Auth, connect, until};
use crate::support::{buy, event, organizer};

#[tokio::test]
async fn a_replica_that_applies_nothing_feeds_its_sockets_from_its_own_consumers() {
    const TEST: &str = "a_replica_that_applies_nothing_feeds_its_sockets_from_its_own_consumers";
    let Some(postgres) = evently_testkit::postgres_url() else {
        evently_testkit::skip(TEST, "EVENTLY_TEST_POSTGRES_URL");
        return;
    };
    let Some(nats) = std::env::var("EVENTLY_TEST_NATS_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        evently_testkit::skip(TEST, "EVENTLY_TEST_NATS_URL");
        return;
    };
    // The test's own database: a relay publishes every unpublished row of its outbox, so an
    // application on NATS beside another test's on the same database would publish that
    // test's domain events too.
    let database = evently_testkit::FreshDatabase::create(&postgres).await;
    let prefix = format!("A{}", &uuid::Uuid::new_v4().simple().to_string()[..12]).to_uppercase();
    let setup = |c: &mut evently_core::config::Config| {
        c.database.url = Some(SecretString::from(database.url.clone()));
        c.bus.nats_url = Some(SecretString::from(nats.clone()));
        c.bus.stream_prefix = prefix.clone();
    };
    let a = evently_testkit::spawn_app_with(setup).await;
    // The replica: analytics alone, reading the projection `a` writes, with no consumer
    // of its own but the live feed's.
    let dir = TempDir::new();
    let mut config = evently_testkit::test_config(dir.path());
    setup(&mut config);
    let replica = Analytics::build(&config, Arc::new(a.keys()), Arc::new(SystemClock))
        .await
        .unwrap();
    let mut live_feeds = Vec::new();
    for service in [ServiceName::Events, ServiceName::Booking] {
        live_feeds.push(
            evently_bus::wiring::replica(&config.bus, service, Duration::from_secs(60))
                .await
                .unwrap(),
        );
    }
    let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
    replica.start(None, None, live_feeds, &tracker, &shutdown);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = axum::serve(listener, replica.router())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    tokio::spawn(async move { server.await });

    let owner = organizer(&a).await;
    let buyer = a.signed_in_user().await;
    // The owner has no event yet: the socket follows whatever they create.
    let (mut socket, _) = connect(&base, "", Auth::Cookie(&owner.access_token), None)
        .await
        .unwrap();
    let created = event(&a, &owner, 10, 700, "EUR").await;
    buy(&a, &buyer, &created, 3).await;
    let mut seen = Vec::new();
    until(&mut socket, &mut seen, |f| {
        f["eventId"] == created.as_str() && f["tickets"] == 3
    })
    .await;
    shutdown.cancel();

    assert!(
        seen.iter().all(|f| f["eventId"] == created.as_str()),
        "{seen:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(
        (last["sold"].as_i64(), last["orders"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(last["revenue"][0]["gross"], 2100);
}
