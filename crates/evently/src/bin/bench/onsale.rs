//! `evently-bench onsale`: an on-sale rush. Many buyers race for the seats of one big
//! reserved-seat event through the real HTTP API of an `evently serve` process (all services
//! in one process), then the booking store is audited.
//!
//! Each run starts a fresh server with fresh databases: on the embedded default, new SQLite
//! files in a new data directory; with `--database-url postgres://…`, the schemas `auth`,
//! `events` and `booking` are dropped (CASCADE) before the server starts and recreates them.
//!
//! - Setup (not timed): an admin made with `evently admin create`, an organizer promoted by
//!   that admin, a venue of `--seats` seats (sections of 50 rows of 100 seats), an event ON_SALE
//!   on it, `--buyers` buyers registered and signed in. The setup lowers the password-hashing
//!   cost through the documented `EVENTLY_AUTH__PASSWORD__*` settings, so that registering
//!   200,000 accounts takes minutes; the sale itself hashes nothing.
//! - The sale (timed): `--concurrency` client tasks take buyers from a queue. Each buyer wants
//!   1..=`--max-quantity` tickets. Even-numbered buyers pick adjacent seats at random among
//!   those the seat map shows free (falling back once to best available when they turn out
//!   taken, or when the map shows none), odd-numbered buyers ask for best available. The seat
//!   map is one view shared by all client tasks and updated from every hold and conflict
//!   answer, as a live seat map would be: it lags the store by the requests in flight. Then hold → payment intent → confirm → purchase.
//! - After the sale the server is stopped and `evently_booking::audit` counts the store's rows:
//!   no seat oversold or sold twice, every sold seat with exactly one valid ticket. A broken
//!   invariant (or an audit that cannot run) ends the benchmark with a non-zero exit status.
//!
//! Figures: seats sold (the server's availability), orders placed, holds/s and orders/s, time
//! to sell out (from the first request until the answer to the order that sold the last seat,
//! once availability afterwards shows every seat sold), p50/p99 per step, buyers who got
//! nothing, every answer per step and status, the server's peak RSS, its CPU time per completed
//! purchase, this process's own CPU time, the other processes' CPU time (PostgreSQL, when the
//! stores are there) and the CPU time the hypervisor stole from the machine. Targets, printed next to
//! the figures and never enforced: every seat sold to 200,000 buyers in under 30 s on the
//! embedded SQLite (60 s on PostgreSQL), zero oversell, p99 < 250 ms per step, and less than
//! 2 ms of server CPU per completed purchase. With `--runs N` each figure's median follows.

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::{
    BENCH_JWT_SECRET, Server, cpu_seconds, machine_cpu_seconds, percentile, start_server,
};

/// Seats in one row of the generated layout.
const SEATS_PER_ROW: u32 = 100;
/// Rows in one section of the generated layout (more when 100 sections are not enough).
const ROWS_PER_SECTION: u32 = 50;
/// Concurrent registrations during the setup: enough to keep the server's store busy.
const SETUP_TASKS: usize = 64;
/// The buyers' password (any password the policy accepts).
const PASSWORD: &str = "benchmark password 1";
/// The lowest Argon2id cost `auth.password` accepts (memory 8 KiB per lane, one pass).
const SETUP_HASHING: [(&str, &str); 3] = [
    ("EVENTLY_AUTH__PASSWORD__MEMORY_KIB", "8"),
    ("EVENTLY_AUTH__PASSWORD__ITERATIONS", "1"),
    ("EVENTLY_AUTH__PASSWORD__PARALLELISM", "1"),
];
/// Retries of one request answered 429.
const MAX_429_RETRIES: u32 = 5;

/// The command-line options.
pub struct Options {
    /// Runs, each on a fresh server.
    pub runs: usize,
    /// Seats of the venue.
    pub seats: u32,
    /// Buyers in the rush.
    pub buyers: usize,
    /// Concurrent client tasks during the sale.
    pub concurrency: usize,
    /// Most tickets one buyer wants.
    pub max_quantity: u32,
    /// PostgreSQL for every service instead of the embedded SQLite files.
    pub database_url: Option<String>,
}

/// One row of the generated layout.
struct RowSpec {
    section: String,
    label: String,
    seats: u32,
}

/// `A`, `B`, …, `Z`, `AA`, `AB`, …
fn section_name(index: u32) -> String {
    let mut i = index + 1;
    let mut name = Vec::new();
    while i > 0 {
        i -= 1;
        name.push(b'A' + u8::try_from(i % 26).unwrap_or(0));
        i /= 26;
    }
    name.reverse();
    String::from_utf8_lossy(&name).into_owned()
}

/// Rows of 100 seats (the last one shorter), 50 rows to a section; deeper sections when more
/// than 100 sections would be needed (the venue allows at most 100, of at most 500 rows).
fn layout(seats: u32) -> anyhow::Result<Vec<RowSpec>> {
    ensure!(
        (1..=1_000_000).contains(&seats),
        "--seats must be between 1 and 1000000 (a venue's largest capacity)"
    );
    let rows_total = seats.div_ceil(SEATS_PER_ROW);
    let per_section = ROWS_PER_SECTION.max(rows_total.div_ceil(100));
    Ok((0..rows_total)
        .map(|r| RowSpec {
            section: section_name(r / per_section),
            label: (r % per_section + 1).to_string(),
            seats: (seats - r * SEATS_PER_ROW).min(SEATS_PER_ROW),
        })
        .collect())
}

