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
//!   answer, as a live seat map would be: it lags the store by the requests in flight. Then hold →
//!   payment intent → confirm → purchase, or with `--checkout` hold → checkout.
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
//!
//! Layout: this file holds the options, the server's settings and the order of a run;
//! `layout` generates the venue's rows; `setup` makes the admin, organizer, event and buyers;
//! `seat_map` is the seat map the client tasks share; `sale` is the timed sale (the client
//! tasks and each buyer's purchase); `stats` counts what the client tasks saw; `report`
//! prints a run's figures; `audit` stops the server and audits the booking store.

mod audit;
mod layout;
pub mod live;
mod report;
mod sale;
mod seat_map;
mod setup;
mod split;
mod stats;

use anyhow::ensure;
use std::sync::Arc;
use std::time::Duration;

use crate::server::start_server;
use audit::audit_store;
use layout::{RowSpec, layout, layout_json};
use report::{Figures, peak_rss_mib, report};
use sale::{Sale, sell};
use seat_map::SeatMap;
use setup::{SETUP_HASHING, SETUP_TASKS, availability, drop_schemas, setup};

/// The command-line options.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Runs, each on a fresh server.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Seats of the venue.
    #[arg(long, default_value_t = 50_000)]
    pub seats: u32,
    /// Buyers in the rush.
    #[arg(long, default_value_t = 200_000)]
    pub buyers: usize,
    /// Concurrent client tasks during the sale.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Most tickets one buyer wants.
    #[arg(long, default_value_t = 1)]
    pub max_quantity: u32,
    /// PostgreSQL for every service instead of the embedded SQLite files (its schemas
    /// `auth`, `events` and `booking` are dropped first).
    #[arg(long, value_name = "postgres://…")]
    pub database_url: Option<String>,
    /// Every service in its own process (see [`split`]); needs `--database-url`.
    #[arg(long)]
    pub split: bool,
    /// NATS for `--split`.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Redis for `--split`'s gateways.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Buyers pay and buy in one checkout request instead of intent, confirm and purchase.
    #[arg(long)]
    pub checkout: bool,
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

async fn one_run(opts: &Options, run: usize, rows: &[RowSpec]) -> anyhow::Result<Figures> {
    println!("run {run}/{}", opts.runs);
    if let Some(url) = &opts.database_url {
        drop_schemas(url).await?;
        println!("  PostgreSQL: dropped the schemas auth, events, booking (a fresh store)");
    }
    let mut single = None;
    let mut topology = None;
    if opts.split {
        let tag = format!("{}_{run}", std::process::id());
        let started = split::Topology::start(
            &server_env(opts, rows),
            &opts.nats_url,
            &opts.redis_url,
            &tag,
        )?;
        println!(
            "  split: {} processes ({})",
            started.processes.len(),
            started
                .processes
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
        topology = Some(started);
    } else {
        single = Some(start_server(&server_env(opts, rows))?);
    }
    let (entry, bases, pids) = match (&single, &topology) {
        (Some(server), _) => (
            server,
            vec![server.base.clone()],
            vec![("evently", server.child.id())],
        ),
        (None, Some(t)) => (t.entry(), t.gateways(), t.pids()),
        (None, None) => anyhow::bail!("no server started"),
    };
    let setup = setup(opts, entry, rows).await?;

    let sale = Arc::new(Sale {
        client: reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(opts.concurrency)
            .timeout(Duration::from_secs(30))
            .build()?,
        bases,
        event_id: setup.event_id.clone(),
        seat_map: SeatMap::new(rows),
        order_times: None,
        max_quantity: opts.max_quantity,
        checkout: opts.checkout,
    });
    // The embedded server's booking write-ahead log, sampled through the sale.
    let wal = single
        .as_ref()
        .filter(|_| opts.database_url.is_none())
        .map(|server| server.data_dir().join("booking.db-wal"));
    let wal_peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampling = wal.map(|wal| {
        let peak = wal_peak.clone();
        tokio::spawn(async move {
            loop {
                let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
                peak.fetch_max(size, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let mut run = sell(sale.clone(), setup.tokens, opts.concurrency, &pids).await?;
    if let Some(sampling) = sampling {
        sampling.abort();
    }
    // Read while the servers still run: their /proc entries go when they exit.
    let rss = pids.iter().map(|(_, pid)| peak_rss_mib(*pid)).sum();
    let final_availability = availability(&sale.client, &sale.bases[0], &sale.event_id).await;
    let mut figures = vec![("setup s", setup.secs)];
    figures.extend(report(opts, &mut run, final_availability, rss));
    let early = early_answers(&sale.client, &sale.bases).await;
    println!(
        "  refused before authentication: {early:.0} holds (fully sold event; embedded SQLite only)"
    );
    figures.push(("holds refused before authentication", early));
    if single.is_some() && opts.database_url.is_none() {
        #[expect(clippy::cast_precision_loss, reason = "a figure")]
        let wal_mib = wal_peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1_048_576.0;
        println!(
            "  booking WAL peak:          {wal_mib:.0} MiB (target ≤ 64 MiB): {}",
            report::met(wal_mib <= 64.0)
        );
        figures.push(("booking WAL peak MiB", wal_mib));
    }

    let servers: Vec<&mut crate::server::Server> = match (&mut single, &mut topology) {
        (Some(server), _) => vec![server],
        (None, Some(t)) => t.processes.iter_mut().map(|(_, s)| s).collect(),
        (None, None) => Vec::new(),
    };
    let audited = audit_store(
        servers,
        opts.database_url.as_deref(),
        &setup.event_id,
        &run.stats,
    )
    .await?;
    figures.push(("audited seats sold", audited as f64));
    Ok(figures)
}

/// Runs the benchmark.
/// The gateways' count of requests answered before authentication
/// (`evently_gateway_early_answers_total` in their `/metrics`); 0 where none was.
async fn early_answers(client: &reqwest::Client, bases: &[String]) -> f64 {
    let mut total = 0.0;
    for base in bases {
        let Ok(response) = client.get(format!("{base}/metrics")).send().await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        total += text
            .lines()
            .filter(|l| l.starts_with("evently_gateway_early_answers_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total
}

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
    ensure!(
        !opts.split || opts.database_url.is_some(),
        "--split runs every service in its own process: it needs --database-url postgres://…"
    );
    let rows = layout(opts.seats)?;
    println!(
        "evently-bench onsale: {} seats, {} buyers, {} concurrent clients, 1..={} tickets per buyer, {} run(s), {}, {}",
        opts.seats,
        opts.buyers,
        opts.concurrency,
        opts.max_quantity,
        opts.runs,
        if opts.checkout {
            "hold → checkout (one request pays and buys)"
        } else {
            "hold → intent → confirm → purchase"
        },
        if opts.split {
            "split: each service its own process, two booking and two gateways, on PostgreSQL, NATS and Redis"
        } else if opts.database_url.is_some() {
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
