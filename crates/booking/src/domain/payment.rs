//! Simulated payments: a payment intent's life ([`IntentStatus`]), its amount
//! ([`intent_amount`]) and the rules of confirming it ([`decide_confirmation`],
//! [`confirmation_lost`]).
//!
//! An intent pays for one hold: it is created for the buyer's live hold, confirmed once with
//! its client secret while the hold is live, and refunded or cancelled when the hold or the
//! order ends. What the processor does with a confirmation is a [`Confirmation`].

use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

use super::inventory::{seat_price, section_of};
use super::{HoldId, PaymentIntentId, StatusMachine};

/// Where a payment intent is in its life.
///
/// ```text
/// requires_confirmation ──► succeeded ──► refunded
///          │
///          ├──► declined
///          └──► cancelled (superseded, or its hold ended)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentStatus {
    /// Created; waits for its confirmation.
    RequiresConfirmation,
    /// Paid.
    Succeeded,
    /// The card was declined; final (a new intent is needed).
    Declined,
    /// Superseded by a newer intent of its hold, or its hold ended unpaid.
    Cancelled,
    /// Paid, then given back (the hold ended or the order was cancelled).
    Refunded,
}

impl StatusMachine for IntentStatus {
    fn allowed(self) -> &'static [IntentStatus] {
        match self {
            IntentStatus::RequiresConfirmation => &[
                IntentStatus::Succeeded,
                IntentStatus::Declined,
                IntentStatus::Cancelled,
            ],
            IntentStatus::Succeeded => &[IntentStatus::Refunded],
            IntentStatus::Declined | IntentStatus::Cancelled | IntentStatus::Refunded => &[],
        }
    }
}

impl fmt::Display for IntentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

evently_core::stored_names!(IntentStatus, "payment intent status", {
    RequiresConfirmation => "requires_confirmation",
    Succeeded => "succeeded",
    Declined => "declined",
    Cancelled => "cancelled",
    Refunded => "refunded",
});

/// A simulated payment intent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    /// Its id.
    pub id: PaymentIntentId,
    /// The hold it pays for.
    pub hold_id: HoldId,
    /// The event.
    pub event_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// Minor units, computed from the hold.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// Where it is in its life.
    pub status: IntentStatus,
    /// SHA-256 of the client secret, hex.
    pub secret_hash: String,
}

/// A payment intent with the seats of the hold it pays for: what its payer is shown when
/// they create or confirm it (read with the intent, so that answering costs no second read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentOfHold {
    /// The intent.
    pub intent: PaymentIntent,
    /// Its hold's seats.
    pub seat_ids: Vec<String>,
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

/// The amount of a hold of `seats`: the sum of each seat's price (its section's, or the
/// base price). `None` if it overflows.
pub fn intent_amount(
    section_prices: &BTreeMap<String, i64>,
    base_price: i64,
    seats: &[String],
) -> Option<i64> {
    seats.iter().try_fold(0i64, |sum, seat| {
        sum.checked_add(seat_price(section_prices, base_price, section_of(seat)))
    })
}

/// What confirming an intent does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmStep {
    /// It succeeded before: answer it as it is (confirming is idempotent).
    AlreadySucceeded,
    /// Move it to this status (while it still awaits confirmation and its hold is live).
    Move(IntentStatus),
}

/// Why a confirmation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfirmRefusal {
    /// The intent is declined, cancelled or refunded.
    NotConfirmable(IntentStatus),
    /// Its hold is no longer live.
    HoldExpired,
    /// The processor failed; nothing changes.
    ProcessorFailed,
}

/// Decides the confirmation of an intent of `status` whose hold is live or not, when the
/// processor answers `outcome` (the client secret was checked before).
///
/// # Errors
/// [`ConfirmRefusal::NotConfirmable`] for an intent that neither awaits confirmation nor
/// succeeded, [`ConfirmRefusal::HoldExpired`] when its hold is not live,
/// [`ConfirmRefusal::ProcessorFailed`] when the processor fails.
pub fn decide_confirmation(
    status: IntentStatus,
    hold_live: bool,
    outcome: Confirmation,
) -> Result<ConfirmStep, ConfirmRefusal> {
    match status {
        IntentStatus::Succeeded => return Ok(ConfirmStep::AlreadySucceeded),
        IntentStatus::RequiresConfirmation => {}
        other => return Err(ConfirmRefusal::NotConfirmable(other)),
    }
    if !hold_live {
        return Err(ConfirmRefusal::HoldExpired);
    }
    let to = match outcome {
        Confirmation::Fail => return Err(ConfirmRefusal::ProcessorFailed),
        Confirmation::Decline => IntentStatus::Declined,
        Confirmation::Succeed => IntentStatus::Succeeded,
    };
    status
        .transition(to)
        .map(ConfirmStep::Move)
        .map_err(|e| ConfirmRefusal::NotConfirmable(e.from))
}

