//! `evently-bench analytics`: the live sales feed during an on-sale. `--subscribers`
//! WebSockets (default 10,000) watch the event on `GET /api/analytics/live` (as admins, 1,000
//! sockets each: the most one account may hold), from source addresses spread over 127.0.0.2… (so that no one address runs out of
//! ports), while the buyers of `evently-bench onsale` race for its seats on the same embedded
//! server; then the same sale runs again without subscribers.
//!
//! Delivery latency is measured from the answer to the purchase that made a figure true to
//! the first message that shows it: a message showing `sold = k` arrived `t - t_k` after the
//! k-th completed purchase's answer (the feed coalesces, so it skips values, and each message
//! is measured against the newest value it carries). Printed: latency p50/p99, messages per
//! second across all subscribers, the server's RSS growth from opening the sockets to the
//! end of the sale and its CPU per purchase, and the sale's figures beside those of the run
//! without subscribers. Targets: p99 < 250 ms at 10,000 subscribers, RSS growth < 200 MB,
//! the sale within 10 % of the run without subscribers. Run it with `ulimit -n` above the
//! subscriber count (both processes hold one descriptor per socket).

use anyhow::{Context, ensure};
use futures_util::StreamExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::layout::layout;
use super::report::peak_rss_mib;
use super::sale::{Sale, sell};
use super::seat_map::SeatMap;
use super::setup::{admin_create, availability, login, setup};
use super::{Options, server_env};
use crate::server::{percentile, start_server};

/// Live connections per watching account.
const PER_WATCHER: usize = 1_000;

/// The one figure a subscriber reads from each message.
#[derive(serde::Deserialize)]
struct Sold {
    sold: i64,
}

/// What one subscriber saw: when each message came and the seats sold it showed.
type Seen = Vec<(Instant, i64)>;

/// Resident memory of `pid` now, in MiB (`VmRSS`).
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Opens subscriber `i`'s socket from its own loopback address and records what it sees
/// until `stop`.
async fn subscribe(
    i: usize,
    port: u16,
    event_id: String,
    token: String,
    messages: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Seen> {
    // 127.0.0.2 … : 5,000 sockets per source address.
    let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i / 5_000).unwrap_or(200));
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let stream = socket
        .connect((std::net::Ipv4Addr::LOCALHOST, port).into())
        .await
        .context("connecting")?;
    let mut request = format!("ws://127.0.0.1:{port}/api/analytics/live?eventIds={event_id}")
        .into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("the WebSocket handshake")?;
    let mut seen = Vec::new();
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            next = ws.next() => next,
        };
        match next {
            Some(Ok(Message::Text(text))) => {
                let at = Instant::now();
                messages.fetch_add(1, Ordering::Relaxed);
                // Only `sold` is read: the subscribers share the machine with the server,
                // and a whole JSON tree per message would be the bench's cost, not evently's.
                if let Ok(figures) = serde_json::from_str::<Sold>(text.as_str()) {
                    seen.push((at, figures.sold));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => anyhow::bail!("subscriber {i}: {e}"),
            None => break,
        }
    }
    Ok(seen)
}

