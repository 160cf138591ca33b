//! Rate limiting with GCRA (the generic cell rate algorithm): a smooth budget of
//! `per_minute` requests with bursts of up to `burst`, without the double bursts of fixed
//! windows at a window edge.
//!
//! Two backends behind [`RateLimiter`], one conformance suite:
//! - [`memory::MemoryLimiter`] — in process (governor's keyed GCRA), the embedded default;
//! - [`redis::RedisLimiter`] — one Lua script, atomic in Redis, using Redis's clock, so that
//!   several gateway processes share one budget per key.
//!
//! [`Fallback`] is what the gateway uses with Redis: when Redis does not answer within its
//! timeout, the in-process limiter answers instead (same quotas, per process), the failure is
//! counted in `evently_gateway_ratelimit_backend_errors_total` and `/health` shows the limiter
//! as degraded. Losing Redis therefore never yields a 500 or a storm of 429s, and never affects
//! seats: Redis holds rate-limit state only.

use async_trait::async_trait;
use evently_core::config::{RateLimitQuota, RateLimits};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub mod conformance;
pub mod memory;
pub mod redis;

/// A rate-limit group: routes that share one quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Everything not in a stricter group.
    Default,
    /// Sign-in, registration, refresh.
    Auth,
    /// Holds, payments, purchases.
    Purchase,
}

impl Group {
    /// The name used in keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Default => "default",
            Group::Auth => "auth",
            Group::Purchase => "purchase",
        }
    }

    /// The quota of this group in `limits`.
    pub fn quota(self, limits: &RateLimits) -> RateLimitQuota {
        match self {
            Group::Default => limits.default,
            Group::Auth => limits.auth,
            Group::Purchase => limits.purchase,
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The bucket size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// When denied, until the next request would be allowed (`Retry-After`).
    pub retry_after: Duration,
}

/// The backend could not answer.
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterError(pub String);

/// A keyed GCRA limiter.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request of `key` in `group` and decides.
    async fn check(&self, group: Group, key: &str) -> Result<Decision, LimiterError>;

    /// `memory` or `redis`.
    fn backend(&self) -> &'static str;

    /// Whether the limiter currently answers from its primary backend.
    fn healthy(&self) -> bool {
        true
    }
}

/// Redis first, the in-process limiter when Redis does not answer.
pub struct Fallback {
    primary: redis::RedisLimiter,
    fallback: Arc<memory::MemoryLimiter>,
    degraded: AtomicBool,
}

impl Fallback {
    /// Redis with an in-process fallback of the same quotas.
    pub fn new(primary: redis::RedisLimiter, fallback: Arc<memory::MemoryLimiter>) -> Self {
        Self {
            primary,
            fallback,
            degraded: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl RateLimiter for Fallback {
    async fn check(&self, group: Group, key: &str) -> Result<Decision, LimiterError> {
        match self.primary.check(group, key).await {
            Ok(decision) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::warn!("rate limiting is back on Redis");
                    metrics::gauge!("evently_gateway_ratelimit_fallback").set(0.0);
                }
                Ok(decision)
            }
            Err(error) => {
                metrics::counter!("evently_gateway_ratelimit_backend_errors_total").increment(1);
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "Redis is unreachable; rate limiting falls back to this process");
                    metrics::gauge!("evently_gateway_ratelimit_fallback").set(1.0);
                }
                self.fallback.check(group, key).await
            }
        }
    }

    fn backend(&self) -> &'static str {
        "redis"
    }

    fn healthy(&self) -> bool {
        !self.degraded.load(Ordering::Relaxed)
    }
}

/// The limiter for `limits`: Redis with fallback when `redis_url` is set, else in process.
///
/// # Errors
/// An invalid Redis URL.
pub fn build(
    limits: &RateLimits,
    redis: &evently_core::config::RedisConfig,
) -> anyhow::Result<Arc<dyn RateLimiter>> {
    let memory = Arc::new(memory::MemoryLimiter::new(limits));
    let sweeper = Arc::downgrade(&memory);
    // Full buckets carry no information: drop them every minute so memory follows the number
    // of recently active clients, not every client ever seen. The task ends with the limiter.
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match sweeper.upgrade() {
                Some(limiter) => limiter.sweep(),
                None => break,
            }
        }
    });
    Ok(match &redis.url {
        Some(url) => Arc::new(Fallback::new(
            redis::RedisLimiter::new(
                url,
                limits,
                Duration::from_millis(redis.timeout_ms),
                &format!("{}:rl", redis.key_prefix),
            )?,
            memory,
        )),
        None => memory,
    })
}
