//! `/internal/booking/*`: what other evently services (the data service's orders exports) ask
//! of booking across processes, behind the internal credential and for the caller whose access
//! token they forward. The gateway never forwards these; without the credential they answer
//! 404.

use axum::extract::State;
use evently_core::extract::{Path, Query};
use evently_core::identity::{Identity, InternalCaller};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::BookingState;
use crate::domain::{Order, OrderId};
use crate::error::BookingError;

const PROBLEM: &str = "application/problem+json";

/// `GET /internal/booking/events/{eventId}/orders` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventOrdersQuery {
    /// Only orders whose id is above this one (the last id of the previous page).
    pub after: Option<Uuid>,
    /// Most orders answered, 1 to 10,000 (clamped).
    #[param(minimum = 1, maximum = 10_000)]
    pub limit: Option<u32>,
}

/// One page of an event's orders with their tickets, by order id (keyset pagination), for its
/// organizer or an admin.
#[utoipa::path(get, path = "/internal/booking/events/{eventId}/orders", tag = "internal", security(("bearer" = [])),
    params(("eventId" = Uuid, Path, description = "The event's id"),
           ("X-Internal-Token" = String, Header, description = "The internal service credential"),
           EventOrdersQuery),
    responses(
        (status = 200, description = "The page, by order id", body = Vec<Order>),
        (status = 400, description = "Malformed event id or parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event, not the caller's, or no internal credential", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn event_orders(
    State(state): State<BookingState>,
    _caller: InternalCaller,
    identity: Identity,
    Path(event_id): Path<Uuid>,
    Query(query): Query<EventOrdersQuery>,
) -> Result<axum::Json<Vec<Order>>, BookingError> {
    let orders = state
        .service
        .event_orders(
            &identity,
            event_id,
            query.after.map(OrderId),
            query.limit.unwrap_or(500),
        )
        .await?;
    Ok(axum::Json(orders))
}
