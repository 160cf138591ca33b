//! Analytics routes: path + method → handler, nothing else.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use evently_core::identity::JwtKeys;
use std::sync::Arc;

use crate::live::LiveHub;
use crate::service::AnalyticsService;

pub mod analytics;
pub mod live;

/// What every analytics handler can reach.
#[derive(Clone)]
pub struct AnalyticsState {
    /// The operations.
    pub service: Arc<AnalyticsService>,
    /// Token keys (the caller extractor finds them here).
    pub keys: Arc<JwtKeys>,
    /// The live feed's channels.
    pub hub: Arc<LiveHub>,
    /// Origins other than the request's own host that may open the live feed (the gateway's
    /// CORS allowlist).
    pub origins: Arc<Vec<String>>,
}

impl FromRef<AnalyticsState> for Arc<JwtKeys> {
    fn from_ref(state: &AnalyticsState) -> Self {
        state.keys.clone()
    }
}

/// The analytics router (`/api/analytics/events/{id}`, `/api/analytics/overview`,
/// `/api/analytics/live` and its SSE twin `/api/analytics/live/stream`).
pub fn router(state: AnalyticsState) -> Router {
    Router::new()
        .route("/api/analytics/events/{id}", get(analytics::event))
        .route("/api/analytics/overview", get(analytics::overview))
        .route("/api/analytics/live", get(live::live))
        .route("/api/analytics/live/stream", get(live::stream))
        .with_state(state)
}
