//! `AuthError`: why an auth operation failed, and the one place it becomes HTTP.

use evently_core::Problem;
use evently_core::db::StoreError;

use crate::hashing::HashError;

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Invalid input; carries the 4xx problem.
    #[error("invalid input: {0}")]
    Invalid(Problem),
    /// Unknown email, wrong password or disabled account — deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The email is already registered.
    #[error("email already registered")]
    EmailTaken,
    /// Too many failed logins for this account or client.
    #[error("login throttled")]
    Throttled {
        /// Seconds until another attempt is accepted.
        retry_after_secs: u64,
    },
    /// The refresh token is unknown, expired, revoked or reused.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// No such user.
    #[error("user not found")]
    UserNotFound,
    /// A signed-in caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Password hashing is saturated.
    #[error("busy")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<HashError> for AuthError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => AuthError::Busy,
            HashError::Failed(e) => AuthError::Internal(anyhow::anyhow!(e)),
        }
    }
}

impl From<Problem> for AuthError {
    fn from(problem: Problem) -> Self {
        AuthError::Invalid(problem)
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Invalid(problem) => problem,
            AuthError::InvalidCredentials => {
                Problem::unauthorized("email or password is incorrect")
            }
            AuthError::EmailTaken => Problem::conflict("email-taken", "Email already registered")
                .detail("an account with this email already exists"),
            AuthError::Throttled { retry_after_secs } => {
                Problem::too_many_requests(retry_after_secs)
                    .detail("too many failed sign-in attempts; try again later")
            }
            AuthError::InvalidRefreshToken => {
                Problem::unauthorized("the refresh token is invalid, expired or revoked")
            }
            AuthError::UserNotFound => Problem::not_found("no such user"),
            AuthError::Forbidden(why) => Problem::forbidden(why),
            AuthError::Busy => Problem::unavailable("sign-in is busy; retry shortly", 1),
            AuthError::Store(e) => e.into(),
            AuthError::Internal(e) => Problem::internal(e),
        }
    }
}

impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        Problem::from(self).into_response()
    }
}