fn layout_json(rows: &[RowSpec]) -> Value {
    let mut sections: Vec<(String, Vec<Value>)> = Vec::new();
    for row in rows {
        let entry = json!({"label": row.label, "seats": row.seats});
        match sections.last_mut() {
            Some((name, rows)) if *name == row.section => rows.push(entry),
            _ => sections.push((row.section.clone(), vec![entry])),
        }
    }
    json!({
        "sections": sections
            .into_iter()
            .map(|(name, rows)| json!({"name": name, "rows": rows}))
            .collect::<Vec<_>>()
    })
}

/// A small SplitMix64 generator: buyers' choices need to be spread, not unpredictable.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// The seat map as the buyers see it: every seat of the layout, marked taken once an answer
/// showed it held or sold (a 201 hold, or the conflicts of a 409). All client tasks share it,
/// as every buyer's page shares one live seat map; it lags the store by the requests in
/// flight, so buyers still collide on seats that were free when they looked.
struct SeatMap {
    /// Seat ids in layout order, row after row.
    ids: Vec<String>,
    /// Index of each seat id in `ids`.
    index: std::collections::HashMap<String, usize>,
    /// First index of each row in `ids`, and its length.
    rows: Vec<(usize, usize)>,
    taken: Vec<AtomicBool>,
}

impl SeatMap {
    fn new(rows: &[RowSpec]) -> Self {
        let mut ids = Vec::new();
        let mut spans = Vec::with_capacity(rows.len());
        for row in rows {
            spans.push((ids.len(), row.seats as usize));
            ids.extend((1..=row.seats).map(|n| format!("{}-{}-{n}", row.section, row.label)));
        }
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let taken = ids.iter().map(|_| AtomicBool::new(false)).collect();
        Self {
            ids,
            index,
            rows: spans,
            taken,
        }
    }

    /// Marks the seats of an answer taken (`true`) or free again (`false`).
    fn mark<'a>(&self, seats: impl IntoIterator<Item = &'a Value>, taken: bool) {
        for seat in seats {
            if let Some(&i) = seat.as_str().and_then(|id| self.index.get(id)) {
                self.taken[i].store(taken, Ordering::Relaxed);
            }
        }
    }

    /// `q` adjacent seats shown free, as a click on the seat map picks them: from a random
    /// place in a random row, the first free run of `q` in that row; other random rows when
    /// it has none. `None` when a few rows tried show no such run (the buyer then asks for
    /// best available).
    fn pick(&self, q: u32, rng: &mut Rng) -> Option<Vec<String>> {
        let q = q as usize;
        for _ in 0..8 {
            let (first, len) =
                self.rows[usize::try_from(rng.below(self.rows.len() as u64)).ok()?];
            if len < q {
                continue;
            }
            let starts = len - q + 1;
            let offset = usize::try_from(rng.below(starts as u64)).ok()?;
            for k in 0..starts {
                let start = first + (offset + k) % starts;
                if (start..start + q).all(|i| !self.taken[i].load(Ordering::Relaxed)) {
                    return Some(self.ids[start..start + q].to_vec());
                }
            }
        }
        None
    }
}

/// The `evently` binary next to this one.
fn evently_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("bench binary has no directory")?
        .join("evently"))
}

