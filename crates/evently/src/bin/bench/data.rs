//! `evently-bench data`: exports of an event's orders as CSV and XLSX through a real
//! `evently serve` (rows per second, and the growth of the server's resident memory while
//! it streams), and an import of a 10,000-row CSV (rows per second).
//!
//! The orders are seeded straight into booking's SQLite tables before the server reads
//! them (placing a million orders through the purchase path would bench that path, which
//! `onsale` does), and their buyers into auth's; the export then reads them through
//! booking's store by keyset and looks up each page's buyers in auth, as in production.

use anyhow::{Context, bail};
use evently_core::config::JwtConfig;
use evently_core::identity::{JwtKeys, Role};
use evently_core::ids::UserId;
use secrecy::SecretString;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::server::{BENCH_JWT_SECRET, start_server};

/// The resident memory of process `pid` in bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn at(offset: time::Duration) -> String {
    (OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Buyers the seeded orders are spread over, round robin: every page of an export names
/// as many distinct buyers as it has orders, the most its lookup in auth can take.
const BUYERS: u64 = 10_000;

/// Inserts `buyers` users into auth's database at `path`; returns their ids.
async fn seed_buyers(path: &std::path::Path, buyers: u64) -> anyhow::Result<Vec<Uuid>> {
    let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await?;
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut ids = Vec::new();
    let mut tx = conn.begin().await?;
    for n in 0..buyers {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, email, name, role, password_hash, created_at, updated_at) \
             VALUES (?, ?, ?, 'user', 'not-a-hash', ?, ?)",
        )
        .bind(id)
        .bind(format!("buyer{n}@bench.example"))
        .bind(format!("Buyer {n}"))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok(ids)
}

/// Inserts `orders` one-ticket orders of `event` by `buyers` (round robin) into booking's
/// database at `path`.
async fn seed_orders(
    path: &std::path::Path,
    event: Uuid,
    orders: u64,
    buyers: &[Uuid],
) -> anyhow::Result<()> {
    let mut conn = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await?;
    let now = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let mut tx = conn.begin().await?;
    for (n, buyer) in (0..orders).zip(buyers.iter().cycle()) {
        let order = Uuid::now_v7();
        let seat = format!("GA-{n}");
        sqlx::query(
            "INSERT INTO orders (id, event_id, user_id, hold_id, payment_intent_id, seat_ids, \
             quantity, amount, currency, status, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, 1, 3000, 'EUR', 'confirmed', ?)",
        )
        .bind(order)
        .bind(event)
        .bind(buyer)
        .bind(Uuid::now_v7())
        .bind(Uuid::now_v7())
        .bind(format!("[\"{seat}\"]"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tickets (id, order_id, event_id, seat_id, code, status) \
             VALUES (?, ?, ?, ?, ?, 'valid')",
        )
        .bind(Uuid::now_v7())
        .bind(order)
        .bind(event)
        .bind(&seat)
        .bind(format!("{}", Uuid::new_v4().simple()))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Downloads `url`, counting lines, while sampling the server's memory; returns
/// (seconds, bytes, lines, peak RSS growth in bytes).
async fn download(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    pid: u32,
) -> anyhow::Result<(f64, u64, u64, u64)> {
    let before = rss(pid);
    let started = Instant::now();
    let mut response = client.get(url).bearer_auth(token).send().await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    let (mut bytes, mut lines, mut peak) = (0u64, 0u64, before);
    let mut last_sample = Instant::now();
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if last_sample.elapsed() >= Duration::from_millis(20) {
            peak = peak.max(rss(pid));
            last_sample = Instant::now();
        }
    }
    peak = peak.max(rss(pid));
    Ok((
        started.elapsed().as_secs_f64(),
        bytes,
        lines,
        peak.saturating_sub(before),
    ))
}

/// Runs the benchmark: `orders` order rows exported as CSV and XLSX, `rows` imported.
///
/// # Errors
/// When the server cannot be started or a request fails.
pub async fn run(orders: u64, rows: u64) -> anyhow::Result<()> {
    let server = start_server(&[("EVENTLY_SERVER__REQUEST_TIMEOUT_SECONDS", "600".into())])?;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    let keys = JwtKeys::new(&JwtConfig::default(), &SecretString::from(BENCH_JWT_SECRET));
    let organizer = keys
        .issue_access(
            UserId(Uuid::now_v7()),
            Role::Organizer,
            OffsetDateTime::now_utc(),
        )?
        .token;

    let created: serde_json::Value = client
        .post(format!("{}/api/events", server.base))
        .bearer_auth(&organizer)
        .json(&serde_json::json!({
            "eventName": "Export bench", "eventDate": at(time::Duration::days(30)),
            "saleStartTime": at(time::Duration::seconds(-5)), "status": "ON_SALE",
            "venueName": "Stadium", "totalSeats": 1000, "basePrice": 3000, "currency": "EUR",
        }))
        .send()
        .await?
        .json()
        .await?;
    let event: Uuid = created["eventId"]
        .as_str()
        .context("no event created")?
        .parse()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{}/api/events/{event}/availability", server.base))
        .send()
        .await?
        .status()
        != 200
    {
        if Instant::now() > deadline {
            bail!("booking never saw the event");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seeding = Instant::now();
    let buyers = seed_buyers(
        &server.data_dir().join("auth.db"),
        BUYERS.min(orders.max(1)),
    )
    .await?;
    seed_orders(
        &server.data_dir().join("booking.db"),
        event,
        orders,
        &buyers,
    )
    .await?;
    println!(
        "seeded {orders} orders of {} buyers in {:.1} s",
        buyers.len(),
        seeding.elapsed().as_secs_f64()
    );

    println!("server RSS before exports: {:.1} MB", rss(pid) as f64 / 1e6);
    for format in ["csv", "xlsx"] {
        let url = format!(
            "{}/api/data/export/orders?eventId={event}&format={format}",
            server.base
        );
        let (seconds, bytes, lines, growth) = download(&client, &url, &organizer, pid).await?;
        let rows = if format == "csv" {
            lines.saturating_sub(1)
        } else {
            orders
        };
        println!(
            "export {format}: {rows} rows, {:.1} MB in {seconds:.2} s = {:.0} rows/s, \
             peak server RSS growth {:.1} MB",
            bytes as f64 / 1e6,
            rows as f64 / seconds,
            growth as f64 / 1e6
        );
    }

    let mut csv =
        "eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime\n".to_owned();
    for i in 0..rows {
        csv.push_str(&format!(
            "Imported {i},2031-0{}-01T20:00:00Z,Hall {i},100,2500,EUR,2030-12-01T09:00:00Z\n",
            1 + i % 9
        ));
    }
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("bench.csv"),
    );
    let started = Instant::now();
    let response = client
        .post(format!("{}/api/data/import/events", server.base))
        .bearer_auth(&organizer)
        .multipart(form)
        .send()
        .await?;
    let status = response.status();
    let report: serde_json::Value = response.json().await?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.is_success() {
        bail!("import failed: {status} {report}");
    }
    println!(
        "import csv: {} rows ({} created) in {seconds:.2} s = {:.0} rows/s",
        report["rows"],
        report["created"],
        rows as f64 / seconds
    );
    Ok(())
}
