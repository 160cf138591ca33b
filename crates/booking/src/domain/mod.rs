//! Booking's vocabulary and the rules that need no database. Nothing here imports axum or
//! sqlx, reads a clock or touches the store: the store reads the facts under its event's
//! lock, calls a rule from here, and writes what it decided.
//!
//! - [`inventory`]: an event's inventory, seats and their states, the sale window, what a
//!   hold asks for, the best-available choice, availability and the seat map.
//! - [`hold`]: holds, their status machine, and the rules of taking, refreshing, releasing
//!   and paying for one ([`decide_hold`]).
//! - [`payment`]: payment intents, their status machine, amounts and confirmation.
//! - [`order`]: orders and tickets, their status machines, the purchase command
//!   ([`Purchase`]) and the purchase rule ([`check_purchase`]).
//! - [`waitlist`]: waitlist entries and who may join.
//! - [`idempotency`]: a request's idempotency key, and what one stored before means for a
//!   request that brings it again.
//!
//! Here too: the id newtypes of booking's rows, [`IllegalTransition`] (what every status
//! machine refuses), the settings the store applies ([`Policy`]) and small helpers for
//! tokens and secrets.

pub mod hold;
pub mod idempotency;
pub mod inventory;
pub mod order;
pub mod payment;
pub mod waitlist;

#[cfg(test)]
mod sequences;

use std::fmt;

pub use hold::{
    Hold, HoldEnded, HoldFacts, HoldKind, HoldRefusal, HoldStatus, PaymentBlocked, SeatsAsked,
    decide_hold, hold_is_live, may_pay_for, may_release, open_for_holds, refreshed_expiry,
    refuse_best_early, refuse_named_early, within_ticket_limit,
};
pub use idempotency::IdempotencyKey;
pub use inventory::{
    AvailabilityView, Candidate, EVENT_CANCELLED, GA_SECTION, Inventory, SeatState, SeatView,
    Selection, best_window, ga_seat_id, is_seat_id, offer_window, pick_best, seat_blocks,
    seat_price, seat_shown_as, section_of,
};
pub use order::{
    Order, OrderStatus, Payment, Purchase, PurchaseFacts, PurchaseRefusal, Ticket, TicketStatus,
    check_purchase, checkout_intent, purchase_without_event,
};
pub use payment::{
    ConfirmRefusal, ConfirmStep, Confirmation, IntentOfHold, IntentStatus, PaymentIntent,
    confirmation_lost, decide_confirmation, intent_amount,
};
pub use waitlist::{WaitlistEntry, WaitlistStatus, may_join_waitlist};

evently_core::id_type!(
    /// A hold's id.
    HoldId
);
evently_core::id_type!(
    /// An order's id.
    OrderId
);
evently_core::id_type!(
    /// A payment intent's id.
    PaymentIntentId
);
evently_core::id_type!(
    /// A ticket's id.
    TicketId
);

/// A status change a status machine does not allow; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalTransition<S> {
    /// The current status.
    pub from: S,
    /// The refused target.
    pub to: S,
}

impl<S: fmt::Display> fmt::Display for IllegalTransition<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot go from {} to {}", self.from, self.to)
    }
}

impl<S: fmt::Display + fmt::Debug> std::error::Error for IllegalTransition<S> {}

/// A status machine: the statuses each status may change to, and the one way to change, so
/// that every status change of booking goes through [`StatusMachine::transition`].
pub trait StatusMachine: Copy + PartialEq + 'static {
    /// The statuses this one may change to.
    fn allowed(self) -> &'static [Self];

    /// Changes status to `to`.
    ///
    /// # Errors
    /// [`IllegalTransition`] for any change the machine does not allow, including a change
    /// to the same status.
    fn transition(self, to: Self) -> Result<Self, IllegalTransition<Self>> {
        if self.allowed().contains(&to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

/// An inventory audit's raw counts (see [`crate::audit::Audit`]).
pub use crate::audit::Audit;

/// Settings the store applies inside its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most tickets one user may hold and own for one event.
    pub max_tickets_per_user: i64,
    /// How long a waitlist offer lasts (ms).
    pub offer_ttl_ms: i64,
    /// Whether a purchase counts the tickets the buyer already bought against
    /// `max_tickets_per_user`: set while a setting has lowered the limit below booking's
    /// configuration, since a hold taken under the higher limit may no longer fit (otherwise
    /// the hold's own check stands, and the purchase path saves the read).
    pub limit_purchases: bool,
}

/// 16 random bytes as URL-safe base64 (22 characters): ticket codes and client secrets.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn random_token() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of `text`, hex.
pub fn sha256_hex(text: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// RFC 3339 text of epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    evently_bus::envelope::time_from_ms(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Walks a status machine from `all[start]` through `all[step]` for each of `steps`, checking
/// every change against `model` (the machine written as the table of its edges): an allowed
/// change moves to its target; a refused one names both statuses and leaves the state as it
/// was.
#[cfg(test)]
pub(crate) fn walk_follows_model<S: StatusMachine + fmt::Debug>(
    all: &[S],
    start: usize,
    steps: &[usize],
    model: impl Fn(S, S) -> bool,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::{prop_assert, prop_assert_eq};
    let mut state = all[start];
    for &step in steps {
        let to = all[step];
        let before = state;
        match state.transition(to) {
            Ok(next) => {
                prop_assert!(model(before, to));
                prop_assert_eq!(next, to);
                state = next;
            }
            Err(e) => {
                prop_assert!(!model(before, to));
                prop_assert_eq!((e.from, e.to), (before, to));
                prop_assert_eq!(state, before);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_differ_and_secrets_compare_exactly() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &b));
        assert!(!constant_time_eq("abc", "abcd"));
        assert_eq!(sha256_hex(b"abc").len(), 64);
    }

    #[test]
    fn an_illegal_transition_names_both_statuses() {
        let refused = HoldStatus::Expired
            .transition(HoldStatus::Active)
            .unwrap_err();

        assert_eq!(refused.to_string(), "cannot go from expired to active");
    }
}
