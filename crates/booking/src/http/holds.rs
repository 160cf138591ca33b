//! `/api/orders/holds`: take, read, refresh and release the caller's holds on seats.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use evently_core::extract::{Json, OptionalJson, Path, is_json_content_type};
use evently_core::http::EarlyAnswer;
use evently_core::identity::Identity;
use evently_core::problem::Problem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::BookingState;
use crate::domain::{Hold, HoldId, HoldStatus, Selection, rfc3339};
use crate::error::BookingError;
use crate::service::BookingService;
use crate::sold_out::SoldOutBoard;
use std::sync::Arc;

/// Where holds are taken.
pub const HOLDS_PATH: &str = "/api/orders/holds";

/// `POST /api/orders/holds`: `seatIds`, or `quantity` (with an optional `section`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoldRequest {
    /// The event.
    pub event_id: Uuid,
    /// These seats, all or nothing (1 to `booking.max_seats_per_order`, no duplicates).
    #[serde(default)]
    #[schema(example = json!(["A-3-12", "A-3-13"]), min_items = 1, max_items = 10)]
    pub seat_ids: Option<Vec<String>>,
    /// Or this many: general admission, or the best available (adjacent in one row where
    /// possible).
    #[serde(default, deserialize_with = "evently_core::extract::opt_int")]
    #[schema(minimum = 1, maximum = 10)]
    pub quantity: Option<i64>,
    /// With `quantity`: only this section.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_]{1,20}$")]
    pub section: Option<String>,
}

/// A hold.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldView {
    /// Its id.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// The event.
    pub event_id: Uuid,
    /// The held seats.
    pub seat_ids: Vec<String>,
    /// `active`, `released`, `expired`, `purchased` or `cancelled`.
    pub status: String,
    /// `buyer`, or `waitlist` for an offer made to a waiting buyer.
    pub kind: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Seconds until then (0 once past).
    pub expires_in_seconds: i64,
}

fn seconds_left(expires_at: i64, now: i64) -> i64 {
    (expires_at - now).max(0).div_euclid(1000)
}

impl HoldView {
    fn new(hold: Hold, now: i64) -> Self {
        Self {
            hold_id: hold.id,
            event_id: hold.event_id,
            status: hold.status_at(now).as_str().to_owned(),
            seat_ids: hold.seat_ids,
            kind: hold.kind.as_str().to_owned(),
            expires_at: rfc3339(hold.expires_at),
            expires_in_seconds: seconds_left(hold.expires_at, now),
        }
    }
}

/// Holds seats for the caller, all or nothing. A new hold replaces the caller's earlier
/// live hold on the event (whose seats it may take again).
#[utoipa::path(post, path = "/api/orders/holds", tag = "booking", request_body = HoldRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = HoldView),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 404, description = "Unknown event", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Seats unavailable (`conflicts` lists them), sold out, not on sale, or ticket limit. A best-available hold on a fully sold event may be refused as sold out before its token is checked (embedded SQLite), so even with an invalid token", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Invalid selection or unknown seats", body = evently_core::problem::ProblemBody),
    ))]
pub async fn create_hold(
    State(state): State<BookingState>,
    caller: Identity,
    Json(body): Json<HoldRequest>,
) -> Result<(StatusCode, axum::Json<HoldView>), BookingError> {
    let selection = state
        .service
        .selection(body.seat_ids, body.quantity, body.section)?;
    let hold = state
        .service
        .hold(&caller, body.event_id, selection)
        .await?;
    let now = state.service.now();
    Ok((StatusCode::CREATED, axum::Json(HoldView::new(hold, now))))
}

/// Refuses a best-available hold on a fully sold event before the gateway of this process
/// checks its caller ([`crate::sold_out`]): the answer the store's early refusal gives every
/// buyer of such an event, 409 `sold-out` with `available: 0`. A request it is not certain
/// of (not JSON, not a valid hold, named seats or a section, a quantity above the event's
/// limit, an event not known to be fully sold) takes the usual path.
pub struct SoldOutRefusals {
    service: Arc<BookingService>,
    board: Arc<SoldOutBoard>,
}

impl SoldOutRefusals {
    /// Refusals from `service`'s board, where its store keeps one (embedded SQLite).
    #[must_use]
    pub fn new(service: Arc<BookingService>) -> Option<Self> {
        let board = service.store().sold_out_board()?;
        Some(Self { service, board })
    }
}

#[async_trait::async_trait]
impl EarlyAnswer for SoldOutRefusals {
    fn wants(&self, method: &Method, path: &str) -> bool {
        self.board.any() && method == Method::POST && path == HOLDS_PATH
    }

