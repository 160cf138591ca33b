//! `SettingsError`: why a settings request failed, and the one place it becomes HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use evently_core::Problem;
use evently_core::db::StoreError;

use crate::domain::etag;

/// Why a settings request failed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Invalid input (including schema violations); carries the 4xx problem.
    #[error("invalid input: {0}")]
    Invalid(Problem),
    /// The scope is unknown or not the caller's to see.
    #[error("not found")]
    NotFound,
    /// The caller may read but not change it, or may not act on this scope at all.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A write without `If-Match`.
    #[error("If-Match required")]
    PreconditionRequired,
    /// The document is no longer at the version the write expected.
    #[error("stale write; the document is at version {current}")]
    Stale {
        /// The version it is at (0: absent).
        current: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Problem> for SettingsError {
    fn from(problem: Problem) -> Self {
        SettingsError::Invalid(problem)
    }
}

impl From<SettingsError> for Problem {
    fn from(error: SettingsError) -> Self {
        match error {
            SettingsError::Invalid(problem) => problem,
            SettingsError::NotFound => Problem::not_found("no such settings scope"),
            SettingsError::Forbidden(why) => Problem::forbidden(why),
            SettingsError::PreconditionRequired => Problem::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "Precondition required",
            )
            .detail(
                "send If-Match with the ETag of the document you read (\"0\" for one never \
                 written), or * to overwrite whatever is there",
            ),
            SettingsError::Stale { current } => {
                let problem = Problem::new(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition-failed",
                    "Precondition failed",
                )
                .detail(format!(
                    "the document changed since it was read; it is at version {current}"
                ))
                .extension("currentVersion", current.into());
                match HeaderValue::from_str(&etag(current)) {
                    Ok(value) => problem.header(header::ETAG, value),
                    Err(_) => problem,
                }
            }
            SettingsError::Store(e) => e.into(),
        }
    }
}

impl axum::response::IntoResponse for SettingsError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
