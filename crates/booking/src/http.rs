//! Booking routes and handlers: seat maps, holds, payments, purchase, orders, the waitlist
//! and availability (with its live stream).

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use evently_core::Problem;
use evently_core::extract::{Json, OptionalJson, Path, Query};
use evently_core::identity::{Identity, JwtKeys};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{
    AvailabilityView, Hold, HoldId, HoldStatus, Order, OrderId, PaymentIntentId, SeatView,
    WaitlistEntry, rfc3339, sha256_hex,
};
use crate::error::BookingError;
use crate::service::{BookingService, PurchaseAnswer};

/// What every booking handler can reach.
#[derive(Clone)]
pub struct BookingState {
    /// The operations.
    pub service: Arc<BookingService>,
    /// Token keys (the `Identity` extractor finds them here).
    pub keys: Arc<JwtKeys>,
}

impl FromRef<BookingState> for Arc<JwtKeys> {
    fn from_ref(state: &BookingState) -> Self {
        state.keys.clone()
    }
}

/// The booking router.
pub fn router(state: BookingState) -> Router {
    Router::new()
        .route("/api/orders/seats/{event_id}", get(seat_map))
        .route("/api/orders/holds", post(create_hold))
        .route(
            "/api/orders/holds/{hold_id}",
            get(get_hold).delete(release_hold),
        )
        .route("/api/orders/holds/{hold_id}/ttl", get(hold_ttl))
        .route("/api/orders/holds/{hold_id}/refresh", post(refresh_hold))
        .route("/api/orders/payments/intent", post(create_intent))
        .route("/api/orders/payments/confirm", post(confirm_intent))
        .route("/api/orders/purchase", post(purchase))
        .route("/api/orders/orders", get(list_orders))
        .route("/api/orders/{order_id}", get(get_order))
        .route("/api/orders/{order_id}/cancel", post(cancel_order))
        .route("/api/events/{event_id}/availability", get(availability))
        .route(
            "/api/events/{event_id}/availability/stream",
            get(availability_stream),
        )
        .route(
            "/api/events/{event_id}/waitlist",
            post(join_waitlist)
                .get(waitlist_position)
                .delete(leave_waitlist),
        )
        .with_state(state)
}

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

/// `POST /api/orders/holds`: `seatIds`, or `quantity` (with an optional `section`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HoldRequest {
    /// The event.
    pub event_id: Uuid,
    /// These seats, all or nothing (1 to `booking.max_seats_per_order`, no duplicates).
    #[serde(default)]
    #[schema(example = json!(["A-3-12", "A-3-13"]))]
    pub seat_ids: Option<Vec<String>>,
    /// Or this many: general admission, or the best available (adjacent in one row where
    /// possible).
    #[serde(default)]
    pub quantity: Option<i64>,
    /// With `quantity`: only this section.
    #[serde(default)]
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
        (status = 409, description = "Seats unavailable (`conflicts` lists them), sold out, not on sale, or ticket limit", body = evently_core::problem::ProblemBody),
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

/// The caller's hold.
#[utoipa::path(get, path = "/api/orders/holds/{holdId}", tag = "booking",
    params(("holdId" = Uuid, Path, description = "The hold")), security(("bearer" = [])),
    responses(
        (status = 200, body = HoldView),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_hold(
    State(state): State<BookingState>,
    caller: Identity,
    Path(hold_id): Path<HoldId>,
) -> Result<axum::Json<HoldView>, BookingError> {
    let hold = state.service.get_hold(&caller, hold_id).await?;
    Ok(axum::Json(HoldView::new(hold, state.service.now())))
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
    ))]
