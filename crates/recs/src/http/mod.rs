//! Recommendations routes: path + method → handler, nothing else; and the optional caller.

use axum::Router;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::get;
use evently_core::Problem;
use evently_core::identity::{Identity, JwtKeys, TokenError, token_from_headers};
use evently_core::ids::UserId;
use std::sync::Arc;

use crate::service::RecsService;

pub mod recs;

/// What every recommendations handler can reach.
#[derive(Clone)]
pub struct RecsState {
    /// The operations.
    pub service: Arc<RecsService>,
    /// Token keys (the caller extractors find them here).
    pub keys: Arc<JwtKeys>,
}

impl FromRef<RecsState> for Arc<JwtKeys> {
    fn from_ref(state: &RecsState) -> Self {
        state.keys.clone()
    }
}

/// The caller of a public route: anonymous without a token, the verified user with a valid
/// one; a token that is sent but invalid is refused (401), never taken as anonymous.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Option<UserId>);

impl<S> FromRequestParts<S> for Caller
where
    Arc<JwtKeys>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match token_from_headers(&parts.method, &parts.headers) {
            Err(TokenError::Missing) => Ok(Caller(None)),
            _ => Identity::from_request_parts(parts, state)
                .await
                .map(|identity| Caller(Some(identity.user_id))),
        }
    }
}

/// The recommendations router (`/api/recs`, `/api/recs/related`).
pub fn router(state: RecsState) -> Router {
    Router::new()
        .route("/api/recs", get(recs::for_me))
        .route("/api/recs/related", get(recs::related))
        .with_state(state)
}
