use evently_core::config::RedisConfig;
use evently_gateway::ratelimit::{
    Fallback, Group, RateLimiter, conformance, memory::MemoryLimiter, redis::RedisLimiter,
};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

fn memory() -> Arc<dyn RateLimiter> {
    Arc::new(MemoryLimiter::new(&conformance::limits()))
}

fn redis() -> Option<Arc<dyn RateLimiter>> {
    let Ok(url) = std::env::var("EVENTLY_TEST_REDIS_URL") else {
        eprintln!("skipped: redis rate-limiter conformance: EVENTLY_TEST_REDIS_URL not set");
        return None;
    };
    let prefix = format!("evently-test-{}", uuid::Uuid::new_v4().simple());
    Some(Arc::new(
        RedisLimiter::new(
            &SecretString::from(url),
            &conformance::limits(),
            Duration::from_millis(500),
            &prefix,
        )
        .unwrap(),
    ))
}

macro_rules! limiter_suite {
    ($($test:ident => $call:expr),+ $(,)?) => {
        mod memory_backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let limiter = memory();
                    ($call)(limiter).await;
                }
            )+
        }
        mod redis_backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(limiter) = redis() else { return };
                    ($call)(limiter).await;
                }
            )+
        }
    };
}

limiter_suite!(
    burst_then_refusal => |l: Arc<dyn RateLimiter>| async move { conformance::burst_then_refusal(l.as_ref()).await },
    keys_and_groups_are_independent => |l: Arc<dyn RateLimiter>| async move { conformance::keys_and_groups_are_independent(l.as_ref()).await },
    budget_refills_smoothly => |l: Arc<dyn RateLimiter>| async move { conformance::budget_refills_smoothly(l.as_ref()).await },
    concurrent_requests_respect_the_burst => |l: Arc<dyn RateLimiter>| async move { conformance::concurrent_requests_respect_the_burst(l).await },
);

#[tokio::test]
async fn unreachable_redis_falls_back_to_the_in_process_limiter() {
    // Nothing listens on port 1: every Redis call fails fast.
    let dead = RedisLimiter::new(
        &SecretString::from("redis://127.0.0.1:1"),
        &conformance::limits(),
        Duration::from_millis(50),
        "evently-test-dead",
    )
    .unwrap();
    let limiter = Fallback::new(dead, Arc::new(MemoryLimiter::new(&conformance::limits())));

    let mut allowed = 0;
    for _ in 0..5 {
        if limiter.check(Group::Default, "ip:1").await.unwrap().allowed {
            allowed += 1;
        }
    }

    // The fallback enforces the same quota: a burst of 3, one more a second.
    assert!((3..=4).contains(&allowed), "{allowed}");
    assert!(!limiter.healthy());
}

#[tokio::test]
async fn gateway_with_dead_redis_answers_and_reports_the_fallback() {
    let app = evently_testkit::spawn_app_with(|c| {
        c.redis = RedisConfig {
            url: Some(SecretString::from("redis://127.0.0.1:1")),
            ..RedisConfig::default()
        };
    })
    .await;

    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            app.client
                .get(app.url("/api/auth/me"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    let health: serde_json::Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metrics = app.metrics().await;

    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(health["rateLimiter"]["backend"], "redis");
    assert_eq!(health["rateLimiter"]["status"], "fallback");
    assert!(metrics.contains("evently_gateway_ratelimit_backend_errors_total"));
}

/// A "Redis" that accepts connections and never answers: the slow or wedged Redis of TESTPLAN
/// F-02, as opposed to one that refuses connections.
fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    format!("redis://{addr}")
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_each_request_at_most_its_timeout() {
    let timeout = Duration::from_millis(50);
    let wedged = RedisLimiter::new(
        &SecretString::from(black_hole()),
        &conformance::limits(),
        timeout,
        "evently-test-wedged",
    )
    .unwrap();
    let limiter = Fallback::new(wedged, Arc::new(MemoryLimiter::new(&conformance::limits())));

    // Sequential requests over 1.5 s, so that reconnection attempts fall among them.
    let started = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    let mut allowed = 0;
    let mut checks = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let one = std::time::Instant::now();
        let decision = limiter.check(Group::Default, "ip:2").await.unwrap();
        slowest = slowest.max(one.elapsed());
        checks += 1;
        if decision.allowed {
            allowed += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    assert!(
        slowest < timeout * 4,
        "no request waits for a connection attempt: slowest {slowest:?} over {checks} checks"
    );
    // The fallback enforces the same quota: a burst of 3, one more a second.
    assert!((3..=4).contains(&allowed), "{allowed}");
    assert!(!limiter.healthy());
}
