//! `[search]`: the search service's index.

use anyhow::bail;
use serde::Deserialize;

/// `[search]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Keep the index in memory (rebuilt from the stream at every start) instead of under
    /// `<data_dir>/search/`.
    pub in_memory: bool,
    /// This replica's name, part of its durable consumers' names (`search-<replica>`). Unset:
    /// generated once and kept in `<data_dir>/search-replica`.
    pub replica: Option<String>,
    /// How long NATS keeps a replica's consumers after it stopped asking for events.
    pub inactive_threshold_seconds: u64,
    /// Memory of the index writer.
    pub writer_heap_mb: usize,
    /// Least time between two commits of booking's feed, the events' availability (ms):
    /// changes that arrive sooner wait and go in one commit, so an on-sale rush that changes
    /// availability thousands of times a second costs a few commits a second. A change after a
    /// quiet spell is committed at once; in a rush, availability reaches search at most this
    /// much later. Organizers' changes of events are never held back. 0 commits every
    /// delivery.
    pub commit_interval_ms: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            in_memory: false,
            replica: None,
            inactive_threshold_seconds: 3600,
            writer_heap_mb: 32,
            commit_interval_ms: 250,
        }
    }
}

impl SearchConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.inactive_threshold_seconds < 60 {
            bail!("search.inactive_threshold_seconds must be at least 60");
        }
        if !(15..=1024).contains(&self.writer_heap_mb) {
            bail!("search.writer_heap_mb must be between 15 and 1024");
        }
        if self.commit_interval_ms > 5000 {
            bail!("search.commit_interval_ms must be at most 5000");
        }
        if let Some(r) = &self.replica
            && (r.is_empty()
                || r.len() > 64
                || !r
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            bail!("search.replica must be 1 to 64 letters, digits, '-' or '_'");
        }
        Ok(())
    }
}
