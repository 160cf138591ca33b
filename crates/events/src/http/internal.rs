//! `/internal/events/*`: what other evently services (the data service's imports) ask of the
//! events service across processes, behind the internal credential and for the caller whose
//! access token they forward. The gateway never forwards these; without the credential they
//! answer 404. Bodies are parsed and judged exactly as `POST /api/events` does.

use axum::extract::State;
use axum::http::StatusCode;
use evently_core::extract::{Json, Path};
use evently_core::identity::{Identity, InternalCaller};

use super::EventsState;
use super::events::{CreateEventRequest, EventResponse};
use crate::domain::EventId;
use crate::error::EventsError;

const PROBLEM: &str = "application/problem+json";

/// Check an event body as `POST /api/events` would for the caller, creating nothing.
#[utoipa::path(post, path = "/internal/events/check", tag = "internal", security(("bearer" = [])),
    params(("X-Internal-Token" = String, Header, description = "The internal service credential")),
    request_body = CreateEventRequest,
    responses(
        (status = 204, description = "`POST /api/events` would accept it"),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not an organizer or admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No or wrong internal credential", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn check_event(
    State(state): State<EventsState>,
    _caller: InternalCaller,
    identity: Identity,
    Json(body): Json<CreateEventRequest>,
) -> Result<StatusCode, EventsError> {
    let (draft, venue, status) = body.into_parts()?;
    state
        .service
        .check_event(&identity, &draft, venue, status)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create the event the body describes with this id for the caller (as `POST /api/events`
/// would), or update the event with this id to it (as `PUT /api/events/{eventId}` would).
#[utoipa::path(put, path = "/internal/events/{eventId}", tag = "internal", security(("bearer" = [])),
    params(("eventId" = Uuid, Path, description = "The event's id"),
           ("X-Internal-Token" = String, Header, description = "The internal service credential")),
    request_body = CreateEventRequest,
    responses(
        (status = 201, description = "Created", body = EventResponse),
        (status = 200, description = "Updated", body = EventResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not the organizer or an admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No or wrong internal credential", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 409, description = "The update is not allowed (as for `PUT /api/events/{eventId}`)", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn upsert_event(
    State(state): State<EventsState>,
    _caller: InternalCaller,
    identity: Identity,
    Path(id): Path<EventId>,
    Json(body): Json<CreateEventRequest>,
) -> Result<(StatusCode, axum::Json<EventResponse>), EventsError> {
    let (draft, venue, status) = body.into_parts()?;
    let (event, created) = state
        .service
        .upsert_event(&identity, id, draft, venue, status)
        .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(event.into())))
}
