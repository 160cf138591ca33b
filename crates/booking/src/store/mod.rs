//! The booking store: one trait, two backends (SQLite, PostgreSQL), one conformance suite.
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
//! 2. reads the seats it needs, decides, and changes them with conditional updates
//!    (`… WHERE state = 0`, `… WHERE hold_id = $h AND state = 1`) whose row counts are checked,
//!    as a second guard;
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
    Audit, AvailabilityView, Hold, Inventory, Order, PaymentIntent, Policy, SeatView, Selection,
    WaitlistEntry,
};
use crate::error::BookingError;

pub mod conformance;

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
/// The most requests one batch decides.
pub(crate) const BATCH_MAX: usize = 64;

/// A hold or purchase waiting for its event's next batch, with what the batch decided for it
/// (sent once the batch commits).
pub(crate) enum Job {
    Hold {
        new: NewHold,
        now: i64,
        policy: Policy,
        reply: tokio::sync::oneshot::Sender<Result<Hold, BookingError>>,
        decided: Option<Hold>,
    },
    Purchase {
        input: PurchaseInput,
        now: i64,
        policy: Policy,
        reply: tokio::sync::oneshot::Sender<Result<(Order, String), BookingError>>,
        decided: Option<Box<(Order, String)>>,
    },
}

impl Job {
    fn now(&self) -> i64 {
        match self {
            Job::Hold { now, .. } | Job::Purchase { now, .. } => *now,
        }
    }

    /// Answers the request with a refusal or failure (a caller that went away is not
    /// waiting any more).
    fn refuse(self, e: BookingError) {
        match self {
            Job::Hold { reply, .. } => drop(reply.send(Err(e))),
            Job::Purchase { reply, .. } => drop(reply.send(Err(e))),
        }
    }

    /// Answers the request with what its committed batch decided.
    fn deliver(self) {
        let undecided = || BookingError::Internal(anyhow::anyhow!("delivered undecided"));
        match self {
            Job::Hold { reply, decided, .. } => drop(reply.send(decided.ok_or_else(undecided))),
            Job::Purchase { reply, decided, .. } => {
                drop(reply.send(decided.map(|d| *d).ok_or_else(undecided)));
            }
        }
    }
}

/// Whether `e` refuses the request (the transaction is still good) rather than reports a
/// failure of the store.
pub(crate) fn is_refusal(e: &BookingError) -> bool {
    !matches!(e, BookingError::Store(_) | BookingError::Internal(_))
}

/// The holds and purchases of each event waiting for a batch, for a store where a statement
/// costs a network round trip (PostgreSQL). While one batch of an event runs, the event's
/// next requests queue; the batch after it decides all of them in one transaction: one lock,
/// one read per request, and one statement for every write and the outbox append. Under an
/// on-sale rush the lock then costs a few round trips per batch instead of a dozen per request.
#[derive(Debug, Default)]
pub struct Batches {
    queues: std::sync::Mutex<std::collections::HashMap<Uuid, Vec<Job>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Hold { new, .. } => write!(f, "hold {}", new.hold_id),
            Job::Purchase { input, .. } => write!(f, "purchase of hold {}", input.hold_id),
        }
    }
}

impl Batches {
    /// Queues `job`; true when no batch of the event is running, so the caller must start
    /// the event's leader.
    pub(crate) fn submit(&self, event_id: Uuid, job: Job) -> bool {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match queues.entry(event_id) {
            std::collections::hash_map::Entry::Occupied(mut queue) => {
                queue.get_mut().push(job);
                false
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(vec![job]);
                true
            }
        }
    }

    /// The event's next batch; an empty one ends its leader (the next request starts one).
    pub(crate) fn take(&self, event_id: Uuid) -> Vec<Job> {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(queue) = queues.get_mut(&event_id) else {
            return Vec::new();
        };
        if queue.is_empty() {
            queues.remove(&event_id);
            return Vec::new();
        }
        let n = queue.len().min(BATCH_MAX);
        queue.drain(..n).collect()
    }
}

