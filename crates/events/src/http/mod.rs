//! Events routes: path + method → handler, nothing else.

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post, put};
use evently_core::config::EventsConfig;
use evently_core::identity::{InternalToken, JwtKeys};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

use crate::service::EventsService;

pub mod events;
pub mod internal;
pub mod venues;

/// What every events handler can reach.
#[derive(Clone)]
pub struct EventsState {
    /// The operations.
    pub service: Arc<EventsService>,
    /// Token keys (the `Identity` extractor finds them here).
    pub keys: Arc<JwtKeys>,
    /// Page sizes.
    pub config: Arc<EventsConfig>,
    /// The credential other services present to `/internal/*`.
    pub internal: InternalToken,
    /// How large a batch `/internal/events/batch` takes.
    pub batch: BatchLimits,
}

/// How large a batch `POST /internal/events/batch` takes: an import's whole file.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Events per batch: an import's row cap (`data.max_import_rows`).
    pub max_events: usize,
    /// Body bytes: the JSON of an import's largest file.
    pub max_bytes: usize,
}

impl BatchLimits {
    /// The limits for imports capped by `data`: as many events as rows, and room for each
    /// row's JSON (field names and escapes make it larger than its cells), at least the
    /// server's own body limit.
    pub fn for_imports(data: &evently_core::config::DataConfig, body_limit: usize) -> Self {
        const BYTES_PER_ROW: usize = 2 * 1024;
        Self {
            max_events: data.max_import_rows,
            max_bytes: (2 * data.max_import_bytes)
                .saturating_add(data.max_import_rows.saturating_mul(BYTES_PER_ROW))
                .max(body_limit),
        }
    }
}

impl FromRef<EventsState> for InternalToken {
    fn from_ref(state: &EventsState) -> Self {
        state.internal.clone()
    }
}

impl FromRef<EventsState> for Arc<JwtKeys> {
    fn from_ref(state: &EventsState) -> Self {
        state.keys.clone()
    }
}

/// The events service's router (`/api/events/*`, `/api/venues/*`, and for other services
/// `/internal/events/*`).
pub fn router(state: EventsState) -> Router {
    Router::new()
        .route(
            "/api/venues",
            get(venues::list_venues).post(venues::create_venue),
        )
        .route("/api/venues/{venue_id}", get(venues::get_venue))
        .route(
            "/api/events",
            get(events::list_events).post(events::create_event),
        )
        .route(
            "/api/events/{event_id}",
            get(events::get_event)
                .put(events::update_event)
                .delete(events::delete_event),
        )
        .route("/api/events/{event_id}/status", put(events::change_status))
        .route("/internal/events/check", post(internal::check_event))
        .route(
            "/internal/events/check-batch",
            post(internal::check_batch).layer(DefaultBodyLimit::max(state.batch.max_bytes)),
        )
        .route(
            "/internal/events/batch",
            post(internal::upsert_batch).layer(DefaultBodyLimit::max(state.batch.max_bytes)),
        )
        .route("/internal/events/{event_id}", put(internal::upsert_event))
        .with_state(state)
}

/// Where a page sits in a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// Page number, from 0.
    pub number: u32,
    /// Items per page.
    pub size: u32,
    /// Items in the whole listing.
    pub total_elements: u64,
    /// Pages in the whole listing.
    pub total_pages: u64,
}

/// `page` and `size` checked against the configured bounds.
pub(crate) fn page(
    config: &EventsConfig,
    page: Option<u32>,
    size: Option<u32>,
) -> Result<crate::domain::Page, evently_core::Problem> {
    let size = size.unwrap_or(config.default_page_size);
    if size == 0 || size > config.max_page_size {
        return Err(evently_core::Problem::invalid_field(
            "size",
            format!("must be 1 to {}", config.max_page_size),
        ));
    }
    let number = page.unwrap_or(0);
    // Offsets beyond this are never a real listing and would overflow some engines' OFFSET.
    if number > 1_000_000 {
        return Err(evently_core::Problem::invalid_field(
            "page",
            "must be at most 1000000",
        ));
    }
    Ok(crate::domain::Page { number, size })
}

/// RFC 3339 text of epoch milliseconds.
pub(crate) fn rfc3339(ms: i64) -> String {
    crate::domain::from_ms(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// For PATCH-like fields: absent → `None`, `null` → `Some(None)`, value → `Some(Some(v))`.
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
