//! The timed sale: `--concurrency` client tasks take buyers from one queue, and each buyer
//! goes hold → payment intent → confirm → purchase through the HTTP API, or with
//! `--checkout` hold → checkout (the same payment and purchase in one request).
//!
//! Invariants: even-numbered buyers pick seats on the shared seat map (falling back once to
//! best available), odd-numbered buyers ask for best available; a request answered 429 is
//! retried after `Retry-After` (at most a second, at most five times); a buyer whose checkout
//! fails after the hold releases it, as a client abandoning the checkout would; the seat map
//! learns from every hold and conflict answer.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::seat_map::{Rng, SeatMap};
use super::stats::{Stats, Step};
use crate::server::{cpu_seconds, machine_cpu_seconds, named_cpu_seconds};

/// Retries of one request answered 429.
const MAX_429_RETRIES: u32 = 5;

/// The last segment of a problem's `type` URI.
fn slug(body: &Value) -> Option<&str> {
    body["type"].as_str().and_then(|t| t.rsplit('/').next())
}

struct Reply {
    status: u16,
    body: Value,
}

/// What the sale's client tasks share.
pub(super) struct Sale {
    pub(super) client: reqwest::Client,
    /// Where buyers send their requests: buyer `i` to `bases[i % len]` (one address, or each
    /// gateway of a split deployment).
    pub(super) bases: Vec<String>,
    pub(super) event_id: String,
    pub(super) seat_map: SeatMap,
    /// When each completed purchase's answer arrived, when the caller wants them (the live
    /// feed's benchmark measures delivery from them).
    pub(super) order_times: Option<std::sync::Mutex<Vec<Instant>>>,
    pub(super) max_quantity: u32,
    /// Pay and buy in one request (`POST /api/orders/checkout`) instead of three.
    pub(super) checkout: bool,
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
        // Pairs of buyers per address, so that both kinds of buyer reach every address.
        let base = &self.bases[(index / 2) % self.bases.len()];
        let holds = format!("{base}/api/orders/holds");
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
        let outcome = self
            .pay_and_purchase(base, token, hold_id, &hold, stats)
            .await;
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
        base: &str,
        token: &str,
        hold_id: &str,
        hold: &Value,
        stats: &mut Stats,
    ) -> Outcome {
        if self.checkout {
            return self.check_out(base, token, hold_id, hold, stats).await;
        }
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
        self.order(
            Step::Purchase,
            &format!("{base}/api/orders/purchase"),
            token,
            &body,
            stats,
        )
        .await
    }

    /// Pays for and buys the hold in one request.
    async fn check_out(
        &self,
        base: &str,
        token: &str,
        hold_id: &str,
        hold: &Value,
        stats: &mut Stats,
    ) -> Outcome {
        let body = json!({
            "eventId": self.event_id,
            "holdId": hold_id,
            "seatIds": hold["seatIds"],
        });
        self.order(
            Step::Checkout,
            &format!("{base}/api/orders/checkout"),
            token,
            &body,
            stats,
        )
        .await
    }

    /// The request of `step` that places the order, under a new `Idempotency-Key`.
    async fn order(
        &self,
        step: Step,
        url: &str,
        token: &str,
        body: &Value,
        stats: &mut Stats,
    ) -> Outcome {
        let key = uuid::Uuid::new_v4().to_string();
        let Some(order) = self
            .send(step, stats, || {
                self.client
                    .post(url)
                    .bearer_auth(token)
                    .header("Idempotency-Key", &key)
                    .json(body)
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

/// What the sale measured.
pub(super) struct SaleRun {
    pub(super) stats: Stats,
    pub(super) secs: f64,
    pub(super) sold_out_after: Option<f64>,
    pub(super) server_cpu: f64,
    /// Each server process's share of `server_cpu`, by name.
    pub(super) per_process: Vec<(&'static str, f64)>,
    /// CPU seconds of the database, bus and cache servers during the sale, by program.
    pub(super) servers: Vec<(&'static str, f64)>,
    pub(super) own_cpu: f64,
    /// The machine's busy and stolen CPU seconds during the sale (all cores).
    pub(super) machine_busy: f64,
    pub(super) machine_stolen: f64,
}

/// The programs whose CPU time the sale reports beside evently's own.
const SERVERS: &[&str] = &["postgres", "nats-server", "redis-server"];

/// The timed sale: `concurrency` tasks take buyers from the queue until it is empty.
pub(super) async fn sell(
    sale: Arc<Sale>,
    tokens: Vec<String>,
    concurrency: usize,
    pids: &[(&'static str, u32)],
) -> anyhow::Result<SaleRun> {
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let servers_before = named_cpu_seconds(SERVERS);
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
                        if let Some(times) = &sale.order_times
                            && let Ok(mut times) = times.lock()
                        {
                            times.push(Instant::now());
                        }
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
    let per_process: Vec<(&'static str, f64)> = pids
        .iter()
        .zip(cpu_before)
        .map(|((name, pid), before)| (*name, cpu_seconds(*pid) - before))
        .collect();
    let server_cpu = per_process.iter().map(|(_, cpu)| cpu).sum();
    let servers = named_cpu_seconds(SERVERS)
        .into_iter()
        .zip(servers_before)
        .map(|((name, after), (_, before))| (name, after - before))
        .collect();
    let own_cpu = cpu_seconds(std::process::id()) - own_cpu_before;
    let machine_after = machine_cpu_seconds();
    Ok(SaleRun {
        stats,
        secs,
        sold_out_after: None,
        server_cpu,
        per_process,
        servers,
        own_cpu,
        machine_busy: machine_after.0 - machine_before.0,
        machine_stolen: machine_after.1 - machine_before.1,
    })
}
