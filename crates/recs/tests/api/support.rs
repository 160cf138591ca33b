//! Fixtures: the whole application behind the gateway, events created by an admin, and
//! purchases through the booking API.

use evently_testkit::{TestApp, TestUser};
use reqwest::Response;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub fn at(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Every service behind the gateway on SQLite, recommendations rebuilt quickly.
pub async fn app() -> TestApp {
    evently_testkit::spawn_app_with(|c| {
        c.recs.rebuild_interval_ms = 10;
        c.recs.popularity_refresh_ms = 20;
    })
    .await
}

pub async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut request = app.client.request(method.parse().unwrap(), app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
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

/// Creates an ON_SALE general-admission event in `city`, run by an organizer of its own, and
/// waits until booking can sell it; returns its id.
pub async fn event(
    app: &TestApp,
    name: &str,
    event_type: &str,
    tags: &[&str],
    city: &str,
) -> String {
    let admin = app.signed_in_admin().await;
    let venue = ok_json(
        send(
            app,
            "POST",
            "/api/venues",
            Some(&admin.access_token),
            Some(&json!({"name": format!("{name} Hall"), "address": "1 Main St", "city": city, "capacity": 100})),
        )
        .await,
        201,
    )
    .await;
    let created = ok_json(
        send(
            app,
            "POST",
            "/api/events",
            Some(&admin.access_token),
            Some(&json!({
                "eventName": name,
                "eventDate": at(time::Duration::days(30)),
                "saleStartTime": at(time::Duration::seconds(-5)),
                "status": "ON_SALE",
                "venueId": venue["venueId"],
                "totalSeats": 100,
                "basePrice": 3000,
                "currency": "EUR",
                "eventType": event_type,
                "tags": tags,
            })),
        )
        .await,
        201,
    )
    .await;
    let id = created["eventId"].as_str().unwrap().to_owned();
    eventually(|| async {
        send(
            app,
            "GET",
            &format!("/api/events/{id}/availability"),
            None,
            None,
        )
        .await
        .status()
            == 200
    })
    .await;
    id
}

/// Holds, pays for and buys one place of `event_id` as `buyer`.
pub async fn buy(app: &TestApp, buyer: &TestUser, event_id: &str) {
    let token = Some(buyer.access_token.as_str());
    let hold = ok_json(
        send(
            app,
            "POST",
            "/api/orders/holds",
            token,
            Some(&json!({"eventId": event_id, "quantity": 1})),
        )
        .await,
        201,
    )
    .await;
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
        .bearer_auth(&buyer.access_token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"eventId": event_id, "holdId": hold["holdId"], "seatIds": hold["seatIds"], "paymentIntentId": intent["paymentIntentId"]}))
        .send()
        .await
        .unwrap();
    ok_json(purchase, 201).await;
}

/// Waits (up to 10 s) until `check` holds.
pub async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    until(|| {
        let answer = check();
        async move { answer.await.then_some(()) }
    })
    .await;
}

/// Polls `attempt` (up to 10 s) until it gives a value, and returns it.
pub async fn until<T, F, Fut>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(value) = attempt().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the condition never held");
}

/// The ids of a recommendation list.
pub fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["eventId"].as_str().unwrap().to_owned())
        .collect()
}
