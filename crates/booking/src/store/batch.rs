//! The queue in front of each event's inventory lock and, on PostgreSQL, the batches that
//! decide the holds and purchases queued for an event together in one transaction (see the
//! module docs of [`super`]); also the early refusals read outside the lock.

use evently_core::db::StoreError;
use uuid::Uuid;

use evently_core::sql::{Row, Sql, Tx, query};

use crate::domain::{
    Candidate, Confirmation, Hold, HoldId, HoldStatus, IntentOfHold, IntentStatus, Inventory,
    Order, OrderStatus, Payment, PaymentIntent, PaymentIntentId, Policy, SeatState, Selection,
    best_window, hold_is_live, purchase_without_event, refuse_best_early, refuse_named_early,
    seat_blocks,
};
use crate::error::BookingError;
use crate::store::{NewHold, Purchase, corrupt, placeholders, seat_list, value_rows, wanted_seats};

use super::{
    holds::{fetch_hold, hold_step, seat_states},
    inventory::{candidates, open_event},
    purchase::{PAID_INTENT, PURCHASE_COLUMNS, named_intent, purchase_step},
    rows::{hold_from, intent_from, joined_intent_from},
    sql::SqlBookingStore,
    writes::Writes,
};

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
        input: Purchase,
        now: i64,
        policy: Policy,
        reply: tokio::sync::oneshot::Sender<Result<(Order, String), BookingError>>,
        decided: Option<Box<(Order, String)>>,
    },
}

impl Job {
    pub(super) fn now(&self) -> i64 {
        match self {
            Job::Hold { now, .. } | Job::Purchase { now, .. } => *now,
        }
    }

    /// Answers the request with a refusal or failure (a caller that went away is not
    /// waiting any more).
    pub(super) fn refuse(self, e: BookingError) {
        match self {
            Job::Hold { reply, .. } => drop(reply.send(Err(e))),
            Job::Purchase { reply, .. } => drop(reply.send(Err(e))),
        }
    }

