use std::sync::Arc;

use evently_core::sql::{Db, Pool, Sql, Tx, query};

use evently_bus::{DomainEvent, Envelope};
use evently_core::db::StoreError;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Booking's tables on either engine: in one SQLite file, or in the `booking` schema (any
/// schema on the pool's `search_path`) of a PostgreSQL database. Opened by
/// [`SqlBookingStore::sqlite`] or [`SqlBookingStore::postgres`].
#[derive(Debug, Clone)]
pub struct SqlBookingStore {
    pub(super) db: Db,
    /// The in-process queue per event in front of the database's lock.
    pub(super) gates: Arc<super::EventGates>,
    /// Holds and purchases decided together per event (PostgreSQL, where a statement is a
    /// round trip); `None` where each runs alone.
    pub(super) batches: Option<Arc<super::Batches>>,
    /// The fully sold events, where this process sees every write (SQLite).
    pub(super) sold_out: Option<Arc<crate::sold_out::SoldOutBoard>>,
}

impl SqlBookingStore {
    /// Finishes an inventory transaction ([`finish`]) with this store's sold-out board.
    pub(super) async fn finish(
        &self,
        tx: &mut Tx,
        inv: &mut crate::domain::Inventory,
        changes: Changes,
        now: i64,
        policy: Policy,
        writes: Writes,
    ) -> Result<(), BookingError> {
        finish(
            tx,
            inv,
            changes,
            now,
            policy,
            writes,
            self.sold_out.as_deref(),
        )
        .await
    }

    /// The booking outbox on this store's connections, so the relay's and the consumers'
    /// writes queue with the store's own.
    #[must_use]
    pub fn outbox(&self) -> evently_bus::outbox::SqlOutbox {
        evently_bus::outbox::SqlOutbox::new(self.db.clone())
    }

    /// Refreshes the planner's statistics of the tables the audit counts, where the engine
    /// keeps them.
    pub(super) async fn refresh_statistics(&self) -> Result<(), StoreError> {
        match self.db.writer() {
            Pool::Postgres(pool) => super::postgres::analyze(pool).await,
            Pool::Sqlite(_) => Ok(()),
        }
    }
}

/// Sends `writes` and appends `envelopes` inside `tx`, the way its engine does it best;
/// returns the rows each write changed.
pub(super) async fn send_writes(
    tx: &mut Tx,
    writes: &Writes,
    envelopes: &[Envelope],
) -> Result<Vec<u64>, StoreError> {
    match tx {
        Tx::Sqlite(tx) => super::sqlite::send_writes(tx, writes, envelopes).await,
        Tx::Postgres(tx) => super::postgres::send_writes(tx, writes, envelopes).await,
    }
}

/// Sends `writes` on their own (one atomic unit).
pub(super) async fn write_alone(pool: &Pool, writes: &Writes) -> Result<Vec<u64>, StoreError> {
    match pool {
        Pool::Sqlite(pool) => super::sqlite::write_alone(pool, writes).await,
        Pool::Postgres(pool) => super::postgres::write_alone(pool, writes).await,
    }
}

use super::{
    holds::{end_hold, fetch_hold, hold_in},
    inventory::{
        Changes, cancel_event, create_inventory, fetch_inventory, flush, lock_inventory,
        open_event, sweep, update_inventory,
    },
    purchase::{cancel_in, order_in, tickets_of},
    rows::{ORDER_COLUMNS, hold_from, order_from, ticket_from},
    waitlist::{EntryChange, finish, waitlist_changed, waitlist_in},
};
use crate::domain::idempotency::{KeyDecision, StoredKey, decide_key};
use crate::domain::{
    Audit, AvailabilityView, ConfirmStep, EVENT_CANCELLED, Hold, HoldEnded, HoldId, HoldStatus,
    IntentOfHold, IntentStatus, Inventory, Order, OrderId, PaymentIntent, PaymentIntentId, Policy,
    SeatState, SeatView, WaitlistEntry, WaitlistStatus, confirmation_lost, constant_time_eq,
    decide_confirmation, intent_amount, may_join_waitlist, may_pay_for, may_release,
    open_for_holds, refreshed_expiry, seat_shown_as, sha256_hex,
};
use crate::error::BookingError;
use crate::store::{
    Arg, BookingStore, Confirmation, IdempotencyKey, IdempotencyStart, Job, NewHold, NewIntent,
    Purchase, Writes, corrupt,
};

