//! The crash harness: a purchase workload against a real `evently serve` process that is
//! killed with SIGKILL at random moments, many times, and restarted on the same data, while
//! its clients retry every unanswered purchase with the same `Idempotency-Key`; then an
//! audit of what survived (ARCHITECTURE §4, invariants 1–3).
//!
//! What the audit requires:
//! - every 201 a client saw has its order (read back through the API, confirmed), and the
//!   store holds no order no client was told of;
//! - no key and no hold has two orders (the answers of one key all name one order);
//! - seats sold equal valid tickets, none oversold or double-sold, and the inventory's
//!   counters equal its rows;
//! - no captured payment is kept without its order once its hold has expired: it is
//!   refunded (the crash between confirm and purchase).
//!
//! The same module runs as a test (`crates/evently/tests/crash.rs`, a few kills per engine)
//! and as `evently-bench crash` (hundreds), which both include this file: the harness only
//! drives processes and HTTP, so it needs nothing of the crates it is compiled into.
//!
//! The process runs the services of the purchase path (auth, events, booking, behind the
//! gateway). Even-numbered buyers go through hold → intent → confirm → purchase, odd-numbered
//! ones through hold → checkout (payment and purchase in one request and one transaction). A
//! failure before the purchase (a connection cut by the kill, a 503 while the process restarts)
//! abandons the attempt: the hold is left to expire, and a paid one is refunded. A purchase or
//! checkout without a definite answer
//! (no answer, 5xx, or 409 `request-in-flight` while the dead process's lease on the key
//! runs out) is sent again with the same key and body until it gets one: 201 (made now or
//! replayed) or a refusal.

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the process keeps its data.
#[derive(Debug, Clone)]
pub enum Engine {
    /// SQLite files in the run's data directory.
    Sqlite,
    /// A fresh database created (and dropped after) on the PostgreSQL server at this URL.
    Postgres(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `evently` binary.
    pub evently: PathBuf,
    /// The engine.
    pub engine: Engine,
    /// How many times the process is killed.
    pub kills: usize,
    /// Concurrent buyers.
    pub buyers: usize,
    /// General-admission places of the event.
    pub seats: u32,
    /// Longest time the process runs between its restart and its next kill (ms); each run
    /// lasts a random time up to this.
    pub max_uptime_ms: u64,
    /// Seed of the random kill times.
    pub seed: u64,
}

/// What a run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// SIGKILLs sent.
    pub kills: usize,
    /// Purchases answered 201 (distinct orders).
    pub acknowledged: usize,
    /// Purchase requests sent again with the same key after no answer, a 5xx or a 409
    /// `request-in-flight`.
    pub retries: u64,
    /// Retried purchases whose key replayed an order whose first answer the kill lost.
    pub replayed: u64,
    /// Purchases refused with a definite answer (e.g. the hold expired while the process
    /// was down).
    pub refused: u64,
    /// Attempts abandoned before the purchase (hold, intent or confirm unanswered).
    pub abandoned: u64,
    /// Paid intents refunded because their purchase never committed.
    pub refunded_payments: i64,
    /// Seats sold at the end.
    pub sold: i64,
    /// The slowest restart: from the kill until the new process was ready (ms).
    pub slowest_restart_ms: u128,
    /// Seconds the set-up took (admin, event, buyers, inventory).
    pub setup_secs: f64,
    /// Every breach of the invariants the audit found (empty when sound).
    pub violations: Vec<String>,
}

const SECRET: &str = "evently-crash-secret-0123456789abcdefghijkl";
const PASSWORD: &str = "crash harness password";
/// A hold's life in the run: long enough for a buyer to pay while the process is up, short
/// enough that the holds a kill strands expire (and are refunded) within the run.
const HOLD_TTL_SECONDS: u64 = 4;
/// The lease of a purchase's key: a retry after a kill runs again at most this long after
/// the kill.
const KEY_LEASE_SECONDS: u64 = 2;

/// The services the purchase path needs, in the one process that is killed. Search and
/// recommendations are left out: they rebuild their projections from the stream at start-up
/// (their readiness waits for that), which is theirs to test, and would make every restart
/// wait for a replay that the purchase path does not need.
const SERVICES: &str = "auth,events,booking";

