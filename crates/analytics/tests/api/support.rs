//! Fixtures: the whole application behind the gateway, organizers' events, and the booking
//! steps (hold, pay, buy, release, cancel) through the API.

use evently_testkit::{TestApp, TestUser};
use reqwest::Response;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub fn at(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Response {
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

pub async fn ok_json(response: Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A new user promoted to organizer, signed in again to carry the role.
pub async fn organizer(app: &TestApp) -> TestUser {
    let admin = app.signed_in_admin().await;
    let user = app.signed_in_user().await;
    let r = send(
        app,
        "PUT",
        &format!("/api/users/{}/role", user.id),
        &admin.access_token,
        Some(&json!({"role": "organizer"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    app.login_user(&user.email).await
}

/// Creates an ON_SALE general-admission event of `seats` places at `price` in `currency`,
/// owned by `owner`, and waits until booking sells it; returns its id.
pub async fn event(
    app: &TestApp,
    owner: &TestUser,
    seats: i64,
    price: i64,
    currency: &str,
) -> String {
    zoned_event(app, owner, seats, price, currency, None).await
}

/// [`event`] in `time_zone` (the events service's default, UTC, for `None`).
pub async fn zoned_event(
    app: &TestApp,
    owner: &TestUser,
    seats: i64,
    price: i64,
    currency: &str,
    time_zone: Option<&str>,
) -> String {
    let mut body = json!({
        "eventName": format!("Night of {currency}"),
        "eventDate": at(time::Duration::days(30)),
        "venueName": "Hall",
        "saleStartTime": at(time::Duration::seconds(-5)),
        "status": "ON_SALE",
        "totalSeats": seats,
        "basePrice": price,
        "currency": currency,
    });
    if let Some(tz) = time_zone {
        body["timeZone"] = json!(tz);
    }
    let created = ok_json(
        send(app, "POST", "/api/events", &owner.access_token, Some(&body)).await,
        201,
    )
    .await;
    let id = created["eventId"].as_str().unwrap().to_owned();
    eventually(|| async {
        app.client
            .get(app.url(&format!("/api/events/{id}/availability")))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    id
}

/// Holds `quantity` places of `event_id` as `buyer`; the hold.
pub async fn hold(app: &TestApp, buyer: &TestUser, event_id: &str, quantity: i64) -> Value {
    ok_json(
        send(
            app,
            "POST",
            "/api/orders/holds",
            &buyer.access_token,
            Some(&json!({"eventId": event_id, "quantity": quantity})),
        )
        .await,
        201,
    )
    .await
}

/// Lets go of `hold`.
pub async fn release(app: &TestApp, buyer: &TestUser, hold: &Value) {
    let r = send(
        app,
        "DELETE",
        &format!("/api/orders/holds/{}", hold["holdId"].as_str().unwrap()),
        &buyer.access_token,
        None,
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
}

/// Holds, pays for and buys `quantity` places; booking's order.
pub async fn buy(app: &TestApp, buyer: &TestUser, event_id: &str, quantity: i64) -> Value {
    let token = buyer.access_token.as_str();
    let hold = hold(app, buyer, event_id, quantity).await;
    let intent = ok_json(
        send(
            app,
            "POST",
            "/api/orders/payments/intent",
            token,
            Some(&json!({"holdId": hold["holdId"]})),
        )
        .await,
        201,
    )
    .await;
    ok_json(
        send(
            app,
            "POST",
            "/api/orders/payments/confirm",
            token,
            Some(&json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]})),
        )
        .await,
        200,
    )
    .await;
    let purchase = app
        .client
        .post(app.url("/api/orders/purchase"))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"eventId": event_id, "holdId": hold["holdId"], "seatIds": hold["seatIds"], "paymentIntentId": intent["paymentIntentId"]}))
        .send()
        .await
        .unwrap();
    ok_json(purchase, 201).await
}

/// Cancels `order` as its buyer; booking's cancelled order.
pub async fn cancel(app: &TestApp, buyer: &TestUser, order: &Value) -> Value {
    ok_json(
        send(
            app,
            "POST",
            &format!("/api/orders/{}/cancel", order["orderId"].as_str().unwrap()),
            &buyer.access_token,
            None,
        )
        .await,
        200,
    )
    .await
}

/// The figures of `event_id` as `caller` sees them.
/// `buyer` joins event `event_id`'s waitlist for `quantity` seats.
pub async fn join_waitlist(app: &TestApp, buyer: &TestUser, event_id: &str, quantity: i64) {
    ok_json(
        send(
            app,
            "POST",
            &format!("/api/events/{event_id}/waitlist"),
            &buyer.access_token,
            Some(&json!({"quantity": quantity})),
        )
        .await,
        201,
    )
    .await;
}

/// `buyer` leaves event `event_id`'s waitlist.
pub async fn leave_waitlist(app: &TestApp, buyer: &TestUser, event_id: &str) {
    let r = send(
        app,
        "DELETE",
        &format!("/api/events/{event_id}/waitlist"),
        &buyer.access_token,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
}

pub async fn figures(app: &TestApp, caller: &TestUser, event_id: &str) -> Value {
    ok_json(
        send(
            app,
            "GET",
            &format!("/api/analytics/events/{event_id}"),
            &caller.access_token,
            None,
        )
        .await,
        200,
    )
    .await
}

/// Waits (up to 10 s) until `check` holds.
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the condition never held");
}