/// What a batch knows: the store as read once for all its requests when it began, and what
/// the requests decided earlier in the batch changed, which the store does not show yet (their
/// writes go at the batch's end).
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Confirmed tickets of the event, by buyer, as stored.
    pub(crate) owned: std::collections::HashMap<Uuid, i64>,
    /// Buyers with a live hold of the event, as stored.
    pub(crate) live: std::collections::HashSet<Uuid>,
    /// The states of the seats the batch's holds ask for, as stored.
    pub(crate) states: std::collections::HashMap<String, i64>,
    /// The first free seats in layout order (id, section, row, number), as stored: enough for
    /// every best-available hold of the batch without a section.
    pub(crate) free: Vec<(String, String, String, i64)>,
    /// The holds and payment intents the batch's purchases name, by (hold, intent), as stored.
    pub(crate) purchases: std::collections::HashMap<(Uuid, Uuid), (Hold, Option<PaymentIntent>)>,
    /// Seats taken by the batch's holds.
    pub(crate) taken: std::collections::HashSet<String>,
    /// Buyers with a hold in the batch.
    pub(crate) holders: std::collections::HashSet<Uuid>,
    /// Tickets bought in the batch, by buyer.
    pub(crate) bought: std::collections::HashMap<Uuid, i64>,
    /// Holds purchased in the batch.
    pub(crate) purchased: std::collections::HashSet<Uuid>,
}

mod postgres;
mod sql;
mod sqlite;

pub use sql::SqlBookingStore;

/// A hold to take.
#[derive(Debug, Clone)]
pub struct NewHold {
    /// Its id.
    pub hold_id: Uuid,
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
    pub intent_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// The hold it pays for.
    pub hold_id: Uuid,
    /// SHA-256 of the client secret, hex.
    pub secret_hash: String,
}

/// What the simulated processor does with a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The payment succeeds.
    Succeed,
    /// The card is declined: the intent is `declined` for good.
    Decline,
    /// The processor fails: nothing changes.
    Fail,
}

/// Who is asking, for idempotency: the caller, the route and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller.
    pub user_id: Uuid,
    /// The route, e.g. `POST /api/orders/purchase`.
    pub route: String,
    /// The client's key.
    pub key: String,
}

/// What an idempotency check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// First use of the key (or a takeover of a crashed request's): run the request.
    Started,
    /// The key completed: answer this again.
    Replay {
        /// HTTP status.
        status: u16,
        /// Body, byte for byte.
        body: String,
    },
}

/// A purchase to make.
#[derive(Debug, Clone)]
pub struct PurchaseInput {
    /// The new order's id.
    pub order_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The event named in the request.
    pub event_id: Uuid,
    /// The hold to buy.
    pub hold_id: Uuid,
    /// The seats named in the request (must be the hold's).
    pub seat_ids: Vec<String>,
    /// The payment.
    pub intent_id: Uuid,
    /// The idempotency record completed in the same transaction.
    pub key: IdempotencyKey,
}