/// A small deterministic generator of kill times (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The process under test, restarted on the same data after each kill.
struct Process {
    command: Vec<(String, String)>,
    evently: PathBuf,
    dir: PathBuf,
    listen: String,
    child: Option<Child>,
}

impl Process {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.evently);
        command
            .arg("--data-dir")
            .arg(&self.dir)
            .env_remove("EVENTLY_DATABASE_URL")
            .env_remove("EVENTLY_REDIS_URL")
            .env_remove("EVENTLY_NATS_URL");
        for (k, v) in &self.command {
            command.env(k, v);
        }
        command
    }

    /// Starts `evently serve` and waits until it is ready.
    async fn start(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let mut command = self.command();
        command
            .args(["serve", "--listen", &self.listen, "--services", SERVICES])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.join("serve.log"))?);
        let mut child = command.spawn().context("starting evently serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        // Drain what the process prints, so it never writes into a full pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while lines.next().is_some_and(|l| l.is_ok()) {}
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = match http
                .get(format!("http://{}/health/ready", self.listen))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => return Ok(()),
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "evently serve exited during start-up: {status}; its log ends: {}",
                    self.log_tail()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "evently serve not ready within 60 s (last answer: {last}); its log ends: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last lines the process logged.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// SIGKILL, then reaps the process.
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("SIGKILL")?;
            child.wait().context("reaping the killed process")?;
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh PostgreSQL database on the server at `url`; returns its URL.
async fn create_database(url: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating database {name}"))?;
    conn.close().await.ok();
    let (base, _) = url
        .rsplit_once('/')
        .context("a PostgreSQL URL ends with its database")?;
    Ok(format!("{base}/{name}"))
}

async fn drop_database(url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
        conn.close().await.ok();
    }
}

