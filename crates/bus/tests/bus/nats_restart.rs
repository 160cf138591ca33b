//! The relay survives NATS going away and coming back: a private `nats-server` is stopped
//! while events keep being written, then restarted on the same store; every event arrives,
//! in order, and the outbox is drained.

use evently_bus::nats::Relay;
use evently_bus::outbox::SqlOutbox;
use evently_bus::{Bus, DomainEvent, Outbox};
use secrecy::SecretString;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::{TempDir, env};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(port: u16, store: &std::path::Path) -> Server {
    Server(
        Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn wait_up(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nats-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_nats_server() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_survives_a_nats_restart_without_loss_or_reordering() {
    if env("EVENTLY_TEST_NATS_URL").is_none() || !has_nats_server() {
        eprintln!(
            "skipped: relay_survives_a_nats_restart: EVENTLY_TEST_NATS_URL not set (or no nats-server binary)"
        );
        return;
    }
    let dir = TempDir::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = dir.path().join("js");
    let mut server = start(port, &store);
    wait_up(port).await;
    let url = SecretString::from(format!("sqlite://{}", dir.path().join("o.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    evently_bus::outbox::create_sqlite_tables(&db)
        .await
        .unwrap();
    let outbox: Arc<dyn Outbox> = Arc::new(SqlOutbox::new(
        evently_core::sql::Db::sqlite(&db.path, 2).unwrap(),
    ));
    let bus = super::conformance::nats_bus(&format!("nats://127.0.0.1:{port}")).await;
    let shutdown = CancellationToken::new();
    let relay = Relay::new(outbox.clone(), bus.clone(), 16, Duration::from_millis(20));
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));
    let aggregates: Vec<uuid::Uuid> = (0..3).map(|_| uuid::Uuid::now_v7()).collect();
    let append = |version: i64| {
        let outbox = outbox.clone();
        let aggregates = aggregates.clone();
        async move {
            for id in aggregates {
                let e = DomainEvent::EventDeleted { event_id: id }
                    .into_envelope(version, time::OffsetDateTime::now_utc());
                outbox.append(&e).await.unwrap();
            }
        }
    };
    for v in 1..=5 {
        append(v).await;
    }
    let mut sub = bus.subscribe("survivor").await.unwrap();
    let mut got = Vec::new();
    collect(&mut sub, &mut got, 15).await;

    drop(server);
    for v in 6..=10 {
        append(v).await;
    }
    // The relay cannot publish now; the rows stay unpublished.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(outbox.unpublished_count().await.unwrap() > 0);
    server = start(port, &store);
    wait_up(port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 30 && tokio::time::Instant::now() < deadline {
        match sub.next_batch(64, Duration::from_millis(300)).await {
            Ok(batch) => {
                if let Some(last) = batch.last() {
                    sub.ack(last).await.ok();
                }
                for d in batch {
                    if !got
                        .iter()
                        .any(|g: &evently_bus::Delivery| g.envelope.id == d.envelope.id)
                    {
                        got.push(d);
                    }
                }
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(s) = bus.subscribe("survivor").await {
                    sub = s;
                }
            }
        }
    }
    shutdown.cancel();
    relay_task.await.unwrap();

    assert_eq!(got.len(), 30, "every event arrives");
    for id in &aggregates {
        let versions: Vec<i64> = got
            .iter()
            .filter(|d| d.envelope.aggregate_id == *id)
            .map(|d| d.envelope.aggregate_version)
            .collect();
        assert_eq!(versions, (1..=10).collect::<Vec<_>>());
    }
    assert_eq!(outbox.unpublished_count().await.unwrap(), 0);
    drop(server);
}

async fn collect(
    sub: &mut Box<dyn evently_bus::Subscription>,
    got: &mut Vec<evently_bus::Delivery>,
    n: usize,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.len() < n && tokio::time::Instant::now() < deadline {
        let batch = sub
            .next_batch(64, Duration::from_millis(300))
            .await
            .unwrap();
        if let Some(last) = batch.last() {
            sub.ack(last).await.unwrap();
        }
        got.extend(batch);
    }
    assert_eq!(got.len(), n);
}