    /// Answers the request with what its committed batch decided.
    pub(super) fn deliver(self) {
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
    /// The holds the batch's checkouts buy, with the succeeded intent of those paid before,
    /// as stored.
    pub(crate) checkouts: std::collections::HashMap<HoldId, (Hold, Option<PaymentIntent>)>,
    /// Seats taken by the batch's holds.
    pub(crate) taken: std::collections::HashSet<String>,
    /// Buyers with a hold in the batch.
    pub(crate) holders: std::collections::HashSet<Uuid>,
    /// Tickets bought in the batch, by buyer.
    pub(crate) bought: std::collections::HashMap<Uuid, i64>,
    /// Holds purchased in the batch.
    pub(crate) purchased: std::collections::HashSet<HoldId>,
}

impl SqlBookingStore {
    /// A hold in a transaction of its own. On any refusal the transaction rolls back
    /// whole (what the sweep found is swept again by the next change or the expiry
    /// task).
    pub(super) async fn hold_alone(
        &self,
        new: &NewHold,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError> {
        let _gate = self.gates.enter(new.event_id).await;
        let (mut tx, mut inv, mut changes, _) =
            open_event(self.db.writer(), new.event_id, now, false)
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
        self.finish(&mut tx, &mut inv, changes, now, policy, writes)
            .await?;
        tx.commit().await?;
        Ok(hold)
    }

    /// A purchase in a transaction of its own (rolled back whole on any refusal).
    pub(super) async fn purchase_alone(
        &self,
        input: &Purchase,
        now: i64,
        policy: Policy,
    ) -> Result<(Order, String), BookingError> {
        let _gate = self.gates.enter(input.event_id).await;
        let Some((mut tx, mut inv, mut changes, _)) =
            open_event(self.db.writer(), input.event_id, now, false).await?
        else {
            // No such event: the answer is about the hold.
            let hold = fetch_hold(self.db.reader(), input.hold_id).await?;
            let refusal = purchase_without_event(hold.as_ref(), input.user_id, input.event_id);
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
            policy,
        )
        .await?;
        self.finish(&mut tx, &mut inv, changes, now, policy, writes)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Queues the request `job` makes for the event's next batch (starting the event's
    /// leader when none runs) and waits for its answer.
    pub(super) async fn queue<T>(
        &self,
        batches: &crate::store::Batches,
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
    pub(super) async fn run_alone(&self, job: Job) {
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
    pub(super) fn lead(&self, event_id: Uuid) {
        let store = self.clone();
        tokio::spawn(async move {
            let Some(batches) = store.batches.as_deref() else {
                return;
            };
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
    pub(super) async fn run_batch(&self, event_id: Uuid, jobs: Vec<Job>) -> Vec<Job> {
        let _gate = self.gates.enter(event_id).await;
        let now = jobs.iter().map(Job::now).max().unwrap_or_default();
        let policy = match &jobs[0] {
            Job::Hold { policy, .. } | Job::Purchase { policy, .. } => *policy,
        };
        let (mut tx, mut inv, mut changes) =
            match open_event(self.db.writer(), event_id, now, false).await {
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
                    input,
                    now,
                    decided,
                    ..
                } => purchase_step(
                    &mut tx,
                    &mut inv,
                    &mut changes,
                    &mut writes,
                    Some(&mut overlay),
                    input,
                    *now,
                    policy,
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
        let committed = match self
            .finish(&mut tx, &mut inv, changes, now, policy, writes)
            .await
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
    pub(super) async fn refuse_early(&self, new: &NewHold, now: i64) -> Result<(), BookingError> {
        let mut conn = self.db.reader().acquire().await?;
        match &new.selection {
            Selection::Seats(wanted) => {
                let sql = format!(
                    "{} SELECT s.seat_id, CAST(s.state AS BIGINT) AS state, \
                     h.user_id, h.expires_at FROM wanted \
                     JOIN seats s ON s.event_id = $1 AND s.seat_id = wanted.seat_id \
                     LEFT JOIN holds h ON h.id = s.hold_id",
                    wanted_seats(2, wanted.len())
                );
                let mut query = query(Sql::assert_safe(sql)).bind(new.event_id);
                for seat in wanted {
                    query = query.bind(seat);
                }
                let rows = query.fetch_all(&mut conn).await?;
                let mut taken = std::collections::BTreeSet::new();
                for row in &rows {
                    let state = SeatState::try_from(row.get::<i64>("state")?)
                        .map_err(|e| corrupt("seat state", e))?;
                    let holder: Option<Uuid> = row.get("user_id")?;
                    let expires: Option<i64> = row.get("expires_at")?;
                    if seat_blocks(state, holder, expires, new.user_id, now) {
                        taken.insert(row.get::<String>("seat_id")?);
                    }
                }
                refuse_named_early(wanted, rows.len(), &taken)?;
            }
            Selection::Best {
                quantity,
                section: None,
            } => {
                // Free seats, plus those of expired holds, plus those of the caller's own live
                // hold: two sums over disjoint holds, each found by an index range (the
                // expired ones of the event; the caller's), never by walking every live hold
                // of the event, which in a rush are as many as the buyers paying.
                let row = query(
                    "SELECT i.capacity - i.held - i.sold + \
                     (SELECT CAST(COALESCE(SUM(h.quantity), 0) AS BIGINT) FROM holds h \
                      WHERE h.event_id = i.event_id AND h.status = 'active' \
                      AND h.expires_at <= $2) + \
                     (SELECT CAST(COALESCE(SUM(h.quantity), 0) AS BIGINT) FROM holds h \
                      WHERE h.user_id = $3 AND h.status = 'active' \
                      AND h.event_id = i.event_id AND h.expires_at > $2) AS free, \
                     i.capacity, i.sold, i.version \
                     FROM inventories i WHERE i.event_id = $1",
                )
                .bind(new.event_id)
                .bind(now)
                .bind(new.user_id)
                .fetch_optional(&mut conn)
                .await?;
                if let Some(row) = row {
                    let (capacity, sold): (i64, i64) = (row.get("capacity")?, row.get("sold")?);
                    if let Some(board) = &self.sold_out
                        && capacity > 0
                        && sold >= capacity
                    {
                        board.mark(new.event_id, row.get("version")?);
                    }
                    refuse_best_early(row.get("free")?, *quantity)?;
                }
            }
            Selection::Best { .. } => {}
        }
        Ok(())
    }

    /// A payment intent and whether its hold is live at `now`, in one read.
    pub(super) async fn intent_and_hold(
        &self,
        intent_id: PaymentIntentId,
        now: i64,
    ) -> Result<Option<(IntentOfHold, bool)>, StoreError> {
        let row = query(
            "SELECT i.id, i.hold_id, i.event_id, i.user_id, i.amount, i.currency, \
             i.status, i.secret_hash, h.status AS hold_status, \
             h.expires_at AS hold_expires_at, h.seat_ids \
             FROM payment_intents i LEFT JOIN holds h ON h.id = i.hold_id \
             WHERE i.id = $1",
        )
        .bind(intent_id.0)
        .fetch_optional(self.db.reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let intent = intent_from(&row)?;
        let status: Option<String> = row.get("hold_status")?;
        let status: Option<HoldStatus> = status
            .map(|s| s.parse().map_err(|e| corrupt("hold status", e)))
            .transpose()?;
        let expires: Option<i64> = row.get("hold_expires_at")?;
        let live = status
            .zip(expires)
            .is_some_and(|(status, expires)| hold_is_live(status, expires, now));
        let seat_ids = match row.get::<Option<String>>("seat_ids")? {
            Some(seats) => seat_list(&seats)?,
            None => Vec::new(),
        };
        Ok(Some((IntentOfHold { intent, seat_ids }, live)))
    }

    /// The usual confirmation in one statement: `outcome` moves the caller's intent, which
    /// awaits confirmation with the secret hashing to `secret_hash` and a live hold, and the
    /// intent comes back with its hold's seats. `None` when it is anything else (a wrong
    /// secret, another's intent, a processor failure, an ended hold, a repeated
    /// confirmation): the caller then reads the intent and decides.
    pub(super) async fn confirm_at_once(
        &self,
        intent_id: PaymentIntentId,
        user_id: Uuid,
        secret_hash: &str,
        outcome: Confirmation,
        now: i64,
    ) -> Result<Option<IntentOfHold>, StoreError> {
        let to = match outcome {
            Confirmation::Succeed => IntentStatus::Succeeded,
            Confirmation::Decline => IntentStatus::Declined,
            Confirmation::Fail => return Ok(None),
        };
        // The secret is compared as its SHA-256, which tells an observer of the timing
        // nothing about the secret.
        let row = query(concat!(
            "UPDATE payment_intents SET status = $2, updated_at = $3 \
             WHERE id = $1 AND user_id = $4 AND secret_hash = $5 \
             AND status = 'requires_confirmation' AND ",
            hold_is_live!("payment_intents.hold_id", "$3"),
            " RETURNING id, hold_id, event_id, user_id, amount, currency, status, secret_hash, \
             (SELECT h.seat_ids FROM holds h WHERE h.id = payment_intents.hold_id) AS seat_ids"
        ))
        .bind(intent_id.0)
        .bind(to.as_str())
        .bind(now)
        .bind(user_id)
        .bind(secret_hash)
        .fetch_optional(self.db.writer())
        .await?;
        row.map(|row| {
            Ok(IntentOfHold {
                intent: intent_from(&row)?,
                seat_ids: seat_list(&row.get::<String>("seat_ids")?)?,
            })
        })
        .transpose()
    }
}

/// Reads, once for a whole batch, what its requests' checks need from the store:
/// each buyer's live holds and confirmed tickets of the event, the states of the seats
/// asked for, the first free seats, and the holds and intents being bought.
pub(super) async fn prefetch(
    tx: &mut Tx,
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
    let mut checkouts = Vec::new();
    for job in jobs {
        match job {
            Job::Hold { new, .. } => {
                buyers.insert(new.user_id);
                takes += new.selection.quantity();
                match &new.selection {
                    Selection::Seats(seats) => wanted.extend(seats.iter().cloned()),
                    Selection::Best {
                        quantity,
                        section: None,
                    } => {
                        let window = best_window(inv.reserved, *quantity);
                        widest = widest.max(Some(window));
                    }
                    Selection::Best { .. } => {}
                }
            }
            Job::Purchase { input, .. } => match input.payment {
                Payment::Confirmed => bought.push((input.hold_id, input.intent_id)),
                Payment::AtCheckout(_) => checkouts.push(input.hold_id),
            },
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
            if row.get::<Uuid>("event_id")? == inv.event_id {
                overlay.live.insert(row.get("user_id")?);
            }
        }
        let owned = of_buyers(
            tx,
            "SELECT user_id, event_id, quantity FROM orders",
            OrderStatus::Confirmed.as_str(),
            &buyers,
        );
        for row in &owned.await? {
            if row.get::<Uuid>("event_id")? == inv.event_id {
                let quantity: i64 = row.get("quantity")?;
                *overlay.owned.entry(row.get("user_id")?).or_default() += quantity;
            }
        }
    }
    if !wanted.is_empty() {
        let wanted: Vec<String> = wanted.into_iter().collect();
        overlay.states = seat_states(tx, inv.event_id, &wanted)
            .await?
            .into_iter()
            .collect();
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
             SELECT asked.intent_id AS asked_intent, {PURCHASE_COLUMNS} \
             FROM asked JOIN holds h ON h.id = asked.hold_id {}",
            named_intent("asked.intent_id")
        );
        let mut query = query(Sql::assert_safe(sql));
        for (hold, intent) in &bought {
            query = query.bind(hold.0).bind(intent.0);
        }
        for row in &query.fetch_all(&mut *tx).await? {
            let hold = hold_from(row)?;
            let asked = PaymentIntentId(row.get("asked_intent")?);
            overlay
                .purchases
                .insert((hold.id, asked), (hold, joined_intent_from(row)?));
        }
    }
    if !checkouts.is_empty() {
        let sql = format!(
            "WITH asked (hold_id) AS (VALUES {}) \
             SELECT {PURCHASE_COLUMNS} FROM asked JOIN holds h ON h.id = asked.hold_id \
             {PAID_INTENT}",
            value_rows(1, checkouts.len()),
        );
        let mut query = query(Sql::assert_safe(sql));
        for hold in &checkouts {
            query = query.bind(hold.0);
        }
        for row in &query.fetch_all(&mut *tx).await? {
            let hold = hold_from(row)?;
            overlay
                .checkouts
                .insert(hold.id, (hold, joined_intent_from(row)?));
        }
    }
    Ok(())
}

/// The rows of `select` (a table of buyers' rows with a `status`) of the `buyers` whose
/// status is `status`.
pub(super) async fn of_buyers(
    tx: &mut Tx,
    select: &str,
    status: &str,
    buyers: &std::collections::BTreeSet<Uuid>,
) -> Result<Vec<Row>, StoreError> {
    let sql = format!(
        "{select} WHERE status = $1 AND user_id IN ({})",
        placeholders(2, buyers.len())
    );
    let mut query = query(Sql::assert_safe(sql)).bind(status);
    for buyer in buyers {
        query = query.bind(*buyer);
    }
    query.fetch_all(&mut *tx).await
}