/// Creates an admin with `evently admin create`, against the same data directory or database
/// as the running server.
async fn admin_create(
    server: &Server,
    database_url: Option<&str>,
    email: &str,
) -> anyhow::Result<()> {
    let mut command = Command::new(evently_binary()?);
    command
        .arg("--data-dir")
        .arg(server.data_dir())
        .args(["admin", "create", "--email", email, "--name", "Bench Admin"])
        .env("EVENTLY_LOG", "warn")
        .env("EVENTLY_JWT__SECRET", BENCH_JWT_SECRET)
        .env("EVENTLY_INTERNAL__TOKEN", "evently-bench-internal-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in SETUP_HASHING {
        command.env(k, v);
    }
    match database_url {
        Some(url) => command.env("EVENTLY_DATABASE_URL", url),
        None => command.env_remove("EVENTLY_DATABASE_URL"),
    };
    let output = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut child = command.spawn().context("starting evently admin create")?;
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .context("writing the admin password")?;
        child
            .wait_with_output()
            .context("waiting for evently admin create")
    })
    .await??;
    ensure!(
        output.status.success(),
        "evently admin create failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Drops the schemas of the services that keep tables on PostgreSQL, so that the run starts
/// from empty stores.
async fn drop_schemas(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query("DROP SCHEMA IF EXISTS auth, events, booking CASCADE")
        .execute(&mut conn)
        .await
        .context("dropping the schemas auth, events, booking")?;
    conn.close().await.context("closing the connection")?;
    Ok(())
}

/// Sends a JSON request during the setup; fails unless the answer has status `want`.
async fn setup_call(
    request: reqwest::RequestBuilder,
    what: &str,
    want: u16,
) -> anyhow::Result<Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status().as_u16();
    let text = response.text().await.with_context(|| what.to_owned())?;
    if status != want {
        bail!("{what}: expected {want}, got {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn field(body: &Value, name: &str) -> anyhow::Result<String> {
    body[name]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{name}` in {body}"))
}

async fn login(client: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<String> {
    let body = setup_call(
        client
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD})),
        "signing in",
        200,
    )
    .await?;
    field(&body, "accessToken")
}

/// Admin, organizer, venue and event; returns the event id.
async fn create_event(
    client: &reqwest::Client,
    server: &Server,
    database_url: Option<&str>,
    rows: &[RowSpec],
    seats: u32,
) -> anyhow::Result<String> {
    let base = &server.base;
    admin_create(server, database_url, "admin@onsale.example.com").await?;
    let admin = login(client, base, "admin@onsale.example.com").await?;
    let organizer = setup_call(
        client
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": "organizer@onsale.example.com", "password": PASSWORD, "name": "Bench Organizer"})),
        "registering the organizer",
        201,
    )
    .await?;
    let organizer_id = field(&organizer, "userId")?;
    setup_call(
        client
            .put(format!("{base}/api/users/{organizer_id}/role"))
            .bearer_auth(&admin)
            .json(&json!({"role": "organizer"})),
        "making the organizer an organizer",
        200,
    )
    .await?;
    let organizer = login(client, base, "organizer@onsale.example.com").await?;
    let venue = setup_call(
        client
            .post(format!("{base}/api/venues"))
            .bearer_auth(&organizer)
            .json(&json!({
                "name": "Bench Stadium",
                "address": "1 Rush Lane",
                "city": "Seattle",
                "layout": layout_json(rows),
            })),
        "creating the venue",
        201,
    )
    .await?;
    let venue_id = field(&venue, "venueId")?;
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .context("formatting a date")
    };
    // The first two sections are dearer than the base price.
    let mut sections: Vec<&str> = rows.iter().map(|r| r.section.as_str()).collect();
    sections.dedup();
    let section_prices: serde_json::Map<String, Value> = sections
        .into_iter()
        .zip([25_000, 18_000])
        .map(|(section, price)| (section.to_owned(), json!(price)))
        .collect();
    let event = setup_call(
        client
            .post(format!("{base}/api/events"))
            .bearer_auth(&organizer)
            .json(&json!({
                "eventName": "Bench On-Sale Rush",
                "eventDate": rfc3339(now + time::Duration::days(30))?,
                "venueId": venue_id,
                "totalSeats": seats,
                "status": "ON_SALE",
                "saleStartTime": rfc3339(now)?,
                "eventType": "concert",
                "tags": ["bench"],
                "basePrice": 9_900,
                "currency": "USD",
                "sectionPrices": section_prices,
            })),
        "creating the event",
        201,
    )
    .await?;
    field(&event, "eventId")
}

/// Registers and signs in `n` buyers, `SETUP_TASKS` at a time; returns their access tokens,
/// buyer `i` at index `i`.
async fn register_buyers(
    client: &reqwest::Client,
    base: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let progress = {
        let (done, finished) = (done.clone(), finished.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if finished.load(Ordering::Relaxed) {
                    return;
                }
                let d = done.load(Ordering::Relaxed);
                println!(
                    "  … {d} of {n} buyers registered and signed in ({:.0}/s)",
                    d as f64 / start.elapsed().as_secs_f64()
                );
            }
        })
    };
    // One failure ends the setup: the other tasks stop taking buyers.
    let failed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..SETUP_TASKS.min(n) {
        let (client, base, next, done, failed) = (
            client.clone(),
            base.to_owned(),
            next.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || failed.load(Ordering::Relaxed) {
                    return anyhow::Ok(tokens);
                }
                let email = format!("buyer-{i}@onsale.example.com");
                let signed_in = async {
                    setup_call(
                        client
                            .post(format!("{base}/api/auth/register"))
                            .json(&json!({"email": email, "password": PASSWORD, "name": format!("Buyer {i}")})),
                        "registering a buyer",
                        201,
                    )
                    .await?;
                    login(&client, &base, &email).await
                };
                match signed_in.await {
                    Ok(token) => tokens.push((i, token)),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut tokens = vec![String::new(); n];
    let mut result = Ok(());
    for task in tasks {
        match task.await? {
            Ok(list) => {
                for (i, token) in list {
                    if let Some(slot) = tokens.get_mut(i) {
                        *slot = token;
                    }
                }
            }
            Err(e) => result = Err(e),
        }
    }
    finished.store(true, Ordering::Relaxed);
    progress.abort();
    result.map(|()| tokens)
}

/// `GET /api/events/{id}/availability`: `(capacity, available, held, sold)`, or the status
/// and body of any other answer.
async fn availability(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
) -> Result<[i64; 4], String> {
    let response = client
        .get(format!("{base}/api/events/{event_id}/availability"))
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| format!("{e}"))?;
    if status != 200 {
        return Err(format!("{status} {text}"));
    }
    let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    let n = |k: &str| {
        body[k]
            .as_i64()
            .ok_or_else(|| format!("no `{k}` in {text}"))
    };
    Ok([n("capacity")?, n("available")?, n("held")?, n("sold")?])
}

/// Polls availability until booking has built the event's inventory of `seats` seats.
async fn wait_for_inventory(
    client: &reqwest::Client,
    base: &str,
    event_id: &str,
    seats: u32,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let last = availability(client, base, event_id).await;
        match &last {
            Ok([capacity, ..]) if *capacity == i64::from(seats) => return Ok(()),
            _ if Instant::now() > deadline => bail!(
                "booking did not build the inventory of {seats} seats within 120 s; \
                 GET /api/events/{event_id}/availability last answered: {}",
                match last {
                    Ok(a) => format!("{a:?} (capacity, available, held, sold)"),
                    Err(e) => e,
                }
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The steps of a purchase, each counted and timed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    HoldSeats,
    HoldBest,
    Intent,
    Confirm,
    Purchase,
    Release,
}

impl Step {
    const ALL: [Step; 6] = [
        Step::HoldSeats,
        Step::HoldBest,
        Step::Intent,
        Step::Confirm,
        Step::Purchase,
        Step::Release,
    ];

    fn name(self) -> &'static str {
        match self {
            Step::HoldSeats => "hold (seat map)",
            Step::HoldBest => "hold (best available)",
            Step::Intent => "payment intent",
            Step::Confirm => "payment confirm",
            Step::Purchase => "purchase",
            Step::Release => "release hold",
        }
    }

    /// Whether `status` is a normal answer at this step (a 409 on a hold is a lost race).
    fn expects(self, status: u16) -> bool {
        match self {
            Step::HoldSeats | Step::HoldBest => matches!(status, 201 | 409),
            Step::Intent => matches!(status, 200 | 201),
            Step::Confirm => status == 200,
            Step::Purchase => status == 201,
            Step::Release => matches!(status, 200 | 204),
        }
    }
}

/// What one client task saw.
#[derive(Default)]
struct Stats {
    /// Latency of 2xx answers per step, in ms.
    ok_ms: BTreeMap<Step, Vec<f64>>,
    /// Latency of holds refused with 409, in ms.
    refused_ms: Vec<f64>,
    /// Answers per step and status (with the problem slug for 4xx).
    counts: BTreeMap<(Step, String), u64>,
    unexpected: u64,
    samples: Vec<String>,
    holds: u64,
    orders: u64,
    tickets: u64,
    fallbacks: u64,
    sold_out: u64,
    lost: u64,
    failed: u64,
    /// When the latest order was answered, in seconds from the start of the sale.
    last_order_s: f64,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (step, v) in other.ok_ms {
            self.ok_ms.entry(step).or_default().extend(v);
        }
        self.refused_ms.extend(other.refused_ms);
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        self.unexpected += other.unexpected;
        for s in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s);
            }
        }
        self.holds += other.holds;
        self.orders += other.orders;
        self.tickets += other.tickets;
        self.fallbacks += other.fallbacks;
        self.sold_out += other.sold_out;
        self.lost += other.lost;
        self.failed += other.failed;
        self.last_order_s = self.last_order_s.max(other.last_order_s);
    }

    fn record_unexpected(&mut self, step: Step, label: String, detail: String) {
        *self.counts.entry((step, label)).or_default() += 1;
        self.unexpected += 1;
        if self.samples.len() < 5 {
            self.samples.push(format!("{}: {detail}", step.name()));
        }
    }
}

/// The last segment of a problem's `type` URI.
fn slug(body: &Value) -> Option<&str> {
    body["type"].as_str().and_then(|t| t.rsplit('/').next())
}

struct Reply {
    status: u16,
    body: Value,
}

/// What the sale's client tasks share.
struct Sale {
    client: reqwest::Client,
    base: String,
    event_id: String,
    seat_map: SeatMap,
    max_quantity: u32,
}

enum Outcome {
    Bought,
    SoldOut,
    Lost,
    Failed,
}

impl Sale {
    /// Sends one request of `step`, retrying (after `Retry-After`, at most a second) when
    /// rate-limited; counts and times the answer. `None` when no answer came.
    async fn send(
        &self,
        step: Step,
        stats: &mut Stats,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Option<Reply> {
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let answer = match build().send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    response.bytes().await.map(|b| (status, retry_after, b))
                }
                Err(e) => Err(e),
            };
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let (status, retry_after, bytes) = match answer {
                Ok(a) => a,
                Err(e) => {
                    stats.record_unexpected(step, "no answer".into(), format!("{e}"));
                    return None;
                }
            };
            if status == 429 && attempt < MAX_429_RETRIES {
                attempt += 1;
                *stats
                    .counts
                    .entry((step, "429 (retried)".into()))
                    .or_default() += 1;
                let wait =
                    Duration::from_secs(retry_after.unwrap_or(1)).min(Duration::from_secs(1));
                tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
                continue;
            }
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let label = match slug(&body) {
                Some(slug) if status >= 400 => format!("{status} {slug}"),
                _ => status.to_string(),
            };
            if step.expects(status) {
                *stats.counts.entry((step, label)).or_default() += 1;
            } else {
                let detail = format!("{status} {}", String::from_utf8_lossy(&bytes));
                stats.record_unexpected(step, label, detail.chars().take(300).collect());
            }
            if (200..300).contains(&status) {
                stats.ok_ms.entry(step).or_default().push(ms);
            } else if status == 409 && matches!(step, Step::HoldSeats | Step::HoldBest) {
                stats.refused_ms.push(ms);
            }
            return Some(Reply { status, body });
        }
    }

    /// One buyer, start to finish.
    async fn buy(&self, index: usize, token: &str, rng: &mut Rng, stats: &mut Stats) -> Outcome {
        let q = 1 + u32::try_from(rng.below(u64::from(self.max_quantity))).unwrap_or(0);
        let holds = format!("{}/api/orders/holds", self.base);
        let mut hold = None;
        if index.is_multiple_of(2)
            && let Some(seats) = self.seat_map.pick(q, rng)
        {
            let body = json!({"eventId": self.event_id, "seatIds": seats});
            let Some(reply) = self
                .send(Step::HoldSeats, stats, || {
                    self.client.post(&holds).bearer_auth(token).json(&body)
                })
                .await
            else {
                return Outcome::Failed;
            };
            match reply.status {
                201 => hold = Some((Step::HoldSeats, reply.body)),
                409 if slug(&reply.body) == Some("sold-out") => return Outcome::SoldOut,
                409 => {
                    if let Some(conflicts) = reply.body["conflicts"].as_array() {
                        self.seat_map.mark(conflicts, true);
                    }
                    stats.fallbacks += 1;
                }
                _ => return Outcome::Failed,
            }
        }
        let (step, hold) = match hold {
            Some(h) => h,
            None => {
                let body = json!({"eventId": self.event_id, "quantity": q});
                let Some(reply) = self
                    .send(Step::HoldBest, stats, || {
                        self.client.post(&holds).bearer_auth(token).json(&body)
                    })
                    .await
                else {
                    return Outcome::Failed;
                };
                match reply.status {
                    201 => (Step::HoldBest, reply.body),
                    409 if slug(&reply.body) == Some("sold-out") => return Outcome::SoldOut,
                    409 => return Outcome::Lost,
                    _ => return Outcome::Failed,
                }
            }
        };
        stats.holds += 1;
        if let Some(seats) = hold["seatIds"].as_array() {
            self.seat_map.mark(seats, true);
        }
        let Some(hold_id) = hold["holdId"].as_str() else {
            stats.record_unexpected(step, "201 without holdId".into(), hold.to_string());
            return Outcome::Failed;
        };
        let outcome = self.pay_and_purchase(token, hold_id, &hold, stats).await;
        if matches!(outcome, Outcome::Failed) {
            // Give the seats back now rather than when the hold expires, as a real client
            // abandoning the checkout would.
            let url = format!("{holds}/{hold_id}");
            let released = self
                .send(Step::Release, stats, || {
                    self.client.delete(&url).bearer_auth(token)
                })
                .await;
            if released.is_some_and(|r| (200..300).contains(&r.status))
                && let Some(seats) = hold["seatIds"].as_array()
            {
                self.seat_map.mark(seats, false);
            }
        }
        outcome
    }

    async fn pay_and_purchase(
        &self,
        token: &str,
        hold_id: &str,
        hold: &Value,
        stats: &mut Stats,
    ) -> Outcome {
        let base = &self.base;
        let body = json!({"holdId": hold_id});
        let url = format!("{base}/api/orders/payments/intent");
        let Some(intent) = self
            .send(Step::Intent, stats, || {
                self.client.post(&url).bearer_auth(token).json(&body)
            })
            .await
            .filter(|r| (200..300).contains(&r.status))
        else {
            return Outcome::Failed;
        };
        let (Some(intent_id), Some(secret)) = (
            intent.body["paymentIntentId"].as_str(),
            intent.body["clientSecret"].as_str(),
        ) else {
            stats.record_unexpected(
                Step::Intent,
                "2xx without an intent".into(),
                intent.body.to_string(),
            );
            return Outcome::Failed;
        };
        let body = json!({"paymentIntentId": intent_id, "clientSecret": secret});
        let url = format!("{base}/api/orders/payments/confirm");
        let Some(confirm) = self
            .send(Step::Confirm, stats, || {
                self.client.post(&url).bearer_auth(token).json(&body)
            })
            .await
            .filter(|r| r.status == 200)
        else {
            return Outcome::Failed;
        };
        if confirm.body["status"].as_str() != Some("succeeded") {
            stats.record_unexpected(
                Step::Confirm,
                "200 not succeeded".into(),
                confirm.body.to_string(),
            );
            return Outcome::Failed;
        }
        let body = json!({
            "eventId": self.event_id,
            "holdId": hold_id,
            "seatIds": hold["seatIds"],
            "paymentIntentId": intent_id,
        });
        let key = uuid::Uuid::new_v4().to_string();
        let url = format!("{base}/api/orders/purchase");
        let Some(order) = self
            .send(Step::Purchase, stats, || {
                self.client
                    .post(&url)
                    .bearer_auth(token)
                    .header("Idempotency-Key", &key)
                    .json(&body)
            })
            .await
            .filter(|r| r.status == 201)
        else {
            return Outcome::Failed;
        };
        stats.orders += 1;
        stats.tickets += order.body["tickets"].as_array().map_or(0, Vec::len) as u64;
        Outcome::Bought
    }
}

/// Peak resident memory of `pid` in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Sends SIGTERM to the server and waits (up to 30 s, then kills it), keeping its data
/// directory for the audit.
async fn stop(server: &mut Server) -> anyhow::Result<()> {
    let pid = server.child.id().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|s| s.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while signalled && Instant::now() < deadline {
        if server.child.try_wait()?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  the server did not stop on SIGTERM within 30 s; killing it");
    server.child.kill().context("killing the server")?;
    server.child.wait().context("waiting for the server")?;
    Ok(())
}

/// The median; the mean of the middle two of an even count.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match (v.len().is_multiple_of(2), v.get(mid)) {
        (_, None) => f64::NAN,
        (false, Some(m)) => *m,
        (true, Some(m)) => v.get(mid - 1).map_or(*m, |l| (l + m) / 2.0),
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// One run's figures, by name, for the medians across runs.
type Figures = Vec<(&'static str, f64)>;

/// The server's settings for a run: the setup's lowered hashing cost and generous token
/// lifetime, ticket limits that allow `--max-quantity`, room for the venue's layout, and the
/// database.
fn server_env(opts: &Options, rows: &[RowSpec]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&str, String)> = SETUP_HASHING
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    // A slot per registering task, so no registration waits for a hashing slot.
    env.push((
        "EVENTLY_AUTH__PASSWORD__MAX_CONCURRENT_HASHES",
        SETUP_TASKS.to_string(),
    ));
    // Tokens issued during the setup must outlive the setup and the sale.
    env.push(("EVENTLY_JWT__ACCESS_TTL_SECONDS", "3600".into()));
    if opts.max_quantity > 10 {
        env.push((
            "EVENTLY_BOOKING__MAX_SEATS_PER_ORDER",
            opts.max_quantity.to_string(),
        ));
        env.push((
            "EVENTLY_BOOKING__MAX_TICKETS_PER_USER",
            opts.max_quantity.to_string(),
        ));
    }
    let venue_bytes = layout_json(rows).to_string().len();
    if venue_bytes > 60 * 1024 {
        env.push((
            "EVENTLY_SERVER__BODY_LIMIT_BYTES",
            (venue_bytes * 2).to_string(),
        ));
    }
    if let Some(url) = &opts.database_url {
        env.push(("EVENTLY_DATABASE_URL", url.clone()));
    }
    env
}

/// What the setup made.
struct Setup {
    event_id: String,
    tokens: Vec<String>,
    secs: f64,
}

/// Organizer, venue, event and buyers; then waits for booking's inventory.
async fn setup(opts: &Options, server: &Server, rows: &[RowSpec]) -> anyhow::Result<Setup> {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(SETUP_TASKS * 2)
        .timeout(Duration::from_secs(60))
        .build()?;
    let database_url = opts.database_url.as_deref();
    let event_id = create_event(&client, server, database_url, rows, opts.seats).await?;
    println!(
        "  event {event_id} ON_SALE: {} seats in {} rows",
        opts.seats,
        rows.len()
    );
    let tokens = register_buyers(&client, &server.base, opts.buyers).await?;
    println!(
        "  {} buyers registered and signed in: {:.0}/s",
        opts.buyers,
        opts.buyers as f64 / started.elapsed().as_secs_f64()
    );
    wait_for_inventory(&client, &server.base, &event_id, opts.seats).await?;
    let secs = started.elapsed().as_secs_f64();
    println!("  setup took {secs:.1} s (not timed)");
    Ok(Setup {
        event_id,
        tokens,
        secs,
    })
}

/// What the sale measured.
struct SaleRun {
    stats: Stats,
    secs: f64,
    sold_out_after: Option<f64>,
    server_cpu: f64,
    own_cpu: f64,
    /// The machine's busy and stolen CPU seconds during the sale (all cores).
    machine_busy: f64,
    machine_stolen: f64,
}

/// The timed sale: `concurrency` tasks take buyers from the queue until it is empty.
async fn sell(
    sale: Arc<Sale>,
    tokens: Vec<String>,
    concurrency: usize,
    pid: u32,
) -> anyhow::Result<SaleRun> {
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = cpu_seconds(pid);
    let own_cpu_before = cpu_seconds(std::process::id());
    let machine_before = machine_cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (sale, tokens, next) = (sale.clone(), tokens.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut rng = Rng::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = tokens.get(i) else {
                    return stats;
                };
                match sale.buy(i, token, &mut rng, &mut stats).await {
                    Outcome::Bought => {
                        stats.last_order_s = started.elapsed().as_secs_f64();
                    }
                    Outcome::SoldOut => stats.sold_out += 1,
                    Outcome::Lost => stats.lost += 1,
                    Outcome::Failed => stats.failed += 1,
                }
            }
        }));
    }
    let mut stats = Stats::default();
    for task in tasks {
        stats.merge(task.await?);
    }
    let secs = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(pid) - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_before;
    let machine_after = machine_cpu_seconds();
    Ok(SaleRun {
        stats,
        secs,
        sold_out_after: None,
        server_cpu,
        own_cpu,
        machine_busy: machine_after.0 - machine_before.0,
        machine_stolen: machine_after.1 - machine_before.1,
    })
}

/// Prints the sale's figures and returns them.
fn report(
    opts: &Options,
    run: &mut SaleRun,
    final_availability: Result<[i64; 4], String>,
    rss: f64,
) -> Figures {
    // Sold out when the server shows every seat sold afterwards: then the last order answered
    // sold the last seat, and its answer is the moment of the sell-out.
    if let Ok([capacity, _, _, sold]) = final_availability
        && capacity > 0
        && sold >= capacity
    {
        run.sold_out_after = Some(run.stats.last_order_s);
    }
    let (stats, sale_secs) = (&mut run.stats, run.secs);
    let (sold, available, held) = match &final_availability {
        Ok([_, available, held, sold]) => (*sold as f64, *available, *held),
        Err(e) => {
            println!("  UNEXPECTED: the final GET availability answered {e}");
            (f64::NAN, -1, -1)
        }
    };
    let (engine, target_secs) = match opts.database_url {
        Some(_) => ("PostgreSQL", 60.0),
        None => ("embedded SQLite", 30.0),
    };
    println!(
        "  sale: {} buyers, {} client tasks, 1..={} tickets each, {sale_secs:.2} s until every buyer finished",
        opts.buyers, opts.concurrency, opts.max_quantity
    );
    println!(
        "  seats sold (server):       {sold} of {} (available {available}, held {held})",
        opts.seats
    );
    println!(
        "  orders placed (201):       {} ({} tickets in the answers)",
        stats.orders, stats.tickets
    );
    println!(
        "  holds/s:                   {:.0}   orders/s: {:.0}   (over the whole sale, {sale_secs:.2} s)",
        stats.holds as f64 / sale_secs,
        stats.orders as f64 / sale_secs
    );
    let sellout_secs = match run.sold_out_after {
        Some(secs) => {
            println!(
                "  time to sell out:          {secs:.2} s (target: all seats to {} buyers in < {target_secs:.0} s on {engine}: {})",
                opts.buyers,
                met(secs < target_secs)
            );
            // No order can complete once every seat is sold, so all of them fell in this time.
            println!(
                "  orders/s until sold out:   {:.0}",
                stats.orders as f64 / secs
            );
            secs
        }
        None => {
            println!(
                "  time to sell out:          not sold out; all buyers finished after {sale_secs:.2} s (target < {target_secs:.0} s on {engine}: MISSED)"
            );
            f64::NAN
        }
    };
    let nothing = (opts.buyers as u64).saturating_sub(stats.orders);
    println!(
        "  buyers who got nothing:    {nothing} (sold out: {}, lost a race: {}, failed: {}); seat-map fallbacks to best available: {}",
        stats.sold_out, stats.lost, stats.failed, stats.fallbacks
    );

    let mut latency: BTreeMap<Step, Vec<f64>> = std::mem::take(&mut stats.ok_ms);
    for v in latency.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    let mut holds: Vec<f64> = [Step::HoldSeats, Step::HoldBest]
        .iter()
        .filter_map(|s| latency.get(s))
        .flatten()
        .copied()
        .collect();
    holds.sort_by(f64::total_cmp);
    let p = |v: Option<&Vec<f64>>, q: f64| v.map_or(f64::NAN, |v| percentile(v, q));
    println!("  latency of 2xx answers (target p99 < 250 ms per step):");
    let line = |name: &str, v: Option<&Vec<f64>>, target: bool| {
        let p99 = p(v, 0.99);
        println!(
            "    {name:<22} p50 {:>8.2} ms   p99 {p99:>8.2} ms   ({} answers){}",
            p(v, 0.5),
            v.map_or(0, Vec::len),
            if target && v.is_some_and(|v| !v.is_empty()) {
                format!("  {}", met(p99 < 250.0))
            } else {
                String::new()
            }
        );
    };
    line("hold (all)", Some(&holds), true);
    for step in Step::ALL {
        if step != Step::Release || latency.contains_key(&step) {
            line(step.name(), latency.get(&step), step != Step::Release);
        }
    }
    stats.refused_ms.sort_by(f64::total_cmp);
    line("hold refused (409)", Some(&stats.refused_ms), false);

    println!("  answers per step:");
    for step in Step::ALL {
        let answers: Vec<String> = stats
            .counts
            .iter()
            .filter(|((s, _), _)| *s == step)
            .map(|((_, label), n)| {
                let status = label
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse::<u16>().ok());
                let flag = if label == "429 (retried)" || status.is_some_and(|s| step.expects(s)) {
                    ""
                } else {
                    " UNEXPECTED"
                };
                format!("{label} x{n}{flag}")
            })
            .collect();
        if !answers.is_empty() {
            println!("    {:<22} {}", step.name(), answers.join(", "));
        }
    }
    println!(
        "  unexpected answers:        {} (5xx, unexpected statuses, no answer)",
        stats.unexpected
    );
    for sample in &stats.samples {
        println!("    e.g. {sample}");
    }
    let cpu_per_purchase = run.server_cpu * 1000.0 / stats.orders.max(1) as f64;
    println!("  server peak RSS:           {rss:.0} MiB");
    println!(
        "  CPU per completed purchase: {cpu_per_purchase:.2} ms (target < 2 ms; pretix ~85 ms): {} \
         (server CPU {:.1} s during the sale)",
        met(cpu_per_purchase < 2.0),
        run.server_cpu
    );
    println!(
        "  loadgen CPU:               {:.1} s ({:.2} ms per completed purchase; same machine)",
        run.own_cpu,
        run.own_cpu * 1000.0 / stats.orders.max(1) as f64
    );
    // What else ran: PostgreSQL when the stores are there, otherwise little.
    let others = (run.machine_busy - run.server_cpu - run.own_cpu).max(0.0);
    let stack_per_purchase = (run.server_cpu + others) * 1000.0 / stats.orders.max(1) as f64;
    println!(
        "  other processes' CPU:      {others:.1} s (PostgreSQL when the stores are there); whole \
         stack without the load generator {stack_per_purchase:.2} ms per completed purchase"
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    println!(
        "  machine:                   {:.1} of {:.1} core-seconds busy, {:.1} s stolen by the \
         hypervisor ({:.1} %; a run with much stolen time was slowed by other guests)",
        run.machine_busy,
        cores * run.secs,
        run.machine_stolen,
        100.0 * run.machine_stolen / (cores * run.secs)
    );
    vec![
        ("seats sold", sold),
        ("orders placed", stats.orders as f64),
        ("holds/s", stats.holds as f64 / sale_secs),
        ("orders/s", stats.orders as f64 / sale_secs),
        ("time to sell out s", sellout_secs),
        ("sale s", sale_secs),
        ("buyers who got nothing", nothing as f64),
        ("hold p50 ms", percentile(&holds, 0.5)),
        ("hold p99 ms", percentile(&holds, 0.99)),
        ("intent p50 ms", p(latency.get(&Step::Intent), 0.5)),
        ("intent p99 ms", p(latency.get(&Step::Intent), 0.99)),
        ("confirm p50 ms", p(latency.get(&Step::Confirm), 0.5)),
        ("confirm p99 ms", p(latency.get(&Step::Confirm), 0.99)),
        ("purchase p50 ms", p(latency.get(&Step::Purchase), 0.5)),
        ("purchase p99 ms", p(latency.get(&Step::Purchase), 0.99)),
        ("unexpected answers", stats.unexpected as f64),
        ("server peak RSS MiB", rss),
        ("CPU per purchase ms", cpu_per_purchase),
        ("loadgen CPU s", run.own_cpu),
        ("stack CPU per purchase ms", stack_per_purchase),
        (
            "stolen CPU %",
            100.0 * run.machine_stolen / (cores * run.secs),
        ),
    ]
}

/// Stops the server (keeping its data directory) and audits the event's inventory in the
/// booking store; fails when the audit cannot run or an invariant is broken. Returns the
/// audited seats sold.
async fn audit_store(
    server: &mut Server,
    database_url: Option<&str>,
    event_id: &str,
    stats: &Stats,
) -> anyhow::Result<i64> {
    stop(server).await?;
    let url = match database_url {
        Some(url) => url.to_owned(),
        None => format!(
            "sqlite://{}",
            server.data_dir().join("booking.db").display()
        ),
    };
    let event_id = uuid::Uuid::parse_str(event_id).context("the event id is not a UUID")?;
    let audit = match evently_booking::audit(&url, event_id).await {
        Ok(audit) => audit,
        Err(e) => {
            println!("  audit FAILED: {e:#}");
            bail!("the booking store could not be audited: {e:#}");
        }
    };
    println!(
        "  audit: capacity {}, seats sold {}, tickets {}, orders {}, live holds {}",
        audit.capacity, audit.sold_seats, audit.tickets, audit.orders, audit.live_holds
    );
    println!(
        "  audit: oversold {} (must be 0), double-sold {} (must be 0), mismatched {} (must be 0), \
         sold seats = tickets: {}",
        audit.oversold,
        audit.double_sold,
        audit.mismatched,
        audit.sold_seats == audit.tickets
    );
    if i64::try_from(stats.tickets).ok() != Some(audit.tickets)
        || i64::try_from(stats.orders).ok() != Some(audit.orders)
    {
        println!(
            "  note: the answers counted {} orders and {} tickets; the store holds {} and {}",
            stats.orders, stats.tickets, audit.orders, audit.tickets
        );
    }
    let mut broken = Vec::new();
    if audit.oversold != 0 {
        broken.push(format!("{} tickets oversold", audit.oversold));
    }
    if audit.double_sold != 0 {
        broken.push(format!("{} seats sold twice", audit.double_sold));
    }
    if audit.mismatched != 0 {
        broken.push(format!("{} seats and tickets mismatched", audit.mismatched));
    }
    if audit.sold_seats != audit.tickets {
        broken.push(format!(
            "{} seats sold but {} valid tickets",
            audit.sold_seats, audit.tickets
        ));
    }
    if audit.sold_seats > audit.capacity {
        broken.push(format!(
            "{} seats sold of {}",
            audit.sold_seats, audit.capacity
        ));
    }
    if !broken.is_empty() {
        println!("  audit: INVARIANTS BROKEN");
        bail!("inventory invariants broken: {}", broken.join("; "));
    }
    println!("  zero oversell, no seat sold twice, every sold seat ticketed: met");
    Ok(audit.sold_seats)
}

async fn one_run(opts: &Options, run: usize, rows: &[RowSpec]) -> anyhow::Result<Figures> {
    println!("run {run}/{}", opts.runs);
    if let Some(url) = &opts.database_url {
        drop_schemas(url).await?;
        println!("  PostgreSQL: dropped the schemas auth, events, booking (a fresh store)");
    }
    let mut server = start_server(&server_env(opts, rows))?;
    let pid = server.child.id();
    let setup = setup(opts, &server, rows).await?;

    let sale = Arc::new(Sale {
        client: reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(opts.concurrency)
            .timeout(Duration::from_secs(30))
            .build()?,
        base: server.base.clone(),
        event_id: setup.event_id.clone(),
        seat_map: SeatMap::new(rows),
        max_quantity: opts.max_quantity,
    });
    let mut run = sell(sale.clone(), setup.tokens, opts.concurrency, pid).await?;
    // Read while the server still runs: its /proc entry goes when it exits.
    let rss = peak_rss_mib(pid);
    let final_availability = availability(&sale.client, &sale.base, &sale.event_id).await;
    let mut figures = vec![("setup s", setup.secs)];
    figures.extend(report(opts, &mut run, final_availability, rss));

    let audited = audit_store(
        &mut server,
        opts.database_url.as_deref(),
        &setup.event_id,
        &run.stats,
    )
    .await?;
    figures.push(("audited seats sold", audited as f64));
    Ok(figures)
}

/// Runs the benchmark.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    ensure!(opts.runs >= 1, "--runs must be at least 1");
    ensure!(opts.buyers >= 1, "--buyers must be at least 1");
    ensure!(opts.concurrency >= 1, "--concurrency must be at least 1");
    ensure!(
        (1..=100).contains(&opts.max_quantity),
        "--max-quantity must be between 1 and 100"
    );
    if let Some(url) = &opts.database_url {
        ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "--database-url must be a postgres:// URL (the embedded SQLite is the default)"
        );
    }
    let rows = layout(opts.seats)?;
    println!(
        "evently-bench onsale: {} seats, {} buyers, {} concurrent clients, 1..={} tickets per buyer, {} run(s), {}",
        opts.seats,
        opts.buyers,
        opts.concurrency,
        opts.max_quantity,
        opts.runs,
        if opts.database_url.is_some() {
            "every service on PostgreSQL (fresh schemas auth, events, booking each run)"
        } else {
            "embedded SQLite (fresh data directory each run)"
        }
    );
    println!(
        "setup uses LOWERED password hashing (argon2id m=8 KiB, t=1, p=1) to register buyers quickly; \
         evently's default is OWASP's argon2id (m=19456 KiB, t=2, p=1). The timed sale hashes no passwords."
    );
    let mut all: Vec<Figures> = Vec::new();
    for run in 1..=opts.runs {
        all.push(one_run(&opts, run, &rows).await?);
    }
    if all.len() > 1 {
        println!("medians over {} runs:", all.len());
        if let Some(first) = all.first() {
            for (i, (name, _)) in first.iter().enumerate() {
                let values: Vec<f64> = all
                    .iter()
                    .filter_map(|f| f.get(i).map(|(_, v)| *v))
                    .collect();
                println!("  {name:<24} {:.2}", median(values));
            }
        }
    }
    Ok(())
}
