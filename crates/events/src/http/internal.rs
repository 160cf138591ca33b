//! `/internal/events/*`: what other evently services (the data service's imports) ask of the
//! events service across processes, behind the internal credential and for the caller whose
//! access token they forward. The gateway never forwards these; without the credential they
//! answer 404. Bodies are parsed and judged exactly as `POST /api/events` does.

use axum::extract::State;
use axum::http::StatusCode;
use evently_core::Problem;
use evently_core::extract::{Json, Path};
use evently_core::identity::{Identity, InternalCaller};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::EventsState;
use super::events::{CreateEventRequest, EventResponse};
use crate::domain::{EventDraft, EventId, EventStatus};
use crate::error::EventsError;
use crate::service::{BatchOutcome, UpsertItem, VenueChoice};

const PROBLEM: &str = "application/problem+json";

/// Check an event body as `POST /api/events` would for the caller, creating nothing.
#[utoipa::path(post, path = "/internal/events/check", tag = "internal", security(("bearer" = [])),
    params(("X-Internal-Token" = String, Header, description = "The internal service credential")),
    request_body = CreateEventRequest,
    responses(
        (status = 204, description = "`POST /api/events` would accept it"),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not an organizer or admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No or wrong internal credential", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 415, description = "Not `application/json`", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
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
        (status = 400, description = "Malformed JSON or event id", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not the organizer or an admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No or wrong internal credential, or the event was deleted while it was updated", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 409, description = "The update is not allowed (as for `PUT /api/events/{eventId}`)", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 415, description = "Not `application/json`", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
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

/// `POST /internal/events/batch`: events to create or update together.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequest {
    /// The events, each with the id its caller derived from its own key.
    pub events: Vec<BatchItem>,
}

/// One event of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchItem {
    /// The event's id: created with it, or the event with it updated.
    pub event_id: Uuid,
    /// The event, as the body of `POST /api/events` (judged item by item).
    #[schema(value_type = CreateEventRequest)]
    pub event: serde_json::Value,
}

/// What a batch wrote.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// One result per event, in the request's order.
    pub results: Vec<BatchResult>,
}

/// What a batch did with one event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    /// The event.
    pub event_id: Uuid,
    /// Whether the batch created it (else it updated it, or found it as asked).
    pub created: bool,
}

/// One refused event of a `batch-refused` problem (its `rows` member).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRefusal {
    /// The event's index in the request, from 0.
    pub index: usize,
    /// Why it was refused: the problem `POST /api/events` or `PUT /api/events/{eventId}`
    /// would answer.
    #[schema(value_type = evently_core::problem::ProblemBody)]
    pub problem: serde_json::Value,
}

/// The slug of the problem refusing a batch because of some of its events.
pub const BATCH_REFUSED: &str = "batch-refused";

/// Create or update many events for the caller in one transaction: each as `PUT
/// /internal/events/{eventId}` would, and all of them or, when any is refused, none.
#[utoipa::path(post, path = "/internal/events/batch", tag = "internal", security(("bearer" = [])),
    params(("X-Internal-Token" = String, Header, description = "The internal service credential")),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "Every event written", body = BatchResponse),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No or wrong internal credential", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 409, description = "The events kept changing meanwhile; nothing was written", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 413, description = "The body exceeds the import's size cap", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 415, description = "Not `application/json`", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "A malformed batch, more events than an import's row cap, or `batch-refused`: nothing was written, and `rows` holds every refused event's index and problem", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn upsert_batch(
    State(state): State<EventsState>,
    _caller: InternalCaller,
    identity: Identity,
    Json(body): Json<BatchRequest>,
) -> Result<axum::Json<BatchResponse>, EventsError> {
    within_cap(&state, body.events.len())?;
    let mut items = Vec::with_capacity(body.events.len());
    let mut refused = Vec::new();
    for (index, item) in body.events.into_iter().enumerate() {
        match parts(&item.event) {
            Ok((draft, venue, status)) => items.push(UpsertItem {
                id: EventId(item.event_id),
                draft,
                venue,
                status,
            }),
            Err(problem) => refused.push((index, problem)),
        }
    }
    if !refused.is_empty() {
        return Err(batch_refused(refused).into());
    }
    let ids: Vec<Uuid> = items.iter().map(|i| i.id.0).collect();
    match state.service.upsert_events(&identity, items).await? {
        BatchOutcome::Written(created) => Ok(axum::Json(BatchResponse {
            results: ids
                .into_iter()
                .zip(created)
                .map(|(event_id, created)| BatchResult { event_id, created })
                .collect(),
        })),
        BatchOutcome::Refused(refused) => Err(batch_refused(
            refused
                .into_iter()
                .map(|(index, e)| (index, Problem::from(e)))
                .collect(),
        )
        .into()),
    }
}