/// Sends a set-up request; fails unless it answers `want`.
async fn call(request: reqwest::RequestBuilder, what: &str, want: u16) -> anyhow::Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    ensure!(
        status == want,
        "{what}: expected {want}, got {status}: {text}"
    );
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn text(body: &Value, name: &str) -> anyhow::Result<String> {
    body[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{name}` in {body}"))
}

/// What the buyers saw, shared between them.
#[derive(Default)]
struct Seen {
    /// Key → the orders its 201 answers named (one, if keys hold).
    by_key: BTreeMap<String, BTreeSet<String>>,
    /// Hold → the orders its purchases' 201 answers named.
    by_hold: BTreeMap<String, BTreeSet<String>>,
    /// Order → its buyer's token.
    orders: BTreeMap<String, usize>,
}

#[derive(Default)]
struct Counts {
    retries: AtomicU64,
    replayed: AtomicU64,
    refused: AtomicU64,
    abandoned: AtomicU64,
}

/// A hold's payment intent, created and confirmed: its id, or `None` when either step got no
/// success (the attempt is then abandoned).
async fn pay(http: &reqwest::Client, base: &str, token: &str, hold_id: &str) -> Option<String> {
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let intent = post("/api/orders/payments/intent", json!({"holdId": hold_id}))
        .await
        .ok()
        .filter(|r| r.status().as_u16() == 201)?
        .json::<Value>()
        .await
        .ok()?;
    let intent_id = intent["paymentIntentId"].as_str()?;
    let secret = intent["clientSecret"].as_str()?;
    let confirm = json!({"paymentIntentId": intent_id, "clientSecret": secret});
    post("/api/orders/payments/confirm", confirm)
        .await
        .ok()
        .filter(|r| r.status().as_u16() == 200)?;
    Some(intent_id.to_owned())
}

/// One purchase attempt of a buyer; `Ok(false)` when abandoned before the purchase.
async fn attempt(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    buyer: usize,
    event_id: &str,
    seen: &Mutex<Seen>,
    counts: &Counts,
) -> bool {
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
    };
    let ok = |r: Result<reqwest::Response, reqwest::Error>, want: u16| async move {
        let r = r.ok()?;
        if r.status().as_u16() != want {
            return None;
        }
        r.json::<Value>().await.ok()
    };
    let Some(hold) = ok(
        post(
            "/api/orders/holds",
            json!({"eventId": event_id, "quantity": 1}),
        )
        .send()
        .await,
        201,
    )
    .await
    else {
        return false;
    };
    let (Some(hold_id), Some(seats)) = (hold["holdId"].as_str(), hold["seatIds"].as_array()) else {
        return false;
    };
    let key = uuid::Uuid::now_v7().to_string();
    let (path, body) = if buyer % 2 == 1 {
        let body = json!({"eventId": event_id, "holdId": hold_id, "seatIds": seats});
        ("/api/orders/checkout", body)
    } else {
        let Some(intent_id) = pay(http, base, token, hold_id).await else {
            return false;
        };
        let body = json!({
            "eventId": event_id, "holdId": hold_id, "seatIds": seats, "paymentIntentId": intent_id,
        });
        ("/api/orders/purchase", body)
    };
    // Whether the next request is a retry (the last one had no definite answer); after a
    // fresh 201 the key is sent once more, not as a retry: its replay must name the same
    // order.
    let mut retry = false;
    let mut answered = false;
    loop {
        if retry {
            counts.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        retry = true;
        let Ok(response) = post(path, body.clone())
            .header("Idempotency-Key", &key)
            .send()
            .await
        else {
            continue;
        };
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let Ok(answer) = response.json::<Value>().await else {
            continue;
        };
        match status {
            201 => {
                let Some(order) = answer["orderId"].as_str() else {
                    continue;
                };
                if replayed && !answered {
                    counts.replayed.fetch_add(1, Ordering::Relaxed);
                }
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.by_key
                    .entry(key.clone())
                    .or_default()
                    .insert(order.to_owned());
                seen.by_hold
                    .entry(hold_id.to_owned())
                    .or_default()
                    .insert(order.to_owned());
                seen.orders.insert(order.to_owned(), buyer);
                if !replayed {
                    retry = false;
                    answered = true;
                    continue;
                }
                return true;
            }
            409 if answer["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("request-in-flight")) =>
            {
                continue;
            }
            s if s >= 500 => continue,
            _ => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
    }
}

/// Runs the workload with `options.kills` kills, then audits. The report's `violations`
/// lists every breach found; an `Err` is a harness failure (set-up, a process that does not
/// come back).
///
/// # Errors
/// When the set-up fails or a process does not start.
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("evently_crash_{}_{nanos}", std::process::id());
    let database_url = match &options.engine {
        Engine::Sqlite => None,
        Engine::Postgres(url) => Some(create_database(url, &name).await?),
    };
    let result = run_on(&options, &name, database_url.as_deref()).await;
    if let Engine::Postgres(url) = &options.engine {
        drop_database(url, &name).await;
    }
    result
}

async fn run_on(
    options: &Options,
    name: &str,
    database_url: Option<&str>,
) -> anyhow::Result<Report> {
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut env: Vec<(String, String)> = [
        ("EVENTLY_LOG", "error"),
        ("EVENTLY_JWT__SECRET", SECRET),
        ("EVENTLY_INTERNAL__TOKEN", "evently-crash-internal-token"),
        ("EVENTLY_AUTH__PASSWORD__MEMORY_KIB", "8"),
        ("EVENTLY_AUTH__PASSWORD__ITERATIONS", "1"),
        ("EVENTLY_AUTH__PASSWORD__PARALLELISM", "1"),
        ("EVENTLY_AUTH__THROTTLE__IP_MAX_FAILURES", "1000000"),
        (
            "EVENTLY_GATEWAY__RATE_LIMITS__DEFAULT__PER_MINUTE",
            "1000000000",
        ),
        (
            "EVENTLY_GATEWAY__RATE_LIMITS__AUTH__PER_MINUTE",
            "1000000000",
        ),
        (
            "EVENTLY_GATEWAY__RATE_LIMITS__PURCHASE__PER_MINUTE",
            "1000000000",
        ),
        ("EVENTLY_BOOKING__MAX_TICKETS_PER_USER", "1000000"),
        ("EVENTLY_BOOKING__EXPIRY_MAX_SLEEP_MS", "200"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push((
        "EVENTLY_BOOKING__HOLD_TTL_SECONDS".into(),
        HOLD_TTL_SECONDS.to_string(),
    ));
    env.push((
        "EVENTLY_BOOKING__IDEMPOTENCY_LOCK_SECONDS".into(),
        KEY_LEASE_SECONDS.to_string(),
    ));
    if let Some(url) = database_url {
        env.push(("EVENTLY_DATABASE_URL".into(), url.to_owned()));
    }
    let mut process = Process {
        command: env,
        evently: options.evently.clone(),
        dir: dir.clone(),
        listen: format!("127.0.0.1:{port}"),
        child: None,
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    process.start(&http).await?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let (event_id, tokens) = set_up(&http, &process, &base, options).await?;
    let setup_secs = started.elapsed().as_secs_f64();

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let counts = Arc::new(Counts::default());
    let mut buyers = Vec::new();
    for (buyer, token) in tokens.iter().enumerate() {
        let (http, base, token, event_id) =
            (http.clone(), base.clone(), token.clone(), event_id.clone());
        let (stop, seen, counts) = (stop.clone(), seen.clone(), counts.clone());
        buyers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if !attempt(&http, &base, &token, buyer, &event_id, &seen, &counts).await {
                    counts.abandoned.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }

    let mut rng = Rng(options.seed | 1);
    let mut slowest_restart_ms = 0;
    let mut kills = 0;
    while kills < options.kills {
        let uptime = 50 + rng.below(options.max_uptime_ms.max(51) - 50);
        tokio::time::sleep(Duration::from_millis(uptime)).await;
        let killed = Instant::now();
        process.kill()?;
        kills += 1;
        process.start(&http).await?;
        slowest_restart_ms = slowest_restart_ms.max(killed.elapsed().as_millis());
    }
    // Let every purchase in flight reach its definite answer against the live process.
    stop.store(true, Ordering::Relaxed);
    for buyer in buyers {
        buyer.await?;
    }
    // Every hold left by the workload expires and is swept (its paid intent refunded).
    tokio::time::sleep(Duration::from_secs(HOLD_TTL_SECONDS + 2)).await;

    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    let mut report = Report {
        kills,
        acknowledged: seen.orders.len(),
        retries: counts.retries.load(Ordering::Relaxed),
        replayed: counts.replayed.load(Ordering::Relaxed),
        refused: counts.refused.load(Ordering::Relaxed),
        abandoned: counts.abandoned.load(Ordering::Relaxed),
        slowest_restart_ms,
        setup_secs,
        ..Report::default()
    };
    audit(
        &http,
        &base,
        &process,
        database_url,
        &event_id,
        &tokens,
        &seen,
        &mut report,
    )
    .await?;
    Ok(report)
}

/// Admin, venue, event ON_SALE, buyers; waits for booking's inventory.
async fn set_up(
    http: &reqwest::Client,
    process: &Process,
    base: &str,
    options: &Options,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut admin = process.command();
    admin
        .args([
            "admin",
            "create",
            "--email",
            "admin@crash.example.com",
            "--name",
            "Admin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let output = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut child = admin.spawn().context("starting evently admin create")?;
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(format!("{PASSWORD}\n").as_bytes())?;
        Ok(child.wait_with_output()?)
    })
    .await??;
    ensure!(
        output.status.success(),
        "evently admin create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let login = |email: String| async move {
        let body = call(
            http.post(format!("{base}/api/auth/login"))
                .json(&json!({"email": email, "password": PASSWORD})),
            "signing in",
            200,
        )
        .await?;
        text(&body, "accessToken")
    };
    let admin = login("admin@crash.example.com".into()).await?;
    let venue = call(
        http.post(format!("{base}/api/venues"))
            .bearer_auth(&admin)
            .json(&json!({
                "name": "Crash Hall", "address": "1 Kill Street", "city": "Oslo",
                "capacity": options.seats,
            })),
        "creating the venue",
        201,
    )
    .await?;
    let event = call(
        http.post(format!("{base}/api/events"))
            .bearer_auth(&admin)
            .json(&json!({
                "eventName": "Crash night", "eventDate": "2040-01-01T20:00:00Z",
                "venueId": text(&venue, "venueId")?, "totalSeats": options.seats,
                "status": "ON_SALE", "saleStartTime": "2020-01-01T00:00:00Z",
                "tags": [], "basePrice": 4200, "currency": "EUR",
            })),
        "creating the event",
        201,
    )
    .await?;
    let event_id = text(&event, "eventId")?;
    let mut tokens = Vec::new();
    for i in 0..options.buyers {
        let email = format!("buyer-{i}@crash.example.com");
        call(
            http.post(format!("{base}/api/auth/register"))
                .json(&json!({"email": email, "password": PASSWORD, "name": format!("Buyer {i}")})),
            "registering a buyer",
            201,
        )
        .await?;
        tokens.push(login(email).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let capacity = http
            .get(format!("{base}/api/events/{event_id}/availability"))
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200);
        let capacity = match capacity {
            Some(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|b| b["capacity"].as_i64()),
            None => None,
        };
        if capacity == Some(i64::from(options.seats)) {
            return Ok((event_id, tokens));
        }
        ensure!(
            Instant::now() < deadline,
            "booking built no inventory within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks what the clients saw against the store and the API; appends each breach to
/// `report.violations`.
#[allow(clippy::too_many_arguments)]
async fn audit(
    http: &reqwest::Client,
    base: &str,
    process: &Process,
    database_url: Option<&str>,
    event_id: &str,
    tokens: &[String],
    seen: &Seen,
    report: &mut Report,
) -> anyhow::Result<()> {
    let v = &mut report.violations;
    for (key, orders) in &seen.by_key {
        if orders.len() > 1 {
            v.push(format!(
                "key {key} answered {} different orders",
                orders.len()
            ));
        }
    }
    for (hold, orders) in &seen.by_hold {
        if orders.len() > 1 {
            v.push(format!("hold {hold} has {} orders", orders.len()));
        }
    }
    for (order, buyer) in &seen.orders {
        let read = http
            .get(format!("{base}/api/orders/{order}"))
            .bearer_auth(&tokens[*buyer])
            .send()
            .await
            .context("reading an acknowledged order")?;
        let status = read.status().as_u16();
        let body: Value = read.json().await.unwrap_or(Value::Null);
        if status != 200 || body["status"] != "confirmed" {
            v.push(format!("acknowledged order {order} reads {status} {body}"));
        }
    }
    let url = match database_url {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", process.dir.join("booking.db").display()),
    };
    let event = uuid::Uuid::parse_str(event_id)?;
    let audit = evently_booking::audit(&url, event).await?;
    report.refunded_payments = audit.refunded_payments;
    report.sold = audit.sold_seats;
    if !audit.is_sound() {
        v.push(format!("the store's audit is not sound: {audit:?}"));
    }
    if audit.orders != i64::try_from(seen.orders.len()).unwrap_or(i64::MAX) {
        v.push(format!(
            "the store has {} orders, the clients were told of {}",
            audit.orders,
            seen.orders.len()
        ));
    }
    if audit.live_holds != 0 {
        v.push(format!(
            "{} holds still live after the run",
            audit.live_holds
        ));
    }
    let availability: Value = http
        .get(format!("{base}/api/events/{event_id}/availability"))
        .send()
        .await?
        .json()
        .await?;
    if availability["sold"].as_i64() != Some(audit.sold_seats)
        || availability["held"].as_i64() != Some(0)
    {
        v.push(format!(
            "availability {availability} disagrees with the rows ({} sold, none held)",
            audit.sold_seats
        ));
    }
    Ok(())
}

/// The `evently` binary next to the running executable (for `evently-bench`, which is built
/// beside it), or `None` if it is not there.
pub fn sibling_evently() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path: &Path = exe.parent()?;
    let binary = path.join("evently");
    binary.exists().then_some(binary)
}
