//! `AnalyticsError`: why an analytics request failed, and the one place it becomes HTTP.

use evently_core::Problem;
use evently_core::db::StoreError;

/// Why an analytics request failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// Invalid input; carries the 4xx problem.
    #[error("invalid input: {0}")]
    Invalid(Problem),
    /// The event is unknown, deleted, or not the caller's to see.
    #[error("event not found")]
    EventNotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Problem> for AnalyticsError {
    fn from(problem: Problem) -> Self {
        AnalyticsError::Invalid(problem)
    }
}

impl From<AnalyticsError> for Problem {
    fn from(error: AnalyticsError) -> Self {
        match error {
            AnalyticsError::Invalid(problem) => problem,
            AnalyticsError::EventNotFound => Problem::not_found("no such event"),
            AnalyticsError::Store(e) => e.into(),
        }
    }
}

impl axum::response::IntoResponse for AnalyticsError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
