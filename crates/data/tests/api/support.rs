//! Fixtures: the whole application behind the gateway, organizers, multipart uploads.

use evently_testkit::{TestApp, TestUser};
use reqwest::Response;
use serde_json::{Value, json};

/// Registers a user, makes them an organizer (as an admin), and signs them in again so the
/// token carries the role.
pub async fn organizer(app: &TestApp) -> TestUser {
    let admin = app.signed_in_admin().await;
    let user = app.signed_in_user().await;
    let r = app
        .client
        .put(app.url(&format!("/api/users/{}/role", user.id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "organizer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.login_user(&user.email).await
}

/// Uploads `bytes` as the `file` part to `POST /api/data/import/events?{query}`.
pub async fn import(
    app: &TestApp,
    token: &str,
    query: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    app.client
        .post(app.url(&format!("/api/data/import/events?{query}")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

pub async fn ok_json(response: Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

pub async fn get(app: &TestApp, path: &str, token: Option<&str>) -> Response {
    let mut request = app.client.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Every event, as `GET /api/events` lists them.
pub async fn all_events(app: &TestApp) -> Vec<Value> {
    let list = ok_json(get(app, "/api/events?size=100", None).await, 200).await;
    list["events"].as_array().unwrap().clone()
}

pub fn at(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Creates an ON_SALE general-admission event as `organizer` and waits until booking can
/// sell it; returns its id.
pub async fn event_on_sale(app: &TestApp, organizer: &TestUser) -> String {
    let created = ok_json(
        post(
            app,
            "/api/events",
            &organizer.access_token,
            &json!({
                "eventName": "Sold Night",
                "eventDate": at(time::Duration::days(30)),
                "saleStartTime": at(time::Duration::seconds(-5)),
                "status": "ON_SALE",
                "venueName": "Hall",
                "totalSeats": 100,
                "basePrice": 3000,
                "currency": "EUR",
            }),
        )
        .await,
        201,
    )
    .await;
    let id = created["eventId"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(app, &format!("/api/events/{id}/availability"), None)
        .await
        .status()
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "booking never saw the event"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    id
}

/// Holds, pays for and buys `quantity` places of `event_id` as `buyer`.
pub async fn buy(app: &TestApp, buyer: &TestUser, event_id: &str, quantity: u32) {
    let token = &buyer.access_token;
    let hold = ok_json(
        post(
            app,
            "/api/orders/holds",
            token,
            &json!({"eventId": event_id, "quantity": quantity}),
        )
        .await,
        201,
    )
    .await;
    let intent = ok_json(
        post(
            app,
            "/api/orders/payments/intent",
            token,
            &json!({"holdId": hold["holdId"]}),
        )
        .await,
        201,
    )
    .await;
    ok_json(
        post(
            app,
            "/api/orders/payments/confirm",
            token,
            &json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]}),
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
    ok_json(purchase, 201).await;
}
