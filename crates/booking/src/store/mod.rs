//! The booking store: one trait, one body written once for both engines (SQLite,
//! PostgreSQL) over [`evently_core::sql`], one conformance suite (the crate's
//! `tests/conformance/`, compiled for tests only, one module per area).
//!
//! # Layout
//!
//! - [`sql`]: [`SqlBookingStore`] and its [`BookingStore`] methods, each one atomic unit.
//! - `inventory`: an event's inventory transaction (lock, sweep, catalog snapshots, the
//!   event-cancellation saga); `holds`, `purchase`, `waitlist`: the steps of each concern
//!   inside that transaction; `rows`: column lists and row readers.
//! - `batch`: the per-event queue in front of the lock, PostgreSQL's batches, and the early
//!   refusals read outside the lock; `writes`: a transaction's deferred row writes.
//! - `sqlite`, `postgres`: only what differs between the engines (opening the store, how
//!   row writes are sent, `ANALYZE`).
//!
//! # Concurrency design
//!
//! Every change of an event's inventory (hold, release, refresh, expiry, purchase, cancel,
//! waitlist, the event-cancellation saga) is one transaction that first locks the event's
//! `inventories` row (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the single writer
//! connection already serialises every write transaction). Inside it the transaction:
//!
//! 1. sweeps the event's expired holds (their seats go back on sale and waiting buyers are
//!    offered them), so a decision never rests on a hold that is dead. The row's `sweep_at`
//!    is kept at or before the earliest expiry among the event's active holds, so the sweep
//!    looks for expired holds only once one may exist, not on every change of a rush;
//! 2. reads the facts it needs, decides with the pure rules of [`crate::domain`]
//!    ([`decide_hold`](crate::domain::decide_hold),
//!    [`check_purchase`](crate::domain::check_purchase) …), and changes the seats with
//!    conditional updates (`… WHERE state = 0`, `… WHERE hold_id = $h AND state = 1`) whose
//!    row counts are checked, as a second guard;
//! 3. moves the event's counters (`held`, `sold`, `version`; a `CHECK` keeps
//!    `held + sold <= capacity`) and appends the domain events to the outbox.
//!
//! Per-event serialisation was chosen over row locks on seats because a hold touches a set of
//! seats chosen at request time: taking seat locks one by one deadlocks when two buyers want
//! overlapping sets in different orders, and best-available needs a consistent view of what is
//! free. One lock per event makes each decision see a settled inventory, keeps the counters
//! exact (they feed availability and sold-out), and costs one row lock; different events never
//! wait for each other. The unique index on valid tickets per seat is the last guard: even a
//! bug in the above could not sell a seat twice.
//!
//! Payment intents and idempotency records do not touch the inventory and use conditional
//! updates on their own rows.
//!
//! A store method fails with [`StoreError`] (inside `BookingError::Store`) or is refused with
//! one of `BookingError`'s domain reasons, mostly the domain's refusals (`HoldRefusal`,
//! `PurchaseRefusal` …) converted; it never builds an HTTP problem: that happens once, in
//! `From<BookingError> for Problem`.
//!
//! In front of the database lock each process queues its own inventory changes per event
//! ([`EventGates`]): of the requests of one process, only one at a time waits for an event's
//! lock in the database. Hundreds of buyers of one event would otherwise all wait on the same
//! row lock, and PostgreSQL wakes every waiter at each commit only for all but one to wait
//! again. The gates are an optimisation; the database lock alone keeps every rule, also across
//! processes.
//!
//! On PostgreSQL, where every statement is a network round trip, the holds and purchases that
//! queue for an event while a transaction holds its lock are then decided together, up to
//! [`BATCH_MAX`] in one transaction ([`Batches`]): one lock and sweep, each request's checks
//! in order against the store plus what the requests before it in the batch decided (an
//! [`Overlay`]), refusals answered at once, and every write of the batch with its outbox
//! append in one statement ([`Writes`]) before the one commit. A request that would replace
//! the buyer's live hold runs alone after the batch, so a refusal still leaves the old hold
//! untouched; if the store fails mid-batch, every request not yet answered runs alone.

use async_trait::async_trait;
use evently_bus::{DomainEvent, Envelope};
use evently_core::db::StoreError;
use uuid::Uuid;

use crate::domain::{
    Audit, AvailabilityView, Hold, HoldId, IntentOfHold, Inventory, Order, OrderId, PaymentIntent,
    PaymentIntentId, Policy, SeatView, Selection, WaitlistEntry,
};
use crate::error::BookingError;

/// One async mutex per stripe of event ids: the in-process queue in front of the database's
/// per-event lock (see the module docs). Striped, so memory stays fixed however many events
/// there are; two events sharing a stripe only queue behind each other within one process.
#[derive(Debug)]
pub struct EventGates {
    stripes: Box<[tokio::sync::Mutex<()>]>,
}

