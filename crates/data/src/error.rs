//! `DataError`: why a data request failed, and the one place it becomes HTTP.

use evently_core::Problem;
use evently_core::db::StoreError;

/// Why a data request failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Invalid input or a refusal; carries the 4xx problem.
    #[error("refused: {0}")]
    Refused(Problem),
    /// No such job (or not the caller's).
    #[error("job not found")]
    JobNotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Problem> for DataError {
    fn from(problem: Problem) -> Self {
        DataError::Refused(problem)
    }
}

impl From<DataError> for Problem {
    fn from(error: DataError) -> Self {
        match error {
            DataError::Refused(problem) => problem,
            DataError::JobNotFound => Problem::not_found("no such import job"),
            DataError::Store(e) => e.into(),
        }
    }
}

impl axum::response::IntoResponse for DataError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
