//! `evently-bench`: benchmarks that print figures (targets are checked here, never in tests).
//!
//! `evently-bench auth` measures, in one run:
//! - the raw Argon2id hash rate of this machine (one hashing thread per core, configured
//!   default cost), the baseline;
//! - sign-ins per second through HTTP against a real `evently serve` process (the sibling
//!   binary in the same target directory) while many clients log in at once;
//! - the latency of `GET /health/live` sampled during that login storm.
//!
//! Run it on a release build: `cargo run --release --bin evently-bench -- auth`.

use anyhow::{Context, bail};
use evently_core::config::PasswordConfig;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_server(extra_env: &[(&str, String)]) -> anyhow::Result<Server> {
    let exe = std::env::current_exe()?;
    let binary = exe
        .parent()
        .context("bench binary has no directory")?
        .join("evently");
    if !binary.exists() {
        bail!(
            "{} not found; build it first (cargo build --release --bin evently)",
            binary.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("evently-bench-{}", uuid_like()));
    let mut command = Command::new(&binary);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("EVENTLY_LOG", "warn")
        .env("EVENTLY_AUTH__THROTTLE__IP_MAX_FAILURES", "1000000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().context("starting evently serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context("evently did not print its address")?
        .to_owned();
    Ok(Server { child, base, dir })
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

fn cpu_seconds(pid: u32) -> f64 {
    // utime + stime from /proc/<pid>/stat, in clock ticks (100 per second on Linux).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn raw_hash_rate(duration: Duration) -> anyhow::Result<(f64, usize)> {
    let params = evently_auth::hashing::PasswordHasher::params(&PasswordConfig::default())?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let params = params.clone();
            let count = count.clone();
            std::thread::spawn(move || {
                while start.elapsed() < duration {
                    if evently_auth::hashing::hash_blocking(&params, b"benchmark password 1")
                        .is_ok()
                    {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok((count.load(Ordering::Relaxed) as f64 / elapsed, threads))
}

async fn auth_bench(seconds: u64, clients: usize) -> anyhow::Result<()> {
    let duration = Duration::from_secs(seconds);
    println!("evently-bench auth: {seconds} s per phase, {clients} concurrent sign-in clients");

    let (raw_rate, threads) =
        tokio::task::spawn_blocking(move || raw_hash_rate(duration)).await??;
    println!("raw argon2id (m=19456 KiB, t=2, p=1) on {threads} threads: {raw_rate:.1} hashes/s");

    let server = start_server(&[])?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let users: Vec<String> = (0..clients)
        .map(|i| format!("bench-{i}@example.com"))
        .collect();
    for email in &users {
        let r = client
            .post(format!("{}/api/auth/register", server.base))
            .json(&json!({"email": email, "password": "benchmark password 1", "name": "Bench"}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("register failed: {}", r.status());
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_seconds(server.child.id());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for email in users.clone() {
        let (client, base, stop, ok, failed) = (
            client.clone(),
            server.base.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(format!("{base}/api/auth/login"))
                    .json(&json!({"email": email, "password": "benchmark password 1"}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Probe liveness on its own connection while the storm saturates the hashing pool.
    let probe = {
        let base = server.base.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            tokio::time::sleep(Duration::from_millis(500)).await;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if let Ok(r) = client.get(format!("{base}/health/live")).send().await {
                    let _ = r.bytes().await;
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            latencies
        })
    };
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let mut latencies = probe.await?;
    let cpu_used = cpu_seconds(server.child.id()) - cpu_before;
    latencies.sort_by(f64::total_cmp);

    let logins = ok.load(Ordering::Relaxed) as f64 / elapsed;
    let ratio = logins / raw_rate;
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "logins through HTTP: {logins:.1}/s ({} ok, {} failed), server CPU {:.1} ms per login",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        cpu_used * 1000.0 / ok.load(Ordering::Relaxed).max(1) as f64
    );
    println!(
        "/health/live during the storm: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms ({} samples)",
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );
    println!(
        "ratio logins/raw hashes: {ratio:.3} (target >= 0.90: {}); health p99 target < 20 ms: {}",
        if ratio >= 0.90 { "met" } else { "MISSED" },
        if p99 < 20.0 { "met" } else { "MISSED" }
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match args.first().map(String::as_str) {
        Some("auth") => {
            auth_bench(arg("--seconds", 10), usize::try_from(arg("--clients", 32))?).await
        }
        _ => {
            eprintln!(
                "usage: evently-bench auth [--seconds N] [--clients N]\n\
                 run on a release build: cargo run --release --bin evently-bench -- auth"
            );
            std::process::exit(2);
        }
    }
}