/// One sale with `subscribers` sockets open; returns (time to sell out or the sale's
/// length, server CPU per purchase, latency p99 in ms, messages, RSS growth MiB, sale
/// seconds, latency p99 of the messages showing figures before the last purchase).
async fn one(opts: &Options, subscribers: usize) -> anyhow::Result<[f64; 7]> {
    let rows = layout(opts.seats)?;
    let mut env = server_env(opts, &rows);
    // A user may hold at most `PER_WATCHER` live connections (the configuration's upper
    // bound): the subscribers are admins, `PER_WATCHER` sockets each.
    env.push((
        "EVENTLY_ANALYTICS__LIVE_MAX_CONNECTIONS_PER_USER",
        PER_WATCHER.to_string(),
    ));
    let server = start_server(&env)?;
    let pid = server.child.id();
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("the server's port")?;
    let prepared = setup(opts, &server, &rows).await?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(opts.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut watchers = Vec::new();
    for w in 0..subscribers.div_ceil(PER_WATCHER) {
        let email = format!("watcher{w}@onsale.example.com");
        admin_create(&server, None, &email).await?;
        watchers.push(login(&client, &server.base, &email).await?);
    }

    let rss_before = rss_mib(pid);
    let messages = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::with_capacity(subscribers);
    let opened = Instant::now();
    for i in 0..subscribers {
        tasks.push(tokio::spawn(subscribe(
            i,
            port,
            prepared.event_id.clone(),
            watchers[i / PER_WATCHER].clone(),
            messages.clone(),
            stop.clone(),
        )));
        if i % 500 == 499 {
            // Let the server keep up with the handshakes.
            tokio::task::yield_now().await;
        }
    }
    // Every socket's first message (the figures now) means every socket is open.
    let deadline = Instant::now() + Duration::from_secs(60);
    while messages.load(Ordering::Relaxed) < subscribers as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  {subscribers} subscribers open in {:.1} s ({} first messages); server RSS {rss_before:.0} MiB before, {:.0} MiB with them",
        opened.elapsed().as_secs_f64(),
        messages.load(Ordering::Relaxed),
        rss_mib(pid)
    );
    let first_messages = messages.load(Ordering::Relaxed);

    let sale = Arc::new(Sale {
        client,
        bases: vec![server.base.clone()],
        event_id: prepared.event_id.clone(),
        seat_map: SeatMap::new(&rows),
        order_times: Some(std::sync::Mutex::new(Vec::new())),
        max_quantity: 1,
        checkout: opts.checkout,
    });
    let run = sell(
        sale.clone(),
        prepared.tokens,
        opts.concurrency,
        &[("evently", pid)],
    )
    .await?;
    // The last figures take up to a second (the feed's pace) to arrive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let peak = peak_rss_mib(pid);
    stop.cancel();
    let mut seen = Vec::new();
    let mut failed = 0;
    for task in tasks {
        match task.await? {
            Ok(s) => seen.push(s),
            Err(_) => failed += 1,
        }
    }
    let sold = availability(&sale.client, &sale.bases[0], &sale.event_id)
        .await
        .map_or(-1, |a| a[3]);
    let mut times = sale
        .order_times
        .as_ref()
        .and_then(|t| t.lock().ok().map(|t| t.clone()))
        .unwrap_or_default();
    times.sort();
    let mut latencies: Vec<f64> = seen
        .iter()
        .flatten()
        .filter_map(|(at, sold)| {
            let k = usize::try_from(*sold).ok()?.checked_sub(1)?;
            let committed = times.get(k)?;
            Some(at.saturating_duration_since(*committed).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    // The messages showing the sale's last figure, apart: at most one per second goes to a
    // socket, so the last purchase waits for its socket's next second unless the socket was
    // quiet for one; every other message shows figures that were current when it left.
    let last = i64::try_from(times.len()).unwrap_or(i64::MAX);
    let (mut last_figure, mut running): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for (at, sold) in seen.iter().flatten() {
        let Some(committed) = usize::try_from(*sold)
            .ok()
            .and_then(|k| k.checked_sub(1))
            .and_then(|k| times.get(k))
        else {
            continue;
        };
        let ms = at.saturating_duration_since(*committed).as_secs_f64() * 1000.0;
        if *sold == last {
            last_figure.push(ms);
        } else {
            running.push(ms);
        }
    }
    last_figure.sort_by(f64::total_cmp);
    running.sort_by(f64::total_cmp);
    let sale_messages = messages.load(Ordering::Relaxed) - first_messages;
    let orders = times.len().max(1) as f64;
    let cpu = run.server_cpu * 1000.0 / orders;
    let secs = run.stats.last_order_s;
    println!(
        "  sale: {} orders, seats sold {sold}, last order after {secs:.2} s, server CPU {cpu:.2} ms per purchase, {} subscriber(s) failed",
        times.len(),
        failed
    );
    if subscribers > 0 {
        println!(
            "  delivery purchase → subscriber: p50 {:.1} ms, p99 {:.1} ms over {} measured messages; {:.0} messages/s during the sale",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.len(),
            sale_messages as f64 / run.secs
        );
        println!(
            "    of which showing figures before the last purchase: p50 {:.1} ms, p99 {:.1} ms over {}; showing the last purchase: p50 {:.1} ms, p99 {:.1} ms over {}",
            percentile(&running, 0.5),
            percentile(&running, 0.99),
            running.len(),
            percentile(&last_figure, 0.5),
            percentile(&last_figure, 0.99),
            last_figure.len()
        );
        println!(
            "  server RSS: {rss_before:.0} MiB before the sockets, peak {peak:.0} MiB: growth {:.0} MiB",
            peak - rss_before
        );
    }
    Ok([
        secs,
        cpu,
        percentile(&latencies, 0.99),
        sale_messages as f64,
        peak - rss_before,
        run.secs,
        percentile(&running, 0.99),
    ])
}

/// Runs the benchmark: the sale with subscribers, then without.
pub async fn run(opts: Options, subscribers: usize) -> anyhow::Result<()> {
    ensure!(
        opts.buyers >= 1 && opts.seats >= 1,
        "--seats and --buyers must be positive"
    );
    println!(
        "evently-bench analytics: {subscribers} live subscribers watching an on-sale of {} seats to {} buyers (embedded SQLite, one process)",
        opts.seats, opts.buyers
    );
    println!("with subscribers:");
    let with = one(&opts, subscribers).await?;
    println!("without subscribers:");
    let without = one(&opts, 0).await?;
    let slower = with[0] / without[0];
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: delivery p99 {:.1} ms < 250 ms: {} (messages before the last purchase: p99 {:.1} ms); RSS growth {:.0} MiB (without subscribers {:.0} MiB) < 200 MiB: {}; last order {:.2} s against {:.2} s without subscribers (×{slower:.2}; within 10 %: {}); server CPU per purchase {:.2} against {:.2} ms (×{:.2})",
        with[2],
        met(with[2] < 250.0),
        with[6],
        with[4],
        without[4],
        met(with[4] < 200.0),
        with[0],
        without[0],
        met(slower <= 1.10),
        with[1],
        without[1],
        with[1] / without[1],
    );
    Ok(())
}
