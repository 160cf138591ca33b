//! The booking operations: input rules, who may see what, the purchase (exactly once per
//! idempotency key, by [`crate::idempotency::run`]), the expiry task, and change
//! notifications for availability streams.

use evently_core::Problem;
use evently_core::clock::SharedClock;
use evently_core::config::BookingConfig;
use evently_core::identity::{Identity, Role};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::{
    AvailabilityView, Hold, HoldId, IntentOfHold, Order, OrderId, PaymentIntent, PaymentIntentId,
    Policy, Purchase, SeatView, Selection, WaitlistEntry, random_token, sha256_hex,
};
use crate::error::BookingError;
use crate::idempotency::{self, Answer, Done, KeyTimes};
use crate::settings::{Limits, LiveSettings};
use crate::store::{BookingStore, Confirmation, NewHold, NewIntent};

/// The route idempotency keys of purchases are scoped to.
pub const PURCHASE_ROUTE: &str = "POST /api/orders/purchase";

/// The route a checkout's idempotency keys are scoped to.
pub const CHECKOUT_ROUTE: &str = "POST /api/orders/checkout";

/// Card "payment methods" of the simulated processor (as in Stripe's test mode).
pub mod test_cards {
    /// Succeeds (the default when none is given).
    pub const SUCCEEDS: &str = "pm_card_visa";
    /// Declined: the intent becomes `declined`; create a new one.
    pub const DECLINED: &str = "pm_card_declined";
    /// The processor fails: 503, the intent is unchanged and may be confirmed again.
    pub const PROCESSOR_ERROR: &str = "pm_card_processing_error";
}

/// What the simulated processor does with `payment_method` (a test card; none is
/// [`test_cards::SUCCEEDS`]).
///
/// # Errors
/// 422 at `/paymentMethod` for any other method.
pub fn card(payment_method: Option<&str>) -> Result<Confirmation, Problem> {
    match payment_method.unwrap_or(test_cards::SUCCEEDS) {
        test_cards::SUCCEEDS => Ok(Confirmation::Succeed),
        test_cards::DECLINED => Ok(Confirmation::Decline),
        test_cards::PROCESSOR_ERROR => Ok(Confirmation::Fail),
        _ => Err(Problem::invalid_field(
            "/paymentMethod",
            "unknown payment method; use pm_card_visa, pm_card_declined or \
             pm_card_processing_error",
        )),
    }
}

/// Per-event change signals, for availability streams in this process.
#[derive(Debug, Default)]
pub struct Changes {
    senders: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
}

