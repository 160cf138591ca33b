//! `EventsError`: why an events operation failed, and the one place it becomes HTTP.

use evently_core::Problem;
use evently_core::db::StoreError;

use crate::domain::IllegalTransition;

/// Why an events operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Invalid input; carries the 4xx problem.
    #[error("invalid input: {0}")]
    Invalid(Problem),
    /// No such event.
    #[error("event not found")]
    EventNotFound,
    /// No such venue.
    #[error("venue not found")]
    VenueNotFound,
    /// The caller may not do this (wrong role, or not the event's owner).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The status machine refused the change.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The event is cancelled; it no longer changes.
    #[error("event cancelled")]
    Cancelled,
    /// A change of seats of an event whose sale may have started: booking owns them now.
    #[error("capacity locked")]
    CapacityLocked,
    /// The event kept changing under concurrent updates.
    #[error("concurrent update")]
    Contended,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Problem> for EventsError {
    fn from(problem: Problem) -> Self {
        EventsError::Invalid(problem)
    }
}

impl From<EventsError> for Problem {
    fn from(error: EventsError) -> Self {
        match error {
            EventsError::Invalid(problem) => problem,
            EventsError::EventNotFound => Problem::not_found("no such event"),
            EventsError::VenueNotFound => Problem::not_found("no such venue"),
            EventsError::Forbidden(why) => Problem::forbidden(why),
            EventsError::IllegalTransition(t) => {
                let allowed: Vec<&str> = t.from.allowed().iter().map(|s| s.as_str()).collect();
                Problem::conflict("illegal-status-transition", "Illegal status transition")
                    .detail(t.to_string())
                    .extension("from", t.from.as_str().into())
                    .extension("to", t.to.as_str().into())
                    .extension("allowed", allowed.into())
            }
            EventsError::Cancelled => Problem::conflict("event-cancelled", "Event cancelled")
                .detail("a cancelled event can no longer change"),
            EventsError::CapacityLocked => Problem::conflict("capacity-locked", "Capacity locked")
                .detail(
                    "the sale of this event may have started and booking owns its seats; \
                     totalSeats can no longer change",
                ),
            EventsError::Contended => Problem::conflict("concurrent-update", "Concurrent update")
                .detail("the event changed while this request was applied; retry"),
            EventsError::Store(e) => e.into(),
            EventsError::Internal(e) => Problem::internal(e),
        }
    }
}

impl axum::response::IntoResponse for EventsError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