pub async fn hold_ttl(
    State(state): State<BookingState>,
    caller: Identity,
    Path(hold_id): Path<HoldId>,
) -> Result<axum::Json<HoldTtl>, BookingError> {
    let hold = state.service.get_hold(&caller, hold_id).await?;
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
pub struct RefreshRequest {
    /// Seconds from now (default the hold TTL; capped by `booking.max_extend_seconds` and the
    /// hold's total lifetime `booking.max_hold_lifetime_seconds`).
    #[serde(default)]
    pub extend_seconds: Option<i64>,
}

/// Extends the caller's live hold (capped; never shortened).
#[utoipa::path(post, path = "/api/orders/holds/{holdId}/refresh", tag = "booking",
    params(("holdId" = Uuid, Path, description = "The hold")), request_body = Option<RefreshRequest>,
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
    OptionalJson(body): OptionalJson<RefreshRequest>,
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

/// `POST /api/orders/payments/intent`. The amount is computed from the hold; `amount` and
/// `currency` sent by older clients are accepted and ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntentRequest {
    /// The hold to pay for.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// Ignored: the server computes the amount.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub amount: Option<serde_json::Value>,
    /// Ignored: the event's currency is used.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub currency: Option<serde_json::Value>,
}

/// A payment intent (simulated).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntentView {
    /// Its id.
    #[schema(value_type = Uuid)]
    pub payment_intent_id: PaymentIntentId,
    /// The secret to confirm it with (only in the creation answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The hold it pays for.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// Minor units: the sum of the held seats' prices.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// `requires_confirmation`, `succeeded`, `declined`, `cancelled` or `refunded`.
    pub status: String,
}

/// Creates a payment intent for the caller's live hold.
#[utoipa::path(post, path = "/api/orders/payments/intent", tag = "booking", request_body = IntentRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = IntentView),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Hold expired or purchased", body = evently_core::problem::ProblemBody),
    ))]
pub async fn create_intent(
    State(state): State<BookingState>,
    caller: Identity,
    Json(body): Json<IntentRequest>,
) -> Result<(StatusCode, axum::Json<IntentView>), BookingError> {
    let (intent, secret) = state.service.create_intent(&caller, body.hold_id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(IntentView {
            payment_intent_id: intent.id,
            client_secret: Some(secret),
            hold_id: intent.hold_id,
            amount: intent.amount,
            currency: intent.currency,
            status: intent.status.as_str().to_owned(),
        }),
    ))
}

/// `POST /api/orders/payments/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The intent.
    #[schema(value_type = Uuid)]
    pub payment_intent_id: PaymentIntentId,
    /// Its client secret.
    pub client_secret: String,
    /// Test card: `pm_card_visa` (default, succeeds), `pm_card_declined` (402, the intent is
    /// declined), `pm_card_processing_error` (503, nothing changes; confirm again).
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// Confirms the caller's payment intent (simulated processor). Confirming a succeeded
/// intent again answers the same.
#[utoipa::path(post, path = "/api/orders/payments/confirm", tag = "booking", request_body = ConfirmRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = IntentView),
        (status = 402, description = "Declined (test card pm_card_declined)", body = evently_core::problem::ProblemBody),
        (status = 404, description = "No such intent of the caller's", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Hold expired, or the intent is not confirmable", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Wrong client secret or unknown payment method", body = evently_core::problem::ProblemBody),
        (status = 503, description = "Processor error (test card pm_card_processing_error)", body = evently_core::problem::ProblemBody),
    ))]
pub async fn confirm_intent(
    State(state): State<BookingState>,
    caller: Identity,
    Json(body): Json<ConfirmRequest>,
) -> Result<axum::Json<IntentView>, BookingError> {
    let intent = state
        .service
        .confirm(
            &caller,
            body.payment_intent_id,
            &body.client_secret,
            body.payment_method.as_deref(),
        )
        .await?;
    Ok(axum::Json(IntentView {
        payment_intent_id: intent.id,
        client_secret: None,
        hold_id: intent.hold_id,
        amount: intent.amount,
        currency: intent.currency,
        status: intent.status.as_str().to_owned(),
    }))
}

/// `POST /api/orders/purchase` (with an `Idempotency-Key` header).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurchaseRequest {
    /// The event.
    pub event_id: Uuid,
    /// The caller's live hold.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// Exactly the hold's seats.
    pub seat_ids: Vec<String>,
    /// A succeeded payment intent for this hold.
    #[schema(value_type = Uuid)]
    pub payment_intent_id: PaymentIntentId,
}

