//! The envelope every domain event travels in, on every bus and in every outbox.
//!
//! An envelope is immutable once written: its `id` (UUIDv7, so ids sort by creation time) is
//! what consumers deduplicate on, and `aggregateVersion` orders the changes of one aggregate.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One domain event with its metadata, as serialised on the wire (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// Unique id (UUIDv7); consumers deduplicate on it, JetStream uses it as `Nats-Msg-Id`.
    pub id: Uuid,
    /// The event type, past tense (`EventCreated`).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Version of the payload schema of `type`; bumped on incompatible payload changes.
    pub schema_version: u32,
    /// What kind of aggregate changed (`event`, `venue`).
    pub aggregate_type: String,
    /// Which aggregate changed.
    pub aggregate_id: Uuid,
    /// The aggregate's version after the change (1 for its creation).
    pub aggregate_version: i64,
    /// When the change happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The event's data; its shape is given by `type` and `schemaVersion`.
    pub payload: serde_json::Value,
    /// The W3C `traceparent` of the request that caused the change, when traces are exported:
    /// consumers in other processes continue that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Envelope {
    /// Epoch milliseconds of `occurred_at`, as outbox tables store it.
    pub fn occurred_at_ms(&self) -> i64 {
        i64::try_from(self.occurred_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// The envelope as JSON bytes.
    ///
    /// # Errors
    /// Never in practice: every field serialises.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parses an envelope from JSON bytes.
    ///
    /// # Errors
    /// When the bytes are not an envelope.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Converts epoch milliseconds to a UTC time (clamped to the representable range).
pub fn time_from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Epoch milliseconds of `t` (the inverse of [`time_from_ms`]).
pub fn time_to_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