/// The upsert that claims a new or expired idempotency key (`$1`… buyer, route, key,
/// fingerprint, now, expiry), its row made by `$rows` after the statement's `$with`.
macro_rules! claim_key {
    ($with:literal, $rows:literal) => {
        concat!(
            $with,
            "INSERT INTO idempotency_keys (user_id, route, key, fingerprint, status, \
             locked_at, created_at, expires_at) ",
            $rows,
            " ON CONFLICT (user_id, route, key) DO UPDATE SET \
             fingerprint = excluded.fingerprint, status = 'in_flight', \
             response_status = NULL, response_body = NULL, \
             locked_at = excluded.locked_at, created_at = excluded.created_at, \
             expires_at = excluded.expires_at \
             WHERE idempotency_keys.expires_at <= $5 \
             RETURNING 1"
        )
    };
}

/// Claims a key (on SQLite the group commit makes it durable with its batch).
const CLAIM_KEY: &str = claim_key!("", "VALUES ($1, $2, $3, $4, 'in_flight', $5, $5, $6)");

/// Claims a key on PostgreSQL, committing without waiting for the log to reach the disk
/// (`synchronous_commit` off for the statement's own transaction only). Nothing is answered
/// on a claim alone: the purchase, or the stored refusal, that follows it commits
/// synchronously, which flushes the log up to and past the claim. A crash before that loses
/// the claim together with everything after it, and the retry runs as new. A request that
/// meanwhile found the key claimed was answered 409, which asks it to retry.
const CLAIM_KEY_WITHOUT_FLUSH: &str = claim_key!(
    "WITH no_flush AS MATERIALIZED \
     (SELECT set_config('synchronous_commit', 'off', true)) ",
    "SELECT $1, $2, $3, $4, 'in_flight', $5, $5, $6 FROM no_flush"
);

