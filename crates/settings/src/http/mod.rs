//! Settings routes: path + method → handler, nothing else.

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use evently_core::identity::JwtKeys;
use std::sync::Arc;

use crate::service::SettingsService;

pub mod settings;

/// What every settings handler can reach.
#[derive(Clone)]
pub struct SettingsState {
    /// The operations.
    pub service: Arc<SettingsService>,
    /// Token keys (the caller extractor finds them here).
    pub keys: Arc<JwtKeys>,
}

impl FromRef<SettingsState> for Arc<JwtKeys> {
    fn from_ref(state: &SettingsState) -> Self {
        state.keys.clone()
    }
}

/// The settings router (`/api/settings/…`).
pub fn router(state: SettingsState) -> Router {
    use settings::*;
    Router::new()
        .route("/api/settings/me", get(get_me).put(put_me).patch(patch_me))
        .route("/api/settings/me/effective", get(effective_me))
        .route(
            "/api/settings/platform",
            get(get_platform).put(put_platform).patch(patch_platform),
        )
        .route("/api/settings/platform/effective", get(effective_platform))
        .route(
            "/api/settings/organizers/{organizer_id}",
            get(get_organizer).put(put_organizer).patch(patch_organizer),
        )
        .route(
            "/api/settings/organizers/{organizer_id}/effective",
            get(effective_organizer),
        )
        .route(
            "/api/settings/events/{event_id}",
            get(get_event).put(put_event).patch(patch_event),
        )
        .route(
            "/api/settings/events/{event_id}/effective",
            get(effective_event),
        )
        .route("/api/settings/schema/{namespace}", get(get_schema))
        .route("/api/settings/audit", get(list_audit))
        .with_state(state)
}
