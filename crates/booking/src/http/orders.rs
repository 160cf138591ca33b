//! `/api/orders/*` orders: the idempotent purchase of a paid hold, the caller's orders, one
//! order, and cancelling it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evently_core::Problem;
use evently_core::extract::{Json, Path, Query};
use evently_core::identity::Identity;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::BookingState;
use crate::domain::{
    HoldId, IdempotencyKey, Order, OrderId, Payment, PaymentIntentId, Purchase, sha256_hex,
};
use crate::error::BookingError;
use crate::http::payments::PaymentMethod;
use crate::idempotency::Answer;
use crate::service::{CHECKOUT_ROUTE, PURCHASE_ROUTE, card};

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
    #[schema(min_items = 1, max_items = 10)]
    pub seat_ids: Vec<String>,
    /// A succeeded payment intent for this hold.
    #[schema(value_type = Uuid)]
    pub payment_intent_id: PaymentIntentId,
}

impl PurchaseRequest {
    /// The purchase this request asks for on behalf of `caller`, under the client's `key`
    /// (scoped to the caller and [`PURCHASE_ROUTE`]), with a new order id.
    fn into_purchase(self, caller: &Identity, key: String) -> Purchase {
        Purchase {
            order_id: OrderId::new(),
            user_id: caller.user_id.0,
            event_id: self.event_id,
            hold_id: self.hold_id,
            seat_ids: self.seat_ids,
            intent_id: self.payment_intent_id,
            payment: Payment::Confirmed,
            key: IdempotencyKey {
                user_id: caller.user_id.0,
                route: PURCHASE_ROUTE.into(),
                key,
            },
        }
    }
}

/// `POST /api/orders/checkout` (with an `Idempotency-Key` header).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The event.
    pub event_id: Uuid,
    /// The caller's live hold.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// Exactly the hold's seats.
    #[schema(min_items = 1, max_items = 10)]
    pub seat_ids: Vec<String>,
    /// Test card: `pm_card_visa` (default, succeeds), `pm_card_declined` (402; nothing is
    /// bought, the hold stays), `pm_card_processing_error` (503; nothing changes, retry with
    /// the same key). A hold paid before is bought with that payment and no card is charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PaymentMethod>)]
    pub payment_method: Option<String>,
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
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID",
        pattern = "^[\\x21-\\x7e]{1,255}$")),
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
    let fingerprint = fingerprint(&body)?;
    let purchase = body.into_purchase(&caller, key);
    answer(state.service.purchase(purchase, fingerprint).await?)
}

/// Pays for and buys the caller's live hold in one step: a payment intent for the hold's
/// price is charged to the test card, and it, the order, its tickets and the seats' sold state
/// commit together (the three-step flow of intent, confirm and purchase in one request and
/// one transaction). A hold paid before is bought with that payment. Exactly once per
/// `Idempotency-Key` (scoped to the caller and this route, kept 24 h), as for
/// `POST /api/orders/purchase`: the same key and body replay the first answer (a decline
/// included: retry another card with a new key); another body is 422; while the first
/// request runs, 409 with `Retry-After`. 409, 429 and 5xx answers are not stored.
#[utoipa::path(post, path = "/api/orders/checkout", tag = "booking", request_body = CheckoutRequest,
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, e.g. a UUID",
        pattern = "^[\\x21-\\x7e]{1,255}$")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Order),
        (status = 400, description = "Missing or malformed Idempotency-Key", body = evently_core::problem::ProblemBody),
        (status = 402, description = "Declined (test card pm_card_declined); nothing is bought", body = evently_core::problem::ProblemBody),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Hold expired or purchased, event cancelled, or the key's first request still running", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Seats do not match the hold, unknown payment method, or the key was used with another body", body = evently_core::problem::ProblemBody),
        (status = 503, description = "Processor error (test card pm_card_processing_error); nothing changed", body = evently_core::problem::ProblemBody),
    ))]
pub async fn checkout(
    State(state): State<BookingState>,
    caller: Identity,
    headers: HeaderMap,
    Json(body): Json<CheckoutRequest>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
    let card = card(body.payment_method.as_deref())?;
    let fingerprint = fingerprint(&body)?;
    let purchase = Purchase {
        order_id: OrderId::new(),
        user_id: caller.user_id.0,
        event_id: body.event_id,
        hold_id: body.hold_id,
        seat_ids: body.seat_ids,
        // Time-ordered like hold ids.
        intent_id: PaymentIntentId::new(),
        payment: Payment::AtCheckout(card),
        key: IdempotencyKey {
            user_id: caller.user_id.0,
            route: CHECKOUT_ROUTE.into(),
            key,
        },
    };
    answer(state.service.purchase(purchase, fingerprint).await?)
}

/// The SHA-256 of a request body as it was understood, which a key's later requests must
/// match.
fn fingerprint(body: &impl Serialize) -> Result<String, Problem> {
    let text = serde_json::to_string(body).map_err(|e| Problem::internal(e.into()))?;
    Ok(sha256_hex(text.as_bytes()))
}

