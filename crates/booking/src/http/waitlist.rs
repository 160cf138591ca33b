//! `/api/events/{eventId}/waitlist`: join a sold-out event's waitlist, read the caller's place
//! on it, and leave it.

use axum::extract::State;
use axum::http::StatusCode;
use evently_core::extract::{Json, Path};
use evently_core::identity::Identity;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::BookingState;
use crate::domain::WaitlistEntry;
use crate::error::BookingError;

/// `POST /api/events/{eventId}/waitlist`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitlistRequest {
    /// Seats wanted (1 to `booking.max_seats_per_order`, 10 by default).
    #[serde(deserialize_with = "evently_core::extract::int")]
    #[schema(minimum = 1, maximum = 10)]
    pub quantity: i64,
}

/// Joins a sold-out event's waitlist (or returns the caller's place on it). When seats come
/// back, the head of the list is offered them as a hold in their name, with its own expiry
/// (`booking.waitlist_offer_seconds`); an unclaimed offer passes to the next in line.
#[utoipa::path(post, path = "/api/events/{eventId}/waitlist", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")), request_body = WaitlistRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = WaitlistEntry),
        (status = 404, description = "Unknown event", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Seats are available, or not on sale", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Bad quantity", body = evently_core::problem::ProblemBody),
    ))]
pub async fn join_waitlist(
    State(state): State<BookingState>,
    caller: Identity,
    Path(event_id): Path<Uuid>,
    Json(body): Json<WaitlistRequest>,
) -> Result<(StatusCode, axum::Json<WaitlistEntry>), BookingError> {
    let entry = state
        .service
        .join_waitlist(&caller, event_id, body.quantity)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(entry)))
}

/// The caller's place on the waitlist (or their offer).
#[utoipa::path(get, path = "/api/events/{eventId}/waitlist", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")), security(("bearer" = [])),
    responses(
        (status = 200, body = WaitlistEntry),
        (status = 404, description = "Not on this waitlist", body = evently_core::problem::ProblemBody),
    ))]
pub async fn waitlist_position(
    State(state): State<BookingState>,
    caller: Identity,
    Path(event_id): Path<Uuid>,
) -> Result<axum::Json<WaitlistEntry>, BookingError> {
    Ok(axum::Json(
        state.service.waitlist_entry(&caller, event_id).await?,
    ))
}

/// Leaves the waitlist (releasing an offer the caller holds).
#[utoipa::path(delete, path = "/api/events/{eventId}/waitlist", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Left"),
        (status = 404, description = "Not on this waitlist", body = evently_core::problem::ProblemBody),
    ))]
pub async fn leave_waitlist(
    State(state): State<BookingState>,
    caller: Identity,
    Path(event_id): Path<Uuid>,
) -> Result<StatusCode, BookingError> {
    state.service.leave_waitlist(&caller, event_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
