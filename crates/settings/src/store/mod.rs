//! The settings store: one trait, one body for both engines ([`sql::SqlSettingsStore`]), one
//! conformance suite (in the crate's tests, `tests/api/conformance.rs`).
//!
//! A write is one transaction: it reads the document's version under a lock, refuses a stale
//! expectation, writes the new document with the next version, appends the audit row (who,
//! when, the previous document and the new one) and the `SettingsChanged` domain event to the
//! outbox. So the audit trail and the stream never miss a write, and never show one that
//! did not happen.

use async_trait::async_trait;
use evently_core::db::StoreError;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{DocKey, Expected};

mod postgres;
pub mod sql;
mod sqlite;

pub use sql::SqlSettingsStore;

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Which.
    pub key: DocKey,
    /// Its version (1 after the first write).
    pub version: i64,
    /// The keys set at this scope.
    pub value: Value,
    /// When it was last written (epoch ms).
    pub updated_at: i64,
    /// Who wrote it last.
    pub updated_by: Uuid,
}

/// One write of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Its place in the trail (increasing).
    pub seq: i64,
    /// Which document.
    pub key: DocKey,
    /// The version the write made.
    pub version: i64,
    /// Who wrote.
    pub actor: Uuid,
    /// When (epoch ms).
    pub at: i64,
    /// The document before; `None` for its first write.
    pub previous: Option<Value>,
    /// The document after.
    pub value: Value,
}

/// The outcome of a conditional write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Written: the new document.
    Written(Document),
    /// Refused: the document is at `current` (0: absent), not what the write expected.
    Stale {
        /// The current version.
        current: i64,
    },
}

/// A write to make.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument<'a> {
    /// Which document.
    pub key: DocKey,
    /// The version the writer saw.
    pub expected: Expected,
    /// The whole new document (already merged and checked against its schema).
    pub value: &'a Value,
    /// Who writes.
    pub actor: Uuid,
}

/// Everything the settings service persists.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The document `key`, if it was ever written.
    async fn document(&self, key: DocKey) -> Result<Option<Document>, StoreError>;

    /// Writes `new` if the document is at the version it expects: the document, its audit
    /// row and its `SettingsChanged` event, in one transaction. A write racing another for
    /// the same version is refused as [`Write::Stale`], never applied twice.
    async fn write(&self, new: NewDocument<'_>, now: i64) -> Result<Write, StoreError>;

    /// The audit trail, newest first: of one document (`key`), or of all; at most `limit`
    /// entries with `seq` below `before` (keyset pagination).
    async fn audit(
        &self,
        key: Option<DocKey>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Records that `event_id` belongs to `organizer_id` (`None`: the event was deleted), as
    /// domain event `envelope_id` says, unless that event was applied already; `false` for a
    /// redelivery.
    async fn apply_owner(
        &self,
        envelope_id: Uuid,
        event_id: Uuid,
        organizer_id: Option<Uuid>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The organizer of `event_id`, if the event is known.
    async fn event_organizer(&self, event_id: Uuid) -> Result<Option<Uuid>, StoreError>;
}
