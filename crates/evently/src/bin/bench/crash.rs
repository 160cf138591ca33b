//! `evently-bench crash`: the crash harness ([`crate::crash_harness`]) at full length: a
//! purchase workload against one `evently serve` (all services) that is SIGKILLed `--kills`
//! times at random moments (each run up to `--max-uptime-ms`) and restarted on the same data,
//! then audited. SQLite by default; `--database-url` runs it on a fresh database created on
//! that PostgreSQL server (and dropped after).
//!
//! It prints the kills, the purchases acknowledged, the retries, and every breach of the
//! invariants; it fails if there is one.

use anyhow::{Context, ensure};
use std::time::Instant;

use crate::crash_harness::{Engine, Options, run as run_harness, sibling_evently};

/// The command line.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kills (SIGKILL, then a restart).
    #[arg(long, default_value_t = 100)]
    pub kills: usize,
    /// Buyers purchasing concurrently.
    #[arg(long, default_value_t = 8)]
    pub buyers: usize,
    /// Seats of the event.
    #[arg(long, default_value_t = 20_000)]
    pub seats: u32,
    /// Longest time the server runs between two kills.
    #[arg(long, default_value_t = 1500)]
    pub max_uptime_ms: u64,
    /// Seed of the kill times.
    #[arg(long, default_value_t = 21)]
    pub seed: u64,
    /// PostgreSQL instead of embedded SQLite.
    #[arg(long, value_name = "postgres://…")]
    pub database_url: Option<String>,
}

/// Runs the harness once and prints its report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let evently = sibling_evently()
        .context("no evently binary beside evently-bench; build it (cargo build --bin evently)")?;
    let engine = match args.database_url {
        Some(url) => Engine::Postgres(url),
        None => Engine::Sqlite,
    };
    println!(
        "crash: {} kills, {} buyers, {} seats, runs of up to {} ms, seed {}, on {}",
        args.kills,
        args.buyers,
        args.seats,
        args.max_uptime_ms,
        args.seed,
        match engine {
            Engine::Sqlite => "SQLite",
            Engine::Postgres(_) => "PostgreSQL",
        }
    );
    let started = Instant::now();
    let report = run_harness(Options {
        evently,
        engine,
        kills: args.kills,
        buyers: args.buyers,
        seats: args.seats,
        max_uptime_ms: args.max_uptime_ms,
        seed: args.seed,
    })
    .await?;
    println!(
        "  took {:.0} s (set-up {:.1} s)",
        started.elapsed().as_secs_f64(),
        report.setup_secs
    );
    println!("  kills (SIGKILL + restart)      {}", report.kills);
    println!("  purchases acknowledged (201)   {}", report.acknowledged);
    println!("  purchase retries (same key)    {}", report.retries);
    println!("  of which replayed a lost 201   {}", report.replayed);
    println!("  purchases refused after retry  {}", report.refused);
    println!("  attempts cut before purchase   {}", report.abandoned);
    println!(
        "  paid intents refunded          {}",
        report.refunded_payments
    );
    println!("  seats sold (= valid tickets)   {}", report.sold);
    println!(
        "  slowest restart (kill → ready) {} ms",
        report.slowest_restart_ms
    );
    for violation in &report.violations {
        println!("  VIOLATION: {violation}");
    }
    ensure!(
        report.violations.is_empty(),
        "{} violations",
        report.violations.len()
    );
    println!("  audit clean");
    Ok(())
}