/// The answer to a confirmation whose conditional change found the intent changed meanwhile
/// (a concurrent confirmation, or its hold ended): the intent is now `current`, its hold live
/// or not.
///
/// # Errors
/// [`ConfirmRefusal::HoldExpired`] when it still awaits confirmation but its hold ended,
/// otherwise [`ConfirmRefusal::NotConfirmable`] unless it succeeded.
pub fn confirmation_lost(current: IntentStatus, hold_live: bool) -> Result<(), ConfirmRefusal> {
    match current {
        IntentStatus::Succeeded => Ok(()),
        IntentStatus::RequiresConfirmation if !hold_live => Err(ConfirmRefusal::HoldExpired),
        other => Err(ConfirmRefusal::NotConfirmable(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_amount_is_the_sum_of_the_seats_prices() {
        let prices = BTreeMap::from([("A".to_owned(), 5000)]);
        let seats = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

        assert_eq!(
            intent_amount(&prices, 3000, &seats(&["A-1-1", "B-1-1", "A-2-2"])),
            Some(13_000)
        );
        assert_eq!(intent_amount(&prices, 3000, &[]), Some(0));
        assert_eq!(
            intent_amount(&BTreeMap::new(), i64::MAX, &seats(&["GA-1", "GA-2"])),
            None
        );
    }

    #[test]
    fn a_confirmation_moves_an_awaiting_intent_while_its_hold_is_live() {
        use IntentStatus::*;

        assert_eq!(
            decide_confirmation(RequiresConfirmation, true, Confirmation::Succeed),
            Ok(ConfirmStep::Move(Succeeded))
        );
        assert_eq!(
            decide_confirmation(RequiresConfirmation, true, Confirmation::Decline),
            Ok(ConfirmStep::Move(Declined))
        );
        assert_eq!(
            decide_confirmation(RequiresConfirmation, true, Confirmation::Fail),
            Err(ConfirmRefusal::ProcessorFailed)
        );
        assert_eq!(
            decide_confirmation(RequiresConfirmation, false, Confirmation::Succeed),
            Err(ConfirmRefusal::HoldExpired)
        );
    }

    #[test]
    fn a_succeeded_intent_confirms_again_and_a_final_one_never() {
        use IntentStatus::*;

        for outcome in [
            Confirmation::Succeed,
            Confirmation::Decline,
            Confirmation::Fail,
        ] {
            for live in [true, false] {
                assert_eq!(
                    decide_confirmation(Succeeded, live, outcome),
                    Ok(ConfirmStep::AlreadySucceeded)
                );
                for done in [Declined, Cancelled, Refunded] {
                    assert_eq!(
                        decide_confirmation(done, live, outcome),
                        Err(ConfirmRefusal::NotConfirmable(done))
                    );
                }
            }
        }
    }

    #[test]
    fn a_lost_confirmation_reports_what_the_intent_became() {
        use IntentStatus::*;

        assert_eq!(confirmation_lost(Succeeded, false), Ok(()));
        assert_eq!(
            confirmation_lost(RequiresConfirmation, false),
            Err(ConfirmRefusal::HoldExpired)
        );
        assert_eq!(
            confirmation_lost(RequiresConfirmation, true),
            Err(ConfirmRefusal::NotConfirmable(RequiresConfirmation))
        );
        assert_eq!(
            confirmation_lost(Declined, true),
            Err(ConfirmRefusal::NotConfirmable(Declined))
        );
    }

    #[test]
    fn intent_statuses_parse_from_their_stored_names() {
        for status in IntentStatus::ALL {
            assert_eq!(status.as_str().parse::<IntentStatus>(), Ok(status));
        }
        assert!("paid".parse::<IntentStatus>().is_err());
    }

    /// The intent machine, written as the list of its edges.
    fn model_allows(from: IntentStatus, to: IntentStatus) -> bool {
        use IntentStatus::*;
        matches!(
            (from, to),
            (RequiresConfirmation, Succeeded | Declined | Cancelled) | (Succeeded, Refunded)
        )
    }

    proptest! {
        #[test]
        fn intent_transitions_follow_the_model(
            start in 0usize..5,
            steps in proptest::collection::vec(0usize..5, 0..20),
        ) {
            crate::domain::walk_follows_model(&IntentStatus::ALL, start, &steps, model_allows)?;
        }
    }
}
