//! The untimed setup of a run: the admin (made with `evently admin create`), the organizer,
//! the venue and the event ON_SALE, the buyers registered and signed in, and booking's
//! inventory built; and the availability reads the run makes before and after the sale.
//!
//! Invariants: the setup uses the lowest password-hashing cost `auth.password` accepts, set
//! through the documented `EVENTLY_AUTH__PASSWORD__*` settings on the server and on
//! `evently admin create` alike, and says so when the run starts; one failed registration or
//! sign-in ends the setup; the sale starts only once availability shows the event's full
//! capacity.

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Options;
use super::layout::{RowSpec, layout_json};
use crate::server::{BENCH_JWT_SECRET, Server};

/// Concurrent registrations during the setup: enough to keep the server's store busy.
pub(super) const SETUP_TASKS: usize = 64;
/// The buyers' password (any password the policy accepts).
const PASSWORD: &str = "benchmark password 1";
/// The lowest Argon2id cost `auth.password` accepts (memory 8 KiB per lane, one pass).
pub(super) const SETUP_HASHING: [(&str, &str); 3] = [
    ("EVENTLY_AUTH__PASSWORD__MEMORY_KIB", "8"),
    ("EVENTLY_AUTH__PASSWORD__ITERATIONS", "1"),
    ("EVENTLY_AUTH__PASSWORD__PARALLELISM", "1"),
];

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
pub(super) async fn admin_create(
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
pub(super) async fn drop_schemas(url: &str) -> anyhow::Result<()> {
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

pub(super) async fn login(
    client: &reqwest::Client,
    base: &str,
    email: &str,
) -> anyhow::Result<String> {
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
pub(super) async fn availability(
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

/// What the setup made.
pub(super) struct Setup {
    pub(super) event_id: String,
    pub(super) tokens: Vec<String>,
    pub(super) secs: f64,
}

/// Organizer, venue, event and buyers; then waits for booking's inventory.
pub(super) async fn setup(
    opts: &Options,
    server: &Server,
    rows: &[RowSpec],
) -> anyhow::Result<Setup> {
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
