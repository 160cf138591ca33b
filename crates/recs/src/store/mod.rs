//! The recommendations store: one trait, one body for both engines ([`sql::SqlRecsStore`]),
//! one conformance suite (in the crate's tests, `tests/api/conformance.rs`).
//!
//! It is a projection of three streams: the events service's (what each event is),
//! booking's (who bought what) and the settings service's (each user's favourite cities and
//! event types, from their preferences). Each applied domain event's id is recorded in
//! `applied_events` in the same transaction as its effect, so a redelivery changes nothing
//! and replaying the streams from the start rebuilds the same state.
//!
//! Co-purchase counts keep their privacy rules here, where they are counted:
//! - a buyer of more than [`MAX_EVENTS_PER_BUYER`] events (test or bulk accounts) is left out
//!   of every pair count: when they buy their 51st event, the pairs of their first 50 are
//!   taken back, and given back when they drop to 50 again;
//! - a pair is read only once at least [`MIN_PAIR_BUYERS`] distinct buyers bought both, so no
//!   answer reveals one person's purchases.

use async_trait::async_trait;
use evently_core::db::StoreError;
use uuid::Uuid;

use crate::domain::rank::{CoEdge, Purchase};
use crate::domain::{EventFeatures, EventId, EventStatus, Favourites};

mod postgres;
pub mod sql;
mod sqlite;

pub use sql::SqlRecsStore;

/// Buyers of more events than this are left out of co-purchase counts.
pub const MAX_EVENTS_PER_BUYER: i64 = 50;
/// A co-purchase pair is read only with at least this many distinct buyers.
pub const MIN_PAIR_BUYERS: i64 = 3;

/// A change of the catalogue, from the events service's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogChange {
    /// An event was created or its details changed.
    Upsert(EventFeatures),
    /// An event's status changed.
    Status {
        /// The event.
        event_id: EventId,
        /// Its new status.
        status: EventStatus,
    },
    /// An event was deleted.
    Deleted {
        /// The event.
        event_id: EventId,
    },
}

/// A change of ownership, from booking's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderChange {
    /// The buyer.
    pub user_id: Uuid,
    /// The event.
    pub event_id: EventId,
    /// `true` for an order placed, `false` for one cancelled.
    pub placed: bool,
    /// When (epoch ms).
    pub at: i64,
}

/// A user's preferences as published (`SettingsChanged`, namespace `preferences`, scope
/// `user`): their favourite cities and event types at `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferencesChange {
    /// The user.
    pub user_id: Uuid,
    /// The document's version; a newer one replaces an older one, never the reverse.
    pub version: i64,
    /// `favouriteCities`, as written (empty when absent).
    pub cities: Vec<String>,
    /// `favouriteEventTypes`, as written (empty when absent).
    pub types: Vec<String>,
}

/// One order of a world loaded by [`RecsStore::import`]: `user` bought `event` at `at`
/// (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportedOrder {
    /// The buyer.
    pub user: Uuid,
    /// The event.
    pub event: EventId,
    /// When.
    pub at: i64,
}

/// Everything the store holds, in a canonical order: for audits and for proving that a
/// rebuild equals the incremental state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecsSnapshot {
    /// Every event's features, by id.
    pub events: Vec<EventFeatures>,
    /// `(user, event, live orders)`, by user then event.
    pub ownership: Vec<(Uuid, EventId, i64)>,
    /// `(event, distinct buyers)`, by event; events without buyers left out.
    pub buyers: Vec<(EventId, i64)>,
    /// `(a, b, buyers of both)` with `a` ≠ `b`, both directions, by `a` then `b`; zero
    /// counts left out.
    pub pairs: Vec<(EventId, EventId, i64)>,
    /// `(user, version, favourite cities, favourite types)`, by user.
    pub favourites: Vec<(Uuid, i64, Vec<String>, Vec<String>)>,
}

/// Everything the recommendations service persists.
#[async_trait]
pub trait RecsStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies the catalogue change of domain event `envelope_id` unless it was applied
    /// already; `false` for a redelivery. A status change or deletion of an unknown event
    /// changes nothing but is still recorded.
    async fn apply_catalog(
        &self,
        envelope_id: Uuid,
        change: &CatalogChange,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Applies the order change of domain event `envelope_id` unless it was applied already;
    /// `false` for a redelivery. Ownership, buyer counts and pair counts change together.
    async fn apply_order(
        &self,
        envelope_id: Uuid,
        change: &OrderChange,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Records the favourites of domain event `envelope_id` unless it was applied already
    /// (`false` for a redelivery); they replace the user's only when `change.version` is
    /// newer than the version held, so an older document delivered late changes nothing.
    async fn apply_preferences(
        &self,
        envelope_id: Uuid,
        change: &PreferencesChange,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The favourite cities and event types of `user` (empty when they set none).
    async fn favourites(&self, user: Uuid) -> Result<Favourites, StoreError>;

    /// Loads a whole world into a store that holds no orders, in one transaction: the state
    /// that applying `EventCreated` for each of `events`, then `OrderPlaced` for each of
    /// `orders`, then each of the preferences `favourites` would leave, without recording
    /// domain-event ids (none was delivered). For benchmarks and bulk loads: what is read
    /// afterwards is exactly what the consumers would have written, at a fraction of the
    /// cost of one transaction per domain event.
    async fn import(
        &self,
        events: &[EventFeatures],
        orders: &[ImportedOrder],
        favourites: &[PreferencesChange],
        now: i64,
    ) -> Result<(), StoreError>;

    /// Every known event's features.
    async fn events(&self) -> Result<Vec<EventFeatures>, StoreError>;

    /// The events `user` holds live orders for, with their latest order time.
    async fn purchases(&self, user: Uuid) -> Result<Vec<Purchase>, StoreError>;

    /// The co-purchase edges of each of `anchors`: at most `per_anchor` per anchor, most
    /// shared buyers first, only pairs with at least [`MIN_PAIR_BUYERS`] buyers.
    async fn co_purchases(
        &self,
        anchors: &[EventId],
        per_anchor: usize,
    ) -> Result<Vec<CoEdge>, StoreError>;

    /// Per event: distinct buyers, and buyers whose latest order is at or after `since`.
    async fn popularity(&self, since: i64) -> Result<Vec<(EventId, i64, i64)>, StoreError>;

    /// Everything, canonically ordered (see [`RecsSnapshot`]).
    async fn snapshot(&self) -> Result<RecsSnapshot, StoreError>;
}
