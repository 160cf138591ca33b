//! The in-process limiter: governor's keyed GCRA, one limiter per group.
//!
//! Keys that have been idle long enough to be full again carry no information, so a background
//! sweep drops them; memory stays bounded by the number of recently active clients.

use async_trait::async_trait;
use evently_core::config::{RateLimitQuota, RateLimits};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as Governor};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::{Decision, Group, LimiterError, RateLimiter};

type Keyed =
    Governor<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

struct GroupLimiter {
    limiter: Keyed,
    burst: u32,
    period: Duration,
}

/// Per-process GCRA limits.
#[derive(Clone)]
pub struct MemoryLimiter {
    default: Arc<GroupLimiter>,
    auth: Arc<GroupLimiter>,
    purchase: Arc<GroupLimiter>,
    clock: DefaultClock,
}

fn group_limiter(quota: RateLimitQuota) -> GroupLimiter {
    let per_minute = quota.per_minute.max(1);
    let burst = quota.burst().max(1);
    let period = Duration::from_secs(60) / per_minute;
    let period = period.max(Duration::from_nanos(1));
    let q = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
    GroupLimiter {
        limiter: Governor::keyed(q).with_middleware::<StateInformationMiddleware>(),
        burst,
        period,
    }
}

impl MemoryLimiter {
    /// Limiters for `limits`.
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            default: Arc::new(group_limiter(limits.default)),
            auth: Arc::new(group_limiter(limits.auth)),
            purchase: Arc::new(group_limiter(limits.purchase)),
            clock: DefaultClock::default(),
        }
    }

    fn group(&self, group: Group) -> &GroupLimiter {
        match group {
            Group::Default => &self.default,
            Group::Auth => &self.auth,
            Group::Purchase => &self.purchase,
        }
    }

    /// Drops keys whose buckets are full again; call periodically.
    pub fn sweep(&self) {
        for g in [&self.default, &self.auth, &self.purchase] {
            g.limiter.retain_recent();
            g.limiter.shrink_to_fit();
        }
    }

    /// Keys currently tracked (for tests and metrics).
    pub fn len(&self) -> usize {
        [&self.default, &self.auth, &self.purchase]
            .iter()
            .map(|g| g.limiter.len())
            .sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn check(&self, group: Group, key: &str) -> Result<Decision, LimiterError> {
        let g = self.group(group);
        // The key is only allocated for the map; governor looks it up by reference first.
        Ok(match g.limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    limit: g.burst,
                    remaining,
                    reset: g.period * (g.burst - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    limit: g.burst,
                    remaining: 0,
                    reset: wait + g.period * (g.burst - 1),
                    retry_after: wait,
                }
            }
        })
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
