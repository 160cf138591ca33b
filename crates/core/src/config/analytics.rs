//! `[analytics]`: the analytics service's settings.

use anyhow::bail;
use serde::Deserialize;

/// `[analytics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsConfig {
    /// Events listed in an overview's `topEvents`.
    pub top_events: u32,
    /// Longest range (days) one series may cover; a longer `from`–`to` is 422.
    pub max_range_days: u32,
    /// Live connections (WebSocket or SSE) one user may hold at once; one more is 429.
    pub live_max_connections_per_user: u32,
    /// Events one live connection may watch.
    pub live_max_events: u32,
    /// Seconds between two pings on a live WebSocket; two unanswered pings close it.
    pub live_ping_seconds: u64,
    /// Seconds one message may take to reach a live client before it is dropped.
    pub live_send_timeout_seconds: u64,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            top_events: 10,
            max_range_days: 400,
            live_max_connections_per_user: 8,
            live_max_events: 100,
            live_ping_seconds: 25,
            live_send_timeout_seconds: 5,
        }
    }
}

impl AnalyticsConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(1..=100).contains(&self.top_events) {
            bail!("analytics.top_events must be between 1 and 100");
        }
        if !(1..=3700).contains(&self.max_range_days) {
            bail!("analytics.max_range_days must be between 1 and 3700");
        }
        if !(1..=1000).contains(&self.live_max_connections_per_user) {
            bail!("analytics.live_max_connections_per_user must be between 1 and 1000");
        }
        if !(1..=1000).contains(&self.live_max_events) {
            bail!("analytics.live_max_events must be between 1 and 1000");
        }
        if !(1..=300).contains(&self.live_ping_seconds) {
            bail!("analytics.live_ping_seconds must be between 1 and 300");
        }
        if !(1..=60).contains(&self.live_send_timeout_seconds) {
            bail!("analytics.live_send_timeout_seconds must be between 1 and 60");
        }
        Ok(())
    }
}