impl Changes {
    /// Signals that `event_id`'s inventory changed.
    pub fn notify(&self, event_id: Uuid) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = senders.get(&event_id) {
            if tx.receiver_count() == 0 {
                senders.remove(&event_id);
            } else {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// A receiver of `event_id`'s change signals.
    pub fn subscribe(&self, event_id: Uuid) -> watch::Receiver<u64> {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders
            .entry(event_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

/// The booking operations.
pub struct BookingService {
    store: Arc<dyn BookingStore>,
    clock: SharedClock,
    config: BookingConfig,
    changes: Changes,
    live: Arc<LiveSettings>,
    /// The organizer of each event a request asked about, once organizer settings exist
    /// (an event's organizer never changes).
    organizers: Mutex<HashMap<Uuid, Uuid>>,
}

impl std::fmt::Debug for BookingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingService").finish_non_exhaustive()
    }
}

fn ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl BookingService {
    /// The service over `store`.
    pub fn new(store: Arc<dyn BookingStore>, clock: SharedClock, config: BookingConfig) -> Self {
        Self {
            store,
            clock,
            config,
            changes: Changes::default(),
            live: Arc::new(LiveSettings::default()),
            organizers: Mutex::new(HashMap::new()),
        }
    }

    /// The settings projection (fed by the settings service's stream).
    pub fn live_settings(&self) -> &Arc<LiveSettings> {
        &self.live
    }

    /// The limits for a request about `event_id`: the configuration tightened by the
    /// settings in force for the event (in memory; the event's organizer is read from
    /// booking's own inventory once, and only while some organizer has settings).
    ///
    /// # Errors
    /// When the store fails while looking up the organizer.
    pub async fn limits(&self, event_id: Uuid) -> Result<Limits, BookingError> {
        let organizer = if self.live.has_organizer_settings() {
            let known = self
                .organizers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&event_id)
                .copied();
            match known {
                Some(o) => Some(o),
                None => {
                    let found = self
                        .store
                        .inventory(event_id)
                        .await?
                        .map(|i| i.organizer_id);
                    if let Some(o) = found {
                        self.organizers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(event_id, o);
                    }
                    found
                }
            }
        } else {
            None
        };
        Ok(Limits::resolve(
            &self.config,
            self.live.knobs(Some(event_id), organizer),
        ))
    }

    /// Applies one of the settings service's domain events to the settings projection.
    ///
    /// # Errors
    /// A malformed `SettingsChanged` payload (other events are skipped).
    pub fn apply_settings(&self, envelope: &evently_bus::Envelope) -> anyhow::Result<()> {
        match evently_bus::DomainEvent::decode(envelope) {
            Ok(evently_bus::DomainEvent::SettingsChanged(doc)) => {
                if self.live.apply(&doc) {
                    tracing::info!(
                        settings.scope = %doc.scope,
                        settings.scope_id = %doc.scope_id,
                        settings.version = doc.version,
                        "booking settings applied"
                    );
                }
                Ok(())
            }
            Ok(_) | Err(evently_bus::catalog::DecodeError::Unknown { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BookingStore> {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &BookingConfig {
        &self.config
    }

    /// Change signals of availability streams.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Now, in epoch ms.
    pub fn now(&self) -> i64 {
        evently_bus::envelope::time_to_ms(self.clock.now())
    }

    /// The settings applied inside store transactions that span events (expiry sweeps,
    /// catalogue changes): the configuration tightened by the platform's settings.
    pub fn policy(&self) -> Policy {
        Limits::resolve(&self.config, self.live.knobs(None, None)).policy
    }

    fn changed(&self, event_id: Uuid) {
        self.changes.notify(event_id);
    }

    /// Exact availability of an event.
    ///
    /// # Errors
    /// 404 for an unknown event.
    pub async fn availability(&self, event_id: Uuid) -> Result<AvailabilityView, BookingError> {
        self.store
            .availability(event_id, self.now())
            .await?
            .ok_or(BookingError::EventNotFound)
    }

    /// The seat map of an event.
    ///
    /// # Errors
    /// 404 for an unknown event.
    pub async fn seat_map(&self, event_id: Uuid) -> Result<Vec<SeatView>, BookingError> {
        self.store
            .seat_map(event_id, self.now())
            .await?
            .ok_or(BookingError::EventNotFound)
    }

    /// Checks what a hold asks for ([`Selection::parse`] with the configured seat limit).
    ///
    /// # Errors
    /// 422 naming the offending fields.
    pub fn selection(
        &self,
        seat_ids: Option<Vec<String>>,
        quantity: Option<i64>,
        section: Option<String>,
    ) -> Result<Selection, BookingError> {
        Selection::parse(self.config.max_seats_per_order, seat_ids, quantity, section)
            .map_err(BookingError::from)
    }

    /// Takes a hold for the caller.
    ///
    /// # Errors
    /// 404 unknown event, 409 not on sale / seats unavailable / sold out / ticket limit.
    pub async fn hold(
        &self,
        caller: &Identity,
        event_id: Uuid,
        selection: Selection,
    ) -> Result<Hold, BookingError> {
        let limits = self.limits(event_id).await?;
        if selection.quantity() > limits.max_seats_per_order {
            let max = limits.max_seats_per_order;
            let pointer = match selection {
                Selection::Seats(_) => "/seatIds",
                Selection::Best { .. } => "/quantity",
            };
            return Err(Problem::invalid_field(pointer, format!("must be 1 to {max}")).into());
        }
        let new = NewHold {
            // Time-ordered, so new rows go to the end of the primary-key index instead of a
            // random page of it; unguessability is not needed (others get 404 for it anyway).
            hold_id: HoldId::new(),
            event_id,
            user_id: caller.user_id.0,
            selection,
            ttl_ms: limits.hold_ttl_ms,
        };
        let hold = self
            .store
            .create_hold(&new, self.now(), limits.policy)
            .await;
        if let Ok(h) = &hold {
            self.changed(h.event_id);
        } else if let Err(BookingError::SoldOut { .. } | BookingError::SeatsUnavailable(_)) = &hold
        {
            metrics::counter!("evently_booking_hold_refusals_total").increment(1);
        }
        hold
    }

    /// The caller's hold.
    ///
    /// # Errors
    /// 404 unless it is the caller's.
    pub async fn get_hold(&self, caller: &Identity, hold_id: HoldId) -> Result<Hold, BookingError> {
        self.store
            .hold(hold_id)
            .await?
            .filter(|h| h.user_id == caller.user_id.0)
            .ok_or(BookingError::HoldNotFound)
    }

    /// Extends the caller's hold by `extend_seconds` (default the hold TTL, capped).
    ///
    /// # Errors
    /// 404 not the caller's, 409 expired or purchased, 422 a bad extension.
    pub async fn refresh(
        &self,
        caller: &Identity,
        hold_id: HoldId,
        extend_seconds: Option<i64>,
    ) -> Result<Hold, BookingError> {
        let extend = match extend_seconds {
            None => self.config.hold_ttl_seconds,
            Some(s) if (1..=86_400).contains(&s) => u64::try_from(s).unwrap_or(1),
            Some(_) => {
                return Err(Problem::invalid_field("/extendSeconds", "must be 1 to 86400").into());
            }
        };
        let extend = extend.min(self.config.max_extend_seconds);
        self.store
            .refresh_hold(
                hold_id,
                caller.user_id.0,
                ms(extend),
                ms(self.config.max_hold_lifetime_seconds),
                self.now(),
                self.policy(),
            )
            .await
    }

    /// Releases the caller's hold.
    ///
    /// # Errors
    /// 404 not the caller's, 409 purchased.
    pub async fn release(&self, caller: &Identity, hold_id: HoldId) -> Result<(), BookingError> {
        let hold = self.get_hold(caller, hold_id).await?;
        self.store
            .release_hold(hold_id, caller.user_id.0, self.now(), self.policy())
            .await?;
        self.changed(hold.event_id);
        Ok(())
    }

    /// Creates a payment intent for the caller's live hold; returns it with its client
    /// secret (shown once).
    ///
    /// # Errors
    /// 404 not the caller's hold, 409 expired or purchased.
    pub async fn create_intent(
        &self,
        caller: &Identity,
        hold_id: HoldId,
    ) -> Result<(IntentOfHold, String), BookingError> {
        // Time-ordered like hold ids; the client secret, not the id, authorises a confirm.
        let intent_id = PaymentIntentId::new();
        let token = random_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let secret = format!("pi_{}_secret_{token}", intent_id.0.simple());
        let intent = self
            .store
            .create_intent(
                &NewIntent {
                    intent_id,
                    user_id: caller.user_id.0,
                    hold_id,
                    secret_hash: sha256_hex(secret.as_bytes()),
                },
                self.now(),
            )
            .await?;
        Ok((intent, secret))
    }

    /// Confirms the caller's intent with its client secret and a test card.
    ///
    /// # Errors
    /// 404 not the caller's, 422 wrong secret or unknown card, 402 declined, 503 processor
    /// error, 409 hold expired or intent not confirmable.
    pub async fn confirm(
        &self,
        caller: &Identity,
        intent_id: PaymentIntentId,
        secret: &str,
        payment_method: Option<&str>,
    ) -> Result<IntentOfHold, BookingError> {
        let outcome = card(payment_method)?;
        if secret.is_empty() || secret.len() > 200 {
            return Err(BookingError::WrongSecret);
        }
        self.store
            .confirm_intent(intent_id, caller.user_id.0, secret, outcome, self.now())
            .await
    }

    /// A payment intent with the order it paid for: the payer's, or any for an admin.
    ///
    /// # Errors
    /// 404 otherwise (another's intent is not revealed).
    pub async fn payment(
        &self,
        caller: &Identity,
        intent_id: PaymentIntentId,
    ) -> Result<(PaymentIntent, Option<OrderId>), BookingError> {
        self.store
            .payment_intent(intent_id)
            .await?
            .filter(|(intent, _)| intent.user_id == caller.user_id.0 || caller.role == Role::Admin)
            .ok_or(BookingError::IntentNotFound)
    }

    /// Makes `purchase` (the caller's, as its handler built it: paid by a confirmed intent or
    /// at checkout), exactly once per its idempotency key; `fingerprint` is the SHA-256 of the
    /// request body that asked for it.
    ///
    /// # Errors
    /// As the purchase rules say; see [`BookingError`].
    pub async fn purchase(
        &self,
        purchase: Purchase,
        fingerprint: String,
    ) -> Result<Answer<String>, Problem> {
        let times = KeyTimes {
            lock_ms: ms(self.config.idempotency_lock_seconds),
            ttl_ms: ms(self.config.idempotency_ttl_hours.saturating_mul(3600)),
        };
        // The store completes the key with the order in the purchase's transaction.
        let limits = self
            .limits(purchase.event_id)
            .await
            .map_err(Problem::from)?;
        let operation = async {
            // A limit lowered after the hold was taken applies to its purchase too (a
            // replayed purchase answers as it did the first time).
            let quantity = i64::try_from(purchase.seat_ids.len()).unwrap_or(i64::MAX);
            if quantity > limits.policy.max_tickets_per_user {
                return Err(BookingError::TicketLimit {
                    limit: limits.policy.max_tickets_per_user,
                    owned: 0,
                });
            }
            let (order, body) = self
                .store
                .purchase(&purchase, self.now(), limits.policy)
                .await?;
            metrics::counter!("evently_booking_orders_total").increment(1);
            self.changed(order.event_id);
            Ok::<_, BookingError>(Done::Recorded(body))
        };
        let key = &purchase.key;
        idempotency::run(
            &*self.store,
            key,
            &fingerprint,
            self.now(),
            times,
            operation,
        )
        .await
    }

    /// Whether the caller may see orders of `event_id`'s organizer view: the organizer or an
    /// admin.
    async fn manages(&self, caller: &Identity, event_id: Uuid) -> Result<bool, BookingError> {
        if caller.role == Role::Admin {
            return Ok(true);
        }
        Ok(caller.role == Role::Organizer
            && self
                .store
                .inventory(event_id)
                .await?
                .is_some_and(|i| i.organizer_id == caller.user_id.0))
    }

    /// An order the caller may see: theirs, of an event they organise, or any for admins.
    ///
    /// # Errors
    /// 404 otherwise.
    pub async fn order(&self, caller: &Identity, order_id: OrderId) -> Result<Order, BookingError> {
        let order = self
            .store
            .order(order_id)
            .await?
            .ok_or(BookingError::OrderNotFound)?;
        if order.user_id == caller.user_id.0 || self.manages(caller, order.event_id).await? {
            Ok(order)
        } else {
            Err(BookingError::OrderNotFound)
        }
    }

    /// One page of an event's orders with their tickets, by order id after `after` (keyset
    /// pagination), for its organizer or an admin: how exports read them.
    ///
    /// # Errors
    /// 404 for an unknown event or one the caller does not manage.
    pub async fn event_orders(
        &self,
        caller: &Identity,
        event_id: Uuid,
        after: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<Order>, BookingError> {
        if !self.manages(caller, event_id).await? || self.store.inventory(event_id).await?.is_none()
        {
            return Err(BookingError::EventNotFound);
        }
        Ok(self
            .store
            .orders_of_event(event_id, after, i64::from(limit.clamp(1, 10_000)))
            .await?)
    }

    /// The caller's orders, newest first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn orders(
        &self,
        caller: &Identity,
        page: u32,
        size: u32,
    ) -> Result<(Vec<Order>, u64), BookingError> {
        Ok(self
            .store
            .orders_of(
                caller.user_id.0,
                i64::from(size),
                i64::from(page) * i64::from(size),
            )
            .await?)
    }

    /// Cancels and refunds an order (its buyer, the event's organizer, or an admin).
    ///
    /// # Errors
    /// 404 not visible to the caller, 409 already cancelled.
    pub async fn cancel(
        &self,
        caller: &Identity,
        order_id: OrderId,
    ) -> Result<Order, BookingError> {
        let order = self.order(caller, order_id).await?;
        let reason = if order.user_id == caller.user_id.0 {
            "buyer"
        } else if caller.role == Role::Admin {
            "admin"
        } else {
            "organizer"
        };
        let order = self
            .store
            .cancel_order(order_id, reason, self.now(), self.policy())
            .await?;
        self.changed(order.event_id);
        Ok(order)
    }

    /// Puts the caller on a sold-out event's waitlist.
    ///
    /// # Errors
    /// 404 unknown event, 409 seats available or not on sale, 422 bad quantity.
    pub async fn join_waitlist(
        &self,
        caller: &Identity,
        event_id: Uuid,
        quantity: i64,
    ) -> Result<WaitlistEntry, BookingError> {
        let limits = self.limits(event_id).await?;
        let max = limits.max_seats_per_order;
        if !(1..=max).contains(&quantity) {
            return Err(Problem::invalid_field("/quantity", format!("must be 1 to {max}")).into());
        }
        let entry = self
            .store
            .join_waitlist(
                event_id,
                caller.user_id.0,
                quantity,
                self.now(),
                limits.policy,
            )
            .await?;
        self.changed(event_id);
        Ok(entry)
    }

    /// The caller's waitlist entry.
    ///
    /// # Errors
    /// 404 when they never joined.
    pub async fn waitlist_entry(
        &self,
        caller: &Identity,
        event_id: Uuid,
    ) -> Result<WaitlistEntry, BookingError> {
        self.store
            .waitlist_entry(event_id, caller.user_id.0)
            .await?
            .ok_or(BookingError::NotWaitlisted)
    }

    /// Takes the caller off the waitlist.
    ///
    /// # Errors
    /// 404 when not on it.
    pub async fn leave_waitlist(
        &self,
        caller: &Identity,
        event_id: Uuid,
    ) -> Result<(), BookingError> {
        self.store
            .leave_waitlist(event_id, caller.user_id.0, self.now(), self.policy())
            .await?;
        self.changed(event_id);
        Ok(())
    }

    /// Applies one of the events service's domain events.
    ///
    /// # Errors
    /// When the store fails (the event is delivered again).
    pub async fn apply_catalog(&self, envelope: &evently_bus::Envelope) -> anyhow::Result<()> {
        let event = match evently_bus::DomainEvent::decode(envelope) {
            Ok(event) => event,
            Err(evently_bus::catalog::DecodeError::Unknown { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let applied = self
            .store
            .apply_catalog(envelope, &event, self.now(), self.policy())
            .await
            .map_err(|e| anyhow::anyhow!("applying {}: {e}", envelope.event_type))?;
        if applied {
            self.changed(event.aggregate().1);
        }
        Ok(())
    }

    /// Returns expired holds' seats until `shutdown`: wakes at the next hold's expiry (or
    /// after `booking.expiry_max_sleep_ms`, whichever is sooner, so a hold created meanwhile
    /// is late by at most that), sweeps every event with expired holds (refunding the paid
    /// intents of those that were never purchased, as ending a hold does), and once a
    /// minute reconciles payments with orders (see [`BookingStore::reconcile_payments`]) and
    /// forgets idempotency records past their retention. A process that starts after a
    /// crash runs it at once, so what the crash left (holds paid but never purchased) is
    /// settled within the first sweep after their expiry.
    pub async fn run_expiry(self: Arc<Self>, shutdown: CancellationToken) {
        let max_sleep = Duration::from_millis(self.config.expiry_max_sleep_ms);
        let mut last_purge = i64::MIN;
        while !shutdown.is_cancelled() {
            let now = self.now();
            match self.store.expire_due(now, self.policy()).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("evently_booking_holds_expired_total")
                        .increment(u64::try_from(n).unwrap_or(0));
                    // Streams re-read on their own tick; wake them now.
                    let events: Vec<Uuid> = {
                        let senders = self
                            .changes
                            .senders
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        senders.keys().copied().collect()
                    };
                    for event in events {
                        self.changes.notify(event);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "expiring holds failed; retrying"),
            }
            if now.saturating_sub(last_purge) >= 60_000 {
                last_purge = now;
                match self.store.reconcile_payments(now).await {
                    Ok(0) => {}
                    Ok(n) => metrics::counter!("evently_booking_payments_reconciled_total")
                        .increment(u64::try_from(n).unwrap_or(0)),
                    Err(e) => tracing::warn!(error = %e, "reconciling payments failed"),
                }
                if let Err(e) = self.store.purge_idempotency(now).await {
                    tracing::warn!(error = %e, "purging idempotency records failed");
                }
            }
            let sleep = match self.store.next_expiry().await {
                Ok(Some(at)) => Duration::from_millis(
                    u64::try_from(at.saturating_sub(self.now()).max(1)).unwrap_or(1),
                )
                .min(max_sleep),
                _ => max_sleep,
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }
}
