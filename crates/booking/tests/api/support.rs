//! Fixtures: an organizer's event with a seat layout or general admission, buyers, and the
//! purchase steps.
#![expect(clippy::unwrap_used, reason = "test fixtures fail loudly")]

use evently_testkit::{TestApp, TestUser};
use reqwest::Response;
use serde_json::{Value, json};
use std::time::Duration;

pub fn at(offset: time::Duration) -> String {
    (time::OffsetDateTime::now_utc() + offset)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Starts the whole application (every service behind the gateway) on SQLite, or on
/// PostgreSQL when `postgres` is true, with `tweak` applied.
pub async fn app(postgres: bool, tweak: impl FnOnce(&mut evently_core::config::Config)) -> TestApp {
    let url = if postgres {
        evently_testkit::postgres_url()
    } else {
        None
    };
    evently_testkit::spawn_app_with(|c| {
        if let Some(url) = url {
            c.database.url = Some(secrecy::SecretString::from(url));
        }
        tweak(c);
    })
    .await
}

/// Whether the PostgreSQL variant of `test` can run; reports the skip otherwise.
pub fn postgres_or_skip(test: &str) -> bool {
    if evently_testkit::postgres_url().is_some() {
        true
    } else {
        evently_testkit::skip(test, "EVENTLY_TEST_POSTGRES_URL");
        false
    }
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

/// An event on sale now: reserved seating with `rows` rows of `seats` seats in sections A
/// (priced 5000) and B (base price 3000), or general admission with `capacity` places.
pub struct Sale {
    pub event_id: String,
    pub admin: TestUser,
}

pub enum Seating {
    Reserved { rows: i64, seats: i64 },
    General { capacity: i64 },
}

pub async fn on_sale(app: &TestApp, seating: Seating) -> Sale {
    let admin = app.signed_in_admin().await;
    let mut event = json!({
        "eventName": "Eras Tour",
        "eventDate": at(time::Duration::days(30)),
        "saleStartTime": at(time::Duration::seconds(-5)),
        "status": "ON_SALE",
        "basePrice": 3000,
        "currency": "USD",
        "eventType": "concert",
        "tags": ["pop"],
    });
    let capacity = match seating {
        Seating::Reserved { rows, seats } => {
            let rows: Vec<Value> = (1..=rows)
                .map(|r| json!({"label": r.to_string(), "seats": seats}))
                .collect();
            let venue = json!({
                "name": "Lumen Field", "address": "800 Occidental Ave S", "city": "Seattle",
                "layout": {"sections": [{"name": "A", "rows": rows}, {"name": "B", "rows": rows}]},
            });
            let venue = ok_json(
                send(
                    app,
                    "POST",
                    "/api/venues",
                    &admin.access_token,
                    Some(&venue),
                )
                .await,
                201,
            )
            .await;
            event["venueId"] = venue["venueId"].clone();
            event["sectionPrices"] = json!({"A": 5000});
            2 * rows.len() as i64 * seats
        }
        Seating::General { capacity } => {
            event["venueName"] = json!("The Hall");
            event["totalSeats"] = json!(capacity);
            capacity
        }
    };
    let created = ok_json(
        send(
            app,
            "POST",
            "/api/events",
            &admin.access_token,
            Some(&event),
        )
        .await,
        201,
    )
    .await;
    let event_id = created["eventId"].as_str().unwrap().to_owned();
    // Booking builds the inventory from EventCreated, delivered by the bus.
    for _ in 0..500 {
        let r = app
            .client
            .get(app.url(&format!("/api/events/{event_id}/availability")))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["capacity"], capacity);
            return Sale { event_id, admin };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("booking never built the inventory of {event_id}");
}

pub async fn availability(app: &TestApp, event_id: &str) -> Value {
    ok_json(
        app.client
            .get(app.url(&format!("/api/events/{event_id}/availability")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

pub async fn hold_seats(app: &TestApp, token: &str, event_id: &str, seats: &[&str]) -> Response {
    send(
        app,
        "POST",
        "/api/orders/holds",
        token,
        Some(&json!({"eventId": event_id, "seatIds": seats})),
    )
    .await
}

pub async fn hold_quantity(app: &TestApp, token: &str, event_id: &str, quantity: i64) -> Response {
    send(
        app,
        "POST",
        "/api/orders/holds",
        token,
        Some(&json!({"eventId": event_id, "quantity": quantity})),
    )
    .await
}

/// Intent and confirmation for a hold; returns the intent id.
pub async fn pay(app: &TestApp, token: &str, hold_id: &str) -> String {
    let intent = ok_json(
        send(
            app,
            "POST",
            "/api/orders/payments/intent",
            token,
            Some(&json!({"holdId": hold_id})),
        )
        .await,
        201,
    )
    .await;
    let confirm = json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]});
    let confirmed = ok_json(
        send(
            app,
            "POST",
            "/api/orders/payments/confirm",
            token,
            Some(&confirm),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded");
    intent["paymentIntentId"].as_str().unwrap().to_owned()
}

/// `POST path` with `body` under the `Idempotency-Key` `key`.
async fn keyed(app: &TestApp, path: &str, token: &str, key: &str, body: &Value) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub async fn purchase(app: &TestApp, token: &str, key: &str, body: &Value) -> Response {
    keyed(app, "/api/orders/purchase", token, key, body).await
}

pub async fn checkout(app: &TestApp, token: &str, key: &str, body: &Value) -> Response {
    keyed(app, "/api/orders/checkout", token, key, body).await
}

pub fn purchase_body(event_id: &str, hold: &Value, intent_id: &str) -> Value {
    json!({"eventId": event_id, "holdId": hold["holdId"], "seatIds": hold["seatIds"], "paymentIntentId": intent_id})
}

/// Hold, pay and buy `seats`; returns the order.
pub async fn buy(app: &TestApp, token: &str, event_id: &str, seats: &[&str]) -> Value {
    let hold = ok_json(hold_seats(app, token, event_id, seats).await, 201).await;
    buy_hold(app, token, event_id, &hold).await
}

/// Hold `quantity` best-available seats, pay and buy them; returns the order.
pub async fn buy_quantity(app: &TestApp, token: &str, event_id: &str, quantity: i64) -> Value {
    let hold = ok_json(hold_quantity(app, token, event_id, quantity).await, 201).await;
    buy_hold(app, token, event_id, &hold).await
}

/// Pay for and buy `hold` (an answer to a hold request); returns the order.
async fn buy_hold(app: &TestApp, token: &str, event_id: &str, hold: &Value) -> Value {
    let intent = pay(app, token, hold["holdId"].as_str().unwrap()).await;
    let key = uuid::Uuid::new_v4().to_string();
    ok_json(
        purchase(app, token, &key, &purchase_body(event_id, hold, &intent)).await,
        201,
    )
    .await
}

/// `n` fresh buyers, registered and signed in concurrently (a few at a time: password
/// hashing queues behind a per-core limit).
pub async fn buyers(app: &TestApp, n: usize) -> Vec<TestUser> {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..n)
        .map(|_| app.signed_in_user())
        .buffer_unordered(16)
        .collect()
        .await
}

/// Booking's audit of `event_id`'s inventory, counted from its rows now.
pub async fn audit(app: &TestApp, event_id: &str) -> evently_booking::Audit {
    let service = &app.app_booking.as_ref().unwrap().service;
    service
        .store()
        .audit(event_id.parse().unwrap(), service.now())
        .await
        .unwrap()
        .unwrap()
}

/// Asserts that `response` is a problem+json with `status` and type `…/<slug>`.
pub async fn assert_problem_type(response: Response, status: u16, slug: &str) -> Value {
    let problem = evently_testkit::assert_problem(response, status).await;
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{slug}")),
        "expected a {slug} problem: {problem}"
    );
    problem
}

/// How many orders `token`'s user has.
pub async fn order_count(app: &TestApp, token: &str) -> i64 {
    let list = ok_json(
        send(app, "GET", "/api/orders/orders", token, None).await,
        200,
    )
    .await;
    list["page"]["totalElements"].as_i64().unwrap()
}

/// Creates `event` as `token`'s user and waits until booking knows it; returns its id.
pub async fn create_event(app: &TestApp, token: &str, event: &Value) -> String {
    let created = ok_json(
        send(app, "POST", "/api/events", token, Some(event)).await,
        201,
    )
    .await;
    let event_id = created["eventId"].as_str().unwrap().to_owned();
    for _ in 0..500 {
        let r = app
            .client
            .get(app.url(&format!("/api/events/{event_id}/availability")))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            return event_id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("booking never built the inventory of {event_id}");
}

/// Waits until no hold of `event_id` is left for the expiry task to end (the inventory's
/// stored `held` is 0; the availability figures already leave out lapsed holds before that).
pub async fn wait_until_swept(app: &TestApp, event_id: &str) {
    let store = app.app_booking.as_ref().unwrap().service.store();
    let id = event_id.parse().unwrap();
    for _ in 0..500 {
        if store.inventory(id).await.unwrap().unwrap().held == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the holds of {event_id} were never swept");
}
