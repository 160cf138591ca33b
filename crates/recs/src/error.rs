//! `RecsError`: why a recommendations request failed, and the one place it becomes HTTP.

use evently_core::Problem;
use evently_core::db::StoreError;

/// Why a recommendations request failed.
#[derive(Debug, thiserror::Error)]
pub enum RecsError {
    /// Invalid input; carries the 4xx problem.
    #[error("invalid input: {0}")]
    Invalid(Problem),
    /// The event is unknown to recommendations (never created, or deleted).
    #[error("event not found")]
    EventNotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Problem> for RecsError {
    fn from(problem: Problem) -> Self {
        RecsError::Invalid(problem)
    }
}

impl From<RecsError> for Problem {
    fn from(error: RecsError) -> Self {
        match error {
            RecsError::Invalid(problem) => problem,
            RecsError::EventNotFound => Problem::not_found("no such event"),
            RecsError::Store(e) => e.into(),
        }
    }
}

impl axum::response::IntoResponse for RecsError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
