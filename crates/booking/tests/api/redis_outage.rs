//! Redis going away under a purchase workload (TESTPLAN F-03). Redis holds rate-limit state
//! only (the gateway's limiter); seats live in the database, which stays the source of truth.
//! The application reaches Redis through a TCP proxy the test cuts and restores, so the shared
//! Redis is never touched.
//!
//! While Redis is away holds and purchases keep answering as before (no 5xx, no hang), the
//! limiter answers from its in-process fallback with the same quotas, `/health` reports the
//! fallback; once Redis is back the limiter uses it again by itself; the store's audit finds
//! nothing oversold and exactly the orders the clients were told of.

#![expect(clippy::unwrap_used, reason = "the outage fixtures fail loudly")]

use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::traffic::{AFTER, Answer, BEFORE, DURING, Traffic};
use evently_testkit::TestApp;
use evently_testkit::proxy::{TcpProxy, target_of, through};

/// The sign-in group's bucket in this test: one request a minute after a burst of this many,
/// so that refills cannot blur a count taken within seconds.
const AUTH_BURST: u32 = 40;

async fn limiter_status(app: &TestApp) -> Value {
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["rateLimiter"].clone()
}

/// F-03: Redis cut during purchases: every hold and purchase still succeeds, the limiter
/// falls back to this process (same quotas, its own fresh buckets), and comes back to Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_leaves_purchases_unaffected_and_rate_limits_fall_back() {
    let Ok(redis) = std::env::var("EVENTLY_TEST_REDIS_URL") else {
        evently_testkit::skip(
            "a_redis_outage_leaves_purchases_unaffected_and_rate_limits_fall_back",
            "EVENTLY_TEST_REDIS_URL",
        );
        return;
    };
    let proxy = TcpProxy::start(target_of(&redis)).await;
    let proxied = through(&redis, proxy.addr());
    let prefix = format!("evently-f03-{}", uuid::Uuid::now_v7().simple());
    let postgres = evently_testkit::postgres_url().is_some();
    let app = app(postgres, |c| {
        c.redis.url = Some(secrecy::SecretString::from(proxied));
        c.redis.key_prefix = prefix;
        c.gateway.rate_limits.auth = evently_core::config::RateLimitQuota::new(1, AUTH_BURST);
        c.booking.max_tickets_per_user = 1_000_000;
    })
    .await;
    let status = limiter_status(&app).await;
    assert_eq!(
        (status["backend"].as_str(), status["status"].as_str()),
        (Some("redis"), Some("up")),
        "{status}"
    );
    let sale = on_sale(&app, Seating::General { capacity: 5000 }).await;
    let event = sale.event_id.clone();
    let users = buyers(&app, 4).await;

    let app = Arc::new(app);
    let traffic = Traffic::start(&app, users.iter().map(|u| u.access_token.clone()), &event);
    tokio::time::sleep(Duration::from_millis(800)).await;

    proxy.cut();
    traffic.enter(DURING);
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A client signing in far too often while Redis is away: the in-process limiter answers,
    // with the same quota, from a bucket of its own (Redis's bucket of this address was drawn
    // on by the set-up's sign-ins).
    let mut passed = 0;
    let mut limited = 0;
    for _ in 0..AUTH_BURST + 20 {
        let response = app
            .client
            .post(app.url("/api/auth/refresh"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            429 => limited += 1,
            s if s < 500 => passed += 1,
            s => panic!("a sign-in refresh answered {s} while Redis was away"),
        }
    }
    let during_status = limiter_status(&app).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    traffic.enter(AFTER);
    let outage = cut_at.elapsed();

    // Back on Redis by itself, without a restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = limiter_status(&app).await;
        if status["status"] == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the limiter never went back to Redis: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let seen = traffic.finish().await;

    let purchases = |p: usize| {
        seen.iter()
            .filter(|a| a.phase == p && a.step == "purchase" && a.status == 201)
            .count()
    };
    let failed: Vec<&Answer> = seen
        .iter()
        .filter(|a| !matches!(a.status, 200 | 201))
        .collect();
    let slowest = seen
        .iter()
        .filter(|a| a.phase == DURING)
        .map(|a| a.elapsed)
        .max()
        .unwrap_or_default();
    let audit = audit(&app, &event).await;
    eprintln!(
        "Redis away for {outage:?}: purchases before/during/after {}/{}/{}, {} answers in all, \
         slowest answer during the outage {slowest:?}; sign-in refreshes during it: {passed} \
         passed, {limited} limited; audit {audit:?}",
        purchases(BEFORE),
        purchases(DURING),
        purchases(AFTER),
        seen.len(),
    );

    assert!(
        failed.is_empty(),
        "{} steps refused or failed, the first: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(purchases(BEFORE) > 0 && purchases(DURING) > 0 && purchases(AFTER) > 0);
    assert_eq!(during_status["status"], "fallback", "{during_status}");
    assert_eq!(
        (passed, limited),
        (AUTH_BURST, 20),
        "the fallback keeps the sign-in quota"
    );
    assert!(audit.is_sound(), "{audit:?}");
    let acknowledged = seen
        .iter()
        .filter(|a| a.step == "purchase" && a.status == 201)
        .count();
    assert_eq!(audit.orders, i64::try_from(acknowledged).unwrap());
    assert_eq!(audit.sold_seats, audit.orders, "one place per order");
}
