//! The analytics store: one trait, one body for both engines ([`sql::SqlAnalyticsStore`]),
//! one conformance suite (in the crate's tests, `tests/api/conformance.rs`).
//!
//! It is a projection of two streams: the events service's (who owns each event, its name,
//! currency, status) and booking's (every change of an event's inventory). Each applied
//! domain event's id is recorded in `applied_events` in the same transaction as its effect,
//! so a redelivery changes nothing and replaying the streams rebuilds the same state. Every
//! counter has its reverse: a cancellation takes its order, tickets and revenue back out of
//! the totals (and is counted in the minute it happened).

use async_trait::async_trait;
use evently_core::db::StoreError;
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::domain::{Activity, Change};

mod postgres;
pub mod sql;
mod sqlite;

pub use sql::SqlAnalyticsStore;

/// Whose events a question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One event.
    Event(Uuid),
    /// Every event of one organizer.
    Organizer(Uuid),
    /// Every event.
    Platform,
}

/// One event's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFigures {
    /// The event.
    pub event_id: Uuid,
    /// Its organizer, once the events service described it.
    pub organizer_id: Option<Uuid>,
    /// Its title (empty until described).
    pub name: String,
    /// Its status (empty until described).
    pub status: String,
    /// When its sale opens (epoch ms), once described.
    pub sale_start: Option<i64>,
    /// Its IANA time zone (empty until described).
    pub time_zone: String,
    /// When analytics first heard of it (epoch ms).
    pub created_at: Option<i64>,
    /// Whether it was deleted.
    pub deleted: bool,
    /// Seats in all (newest availability).
    pub capacity: i64,
    /// Seats neither sold nor held (newest availability).
    pub available: i64,
    /// Seats in live holds (newest availability).
    pub held: i64,
    /// Seats sold (newest availability).
    pub sold: i64,
    /// The newest availability version applied.
    pub version: i64,
    /// Orders not cancelled.
    pub orders: i64,
    /// Tickets of orders not cancelled.
    pub tickets: i64,
    /// Orders cancelled.
    pub cancellations: i64,
    /// Holds created (buyer holds and waitlist offers).
    pub holds_created: i64,
    /// Holds that ran out.
    pub holds_expired: i64,
    /// Holds let go by their buyer.
    pub holds_released: i64,
    /// Holds ended by the event's cancellation.
    pub holds_cancelled: i64,
    /// Holds that became orders.
    pub holds_converted: i64,
    /// Waitlist offers made.
    pub waitlist_offers: i64,
    /// Buyers waiting on the waitlist now (an offer takes its entry off the list).
    pub waitlist_length: i64,
    /// When the event first sold out (epoch ms).
    pub sold_out_at: Option<i64>,
    /// `(gross, refunded)` per currency.
    pub money: BTreeMap<String, (i64, i64)>,
}

impl EventFigures {
    /// Whether `caller` may see these figures: an event not deleted, and theirs or any for
    /// an admin.
    pub fn visible_to(&self, caller: &evently_core::identity::Identity) -> bool {
        !self.deleted
            && (caller.role == evently_core::identity::Role::Admin
                || self.organizer_id == Some(caller.user_id.0))
    }

    /// Holds still live: created, less those that ended one way or another.
    pub fn live_holds(&self) -> i64 {
        self.holds_created
            - self.holds_expired
            - self.holds_released
            - self.holds_cancelled
            - self.holds_converted
    }
}

/// Everything the store holds, canonically ordered: for proving that a rebuild equals the
/// incremental state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnalyticsSnapshot {
    /// Every event's figures, by id.
    pub events: Vec<EventFigures>,
    /// `(event, minute, activity)`, by event then minute.
    pub minutes: Vec<(Uuid, i64, Activity)>,
}

/// Everything the analytics service persists.
#[async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies `change` of domain event `envelope_id` unless it was applied already; `false`
    /// for a redelivery. The effect and the record of it commit together.
    async fn apply(&self, envelope_id: Uuid, change: &Change, now: i64)
    -> Result<bool, StoreError>;

    /// Applies each `(envelope_id, change)` of `batch` in order, as [`Self::apply`] does, in
    /// one transaction: all of it or, on an error, none of it. Returns, per item, whether it
    /// was applied (`false` for a redelivery). A consumer's whole delivery then costs one
    /// commit instead of one per domain event.
    async fn apply_batch(
        &self,
        batch: &[(Uuid, Change)],
        now: i64,
    ) -> Result<Vec<bool>, StoreError>;

    /// One event's figures; `None` if analytics never heard of it.
    async fn event(&self, event_id: Uuid) -> Result<Option<EventFigures>, StoreError>;

    /// The figures of every event in `scope` (deleted ones included), by id.
    async fn events(&self, scope: Scope) -> Result<Vec<EventFigures>, StoreError>;

    /// The activity of `scope` per minute in `[from, to)`, summed over its events, by minute.
    async fn minutes(
        &self,
        scope: Scope,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Activity)>, StoreError>;

    /// Everything, canonically ordered (see [`AnalyticsSnapshot`]).
    async fn snapshot(&self) -> Result<AnalyticsSnapshot, StoreError>;
}
