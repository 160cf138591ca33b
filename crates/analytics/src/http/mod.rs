//! Analytics routes: path + method → handler, nothing else.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use evently_core::identity::JwtKeys;
use std::sync::Arc;

use crate::service::AnalyticsService;

pub mod analytics;

/// What every analytics handler can reach.
#[derive(Clone)]
pub struct AnalyticsState {
    /// The operations.
    pub service: Arc<AnalyticsService>,
    /// Token keys (the caller extractor finds them here).
    pub keys: Arc<JwtKeys>,
}

impl FromRef<AnalyticsState> for Arc<JwtKeys> {
    fn from_ref(state: &AnalyticsState) -> Self {
        state.keys.clone()
    }
}

/// The analytics router (`/api/analytics/events/{id}`, `/api/analytics/overview`).
pub fn router(state: AnalyticsState) -> Router {
    Router::new()
        .route("/api/analytics/events/{id}", get(analytics::event))
        .route("/api/analytics/overview", get(analytics::overview))
        .with_state(state)
}
