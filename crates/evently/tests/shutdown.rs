//! Graceful shutdown under load (TESTPLAN F-14): two booking processes on one PostgreSQL
//! database behind one gateway (`gateway.services.booking` lists both), a purchase workload
//! running, and SIGTERM to one booking process mid-workload.
//!
//! What must hold: the terminated process answers `/health/ready` with 503 from the signal on
//! while it still serves, exits with status 0 within its grace period, and the clients see no
//! error at all except 503s, which they retry (a purchase with the same `Idempotency-Key`);
//! every acknowledged order exists, none twice, the store's audit is sound, and both relays
//! together published every outbox row exactly once (no row marked published that the stream
//! does not hold).
//!
//! Skipped (with a message) without `EVENTLY_TEST_POSTGRES_URL` and `EVENTLY_TEST_NATS_URL`
//! (booking in a process of its own learns of events over NATS).

#![expect(clippy::unwrap_used, reason = "test fixtures fail loudly")]

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    PASSWORD, Serve, admin_create, drop_database, evently, free_port, fresh_database, start,
    temp_dir,
};

const SECRET: &str = "shutdown-test-secret-0123456789abcdefghij";
const INTERNAL: &str = "shutdown-test-internal-token";
/// The grace period of every process here: the terminated one must be gone well before it.
const GRACE_SECONDS: u64 = 15;
/// The drain window: the gateway (same configuration) drops idle pooled connections sooner.
const DRAIN_SECONDS: u64 = 2;
const CAPACITY: i64 = 20_000;

/// The processes' shared configuration.
struct Deployment {
    dir: std::path::PathBuf,
    postgres: String,
    nats: String,
    prefix: String,
}

impl Deployment {
    fn command(&self, services: &str, listen: &str) -> Command {
        let mut command = evently(&self.dir);
        command
            .args(["serve", "--services", services, "--listen", listen])
            .env("EVENTLY_JWT__SECRET", SECRET)
            .env("EVENTLY_INTERNAL__TOKEN", INTERNAL)
            .env("EVENTLY_DATABASE_URL", &self.postgres)
            .env("EVENTLY_NATS_URL", &self.nats)
            .env("EVENTLY_BUS__STREAM_PREFIX", &self.prefix)
            .env(
                "EVENTLY_SERVER__SHUTDOWN_GRACE_SECONDS",
                GRACE_SECONDS.to_string(),
            )
            .env(
                "EVENTLY_SERVER__SHUTDOWN_DRAIN_SECONDS",
                DRAIN_SECONDS.to_string(),
            )
            .env("EVENTLY_BOOKING__MAX_TICKETS_PER_USER", "1000000")
            .env("EVENTLY_AUTH__THROTTLE__IP_MAX_FAILURES", "1000000");
        for group in ["DEFAULT", "AUTH", "PURCHASE"] {
            command
                .env(
                    format!("EVENTLY_GATEWAY__RATE_LIMITS__{group}__PER_MINUTE"),
                    "100000000",
                )
                .env(
                    format!("EVENTLY_GATEWAY__RATE_LIMITS__{group}__BURST"),
                    "100000000",
                );
        }
        command
    }
}

/// What the buyers saw.
#[derive(Default)]
struct Seen {
    /// Idempotency key → the orders its 201 answers named.
    by_key: BTreeMap<String, BTreeSet<String>>,
    /// Every answer that was neither the step's success nor a 503 (nor, for a purchase sent
    /// again, its key's 409 `request-in-flight`), and every request without an answer.
    errors: Vec<String>,
}

#[derive(Default)]
struct Counts {
    /// 503s retried.
    retried_503: AtomicU64,
    /// 409 `request-in-flight` retried (a purchase sent again while its first try runs).
    retried_in_flight: AtomicU64,
    /// Purchases acknowledged (201, first answer of their key).
    purchases: AtomicU64,
}