/// The `Idempotency-Key` of a request: required, one header, 1 to 255 visible ASCII
/// characters.
///
/// # Errors
/// 400 otherwise.
pub fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Err(Problem::bad_request("idempotency-key-required")
            .detail("this request needs an Idempotency-Key header (e.g. a UUID)"));
    };
    if values.next().is_some() {
        return Err(Problem::bad_request("idempotency-key-invalid")
            .detail("send exactly one Idempotency-Key header"));
    }
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
        .ok_or_else(|| {
            Problem::bad_request("idempotency-key-invalid")
                .detail("the Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    Ok(key.to_owned())
}

/// Buys the caller's live, paid hold: the order, its tickets and the seats' sold state
/// commit together. Exactly once per `Idempotency-Key` (scoped to the caller and this
/// route, kept 24 h): the same key and body replay the first answer byte for byte
/// (`Idempotent-Replayed: true`); another body is 422; while the first request runs, 409 with
/// `Retry-After`. 409, 429 and 5xx answers are not stored.
#[utoipa::path(post, path = "/api/orders/purchase", tag = "booking", request_body = PurchaseRequest,
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Order),
        (status = 400, description = "Missing or malformed Idempotency-Key", body = evently_core::problem::ProblemBody),
        (status = 404, description = "No such hold or intent of the caller's", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Hold expired or purchased, payment not completed, or the key's first request still running", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Seats or intent do not match the hold, or the key was used with another body", body = evently_core::problem::ProblemBody),
    ))]
pub async fn purchase(
    State(state): State<BookingState>,
    caller: Identity,
    headers: HeaderMap,
    Json(body): Json<PurchaseRequest>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let fingerprint = sha256_hex(
        serde_json::to_string(&body)
            .map_err(|e| Problem::internal(e.into()))?
            .as_bytes(),
    );
    let answer = state
        .service
        .purchase(
            &caller,
            key,
            fingerprint,
            body.event_id,
            body.hold_id,
            body.seat_ids,
            body.payment_intent_id,
        )
        .await?;
    Ok(match answer {
        PurchaseAnswer::Created(body) => json_response(StatusCode::CREATED, body, false),
        PurchaseAnswer::Replayed { status, body } => json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
            true,
        ),
    })
}

fn json_response(status: StatusCode, body: String, replayed: bool) -> Response {
    let content_type = if status.is_success() {
        "application/json"
    } else {
        evently_core::problem::PROBLEM_JSON
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// `?page=&size=`
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page number, from 0.
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    pub size: Option<u32>,
}

/// Where a page sits in a listing.
#[derive(Debug, Serialize, ToSchema)]
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

/// `GET /api/orders/orders`
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    /// The caller's orders, newest first.
    pub orders: Vec<Order>,
    /// The page.
    pub page: PageInfo,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/orders/orders", tag = "booking", params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = OrderList),
        (status = 422, description = "Bad page size", body = evently_core::problem::ProblemBody),
    ))]
pub async fn list_orders(
    State(state): State<BookingState>,
    caller: Identity,
    Query(query): Query<PageQuery>,
) -> Result<axum::Json<OrderList>, BookingError> {
    let size = query.size.unwrap_or(20);
    if !(1..=100).contains(&size) {
        return Err(Problem::invalid_field("size", "must be 1 to 100").into());
    }
    let number = query.page.unwrap_or(0);
    if number > 1_000_000 {
        return Err(Problem::invalid_field("page", "must be at most 1000000").into());
    }
    let (orders, total) = state.service.orders(&caller, number, size).await?;
    Ok(axum::Json(OrderList {
        orders,
        page: PageInfo {
            number,
            size,
            total_elements: total,
            total_pages: total.div_ceil(u64::from(size)),
        },
    }))
}

