//! `[events]` and `[bus]`: the events service's settings and the domain-event bus.

use anyhow::bail;
use secrecy::SecretString;
use serde::Deserialize;

/// `[events]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// How often the sale scheduler looks for UPCOMING events whose sale has started.
    pub scheduler_interval_ms: u64,
    /// Page size of `GET /api/events` when the request names none.
    pub default_page_size: u32,
    /// Largest page size a request may ask for (a larger one is 422).
    pub max_page_size: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            scheduler_interval_ms: 1000,
            default_page_size: 20,
            max_page_size: 100,
        }
    }
}

impl EventsConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(10..=60_000).contains(&self.scheduler_interval_ms) {
            bail!("events.scheduler_interval_ms must be between 10 and 60000");
        }
        if !(1..=1000).contains(&self.max_page_size) {
            bail!("events.max_page_size must be between 1 and 1000");
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            bail!("events.default_page_size must be between 1 and events.max_page_size");
        }
        Ok(())
    }
}

/// `[bus]` — where domain events go after a service's outbox. Unset `nats_url`: the embedded
/// in-process bus, whose consumers read the outbox table directly. Set (or
/// `EVENTLY_NATS_URL`): a relay publishes the outbox to a NATS JetStream stream and consumers
/// are durable JetStream consumers, so processes on other machines receive the events.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// NATS server URL (`nats://host:4222`); shortcut `EVENTLY_NATS_URL`.
    pub nats_url: Option<SecretString>,
    /// JetStream stream name prefix; each service's outbox goes to `<prefix>_<SERVICE>`.
    pub stream_prefix: String,
    /// Seconds JetStream waits for a consumer's ack before redelivering.
    pub ack_wait_seconds: u64,
    /// How often in-process consumers and the relay look for new outbox rows when idle.
    pub poll_interval_ms: u64,
    /// Most outbox rows the relay publishes per round.
    pub relay_batch: u32,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            stream_prefix: "EVENTLY".into(),
            ack_wait_seconds: 30,
            poll_interval_ms: 100,
            relay_batch: 256,
        }
    }
}

impl BusConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.stream_prefix.is_empty()
            || !self
                .stream_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("bus.stream_prefix must be letters, digits, '_' or '-'");
        }
        if !(1..=3600).contains(&self.ack_wait_seconds) {
            bail!("bus.ack_wait_seconds must be between 1 and 3600");
        }
        if !(1..=60_000).contains(&self.poll_interval_ms) {
            bail!("bus.poll_interval_ms must be between 1 and 60000");
        }
        if !(1..=10_000).contains(&self.relay_batch) {
            bail!("bus.relay_batch must be between 1 and 10000");
        }
        Ok(())
    }
}