/// Everything booking persists.
#[async_trait]
pub trait BookingStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

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
    async fn hold(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError>;

    /// Extends the caller's live hold to `min(now + extend_ms, created + max_lifetime_ms)`
    /// (never shortening it).
    async fn refresh_hold(
        &self,
        hold_id: Uuid,
        user_id: Uuid,
        extend_ms: i64,
        max_lifetime_ms: i64,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError>;

    /// Releases the caller's hold (a no-op for one already ended, except a purchased one).
    async fn release_hold(
        &self,
        hold_id: Uuid,
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
    ) -> Result<PaymentIntent, BookingError>;

    /// Confirms the caller's intent with its client secret (idempotent once succeeded).
    async fn confirm_intent(
        &self,
        intent_id: Uuid,
        user_id: Uuid,
        secret: &str,
        outcome: Confirmation,
        now: i64,
    ) -> Result<PaymentIntent, BookingError>;

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

    /// Turns a live, paid hold into an order with its tickets, and completes the idempotency
    /// record with the order as its answer, in one transaction. Returns the order and that
    /// answer's body.
    async fn purchase(
        &self,
        input: &PurchaseInput,
        now: i64,
        policy: Policy,
    ) -> Result<(Order, String), BookingError>;

    /// An order by id.
    async fn order(&self, order_id: Uuid) -> Result<Option<Order>, StoreError>;

    /// A buyer's orders, newest first, and how many there are.
    async fn orders_of(
        &self,
        user_id: Uuid,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Order>, u64), StoreError>;

    /// Cancels and refunds an order; its seats go back on sale.
    async fn cancel_order(
        &self,
        order_id: Uuid,
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
    let rows = (start..start + n)
        .map(|i| format!("(${i})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("WITH wanted (seat_id) AS (VALUES {rows})")
}

pub(crate) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A value of a deferred write.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Uuid(Uuid),
    Int(i64),
    Text(String),
}

/// A write of one row that a batch repeats for many rows (a seat taken, an order placed…).
/// PostgreSQL sends every row of one kind in one statement over arrays, the same text
/// whatever the number of rows, so the server plans it once per connection instead of
/// planning a statement of hundreds of parts for every batch.
#[derive(Debug)]
pub(crate) struct RowOp {
    /// The write of one row, its columns `$1`… (as SQLite runs it, row by row).
    pub(crate) one: &'static str,
    /// The write of many rows, `$1`… an array of each column in the same order.
    pub(crate) many: &'static str,
}

/// A seat taken by a hold: event, hold, seat. `state + 0`: the seats are found by their key,
/// never through `seats_by_state`, which a planner may otherwise pick and walk every available
/// seat of the event.
pub(crate) static SEAT_HELD: RowOp = RowOp {
    one: "UPDATE seats SET state = 1, hold_id = $2 WHERE event_id = $1 AND seat_id = $3 \
          AND state + 0 = 0",
    many: "UPDATE seats AS s SET state = 1, hold_id = u.hold_id \
           FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u (event_id, hold_id, seat_id) \
           WHERE s.event_id = u.event_id AND s.seat_id = u.seat_id AND s.state + 0 = 0",
};

/// A new hold: id, event, buyer, seats (JSON), quantity, kind, created, expires.
pub(crate) static HOLD_INSERTED: RowOp = RowOp {
    one: "INSERT INTO holds (id, event_id, user_id, seat_ids, quantity, kind, status, \
          created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8)",
    many: "INSERT INTO holds (id, event_id, user_id, seat_ids, quantity, kind, status, \
           created_at, expires_at) SELECT u.id, u.event_id, u.user_id, u.seat_ids, u.quantity, \
           u.kind, 'active', u.created_at, u.expires_at FROM unnest($1::uuid[], $2::uuid[], \
           $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[]) \
           AS u (id, event_id, user_id, seat_ids, quantity, kind, created_at, expires_at)",
};

/// The seats of a purchased hold sold to its order: hold, order.
pub(crate) static SEATS_SOLD: RowOp = RowOp {
    one: "UPDATE seats SET state = 2, order_id = $2, hold_id = NULL \
          WHERE hold_id = $1 AND state = 1",
    // Found through `seats_by_hold` by the list of holds: joined to the list instead, a
    // planner without statistics may walk the whole index (every hold since the last vacuum)
    // for each batch.
    many: "UPDATE seats AS s SET state = 2, hold_id = NULL, order_id = (SELECT u.order_id \
           FROM unnest($1::uuid[], $2::uuid[]) AS u (hold_id, order_id) \
           WHERE u.hold_id = s.hold_id) \
           WHERE s.hold_id = ANY($1::uuid[]) AND s.state = 1",
};

/// A new confirmed order: id, event, buyer, hold, intent, seats (JSON), quantity, amount,
/// currency, created.
pub(crate) static ORDER_INSERTED: RowOp = RowOp {
    one: "INSERT INTO orders (id, event_id, user_id, hold_id, payment_intent_id, seat_ids, \
          quantity, amount, currency, status, created_at) \
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'confirmed', $10)",
    many: "INSERT INTO orders (id, event_id, user_id, hold_id, payment_intent_id, seat_ids, \
           quantity, amount, currency, status, created_at) \
           SELECT u.id, u.event_id, u.user_id, u.hold_id, u.intent_id, u.seat_ids, u.quantity, \
           u.amount, u.currency, 'confirmed', u.created_at FROM unnest($1::uuid[], $2::uuid[], \
           $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::bigint[], $8::bigint[], \
           $9::text[], $10::bigint[]) AS u (id, event_id, user_id, hold_id, intent_id, \
           seat_ids, quantity, amount, currency, created_at)",
};

/// A new valid ticket: id, order, event, seat, code.
pub(crate) static TICKET_INSERTED: RowOp = RowOp {
    one: "INSERT INTO tickets (id, order_id, event_id, seat_id, code, status) \
          VALUES ($1, $2, $3, $4, $5, 'valid')",
    many: "INSERT INTO tickets (id, order_id, event_id, seat_id, code, status) \
           SELECT u.id, u.order_id, u.event_id, u.seat_id, u.code, 'valid' \
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[]) \
           AS u (id, order_id, event_id, seat_id, code)",
};

/// A hold ended by its purchase: hold, when.
pub(crate) static HOLD_PURCHASED: RowOp = RowOp {
    one: "UPDATE holds SET status = 'purchased', ended_at = $2 WHERE id = $1",
    many: "UPDATE holds AS h SET status = 'purchased', ended_at = u.ended_at \
           FROM unnest($1::uuid[], $2::bigint[]) AS u (id, ended_at) WHERE h.id = u.id",
};

/// A purchase's idempotency key completed with its answer (201): buyer, route, key, body.
pub(crate) static KEY_COMPLETED: RowOp = RowOp {
    one: "UPDATE idempotency_keys SET status = 'complete', response_status = 201, \
          response_body = $4 WHERE user_id = $1 AND route = $2 AND key = $3",
    many: "UPDATE idempotency_keys AS k SET status = 'complete', response_status = 201, \
           response_body = u.body FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) \
           AS u (user_id, route, key, body) \
           WHERE k.user_id = u.user_id AND k.route = u.route AND k.key = u.key",
};

/// One deferred write: a statement numbered `$1`… with its values, and the number of rows it
/// must change when that is known.
#[derive(Debug)]
pub(crate) struct Write {
    pub(crate) sql: std::borrow::Cow<'static, str>,
    pub(crate) args: Vec<Arg>,
    pub(crate) expect: Option<u64>,
    /// The kind of row write it is, if it is one.
    pub(crate) op: Option<&'static RowOp>,
}

/// The writes of an inventory transaction that nothing reads before its end, sent together
/// with its outbox append: as one statement of data-modifying common-table expressions on
/// PostgreSQL (one round trip while the event is locked, instead of one per write), one after
/// another on the in-process SQLite connection. A transaction flushes them before any read
/// that could see what they change.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    pub(crate) parts: Vec<Write>,
}

/// What one statement sends: a write, or (`many`) all the rows of one [`RowOp`].
#[derive(Debug)]
pub(crate) struct Statement<'w> {
    pub(crate) sql: &'w str,
    pub(crate) writes: Vec<&'w Write>,
    pub(crate) many: bool,
}

impl Statement<'_> {
    /// Checks the number of rows the statement changed against what its writes expected
    /// (their sum, when every one of them knows).
    pub(crate) fn check(&self, changed: u64) -> Result<(), StoreError> {
        let expected: Option<u64> = self.writes.iter().map(|w| w.expect).sum();
        match expected {
            Some(expected) if expected != changed => Err(StoreError::Other(anyhow::anyhow!(
                "changed {changed} rows where {expected} were expected: {}",
                self.sql
            ))),
            _ => Ok(()),
        }
    }
}

