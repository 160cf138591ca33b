//! `evently-bench events`: how fast events are listed and how fast domain events travel.
//!
//! - listing: `GET /api/events?page=…&size=20` from many clients against a real
//!   `evently serve` process whose events database was seeded with `--events` events;
//! - outbox throughput, end to end: changes are committed to an outbox (one transaction each,
//!   as the service does) while a consumer reads them through the bus; the figure is events
//!   delivered per second from the first commit to the last delivery. In-process always; NATS
//!   JetStream (outbox → relay → stream → durable consumer) when `EVENTLY_NATS_URL` is set.

use anyhow::Context;
use evently_bus::nats::{NatsBus, NatsTarget, Relay};
use evently_bus::outbox::SqlOutbox;
use evently_bus::{Bus, DomainEvent, Outbox};
use evently_core::config::Config;
use evently_core::ids::UserId;
use evently_events::domain::{Event, EventDraft, EventStatus, EventType, VenueRef, to_ms};
use secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::server::{percentile, start_server};

const PAGE_SIZE: u32 = 20;

fn temp_dir(tag: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "evently-bench-{tag}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).context("creating a temp directory")?;
    Ok(dir)
}

async fn seed(url: &SecretString, events: u32) -> anyhow::Result<()> {
    let (store, _) = evently_events::open_store(url, &Config::default()).await?;
    let now = time::OffsetDateTime::now_utc();
    let organizer = UserId::new();
    for i in 0..events {
        let draft = EventDraft {
            name: format!("Bench event {i}"),
            description: Some("A benchmark event with a modest description.".into()),
            event_date: to_ms(now + time::Duration::days(30 + i64::from(i % 300))),
            sale_start: to_ms(now + time::Duration::days(10)),
            sale_end: None,
            event_type: Some(EventType::Concert),
            tags: vec!["bench".into(), "music".into()],
            total_seats: Some(1000),
            base_price: 5000,
            currency: "USD".into(),
            section_prices: Default::default(),
            time_zone: "UTC".into(),
        };
        let event = Event::create(
            &draft,
            &VenueRef::Named("Bench Arena".into()),
            EventStatus::Upcoming,
            organizer,
            to_ms(now),
        )
        .map_err(|p| anyhow::anyhow!("invalid bench event: {p}"))?;
        store.insert_event(&event, &event.created()).await?;
    }
    Ok(())
}

async fn listing(seconds: u64, clients: usize, events: u32) -> anyhow::Result<()> {
    let dir = temp_dir("events-db")?;
    let url = SecretString::from(format!("sqlite://{}", dir.join("events.db").display()));
    seed(&url, events).await?;
    let server = start_server(&[(
        "EVENTLY_DATABASE__EVENTS_URL",
        format!("sqlite://{}", dir.join("events.db").display()),
    )])?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let pages = events.div_ceil(PAGE_SIZE).max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let listed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base, stop, ok, listed, failed) = (
            client.clone(),
            server.base.clone(),
            stop.clone(),
            ok.clone(),
            listed.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut page = u32::try_from(c).unwrap_or(0) % pages;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = client
                    .get(format!("{base}/api/events?page={page}&size={PAGE_SIZE}"))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        let n = body["events"].as_array().map_or(0, Vec::len);
                        ok.fetch_add(1, Ordering::Relaxed);
                        listed.fetch_add(n as u64, Ordering::Relaxed);
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                page = (page + 7) % pages;
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    println!(
        "GET /api/events?page=…&size={PAGE_SIZE} ({events} events, {clients} clients, {seconds} s): \
         {:.0} requests/s, {:.0} events listed/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        listed.load(Ordering::Relaxed) as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        failed.load(Ordering::Relaxed)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Commits `n` changes to `outbox` while `bus` delivers them to a consumer; returns
/// delivered/s from the first commit to the last delivery, and commits/s.
async fn outbox_round(
    outbox: Arc<dyn Outbox>,
    bus: Arc<dyn Bus>,
    n: u64,
    relay: Option<Relay>,
) -> anyhow::Result<(f64, f64)> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let relay_task = relay.map(|r| tokio::spawn(r.run(shutdown.clone())));
    let mut sub = bus.subscribe("bench").await?;
    let start = Instant::now();
    let writer = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let aggregates: Vec<uuid::Uuid> = (0..16).map(|_| uuid::Uuid::now_v7()).collect();
            for i in 0..n {
                let id = aggregates[(i % 16) as usize];
                let e = DomainEvent::EventDeleted { event_id: id }.into_envelope(
                    i64::try_from(i / 16).unwrap_or(0) + 1,
                    time::OffsetDateTime::now_utc(),
                );
                outbox.append(&e).await?;
            }
            anyhow::Ok(start.elapsed().as_secs_f64())
        })
    };
    let mut delivered = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while delivered < n && Instant::now() < deadline {
        let batch = sub.next_batch(512, Duration::from_millis(200)).await?;
        if let Some(last) = batch.last() {
            sub.ack(last).await?;
        }
        delivered += batch.len() as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let write_secs = writer.await??;
    shutdown.cancel();
    if let Some(t) = relay_task {
        t.await?;
    }
    anyhow::ensure!(
        delivered >= n,
        "only {delivered} of {n} events were delivered"
    );
    Ok((n as f64 / elapsed, n as f64 / write_secs))
}

async fn sqlite_outbox(dir: &std::path::Path) -> anyhow::Result<Arc<dyn Outbox>> {
    let url = SecretString::from(format!("sqlite://{}", dir.join("outbox.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await?;
    evently_bus::outbox::create_sqlite_tables(&db).await?;
    Ok(Arc::new(SqlOutbox::new(evently_core::sql::Db::sqlite(
        &db.path, 2,
    )?)))
}

async fn outbox_throughput(n: u64) -> anyhow::Result<()> {
    let dir = temp_dir("outbox")?;
    let outbox = sqlite_outbox(&dir).await?;
    let bus = Arc::new(evently_bus::in_process::InProcessBus::new(
        outbox.clone(),
        Duration::from_millis(5),
    ));
    let (delivered, committed) = outbox_round(outbox, bus, n, None).await?;
    println!(
        "outbox -> in-process bus (SQLite, {n} events, one commit each): \
         {delivered:.0} delivered/s end to end ({committed:.0} commits/s)"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let Some(url) = std::env::var("EVENTLY_NATS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!("outbox -> NATS JetStream: skipped (EVENTLY_NATS_URL not set)");
        return Ok(());
    };
    let dir = temp_dir("outbox-nats")?;
    let outbox = sqlite_outbox(&dir).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let nats = NatsBus::connect(
        &url,
        NatsTarget {
            stream: format!("BENCH_{id}"),
            subject_prefix: format!("bench{id}"),
            ack_wait: Duration::from_secs(30),
        },
    )
    .await?;
    let relay = Relay::new(outbox.clone(), nats.clone(), 256, Duration::from_millis(5));
    let result = outbox_round(outbox, Arc::new(nats.clone()), n, Some(relay)).await;
    let _ = nats.delete_stream().await;
    let _ = std::fs::remove_dir_all(&dir);
    let (delivered, committed) = result?;
    println!(
        "outbox -> relay -> NATS JetStream -> durable consumer ({n} events): \
         {delivered:.0} delivered/s end to end ({committed:.0} commits/s)"
    );
    Ok(())
}

pub async fn run(
    seconds: u64,
    clients: usize,
    events: u32,
    outbox_events: u64,
) -> anyhow::Result<()> {
    println!("evently-bench events");
    listing(seconds, clients, events).await?;
    outbox_throughput(outbox_events).await
}
