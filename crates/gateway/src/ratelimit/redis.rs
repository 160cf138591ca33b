//! The Redis limiter: GCRA in one Lua script, so that check-and-update is atomic in Redis and
//! every gateway process sharing the Redis shares one budget per key. The script reads Redis's
//! own clock (`TIME`), so gateway clocks need not agree. Each key expires once its bucket is
//! full again, so Redis memory is bounded by recently active clients.

use async_trait::async_trait;
use evently_core::config::RateLimits;
use redis::aio::ConnectionManager;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Mutex;
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

/// GCRA limits kept in Redis.
pub struct RedisLimiter {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    last_attempt: Mutex<Option<Instant>>,
    script: redis::Script,
    limits: RateLimits,
    timeout: Duration,
    prefix: String,
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
            client,
            connection: tokio::sync::Mutex::new(None),
            last_attempt: Mutex::new(None),
            script: redis::Script::new(GCRA),
            limits: limits.clone(),
            timeout,
            prefix: prefix.to_owned(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, LimiterError> {
        let mut guard = self.connection.lock().await;
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        {
            // At most one connection attempt per second while Redis is down, so that a dead
            // Redis costs requests nothing but the fallback.
            let mut last = self.last_attempt.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return Err(LimiterError("Redis is unreachable".into()));
            }
            *last = Some(Instant::now());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(0);
        let conn = tokio::time::timeout(
            Duration::from_secs(1),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| LimiterError("connecting to Redis timed out".into()))?
        .map_err(|e| LimiterError(e.to_string()))?;
        *guard = Some(conn.clone());
        Ok(conn)
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
        let (allowed, remaining, retry_us, reset_us) = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| LimiterError("Redis did not answer in time".into()))?
            .map_err(|e| LimiterError(e.to_string()))?;
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