/// The response to a purchase's answer: 201 when made now, else the stored answer replayed.
fn answer(answer: Answer<String>) -> Result<Response, Problem> {
    Ok(match answer {
        Answer::Fresh(body) => json_response(StatusCode::CREATED, body, false),
        Answer::Replayed { status, body } => json_response(
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
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 0.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
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

#[cfg(test)]
mod parser_properties {
    use super::{PurchaseRequest, idempotency_key};
    use crate::domain::{Selection, is_seat_id};
    use crate::http::holds::{HoldRefreshRequest, HoldRequest};
    use crate::http::payments::{ConfirmRequest, IntentRequest};
    use crate::http::waitlist::WaitlistRequest;
    use axum::http::{HeaderMap, HeaderValue};
    use evently_core::extract::from_json_slice;
    use proptest::prelude::*;

    fn refused_as_400_or_422<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
        from_json_slice::<T>(bytes)
            .err()
            .is_none_or(|p| matches!(p.status().as_u16(), 400 | 422))
    }

    proptest! {
        // A fixed budget, so `cargo test` stays quick; the fuzz targets run longer.
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any bytes as a booking body are the DTO, a 400 or a 422; never a panic.
        #[test]
        fn any_booking_body_is_a_dto_or_a_400_or_422(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            prop_assert!(refused_as_400_or_422::<HoldRequest>(&bytes));
            prop_assert!(refused_as_400_or_422::<Option<HoldRefreshRequest>>(&bytes));
            prop_assert!(refused_as_400_or_422::<PurchaseRequest>(&bytes));
            prop_assert!(refused_as_400_or_422::<IntentRequest>(&bytes));
            prop_assert!(refused_as_400_or_422::<ConfirmRequest>(&bytes));
            prop_assert!(refused_as_400_or_422::<WaitlistRequest>(&bytes));
        }

        /// A list of seat ids is a selection exactly when it holds 1 to the limit distinct
        /// seat ids, and then the same list; otherwise a 422 naming a field.
        #[test]
        fn seat_lists_are_selections_exactly_by_the_rule(
            seats in proptest::collection::vec("[A-C]-[12]-[1-3]|GA-[0-9]{1,3}|\\PC{0,12}", 0..13),
            max in 1u32..=12,
        ) {
            let valid = !seats.is_empty()
                && seats.len() <= max as usize
                && seats.iter().all(|s| is_seat_id(s))
                && seats.iter().collect::<std::collections::HashSet<_>>().len() == seats.len();
            match Selection::parse(max, Some(seats.clone()), None, None) {
                Ok(selection) => {
                    prop_assert!(valid);
                    prop_assert_eq!(selection, Selection::Seats(seats));
                }
                Err(p) => {
                    prop_assert!(!valid);
                    prop_assert_eq!(p.status().as_u16(), 422);
                    prop_assert!(!p.errors().is_empty());
                }
            }
        }

        /// A quantity is a selection exactly when it is 1 to the limit, with no seat list
        /// and any section a short name; never a panic.
        #[test]
        fn quantities_are_selections_exactly_by_the_rule(
            quantity in prop_oneof![any::<i64>(), -2i64..15],
            section in proptest::option::of("[A-Za-z0-9_]{1,20}|\\PC{0,25}"),
            with_seats in any::<bool>(),
        ) {
            let seats = with_seats.then(|| vec!["A-1-1".to_owned()]);
            let section_ok = section.as_ref().is_none_or(|s| {
                !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            let valid = !with_seats && (1..=10).contains(&quantity) && section_ok;
            match Selection::parse(10, seats, Some(quantity), section.clone()) {
                Ok(selection) => {
                    prop_assert!(valid);
                    prop_assert_eq!(selection, Selection::Best { quantity, section });
                }
                Err(p) => {
                    prop_assert!(!valid);
                    prop_assert_eq!(p.status().as_u16(), 422);
                }
            }
        }
    }

    proptest! {
        // A fixed budget, so `cargo test` stays quick.
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// An `Idempotency-Key` is accepted exactly when it is 1 to 255 visible ASCII
        /// characters, and then as sent; any other bytes are a 400, never a panic.
        #[test]
        fn idempotency_keys_are_accepted_exactly_by_the_rule(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                return Ok(());
            };
            let mut headers = HeaderMap::new();
            headers.insert("idempotency-key", value);
            let valid = !bytes.is_empty()
                && bytes.len() <= 255
                && bytes.iter().all(|b| (0x21..=0x7e).contains(b));
            match idempotency_key(&headers) {
                Ok(key) => {
                    prop_assert!(valid);
                    prop_assert_eq!(key.as_bytes(), bytes.as_slice());
                }
                Err(problem) => {
                    prop_assert!(!valid);
                    prop_assert_eq!(problem.status().as_u16(), 400);
                }
            }
        }

        /// Seat ids: every well-formed id is one, and anything with a character outside
        /// letters, digits, `_` and `-` never is; no input panics.
        #[test]
        fn seat_ids_follow_their_shape(
            section in "[A-Za-z0-9_]{1,10}",
            row in "[A-Za-z0-9_]{1,10}",
            number in "[0-9]{1,5}",
            junk in ".{0,80}",
        ) {
            let reserved = format!("{section}-{row}-{number}");
            let general = format!("GA-{number}");
            prop_assert!(is_seat_id(&reserved));
            prop_assert!(is_seat_id(&general));
            let any = is_seat_id(&junk);
            if junk.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
                prop_assert!(!any);
            }
        }
    }
}
