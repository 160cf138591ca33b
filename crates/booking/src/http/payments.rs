//! `/api/orders/payments/*`: create and confirm payment intents for a hold (a simulated
//! processor with test cards).

use axum::extract::State;
use axum::http::StatusCode;
use evently_core::extract::{Json, Path};
use evently_core::identity::Identity;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::BookingState;
use crate::domain::{HoldId, IntentOfHold, IntentStatus, OrderId, PaymentIntentId};
use crate::error::BookingError;

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
    /// The hold's event.
    pub event_id: Uuid,
    /// The hold's seats: with the ids above, what `POST /api/orders/purchase` names.
    pub seat_ids: Vec<String>,
    /// Minor units: the sum of the held seats' prices.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// `requires_confirmation`, `succeeded`, `declined`, `cancelled` or `refunded`.
    pub status: String,
}

/// Creates a payment intent for the caller's live hold (an unconfirmed one it had is
/// cancelled; a hold paid already gets no second intent: 409 `hold-paid`).
#[utoipa::path(post, path = "/api/orders/payments/intent", tag = "booking", request_body = IntentRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = IntentView),
        (status = 404, description = "No such hold of the caller's", body = evently_core::problem::ProblemBody),
        (status = 409, description = "Hold expired, purchased, or already paid", body = evently_core::problem::ProblemBody),
    ))]
pub async fn create_intent(
    State(state): State<BookingState>,
    caller: Identity,
    Json(body): Json<IntentRequest>,
) -> Result<(StatusCode, axum::Json<IntentView>), BookingError> {
    let (intent, secret) = state.service.create_intent(&caller, body.hold_id).await?;
    Ok((StatusCode::CREATED, axum::Json(view(intent, Some(secret)))))
}

/// The view of `paid`'s intent, with its hold's seats.
fn view(paid: IntentOfHold, client_secret: Option<String>) -> IntentView {
    let IntentOfHold { intent, seat_ids } = paid;
    IntentView {
        payment_intent_id: intent.id,
        client_secret,
        hold_id: intent.hold_id,
        event_id: intent.event_id,
        seat_ids,
        amount: intent.amount,
        currency: intent.currency,
        status: intent.status.as_str().to_owned(),
    }
}

/// A payment intent as its payer (or an admin) reads it later: where it is in its life,
/// the order it paid for, and what was refunded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    /// Its id.
    #[schema(value_type = Uuid)]
    pub payment_intent_id: PaymentIntentId,
    /// The hold it pays for.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// The hold's event.
    pub event_id: Uuid,
    /// Minor units.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// `requires_confirmation`, `succeeded`, `declined`, `cancelled` or `refunded`.
    pub status: String,
    /// The order it paid for, once purchased (also after the order was cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub order_id: Option<OrderId>,
    /// Minor units given back: the whole amount once `refunded` (its order was cancelled, or
    /// its hold ended before the purchase committed), else 0.
    pub refunded_amount: i64,
}

/// A payment intent: its payer's, or any for an admin.
#[utoipa::path(get, path = "/api/orders/payments/{paymentIntentId}", tag = "booking",
    params(("paymentIntentId" = Uuid, Path, description = "The payment intent")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PaymentView),
        (status = 400, description = "Malformed intent id", body = evently_core::problem::ProblemBody),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 404, description = "No such intent of the caller's", body = evently_core::problem::ProblemBody),
        (status = 503, description = "The store is unavailable", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_payment(
    State(state): State<BookingState>,
    caller: Identity,
    Path(intent_id): Path<PaymentIntentId>,
) -> Result<axum::Json<PaymentView>, BookingError> {
    let (intent, order_id) = state.service.payment(&caller, intent_id).await?;
    let refunded_amount = if intent.status == IntentStatus::Refunded {
        intent.amount
    } else {
        0
    };
    Ok(axum::Json(PaymentView {
        payment_intent_id: intent.id,
        hold_id: intent.hold_id,
        event_id: intent.event_id,
        amount: intent.amount,
        currency: intent.currency,
        status: intent.status.as_str().to_owned(),
        order_id,
        refunded_amount,
    }))
}

/// The simulated processor's test cards ([`crate::service::test_cards`]), as the schema of
/// `paymentMethod`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum PaymentMethod {
    /// Succeeds.
    #[serde(rename = "pm_card_visa")]
    Visa,
    /// Declined.
    #[serde(rename = "pm_card_declined")]
    Declined,
    /// The processor fails; confirm again.
    #[serde(rename = "pm_card_processing_error")]
    ProcessingError,
}

/// `POST /api/orders/payments/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The intent.
    #[schema(value_type = Uuid)]
    pub payment_intent_id: PaymentIntentId,
    /// Its client secret.
    #[schema(min_length = 1, max_length = 200)]
    pub client_secret: String,
    /// Test card: `pm_card_visa` (default, succeeds), `pm_card_declined` (402, the intent is
    /// declined), `pm_card_processing_error` (503, nothing changes; confirm again).
    #[serde(default)]
    #[schema(value_type = Option<PaymentMethod>)]
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
    Ok(axum::Json(view(intent, None)))
}

#[cfg(test)]
mod tests {
    use super::PaymentMethod;
    use crate::service::test_cards;

    #[test]
    fn the_documented_payment_methods_are_the_test_cards() {
        let name = |m: PaymentMethod| serde_json::to_value(m).unwrap();
        assert_eq!(name(PaymentMethod::Visa), test_cards::SUCCEEDS);
        assert_eq!(name(PaymentMethod::Declined), test_cards::DECLINED);
        assert_eq!(
            name(PaymentMethod::ProcessingError),
            test_cards::PROCESSOR_ERROR
        );
    }
}