/// Refuses a batch of more than an import's row cap of events.
fn within_cap(state: &EventsState, events: usize) -> Result<(), Problem> {
    if events > state.batch.max_events {
        return Err(Problem::invalid_field(
            "/events",
            format!("at most {} events per batch", state.batch.max_events),
        ));
    }
    Ok(())
}

/// An event body of a batch, parsed and checked as the body of `POST /api/events` is.
fn parts(event: &serde_json::Value) -> Result<(EventDraft, VenueChoice, EventStatus), Problem> {
    serde_json::to_vec(event)
        .map_err(|e| Problem::internal(e.into()))
        .and_then(|bytes| evently_core::extract::from_json_slice::<CreateEventRequest>(&bytes))
        .and_then(CreateEventRequest::into_parts)
}

/// `POST /internal/events/check-batch`: event bodies to check together.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckBatchRequest {
    /// The events, each as the body of `POST /api/events` (judged one by one).
    #[schema(value_type = Vec<CreateEventRequest>)]
    pub events: Vec<serde_json::Value>,
}

/// What a batch check found.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckBatchResponse {
    /// The events `POST /api/events` would refuse, by index, each with the problem it would
    /// answer; empty when it would accept every one.
    pub refused: Vec<BatchRefusal>,
}

/// Check many event bodies as `POST /api/events` would for the caller, creating nothing:
/// an import's rows in one call instead of one call per row.
#[utoipa::path(post, path = "/internal/events/check-batch", tag = "internal", security(("bearer" = [])),
    params(("X-Internal-Token" = String, Header, description = "The internal service credential")),
    request_body = CheckBatchRequest,
    responses(
        (status = 200, description = "Every event checked; `refused` lists those `POST /api/events` would refuse", body = CheckBatchResponse),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No or wrong internal credential", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 413, description = "The body exceeds the import's size cap", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 415, description = "Not `application/json`", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Not a list of events, or more events than an import's row cap", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn check_batch(
    State(state): State<EventsState>,
    _caller: InternalCaller,
    identity: Identity,
    Json(body): Json<CheckBatchRequest>,
) -> Result<axum::Json<CheckBatchResponse>, EventsError> {
    within_cap(&state, body.events.len())?;
    let mut refused = Vec::new();
    for (index, event) in body.events.iter().enumerate() {
        let checked = match parts(event) {
            Ok((draft, venue, status)) => state
                .service
                .check_event(&identity, &draft, venue, status)
                .await
                .map_err(Problem::from),
            Err(problem) => Err(problem),
        };
        match checked {
            Ok(()) => {}
            // The store failed: the whole check did, not this event.
            Err(problem) if problem.status().is_server_error() => return Err(problem.into()),
            Err(problem) => refused.push(BatchRefusal {
                index,
                problem: problem.body(),
            }),
        }
    }
    Ok(axum::Json(CheckBatchResponse { refused }))
}

/// The problem refusing a batch for the events `refused` (by index).
fn batch_refused(refused: Vec<(usize, Problem)>) -> Problem {
    let rows: Vec<BatchRefusal> = refused
        .iter()
        .map(|(index, problem)| BatchRefusal {
            index: *index,
            problem: problem.body(),
        })
        .collect();
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        BATCH_REFUSED,
        "Batch refused",
    )
    .detail(format!(
        "{} of the events were refused; none was written",
        refused.len()
    ))
    .extension("rows", serde_json::to_value(rows).unwrap_or_default())
}
