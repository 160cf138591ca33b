//! `[booking]`: holds, ticket limits, the waitlist, idempotency and the availability stream.

use anyhow::bail;
use serde::Deserialize;

/// `[booking]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BookingConfig {
    /// How long a new hold lasts.
    pub hold_ttl_seconds: u64,
    /// Most seconds one refresh may add (a larger `extendSeconds` is cut to this).
    pub max_extend_seconds: u64,
    /// Longest a hold may live in all, refreshes included, counted from its creation.
    pub max_hold_lifetime_seconds: u64,
    /// Most seats in one hold (and so in one order).
    pub max_seats_per_order: u32,
    /// Most tickets one user may hold and own for one event.
    pub max_tickets_per_user: u32,
    /// How long a waitlist offer (a hold in the waiting buyer's name) lasts.
    pub waitlist_offer_seconds: u64,
    /// Longest the expiry task sleeps between looks for expired holds; it otherwise wakes at
    /// the next hold's expiry.
    pub expiry_max_sleep_ms: u64,
    /// How long completed purchase responses are kept for `Idempotency-Key` replays.
    pub idempotency_ttl_hours: u64,
    /// The lease of an in-flight idempotency record: a running request renews it every third
    /// of this, so after this long without renewal the record is taken to be from a crashed
    /// request (its process killed) and a retry with the key runs again. The bound on how
    /// long a retry after a crash is refused with 409.
    pub idempotency_lock_seconds: u64,
    /// Least time between two updates of one availability stream (changes in between are
    /// coalesced into the next).
    pub stream_interval_ms: u64,
}

impl Default for BookingConfig {
    fn default() -> Self {
        Self {
            hold_ttl_seconds: 300,
            max_extend_seconds: 300,
            max_hold_lifetime_seconds: 900,
            max_seats_per_order: 10,
            max_tickets_per_user: 10,
            waitlist_offer_seconds: 600,
            expiry_max_sleep_ms: 1000,
            idempotency_ttl_hours: 24,
            idempotency_lock_seconds: 10,
            stream_interval_ms: 250,
        }
    }
}

impl BookingConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if !(1..=86_400).contains(&self.hold_ttl_seconds) {
            bail!("booking.hold_ttl_seconds must be between 1 and 86400");
        }
        if self.max_hold_lifetime_seconds < self.hold_ttl_seconds {
            bail!("booking.max_hold_lifetime_seconds must be at least booking.hold_ttl_seconds");
        }
        if self.max_extend_seconds == 0 {
            bail!("booking.max_extend_seconds must be at least 1");
        }
        if !(1..=100).contains(&self.max_seats_per_order) {
            bail!("booking.max_seats_per_order must be between 1 and 100");
        }
        if self.max_tickets_per_user < self.max_seats_per_order {
            bail!("booking.max_tickets_per_user must be at least booking.max_seats_per_order");
        }
        if !(1..=86_400).contains(&self.waitlist_offer_seconds) {
            bail!("booking.waitlist_offer_seconds must be between 1 and 86400");
        }
        if !(10..=60_000).contains(&self.expiry_max_sleep_ms) {
            bail!("booking.expiry_max_sleep_ms must be between 10 and 60000");
        }
        if self.idempotency_ttl_hours < 24 {
            bail!("booking.idempotency_ttl_hours must be at least 24");
        }
        if self.idempotency_lock_seconds == 0 {
            bail!("booking.idempotency_lock_seconds must be at least 1");
        }
        if !(10..=1000).contains(&self.stream_interval_ms) {
            bail!("booking.stream_interval_ms must be between 10 and 1000");
        }
        Ok(())
    }
}
