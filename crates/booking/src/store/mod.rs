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
    Audit, AvailabilityView, Candidate, Hold, HoldId, Inventory, Order, OrderId, PaymentIntent,
    PaymentIntentId, Policy, SeatState, SeatView, Selection, WaitlistEntry,
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
    pub(crate) states: std::collections::HashMap<String, SeatState>,
    /// The first free seats in layout order (id, section, row, number), as stored: enough for
    /// every best-available hold of the batch without a section.
    pub(crate) free: Vec<Candidate>,
    /// The holds and payment intents the batch's purchases name, by (hold, intent), as stored.
    pub(crate) purchases:
        std::collections::HashMap<(HoldId, PaymentIntentId), (Hold, Option<PaymentIntent>)>,
    /// Seats taken by the batch's holds.
    pub(crate) taken: std::collections::HashSet<String>,
    /// Buyers with a hold in the batch.
    pub(crate) holders: std::collections::HashSet<Uuid>,
    /// Tickets bought in the batch, by buyer.
    pub(crate) bought: std::collections::HashMap<Uuid, i64>,
    /// Holds purchased in the batch.
    pub(crate) purchased: std::collections::HashSet<HoldId>,
}

pub mod postgres;
pub mod sqlite;

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
    pub order_id: OrderId,
    /// The buyer.
    pub user_id: Uuid,
    /// The event named in the request.
    pub event_id: Uuid,
    /// The hold to buy.
    pub hold_id: HoldId,
    /// The seats named in the request (must be the hold's).
    pub seat_ids: Vec<String>,
    /// The payment.
    pub intent_id: PaymentIntentId,
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
    ) -> Result<PaymentIntent, BookingError>;

    /// Confirms the caller's intent with its client secret (idempotent once succeeded).
    async fn confirm_intent(
        &self,
        intent_id: PaymentIntentId,
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
    async fn order(&self, order_id: OrderId) -> Result<Option<Order>, StoreError>;

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

/// Generates a [`BookingStore`] implementation for a backend type with `reader()` and
/// `writer()` pool accessors, given its database type, row type, the clause that locks a
/// selected row (`FOR UPDATE`, or nothing where writes are already serialised) and its
/// function that sends a transaction's deferred [`Writes`] with its outbox append. The
/// invoking module names its SQL API `sql`: sqlx itself for PostgreSQL, `evently_core::sqlite`
/// (the same API over in-process connections) for SQLite.
macro_rules! backend {
    ($store:ty, $db:ty, $row:ty, $lock:literal, $flush:path, $alone:path) => {
        use evently_bus::catalog::{EventSnapshot, InventoryChange};
        use evently_bus::envelope::time_to_ms as to_ms;
        use evently_bus::{DomainEvent, Envelope};
        use evently_core::db::StoreError;
        use sql::Row;
        use std::collections::BTreeMap;
        use uuid::Uuid;

        use $crate::domain::{
            Audit, AvailabilityView, Candidate, ConfirmStep, EVENT_CANCELLED, GA_SECTION, Hold,
            HoldEnded, HoldFacts, HoldId, HoldKind, HoldStatus, IntentStatus, Inventory, Order,
            OrderId, OrderStatus, PaymentIntent, PaymentIntentId, Policy, PurchaseFacts,
            SeatState, SeatView, SeatsAsked, Selection, Ticket, TicketId, TicketStatus, WaitlistEntry,
            WaitlistStatus, best_window, check_purchase, confirmation_lost, constant_time_eq,
            decide_confirmation, decide_hold, ga_seat_id, hold_is_live, intent_amount,
            may_join_waitlist, may_pay_for, may_release, offer_window, open_for_holds,
            purchase_without_event, random_token, refreshed_expiry, refuse_best_early,
            refuse_named_early, seat_blocks, seat_shown_as,
            sha256_hex, within_ticket_limit,
        };
        use $crate::domain::idempotency::{KeyDecision, StoredKey, decide_key};
        use $crate::error::BookingError;
        use $crate::store::{
            BookingStore, Confirmation, IdempotencyKey, IdempotencyStart, NewHold, NewIntent,
            PurchaseInput, corrupt, count, json, placeholders, seat_list, wanted_seats, Arg,
            Writes, Job, Overlay, is_refusal, SEAT_HELD, HOLD_INSERTED, SEATS_SOLD,
            ORDER_INSERTED, TICKET_INSERTED, HOLD_PURCHASED, KEY_COMPLETED,
        };

        type Tx<'a> = sql::Transaction<'a, $db>;

        const INVENTORY_COLUMNS: &str = "event_id, organizer_id, status, deleted, event_date, \
            sale_start, sale_end, currency, base_price, section_prices, reserved, capacity, \
            held, sold, version, sweep_at";
        const HOLD_COLUMNS: &str =
            "id, event_id, user_id, seat_ids, kind, status, created_at, expires_at";
        const ORDER_COLUMNS: &str = "id, event_id, user_id, hold_id, payment_intent_id, \
            seat_ids, amount, currency, status, refunded_amount, cancel_reason, created_at";

        fn inventory_from(row: &$row) -> Result<Inventory, StoreError> {
            let prices: String = row.try_get("section_prices")?;
            Ok(Inventory {
                event_id: row.try_get("event_id")?,
                organizer_id: row.try_get("organizer_id")?,
                status: row.try_get("status")?,
                deleted: row.try_get::<i64, _>("deleted")? != 0,
                event_date: row.try_get("event_date")?,
                sale_start: row.try_get("sale_start")?,
                sale_end: row.try_get("sale_end")?,
                currency: row.try_get("currency")?,
                base_price: row.try_get("base_price")?,
                section_prices: serde_json::from_str(&prices)
                    .map_err(|e| corrupt("section_prices", e))?,
                reserved: row.try_get::<i64, _>("reserved")? != 0,
                capacity: row.try_get("capacity")?,
                held: row.try_get("held")?,
                sold: row.try_get("sold")?,
                version: row.try_get("version")?,
                sweep_at: row.try_get("sweep_at")?,
            })
        }

        fn hold_from(row: &$row) -> Result<Hold, StoreError> {
            let seats: String = row.try_get("seat_ids")?;
            let kind: String = row.try_get("kind")?;
            let status: String = row.try_get("status")?;
            Ok(Hold {
                id: HoldId(row.try_get("id")?),
                event_id: row.try_get("event_id")?,
                user_id: row.try_get("user_id")?,
                seat_ids: seat_list(&seats)?,
                kind: kind.parse().map_err(|e| corrupt("hold kind", e))?,
                status: status.parse().map_err(|e| corrupt("hold status", e))?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        fn intent_from(row: &$row) -> Result<PaymentIntent, StoreError> {
            intent_named(row, ["id", "hold_id", "event_id", "user_id", "amount", "currency",
                "status", "secret_hash"])
        }

        /// The payment intent of a purchase's hold-and-intent row, if there was one.
        fn joined_intent_from(row: &$row) -> Result<Option<PaymentIntent>, StoreError> {
            if row.try_get::<Option<Uuid>, _>("intent_id")?.is_none() {
                return Ok(None);
            }
            intent_named(row, ["intent_id", "intent_hold_id", "intent_event_id",
                "intent_user_id", "intent_amount", "intent_currency", "intent_status",
                "intent_secret_hash"])
            .map(Some)
        }

        /// A payment intent from the columns `names`: id, hold, event, user, amount, currency,
        /// status and secret hash.
        fn intent_named(row: &$row, names: [&str; 8]) -> Result<PaymentIntent, StoreError> {
            let [id, hold_id, event_id, user_id, amount, currency, status, secret_hash] = names;
            let status: String = row.try_get(status)?;
            Ok(PaymentIntent {
                id: PaymentIntentId(row.try_get(id)?),
                hold_id: HoldId(row.try_get(hold_id)?),
                event_id: row.try_get(event_id)?,
                user_id: row.try_get(user_id)?,
                amount: row.try_get(amount)?,
                currency: row.try_get(currency)?,
                status: status.parse().map_err(|e| corrupt("payment intent status", e))?,
                secret_hash: row.try_get(secret_hash)?,
            })
        }

        fn order_from(row: &$row, tickets: Vec<Ticket>) -> Result<Order, StoreError> {
            let seats: String = row.try_get("seat_ids")?;
            let status: String = row.try_get("status")?;
            Ok(Order {
                order_id: OrderId(row.try_get("id")?),
                event_id: row.try_get("event_id")?,
                user_id: row.try_get("user_id")?,
                hold_id: HoldId(row.try_get("hold_id")?),
                payment_intent_id: PaymentIntentId(row.try_get("payment_intent_id")?),
                seat_ids: seat_list(&seats)?,
                amount: row.try_get("amount")?,
                currency: row.try_get("currency")?,
                status: status.parse().map_err(|e| corrupt("order status", e))?,
                refunded_amount: row.try_get("refunded_amount")?,
                cancel_reason: row.try_get("cancel_reason")?,
                created_at: evently_bus::envelope::time_from_ms(row.try_get("created_at")?),
                tickets,
            })
        }

        fn ticket_from(row: &$row) -> Result<Ticket, StoreError> {
            let status: String = row.try_get("status")?;
            Ok(Ticket {
                ticket_id: TicketId(row.try_get("id")?),
                seat_id: row.try_get("seat_id")?,
                code: row.try_get("code")?,
                status: status.parse().map_err(|e| corrupt("ticket status", e))?,
            })
        }

        /// The changes of one transaction: the envelopes to append, whether seats were freed
        /// (waiting buyers may be offered them), and the counters before the transaction.
        struct Changes {
            envelopes: Vec<Envelope>,
            freed: bool,
            was_available: i64,
            was_sweep_at: i64,
        }

        impl Changes {
            fn new(inv: &Inventory) -> Self {
                Self {
                    envelopes: Vec::new(),
                    freed: false,
                    was_available: inv.available(),
                    was_sweep_at: inv.sweep_at,
                }
            }

            /// Records one inventory change (the caller already moved the counters).
            fn push(
                &mut self,
                inv: &mut Inventory,
                now: i64,
                make: fn(InventoryChange) -> DomainEvent,
                mut change: InventoryChange,
            ) {
                inv.version += 1;
                change.availability = inv.availability();
                self.envelopes.push(make(change).into_envelope(
                    inv.version,
                    evently_bus::envelope::time_from_ms(now),
                ));
            }
        }

        fn change(inv: &Inventory) -> InventoryChange {
            InventoryChange {
                event_id: inv.event_id,
                user_id: None,
                hold_id: None,
                order_id: None,
                seat_ids: Vec::new(),
                amount: None,
                currency: None,
                reason: None,
                availability: inv.availability(),
            }
        }

        /// An event's inventory row, locked for the transaction when `locked` (see the
        /// module docs).
        async fn fetch_inventory<'e, E: sql::Executor<'e, Database = $db>>(
            executor: E,
            event_id: Uuid,
            locked: bool,
        ) -> Result<Option<Inventory>, StoreError> {
            let sql = format!(
                "SELECT {INVENTORY_COLUMNS} FROM inventories WHERE event_id = $1 {}",
                if locked { $lock } else { "" }
            );
            let row = sql::query(sql::AssertSqlSafe(sql))
                .bind(event_id)
                .fetch_optional(executor)
                .await?;
            row.as_ref().map(inventory_from).transpose()
        }

        async fn lock_inventory(
            tx: &mut Tx<'_>,
            event_id: Uuid,
        ) -> Result<Option<Inventory>, StoreError> {
            fetch_inventory(&mut **tx, event_id, true).await
        }

        async fn fetch_hold<'e, E: sql::Executor<'e, Database = $db>>(
            executor: E,
            hold_id: HoldId,
        ) -> Result<Option<Hold>, StoreError> {
            let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1");
            let row = sql::query(sql::AssertSqlSafe(sql))
                .bind(hold_id.0)
                .fetch_optional(executor)
                .await?;
            row.as_ref().map(hold_from).transpose()
        }

        async fn hold_in(tx: &mut Tx<'_>, hold_id: HoldId) -> Result<Option<Hold>, StoreError> {
            fetch_hold(&mut **tx, hold_id).await
        }

        /// Begins an inventory transaction on `event_id`: locks its row and sweeps its
        /// expired holds (whatever `sweep_at` says when `force`, as the expiry task does once
        /// it has seen a hold due). `None` when booking does not know the event.
        async fn open_event(
            pool: &sql::Pool<$db>,
            event_id: Uuid,
            now: i64,
            force: bool,
        ) -> Result<Option<(Tx<'static>, Inventory, Changes, usize)>, StoreError> {
            let mut tx = pool.begin().await?;
            let Some(mut inv) = lock_inventory(&mut tx, event_id).await? else {
                return Ok(None);
            };
            let mut changes = Changes::new(&inv);
            if force {
                inv.sweep_at = i64::MIN;
            }
            let swept = sweep(&mut tx, &mut inv, &mut changes, now).await?;
            Ok(Some((tx, inv, changes, swept)))
        }

        /// Ends an active hold with `status`: its seats go back on sale, its unconfirmed or
        /// paid intents are cancelled or refunded, and a waitlist offer lapses.
        async fn end_hold(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            changes: &mut Changes,
            hold: &Hold,
            status: HoldStatus,
            now: i64,
        ) -> Result<(), StoreError> {
            let status = hold.status.transition(status).map_err(|e| {
                StoreError::Other(anyhow::anyhow!("ending hold {}: {e}", hold.id))
            })?;
            let freed = sql::query(
                "UPDATE seats SET state = 0, hold_id = NULL WHERE hold_id = $1 AND state = 1",
            )
            .bind(hold.id.0)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            sql::query("UPDATE holds SET status = $2, ended_at = $3 WHERE id = $1")
                .bind(hold.id.0)
                .bind(status.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await?;
            sql::query(
                "UPDATE payment_intents SET status = CASE WHEN status = 'succeeded' \
                 THEN 'refunded' ELSE 'cancelled' END, updated_at = $2 \
                 WHERE hold_id = $1 AND status IN ('requires_confirmation', 'succeeded')",
            )
            .bind(hold.id.0)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            if hold.kind == HoldKind::Waitlist {
                sql::query(
                    "UPDATE waitlist SET status = 'lapsed', updated_at = $2 \
                     WHERE hold_id = $1 AND status = 'offered'",
                )
                .bind(hold.id.0)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            }
            let freed = i64::try_from(freed).unwrap_or(0);
            inv.held -= freed;
            changes.freed = true;
            changes.push(
                inv,
                now,
                DomainEvent::SeatsReleased,
                InventoryChange {
                    user_id: Some(hold.user_id),
                    hold_id: Some(hold.id.0),
                    seat_ids: hold.seat_ids.clone(),
                    reason: Some(status.as_str().to_owned()),
                    ..change(inv)
                },
            );
            Ok(())
        }

        /// Ends the event's holds that expired at `now`, when a sweep is due.
        async fn sweep(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            changes: &mut Changes,
            now: i64,
        ) -> Result<usize, StoreError> {
            if inv.sweep_at > now {
                return Ok(0);
            }
            let sql = format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = $1 AND status = 'active' \
                 AND expires_at <= $2"
            );
            let rows = sql::query(sql::AssertSqlSafe(sql))
                .bind(inv.event_id)
                .bind(now)
                .fetch_all(&mut **tx)
                .await?;
            let expired = rows.iter().map(hold_from).collect::<Result<Vec<_>, _>>()?;
            for hold in &expired {
                end_hold(tx, inv, changes, hold, HoldStatus::Expired, now).await?;
            }
            let next: Option<i64> = sql::query(
                "SELECT MIN(expires_at) AS t FROM holds WHERE event_id = $1 AND status = 'active'",
            )
            .bind(inv.event_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get("t")?;
            inv.sweep_at = next.unwrap_or(i64::MAX);
            Ok(expired.len())
        }

        /// Available seats in layout order (id, section, row, number), at most `limit`.
        async fn candidates(
            tx: &mut Tx<'_>,
            event_id: Uuid,
            section: Option<&str>,
            limit: i64,
        ) -> Result<Vec<Candidate>, StoreError> {
            let rows = sql::query(
                "SELECT seat_id, section, row_label, number FROM seats \
                 WHERE event_id = $1 AND state = 0 AND ($2 IS NULL OR section = $2) \
                 ORDER BY ord LIMIT $3",
            )
            .bind(event_id)
            .bind(section)
            .bind(limit)
            .fetch_all(&mut **tx)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("seat_id")?,
                        r.try_get("section")?,
                        r.try_get("row_label")?,
                        r.try_get("number")?,
                    ))
                })
                .collect()
        }

        /// Sends `writes` and appends `envelopes` (see [`Writes`]), checking what each
        /// write changed.
        async fn flush(
            tx: &mut Tx<'_>,
            writes: &Writes,
            envelopes: &[Envelope],
        ) -> Result<(), StoreError> {
            // Each statement's changed rows are checked as it is sent.
            $flush(tx, writes, envelopes).await.map(drop)
        }

        /// Writes a new hold row and moves its seats and the counters; the seats (which the
        /// reads before saw available under the inventory lock) and the row are written with
        /// `writes`.
        #[allow(clippy::too_many_arguments)]
        fn insert_hold(
            writes: &mut Writes,
            inv: &mut Inventory,
            changes: &mut Changes,
            hold_id: HoldId,
            user_id: Uuid,
            seats: Vec<String>,
            kind: HoldKind,
            expires_at: i64,
            now: i64,
        ) -> Result<Hold, BookingError> {
            for seat in &seats {
                writes.push_row(
                    &SEAT_HELD,
                    vec![
                        Arg::Uuid(inv.event_id),
                        Arg::Uuid(hold_id.0),
                        Arg::Text(seat.clone()),
                    ],
                    Some(1),
                );
            }
            writes.push_row(
                &HOLD_INSERTED,
                vec![
                    Arg::Uuid(hold_id.0),
                    Arg::Uuid(inv.event_id),
                    Arg::Uuid(user_id),
                    Arg::Text(json(&seats)?),
                    Arg::Int(count(seats.len())),
                    Arg::Text(kind.as_str().to_owned()),
                    Arg::Int(now),
                    Arg::Int(expires_at),
                ],
                None,
            );
            inv.held += count(seats.len());
            inv.sweep_at = inv.sweep_at.min(expires_at);
            let make = match kind {
                HoldKind::Buyer => DomainEvent::SeatsHeld,
                HoldKind::Waitlist => DomainEvent::WaitlistOffered,
            };
            changes.push(
                inv,
                now,
                make,
                InventoryChange {
                    user_id: Some(user_id),
                    hold_id: Some(hold_id.0),
                    seat_ids: seats.clone(),
                    reason: (kind == HoldKind::Waitlist).then(|| "waitlist-offer".to_owned()),
                    ..change(inv)
                },
            );
            Ok(Hold {
                id: hold_id,
                event_id: inv.event_id,
                user_id,
                seat_ids: seats,
                kind,
                status: HoldStatus::Active,
                created_at: now,
                expires_at,
            })
        }

        /// Offers freed seats to the head of the waitlist, in order, while the head's
        /// quantity fits (the list is first come, first served: nobody is skipped).
        async fn promote(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            changes: &mut Changes,
            now: i64,
            policy: Policy,
        ) -> Result<(), BookingError> {
            if inv.sale_closed(now).is_some() {
                return Ok(());
            }
            loop {
                let head = sql::query(
                    "SELECT id, user_id, quantity FROM waitlist WHERE event_id = $1 \
                     AND status = 'waiting' ORDER BY seq LIMIT 1",
                )
                .bind(inv.event_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(head) = head else { return Ok(()) };
                let entry: Uuid = head.try_get("id")?;
                let user: Uuid = head.try_get("user_id")?;
                let quantity: i64 = head.try_get("quantity")?;
                if quantity > inv.available() {
                    return Ok(());
                }
                let found = candidates(tx, inv.event_id, None, offer_window(quantity)).await?;
                let wanted = usize::try_from(quantity).unwrap_or(usize::MAX);
                let Some(seats) = $crate::domain::pick_best(&found, wanted) else {
                    return Ok(());
                };
                let hold_id = HoldId::new();
                let mut writes = Writes::default();
                insert_hold(
                    &mut writes,
                    inv,
                    changes,
                    hold_id,
                    user,
                    seats,
                    HoldKind::Waitlist,
                    now + policy.offer_ttl_ms,
                    now,
                )?;
                writes.push(
                    "UPDATE waitlist SET status = 'offered', hold_id = $2, updated_at = $3 \
                     WHERE id = $1",
                    vec![Arg::Uuid(entry), Arg::Uuid(hold_id.0), Arg::Int(now)],
                    Some(1),
                );
                // The next head's seats are looked for after these are taken.
                flush(tx, &writes, &[]).await?;
            }
        }

        /// Finishes an inventory transaction: sends its pending `writes`, offers freed seats
        /// to waiting buyers, notes a sell-out, saves the counters and appends the domain
        /// events (the last of which go with the pending writes when nobody is offered seats).
        async fn finish(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            mut changes: Changes,
            now: i64,
            policy: Policy,
            mut writes: Writes,
        ) -> Result<(), BookingError> {
            if changes.freed {
                flush(tx, &std::mem::take(&mut writes), &[]).await?;
                promote(tx, inv, &mut changes, now, policy).await?;
            }
            if changes.envelopes.is_empty() && inv.sweep_at == changes.was_sweep_at {
                flush(tx, &writes, &[]).await?;
                return Ok(());
            }
            if changes.was_available > 0 && inv.available() == 0 {
                changes.push(inv, now, DomainEvent::SoldOut, change(inv));
            }
            writes.push(
                "UPDATE inventories SET held = $2, sold = $3, version = $4, updated_at = $5, \
                 sweep_at = $6 WHERE event_id = $1",
                vec![
                    Arg::Uuid(inv.event_id),
                    Arg::Int(inv.held),
                    Arg::Int(inv.sold),
                    Arg::Int(inv.version),
                    Arg::Int(now),
                    Arg::Int(inv.sweep_at),
                ],
                Some(1),
            );
            flush(tx, &writes, &changes.envelopes).await?;
            Ok(())
        }

        /// The seats of a new inventory: the layout's, or numbered general-admission places.
        fn seats_of(snapshot: &EventSnapshot) -> Vec<(String, String, String, i64)> {
            match &snapshot.layout {
                Some(layout) => {
                    let mut seats = Vec::new();
                    for section in &layout.sections {
                        for row in &section.rows {
                            for n in 1..=row.seats {
                                seats.push((
                                    format!("{}-{}-{n}", section.name, row.label),
                                    section.name.clone(),
                                    row.label.clone(),
                                    n,
                                ));
                            }
                        }
                    }
                    seats
                }
                None => (1..=snapshot.total_seats)
                    .map(|n| (ga_seat_id(n), GA_SECTION.to_owned(), "1".to_owned(), n))
                    .collect(),
            }
        }

        async fn insert_seats(
            tx: &mut Tx<'_>,
            event_id: Uuid,
            seats: &[(String, String, String, i64)],
            first_ord: i64,
        ) -> Result<(), StoreError> {
            let mut ord = first_ord;
            for chunk in seats.chunks(1000) {
                let mut builder: sql::QueryBuilder<$db> = sql::QueryBuilder::new(
                    "INSERT INTO seats (event_id, seat_id, section, row_label, number, ord) ",
                );
                builder.push_values(chunk, |mut b, (id, section, row, number)| {
                    ord += 1;
                    b.push_bind(event_id)
                        .push_bind(id.clone())
                        .push_bind(section.clone())
                        .push_bind(row.clone())
                        .push_bind(*number)
                        .push_bind(ord);
                });
                builder.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        async fn create_inventory(
            tx: &mut Tx<'_>,
            snapshot: &EventSnapshot,
            now: i64,
        ) -> Result<(), StoreError> {
            let seats = seats_of(snapshot);
            let inserted = sql::query(
                "INSERT INTO inventories (event_id, organizer_id, status, event_date, \
                 sale_start, sale_end, currency, base_price, section_prices, reserved, \
                 capacity, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(snapshot.event_id)
            .bind(snapshot.organizer_id)
            .bind(&snapshot.status)
            .bind(to_ms(snapshot.event_date))
            .bind(to_ms(snapshot.sale_start_time))
            .bind(snapshot.sale_end_time.map(to_ms))
            .bind(&snapshot.currency)
            .bind(snapshot.base_price)
            .bind(json(&snapshot.section_prices)?)
            .bind(i64::from(snapshot.layout.is_some()))
            .bind(count(seats.len()))
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                insert_seats(tx, snapshot.event_id, &seats, 0).await?;
            }
            Ok(())
        }

        /// Follows an event's details; a general-admission capacity change adds places, or
        /// removes unsold ones from the end (never below what is sold or held).
        async fn update_inventory(
            tx: &mut Tx<'_>,
            snapshot: &EventSnapshot,
            now: i64,
            policy: Policy,
        ) -> Result<(), BookingError> {
            let Some(mut inv) = lock_inventory(tx, snapshot.event_id).await? else {
                create_inventory(tx, snapshot, now).await?;
                return Ok(());
            };
            sql::query(
                "UPDATE inventories SET status = $2, event_date = $3, sale_start = $4, \
                 sale_end = $5, currency = $6, base_price = $7, section_prices = $8 \
                 WHERE event_id = $1",
            )
            .bind(inv.event_id)
            .bind(&snapshot.status)
            .bind(to_ms(snapshot.event_date))
            .bind(to_ms(snapshot.sale_start_time))
            .bind(snapshot.sale_end_time.map(to_ms))
            .bind(&snapshot.currency)
            .bind(snapshot.base_price)
            .bind(json(&snapshot.section_prices)?)
            .execute(&mut **tx)
            .await?;
            inv.status = snapshot.status.clone();
            if inv.reserved || snapshot.total_seats == inv.capacity {
                return Ok(());
            }
            let mut changes = Changes::new(&inv);
            let last = sql::query(
                "SELECT COALESCE(MAX(ord), 0) AS ord, COALESCE(MAX(number), 0) AS number \
                 FROM seats WHERE event_id = $1",
            )
            .bind(inv.event_id)
            .fetch_one(&mut **tx)
            .await?;
            let (last_ord, last_number): (i64, i64) =
                (last.try_get("ord")?, last.try_get("number")?);
            if snapshot.total_seats > inv.capacity {
                // New places are numbered after every place there ever was.
                let extra: Vec<_> = (1..=snapshot.total_seats - inv.capacity)
                    .map(|i| {
                        let n = last_number + i;
                        (ga_seat_id(n), GA_SECTION.to_owned(), "1".to_owned(), n)
                    })
                    .collect();
                insert_seats(tx, inv.event_id, &extra, last_ord).await?;
                changes.freed = true;
            } else {
                // The last free places go; sold and held ones stay.
                sql::query(
                    "DELETE FROM seats WHERE event_id = $1 AND seat_id IN (SELECT seat_id \
                     FROM seats WHERE event_id = $1 AND state = 0 ORDER BY ord DESC LIMIT $2)",
                )
                .bind(inv.event_id)
                .bind(inv.capacity - snapshot.total_seats)
                .execute(&mut **tx)
                .await?;
            }
            let capacity: i64 = sql::query("SELECT COUNT(*) AS n FROM seats WHERE event_id = $1")
                .bind(inv.event_id)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
            sql::query("UPDATE inventories SET capacity = $2 WHERE event_id = $1")
                .bind(inv.event_id)
                .bind(capacity)
                .execute(&mut **tx)
                .await?;
            inv.capacity = capacity;
            let capacity_changed = InventoryChange {
                reason: Some("capacity-changed".into()),
                ..change(&inv)
            };
            changes.push(&mut inv, now, DomainEvent::SeatsReleased, capacity_changed);
            finish(tx, &mut inv, changes, now, policy, Writes::default()).await
        }

        /// Cancels one confirmed order inside an inventory transaction.
        async fn cancel_in(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            changes: &mut Changes,
            order_id: OrderId,
            reason: &str,
            now: i64,
        ) -> Result<Order, BookingError> {
            let mut order = order_in(tx, order_id)
                .await?
                .ok_or(BookingError::OrderNotFound)?;
            order
                .cancel(reason)
                .map_err(|_| BookingError::OrderCancelled)?;
            let freed = sql::query(
                "UPDATE seats SET state = 0, order_id = NULL WHERE event_id = $1 \
                 AND order_id = $2 AND state = 2",
            )
            .bind(inv.event_id)
            .bind(order_id.0)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            sql::query("UPDATE tickets SET status = 'void' WHERE order_id = $1")
                .bind(order_id.0)
                .execute(&mut **tx)
                .await?;
            sql::query(
                "UPDATE orders SET status = 'cancelled', refunded_amount = amount, \
                 cancel_reason = $2, cancelled_at = $3 WHERE id = $1",
            )
            .bind(order_id.0)
            .bind(reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            sql::query(
                "UPDATE payment_intents SET status = 'refunded', updated_at = $2 WHERE id = $1",
            )
            .bind(order.payment_intent_id.0)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            inv.sold -= i64::try_from(freed).unwrap_or(0);
            changes.freed = true;
            changes.push(
                inv,
                now,
                DomainEvent::OrderCancelled,
                InventoryChange {
                    user_id: Some(order.user_id),
                    order_id: Some(order_id.0),
                    seat_ids: order.seat_ids.clone(),
                    amount: Some(order.amount),
                    currency: Some(order.currency.clone()),
                    reason: Some(reason.to_owned()),
                    ..change(inv)
                },
            );
            Ok(order)
        }

        /// The event is cancelled or deleted: every live hold ends, every order is cancelled
        /// and refunded, the waitlist closes.
        async fn cancel_event(
            tx: &mut Tx<'_>,
            event_id: Uuid,
            deleted: bool,
            now: i64,
            policy: Policy,
        ) -> Result<(), BookingError> {
            let Some(mut inv) = lock_inventory(tx, event_id).await? else {
                return Ok(());
            };
            sql::query(
                "UPDATE inventories SET status = 'CANCELLED', deleted = $2 WHERE event_id = $1",
            )
            .bind(event_id)
            .bind(i64::from(deleted || inv.deleted))
            .execute(&mut **tx)
            .await?;
            inv.status = EVENT_CANCELLED.into();
            let mut changes = Changes::new(&inv);
            let sql = format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE event_id = $1 AND status = 'active'"
            );
            let holds = sql::query(sql::AssertSqlSafe(sql)).bind(event_id).fetch_all(&mut **tx).await?;
            for row in &holds {
                let hold = hold_from(row)?;
                end_hold(tx, &mut inv, &mut changes, &hold, HoldStatus::Cancelled, now).await?;
            }
            let orders: Vec<OrderId> = sql::query(
                "SELECT id FROM orders WHERE event_id = $1 AND status = 'confirmed' ORDER BY id",
            )
            .bind(event_id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|r| r.try_get("id").map(OrderId))
            .collect::<Result<_, _>>()?;
            for order in orders {
                cancel_in(tx, &mut inv, &mut changes, order, "event-cancelled", now).await?;
            }
            sql::query(
                "UPDATE waitlist SET status = 'closed', updated_at = $2 WHERE event_id = $1 \
                 AND status IN ('waiting', 'offered')",
            )
            .bind(event_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            finish(tx, &mut inv, changes, now, policy, Writes::default()).await
        }

        async fn tickets_of(
            tx: &mut Tx<'_>,
            order_id: OrderId,
        ) -> Result<Vec<Ticket>, StoreError> {
            let rows = sql::query(
                "SELECT id, seat_id, code, status FROM tickets WHERE order_id = $1 ORDER BY seat_id",
            )
            .bind(order_id.0)
            .fetch_all(&mut **tx)
            .await?;
            rows.iter().map(ticket_from).collect()
        }

        async fn order_in(
            tx: &mut Tx<'_>,
            order_id: OrderId,
        ) -> Result<Option<Order>, StoreError> {
            let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
            let Some(row) = sql::query(sql::AssertSqlSafe(sql))
                .bind(order_id.0)
                .fetch_optional(&mut **tx)
                .await?
            else {
                return Ok(None);
            };
            let tickets = tickets_of(tx, order_id).await?;
            order_from(&row, tickets).map(Some)
        }

        async fn waitlist_in(
            tx: &mut Tx<'_>,
            event_id: Uuid,
            user_id: Uuid,
        ) -> Result<Option<WaitlistEntry>, StoreError> {
            let row = sql::query(
                "SELECT w.quantity, w.status, w.seq, w.hold_id, h.expires_at FROM waitlist w \
                 LEFT JOIN holds h ON h.id = w.hold_id \
                 WHERE w.event_id = $1 AND w.user_id = $2 ORDER BY w.seq DESC LIMIT 1",
            )
            .bind(event_id)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let status: String = row.try_get("status")?;
            let status: WaitlistStatus =
                status.parse().map_err(|e| corrupt("waitlist status", e))?;
            let seq: i64 = row.try_get("seq")?;
            let position = if status == WaitlistStatus::Waiting {
                let ahead: i64 = sql::query(
                    "SELECT COUNT(*) AS n FROM waitlist WHERE event_id = $1 \
                     AND status = 'waiting' AND seq <= $2",
                )
                .bind(event_id)
                .bind(seq)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
                Some(ahead)
            } else {
                None
            };
            let expires: Option<i64> = row.try_get("expires_at")?;
            Ok(Some(WaitlistEntry {
                event_id,
                quantity: row.try_get("quantity")?,
                offer_expires_at: if status == WaitlistStatus::Offered {
                    expires.map($crate::domain::rfc3339)
                } else {
                    None
                },
                hold_id: row.try_get::<Option<Uuid>, _>("hold_id")?.map(HoldId),
                status,
                position,
            }))
        }

        #[async_trait::async_trait]
        impl BookingStore for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sql::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn apply_catalog(
                &self,
                envelope: &Envelope,
                event: &DomainEvent,
                now: i64,
                policy: Policy,
            ) -> Result<bool, BookingError> {
                let relevant = matches!(
                    event,
                    DomainEvent::EventCreated(_)
                        | DomainEvent::EventUpdated(_)
                        | DomainEvent::EventStatusChanged { .. }
                        | DomainEvent::EventDeleted { .. }
                );
                if !relevant {
                    return Ok(false);
                }
                let mut tx = self.writer().begin().await?;
                let first = sql::query(
                    "INSERT INTO applied_events (id, applied_at) VALUES ($1, $2) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(envelope.id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if first == 0 {
                    return Ok(false);
                }
                match event {
                    DomainEvent::EventCreated(snapshot) => {
                        create_inventory(&mut tx, snapshot, now).await?;
                        if snapshot.status == EVENT_CANCELLED {
                            cancel_event(&mut tx, snapshot.event_id, false, now, policy).await?;
                        }
                    }
                    DomainEvent::EventUpdated(snapshot) => {
                        if snapshot.status == EVENT_CANCELLED {
                            cancel_event(&mut tx, snapshot.event_id, false, now, policy).await?;
                        } else {
                            update_inventory(&mut tx, snapshot, now, policy).await?;
                        }
                    }
                    DomainEvent::EventStatusChanged { event_id, to, .. } => {
                        if to == EVENT_CANCELLED {
                            cancel_event(&mut tx, *event_id, false, now, policy).await?;
                        } else if let Some(mut inv) = lock_inventory(&mut tx, *event_id).await? {
                            sql::query("UPDATE inventories SET status = $2 WHERE event_id = $1")
                                .bind(event_id)
                                .bind(to)
                                .execute(&mut *tx)
                                .await?;
                            inv.status = to.clone();
                            // Seats freed while the sale had not opened go to waiting buyers.
                            let mut changes = Changes::new(&inv);
                            changes.freed = true;
                            finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                        }
                    }
                    DomainEvent::EventDeleted { event_id } => {
                        cancel_event(&mut tx, *event_id, true, now, policy).await?;
                    }
                    _ => {}
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn inventory(&self, event_id: Uuid) -> Result<Option<Inventory>, StoreError> {
                fetch_inventory(self.reader(), event_id, false).await
            }

            async fn availability(
                &self,
                event_id: Uuid,
                now: i64,
            ) -> Result<Option<AvailabilityView>, StoreError> {
                let mut conn = self.reader().acquire().await?;
                let Some(inv) = fetch_inventory(&mut *conn, event_id, false).await? else {
                    return Ok(None);
                };
                if inv.deleted {
                    return Ok(None);
                }
                let expired: i64 = sql::query(
                    "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS n FROM holds WHERE event_id = $1 \
                     AND status = 'active' AND expires_at <= $2",
                )
                .bind(event_id)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?;
                Ok(Some(AvailabilityView::of(&inv, expired, now)))
            }

            async fn seat_map(
                &self,
                event_id: Uuid,
                now: i64,
            ) -> Result<Option<Vec<SeatView>>, StoreError> {
                let Some(inv) = self.inventory(event_id).await? else {
                    return Ok(None);
                };
                if inv.deleted {
                    return Ok(None);
                }
                let rows = sql::query(
                    "SELECT s.seat_id, s.section, s.row_label, s.number, CAST(s.state AS BIGINT) AS state, h.expires_at \
                     FROM seats s LEFT JOIN holds h ON h.id = s.hold_id \
                     WHERE s.event_id = $1 ORDER BY s.ord",
                )
                .bind(event_id)
                .fetch_all(self.reader())
                .await?;
                rows.iter()
                    .map(|r| {
                        let section: String = r.try_get("section")?;
                        let state = SeatState::try_from(r.try_get::<i64, _>("state")?)
                            .map_err(|e| corrupt("seat state", e))?;
                        let expires: Option<i64> = r.try_get("expires_at")?;
                        let state = seat_shown_as(state, expires, now);
                        Ok(SeatView {
                            seat_id: r.try_get("seat_id")?,
                            row: r.try_get("row_label")?,
                            number: r.try_get("number")?,
                            price_tier: inv.tier_of(&section).to_owned(),
                            price: inv.price_of(&section),
                            section,
                            state: state.to_owned(),
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()
                    .map(Some)
            }

            async fn create_hold(
                &self,
                new: &NewHold,
                now: i64,
                policy: Policy,
            ) -> Result<Hold, BookingError> {
                self.refuse_early(new, now).await?;
                let Some(batches) = self.batches() else {
                    return self.hold_alone(new, now, policy).await;
                };
                self.queue(batches, new.event_id, |reply| Job::Hold {
                    new: new.clone(),
                    now,
                    policy,
                    reply,
                    decided: None,
                })
                .await
            }

            async fn hold(&self, hold_id: HoldId) -> Result<Option<Hold>, StoreError> {
                fetch_hold(self.reader(), hold_id).await
            }

            async fn refresh_hold(
                &self,
                hold_id: HoldId,
                user_id: Uuid,
                extend_ms: i64,
                max_lifetime_ms: i64,
                now: i64,
                policy: Policy,
            ) -> Result<Hold, BookingError> {
                let found = self
                    .hold(hold_id)
                    .await?
                    .filter(|h| h.user_id == user_id)
                    .ok_or(BookingError::HoldNotFound)?;
                let _gate = self.gates().enter(found.event_id).await;
                let (mut tx, mut inv, changes, _) =
                    open_event(self.writer(), found.event_id, now, false)
                        .await?
                        .ok_or(BookingError::HoldNotFound)?;
                let mut hold = hold_in(&mut tx, hold_id)
                    .await?
                    .ok_or(BookingError::HoldNotFound)?;
                let outcome = match refreshed_expiry(&hold, now, extend_ms, max_lifetime_ms) {
                    Ok(Some(target)) => {
                        sql::query("UPDATE holds SET expires_at = $2 WHERE id = $1")
                            .bind(hold_id.0)
                            .bind(target)
                            .execute(&mut *tx)
                            .await?;
                        hold.expires_at = target;
                        Ok(hold)
                    }
                    Ok(None) => Ok(hold),
                    Err(ended) => Err(BookingError::from(ended)),
                };
                finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                tx.commit().await?;
                outcome
            }

            async fn release_hold(
                &self,
                hold_id: HoldId,
                user_id: Uuid,
                now: i64,
                policy: Policy,
            ) -> Result<(), BookingError> {
                let found = self
                    .hold(hold_id)
                    .await?
                    .filter(|h| h.user_id == user_id)
                    .ok_or(BookingError::HoldNotFound)?;
                let _gate = self.gates().enter(found.event_id).await;
                let (mut tx, mut inv, mut changes, _) =
                    open_event(self.writer(), found.event_id, now, false)
                        .await?
                        .ok_or(BookingError::HoldNotFound)?;
                let hold = hold_in(&mut tx, hold_id)
                    .await?
                    .ok_or(BookingError::HoldNotFound)?;
                let outcome = match may_release(hold.status) {
                    Ok(true) => {
                        end_hold(&mut tx, &mut inv, &mut changes, &hold, HoldStatus::Released, now)
                            .await?;
                        Ok(())
                    }
                    Ok(false) => Ok(()),
                    Err(ended) => Err(BookingError::from(ended)),
                };
                finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                tx.commit().await?;
                outcome
            }

            async fn create_intent(
                &self,
                new: &NewIntent,
                now: i64,
            ) -> Result<PaymentIntent, BookingError> {
                // One read of the hold with its event's prices, then one write that inserts
                // the intent only while the hold is still live (no transaction around them:
                // the write's condition is what the read's checks were).
                let row = sql::query(
                    "SELECT h.id, h.event_id, h.user_id, h.seat_ids, h.kind, h.status, \
                     h.created_at, h.expires_at, i.currency, i.base_price, i.section_prices \
                     FROM holds h LEFT JOIN inventories i ON i.event_id = h.event_id \
                     WHERE h.id = $1",
                )
                .bind(new.hold_id.0)
                .fetch_optional(self.reader())
                .await?;
                let Some(row) = row else {
                    return Err(BookingError::HoldNotFound);
                };
                let hold = hold_from(&row)?;
                may_pay_for(&hold, new.user_id, now)?;
                let Some(currency) = row.try_get::<Option<String>, _>("currency")? else {
                    return Err(BookingError::EventNotFound);
                };
                let base_price: i64 = row.try_get("base_price")?;
                let prices: String = row.try_get("section_prices")?;
                let prices: BTreeMap<String, i64> = serde_json::from_str(&prices)
                    .map_err(|e| corrupt("section_prices", e))?;
                let amount = intent_amount(&prices, base_price, &hold.seat_ids)
                    .ok_or_else(|| anyhow::anyhow!("order amount overflows"))?;
                const LIVE: &str = "EXISTS (SELECT 1 FROM holds WHERE id = $1 \
                    AND status = 'active' AND expires_at > $2)";
                let mut writes = Writes::default();
                // An intent not yet confirmed for the same hold is superseded by the new one.
                writes.push(
                    format!(
                        "UPDATE payment_intents SET status = 'cancelled', updated_at = $2 \
                         WHERE hold_id = $1 AND status = 'requires_confirmation' AND {LIVE}"
                    ),
                    vec![Arg::Uuid(hold.id.0), Arg::Int(now)],
                    None,
                );
                writes.push(
                    format!(
                        "INSERT INTO payment_intents (id, hold_id, event_id, user_id, amount, \
                         currency, secret_hash, status, created_at, updated_at) \
                         SELECT $3, $1, $4, $5, $6, $7, $8, 'requires_confirmation', $2, $2 \
                         WHERE {LIVE}"
                    ),
                    vec![
                        Arg::Uuid(hold.id.0),
                        Arg::Int(now),
                        Arg::Uuid(new.intent_id.0),
                        Arg::Uuid(hold.event_id),
                        Arg::Uuid(new.user_id),
                        Arg::Int(amount),
                        Arg::Text(currency.clone()),
                        Arg::Text(new.secret_hash.clone()),
                    ],
                    None,
                );
                let changed = $alone(self.writer(), &writes).await?;
                if changed.get(1) != Some(&1) {
                    // The hold ended between the read and the write.
                    let status = fetch_hold(self.writer(), hold.id).await?.map(|h| h.status);
                    return Err(status.map_or(HoldEnded::Expired, HoldEnded::of).into());
                }
                Ok(PaymentIntent {
                    id: new.intent_id,
                    hold_id: hold.id,
                    event_id: hold.event_id,
                    user_id: new.user_id,
                    amount,
                    currency,
                    status: IntentStatus::RequiresConfirmation,
                    secret_hash: new.secret_hash.clone(),
                })
            }

            async fn confirm_intent(
                &self,
                intent_id: PaymentIntentId,
                user_id: Uuid,
                secret: &str,
                outcome: Confirmation,
                now: i64,
            ) -> Result<PaymentIntent, BookingError> {
                let (mut intent, hold_live) = self
                    .intent_and_hold(intent_id, now)
                    .await?
                    .filter(|(i, _)| i.user_id == user_id)
                    .ok_or(BookingError::IntentNotFound)?;
                if !constant_time_eq(&sha256_hex(secret.as_bytes()), &intent.secret_hash) {
                    return Err(BookingError::WrongSecret);
                }
                let status = match decide_confirmation(intent.status, hold_live, outcome)? {
                    ConfirmStep::AlreadySucceeded => return Ok(intent),
                    ConfirmStep::Move(to) => to,
                };
                // One statement, outside any transaction: the intent changes only while it
                // awaits confirmation and its hold is live.
                let changed = sql::query(
                    "UPDATE payment_intents SET status = $2, updated_at = $3 \
                     WHERE id = $1 AND status = 'requires_confirmation' \
                     AND EXISTS (SELECT 1 FROM holds h WHERE h.id = payment_intents.hold_id \
                     AND h.status = 'active' AND h.expires_at > $3)",
                )
                .bind(intent_id.0)
                .bind(status.as_str())
                .bind(now)
                .execute(self.writer())
                .await?
                .rows_affected();
                if changed == 0 {
                    // Changed meanwhile (a concurrent confirm, or the hold ended): report what
                    // it is now.
                    let (current, hold_live) = self
                        .intent_and_hold(intent_id, now)
                        .await?
                        .ok_or(BookingError::IntentNotFound)?;
                    confirmation_lost(current.status, hold_live)?;
                    intent.status = current.status;
                    return Ok(intent);
                }
                if status == IntentStatus::Declined {
                    return Err(BookingError::PaymentDeclined);
                }
                intent.status = status;
                Ok(intent)
            }

            async fn idempotency_begin(
                &self,
                key: &IdempotencyKey,
                fingerprint: &str,
                now: i64,
                lock_ms: i64,
                ttl_ms: i64,
            ) -> Result<IdempotencyStart, BookingError> {
                // A key rarely comes back, and an expired one is as good as new: one upsert
                // takes a new or expired key; anything else is read and decided after it.
                for _ in 0..3 {
                    let started = sql::query(
                        "INSERT INTO idempotency_keys (user_id, route, key, fingerprint, \
                         status, locked_at, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, 'in_flight', $5, $5, $6) \
                         ON CONFLICT (user_id, route, key) DO UPDATE SET \
                         fingerprint = excluded.fingerprint, status = 'in_flight', \
                         response_status = NULL, response_body = NULL, \
                         locked_at = excluded.locked_at, created_at = excluded.created_at, \
                         expires_at = excluded.expires_at \
                         WHERE idempotency_keys.expires_at <= $5 \
                         RETURNING 1",
                    )
                    .bind(key.user_id)
                    .bind(&key.route)
                    .bind(&key.key)
                    .bind(fingerprint)
                    .bind(now)
                    .bind(now + ttl_ms)
                    .fetch_optional(self.writer())
                    .await?;
                    if started.is_some() {
                        return Ok(IdempotencyStart::Started);
                    }
                    let row = sql::query(
                        "SELECT fingerprint, status, response_status, response_body, locked_at \
                         FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3",
                    )
                    .bind(key.user_id)
                    .bind(&key.route)
                    .bind(&key.key)
                    .fetch_optional(self.writer())
                    .await?;
                    let Some(row) = row else {
                        // Abandoned meanwhile: take it again.
                        continue;
                    };
                    let status: String = row.try_get("status")?;
                    let stored = StoredKey {
                        fingerprint: row.try_get("fingerprint")?,
                        status: status.parse().map_err(|e| corrupt("idempotency key status", e))?,
                        response_status: row.try_get("response_status")?,
                        response_body: row.try_get("response_body")?,
                        locked_at: row.try_get("locked_at")?,
                    };
                    let locked_at = match decide_key(stored, fingerprint, lock_ms, now) {
                        KeyDecision::Reused => return Err(BookingError::KeyReused),
                        KeyDecision::Replay { status, body } => {
                            return Ok(IdempotencyStart::Replay { status, body });
                        }
                        KeyDecision::Running => return Err(BookingError::InFlight),
                        KeyDecision::TakeOver { locked_at } => locked_at,
                    };
                    // The request holding the key is gone (crashed); take it over, unless
                    // another request just did.
                    let taken = sql::query(
                        "UPDATE idempotency_keys SET locked_at = $4 WHERE user_id = $1 \
                         AND route = $2 AND key = $3 AND status = 'in_flight' AND locked_at = $5",
                    )
                    .bind(key.user_id)
                    .bind(&key.route)
                    .bind(&key.key)
                    .bind(now)
                    .bind(locked_at)
                    .execute(self.writer())
                    .await?
                    .rows_affected();
                    return if taken == 1 {
                        Ok(IdempotencyStart::Started)
                    } else {
                        Err(BookingError::InFlight)
                    };
                }
                Err(BookingError::InFlight)
            }

            async fn idempotency_finish(
                &self,
                key: &IdempotencyKey,
                status: u16,
                body: &str,
            ) -> Result<(), StoreError> {
                sql::query(
                    "UPDATE idempotency_keys SET status = 'complete', response_status = $4, \
                     response_body = $5 WHERE user_id = $1 AND route = $2 AND key = $3 \
                     AND status = 'in_flight'",
                )
                .bind(key.user_id)
                .bind(&key.route)
                .bind(&key.key)
                .bind(i64::from(status))
                .bind(body)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn idempotency_abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
                sql::query(
                    "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3 \
                     AND status = 'in_flight'",
                )
                .bind(key.user_id)
                .bind(&key.route)
                .bind(&key.key)
                .execute(self.writer())
                .await?;
                Ok(())
            }

            async fn purchase(
                &self,
                input: &PurchaseInput,
                now: i64,
                policy: Policy,
            ) -> Result<(Order, String), BookingError> {
                // The purchase goes to the event its request names; the checks under that
                // event's lock refuse a hold of another buyer or another event.
                let Some(batches) = self.batches() else {
                    return self.purchase_alone(input, now, policy).await;
                };
                self.queue(batches, input.event_id, |reply| Job::Purchase {
                    input: input.clone(),
                    now,
                    policy,
                    reply,
                    decided: None,
                })
                .await
            }

            async fn order(&self, order_id: OrderId) -> Result<Option<Order>, StoreError> {
                let mut tx = self.reader().begin().await?;
                let order = order_in(&mut tx, order_id).await?;
                tx.commit().await?;
                Ok(order)
            }

            async fn orders_of(
                &self,
                user_id: Uuid,
                limit: i64,
                offset: i64,
            ) -> Result<(Vec<Order>, u64), StoreError> {
                let mut tx = self.reader().begin().await?;
                let total: i64 = sql::query("SELECT COUNT(*) AS n FROM orders WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                let sql = format!(
                    "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
                     ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
                );
                let rows = sql::query(sql::AssertSqlSafe(sql))
                    .bind(user_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut orders = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id = OrderId(row.try_get("id")?);
                    let tickets = tickets_of(&mut tx, id).await?;
                    orders.push(order_from(row, tickets)?);
                }
                tx.commit().await?;
                Ok((orders, u64::try_from(total).unwrap_or(0)))
            }

            async fn cancel_order(
                &self,
                order_id: OrderId,
                reason: &str,
                now: i64,
                policy: Policy,
            ) -> Result<Order, BookingError> {
                let found = self
                    .order(order_id)
                    .await?
                    .ok_or(BookingError::OrderNotFound)?;
                let _gate = self.gates().enter(found.event_id).await;
                let (mut tx, mut inv, mut changes, _) =
                    open_event(self.writer(), found.event_id, now, false)
                        .await?
                        .ok_or(BookingError::OrderNotFound)?;
                let order = cancel_in(&mut tx, &mut inv, &mut changes, order_id, reason, now).await?;
                finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                tx.commit().await?;
                Ok(order)
            }

            async fn join_waitlist(
                &self,
                event_id: Uuid,
                user_id: Uuid,
                quantity: i64,
                now: i64,
                policy: Policy,
            ) -> Result<WaitlistEntry, BookingError> {
                let _gate = self.gates().enter(event_id).await;
                let mut tx = self.writer().begin().await?;
                let mut inv = lock_inventory(&mut tx, event_id)
                    .await?
                    .ok_or(BookingError::EventNotFound)?;
                open_for_holds(&inv, now)?;
                let mut changes = Changes::new(&inv);
                sweep(&mut tx, &mut inv, &mut changes, now).await?;
                let open = sql::query(
                    "SELECT id FROM waitlist WHERE event_id = $1 AND user_id = $2 \
                     AND status IN ('waiting', 'offered')",
                )
                .bind(event_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                // Freed seats go to those already waiting before anyone joins.
                finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                let joins = match may_join_waitlist(open.is_some(), inv.available(), quantity) {
                    Ok(joins) => joins,
                    Err(available) => {
                        tx.commit().await?;
                        return Err(BookingError::SeatsAvailable { available });
                    }
                };
                if joins {
                    sql::query(
                        "INSERT INTO waitlist (id, event_id, user_id, quantity, seq, status, \
                         joined_at, updated_at) VALUES ($1, $2, $3, $4, \
                         (SELECT COALESCE(MAX(seq), 0) + 1 FROM waitlist WHERE event_id = $2), \
                         'waiting', $5, $5)",
                    )
                    .bind(Uuid::now_v7())
                    .bind(event_id)
                    .bind(user_id)
                    .bind(quantity)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                let entry = waitlist_in(&mut tx, event_id, user_id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("waitlist entry vanished"))?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn waitlist_entry(
                &self,
                event_id: Uuid,
                user_id: Uuid,
            ) -> Result<Option<WaitlistEntry>, StoreError> {
                let mut tx = self.reader().begin().await?;
                let entry = waitlist_in(&mut tx, event_id, user_id).await?;
                tx.commit().await?;
                Ok(entry)
            }

            async fn leave_waitlist(
                &self,
                event_id: Uuid,
                user_id: Uuid,
                now: i64,
                policy: Policy,
            ) -> Result<(), BookingError> {
                let _gate = self.gates().enter(event_id).await;
                let mut tx = self.writer().begin().await?;
                let mut inv = lock_inventory(&mut tx, event_id)
                    .await?
                    .ok_or(BookingError::EventNotFound)?;
                let mut changes = Changes::new(&inv);
                sweep(&mut tx, &mut inv, &mut changes, now).await?;
                let row = sql::query(
                    "SELECT id, status, hold_id FROM waitlist WHERE event_id = $1 \
                     AND user_id = $2 AND status IN ('waiting', 'offered')",
                )
                .bind(event_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                    tx.commit().await?;
                    return Err(BookingError::NotWaitlisted);
                };
                let id: Uuid = row.try_get("id")?;
                let offer: Option<Uuid> = row.try_get("hold_id")?;
                if let Some(offer) = offer
                    && let Some(hold) = hold_in(&mut tx, HoldId(offer)).await?
                    && hold.status == HoldStatus::Active
                {
                    end_hold(&mut tx, &mut inv, &mut changes, &hold, HoldStatus::Released, now)
                        .await?;
                }
                sql::query("UPDATE waitlist SET status = 'left', updated_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn expire_due(&self, now: i64, policy: Policy) -> Result<usize, BookingError> {
                let events: Vec<Uuid> = sql::query(
                    "SELECT DISTINCT event_id FROM holds WHERE status = 'active' \
                     AND expires_at <= $1 LIMIT 100",
                )
                .bind(now)
                .fetch_all(self.reader())
                .await?
                .iter()
                .map(|r| r.try_get("event_id"))
                .collect::<Result<_, _>>()?;
                let mut expired = 0;
                for event_id in events {
                    let _gate = self.gates().enter(event_id).await;
                    let Some((mut tx, mut inv, changes, swept)) =
                        open_event(self.writer(), event_id, now, true).await?
                    else {
                        continue;
                    };
                    expired += swept;
                    finish(&mut tx, &mut inv, changes, now, policy, Writes::default()).await?;
                    tx.commit().await?;
                }
                Ok(expired)
            }

            async fn next_expiry(&self) -> Result<Option<i64>, StoreError> {
                let row = sql::query(
                    "SELECT MIN(expires_at) AS t FROM holds WHERE status = 'active'",
                )
                .fetch_one(self.reader())
                .await?;
                let next: Option<i64> = row.try_get("t")?;
                Ok(next)
            }

            async fn purge_idempotency(&self, now: i64) -> Result<u64, StoreError> {
                Ok(sql::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
                    .bind(now)
                    .execute(self.writer())
                    .await?
                    .rows_affected())
            }

            async fn audit(&self, event_id: Uuid, now: i64) -> Result<Option<Audit>, StoreError> {
                self.refresh_statistics().await?;
                let mut conn = self.reader().acquire().await?;
                let Some(capacity) = sql::query(
                    "SELECT capacity FROM inventories WHERE event_id = $1",
                )
                .bind(event_id)
                .fetch_optional(&mut *conn)
                .await?
                else {
                    return Ok(None);
                };
                let capacity: i64 = capacity.try_get("capacity")?;
                let row = sql::query(
                    "SELECT \
                     (SELECT COUNT(*) FROM seats WHERE event_id = $1 AND state = 2) AS sold_seats, \
                     (SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status = 'valid') AS tickets, \
                     (SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'confirmed') AS orders, \
                     (SELECT COUNT(*) FROM holds WHERE event_id = $1 AND status = 'active' \
                        AND expires_at > $2) AS live_holds, \
                     (SELECT COUNT(*) FROM (SELECT seat_id FROM tickets WHERE event_id = $1 \
                        AND status = 'valid' GROUP BY seat_id HAVING COUNT(*) > 1) d) AS double_sold, \
                     (SELECT COUNT(*) FROM seats s WHERE s.event_id = $1 AND s.state = 2 \
                        AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.event_id = s.event_id \
                        AND t.seat_id = s.seat_id AND t.status = 'valid' \
                        AND t.order_id = s.order_id)) AS unticketed, \
                     (SELECT COUNT(*) FROM tickets t WHERE t.event_id = $1 AND t.status = 'valid' \
                        AND NOT EXISTS (SELECT 1 FROM seats s WHERE s.event_id = t.event_id \
                        AND s.seat_id = t.seat_id AND s.state = 2 \
                        AND s.order_id = t.order_id)) AS unseated",
                )
                .bind(event_id)
                .bind(now)
                .fetch_one(&mut *conn)
                .await?;
                let tickets: i64 = row.try_get("tickets")?;
                let unticketed: i64 = row.try_get("unticketed")?;
                let unseated: i64 = row.try_get("unseated")?;
                Ok(Some(Audit {
                    capacity,
                    sold_seats: row.try_get("sold_seats")?,
                    tickets,
                    orders: row.try_get("orders")?,
                    live_holds: row.try_get("live_holds")?,
                    oversold: (tickets - capacity).max(0),
                    double_sold: row.try_get("double_sold")?,
                    mismatched: unticketed + unseated,
                }))
            }
        }

        impl $store {
            /// A hold in a transaction of its own. On any refusal the transaction rolls back
            /// whole (what the sweep found is swept again by the next change or the expiry
            /// task).
            async fn hold_alone(
                &self,
                new: &NewHold,
                now: i64,
                policy: Policy,
            ) -> Result<Hold, BookingError> {
                let _gate = self.gates().enter(new.event_id).await;
                let (mut tx, mut inv, mut changes, _) =
                    open_event(self.writer(), new.event_id, now, false)
                        .await?
                        .ok_or(BookingError::EventNotFound)?;
                let mut writes = Writes::default();
                let hold = hold_step(
                    &mut tx,
                    &mut inv,
                    &mut changes,
                    &mut writes,
                    None,
                    new,
                    now,
                    policy,
                )
                .await?
                .ok_or_else(|| anyhow::anyhow!("a hold alone was sent to a batch"))?;
                finish(&mut tx, &mut inv, changes, now, policy, writes).await?;
                tx.commit().await?;
                Ok(hold)
            }

            /// A purchase in a transaction of its own (rolled back whole on any refusal).
            async fn purchase_alone(
                &self,
                input: &PurchaseInput,
                now: i64,
                policy: Policy,
            ) -> Result<(Order, String), BookingError> {
                let _gate = self.gates().enter(input.event_id).await;
                let Some((mut tx, mut inv, mut changes, _)) =
                    open_event(self.writer(), input.event_id, now, false).await?
                else {
                    // No such event: the answer is about the hold.
                    let hold = fetch_hold(self.reader(), input.hold_id).await?;
                    let refusal =
                        purchase_without_event(hold.as_ref(), input.user_id, input.event_id);
                    return Err(refusal.into());
                };
                let mut writes = Writes::default();
                let outcome = purchase_step(
                    &mut tx,
                    &mut inv,
                    &mut changes,
                    &mut writes,
                    None,
                    input,
                    now,
                )
                .await?;
                finish(&mut tx, &mut inv, changes, now, policy, writes).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            /// Queues the request `job` makes for the event's next batch (starting the event's
            /// leader when none runs) and waits for its answer.
            async fn queue<T>(
                &self,
                batches: &$crate::store::Batches,
                event_id: Uuid,
                job: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, BookingError>>) -> Job,
            ) -> Result<T, BookingError> {
                let (reply, answer) = tokio::sync::oneshot::channel();
                if batches.submit(event_id, job(reply)) {
                    self.lead(event_id);
                }
                answer.await.map_err(|_| {
                    BookingError::Internal(anyhow::anyhow!("the request's batch ended unanswered"))
                })?
            }

            /// Runs `job` in a transaction of its own and answers it.
            async fn run_alone(&self, job: Job) {
                match job {
                    Job::Hold {
                        new,
                        now,
                        policy,
                        reply,
                        ..
                    } => drop(reply.send(self.hold_alone(&new, now, policy).await)),
                    Job::Purchase {
                        input,
                        now,
                        policy,
                        reply,
                        ..
                    } => drop(reply.send(self.purchase_alone(&input, now, policy).await)),
                }
            }

            /// Starts the event's leader: a task (which a caller going away cannot stop) that
            /// runs the event's batches while requests keep queueing.
            fn lead(&self, event_id: Uuid) {
                let store = self.clone();
                tokio::spawn(async move {
                    let Some(batches) = store.batches() else { return };
                    loop {
                        let jobs = batches.take(event_id);
                        if jobs.is_empty() {
                            return;
                        }
                        let alone = if jobs.len() == 1 {
                            jobs
                        } else {
                            store.run_batch(event_id, jobs).await
                        };
                        for job in alone {
                            store.run_alone(job).await;
                        }
                    }
                });
            }

            /// Decides `jobs` (of one event) in one transaction: each request's reads see what
            /// the requests before it decided (the store, plus an [`Overlay`] of their
            /// pending writes), refusals are answered at once, and the rest once the batch
            /// commits. Returns the requests to run alone instead: replacements of a live
            /// hold, and every request not yet answered when the store fails.
            async fn run_batch(&self, event_id: Uuid, jobs: Vec<Job>) -> Vec<Job> {
                let _gate = self.gates().enter(event_id).await;
                let now = jobs.iter().map(Job::now).max().unwrap_or_default();
                let policy = match &jobs[0] {
                    Job::Hold { policy, .. } | Job::Purchase { policy, .. } => *policy,
                };
                let (mut tx, mut inv, mut changes) =
                    match open_event(self.writer(), event_id, now, false).await {
                        Ok(Some((tx, inv, changes, _))) => (tx, inv, changes),
                        // Alone, each request gets the answer that fits it.
                        Ok(None) => return jobs,
                        Err(_) => return jobs,
                    };
                let mut writes = Writes::default();
                let mut overlay = Overlay::default();
                if prefetch(&mut tx, &inv, &jobs, &mut overlay).await.is_err() {
                    return jobs;
                }
                let mut decided = Vec::with_capacity(jobs.len());
                let mut alone = Vec::new();
                let mut jobs = jobs.into_iter();
                while let Some(mut job) = jobs.next() {
                    // Whether the request was decided in the batch (or must go alone).
                    let outcome = match &mut job {
                        Job::Hold {
                            new, now, decided, ..
                        } => hold_step(
                            &mut tx,
                            &mut inv,
                            &mut changes,
                            &mut writes,
                            Some(&mut overlay),
                            new,
                            *now,
                            policy,
                        )
                        .await
                        .map(|hold| {
                            *decided = hold;
                            decided.is_some()
                        }),
                        Job::Purchase {
                            input, now, decided, ..
                        } => purchase_step(
                            &mut tx,
                            &mut inv,
                            &mut changes,
                            &mut writes,
                            Some(&mut overlay),
                            input,
                            *now,
                        )
                        .await
                        .map(|outcome| {
                            *decided = Some(Box::new(outcome));
                            true
                        }),
                    };
                    match outcome {
                        Ok(true) => decided.push(job),
                        Ok(false) => alone.push(job),
                        Err(e) if is_refusal(&e) => job.refuse(e),
                        Err(_) => {
                            // The transaction may be unusable: everything not answered
                            // goes alone.
                            alone.push(job);
                            alone.extend(jobs);
                            alone.extend(decided);
                            return alone;
                        }
                    }
                }
                let committed = match finish(&mut tx, &mut inv, changes, now, policy, writes).await
                {
                    Ok(()) => tx.commit().await.map_err(BookingError::from),
                    Err(e) => Err(e),
                };
                match committed {
                    Ok(()) => decided.into_iter().for_each(Job::deliver),
                    Err(_) => alone.extend(decided),
                }
                alone
            }

            /// Refuses, from a read and without the inventory lock, a hold that cannot succeed:
            /// seats sold or in another buyer's live hold, or fewer seats left than asked for
            /// (counting the caller's own live hold, which the new hold would replace). A read
            /// that is already stale can only refuse what a moment earlier would also have been
            /// refused; whatever it lets through is decided under the lock. In an on-sale rush
            /// this keeps the losers off the write path.
            async fn refuse_early(&self, new: &NewHold, now: i64) -> Result<(), BookingError> {
                let mut conn = self.reader().acquire().await?;
                match &new.selection {
                    Selection::Seats(wanted) => {
                        let sql = format!(
                            "{} SELECT s.seat_id, CAST(s.state AS BIGINT) AS state, \
                             h.user_id, h.expires_at FROM wanted \
                             JOIN seats s ON s.event_id = $1 AND s.seat_id = wanted.seat_id \
                             LEFT JOIN holds h ON h.id = s.hold_id",
                            wanted_seats(2, wanted.len())
                        );
                        let mut query =
                            sql::query(sql::AssertSqlSafe(sql)).bind(new.event_id);
                        for seat in wanted {
                            query = query.bind(seat);
                        }
                        let rows = query.fetch_all(&mut *conn).await?;
                        let mut taken = std::collections::BTreeSet::new();
                        for row in &rows {
                            let state = SeatState::try_from(row.try_get::<i64, _>("state")?)
                                .map_err(|e| corrupt("seat state", e))?;
                            let holder: Option<Uuid> = row.try_get("user_id")?;
                            let expires: Option<i64> = row.try_get("expires_at")?;
                            if seat_blocks(state, holder, expires, new.user_id, now) {
                                taken.insert(row.try_get::<String, _>("seat_id")?);
                            }
                        }
                        refuse_named_early(wanted, rows.len(), &taken)?;
                    }
                    Selection::Best { quantity, section: None } => {
                        let row = sql::query(
                            "SELECT i.capacity - i.held - i.sold + \
                             (SELECT CAST(COALESCE(SUM(h.quantity), 0) AS BIGINT) FROM holds h \
                              WHERE h.event_id = i.event_id AND h.status = 'active' \
                              AND (h.expires_at <= $2 OR h.user_id = $3)) AS free \
                             FROM inventories i WHERE i.event_id = $1",
                        )
                        .bind(new.event_id)
                        .bind(now)
                        .bind(new.user_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                        if let Some(row) = row {
                            refuse_best_early(row.try_get("free")?, *quantity)?;
                        }
                    }
                    Selection::Best { .. } => {}
                }
                Ok(())
            }

            /// A payment intent and whether its hold is live at `now`, in one read.
            async fn intent_and_hold(
                &self,
                intent_id: PaymentIntentId,
                now: i64,
            ) -> Result<Option<(PaymentIntent, bool)>, StoreError> {
                let row = sql::query(
                    "SELECT i.id, i.hold_id, i.event_id, i.user_id, i.amount, i.currency, \
                     i.status, i.secret_hash, h.status AS hold_status, \
                     h.expires_at AS hold_expires_at \
                     FROM payment_intents i LEFT JOIN holds h ON h.id = i.hold_id \
                     WHERE i.id = $1",
                )
                .bind(intent_id.0)
                .fetch_optional(self.reader())
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let intent = intent_from(&row)?;
                let status: Option<String> = row.try_get("hold_status")?;
                let status: Option<HoldStatus> = status
                    .map(|s| s.parse().map_err(|e| corrupt("hold status", e)))
                    .transpose()?;
                let expires: Option<i64> = row.try_get("hold_expires_at")?;
                let live = status
                    .zip(expires)
                    .is_some_and(|(status, expires)| hold_is_live(status, expires, now));
                Ok(Some((intent, live)))
            }
        }

        /// A purchase's hold and payment intent (`$2`), in one statement; the caller adds
        /// which holds.
        const PURCHASE_READ: &str = "SELECT h.id, h.event_id, h.user_id, h.seat_ids, h.kind, \
            h.status, h.created_at, h.expires_at, i.id AS intent_id, \
            i.hold_id AS intent_hold_id, i.event_id AS intent_event_id, \
            i.user_id AS intent_user_id, i.amount AS intent_amount, \
            i.currency AS intent_currency, i.status AS intent_status, \
            i.secret_hash AS intent_secret_hash \
            FROM holds h LEFT JOIN payment_intents i ON i.id = $2";

        /// The states of `wanted` seats of the event that exist.
        async fn seat_states(
            tx: &mut Tx<'_>,
            event_id: Uuid,
            wanted: &[String],
        ) -> Result<BTreeMap<String, SeatState>, StoreError> {
            let sql = format!(
                "{} SELECT s.seat_id, CAST(s.state AS BIGINT) AS state FROM wanted \
                 JOIN seats s ON s.event_id = $1 AND s.seat_id = wanted.seat_id",
                wanted_seats(2, wanted.len())
            );
            let mut query = sql::query(sql::AssertSqlSafe(sql)).bind(event_id);
            for seat in wanted {
                query = query.bind(seat);
            }
            let mut states = BTreeMap::new();
            for row in &query.fetch_all(&mut **tx).await? {
                let state = SeatState::try_from(row.try_get::<i64, _>("state")?)
                    .map_err(|e| corrupt("seat state", e))?;
                states.insert(row.try_get("seat_id")?, state);
            }
            Ok(states)
        }

        /// Reads, once for a whole batch, what its requests' checks need from the store:
        /// each buyer's live holds and confirmed tickets of the event, the states of the seats
        /// asked for, the first free seats, and the holds and intents being bought.
        async fn prefetch(
            tx: &mut Tx<'_>,
            inv: &Inventory,
            jobs: &[Job],
            overlay: &mut Overlay,
        ) -> Result<(), StoreError> {
            let mut buyers = std::collections::BTreeSet::new();
            let mut wanted = std::collections::BTreeSet::new();
            // Seats the batch's holds may take, whatever their selection, and the widest
            // window a best-available hold without a section looks through.
            let mut takes = 0i64;
            let mut widest = None;
            let mut bought = Vec::new();
            for job in jobs {
                match job {
                    Job::Hold { new, .. } => {
                        buyers.insert(new.user_id);
                        takes += new.selection.quantity();
                        match &new.selection {
                            Selection::Seats(seats) => wanted.extend(seats.iter().cloned()),
                            Selection::Best { quantity, section: None } => {
                                let window = best_window(inv.reserved, *quantity);
                                widest = widest.max(Some(window));
                            }
                            Selection::Best { .. } => {}
                        }
                    }
                    Job::Purchase { input, .. } => bought.push((input.hold_id, input.intent_id)),
                }
            }
            if !buyers.is_empty() {
                let live = of_buyers(
                    tx,
                    "SELECT user_id, event_id FROM holds",
                    HoldStatus::Active.as_str(),
                    &buyers,
                );
                for row in &live.await? {
                    if row.try_get::<Uuid, _>("event_id")? == inv.event_id {
                        overlay.live.insert(row.try_get("user_id")?);
                    }
                }
                let owned = of_buyers(
                    tx,
                    "SELECT user_id, event_id, quantity FROM orders",
                    OrderStatus::Confirmed.as_str(),
                    &buyers,
                );
                for row in &owned.await? {
                    if row.try_get::<Uuid, _>("event_id")? == inv.event_id {
                        let quantity: i64 = row.try_get("quantity")?;
                        *overlay.owned.entry(row.try_get("user_id")?).or_default() += quantity;
                    }
                }
            }
            if !wanted.is_empty() {
                let wanted: Vec<String> = wanted.into_iter().collect();
                overlay.states = seat_states(tx, inv.event_id, &wanted).await?.into_iter().collect();
            }
            if let Some(widest) = widest {
                // Every request sees at least its own window once the seats taken by the
                // requests before it are left out.
                overlay.free = candidates(tx, inv.event_id, None, widest + takes).await?;
            }
            if !bought.is_empty() {
                let pairs = (0..bought.len())
                    .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "WITH asked (hold_id, intent_id) AS (VALUES {pairs}) \
                     SELECT asked.intent_id AS asked_intent, h.id, h.event_id, h.user_id, \
                     h.seat_ids, h.kind, h.status, h.created_at, h.expires_at, \
                     i.id AS intent_id, i.hold_id AS intent_hold_id, \
                     i.event_id AS intent_event_id, i.user_id AS intent_user_id, \
                     i.amount AS intent_amount, i.currency AS intent_currency, \
                     i.status AS intent_status, i.secret_hash AS intent_secret_hash \
                     FROM asked JOIN holds h ON h.id = asked.hold_id \
                     LEFT JOIN payment_intents i ON i.id = asked.intent_id"
                );
                let mut query = sql::query(sql::AssertSqlSafe(sql));
                for (hold, intent) in &bought {
                    query = query.bind(hold.0).bind(intent.0);
                }
                for row in &query.fetch_all(&mut **tx).await? {
                    let hold = hold_from(row)?;
                    let asked = PaymentIntentId(row.try_get("asked_intent")?);
                    overlay
                        .purchases
                        .insert((hold.id, asked), (hold, joined_intent_from(row)?));
                }
            }
            Ok(())
        }

        /// The rows of `select` (a table of buyers' rows with a `status`) of the `buyers` whose
        /// status is `status`.
        async fn of_buyers(
            tx: &mut Tx<'_>,
            select: &str,
            status: &str,
            buyers: &std::collections::BTreeSet<Uuid>,
        ) -> Result<Vec<$row>, StoreError> {
            let sql = format!(
                "{select} WHERE status = $1 AND user_id IN ({})",
                placeholders(2, buyers.len())
            );
            let mut query = sql::query(sql::AssertSqlSafe(sql)).bind(status);
            for buyer in buyers {
                query = query.bind(*buyer);
            }
            query.fetch_all(&mut **tx).await.map_err(StoreError::from)
        }

        /// A hold inside the inventory transaction: reads what [`decide_hold`] decides on, and
        /// adds the writes of what it decided to `writes`. In a batch (`overlay`), `None` when
        /// the request must go alone: it replaces the buyer's live hold, or the buyer already
        /// has a hold in the batch.
        #[allow(clippy::too_many_arguments)]
        async fn hold_step(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            changes: &mut Changes,
            writes: &mut Writes,
            mut overlay: Option<&mut Overlay>,
            new: &NewHold,
            now: i64,
            policy: Policy,
        ) -> Result<Option<Hold>, BookingError> {
            // The rules that need nothing more than the inventory refuse before any read.
            open_for_holds(inv, now)?;
            // The buyer's own live hold never blocks them: the new hold replaces it. One
            // statement reads those holds and the tickets the buyer already owns. Both are
            // found by the buyer alone (the materialised CTEs keep the event out of those
            // lookups), through `holds_of_user` and `orders_of_user`: by event and buyer, a
            // planner with stale statistics picks the event's index and walks every live hold
            // or every order of the event.
            let owned = match overlay.as_deref() {
                // In a batch, a replacement goes alone: ending the old hold is undone with
                // the new one's transaction if the new one is refused.
                Some(o) if o.live.contains(&new.user_id) || o.holders.contains(&new.user_id) => {
                    return Ok(None);
                }
                Some(o) => {
                    o.owned.get(&new.user_id).copied().unwrap_or(0)
                        + o.bought.get(&new.user_id).copied().unwrap_or(0)
                }
                None => {
                    let rows = sql::query(
                        "WITH mine AS MATERIALIZED (SELECT id, event_id, user_id, seat_ids, \
                         kind, status, created_at, expires_at FROM holds WHERE user_id = $2 \
                         AND status = 'active'), \
                         bought AS MATERIALIZED (SELECT event_id, quantity FROM orders \
                         WHERE user_id = $2 AND status = 'confirmed') \
                         SELECT (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM bought \
                         WHERE event_id = $1) AS owned, \
                         h.id AS own_hold, h.id, h.event_id, h.user_id, h.seat_ids, h.kind, \
                         h.status, h.created_at, h.expires_at FROM (SELECT 1 AS one) AS one \
                         LEFT JOIN mine h ON h.event_id = $1",
                    )
                    .bind(new.event_id)
                    .bind(new.user_id)
                    .fetch_all(&mut **tx)
                    .await?;
                    let mut owned = 0;
                    for row in &rows {
                        owned = row.try_get("owned")?;
                        if row.try_get::<Option<Uuid>, _>("own_hold")?.is_some() {
                            let hold = hold_from(row)?;
                            end_hold(tx, inv, changes, &hold, HoldStatus::Released, now).await?;
                        }
                    }
                    owned
                }
            };
            within_ticket_limit(owned, new.selection.quantity(), policy.max_tickets_per_user)?;
            let no_seats = std::collections::HashSet::new();
            let taken = overlay.as_deref().map_or(&no_seats, |o| &o.taken);
            let seats = match &new.selection {
                Selection::Seats(wanted) => {
                    let states: BTreeMap<String, SeatState> = match overlay.as_deref() {
                        Some(o) => wanted
                            .iter()
                            .filter_map(|s| o.states.get(s).map(|state| (s.clone(), *state)))
                            .collect(),
                        None => seat_states(tx, new.event_id, wanted).await?,
                    };
                    decide_hold(&HoldFacts {
                        event: inv,
                        now,
                        max_tickets: policy.max_tickets_per_user,
                        owned,
                        taken,
                        asked: SeatsAsked::Named {
                            wanted,
                            states: &states,
                        },
                    })?
                }
                Selection::Best { quantity, section } => {
                    let read;
                    let free: &[Candidate] = match (overlay.as_deref(), section) {
                        (Some(o), None) => &o.free,
                        (o, section) => {
                            // Enough free seats for the window once those taken earlier in
                            // the batch are left out.
                            let limit = best_window(inv.reserved, *quantity)
                                + o.map_or(0, |o| count(o.taken.len()));
                            read = candidates(tx, new.event_id, section.as_deref(), limit).await?;
                            &read
                        }
                    };
                    decide_hold(&HoldFacts {
                        event: inv,
                        now,
                        max_tickets: policy.max_tickets_per_user,
                        owned,
                        taken,
                        asked: SeatsAsked::Best {
                            quantity: *quantity,
                            free,
                        },
                    })?
                }
            };
            let hold = insert_hold(
                writes,
                inv,
                changes,
                new.hold_id,
                new.user_id,
                seats,
                HoldKind::Buyer,
                now + new.ttl_ms,
                now,
            )?;
            if let Some(overlay) = overlay.as_deref_mut() {
                overlay.taken.extend(hold.seat_ids.iter().cloned());
                overlay.holders.insert(new.user_id);
            }
            Ok(Some(hold))
        }

        /// A purchase inside the inventory transaction: its checks, and its writes (with the
        /// idempotency record's answer) added to `writes`. Returns the order and its answer.
        async fn purchase_step(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            changes: &mut Changes,
            writes: &mut Writes,
            overlay: Option<&mut Overlay>,
            input: &PurchaseInput,
            now: i64,
        ) -> Result<(Order, String), BookingError> {
            let order = purchase_in(tx, inv, changes, writes, overlay, input, now).await?;
            let body = json(&order)?;
            writes.push_row(
                &KEY_COMPLETED,
                vec![
                    Arg::Uuid(input.key.user_id),
                    Arg::Text(input.key.route.clone()),
                    Arg::Text(input.key.key.clone()),
                    Arg::Text(body.clone()),
                ],
                None,
            );
            Ok((order, body))
        }

        /// A purchase inside the inventory transaction: reads the hold and payment intent
        /// [`check_purchase`] decides on, and adds the writes of the sale to `writes`.
        async fn purchase_in(
            tx: &mut Tx<'_>,
            inv: &mut Inventory,
            changes: &mut Changes,
            writes: &mut Writes,
            overlay: Option<&mut Overlay>,
            input: &PurchaseInput,
            now: i64,
        ) -> Result<Order, BookingError> {
            let found = match overlay.as_deref() {
                Some(o) => o.purchases.get(&(input.hold_id, input.intent_id)).cloned(),
                None => {
                    let sql = format!("{PURCHASE_READ} WHERE h.id = $1");
                    let row = sql::query(sql::AssertSqlSafe(sql))
                        .bind(input.hold_id.0)
                        .bind(input.intent_id.0)
                        .fetch_optional(&mut **tx)
                        .await?;
                    row.as_ref()
                        .map(|row| Ok::<_, StoreError>((hold_from(row)?, joined_intent_from(row)?)))
                        .transpose()?
                }
            };
            let (hold, intent) = check_purchase(&PurchaseFacts {
                buyer: input.user_id,
                event_id: inv.event_id,
                event_cancelled: inv.is_cancelled(),
                hold: found.as_ref().map(|(hold, _)| hold),
                intent: found.as_ref().and_then(|(_, intent)| intent.as_ref()),
                seat_ids: &input.seat_ids,
                bought_earlier: overlay
                    .as_deref()
                    .is_some_and(|o| o.purchased.contains(&input.hold_id)),
            })?;
            // Every seat of an active hold is held by it (the hold owns exactly its seats).
            writes.push_row(
                &SEATS_SOLD,
                vec![Arg::Uuid(hold.id.0), Arg::Uuid(input.order_id.0)],
                Some(hold.seat_ids.len() as u64),
            );
            let quantity = count(hold.seat_ids.len());
            writes.push_row(
                &ORDER_INSERTED,
                vec![
                    Arg::Uuid(input.order_id.0),
                    Arg::Uuid(inv.event_id),
                    Arg::Uuid(input.user_id),
                    Arg::Uuid(hold.id.0),
                    Arg::Uuid(intent.id.0),
                    Arg::Text(json(&hold.seat_ids)?),
                    Arg::Int(quantity),
                    Arg::Int(intent.amount),
                    Arg::Text(intent.currency.clone()),
                    Arg::Int(now),
                ],
                None,
            );
            let mut tickets = Vec::with_capacity(hold.seat_ids.len());
            for seat in &hold.seat_ids {
                tickets.push(Ticket {
                    ticket_id: TicketId::new(),
                    seat_id: seat.clone(),
                    code: random_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?,
                    status: TicketStatus::Valid,
                });
            }
            for t in &tickets {
                writes.push_row(
                    &TICKET_INSERTED,
                    vec![
                        Arg::Uuid(t.ticket_id.0),
                        Arg::Uuid(input.order_id.0),
                        Arg::Uuid(inv.event_id),
                        Arg::Text(t.seat_id.clone()),
                        Arg::Text(t.code.clone()),
                    ],
                    Some(1),
                );
            }
            writes.push_row(
                &HOLD_PURCHASED,
                vec![Arg::Uuid(hold.id.0), Arg::Int(now)],
                Some(1),
            );
            if hold.kind == HoldKind::Waitlist {
                writes.push(
                    "UPDATE waitlist SET status = 'claimed', updated_at = $2 WHERE hold_id = $1",
                    vec![Arg::Uuid(hold.id.0), Arg::Int(now)],
                    None,
                );
            }
            inv.held -= quantity;
            inv.sold += quantity;
            if let Some(overlay) = overlay {
                overlay.purchased.insert(hold.id);
                *overlay.bought.entry(input.user_id).or_default() += quantity;
            }
            changes.push(
                inv,
                now,
                DomainEvent::OrderPlaced,
                InventoryChange {
                    user_id: Some(input.user_id),
                    hold_id: Some(hold.id.0),
                    order_id: Some(input.order_id.0),
                    seat_ids: hold.seat_ids.clone(),
                    amount: Some(intent.amount),
                    currency: Some(intent.currency.clone()),
                    ..change(inv)
                },
            );
            tickets.sort_by(|a, b| a.seat_id.cmp(&b.seat_id));
            Ok(Order {
                order_id: input.order_id,
                event_id: inv.event_id,
                user_id: input.user_id,
                hold_id: hold.id,
                payment_intent_id: intent.id,
                seat_ids: hold.seat_ids.clone(),
                amount: intent.amount,
                currency: intent.currency.clone(),
                status: OrderStatus::Confirmed,
                refunded_amount: None,
                cancel_reason: None,
                created_at: evently_bus::envelope::time_from_ms(now),
                tickets,
            })
        }
    };
}

pub(crate) use backend;

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