impl Writes {
    pub(crate) fn push(
        &mut self,
        sql: impl Into<std::borrow::Cow<'static, str>>,
        args: Vec<Arg>,
        expect: Option<u64>,
    ) {
        self.parts.push(Write {
            sql: sql.into(),
            args,
            expect,
            op: None,
        });
    }

    /// Adds a row write of kind `op`, its columns `args`.
    pub(crate) fn push_row(&mut self, op: &'static RowOp, args: Vec<Arg>, expect: Option<u64>) {
        self.parts.push(Write {
            sql: op.one.into(),
            args,
            expect,
            op: Some(op),
        });
    }

    /// The statements that send the writes: one per write, or with `merge` one per kind of
    /// row write (in the order each kind first appears) after the other writes. A batch's
    /// writes all touch different rows, so in one statement their order does not matter.
    pub(crate) fn statements(&self, merge: bool) -> Vec<Statement<'_>> {
        let mut out: Vec<Statement<'_>> = Vec::with_capacity(self.parts.len());
        let mut kinds: Vec<Statement<'_>> = Vec::new();
        for write in &self.parts {
            match write.op {
                Some(op) if merge => {
                    match kinds.iter_mut().find(|k| std::ptr::eq(k.sql, op.many)) {
                        Some(kind) => kind.writes.push(write),
                        None => kinds.push(Statement {
                            sql: op.many,
                            writes: vec![write],
                            many: true,
                        }),
                    }
                }
                _ => out.push(Statement {
                    sql: &write.sql,
                    writes: vec![write],
                    many: false,
                }),
            }
        }
        out.extend(kinds);
        out
    }
}

