//! Auth routes: path + method → handler, nothing else.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post, put};
use evently_core::config::{AuthConfig, SameSite};
use evently_core::identity::{InternalToken, JwtKeys};
use std::sync::Arc;

use crate::service::AuthService;

pub mod auth;
pub mod internal;
pub mod users;

/// What every auth handler can reach.
#[derive(Clone)]
pub struct AuthState {
    /// The operations.
    pub service: Arc<AuthService>,
    /// Token keys (the `Identity` extractor finds them here).
    pub keys: Arc<JwtKeys>,
    /// The internal credential (the `InternalCaller` extractor finds it here).
    pub internal: InternalToken,
    /// Cookie and throttling settings.
    pub config: Arc<AuthConfig>,
}

impl FromRef<AuthState> for Arc<JwtKeys> {
    fn from_ref(state: &AuthState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<AuthState> for InternalToken {
    fn from_ref(state: &AuthState) -> Self {
        state.internal.clone()
    }
}

impl AuthState {
    pub(crate) fn same_site(&self) -> &'static str {
        match self.config.cookie_same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// The auth service's router (public `/api/auth/*`, `/api/users/*` and `/internal/*` routes).
pub fn router(state: AuthState) -> Router {
    Router::new()
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/signup", post(auth::signup))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/api/users", get(users::list_users))
        .route(
            "/api/users/profile",
            get(users::get_profile).put(users::update_profile),
        )
        .route("/api/users/password", put(auth::change_password))
        .route("/api/users/{user_id}/role", put(users::set_role))
        .route("/api/users/{user_id}/status", put(users::set_status))
        .route("/internal/auth/verify", post(internal::verify_token))
        .route("/internal/users/lookup", post(internal::lookup_users))
        .route("/internal/users/{user_id}", get(internal::get_user))
        .with_state(state)
}