    async fn answer(&self, head: &axum::http::request::Parts, body: &[u8]) -> Option<Response> {
        if !is_json_content_type(&head.headers) {
            return None;
        }
        let request: HoldRequest = serde_json::from_slice(body).ok()?;
        if !self.board.is_fully_sold(request.event_id) {
            return None;
        }
        let selection = self
            .service
            .selection(request.seat_ids, request.quantity, request.section)
            .ok()?;
        let Selection::Best {
            quantity,
            section: None,
        } = selection
        else {
            return None;
        };
        let limits = self.service.limits(request.event_id).await.ok()?;
        if quantity > limits.max_seats_per_order {
            return None;
        }
        metrics::counter!("evently_booking_hold_refusals_total").increment(1);
        Some(BookingError::SoldOut { available: 0 }.into_response())
    }
}

/// The caller's hold.
#[utoipa::path(get, path = "/api/orders/holds/{holdId}", tag = "booking",
    params(("holdId" = Uuid, Path, description = "The hold")), security(("bearer" = [])),
    responses(
        (status = 200, body = HoldView),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
        (status = 410, description = "The caller released the hold, or replaced it with a newer one", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_hold(
    State(state): State<BookingState>,
    caller: Identity,
    Path(hold_id): Path<HoldId>,
) -> Result<axum::Json<HoldView>, BookingError> {
    let hold = not_released(state.service.get_hold(&caller, hold_id).await?)?;
    Ok(axum::Json(HoldView::new(hold, state.service.now())))
}

/// A hold its buyer released (`DELETE`, or a newer hold of theirs that replaced it) is gone:
/// reading it answers 410 Gone, as for any deleted resource. Expired and purchased holds stay
/// readable, so a client learns what became of its hold.
fn not_released(hold: Hold) -> Result<Hold, BookingError> {
    if hold.status == HoldStatus::Released {
        return Err(
            Problem::new(StatusCode::GONE, "hold-released", "Hold released")
                .detail("the hold was released by its buyer, or replaced by their newer hold")
                .into(),
        );
    }
    Ok(hold)
}

/// `GET /api/orders/holds/{holdId}/ttl`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldTtl {
    /// The hold.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// Seconds left (0 once expired or ended).
    pub ttl: i64,
    /// The hold's status.
    pub status: String,
}

/// Seconds left on the caller's hold.
#[utoipa::path(get, path = "/api/orders/holds/{holdId}/ttl", tag = "booking",
    params(("holdId" = Uuid, Path, description = "The hold")), security(("bearer" = [])),
    responses(
        (status = 200, body = HoldTtl),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
        (status = 410, description = "The caller released the hold, or replaced it with a newer one", body = evently_core::problem::ProblemBody),
    ))]
pub async fn hold_ttl(
    State(state): State<BookingState>,
    caller: Identity,
    Path(hold_id): Path<HoldId>,
) -> Result<axum::Json<HoldTtl>, BookingError> {
    let hold = not_released(state.service.get_hold(&caller, hold_id).await?)?;
    let now = state.service.now();
    let live = hold.status_at(now) == HoldStatus::Active;
    let view = HoldView::new(hold, now);
    let ttl = if live { view.expires_in_seconds } else { 0 };
    Ok(axum::Json(HoldTtl {
        hold_id,
        ttl,
        status: view.status,
    }))
}

/// `POST /api/orders/holds/{holdId}/refresh` (body optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoldRefreshRequest {
    /// Seconds from now (default the hold TTL; capped by `booking.max_extend_seconds` and the
    /// hold's total lifetime `booking.max_hold_lifetime_seconds`).
    #[serde(default, deserialize_with = "evently_core::extract::opt_int")]
    #[schema(minimum = 1, maximum = 86400)]
    pub extend_seconds: Option<i64>,
}

/// Extends the caller's live hold (capped; never shortened).
#[utoipa::path(post, path = "/api/orders/holds/{holdId}/refresh", tag = "booking",
    params(("holdId" = Uuid, Path, description = "The hold")), request_body = Option<HoldRefreshRequest>,
    security(("bearer" = [])),
    responses(
        (status = 200, body = HoldTtl),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Expired, released or purchased", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Bad extension", body = evently_core::problem::ProblemBody),
    ))]
pub async fn refresh_hold(
    State(state): State<BookingState>,
    caller: Identity,
    Path(hold_id): Path<HoldId>,
    OptionalJson(body): OptionalJson<HoldRefreshRequest>,
) -> Result<axum::Json<HoldTtl>, BookingError> {
    let extend = body.unwrap_or_default().extend_seconds;
    let hold = state.service.refresh(&caller, hold_id, extend).await?;
    let now = state.service.now();
    Ok(axum::Json(HoldTtl {
        hold_id,
        ttl: seconds_left(hold.expires_at, now),
        status: hold.status.as_str().to_owned(),
    }))
}

/// Releases the caller's hold: its seats go back on sale.
#[utoipa::path(delete, path = "/api/orders/holds/{holdId}", tag = "booking",
    params(("holdId" = Uuid, Path, description = "The hold")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Released (or already ended)"),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Already purchased", body = evently_core::problem::ProblemBody),
    ))]
pub async fn release_hold(
    State(state): State<BookingState>,
    caller: Identity,
    Path(hold_id): Path<HoldId>,
) -> Result<StatusCode, BookingError> {
    state.service.release(&caller, hold_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
