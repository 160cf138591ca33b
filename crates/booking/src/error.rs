//! `BookingError`: why a booking operation was refused or failed, and the one place it
//! becomes HTTP. The domain's refusals become `BookingError`s here too, so a rule decided
//! without a database answers with the same problem as ever.

use axum::http::StatusCode;
use evently_core::Problem;
use evently_core::db::StoreError;

use crate::domain::{ConfirmRefusal, HoldEnded, HoldRefusal, PaymentBlocked, PurchaseRefusal};

/// Why a booking operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// Invalid input; carries the 4xx problem.
    #[error("invalid input: {0}")]
    Invalid(Problem),
    /// No such event (or booking has not seen it yet).
    #[error("event not found")]
    EventNotFound,
    /// The event does not take holds now.
    #[error("not on sale: {0}")]
    NotOnSale(&'static str),
    /// Some requested seats are not available.
    #[error("seats unavailable")]
    SeatsUnavailable(Vec<String>),
    /// Too few seats are left for the quantity asked.
    #[error("sold out")]
    SoldOut {
        /// Seats still available.
        available: i64,
    },
    /// The buyer would own more tickets for this event than allowed.
    #[error("ticket limit")]
    TicketLimit {
        /// The limit.
        limit: i64,
        /// Tickets the buyer already bought.
        owned: i64,
    },
    /// No such hold, or not the caller's.
    #[error("hold not found")]
    HoldNotFound,
    /// The hold expired or was released.
    #[error("hold expired")]
    HoldExpired,
    /// The hold already became an order.
    #[error("hold purchased")]
    HoldPurchased,
    /// The hold is paid already (a succeeded intent): a second intent would charge twice.
    #[error("hold already paid")]
    HoldPaid,
    /// No such payment intent, or not the caller's.
    #[error("payment intent not found")]
    IntentNotFound,
    /// The client secret does not match the intent.
    #[error("wrong client secret")]
    WrongSecret,
    /// The intent cannot be confirmed in its state.
    #[error("payment intent is {0}")]
    IntentNotConfirmable(String),
    /// The payment has not succeeded.
    #[error("payment not completed")]
    PaymentIncomplete(String),
    /// The (simulated) card was declined.
    #[error("payment declined")]
    PaymentDeclined,
    /// The (simulated) processor failed; the intent is unchanged and may be confirmed again.
    #[error("payment processor error")]
    PaymentFailed,
    /// No such order, or not visible to the caller.
    #[error("order not found")]
    OrderNotFound,
    /// The order is already cancelled.
    #[error("order already cancelled")]
    OrderCancelled,
    /// Not on the event's waitlist.
    #[error("not on the waitlist")]
    NotWaitlisted,
    /// The waitlist is for sold-out events; seats can be held now.
    #[error("seats available")]
    SeatsAvailable {
        /// Seats available.
        available: i64,
    },
    /// Seats asked for that are not seats of the event, with their place in the request.
    #[error("no such seats at this event")]
    UnknownSeats(Vec<(usize, String)>),
    /// A purchase names another event than its hold's.
    #[error("the hold is for another event")]
    HoldForAnotherEvent,
    /// A purchase names other seats than its hold's.
    #[error("the seats are not the hold's")]
    SeatsMismatch,
    /// A purchase names a payment intent of another hold.
    #[error("the payment intent is for another hold")]
    IntentForAnotherHold,
    /// The idempotency key was used with another request body.
    #[error("idempotency key reused")]
    KeyReused,
    /// A request with this idempotency key is still running.
    #[error("request in flight")]
    InFlight,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Problem> for BookingError {
    fn from(problem: Problem) -> Self {
        BookingError::Invalid(problem)
    }
}

impl From<HoldRefusal> for BookingError {
    fn from(refusal: HoldRefusal) -> Self {
        match refusal {
            HoldRefusal::EventNotFound => BookingError::EventNotFound,
            HoldRefusal::NotOnSale(why) => BookingError::NotOnSale(why),
            HoldRefusal::TicketLimit { limit, owned } => BookingError::TicketLimit { limit, owned },
            HoldRefusal::UnknownSeats(unknown) => BookingError::UnknownSeats(unknown),
            HoldRefusal::SeatsUnavailable(conflicts) => BookingError::SeatsUnavailable(conflicts),
            HoldRefusal::SoldOut { available } => BookingError::SoldOut { available },
        }
    }
}

impl From<HoldEnded> for BookingError {
    fn from(ended: HoldEnded) -> Self {
        match ended {
            HoldEnded::Expired => BookingError::HoldExpired,
            HoldEnded::Purchased => BookingError::HoldPurchased,
        }
    }
}

impl From<PaymentBlocked> for BookingError {
    fn from(blocked: PaymentBlocked) -> Self {
        match blocked {
            PaymentBlocked::NotFound => BookingError::HoldNotFound,
            PaymentBlocked::Ended(ended) => ended.into(),
        }
    }
}

impl From<ConfirmRefusal> for BookingError {
    fn from(refusal: ConfirmRefusal) -> Self {
        match refusal {
            ConfirmRefusal::NotConfirmable(status) => {
                BookingError::IntentNotConfirmable(status.as_str().to_owned())
            }
            ConfirmRefusal::HoldExpired => BookingError::HoldExpired,
            ConfirmRefusal::ProcessorFailed => BookingError::PaymentFailed,
        }
    }
}

impl From<PurchaseRefusal> for BookingError {
    fn from(refusal: PurchaseRefusal) -> Self {
        use PurchaseRefusal as R;
        match refusal {
            R::HoldNotFound => BookingError::HoldNotFound,
            R::AnotherEvent => BookingError::HoldForAnotherEvent,
            R::EventNotFound => BookingError::EventNotFound,
            R::HoldPurchased => BookingError::HoldPurchased,
            R::HoldExpired => BookingError::HoldExpired,
            R::SeatsMismatch => BookingError::SeatsMismatch,
            R::EventCancelled => BookingError::NotOnSale("the event is cancelled"),
            R::IntentNotFound => BookingError::IntentNotFound,
            R::IntentForAnotherHold => BookingError::IntentForAnotherHold,
            R::PaymentIncomplete(status) => {
                BookingError::PaymentIncomplete(status.as_str().to_owned())
            }
        }
    }
}

impl From<sqlx::Error> for BookingError {
    fn from(error: sqlx::Error) -> Self {
        BookingError::Store(error.into())
    }
}

impl From<BookingError> for Problem {
    fn from(error: BookingError) -> Self {
        use BookingError as E;
        match error {
            E::Invalid(problem) => problem,
            E::EventNotFound => Problem::not_found("no such event"),
            E::NotOnSale(why) => Problem::conflict("not-on-sale", "Not on sale").detail(why),
            E::SeatsUnavailable(conflicts) => {
                Problem::conflict("seats-unavailable", "Seats unavailable")
                    .detail("some of the seats are held or sold; nothing was held")
                    .extension("conflicts", conflicts.into())
            }
            E::SoldOut { available } => Problem::conflict("sold-out", "Sold out")
                .detail(format!("only {available} seats are available"))
                .extension("available", available.into()),
            E::TicketLimit { limit, owned } => {
                Problem::conflict("ticket-limit", "Ticket limit reached")
                    .detail(format!(
                        "at most {limit} tickets per buyer for this event; you have {owned}"
                    ))
                    .extension("limit", limit.into())
            }
            E::HoldNotFound => Problem::not_found("no such hold"),
            E::HoldExpired => Problem::conflict("hold-expired", "Hold expired")
                .detail("the hold expired or was released; its seats are back on sale"),
            E::HoldPurchased => Problem::conflict("hold-purchased", "Hold already purchased")
                .detail("this hold already became an order"),
            E::HoldPaid => Problem::conflict("hold-paid", "Hold already paid")
                .detail("a payment for this hold succeeded; purchase it with that payment intent"),
            E::IntentNotFound => Problem::not_found("no such payment intent"),
            E::WrongSecret => {
                Problem::validation().field("/clientSecret", "does not match the payment intent")
            }
            E::IntentNotConfirmable(status) => {
                Problem::conflict("payment-intent-state", "Payment intent cannot be confirmed")
                    .detail(format!("the payment intent is {status}"))
            }
            E::PaymentIncomplete(status) => {
                Problem::conflict("payment-incomplete", "Payment not completed")
                    .detail(format!("the payment intent is {status}; confirm it first"))
            }
            E::PaymentDeclined => Problem::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment-declined",
                "Payment declined",
            )
            .detail(
                "the card was declined and nothing was charged; pay with another card (a new \
                 payment intent, or a checkout under a new Idempotency-Key)",
            ),
            E::PaymentFailed => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "payment-processor-error",
                "Payment processor error",
            )
            .detail("the payment processor failed and nothing changed; try again")
            .retry_after(1),
            E::OrderNotFound => Problem::not_found("no such order"),
            E::OrderCancelled => Problem::conflict("order-cancelled", "Order already cancelled"),
            E::NotWaitlisted => Problem::not_found("you are not on this event's waitlist"),
            E::SeatsAvailable { available } => {
                Problem::conflict("seats-available", "Seats available")
                    .detail(format!(
                        "{available} seats are available: hold them instead of waiting"
                    ))
                    .extension("available", available.into())
            }
            E::UnknownSeats(unknown) => {
                let mut problem = Problem::validation().detail("no such seats at this event");
                for (i, seat) in unknown {
                    problem = problem.field(
                        format!("/seatIds/{i}"),
                        format!("{seat} is not a seat of this event"),
                    );
                }
                problem
            }
            E::HoldForAnotherEvent => {
                Problem::invalid_field("/eventId", "the hold is for another event")
            }
            E::SeatsMismatch => {
                Problem::invalid_field("/seatIds", "must be exactly the hold's seats")
            }
            E::IntentForAnotherHold => {
                Problem::invalid_field("/paymentIntentId", "the payment intent is for another hold")
            }
            E::KeyReused => Problem::validation().detail(
                "this Idempotency-Key was used with a different request body; use a new key",
            ),
            E::InFlight => Problem::conflict("request-in-flight", "Request in flight")
                .detail("a request with this Idempotency-Key is still being processed")
                .retry_after(1),
            E::Store(e) => e.into(),
            E::Internal(e) => Problem::internal(e),
        }
    }
}

