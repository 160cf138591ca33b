//! `evently-bench auth`: the raw Argon2id hash rate of this machine (one hashing thread per
//! core, the default cost) as the baseline; sign-ins per second through HTTP against a real
//! `evently serve` process while many clients log in at once; the latency of
//! `GET /health/live` sampled during that login storm.

use anyhow::bail;
use evently_core::config::PasswordConfig;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::server::{cpu_seconds, percentile, start_server};

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

pub async fn run(seconds: u64, clients: usize) -> anyhow::Result<()> {
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
