//! `[recs]`: the recommendations service's settings.

use anyhow::bail;
use serde::Deserialize;

/// `[recs]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecsConfig {
    /// Items per answer when the request names no `limit`.
    pub default_limit: u32,
    /// Largest `limit` a request may ask for (a larger one is 422).
    pub max_limit: u32,
    /// Seconds a user's answer is kept; their own purchases invalidate it sooner.
    pub cache_ttl_seconds: u64,
    /// Most users whose answers are cached at once.
    pub cache_capacity: usize,
    /// Least time between two rebuilds of the content neighbours after events change.
    pub rebuild_interval_ms: u64,
    /// How often the popularity figures are read again.
    pub popularity_refresh_ms: u64,
}

impl Default for RecsConfig {
    fn default() -> Self {
        Self {
            default_limit: 10,
            max_limit: 50,
            cache_ttl_seconds: 60,
            cache_capacity: 100_000,
            rebuild_interval_ms: 1000,
            popularity_refresh_ms: 5000,
        }
    }
}

impl RecsConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(1..=200).contains(&self.max_limit) {
            bail!("recs.max_limit must be between 1 and 200");
        }
        if self.default_limit == 0 || self.default_limit > self.max_limit {
            bail!("recs.default_limit must be between 1 and recs.max_limit");
        }
        if self.cache_ttl_seconds > 3600 {
            bail!("recs.cache_ttl_seconds must be at most 3600");
        }
        if !(10..=600_000).contains(&self.rebuild_interval_ms) {
            bail!("recs.rebuild_interval_ms must be between 10 and 600000");
        }
        if !(10..=600_000).contains(&self.popularity_refresh_ms) {
            bail!("recs.popularity_refresh_ms must be between 10 and 600000");
        }
        Ok(())
    }
}