// Every method opens a span named after it, carrying the ids it works on. Those on a buyer's
// path (availability, holds, payment intents, idempotency, purchase) and the plain reads are
// at `debug`: an on-sale runs thousands of them a second, and under the default `info` filter
// a disabled span costs one check of its callsite. Changes off that path (catalog events,
// cancellations, the waitlist, expiry, purges) are at `info`. Client secrets, idempotency keys
// and cancellation reasons are never recorded.
#[async_trait::async_trait]
impl BookingStore for SqlBookingStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1").execute(self.db.reader()).await?;
        Ok(())
    }

    fn sold_out_board(&self) -> Option<Arc<crate::sold_out::SoldOutBoard>> {
        self.sold_out.clone()
    }

    #[tracing::instrument(
        skip_all,
        fields(envelope.id = %envelope.id, envelope.type = %envelope.event_type)
    )]
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
        let mut tx = self.db.begin().await?;
        let first = query(
            "INSERT INTO applied_events (id, applied_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(envelope.id)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if first == 0 {
            return Ok(false);
        }
        let sold_out = self.sold_out.as_deref();
        match event {
            DomainEvent::EventCreated(snapshot) => {
                create_inventory(&mut tx, snapshot, now).await?;
                if snapshot.status == EVENT_CANCELLED {
                    cancel_event(&mut tx, snapshot.event_id, false, now, policy, sold_out).await?;
                }
            }
            DomainEvent::EventUpdated(snapshot) => {
                if snapshot.status == EVENT_CANCELLED {
                    cancel_event(&mut tx, snapshot.event_id, false, now, policy, sold_out).await?;
                } else {
                    update_inventory(&mut tx, snapshot, now, policy, sold_out).await?;
                }
            }
            DomainEvent::EventStatusChanged { event_id, to, .. } => {
                if to == EVENT_CANCELLED {
                    cancel_event(&mut tx, *event_id, false, now, policy, sold_out).await?;
                } else if let Some(mut inv) = lock_inventory(&mut tx, *event_id).await? {
                    query("UPDATE inventories SET status = $2 WHERE event_id = $1")
                        .bind(event_id)
                        .bind(to)
                        .execute(&mut tx)
                        .await?;
                    inv.status = to.clone();
                    // Seats freed while the sale had not opened go to waiting buyers.
                    let mut changes = Changes::new(&inv);
                    changes.freed = true;
                    self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
                        .await?;
                }
            }
            DomainEvent::EventDeleted { event_id } => {
                cancel_event(&mut tx, *event_id, true, now, policy, sold_out).await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(event.id = %event_id))]
    async fn inventory(&self, event_id: Uuid) -> Result<Option<Inventory>, StoreError> {
        fetch_inventory(self.db.reader(), event_id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(event.id = %event_id))]
    async fn availability(
        &self,
        event_id: Uuid,
        now: i64,
    ) -> Result<Option<AvailabilityView>, StoreError> {
        let mut conn = self.db.reader().acquire().await?;
        let Some(inv) = fetch_inventory(&mut conn, event_id).await? else {
            return Ok(None);
        };
        if inv.deleted {
            return Ok(None);
        }
        let expired: i64 = query(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS n FROM holds WHERE event_id = $1 \
             AND status = 'active' AND expires_at <= $2",
        )
        .bind(event_id)
        .bind(now)
        .fetch_one(&mut conn)
        .await?
        .get("n")?;
        Ok(Some(AvailabilityView::of(&inv, expired, now)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(event.id = %event_id))]
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
        let rows = query(
            "SELECT s.seat_id, s.section, s.row_label, s.number, CAST(s.state AS BIGINT) AS state, h.expires_at \
             FROM seats s LEFT JOIN holds h ON h.id = s.hold_id \
             WHERE s.event_id = $1 ORDER BY s.ord",
        )
        .bind(event_id)
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let section: String = r.get("section")?;
                let state = SeatState::try_from(r.get::<i64>("state")?)
                    .map_err(|e| corrupt("seat state", e))?;
                let expires: Option<i64> = r.get("expires_at")?;
                let state = seat_shown_as(state, expires, now);
                Ok(SeatView {
                    seat_id: r.get("seat_id")?,
                    row: r.get("row_label")?,
                    number: r.get("number")?,
                    price_tier: inv.tier_of(&section).to_owned(),
                    price: inv.price_of(&section),
                    section,
                    state: state.to_owned(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(Some)
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(hold.id = %new.hold_id, event.id = %new.event_id, user.id = %new.user_id)
    )]
    async fn create_hold(
        &self,
        new: &NewHold,
        now: i64,
        policy: Policy,
    ) -> Result<Hold, BookingError> {
        self.refuse_early(new, now).await?;
        let Some(batches) = self.batches.as_deref() else {
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

    #[tracing::instrument(level = "debug", skip_all, fields(hold.id = %hold_id))]
    async fn hold(&self, hold_id: HoldId) -> Result<Option<Hold>, StoreError> {
        fetch_hold(self.db.reader(), hold_id).await
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(hold.id = %hold_id, user.id = %user_id)
    )]
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
        let _gate = self.gates.enter(found.event_id).await;
        let (mut tx, mut inv, changes, _) =
            open_event(self.db.writer(), found.event_id, now, false)
                .await?
                .ok_or(BookingError::HoldNotFound)?;
        let mut hold = hold_in(&mut tx, hold_id)
            .await?
            .ok_or(BookingError::HoldNotFound)?;
        let outcome = match refreshed_expiry(&hold, now, extend_ms, max_lifetime_ms) {
            Ok(Some(target)) => {
                query("UPDATE holds SET expires_at = $2 WHERE id = $1")
                    .bind(hold_id.0)
                    .bind(target)
                    .execute(&mut tx)
                    .await?;
                hold.expires_at = target;
                Ok(hold)
            }
            Ok(None) => Ok(hold),
            Err(ended) => Err(BookingError::from(ended)),
        };
        self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
            .await?;
        tx.commit().await?;
        outcome
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(hold.id = %hold_id, user.id = %user_id)
    )]
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
        let _gate = self.gates.enter(found.event_id).await;
        let (mut tx, mut inv, mut changes, _) =
            open_event(self.db.writer(), found.event_id, now, false)
                .await?
                .ok_or(BookingError::HoldNotFound)?;
        let hold = hold_in(&mut tx, hold_id)
            .await?
            .ok_or(BookingError::HoldNotFound)?;
        let outcome = match may_release(hold.status) {
            Ok(true) => {
                end_hold(
                    &mut tx,
                    &mut inv,
                    &mut changes,
                    &hold,
                    HoldStatus::Released,
                    now,
                )
                .await?;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(ended) => Err(BookingError::from(ended)),
        };
        self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
            .await?;
        tx.commit().await?;
        outcome
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(intent.id = %new.intent_id, hold.id = %new.hold_id, user.id = %new.user_id)
    )]
    async fn create_intent(&self, new: &NewIntent, now: i64) -> Result<IntentOfHold, BookingError> {
        // One read of the hold with its event's prices, then one write that inserts
        // the intent only while the hold is still live (no transaction around them:
        // the write's condition is what the read's checks were).
        let row = query(
            "SELECT h.id, h.event_id, h.user_id, h.seat_ids, h.kind, h.status, \
             h.created_at, h.expires_at, i.currency, i.base_price, i.section_prices \
             FROM holds h LEFT JOIN inventories i ON i.event_id = h.event_id \
             WHERE h.id = $1",
        )
        .bind(new.hold_id.0)
        .fetch_optional(self.db.reader())
        .await?;
        let Some(row) = row else {
            return Err(BookingError::HoldNotFound);
        };
        let hold = hold_from(&row)?;
        may_pay_for(&hold, new.user_id, now)?;
        let Some(currency) = row.get::<Option<String>>("currency")? else {
            return Err(BookingError::EventNotFound);
        };
        let base_price: i64 = row.get("base_price")?;
        let prices: String = row.get("section_prices")?;
        let prices: BTreeMap<String, i64> =
            serde_json::from_str(&prices).map_err(|e| corrupt("section_prices", e))?;
        let amount = intent_amount(&prices, base_price, &hold.seat_ids)
            .ok_or_else(|| anyhow::anyhow!("order amount overflows"))?;
        const LIVE: &str = hold_is_live!("$1", "$2");
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
                 WHERE {LIVE} AND NOT EXISTS (SELECT 1 FROM payment_intents \
                 WHERE hold_id = $1 AND status = 'succeeded')"
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
        let changed = write_alone(self.db.writer(), &writes).await?;
        if changed.get(1) != Some(&1) {
            // The hold ended between the read and the write, or it is paid already: one
            // succeeded intent per hold, so that no payment is left without its order.
            let hold = fetch_hold(self.db.writer(), hold.id).await?;
            return Err(match hold {
                Some(h) if h.is_live(now) => BookingError::HoldPaid,
                Some(h) => HoldEnded::of(h.status).into(),
                None => HoldEnded::Expired.into(),
            });
        }
        Ok(IntentOfHold {
            intent: PaymentIntent {
                id: new.intent_id,
                hold_id: hold.id,
                event_id: hold.event_id,
                user_id: new.user_id,
                amount,
                currency,
                status: IntentStatus::RequiresConfirmation,
                secret_hash: new.secret_hash.clone(),
            },
            seat_ids: hold.seat_ids,
        })
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(intent.id = %intent_id, user.id = %user_id)
    )]
    async fn confirm_intent(
        &self,
        intent_id: PaymentIntentId,
        user_id: Uuid,
        secret: &str,
        outcome: Confirmation,
        now: i64,
    ) -> Result<IntentOfHold, BookingError> {
        let secret_hash = sha256_hex(secret.as_bytes());
        if let Some(paid) = self
            .confirm_at_once(intent_id, user_id, &secret_hash, outcome, now)
            .await?
        {
            if paid.intent.status == IntentStatus::Declined {
                return Err(BookingError::PaymentDeclined);
            }
            return Ok(paid);
        }
        // Not the usual confirmation: read the intent and decide what to answer or do.
        let (mut found, hold_live) = self
            .intent_and_hold(intent_id, now)
            .await?
            .filter(|(i, _)| i.intent.user_id == user_id)
            .ok_or(BookingError::IntentNotFound)?;
        if !constant_time_eq(&secret_hash, &found.intent.secret_hash) {
            return Err(BookingError::WrongSecret);
        }
        let status = match decide_confirmation(found.intent.status, hold_live, outcome)? {
            ConfirmStep::AlreadySucceeded => return Ok(found),
            ConfirmStep::Move(to) => to,
        };
        // One statement, outside any transaction: the intent changes only while it
        // awaits confirmation and its hold is live.
        let changed = query(concat!(
            "UPDATE payment_intents SET status = $2, updated_at = $3 \
             WHERE id = $1 AND status = 'requires_confirmation' AND ",
            hold_is_live!("payment_intents.hold_id", "$3")
        ))
        .bind(intent_id.0)
        .bind(status.as_str())
        .bind(now)
        .execute(self.db.writer())
        .await?;
        if changed == 0 {
            // Changed meanwhile (a concurrent confirm, or the hold ended): report what
            // it is now.
            let (current, hold_live) = self
                .intent_and_hold(intent_id, now)
                .await?
                .ok_or(BookingError::IntentNotFound)?;
            confirmation_lost(current.intent.status, hold_live)?;
            found.intent.status = current.intent.status;
            return Ok(found);
        }
        if status == IntentStatus::Declined {
            return Err(BookingError::PaymentDeclined);
        }
        found.intent.status = status;
        Ok(found)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %key.user_id))]
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
        let claim = self.db.engine().pick(CLAIM_KEY, CLAIM_KEY_WITHOUT_FLUSH);
        for _ in 0..3 {
            let started = query(claim)
                .bind(key.user_id)
                .bind(&key.route)
                .bind(&key.key)
                .bind(fingerprint)
                .bind(now)
                .bind(now + ttl_ms)
                .fetch_optional(self.db.writer())
                .await?;
            if started.is_some() {
                return Ok(IdempotencyStart::Started);
            }
            let row = query(
                "SELECT fingerprint, status, response_status, response_body, locked_at \
                 FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3",
            )
            .bind(key.user_id)
            .bind(&key.route)
            .bind(&key.key)
            .fetch_optional(self.db.writer())
            .await?;
            let Some(row) = row else {
                // Abandoned meanwhile: take it again.
                continue;
            };
            let status: String = row.get("status")?;
            let stored = StoredKey {
                fingerprint: row.get("fingerprint")?,
                status: status
                    .parse()
                    .map_err(|e| corrupt("idempotency key status", e))?,
                response_status: row.get("response_status")?,
                response_body: row.get("response_body")?,
                locked_at: row.get("locked_at")?,
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
            let taken = query(
                "UPDATE idempotency_keys SET locked_at = $4 WHERE user_id = $1 \
                 AND route = $2 AND key = $3 AND status = 'in_flight' AND locked_at = $5",
            )
            .bind(key.user_id)
            .bind(&key.route)
            .bind(&key.key)
            .bind(now)
            .bind(locked_at)
            .execute(self.db.writer())
            .await?;
            return if taken == 1 {
                Ok(IdempotencyStart::Started)
            } else {
                Err(BookingError::InFlight)
            };
        }
        Err(BookingError::InFlight)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %key.user_id))]
    async fn idempotency_finish(
        &self,
        key: &IdempotencyKey,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE idempotency_keys SET status = 'complete', response_status = $4, \
             response_body = $5 WHERE user_id = $1 AND route = $2 AND key = $3 \
             AND status = 'in_flight'",
        )
        .bind(key.user_id)
        .bind(&key.route)
        .bind(&key.key)
        .bind(i64::from(status))
        .bind(body)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %key.user_id))]
    async fn idempotency_renew(
        &self,
        key: &IdempotencyKey,
        locked_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let renewed = query(
            "UPDATE idempotency_keys SET locked_at = $5 WHERE user_id = $1 AND route = $2 \
             AND key = $3 AND status = 'in_flight' AND locked_at = $4",
        )
        .bind(key.user_id)
        .bind(&key.route)
        .bind(&key.key)
        .bind(locked_at)
        .bind(now)
        .execute(self.db.writer())
        .await?;
        Ok(renewed == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %key.user_id))]
    async fn idempotency_abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3 \
             AND status = 'in_flight'",
        )
        .bind(key.user_id)
        .bind(&key.route)
        .bind(&key.key)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(
            order.id = %input.order_id,
            hold.id = %input.hold_id,
            intent.id = %input.intent_id,
            event.id = %input.event_id,
            user.id = %input.user_id,
        )
    )]
    async fn purchase(
        &self,
        input: &Purchase,
        now: i64,
        policy: Policy,
    ) -> Result<(Order, String), BookingError> {
        // The purchase goes to the event its request names; the checks under that
        // event's lock refuse a hold of another buyer or another event.
        let Some(batches) = self.batches.as_deref() else {
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

    #[tracing::instrument(level = "debug", skip_all, fields(order.id = %order_id))]
    async fn order(&self, order_id: OrderId) -> Result<Option<Order>, StoreError> {
        let mut tx = self.db.reader().begin().await?;
        let order = order_in(&mut tx, order_id).await?;
        tx.commit().await?;
        Ok(order)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %user_id))]
    async fn orders_of(
        &self,
        user_id: Uuid,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Order>, u64), StoreError> {
        let mut tx = self.db.reader().begin().await?;
        let total: i64 = query("SELECT COUNT(*) AS n FROM orders WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&mut tx)
            .await?
            .get("n")?;
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        let rows = query(Sql::assert_safe(sql))
            .bind(user_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut tx)
            .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = OrderId(row.get("id")?);
            let tickets = tickets_of(&mut tx, id).await?;
            orders.push(order_from(row, tickets)?);
        }
        tx.commit().await?;
        Ok((orders, u64::try_from(total).unwrap_or(0)))
    }

    async fn orders_of_event(
        &self,
        event_id: Uuid,
        after: Option<OrderId>,
        limit: i64,
    ) -> Result<Vec<Order>, StoreError> {
        let mut tx = self.db.reader().begin().await?;
        // Two statements rather than `$2 IS NULL OR id > $2`, which keeps the planner from
        // seeking the index to the page's start.
        let rows =
            match after {
                None => query(Sql::assert_safe(format!(
                    "SELECT {ORDER_COLUMNS} FROM orders WHERE event_id = $1 ORDER BY id LIMIT $2"
                )))
                .bind(event_id)
                .bind(limit)
                .fetch_all(&mut tx)
                .await?,
                Some(after) => {
                    query(Sql::assert_safe(format!(
                        "SELECT {ORDER_COLUMNS} FROM orders WHERE event_id = $1 AND id > $2 \
                     ORDER BY id LIMIT $3"
                    )))
                    .bind(event_id)
                    .bind(after.0)
                    .bind(limit)
                    .fetch_all(&mut tx)
                    .await?
                }
            };
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            tx.commit().await?;
            return Ok(Vec::new());
        };
        let (first, last): (Uuid, Uuid) = (first.get("id")?, last.get("id")?);
        // The page's tickets in one statement (by the order index's range), not one per order.
        let mut tickets: std::collections::HashMap<Uuid, Vec<crate::domain::Ticket>> =
            std::collections::HashMap::with_capacity(rows.len());
        for row in query(
            "SELECT order_id, id, seat_id, code, status FROM tickets \
             WHERE order_id >= $1 AND order_id <= $2 AND event_id = $3 ORDER BY order_id, seat_id",
        )
        .bind(first)
        .bind(last)
        .bind(event_id)
        .fetch_all(&mut tx)
        .await?
        {
            let order: Uuid = row.get("order_id")?;
            tickets.entry(order).or_default().push(ticket_from(&row)?);
        }
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.get("id")?;
                order_from(row, tickets.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(order.id = %order_id))]
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
        let _gate = self.gates.enter(found.event_id).await;
        let (mut tx, mut inv, mut changes, _) =
            open_event(self.db.writer(), found.event_id, now, false)
                .await?
                .ok_or(BookingError::OrderNotFound)?;
        let order = cancel_in(&mut tx, &mut inv, &mut changes, order_id, reason, now).await?;
        self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    #[tracing::instrument(skip_all, fields(event.id = %event_id, user.id = %user_id))]
    async fn join_waitlist(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        quantity: i64,
        now: i64,
        policy: Policy,
    ) -> Result<WaitlistEntry, BookingError> {
        let _gate = self.gates.enter(event_id).await;
        let mut tx = self.db.begin().await?;
        let mut inv = lock_inventory(&mut tx, event_id)
            .await?
            .ok_or(BookingError::EventNotFound)?;
        open_for_holds(&inv, now)?;
        let mut changes = Changes::new(&inv);
        sweep(&mut tx, &mut inv, &mut changes, now).await?;
        let open = query(
            "SELECT id FROM waitlist WHERE event_id = $1 AND user_id = $2 \
             AND status IN ('waiting', 'offered')",
        )
        .bind(event_id)
        .bind(user_id)
        .fetch_optional(&mut tx)
        .await?;
        // Freed seats go to those already waiting before anyone joins.
        self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
            .await?;
        let joins = match may_join_waitlist(open.is_some(), inv.available(), quantity) {
            Ok(joins) => joins,
            Err(available) => {
                tx.commit().await?;
                return Err(BookingError::SeatsAvailable { available });
            }
        };
        if joins {
            query(
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
            .execute(&mut tx)
            .await?;
            let joined = EntryChange {
                user_id,
                quantity,
                waiting: true,
            };
            let joined = waitlist_changed(&mut tx, &inv, true, &[joined], "joined", now).await?;
            flush(&mut tx, &Writes::default(), &joined).await?;
        }
        let entry = waitlist_in(&mut tx, event_id, user_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("waitlist entry vanished"))?;
        tx.commit().await?;
        Ok(entry)
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(event.id = %event_id, user.id = %user_id)
    )]
    async fn waitlist_entry(
        &self,
        event_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<WaitlistEntry>, StoreError> {
        let mut tx = self.db.reader().begin().await?;
        let entry = waitlist_in(&mut tx, event_id, user_id).await?;
        tx.commit().await?;
        Ok(entry)
    }

    #[tracing::instrument(skip_all, fields(event.id = %event_id, user.id = %user_id))]
    async fn leave_waitlist(
        &self,
        event_id: Uuid,
        user_id: Uuid,
        now: i64,
        policy: Policy,
    ) -> Result<(), BookingError> {
        let _gate = self.gates.enter(event_id).await;
        let mut tx = self.db.begin().await?;
        let mut inv = lock_inventory(&mut tx, event_id)
            .await?
            .ok_or(BookingError::EventNotFound)?;
        let mut changes = Changes::new(&inv);
        sweep(&mut tx, &mut inv, &mut changes, now).await?;
        let row = query(
            "SELECT id, status, hold_id, quantity FROM waitlist WHERE event_id = $1 \
             AND user_id = $2 AND status IN ('waiting', 'offered')",
        )
        .bind(event_id)
        .bind(user_id)
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else {
            self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
                .await?;
            tx.commit().await?;
            return Err(BookingError::NotWaitlisted);
        };
        let id: Uuid = row.get("id")?;
        let status: String = row.get("status")?;
        let left = EntryChange {
            user_id,
            quantity: row.get("quantity")?,
            waiting: status == WaitlistStatus::Waiting.as_str(),
        };
        let offer: Option<Uuid> = row.get("hold_id")?;
        if let Some(offer) = offer
            && let Some(hold) = hold_in(&mut tx, HoldId(offer)).await?
            && hold.status == HoldStatus::Active
        {
            end_hold(
                &mut tx,
                &mut inv,
                &mut changes,
                &hold,
                HoldStatus::Released,
                now,
            )
            .await?;
        }
        query("UPDATE waitlist SET status = 'left', updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut tx)
            .await?;
        let left = waitlist_changed(&mut tx, &inv, false, &[left], "left", now).await?;
        changes.envelopes.extend(left);
        self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn expire_due(&self, now: i64, policy: Policy) -> Result<usize, BookingError> {
        let events: Vec<Uuid> = query(
            "SELECT DISTINCT event_id FROM holds WHERE status = 'active' \
             AND expires_at <= $1 LIMIT 100",
        )
        .bind(now)
        .fetch_all(self.db.reader())
        .await?
        .iter()
        .map(|r| r.get("event_id"))
        .collect::<Result<_, _>>()?;
        let mut expired = 0;
        for event_id in events {
            let _gate = self.gates.enter(event_id).await;
            let Some((mut tx, mut inv, changes, swept)) =
                open_event(self.db.writer(), event_id, now, true).await?
            else {
                continue;
            };
            expired += swept;
            self.finish(&mut tx, &mut inv, changes, now, policy, Writes::default())
                .await?;
            tx.commit().await?;
        }
        Ok(expired)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn next_expiry(&self) -> Result<Option<i64>, StoreError> {
        let row = query("SELECT MIN(expires_at) AS t FROM holds WHERE status = 'active'")
            .fetch_one(self.db.reader())
            .await?;
        let next: Option<i64> = row.get("t")?;
        Ok(next)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_idempotency(&self, now: i64) -> Result<u64, StoreError> {
        query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now)
            .execute(self.db.writer())
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(intent.id = %intent_id))]
    async fn payment_intent(
        &self,
        intent_id: PaymentIntentId,
    ) -> Result<Option<(PaymentIntent, Option<OrderId>)>, StoreError> {
        let Some((IntentOfHold { intent, .. }, _)) = self.intent_and_hold(intent_id, 0).await?
        else {
            return Ok(None);
        };
        let order = query("SELECT id FROM orders WHERE payment_intent_id = $1")
            .bind(intent_id.0)
            .fetch_optional(self.db.reader())
            .await?;
        let order = order.map(|r| r.get("id").map(OrderId)).transpose()?;
        Ok(Some((intent, order)))
    }

    #[tracing::instrument(skip_all)]
    async fn reconcile_payments(&self, now: i64) -> Result<usize, StoreError> {
        let orphans = query(
            "SELECT i.id, i.hold_id, i.event_id, i.user_id, i.amount, i.currency, \
             h.status AS hold_status FROM payment_intents i \
             JOIN holds h ON h.id = i.hold_id \
             WHERE i.status = 'succeeded' AND h.status <> 'active' \
             AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.payment_intent_id = i.id) \
             LIMIT 100",
        )
        .fetch_all(self.db.reader())
        .await?;
        let mut refunded = 0;
        for row in &orphans {
            let refund = evently_bus::catalog::PaymentRefund {
                payment_intent_id: row.get("id")?,
                event_id: row.get("event_id")?,
                hold_id: row.get("hold_id")?,
                user_id: row.get("user_id")?,
                amount: row.get("amount")?,
                currency: row.get("currency")?,
                reason: row.get("hold_status")?,
            };
            let mut tx = self.db.begin().await?;
            // Conditional: of two processes reconciling at once, one refunds.
            let moved = query(
                "UPDATE payment_intents SET status = 'refunded', updated_at = $2 \
                 WHERE id = $1 AND status = 'succeeded' \
                 AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.payment_intent_id = $1)",
            )
            .bind(refund.payment_intent_id)
            .bind(now)
            .execute(&mut tx)
            .await?;
            if moved == 1 {
                tracing::warn!(
                    payment.id = %refund.payment_intent_id,
                    hold.id = %refund.hold_id,
                    "paid intent without an order refunded by reconciliation"
                );
                let envelope = DomainEvent::PaymentRefunded(refund)
                    .into_envelope(2, evently_bus::envelope::time_from_ms(now));
                send_writes(&mut tx, &Writes::default(), &[envelope]).await?;
                refunded += 1;
            }
            tx.commit().await?;
        }
        Ok(refunded)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(event.id = %event_id))]
    async fn audit(&self, event_id: Uuid, now: i64) -> Result<Option<Audit>, StoreError> {
        self.refresh_statistics().await?;
        let mut conn = self.db.reader().acquire().await?;
        let Some(capacity) = query("SELECT capacity FROM inventories WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&mut conn)
            .await?
        else {
            return Ok(None);
        };
        let capacity: i64 = capacity.get("capacity")?;
        let row = query(
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
                AND s.order_id = t.order_id)) AS unseated, \
             (SELECT COUNT(*) FROM seats WHERE event_id = $1 AND state = 1) AS held_seats, \
             (SELECT held FROM inventories WHERE event_id = $1) AS held_counter, \
             (SELECT sold FROM inventories WHERE event_id = $1) AS sold_counter, \
             (SELECT COUNT(*) FROM payment_intents i WHERE i.event_id = $1 \
                AND i.status = 'succeeded' \
                AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.payment_intent_id = i.id) \
                AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = i.hold_id \
                AND h.status = 'active' AND h.expires_at > $2)) AS unrefunded, \
             (SELECT COUNT(*) FROM orders o WHERE o.event_id = $1 \
                AND NOT EXISTS (SELECT 1 FROM payment_intents i \
                WHERE i.id = o.payment_intent_id AND i.hold_id = o.hold_id \
                AND i.status = CASE WHEN o.status = 'confirmed' THEN 'succeeded' \
                ELSE 'refunded' END)) AS unpaid, \
             (SELECT COUNT(*) FROM payment_intents i WHERE i.event_id = $1 \
                AND i.status = 'refunded' \
                AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.payment_intent_id = i.id)) \
                AS refunded_unordered, \
             (SELECT COUNT(*) FROM waitlist WHERE event_id = $1 AND status = 'waiting') \
                AS waiting",
        )
        .bind(event_id)
        .bind(now)
        .fetch_one(&mut conn)
        .await?;
        let tickets: i64 = row.get("tickets")?;
        let unticketed: i64 = row.get("unticketed")?;
        let unseated: i64 = row.get("unseated")?;
        let sold_seats: i64 = row.get("sold_seats")?;
        let held_seats: i64 = row.get("held_seats")?;
        let held_counter: i64 = row.get("held_counter")?;
        let sold_counter: i64 = row.get("sold_counter")?;
        Ok(Some(Audit {
            capacity,
            sold_seats,
            tickets,
            orders: row.get("orders")?,
            live_holds: row.get("live_holds")?,
            oversold: (tickets - capacity).max(0),
            double_sold: row.get("double_sold")?,
            mismatched: unticketed + unseated,
            counters_mismatched: (held_counter - held_seats).abs()
                + (sold_counter - sold_seats).abs(),
            unrefunded_payments: row.get("unrefunded")?,
            unpaid_orders: row.get("unpaid")?,
            refunded_payments: row.get("refunded_unordered")?,
            waiting: row.get("waiting")?,
        }))
    }
}
