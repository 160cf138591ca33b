//! Helpers: organizers, event bodies, authenticated requests.

use evently_testkit::{TestApp, TestUser, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 text of now + `days`.
pub fn in_days(days: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&Rfc3339)
        .unwrap()
}

/// A valid general-admission event body.
pub fn event_body(name: &str) -> Value {
    json!({
        "eventName": name,
        "eventDate": in_days(30),
        "venueName": "Lumen Field",
        "totalSeats": 500,
        "saleStartTime": in_days(10),
        "basePrice": 12500,
        "currency": "USD",
        "eventType": "concert",
        "tags": ["pop"],
    })
}

/// Registers a user, makes them an organizer (as an admin), and signs them in again so the
/// token carries the role.
pub async fn organizer(app: &TestApp, admin: &TestUser) -> TestUser {
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

pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

pub async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    send(app, reqwest::Method::POST, path, Some(token), Some(body)).await
}

pub async fn put(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    send(app, reqwest::Method::PUT, path, Some(token), Some(body)).await
}

pub async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    send(app, reqwest::Method::GET, path, None, None).await
}

/// Creates an event and returns its body.
pub async fn create(app: &TestApp, token: &str, body: &Value) -> Value {
    let r = post(app, "/api/events", token, body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// `totalElements` of a listing.
pub async fn total(app: &TestApp, query: &str) -> u64 {
    let body: Value = get(app, &format!("/api/events{query}"))
        .await
        .json()
        .await
        .unwrap();
    body["page"]["totalElements"].as_u64().unwrap()
}
