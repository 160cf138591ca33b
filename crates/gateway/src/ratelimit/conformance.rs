//! What every [`RateLimiter`] backend must do; run against both by the gateway's tests.

#![expect(clippy::unwrap_used, reason = "conformance checks fail loudly")]

use std::time::{Duration, Instant};

use super::{Group, RateLimiter};

/// The quotas the suite expects the limiter under test to have been built with:
/// default = 60/min burst 3, auth = 600/min burst 2, purchase = 60/min burst 1.
pub fn limits() -> evently_core::config::RateLimits {
    use evently_core::config::RateLimitQuota;
    evently_core::config::RateLimits {
        default: RateLimitQuota::new(60, 3),
        auth: RateLimitQuota::new(600, 2),
        purchase: RateLimitQuota::new(60, 1),
    }
}

fn key(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// The burst is allowed at once, then requests are refused with a retry-after of about one
/// emission interval, and the headers' figures count down.
pub async fn burst_then_refusal(limiter: &dyn RateLimiter) {
    let k = key("burst");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = limiter.check(Group::Default, &k).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.limit, 3);
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    let refused = limiter.check(Group::Default, &k).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(
        refused.retry_after > Duration::from_millis(500),
        "{refused:?}"
    );
    assert!(
        refused.retry_after <= Duration::from_millis(1000),
        "{refused:?}"
    );
}

/// Keys and groups have separate budgets.
pub async fn keys_and_groups_are_independent(limiter: &dyn RateLimiter) {
    let a = key("a");
    let b = key("b");
    assert!(limiter.check(Group::Purchase, &a).await.unwrap().allowed);
    assert!(!limiter.check(Group::Purchase, &a).await.unwrap().allowed);
    assert!(limiter.check(Group::Purchase, &b).await.unwrap().allowed);
    assert!(limiter.check(Group::Default, &a).await.unwrap().allowed);
}

/// After the emission interval one more request is allowed (smooth refill, no window edge).
pub async fn budget_refills_smoothly(limiter: &dyn RateLimiter) {
    let k = key("refill");
    // auth: 600/min = one every 100 ms, burst 2.
    assert!(limiter.check(Group::Auth, &k).await.unwrap().allowed);
    assert!(limiter.check(Group::Auth, &k).await.unwrap().allowed);
    let refused = limiter.check(Group::Auth, &k).await.unwrap();
    assert!(!refused.allowed);
    let deadline = Instant::now() + Duration::from_secs(5);
    tokio::time::sleep(refused.retry_after).await;
    loop {
        let d = limiter.check(Group::Auth, &k).await.unwrap();
        if d.allowed {
            break;
        }
        assert!(Instant::now() < deadline, "the budget never refilled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !limiter.check(Group::Auth, &k).await.unwrap().allowed,
        "only one came back"
    );
}

/// Concurrent requests never get more than the burst.
pub async fn concurrent_requests_respect_the_burst(limiter: std::sync::Arc<dyn RateLimiter>) {
    let k = key("concurrent");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let limiter = limiter.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            limiter.check(Group::Default, &k).await.unwrap().allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3);
}