/// Sends `request()` until it answers `want` (returning the body) or a definite refusal
/// (recorded as an error: `None`). 503 is retried after a pause, as is a purchase's 409
/// `request-in-flight`; a request without an answer is an error.
async fn until_answered(
    step: &str,
    want: u16,
    request: impl Fn() -> reqwest::RequestBuilder,
    seen: &Mutex<Seen>,
    counts: &Counts,
) -> Option<Value> {
    loop {
        let response = match request().send().await {
            Ok(r) => r,
            Err(e) => {
                seen.lock()
                    .unwrap()
                    .errors
                    .push(format!("{step}: no answer: {e}"));
                return None;
            }
        };
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        if status == want {
            return Some(body);
        }
        if status == 503 {
            counts.retried_503.fetch_add(1, Ordering::Relaxed);
        } else if status == 409
            && body["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("request-in-flight"))
        {
            counts.retried_in_flight.fetch_add(1, Ordering::Relaxed);
        } else {
            seen.lock()
                .unwrap()
                .errors
                .push(format!("{step}: {status} {body}"));
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One buyer's purchases through the gateway until `stop`.
async fn buyer(
    http: reqwest::Client,
    gateway: String,
    token: String,
    event: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    counts: Arc<Counts>,
) {
    let post = |path: &str, body: Value| {
        let request = http
            .post(format!("{gateway}{path}"))
            .bearer_auth(&token)
            .json(&body);
        move || request.try_clone().unwrap()
    };
    while !stop.load(Ordering::Relaxed) {
        let Some(hold) = until_answered(
            "hold",
            201,
            post(
                "/api/orders/holds",
                json!({"eventId": event, "quantity": 1}),
            ),
            &seen,
            &counts,
        )
        .await
        else {
            continue;
        };
        let Some(intent) = until_answered(
            "intent",
            201,
            post(
                "/api/orders/payments/intent",
                json!({"holdId": hold["holdId"]}),
            ),
            &seen,
            &counts,
        )
        .await
        else {
            continue;
        };
        let Some(_) = until_answered(
            "confirm",
            200,
            post(
                "/api/orders/payments/confirm",
                json!({"paymentIntentId": intent["paymentIntentId"],
                       "clientSecret": intent["clientSecret"]}),
            ),
            &seen,
            &counts,
        )
        .await
        else {
            continue;
        };
        let key = uuid::Uuid::now_v7().to_string();
        let body = json!({"eventId": event, "holdId": hold["holdId"], "seatIds": hold["seatIds"],
                          "paymentIntentId": intent["paymentIntentId"]});
        let purchase = {
            let request = http
                .post(format!("{gateway}/api/orders/purchase"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body);
            move || request.try_clone().unwrap()
        };
        if let Some(order) = until_answered("purchase", 201, purchase, &seen, &counts).await {
            counts.purchases.fetch_add(1, Ordering::Relaxed);
            let order = order["orderId"].as_str().unwrap_or_default().to_owned();
            seen.lock()
                .unwrap()
                .by_key
                .entry(key)
                .or_default()
                .insert(order);
        }
    }
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs `email` in through `gateway`.
async fn login(http: &reqwest::Client, gateway: &str, email: &str) -> String {
    let body: Value = http
        .post(format!("{gateway}/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_one_of_two_booking_processes_under_load_loses_nothing() {
    let (Ok(postgres), Ok(nats)) = (
        std::env::var("EVENTLY_TEST_POSTGRES_URL"),
        std::env::var("EVENTLY_TEST_NATS_URL"),
    ) else {
        eprintln!(
            "skipped: sigterm_to_one_of_two_booking_processes_under_load_loses_nothing: \
             EVENTLY_TEST_POSTGRES_URL or EVENTLY_TEST_NATS_URL not set"
        );
        return;
    };
    let database = format!("shutdown_{}_{}", std::process::id(), free_port());
    let admin_url = postgres;
    let d = Deployment {
        dir: temp_dir(),
        postgres: fresh_database(&admin_url, &database).await,
        nats,
        prefix: format!(
            "EVENTLY_SHUTDOWN_{}",
            uuid::Uuid::now_v7().simple().to_string().to_uppercase()
        ),
    };
    let core_port = free_port();
    let (b1_port, b2_port) = (free_port(), free_port());
    let _core = start(d.command("auth,events", &format!("127.0.0.1:{core_port}"))).0;
    let mut b1 = start(d.command("booking", &format!("127.0.0.1:{b1_port}"))).0;
    let _b2 = start(d.command("booking", &format!("127.0.0.1:{b2_port}"))).0;
    let mut gateway = d.command("gateway", "127.0.0.1:0");
    gateway
        .env(
            "EVENTLY_GATEWAY__SERVICES__AUTH",
            format!("http://127.0.0.1:{core_port}"),
        )
        .env(
            "EVENTLY_GATEWAY__SERVICES__EVENTS",
            format!("http://127.0.0.1:{core_port}"),
        )
        .env(
            "EVENTLY_GATEWAY__SERVICES__BOOKING",
            format!("http://127.0.0.1:{b1_port}, http://127.0.0.1:{b2_port}"),
        );
    let gateway: Serve = start(gateway).0;
    let gw = gateway.base.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // An admin's event on sale, and buyers.
    let mut admin = evently(&d.dir);
    admin
        .env("EVENTLY_JWT__SECRET", SECRET)
        .env("EVENTLY_DATABASE_URL", &d.postgres);
    assert!(
        admin_create(admin, "root@shutdown.example.com", "Root", PASSWORD)
            .status
            .success()
    );
    let admin = login(&http, &gw, "root@shutdown.example.com").await;
    let at = |d: time::Duration| {
        (time::OffsetDateTime::now_utc() + d)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let created: Value = http
        .post(format!("{gw}/api/events"))
        .bearer_auth(&admin)
        .json(&json!({
            "eventName": "Last Orders", "eventDate": at(time::Duration::days(30)),
            "venueName": "Hall", "totalSeats": CAPACITY,
            "saleStartTime": at(time::Duration::seconds(-5)),
            "status": "ON_SALE", "basePrice": 3000, "currency": "EUR",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = created["eventId"].as_str().unwrap().to_owned();
    wait_for(
        "booking to build the inventory",
        Duration::from_secs(30),
        async || {
            http.get(format!("{gw}/api/events/{event}/availability"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let mut tokens = Vec::new();
    for i in 0..6 {
        let email = format!("buyer-{i}@shutdown.example.com");
        let registered = http
            .post(format!("{gw}/api/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD, "name": format!("Buyer {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 201);
        tokens.push(login(&http, &gw, &email).await);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let counts = Arc::new(Counts::default());
    let buyers: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            tokio::spawn(buyer(
                http.clone(),
                gw.clone(),
                token,
                event.clone(),
                stop.clone(),
                seen.clone(),
                counts.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = counts.purchases.load(Ordering::Relaxed);

    // SIGTERM to the first booking process, and its readiness watched from then on.
    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &b1.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ready_url = format!("http://127.0.0.1:{b1_port}/health/ready");
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // Readiness answers while the process drains: every answer after the first 503 is 503,
    // until connections are refused.
    let mut readiness = Vec::new();
    let mut first_503 = None;
    while signalled.elapsed() < Duration::from_secs(GRACE_SECONDS) {
        match probe.get(&ready_url).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                if status == 503 && first_503.is_none() {
                    first_503 = Some(signalled.elapsed());
                }
                readiness.push(status);
            }
            Err(_) => break,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_after = signalled.elapsed();
    let mut exit = None;
    while signalled.elapsed() < Duration::from_secs(GRACE_SECONDS + 5) {
        if let Some(status) = b1.child.try_wait().unwrap() {
            exit = Some((status, signalled.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = counts.purchases.load(Ordering::Relaxed) - before;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for b in buyers {
        b.await.unwrap();
    }

    // The store: every acknowledged order, none twice, every outbox row published once.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let orders: BTreeSet<&String> = seen.by_key.values().flatten().collect();
    let audit = evently_booking::audit(&d.postgres, event.parse().unwrap())
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&d.postgres).await.unwrap();
    let unpublished = async || -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM booking.outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    wait_for(
        "the remaining relay to publish every row",
        Duration::from_secs(30),
        async || unpublished().await == 0,
    )
    .await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM booking.outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    let stream = evently_bus::nats::NatsBus::connect(
        &d.nats,
        evently_bus::nats::NatsTarget {
            stream: format!("{}_BOOKING", d.prefix),
            subject_prefix: format!("{}.booking", d.prefix.to_lowercase()),
            ack_wait: Duration::from_secs(30),
        },
    )
    .await
    .unwrap();
    let messages = stream.stream_messages().await.unwrap();
    // Requests the gateway sent on to the other replica after the first refused to connect
    // (usually none: its readiness checks take the draining replica out first).
    let metrics = http
        .get(format!("{gw}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let connect_retries: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("evently_gateway_upstream_requests_total")
                && l.contains("upstream=\"booking\"")
                && l.contains("outcome=\"connect_retry\"")
        })
        .filter_map(|l| l.rsplit(" ").next()?.parse::<u64>().ok())
        .sum();

    eprintln!(
        "SIGTERM to one of two booking processes: readiness 503 after {first_503:?}, answered \
         {} probes ({:?}), connections refused after {refused_after:?}, exit {exit:?}; \
         purchases {} in all ({before} before the signal, {during} from the signal to the \
         exit), 503s retried {}, in-flight 409s retried {}, errors {}; {rows} outbox rows, \
         {messages} stream messages; {connect_retries} requests sent on to the other replica \
         after a refused connection; audit {audit:?}",
        readiness.len(),
        readiness.iter().collect::<BTreeSet<_>>(),
        orders.len(),
        counts.retried_503.load(Ordering::Relaxed),
        counts.retried_in_flight.load(Ordering::Relaxed),
        seen.errors.len(),
    );
    for service in ["AUTH", "EVENTS", "BOOKING", "SETTINGS"] {
        let target = evently_bus::nats::NatsTarget {
            stream: format!("{}_{service}", d.prefix),
            subject_prefix: format!("{}.{}", d.prefix.to_lowercase(), service.to_lowercase()),
            ack_wait: Duration::from_secs(30),
        };
        if let Ok(bus) = evently_bus::nats::NatsBus::connect(&d.nats, target).await {
            let _ = bus.delete_stream().await;
        }
    }
    drop(gateway);
    drop(b1);
    let _ = std::fs::remove_dir_all(&d.dir);
    drop_database(&admin_url, &database).await;

    assert!(
        seen.errors.is_empty(),
        "client-visible errors: {:?}",
        &seen.errors[..seen.errors.len().min(5)]
    );
    let first_503 = first_503.expect("readiness never answered 503 while draining");
    assert!(
        readiness
            .iter()
            .skip_while(|s| **s == 200)
            .all(|s| *s == 503),
        "readiness went back to 200: {readiness:?}"
    );
    assert!(
        first_503 < Duration::from_secs(DRAIN_SECONDS),
        "readiness turned 503 only after {first_503:?}"
    );
    let (status, exited_after) = exit.expect("the terminated process never exited");
    assert!(status.success(), "exit status {status}");
    assert!(exited_after < Duration::from_secs(GRACE_SECONDS));
    assert!(before > 0 && during > 0, "purchases across the shutdown");
    assert!(
        u64::try_from(orders.len()).unwrap() > before + during,
        "purchases after the exit"
    );
    for (key, orders) in &seen.by_key {
        assert_eq!(orders.len(), 1, "key {key} answered {orders:?}");
    }
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(audit.orders, i64::try_from(orders.len()).unwrap());
    assert_eq!(
        messages,
        u64::try_from(rows).unwrap(),
        "one message per row"
    );
}
