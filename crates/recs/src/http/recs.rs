//! `GET /api/recs` (picks for the caller; popular upcoming events when anonymous or new) and
//! `GET /api/recs/related` (events like one event). Both public; every item says why.

use axum::extract::State;
use evently_core::Problem;
use evently_core::extract::Query;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, RecsState};
use crate::domain::catalogue::Catalogue;
use crate::domain::similarity::Method;
use crate::domain::{EventId, Reason, Scored};
use crate::error::RecsError;

const PROBLEM: &str = "application/problem+json";

/// `GET /api/recs` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForMeQuery {
    /// Items, 1 to the configured maximum (50 by default; 10 when absent).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
    /// The caller's city, if the client knows it: popular events there come first for an
    /// anonymous or new caller.
    pub city: Option<String>,
}

/// `GET /api/recs/related` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RelatedQuery {
    /// The event to find related events for.
    #[param(value_type = String, format = Uuid)]
    pub event_id: Option<String>,
    /// Items, 1 to the configured maximum (50 by default; 10 when absent).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 50)]
    pub limit: Option<String>,
}

/// A recommended event, with why.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecItem {
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    /// Title.
    pub event_name: String,
    /// When it takes place (RFC 3339).
    pub event_date: String,
    /// Its city, if known.
    pub city: Option<String>,
    /// Its type, if any.
    pub event_type: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its status (`UPCOMING` or `ON_SALE`).
    pub status: String,
    /// Relevance; comparable only within one answer.
    pub score: f64,
    /// Why it is recommended.
    pub reason: Reason,
}

/// A list of recommended events, best first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecList {
    /// The events (at most two per organizer and per type).
    pub items: Vec<RecItem>,
}

fn limit(state: &RecsState, raw: Option<&str>) -> Result<usize, Problem> {
    let config = state.service.config();
    let max = config.max_limit;
    let Some(raw) = raw else {
        return Ok(config.default_limit as usize);
    };
    match raw.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n as usize),
        _ => Err(Problem::invalid_field(
            "limit",
            format!("must be an integer from 1 to {max}"),
        )),
    }
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn list(items: &[Scored], catalogue: &Catalogue) -> RecList {
    RecList {
        items: items
            .iter()
            .filter_map(|s| {
                let f = catalogue.features(s.event_id)?;
                Some(RecItem {
                    event_id: s.event_id,
                    event_name: f.name.clone(),
                    event_date: rfc3339(f.event_date),
                    city: f.city.clone(),
                    event_type: f.event_type.clone(),
                    tags: f.tags.clone(),
                    status: f.status.as_str().to_owned(),
                    score: (s.score * 1e4).round() / 1e4,
                    reason: s.reason.clone(),
                })
            })
            .collect(),
    }
}

/// Picks for the caller (public). Signed in: events like the ones they bought (recent
/// purchases weigh more), in the cities and of the types they buy, with a small
/// recent-sales prior. Anonymous, or nothing bought yet: popular upcoming events, those in
/// `city` first. Never an event the caller owns, a past, cancelled or sold-out one; at most
/// two per organizer and per type.
#[utoipa::path(get, path = "/api/recs", tag = "recs", params(ForMeQuery),
    responses(
        (status = 200, description = "Recommended events, best first, each with its reason", body = RecList),
        (status = 400, description = "Malformed query string or unknown parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "A token was sent and is invalid", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "`limit` out of bounds or not a number", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 429, description = "Rate limited", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn for_me(
    State(state): State<RecsState>,
    Caller(caller): Caller,
    Query(query): Query<ForMeQuery>,
) -> Result<axum::Json<RecList>, RecsError> {
    let limit = limit(&state, query.limit.as_deref())?;
    let city = query
        .city
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let (items, catalogue) = state
        .service
        .for_user(caller, limit, city, Method::Hybrid)
        .await?;
    Ok(axum::Json(list(&items, &catalogue)))
}

/// Events related to one event (public): a blend of "bought together" (item-to-item
/// co-purchase, counted only for pairs with at least three buyers) and content likeness
/// (tags, type, city, organizer, words), the former weighing more as the event sells. A
/// signed-in caller never gets events they own.
#[utoipa::path(get, path = "/api/recs/related", tag = "recs", params(RelatedQuery),
    responses(
        (status = 200, description = "Related events, best first, each with its reason", body = RecList),
        (status = 400, description = "Malformed query string or unknown parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "A token was sent and is invalid", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "`eventId` missing or not a UUID, or `limit` out of bounds", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 429, description = "Rate limited", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn related(
    State(state): State<RecsState>,
    Caller(caller): Caller,
    Query(query): Query<RelatedQuery>,
) -> Result<axum::Json<RecList>, RecsError> {
    let event_id = match query.event_id.as_deref().map(str::trim) {
        None | Some("") => return Err(Problem::invalid_field("eventId", "is required").into()),
        Some(raw) => raw
            .parse::<EventId>()
            .map_err(|_| Problem::invalid_field("eventId", "must be a UUID"))?,
    };
    let limit = limit(&state, query.limit.as_deref())?;
    let (items, catalogue) = state.service.related(event_id, limit, caller).await?;
    Ok(axum::Json(list(&items, &catalogue)))
}
