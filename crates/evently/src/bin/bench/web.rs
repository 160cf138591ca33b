//! `evently-bench web`: the server time of the web client's event list over many events.
//!
//! `--events` generated events (the search bench's data, 10,000 by default) are written through
//! the events store; a real `evently serve` indexes them. Then `--requests` sequential `GET /`
//! (the list's first page, every event matching) and as many `GET /?q=<typo'd word>` are timed
//! at the client on loopback: the page handler calls search in process and renders 20 hits. The
//! very first request (cold caches) is reported on its own, and the search calls the page
//! makes are timed straight from the API too, so the page's own cost shows. Target: ≤ 200 ms.

use secrecy::SecretString;
use std::time::{Duration, Instant};

use crate::server::{percentile, start_server};

/// Runs the benchmark and prints its figures.
///
/// # Errors
/// When seeding, starting the server or a request fails.
pub async fn run(events: usize, requests: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "evently-bench-web-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}", dir.join("events.db").display());
    let mut generated = crate::search::generate(events);
    crate::search::seed(&SecretString::from(db.clone()), &mut generated).await?;
    let server = start_server(&[("EVENTLY_DATABASE__EVENTS_URL", db)])?;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let total = events as u64;
    let started = Instant::now();
    loop {
        if let Ok(r) = client
            .get(format!("{base}/api/search/events?size=1"))
            .send()
            .await
            && r.status() == 200
        {
            let v: serde_json::Value = r.json().await?;
            if v["totalHits"].as_u64() == Some(total) {
                break;
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the index never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("web: {events} events indexed");
    let time = |path: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let t = Instant::now();
            let r = client.get(format!("{base}{path}")).send().await?;
            anyhow::ensure!(r.status() == 200, "{path} answered {}", r.status());
            let body = r.bytes().await?;
            Ok::<_, anyhow::Error>((t.elapsed().as_secs_f64() * 1000.0, body.len()))
        }
    };
    let (first, bytes) = time("/".to_owned()).await?;
    println!("  first GET / (cold): {first:.1} ms, {bytes} bytes of HTML");
    let words = ["metalica", "philharmnic", "coldpaly", "radiohed", "adle"];
    // The same searches straight from the API: the difference is the page's own cost.
    let runs = [
        ("GET /", "/?", false),
        (
            "GET /api/search/events (the call it makes)",
            "/api/search/events?page=0&size=20&",
            false,
        ),
        ("GET /?q=<typo>", "/?", true),
        (
            "GET /api/search/events?q=<typo>",
            "/api/search/events?page=0&size=20&",
            true,
        ),
    ];
    for (label, prefix, typo) in runs {
        let mut ms = Vec::with_capacity(requests);
        for i in 0..requests {
            let path = if typo {
                format!("{prefix}q={}", words[i % words.len()])
            } else {
                prefix.to_owned()
            };
            ms.push(time(path).await?.0);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "  {label}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {requests} requests",
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(f64::NAN)
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