impl Default for EventGates {
    fn default() -> Self {
        Self {
            stripes: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl EventGates {
    /// No gates: for a store whose writes already queue in process (SQLite's single write
    /// connection), where holding a turn while a group commit completes would only keep the
    /// next change of the event out of that commit.
    pub fn none() -> Self {
        Self {
            stripes: Box::new([]),
        }
    }

    /// Waits for `event_id`'s turn; the turn lasts as long as the guard.
    pub async fn enter(&self, event_id: Uuid) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.stripes.is_empty() {
            return None;
        }
        let bits = event_id.as_u128();
        let folded = (bits ^ (bits >> 64)) as u64;
        let stripe = usize::try_from(folded % self.stripes.len() as u64).unwrap_or(0);
        Some(self.stripes[stripe].lock().await)
    }
}

/// Whether the hold whose id is `$hold` is live at `$now` (SQL text, for `concat!`): a value
/// of its row found by its key. Written as `EXISTS (… h.status = 'active' …)` instead, it lets
/// PostgreSQL's generic plan walk a partial index of every active hold, as many as the rush has
/// buyers paying.
macro_rules! hold_is_live {
    ($hold:literal, $now:literal) => {
        concat!(
            "(SELECT h.status = 'active' AND h.expires_at > ",
            $now,
            " FROM holds h WHERE h.id = ",
            $hold,
            ")"
        )
    };
}

mod batch;
mod holds;
mod inventory;
mod postgres;
mod purchase;
mod rows;
mod sql;
mod sqlite;
#[cfg(test)]
mod tests;
mod waitlist;
mod writes;

pub(crate) use batch::{Batches, Job, Overlay};
pub use sql::SqlBookingStore;
pub(crate) use writes::{
    Arg, HOLD_INSERTED, HOLD_PURCHASED, INTENT_PAID, KEY_COMPLETED, ORDER_INSERTED, SEAT_HELD,
    SEATS_SOLD, TICKET_INSERTED, Write, Writes, shift_placeholders,
};

/// A hold to take.
#[derive(Debug, Clone)]
pub struct NewHold {
    /// Its id.
    pub hold_id: HoldId,
    /// The event.
    pub event_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// What to hold.
    pub selection: Selection,
    /// How long it lives (ms).
    pub ttl_ms: i64,
}

/// A payment intent to create.
#[derive(Debug, Clone)]
pub struct NewIntent {
    /// Its id.
    pub intent_id: PaymentIntentId,
    /// The payer.
    pub user_id: Uuid,
    /// The hold it pays for.
    pub hold_id: HoldId,
    /// SHA-256 of the client secret, hex.
    pub secret_hash: String,
}

pub use crate::domain::Confirmation;

pub use crate::domain::{IdempotencyKey, Payment, Purchase};

pub use evently_core::idempotency::IdempotencyStart;

/// Everything booking persists.
#[async_trait]
pub trait BookingStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The board of fully sold events, where this store sees every write that could free a
    /// seat ([`crate::sold_out`]); `None` where it cannot (another process may write).
    fn sold_out_board(&self) -> Option<std::sync::Arc<crate::sold_out::SoldOutBoard>> {
        None
    }

    /// Applies one of the events service's domain events to booking's read model (creating
    /// inventories, following status and sale window, and on cancellation or deletion running
    /// the refund saga), once per envelope id. False if it was applied before.
    async fn apply_catalog(
        &self,
        envelope: &Envelope,
        event: &DomainEvent,
        now: i64,
        policy: Policy,
    ) -> Result<bool, BookingError>;

    /// The read model and counters of an event.
    async fn inventory(&self, event_id: Uuid) -> Result<Option<Inventory>, StoreError>;

    /// Exact availability at `now` (holds expired but not yet swept count as available).
    async fn availability(
        &self,
        event_id: Uuid,
        now: i64,
    ) -> Result<Option<AvailabilityView>, StoreError>;

    /// The seat map at `now`.
    async fn seat_map(&self, event_id: Uuid, now: i64)
    -> Result<Option<Vec<SeatView>>, StoreError>;

    /// Takes a hold, all or nothing; the buyer's earlier live hold on the event is released
    /// first (it never blocks them).
    async fn create_hold(
        &self,
        hold: &NewHold,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError>;

    /// A hold by id.
    async fn hold(&self, hold_id: HoldId) -> Result<Option<Hold>, StoreError>;

    /// Extends the caller's live hold to `min(now + extend_ms, created + max_lifetime_ms)`
    /// (never shortening it).
    async fn refresh_hold(
        &self,
        hold_id: HoldId,
        user_id: Uuid,
        extend_ms: i64,
        max_lifetime_ms: i64,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError>;

    /// Releases the caller's hold (a no-op for one already ended, except a purchased one).
    async fn release_hold(
        &self,
        hold_id: HoldId,
        user_id: Uuid,
        now: i64,
        policy: Policy,
    ) -> Result<(), BookingError>;

    /// Creates a payment intent for the caller's live hold, the amount computed from the
    /// hold's seats; earlier unconfirmed intents of the hold are cancelled.
    async fn create_intent(
        &self,
        intent: &NewIntent,
        now: i64,
    ) -> Result<IntentOfHold, BookingError>;

    /// Confirms the caller's intent with its client secret (idempotent once succeeded).
    async fn confirm_intent(
        &self,
        intent_id: PaymentIntentId,
        user_id: Uuid,
        secret: &str,
        outcome: Confirmation,
        now: i64,
    ) -> Result<IntentOfHold, BookingError>;

    /// Claims an idempotency key for a request whose body hashes to `fingerprint`.
    async fn idempotency_begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: i64,
        lock_ms: i64,
        ttl_ms: i64,
    ) -> Result<IdempotencyStart, BookingError>;

    /// Stores a final answer for a claimed key.
    async fn idempotency_finish(
        &self,
        key: &IdempotencyKey,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError>;

    /// Gives a claimed key up (its request's answer is not to be replayed).
    async fn idempotency_abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// Renews the lease of a key still in flight whose lease was last set at `locked_at`;
    /// false if it completed, was given up or taken over.
    async fn idempotency_renew(
        &self,
        key: &IdempotencyKey,
        locked_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Turns a live, paid hold into an order with its tickets, and completes the idempotency
    /// record with the order as its answer, in one transaction. Returns the order and that
    /// answer's body.
    async fn purchase(
        &self,
        input: &Purchase,
        now: i64,
        policy: Policy,
    ) -> Result<(Order, String), BookingError>;

    /// An order by id.
    async fn order(&self, order_id: OrderId) -> Result<Option<Order>, StoreError>;

    /// A buyer's orders, newest first, and how many there are.
    async fn orders_of(
        &self,
        user_id: Uuid,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Order>, u64), StoreError>;

    /// One page of an event's orders with their tickets, by order id: at most `limit`
    /// orders whose id is above `after` (keyset pagination, so a page costs the same
    /// wherever it starts, and orders placed meanwhile never shift the pages).
    async fn orders_of_event(
        &self,
        event_id: Uuid,
        after: Option<OrderId>,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError>;

    /// Cancels and refunds an order; its seats go back on sale.
    async fn cancel_order(
        &self,
        order_id: OrderId,
        reason: &str,
        now: i64,
        policy: Policy,
    ) -> Result<Order, BookingError>;

    /// Puts the caller on the event's waitlist (or returns their open entry).
    async fn join_waitlist(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        quantity: i64,
        now: i64,
        policy: Policy,
    ) -> Result<WaitlistEntry, BookingError>;

    /// The caller's latest waitlist entry for the event.
    async fn waitlist_entry(
        &self,
        event_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<WaitlistEntry>, StoreError>;

    /// Takes the caller off the waitlist (releasing an offer they hold).
    async fn leave_waitlist(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        now: i64,
        policy: Policy,
    ) -> Result<(), BookingError>;

    /// Sweeps every event with expired holds; returns how many holds expired.
    async fn expire_due(&self, now: i64, policy: Policy) -> Result<usize, BookingError>;

    /// When the next live hold expires.
    async fn next_expiry(&self) -> Result<Option<i64>, StoreError>;

    /// Forgets idempotency records past their retention.
    async fn purge_idempotency(&self, now: i64) -> Result<u64, StoreError>;

    /// A payment intent by id, with the order that it paid for, if any.
    async fn payment_intent(
        &self,
        intent_id: PaymentIntentId,
    ) -> Result<Option<(PaymentIntent, Option<OrderId>)>, StoreError>;

    /// Refunds every paid intent that no order uses and whose hold is no longer active
    /// (each once, with its `PaymentRefunded`); returns how many. Ending a hold already
    /// refunds its paid intents in the same transaction, so this finds any only if that
    /// guard failed: it is the recovery task's second line.
    async fn reconcile_payments(&self, now: i64) -> Result<usize, StoreError>;

    /// Counts an event's inventory from its rows.
    async fn audit(&self, event_id: Uuid, now: i64) -> Result<Option<Audit>, StoreError>;
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt {what}: {e}"))
}

pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(e.into()))
}

pub(crate) fn seat_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("seat list", e))
}

/// `$start, $start+1, …` for `n` parameters.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `WITH wanted (seat_id) AS (VALUES ($start), …)`: the seats a statement looks up, as a
/// table of `n` rows to join `seats` with on both columns of its key. An `IN` list would let
/// PostgreSQL, before it has statistics (a new event's seats are all one event), scan every
/// seat of the event by `event_id` and filter the list out of them; a join from the list
/// looks each seat up by the whole key.
pub(crate) fn wanted_seats(start: usize, n: usize) -> String {
    format!("WITH wanted (seat_id) AS (VALUES {})", value_rows(start, n))
}

/// `($start), ($start+1), …`: `n` rows of one parameter each, for a `VALUES` list.
pub(crate) fn value_rows(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("(${i})"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
