//! The Redis limiter: GCRA in one Lua script, so that check-and-update is atomic in Redis and
//! every gateway process sharing the Redis shares one budget per key. The script reads Redis's
//! own clock (`TIME`), so gateway clocks need not agree. Each key expires once its bucket is
//! full again, so Redis memory is bounded by recently active clients.
//!
//! A request never waits for a connection attempt, except for the very first one of the
//! process (bounded by the call timeout), so that the first requests share the budget too.
//! Connection attempts run in the background, at most one at a time and one a second. After a
//! failure (refused, timed out, wedged) Redis is left alone for a second and the caller's
//! fallback decides; so a Redis that accepts connections and never answers costs one request
//! a second the call timeout, and the rest nothing.

use async_trait::async_trait;
use evently_core::config::RateLimits;
use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Decision, Group, LimiterError, RateLimiter};

/// Returns {allowed, remaining, retry_after_us, reset_us}. Times are microseconds.
const GCRA: &str = r"
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local tolerance = emission * burst
local new_tat = tat + emission
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now + tolerance - new_tat) / emission), 0, new_tat - now}
";

/// How long Redis is left alone after it failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// GCRA limits kept in Redis.
pub struct RedisLimiter {
    link: Arc<Link>,
    script: redis::Script,
    limits: RateLimits,
    timeout: Duration,
    prefix: String,
}

/// The connection to Redis and what is known of it.
struct Link {
    client: redis::Client,
    state: Mutex<LinkState>,
    /// Bumped when a connection attempt ends, for the requests waiting on the first one.
    attempts: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct LinkState {
    /// Once made, kept: the manager reconnects by itself after a broken connection.
    connection: Option<ConnectionManager>,
    connecting: bool,
    /// When Redis last failed (a connection attempt or a call).
    failed_at: Option<Instant>,
}

impl LinkState {
    fn failed_recently(&self) -> bool {
        self.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER)
    }
}

impl Link {
    fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a connection attempt in the background unless one is running or Redis failed
    /// recently.
    fn connect(self: &Arc<Self>, state: &mut LinkState) {
        if state.connecting || state.failed_recently() {
            return;
        }
        state.connecting = true;
        let link = self.clone();
        tokio::spawn(async move {
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(500)))
                .set_number_of_retries(0);
            let made = tokio::time::timeout(
                Duration::from_secs(1),
                ConnectionManager::new_with_config(link.client.clone(), config),
            )
            .await;
            {
                let mut state = link.state();
                state.connecting = false;
                match made {
                    Ok(Ok(connection)) => {
                        state.connection = Some(connection);
                        state.failed_at = None;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "connecting to Redis failed");
                        state.failed_at = Some(Instant::now());
                    }
                    Err(_elapsed) => {
                        tracing::debug!("connecting to Redis timed out");
                        state.failed_at = Some(Instant::now());
                    }
                }
            }
            link.attempts.send_modify(|n| *n += 1);
        });
    }

    fn failed(&self) {
        self.state().failed_at = Some(Instant::now());
    }
}

impl RedisLimiter {
    /// A limiter on the Redis at `url`; keys are `<prefix>:<group>:<key>`. Connects lazily, so
    /// a gateway starts even while Redis is down.
    ///
    /// # Errors
    /// When the URL is invalid.
    pub fn new(
        url: &SecretString,
        limits: &RateLimits,
        timeout: Duration,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| anyhow::anyhow!("invalid Redis URL: {e}"))?;
        Ok(Self {
            link: Arc::new(Link {
                client,
                state: Mutex::new(LinkState::default()),
                attempts: tokio::sync::watch::Sender::new(0),
            }),
            script: redis::Script::new(GCRA),
            limits: limits.clone(),
            timeout,
            prefix: prefix.to_owned(),
        })
    }

    /// The connection to use now, or why Redis is skipped.
    async fn connection(&self) -> Result<ConnectionManager, LimiterError> {
        let mut attempts = {
            let mut state = self.link.state();
            if state.failed_recently() {
                return Err(LimiterError("Redis failed less than a second ago".into()));
            }
            if let Some(connection) = &state.connection {
                return Ok(connection.clone());
            }
            self.link.connect(&mut state);
            if state.failed_at.is_some() {
                return Err(LimiterError("Redis is not connected".into()));
            }
            // The process's first attempt: wait for it, as long as a call may take.
            self.link.attempts.subscribe()
        };
        let _ = tokio::time::timeout(self.timeout, attempts.changed()).await;
        self.link
            .state()
            .connection
            .clone()
            .ok_or_else(|| LimiterError("Redis is not connected".into()))
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, group: Group, key: &str) -> Result<Decision, LimiterError> {
        let quota = group.quota(&self.limits);
        let burst = quota.burst().max(1);
        let emission_us = (60_000_000u64 / u64::from(quota.per_minute.max(1))).max(1);
        let mut conn = self.connection().await?;
        let redis_key = format!("{}:{}:{key}", self.prefix, group.as_str());
        let mut invocation = self.script.key(redis_key);
        invocation.arg(emission_us).arg(burst);
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.link.failed();
                return Err(LimiterError(e.to_string()));
            }
            Err(_elapsed) => {
                self.link.failed();
                return Err(LimiterError("Redis did not answer in time".into()));
            }
        };
        let (allowed, remaining, retry_us, reset_us) = answer;
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit: burst,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset: us(reset_us),
            retry_after: us(retry_us),
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