impl axum::response::IntoResponse for BookingError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{HoldEnded, IntentStatus};

    fn problem(error: impl Into<BookingError>) -> Problem {
        Problem::from(error.into())
    }

    fn pointers(problem: &Problem) -> Vec<(&str, &str)> {
        problem
            .errors()
            .iter()
            .map(|e| (e.pointer.as_str(), e.detail.as_str()))
            .collect()
    }

    #[test]
    fn hold_refusals_answer_as_their_booking_errors() {
        let unknown = problem(HoldRefusal::UnknownSeats(vec![
            (1, "Z-9-9".into()),
            (3, "Z-9-8".into()),
        ]));
        let unavailable = problem(HoldRefusal::SeatsUnavailable(vec!["A-1-1".into()]));
        let limit = problem(HoldRefusal::TicketLimit { limit: 6, owned: 5 });

        assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            pointers(&unknown),
            [
                ("/seatIds/1", "Z-9-9 is not a seat of this event"),
                ("/seatIds/3", "Z-9-8 is not a seat of this event"),
            ]
        );
        assert_eq!(unknown.body()["detail"], "no such seats at this event");
        assert_eq!(
            (unavailable.status(), unavailable.slug()),
            (StatusCode::CONFLICT, "seats-unavailable")
        );
        assert_eq!(
            unavailable.body()["conflicts"],
            serde_json::json!(["A-1-1"])
        );
        assert_eq!(limit.slug(), "ticket-limit");
        assert_eq!(
            problem(HoldRefusal::NotOnSale("the sale has ended")).body()["detail"],
            "the sale has ended"
        );
        assert_eq!(
            problem(HoldRefusal::EventNotFound).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            problem(HoldRefusal::SoldOut { available: 2 }).body()["available"],
            2
        );
        assert_eq!(problem(HoldEnded::Purchased).slug(), "hold-purchased");
        assert_eq!(problem(HoldEnded::Expired).slug(), "hold-expired");
    }

    #[test]
    fn purchase_refusals_point_at_the_field_they_refuse() {
        for (refusal, pointer, detail) in [
            (
                PurchaseRefusal::AnotherEvent,
                "/eventId",
                "the hold is for another event",
            ),
            (
                PurchaseRefusal::SeatsMismatch,
                "/seatIds",
                "must be exactly the hold's seats",
            ),
            (
                PurchaseRefusal::IntentForAnotherHold,
                "/paymentIntentId",
                "the payment intent is for another hold",
            ),
        ] {
            let answer = problem(refusal);
            assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(pointers(&answer), [(pointer, detail)]);
        }
        let incomplete = problem(PurchaseRefusal::PaymentIncomplete(
            IntentStatus::RequiresConfirmation,
        ));
        assert_eq!(incomplete.slug(), "payment-incomplete");
        assert_eq!(
            incomplete.body()["detail"],
            "the payment intent is requires_confirmation; confirm it first"
        );
        assert_eq!(
            problem(PurchaseRefusal::EventCancelled).body()["detail"],
            "the event is cancelled"
        );
        assert_eq!(
            problem(PurchaseRefusal::HoldNotFound).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn confirmation_refusals_answer_as_before() {
        let final_intent = problem(ConfirmRefusal::NotConfirmable(IntentStatus::Declined));

        assert_eq!(final_intent.slug(), "payment-intent-state");
        assert_eq!(
            final_intent.body()["detail"],
            "the payment intent is declined"
        );
        assert_eq!(
            problem(ConfirmRefusal::ProcessorFailed).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(problem(ConfirmRefusal::HoldExpired).slug(), "hold-expired");
        assert_eq!(
            problem(PaymentBlocked::NotFound).status(),
            StatusCode::NOT_FOUND
        );
    }
}