/// `sql` with each `$n` renumbered `$n+offset`, to join statements into one.
pub(crate) fn shift_placeholders(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some(&(_, d)) = chars.peek() {
            let Some(v) = d.to_digit(10) else { break };
            n = n * 10 + v as usize;
            digits = true;
            chars.next();
        }
        if digits {
            out.push_str(&(n + offset).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_writes_of_one_kind_merge_into_one_statement_and_are_checked_together() {
        let (hold, order) = (Uuid::now_v7(), Uuid::now_v7());
        let mut writes = Writes::default();
        writes.push_row(
            &SEATS_SOLD,
            vec![Arg::Uuid(hold), Arg::Uuid(order)],
            Some(2),
        );
        writes.push(
            "UPDATE inventories SET held = $1",
            vec![Arg::Int(0)],
            Some(1),
        );
        writes.push_row(
            &SEATS_SOLD,
            vec![Arg::Uuid(hold), Arg::Uuid(order)],
            Some(1),
        );
        writes.push_row(
            &KEY_COMPLETED,
            vec![
                Arg::Uuid(hold),
                Arg::Text("r".into()),
                Arg::Text("k".into()),
                Arg::Text("{}".into()),
            ],
            None,
        );

        let merged = writes.statements(true);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0].sql, "UPDATE inventories SET held = $1");
        assert!(!merged[0].many);
        assert_eq!(merged[1].sql, SEATS_SOLD.many);
        assert_eq!(merged[1].writes.len(), 2);
        assert!(merged[1].check(3).is_ok());
        assert!(merged[1].check(2).is_err());
        // A kind with a write that does not know its count is not checked.
        assert!(merged[2].check(7).is_ok());

        let one_by_one = writes.statements(false);
        assert_eq!(one_by_one.len(), 4);
        assert_eq!(one_by_one[0].sql, SEATS_SOLD.one);
        assert!(one_by_one[0].check(2).is_ok());
        assert!(one_by_one[0].check(1).is_err());
    }

    #[test]
    fn placeholders_shift_past_the_statements_before() {
        assert_eq!(
            shift_placeholders("a = $1 AND b = ANY($2::uuid[]) AND c = $10", 3),
            "a = $4 AND b = ANY($5::uuid[]) AND c = $13"
        );
    }
}
