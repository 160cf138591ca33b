//! `POST /api/orders/checkout` through the gateway: a hold paid for and bought in one request,
//! exactly once per `Idempotency-Key`, refused as a purchase is, with bad input answered by a
//! problem that changes nothing.
#![expect(
    clippy::unwrap_used,
    reason = "a checkout that goes wrong fails loudly"
)]

use serde_json::{Value, json};

use crate::support::*;

fn body(event_id: &str, hold: &Value) -> Value {
    json!({"eventId": event_id, "holdId": hold["holdId"], "seatIds": hold["seatIds"]})
}

async fn a_checkout_buys_a_hold_in_one_request(postgres: bool) {
    let app = app(postgres, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 4 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.as_str();
    let hold = ok_json(
        hold_seats(&app, token, event, &["A-1-1", "B-1-1"]).await,
        201,
    )
    .await;
    let key = uuid::Uuid::new_v4().to_string();
    let before = availability(&app, event).await;

    // Bad input first: each is a problem, and nothing changes.
    let whole = body(event, &hold);
    let missing_key = send(&app, "POST", "/api/orders/checkout", token, Some(&whole)).await;
    assert_problem_type(missing_key, 400, "idempotency-key-required").await;
    let mut unknown_card = body(event, &hold);
    unknown_card["paymentMethod"] = json!("pm_card_amex");
    let problem = assert_problem_type(
        checkout(&app, token, &key, &unknown_card).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(
        problem["errors"][0]["pointer"], "/paymentMethod",
        "{problem}"
    );
    let mut extra = body(event, &hold);
    extra["amount"] = json!(1);
    let refused = checkout(&app, token, &key, &extra).await;
    assert_eq!(refused.status().as_u16(), 422);
    // Refusals decided by the store are final answers of their keys: each gets its own.
    let mut fewer = body(event, &hold);
    fewer["seatIds"] = json!(["A-1-1"]);
    let problem = assert_problem_type(
        checkout(&app, token, &uuid::Uuid::new_v4().to_string(), &fewer).await,
        422,
        "validation-failed",
    )
    .await;
    assert_eq!(problem["errors"][0]["pointer"], "/seatIds", "{problem}");
    let other = app.signed_in_user().await;
    assert_problem_type(
        checkout(&app, &other.access_token, &key, &body(event, &hold)).await,
        404,
        "not-found",
    )
    .await;
    let anonymous = app
        .client
        .post(app.url("/api/orders/checkout"))
        .header("Idempotency-Key", &key)
        .json(&body(event, &hold))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_eq!(availability(&app, event).await, before);
    assert_eq!(order_count(&app, token).await, 0);

    // Section A at 5000 and B at the base price 3000, in the event's currency.
    let response = checkout(&app, token, &key, &body(event, &hold)).await;
    assert!(response.headers().get("idempotent-replayed").is_none());
    let first = response.text().await.unwrap();
    let order: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(order["status"], "confirmed", "{order}");
    assert_eq!(
        (order["amount"].as_i64(), order["currency"].as_str()),
        (Some(8000), Some("USD"))
    );
    assert_eq!(order["seatIds"], json!(["A-1-1", "B-1-1"]));
    assert_eq!(order["tickets"].as_array().unwrap().len(), 2);
    let path = format!(
        "/api/orders/payments/{}",
        order["paymentIntentId"].as_str().unwrap()
    );
    let payment = ok_json(send(&app, "GET", &path, token, None).await, 200).await;
    assert_eq!(payment["status"], "succeeded", "{payment}");
    assert_eq!(payment["orderId"], order["orderId"]);
    assert_eq!(payment["amount"], 8000);
    let held = format!("/api/orders/holds/{}", hold["holdId"].as_str().unwrap());
    let held = ok_json(send(&app, "GET", &held, token, None).await, 200).await;
    assert_eq!(held["status"], "purchased");

    // The same key and body replay the answer byte for byte; another body under it is 422.
    let replayed = checkout(&app, token, &key, &body(event, &hold)).await;
    assert_eq!(replayed.status().as_u16(), 201);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.text().await.unwrap(), first);
    let mut declined = body(event, &hold);
    declined["paymentMethod"] = json!("pm_card_declined");
    assert_problem_type(
        checkout(&app, token, &key, &declined).await,
        422,
        "validation-failed",
    )
    .await;
    // A new key for the bought hold: 409.
    let again = uuid::Uuid::new_v4().to_string();
    assert_problem_type(
        checkout(&app, token, &again, &body(event, &hold)).await,
        409,
        "hold-purchased",
    )
    .await;
    assert_eq!(order_count(&app, token).await, 1);
    let audit = audit(&app, event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(
        (audit.sold_seats, audit.orders, audit.unpaid_orders),
        (2, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_buys_a_hold_in_one_request_on_sqlite() {
    a_checkout_buys_a_hold_in_one_request(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_buys_a_hold_in_one_request_on_postgres() {
    if postgres_or_skip("a_checkout_buys_a_hold_in_one_request_on_postgres") {
        a_checkout_buys_a_hold_in_one_request(true).await;
    }
}

/// A declined card is answered 402 and stored under its key like any final answer; the hold
/// stays live and a new key with a good card buys it. A processor error (503) is not stored:
/// the same key is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_checkout_keeps_the_hold_for_another_card() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::General { capacity: 5 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.as_str();
    let hold = ok_json(hold_quantity(&app, token, event, 2).await, 201).await;
    let before = availability(&app, event).await;

    let key = uuid::Uuid::new_v4().to_string();
    let mut declined = body(event, &hold);
    declined["paymentMethod"] = json!("pm_card_declined");
    let first = assert_problem_type(
        checkout(&app, token, &key, &declined).await,
        402,
        "payment-declined",
    )
    .await;
    let replayed = checkout(&app, token, &key, &declined).await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(
        assert_problem_type(replayed, 402, "payment-declined").await,
        first
    );
    assert_eq!(availability(&app, event).await, before);

    let retry = uuid::Uuid::new_v4().to_string();
    let mut failing = body(event, &hold);
    failing["paymentMethod"] = json!("pm_card_processing_error");
    assert_problem_type(
        checkout(&app, token, &retry, &failing).await,
        503,
        "payment-processor-error",
    )
    .await;
    assert_problem_type(
        checkout(&app, token, &retry, &failing).await,
        503,
        "payment-processor-error",
    )
    .await;
    assert_eq!(availability(&app, event).await, before);

    let mut visa = body(event, &hold);
    visa["paymentMethod"] = json!("pm_card_visa");
    let order = ok_json(
        checkout(&app, token, &uuid::Uuid::new_v4().to_string(), &visa).await,
        201,
    )
    .await;
    assert_eq!(order["seatIds"], hold["seatIds"]);
    assert_eq!(order["amount"], 6000);
    let audit = audit(&app, event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.orders, audit.unrefunded_payments), (1, 0));
}
