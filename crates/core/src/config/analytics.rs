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
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            top_events: 10,
            max_range_days: 400,
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
        Ok(())
    }
}