/// An order: visible to its buyer, the event's organizer and admins.
#[utoipa::path(get, path = "/api/orders/{orderId}", tag = "booking",
    params(("orderId" = Uuid, Path, description = "The order")), security(("bearer" = [])),
    responses(
        (status = 200, body = Order),
        (status = 404, description = "No such order visible to the caller", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_order(
    State(state): State<BookingState>,
    caller: Identity,
    Path(order_id): Path<OrderId>,
) -> Result<axum::Json<Order>, BookingError> {
    Ok(axum::Json(state.service.order(&caller, order_id).await?))
}

/// Cancels an order (its buyer, the event's organizer, or an admin): the payment is refunded
/// (simulated) and the seats go back on sale.
#[utoipa::path(post, path = "/api/orders/{orderId}/cancel", tag = "booking",
    params(("orderId" = Uuid, Path, description = "The order")), security(("bearer" = [])),
    responses(
        (status = 200, body = Order),
        (status = 404, description = "No such order visible to the caller", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Already cancelled", body = evently_core::problem::ProblemBody),
    ))]
pub async fn cancel_order(
    State(state): State<BookingState>,
    caller: Identity,
    Path(order_id): Path<OrderId>,
) -> Result<axum::Json<Order>, BookingError> {
    Ok(axum::Json(state.service.cancel(&caller, order_id).await?))
}

/// Exact availability of an event, from booking (the source of truth).
#[utoipa::path(get, path = "/api/events/{eventId}/availability", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, body = AvailabilityView),
        (status = 404, description = "Unknown event", body = evently_core::problem::ProblemBody),
    ))]
pub async fn availability(
    State(state): State<BookingState>,
    Path(event_id): Path<Uuid>,
) -> Result<axum::Json<AvailabilityView>, BookingError> {
    Ok(axum::Json(state.service.availability(event_id).await?))
}

/// Availability as a live stream (Server-Sent Events, `event: availability`, data as in
/// `GET …/availability`): the current figures first, then each change within a second,
/// coalesced to at most one message per `booking.stream_interval_ms`.
#[utoipa::path(get, path = "/api/events/{eventId}/availability/stream", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, description = "`text/event-stream` of AvailabilityView messages", content_type = "text/event-stream", body = AvailabilityView),
        (status = 404, description = "Unknown event", body = evently_core::problem::ProblemBody),
    ))]
pub async fn availability_stream(
    State(state): State<BookingState>,
    Path(event_id): Path<Uuid>,
) -> Result<Response, BookingError> {
    let service = state.service.clone();
    let first = service.availability(event_id).await?;
    let changes = service.changes().subscribe(event_id);
    let interval = Duration::from_millis(service.config().stream_interval_ms);
    struct Feed {
        service: Arc<BookingService>,
        changes: tokio::sync::watch::Receiver<u64>,
        last: Option<AvailabilityView>,
        pending: Option<AvailabilityView>,
    }
    let feed = Feed {
        service,
        changes,
        last: None,
        pending: Some(first),
    };
    let stream = futures_util::stream::unfold(feed, move |mut feed| async move {
        loop {
            if let Some(view) = feed.pending.take() {
                let event = SseEvent::default()
                    .event("availability")
                    .json_data(&view)
                    .unwrap_or_else(|_| SseEvent::default().comment("unserialisable"));
                feed.last = Some(view);
                return Some((Ok::<_, Infallible>(event), feed));
            }
            // Wake on a change in this process, or each second (changes made by other
            // processes, and holds that expire by time alone).
            tokio::select! {
                changed = feed.changes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            tokio::time::sleep(interval).await;
            feed.changes.mark_unchanged();
            let event_id = feed.last.as_ref().map(|v| v.event_id)?;
            match feed.service.availability(event_id).await {
                Ok(view) if Some(&view) != feed.last.as_ref() => feed.pending = Some(view),
                Ok(_) => {}
                // The event is gone: end the stream.
                Err(BookingError::EventNotFound) => return None,
                Err(e) => tracing::warn!(error = %e, "availability stream read failed"),
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// `POST /api/events/{eventId}/waitlist`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitlistRequest {
    /// Seats wanted (1 to `booking.max_seats_per_order`).
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
