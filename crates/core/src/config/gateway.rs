//! `[gateway]` and `[redis]`: the edge's routing, limits, breaker and CORS settings.

use secrecy::SecretString;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[redis]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis URL (`redis://host:6379`); shortcut `EVENTLY_REDIS_URL`. Unset: rate limits are
    /// kept in process.
    pub url: Option<SecretString>,
    /// Milliseconds a rate-limit call to Redis may take before the in-process fallback answers.
    pub timeout_ms: u64,
    /// Prefix of every key evently writes, so that deployments can share one Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout_ms: 50,
            key_prefix: "evently".into(),
        }
    }
}

/// One rate-limit group: a GCRA quota of `per_minute` requests with bursts of up to `burst`
/// (default: `per_minute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitQuota {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests that may arrive at once (the bucket size).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateLimitQuota {
    /// A quota of `per_minute` with bursts of `burst`.
    pub const fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute,
            burst: Some(burst),
        }
    }

    /// The bucket size.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.per_minute)
    }
}

/// `[gateway.rate_limits]` — quotas per route group, per user when signed in, else per client
/// address.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Every route not in a stricter group (the seeds' 100 requests per minute).
    pub default: RateLimitQuota,
    /// Sign-in, registration and token refresh.
    pub auth: RateLimitQuota,
    /// Ticket purchases and holds.
    pub purchase: RateLimitQuota,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            default: RateLimitQuota::new(100, 100),
            auth: RateLimitQuota::new(20, 10),
            purchase: RateLimitQuota::new(60, 20),
        }
    }
}

/// `[gateway.breaker]` — per-upstream circuit breaker.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// Failure rate (0..1) over the last `window` calls that opens it.
    pub failure_rate: f64,
    /// Calls in the failure-rate window (the rate only counts once the window is full).
    pub window: u32,
    /// Seconds the breaker stays open before letting a probe through.
    pub open_seconds: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: 20,
            open_seconds: 5,
        }
    }
}

/// `[gateway]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Upstream URL per service not run in this process, e.g. `auth = "http://10.0.0.5:8080"`
    /// (`EVENTLY_GATEWAY__SERVICES__AUTH`), or several replicas' URLs separated by commas,
    /// e.g. `booking = "http://10.0.0.6:8080,http://10.0.0.7:8080"`: requests are spread over
    /// them in turn, and a request whose connection could not be made (refused, unreachable:
    /// nothing was sent) is tried once more on the next replica.
    pub services: BTreeMap<String, String>,
    /// Origins allowed by CORS (with credentials) and by the CSRF check on cookie-authenticated
    /// writes, e.g. `["https://app.example.com"]`.
    pub cors_allowed_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (enable when evently is served over TLS).
    pub hsts: bool,
    /// Seconds an upstream may take to answer a proxied request (504 after).
    pub upstream_timeout_seconds: u64,
    /// Seconds sign-in routes may take upstream (they wait for password hashing).
    pub auth_timeout_seconds: u64,
    /// Retries of idempotent, body-less requests after a connection failure or 502/503.
    pub max_retries: u32,
    /// Seconds a proxied upgraded connection (a WebSocket) may carry nothing either way
    /// before the gateway closes it.
    pub upgrade_idle_timeout_seconds: u64,
    /// Rate-limit quotas.
    pub rate_limits: RateLimits,
    /// Circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            services: BTreeMap::new(),
            cors_allowed_origins: Vec::new(),
            hsts: false,
            upstream_timeout_seconds: 10,
            auth_timeout_seconds: 15,
            max_retries: 2,
            upgrade_idle_timeout_seconds: 75,
            rate_limits: RateLimits::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// The first value out of range.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, q) in [
            ("default", self.rate_limits.default),
            ("auth", self.rate_limits.auth),
            ("purchase", self.rate_limits.purchase),
        ] {
            anyhow::ensure!(
                q.per_minute > 0 && q.burst() > 0,
                "gateway.rate_limits.{name}: per_minute and burst must be at least 1"
            );
        }
        anyhow::ensure!(
            self.breaker.consecutive_failures > 0 && self.breaker.window > 0,
            "gateway.breaker: consecutive_failures and window must be at least 1"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.breaker.failure_rate),
            "gateway.breaker.failure_rate must be between 0 and 1"
        );
        anyhow::ensure!(
            self.upstream_timeout_seconds > 0
                && self.auth_timeout_seconds > 0
                && self.upgrade_idle_timeout_seconds > 0,
            "gateway timeouts must be at least 1 second"
        );
        for (name, urls) in &self.services {
            anyhow::ensure!(
                upstream_urls(urls)
                    .all(|url| url.starts_with("http://") || url.starts_with("https://")),
                "gateway.services.{name} must be an http:// or https:// URL, or several separated by commas"
            );
        }
        for origin in &self.cors_allowed_origins {
            anyhow::ensure!(
                origin != "*" && (origin.starts_with("http://") || origin.starts_with("https://")),
                "gateway.cors_allowed_origins entries are exact origins like https://app.example.com (never *)"
            );
        }
        Ok(())
    }
}

/// The replicas' URLs of one `gateway.services` entry: comma-separated, blanks around them
/// ignored (an empty entry is kept, so that validation refuses it).
pub fn upstream_urls(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim)
}
