//! `/api/orders/seats/{eventId}`: the seat map of an event (public).

use axum::extract::State;
use evently_core::extract::Path;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::BookingState;
use crate::domain::SeatView;
use crate::error::BookingError;

/// `GET /api/orders/seats/{eventId}`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatMap {
    /// The event.
    pub event_id: Uuid,
    /// Every seat (or general-admission place), in layout order.
    pub seats: Vec<SeatView>,
}

/// The seat map of an event: each seat's price and whether it is available, held or
/// reserved (sold).
#[utoipa::path(get, path = "/api/orders/seats/{eventId}", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, body = SeatMap),
        (status = 404, description = "Unknown event", body = evently_core::problem::ProblemBody),
    ))]
pub async fn seat_map(
    State(state): State<BookingState>,
    Path(event_id): Path<Uuid>,
) -> Result<axum::Json<SeatMap>, BookingError> {
    let seats = state.service.seat_map(event_id).await?;
    Ok(axum::Json(SeatMap { event_id, seats }))
}
