//! Who may see and change what (TESTPLAN A-28..A-32, ARCHITECTURE §4.5), and bad input
//! (§4.6): someone else's hold, payment intent or order is 404 whatever is tried with it and
//! stays as it was; an event's organizer sees its orders, other organizers do not; requests
//! without a token are 401; bad input is a 4xx problem that changes nothing, which the
//! availability figures (their `version` counts every inventory change) bear out.
#![expect(clippy::unwrap_used, reason = "a refused check fails loudly")]

use evently_testkit::{TestApp, TestUser, assert_problem};
use reqwest::Response;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::support::*;

fn general_admission(capacity: i64, sale_start: time::Duration, status: &str) -> Value {
    json!({
        "eventName": "Night Market",
        "eventDate": at(time::Duration::days(30)),
        "saleStartTime": at(sale_start),
        "status": status,
        "basePrice": 2500,
        "currency": "USD",
        "eventType": "festival",
        "tags": ["food"],
        "venueName": "Pier 62",
        "totalSeats": capacity,
    })
}

/// Registers a user, has `admin` make them an organizer, and signs them in again so that
/// their token carries the role.
async fn signed_in_organizer(app: &TestApp, admin: &TestUser) -> TestUser {
    let user = app.signed_in_user().await;
    ok_json(
        send(
            app,
            "PUT",
            &format!("/api/users/{}/role", user.id),
            &admin.access_token,
            Some(&json!({"role": "organizer"})),
        )
        .await,
        200,
    )
    .await;
    app.login_user(&user.email).await
}

async fn create_intent(app: &TestApp, token: &str, hold_id: &str) -> Value {
    ok_json(
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
    .await
}

async fn confirm(app: &TestApp, token: &str, intent: &Value, method: Option<&str>) -> Response {
    let mut body = json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]});
    if let Some(method) = method {
        body["paymentMethod"] = json!(method);
    }
    send(
        app,
        "POST",
        "/api/orders/payments/confirm",
        token,
        Some(&body),
    )
    .await
}

/// A-28/A-29/C-08: buyer B tries every route on buyer A's hold, payment intent and order —
/// with A's correct client secret and A's idempotency key too. Each is a 404 that reveals
/// nothing, and A's hold, intent and order are unchanged.
async fn another_buyer_cannot_reach_a_buyers_hold_intent_or_order(postgres: bool) {
    let app = app(postgres, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 5 }).await;
    let event = sale.event_id.as_str();
    let (a, b) = tokio::join!(app.signed_in_user(), app.signed_in_user());
    let (ta, tb) = (a.access_token.as_str(), b.access_token.as_str());
    let b_order = buy(&app, tb, event, &["B-1-1"]).await;
    let hold = ok_json(hold_seats(&app, ta, event, &["A-1-1", "A-1-2"]).await, 201).await;
    let hold_id = hold["holdId"].as_str().unwrap();
    let intent = create_intent(&app, ta, hold_id).await;
    let hold_path = format!("/api/orders/holds/{hold_id}");
    let as_a = ok_json(send(&app, "GET", &hold_path, ta, None).await, 200).await;
    let before = availability(&app, event).await;

    let with_secret = |method: Option<&str>| {
        let mut body = json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]});
        if let Some(method) = method {
            body["paymentMethod"] = json!(method);
        }
        body
    };
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", hold_path.clone(), None),
        ("GET", format!("{hold_path}/ttl"), None),
        (
            "POST",
            format!("{hold_path}/refresh"),
            Some(json!({"extendSeconds": 60})),
        ),
        ("POST", format!("{hold_path}/refresh"), None),
        ("DELETE", hold_path.clone(), None),
        (
            "POST",
            "/api/orders/payments/intent".into(),
            Some(json!({"holdId": hold_id})),
        ),
        (
            "POST",
            "/api/orders/payments/confirm".into(),
            Some(with_secret(Some("pm_card_declined"))),
        ),
        (
            "POST",
            "/api/orders/payments/confirm".into(),
            Some(with_secret(None)),
        ),
    ];
    for (method, path, body) in &attempts {
        let problem = assert_problem(send(&app, method, path, tb, body.as_ref()).await, 404).await;
        assert!(
            !problem.to_string().contains(&a.id),
            "{method} {path}: {problem}"
        );
    }

    let after = ok_json(send(&app, "GET", &hold_path, ta, None).await, 200).await;
    assert_eq!(
        (&after["status"], &after["expiresAt"], &after["seatIds"]),
        (&as_a["status"], &as_a["expiresAt"], &as_a["seatIds"])
    );
    assert_eq!(availability(&app, event).await, before);
    // Still awaiting confirmation: neither B's decline nor B's confirmation took.
    assert_problem_type(
        confirm(&app, ta, &intent, Some("pm_card_processing_error")).await,
        503,
        "payment-processor-error",
    )
    .await;
    ok_json(confirm(&app, ta, &intent, None).await, 200).await;

    // B cannot buy A's paid hold, not even with the key A is about to use.
    let body = purchase_body(event, &hold, intent["paymentIntentId"].as_str().unwrap());
    assert_problem(purchase(&app, tb, "a-key", &body).await, 404).await;
    assert_eq!(availability(&app, event).await, before);
    let order = ok_json(purchase(&app, ta, "a-key", &body).await, 201).await;
    // …and A's key sent by B is still B's own key: never A's stored answer.
    for key in ["a-key", "b-key"] {
        let problem = assert_problem(purchase(&app, tb, key, &body).await, 404).await;
        assert!(
            !problem
                .to_string()
                .contains(order["orderId"].as_str().unwrap())
        );
    }

    let order_id = order["orderId"].as_str().unwrap();
    let order_path = format!("/api/orders/{order_id}");
    assert_problem(send(&app, "GET", &order_path, tb, None).await, 404).await;
    assert_problem(
        send(&app, "POST", &format!("{order_path}/cancel"), tb, None).await,
        404,
    )
    .await;
    let listed = ok_json(send(&app, "GET", "/api/orders/orders", tb, None).await, 200).await;
    assert_eq!(listed["page"]["totalElements"], 1);
    let ids: Vec<&Value> = listed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["orderId"])
        .collect();
    assert_eq!(ids, [&b_order["orderId"]]);
    let fetched = ok_json(send(&app, "GET", &order_path, ta, None).await, 200).await;
    assert_eq!(fetched["status"], "confirmed");
    assert_eq!(fetched["tickets"], order["tickets"]);
    assert_eq!(order_count(&app, ta).await, 1);
    let now = availability(&app, event).await;
    assert_eq!((&now["sold"], &now["held"]), (&json!(3), &json!(0)));
}

#[tokio::test]
async fn another_buyer_cannot_reach_a_buyers_hold_intent_or_order_on_sqlite() {
    another_buyer_cannot_reach_a_buyers_hold_intent_or_order(false).await;
}

#[tokio::test]
async fn another_buyer_cannot_reach_a_buyers_hold_intent_or_order_on_postgres() {
    if postgres_or_skip("another_buyer_cannot_reach_a_buyers_hold_intent_or_order_on_postgres") {
        another_buyer_cannot_reach_a_buyers_hold_intent_or_order(true).await;
    }
}

/// A-28/A-31: an order is visible to its buyer, the event's organizer and admins; another
/// organizer gets 404 and cannot cancel it, while the event's organizer can.
#[tokio::test]
async fn the_events_organizer_sees_its_orders_and_other_organizers_do_not() {
    let app = app(false, |_| {}).await;
    let admin = app.signed_in_admin().await;
    let (owner, other) = tokio::join!(
        signed_in_organizer(&app, &admin),
        signed_in_organizer(&app, &admin)
    );
    let event = create_event(
        &app,
        &owner.access_token,
        &general_admission(10, time::Duration::seconds(-5), "ON_SALE"),
    )
    .await;
    let buyer = app.signed_in_user().await;
    let order = buy(&app, &buyer.access_token, &event, &["GA-1"]).await;
    let order_path = format!("/api/orders/{}", order["orderId"].as_str().unwrap());

    let seen = ok_json(
        send(&app, "GET", &order_path, &owner.access_token, None).await,
        200,
    )
    .await;
    assert_eq!(seen["orderId"], order["orderId"]);
    ok_json(
        send(&app, "GET", &order_path, &admin.access_token, None).await,
        200,
    )
    .await;
    assert_problem(
        send(&app, "GET", &order_path, &other.access_token, None).await,
        404,
    )
    .await;
    assert_problem(
        send(
            &app,
            "POST",
            &format!("{order_path}/cancel"),
            &other.access_token,
            None,
        )
        .await,
        404,
    )
    .await;
    // Organizers' own listings hold only what they bought themselves.
    assert_eq!(order_count(&app, &owner.access_token).await, 0);
    let still = ok_json(
        send(&app, "GET", &order_path, &buyer.access_token, None).await,
        200,
    )
    .await;
    assert_eq!(still["status"], "confirmed");
    assert_eq!(availability(&app, &event).await["sold"], 1);

    let cancelled = ok_json(
        send(
            &app,
            "POST",
            &format!("{order_path}/cancel"),
            &owner.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (&cancelled["status"], &cancelled["cancelReason"]),
        (&json!("cancelled"), &json!("organizer"))
    );
}

/// Every booking route that acts for a buyer answers 401 with `WWW-Authenticate: Bearer`
/// without a token, or with one that is not ours.
#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::General { capacity: 5 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let hold = ok_json(
        hold_quantity(&app, &buyer.access_token, event, 1).await,
        201,
    )
    .await;
    let hold_id = hold["holdId"].as_str().unwrap();
    let order_id = uuid::Uuid::now_v7();
    let before = availability(&app, event).await;

    let routes: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            "/api/orders/holds".into(),
            Some(json!({"eventId": event, "quantity": 1})),
        ),
        ("GET", format!("/api/orders/holds/{hold_id}"), None),
        ("GET", format!("/api/orders/holds/{hold_id}/ttl"), None),
        ("POST", format!("/api/orders/holds/{hold_id}/refresh"), None),
        ("DELETE", format!("/api/orders/holds/{hold_id}"), None),
        (
            "POST",
            "/api/orders/payments/intent".into(),
            Some(json!({"holdId": hold_id})),
        ),
        (
            "POST",
            "/api/orders/payments/confirm".into(),
            Some(json!({"paymentIntentId": order_id, "clientSecret": "x"})),
        ),
        (
            "POST",
            "/api/orders/purchase".into(),
            Some(
                json!({"eventId": event, "holdId": hold_id, "seatIds": hold["seatIds"], "paymentIntentId": order_id}),
            ),
        ),
        ("GET", "/api/orders/orders".into(), None),
        ("GET", format!("/api/orders/{order_id}"), None),
        ("POST", format!("/api/orders/{order_id}/cancel"), None),
        (
            "POST",
            format!("/api/events/{event}/waitlist"),
            Some(json!({"quantity": 1})),
        ),
        ("GET", format!("/api/events/{event}/waitlist"), None),
        ("DELETE", format!("/api/events/{event}/waitlist"), None),
    ];
    for (method, path, body) in &routes {
        for token in [None, Some("not-a-token"), Some("eyJhbGciOiJub25lIn0.e30.")] {
            let mut request = app
                .client
                .request(method.parse().unwrap(), app.url(path))
                .header("Idempotency-Key", "k");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            assert_problem(response, 401).await;
            assert!(challenge.starts_with("Bearer"), "{method} {path}");
        }
    }
    assert_eq!(availability(&app, event).await, before);
    let hold_now = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/holds/{hold_id}"),
            &buyer.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(hold_now["status"], "active");
}

/// I-cases for holds: unknown, duplicate or malformed seats, bad quantities, both or neither
/// selection, fields a buyer may not set, malformed JSON, the wrong content type and
/// non-UUID ids in paths — each a 4xx problem, and the inventory is untouched.
#[tokio::test]
async fn bad_hold_requests_are_refused_and_change_nothing() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 5 }).await;
    let event = sale.event_id.as_str();
    let (buyer, other) = tokio::join!(app.signed_in_user(), app.signed_in_user());
    let token = buyer.access_token.as_str();
    let before = availability(&app, event).await;

    let refused: Vec<(Value, u16)> = vec![
        (json!({"eventId": event, "seatIds": ["Z-9-99"]}), 422),
        (
            json!({"eventId": event, "seatIds": ["A-1-1", "Z-9-99"]}),
            422,
        ),
        (
            json!({"eventId": event, "seatIds": ["A-1-1", "A-1-1"]}),
            422,
        ),
        (json!({"eventId": event, "seatIds": ["A-1-1'; --"]}), 422),
        (json!({"eventId": event, "seatIds": []}), 422),
        (json!({"eventId": event, "seatIds": "A-1-1"}), 422),
        (json!({"eventId": event, "quantity": 0}), 422),
        (json!({"eventId": event, "quantity": -1}), 422),
        (json!({"eventId": event, "quantity": 10_000}), 422),
        (json!({"eventId": event, "quantity": 1.5}), 422),
        (
            json!({"eventId": event, "quantity": 1, "section": "A; DROP"}),
            422,
        ),
        (
            json!({"eventId": event, "seatIds": ["A-1-1"], "quantity": 1}),
            422,
        ),
        (json!({"eventId": event}), 422),
        (json!({"eventId": "not-a-uuid", "seatIds": ["A-1-1"]}), 422),
        (json!({"seatIds": ["A-1-1"]}), 422),
        (
            json!({"eventId": event, "seatIds": ["A-1-1"], "userId": other.id}),
            422,
        ),
        (
            json!({"eventId": uuid::Uuid::now_v7(), "seatIds": ["A-1-1"]}),
            404,
        ),
    ];
    for (body, status) in &refused {
        let response = send(&app, "POST", "/api/orders/holds", token, Some(body)).await;
        let problem = assert_problem(response, *status).await;
        if *status == 422 {
            assert_eq!(
                problem["type"],
                "https://evently.dev/problems/validation-failed"
            );
        }
    }
    let raw = |body: String, content_type: &'static str| {
        app.client
            .post(app.url("/api/orders/holds"))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        raw(r#"{"eventId": "#.into(), "application/json")
            .await
            .unwrap(),
        400,
    )
    .await;
    assert_problem(raw("[1, 2".into(), "application/json").await.unwrap(), 400).await;
    let valid = format!(r#"{{"eventId": "{event}", "quantity": 1}}"#);
    assert_problem(raw(valid.clone(), "text/plain").await.unwrap(), 415).await;
    assert_problem(
        raw(valid, "application/x-www-form-urlencoded")
            .await
            .unwrap(),
        415,
    )
    .await;

    let paths = [
        ("GET", "/api/orders/holds/not-a-uuid"),
        ("GET", "/api/orders/holds/not-a-uuid/ttl"),
        ("POST", "/api/orders/holds/not-a-uuid/refresh"),
        ("DELETE", "/api/orders/holds/1234"),
        ("GET", "/api/orders/not-a-uuid"),
        ("POST", "/api/orders/not-a-uuid/cancel"),
        ("GET", "/api/orders/seats/not-a-uuid"),
        ("GET", "/api/events/not-a-uuid/availability"),
        ("GET", "/api/events/not-a-uuid/waitlist"),
    ];
    for (method, path) in paths {
        let problem = assert_problem(send(&app, method, path, token, None).await, 400).await;
        assert!(problem["detail"].is_string(), "{method} {path}: {problem}");
    }

    assert_eq!(availability(&app, event).await, before);
    let map = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/seats/{event}"),
            token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(
        map["seats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "available"),
        "{map}"
    );
    // The bad requests left nothing behind: the buyer's first good hold is their only one.
    ok_json(hold_seats(&app, token, event, &["A-1-1"]).await, 201).await;
    assert_eq!(availability(&app, event).await["held"], 1);
}

/// Purchase and payment input that does not fit: an unconfirmed intent, a wrong secret, an
/// unknown card, an intent of another hold, the wrong seats or event, a client-chosen
/// price, malformed idempotency keys. Each is refused and the seats stay held and unsold.
/// Then the simulated card outcomes: a decline is final for its intent; a processor error
/// leaves the intent confirmable.
#[tokio::test]
async fn bad_payments_and_purchases_are_refused_and_change_nothing() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 5 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.as_str();
    let earlier = ok_json(hold_seats(&app, token, event, &["A-1-3"]).await, 201).await;
    let stale = create_intent(&app, token, earlier["holdId"].as_str().unwrap()).await;
    let hold = ok_json(
        hold_seats(&app, token, event, &["A-1-1", "A-1-2"]).await,
        201,
    )
    .await;
    let hold_id = hold["holdId"].as_str().unwrap();
    let intent = create_intent(&app, token, hold_id).await;
    let intent_id = intent["paymentIntentId"].as_str().unwrap();
    let good = purchase_body(event, &hold, intent_id);
    let before = availability(&app, event).await;
    assert_eq!((&before["held"], &before["sold"]), (&json!(2), &json!(0)));

    assert_problem_type(
        purchase(&app, token, "unconfirmed", &good).await,
        409,
        "payment-incomplete",
    )
    .await;
    let wrong_secret = json!({"paymentIntentId": intent_id, "clientSecret": "pi_wrong"});
    let problem = assert_problem(
        send(
            &app,
            "POST",
            "/api/orders/payments/confirm",
            token,
            Some(&wrong_secret),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(
        problem["errors"][0]["pointer"], "/clientSecret",
        "{problem}"
    );
    assert_problem(
        confirm(&app, token, &intent, Some("pm_card_bogus")).await,
        422,
    )
    .await;
    let mut other_hold = good.clone();
    other_hold["paymentIntentId"] = stale["paymentIntentId"].clone();
    assert_problem(
        purchase(&app, token, "stale-intent", &other_hold).await,
        422,
    )
    .await;
    let mut other_event = good.clone();
    other_event["eventId"] = json!(uuid::Uuid::now_v7());
    assert_problem(
        purchase(&app, token, "other-event", &other_event).await,
        422,
    )
    .await;
    for seats in [json!(["A-1-1"]), json!(["A-1-1", "A-1-3"]), json!([])] {
        let mut wrong_seats = good.clone();
        wrong_seats["seatIds"] = seats;
        let key = uuid::Uuid::new_v4().to_string();
        assert_problem(purchase(&app, token, &key, &wrong_seats).await, 422).await;
    }
    let mut priced = good.clone();
    priced["amount"] = json!(1);
    assert_problem(purchase(&app, token, "priced", &priced).await, 422).await;
    let mut unknown_intent = good.clone();
    unknown_intent["paymentIntentId"] = json!(uuid::Uuid::now_v7());
    assert_problem(
        purchase(&app, token, "unknown-intent", &unknown_intent).await,
        404,
    )
    .await;

    let malformed_keys: Vec<Vec<HeaderValue>> = vec![
        vec![HeaderValue::from_static("")],
        vec![HeaderValue::from_str(&"k".repeat(256)).unwrap()],
        vec![HeaderValue::from_static("tab\there")],
        vec![HeaderValue::from_static("with space")],
        vec![HeaderValue::from_bytes("clé".as_bytes()).unwrap()],
        vec![
            HeaderValue::from_static("one"),
            HeaderValue::from_static("two"),
        ],
    ];
    for values in malformed_keys {
        let mut request = app
            .client
            .post(app.url("/api/orders/purchase"))
            .bearer_auth(token)
            .json(&good);
        for value in &values {
            request = request.header("Idempotency-Key", value.clone());
        }
        let problem = assert_problem(request.send().await.unwrap(), 400).await;
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .contains("idempotency-key"),
            "{values:?}: {problem}"
        );
    }
    assert_eq!(availability(&app, event).await, before);
    assert_eq!(order_count(&app, token).await, 0);

    // A declined card ends the intent: it cannot be confirmed again, nor bought with.
    assert_problem_type(
        confirm(&app, token, &intent, Some("pm_card_declined")).await,
        402,
        "payment-declined",
    )
    .await;
    assert_problem_type(
        confirm(&app, token, &intent, None).await,
        409,
        "payment-intent-state",
    )
    .await;
    assert_problem_type(
        purchase(&app, token, "declined", &good).await,
        409,
        "payment-incomplete",
    )
    .await;

    // A processor error changes nothing: the same intent is then confirmed.
    let retry = create_intent(&app, token, hold_id).await;
    let failed = confirm(&app, token, &retry, Some("pm_card_processing_error")).await;
    assert!(failed.headers().get("retry-after").is_some());
    assert_problem_type(failed, 503, "payment-processor-error").await;
    let confirmed = ok_json(confirm(&app, token, &retry, None).await, 200).await;
    assert_eq!(confirmed["status"], "succeeded");
    assert_eq!(availability(&app, event).await, before);

    // 409s were not stored (the key is free again); 422s were (same body replays it, another
    // body is refused).
    let paid = purchase_body(event, &hold, retry["paymentIntentId"].as_str().unwrap());
    let replay = purchase(&app, token, "stale-intent", &other_hold).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_problem(replay, 422).await;
    assert_problem(purchase(&app, token, "stale-intent", &paid).await, 422).await;
    let order = ok_json(purchase(&app, token, "unconfirmed", &paid).await, 201).await;
    assert_eq!(order["amount"], 10_000);
    let after = availability(&app, event).await;
    assert_eq!((&after["held"], &after["sold"]), (&json!(0), &json!(2)));
}

/// C-10: once a hold has expired, paying for it, buying it and refreshing it are 409
/// `hold-expired`, nothing is bought, and its seat is someone else's to take.
#[tokio::test]
async fn an_expired_hold_cannot_be_paid_refreshed_or_bought() {
    let app = app(false, |c| {
        c.booking.hold_ttl_seconds = 1;
        c.booking.max_hold_lifetime_seconds = 1;
    })
    .await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 2 }).await;
    let event = sale.event_id.as_str();
    let (buyer, next) = tokio::join!(app.signed_in_user(), app.signed_in_user());
    let token = buyer.access_token.as_str();
    let hold = ok_json(hold_seats(&app, token, event, &["A-1-1"]).await, 201).await;
    let hold_id = hold["holdId"].as_str().unwrap();
    // An intent superseded by a newer one before that was paid (a paid hold gets no
    // second intent).
    let unpaid = create_intent(&app, token, hold_id).await;
    let paid = create_intent(&app, token, hold_id).await;
    ok_json(confirm(&app, token, &paid, None).await, 200).await;
    wait_until_swept(&app, event).await;
    let before = availability(&app, event).await;
    assert_eq!(before["held"], 0);

    let body = purchase_body(event, &hold, paid["paymentIntentId"].as_str().unwrap());
    assert_problem_type(
        purchase(&app, token, "late", &body).await,
        409,
        "hold-expired",
    )
    .await;
    assert_problem_type(
        send(
            &app,
            "POST",
            "/api/orders/payments/intent",
            token,
            Some(&json!({"holdId": hold_id})),
        )
        .await,
        409,
        "hold-expired",
    )
    .await;
    let refresh = format!("/api/orders/holds/{hold_id}/refresh");
    assert_problem_type(
        send(&app, "POST", &refresh, token, None).await,
        409,
        "hold-expired",
    )
    .await;
    let late_confirm = confirm(&app, token, &unpaid, None).await;
    assert_eq!(late_confirm.status(), 409);
    assert_problem(late_confirm, 409).await;
    assert_eq!(availability(&app, event).await, before);
    assert_eq!(order_count(&app, token).await, 0);

    ok_json(
        hold_seats(&app, &next.access_token, event, &["A-1-1"]).await,
        201,
    )
    .await;
}

/// The waitlist is for sold-out events: joining while seats can be held is 409
/// `seats-available`, and a bad quantity is 422.
#[tokio::test]
async fn joining_the_waitlist_while_seats_are_available_is_refused() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::General { capacity: 3 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.as_str();
    let path = format!("/api/events/{event}/waitlist");
    let before = availability(&app, event).await;

    let problem = assert_problem_type(
        send(&app, "POST", &path, token, Some(&json!({"quantity": 2}))).await,
        409,
        "seats-available",
    )
    .await;
    assert_eq!(problem["available"], 3);
    for quantity in [json!(0), json!(11), json!("2")] {
        assert_problem(
            send(
                &app,
                "POST",
                &path,
                token,
                Some(&json!({"quantity": quantity})),
            )
            .await,
            422,
        )
        .await;
    }
    assert_problem(send(&app, "GET", &path, token, None).await, 404).await;
    assert_eq!(availability(&app, event).await, before);
}

/// Holds (and the waitlist) are refused before the sale opens: 409 `not-on-sale`.
#[tokio::test]
async fn holds_are_refused_before_the_sale_starts() {
    let app = app(false, |_| {}).await;
    let admin = app.signed_in_admin().await;
    let event = create_event(
        &app,
        &admin.access_token,
        &general_admission(5, time::Duration::days(1), "UPCOMING"),
    )
    .await;
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.as_str();
    let before = availability(&app, &event).await;
    assert_eq!(
        (&before["onSale"], &before["available"]),
        (&json!(false), &json!(5))
    );

    assert_problem_type(
        hold_quantity(&app, token, &event, 1).await,
        409,
        "not-on-sale",
    )
    .await;
    assert_problem_type(
        hold_seats(&app, token, &event, &["GA-1"]).await,
        409,
        "not-on-sale",
    )
    .await;
    assert_problem_type(
        send(
            &app,
            "POST",
            &format!("/api/events/{event}/waitlist"),
            token,
            Some(&json!({"quantity": 1})),
        )
        .await,
        409,
        "not-on-sale",
    )
    .await;
    assert_eq!(availability(&app, &event).await, before);
}

/// A-37: a buyer owns at most `booking.max_tickets_per_user` tickets of an event; a hold
/// that would pass it is 409 `ticket-limit`.
#[tokio::test]
async fn a_buyer_cannot_hold_past_the_ticket_limit() {
    let app = app(false, |c| {
        c.booking.max_tickets_per_user = 4;
        c.booking.max_seats_per_order = 4;
    })
    .await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 5 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.as_str();

    assert_problem(hold_quantity(&app, token, event, 5).await, 422).await;
    buy(&app, token, event, &["A-1-1", "A-1-2"]).await;
    let before = availability(&app, event).await;
    let problem = assert_problem_type(
        hold_quantity(&app, token, event, 3).await,
        409,
        "ticket-limit",
    )
    .await;
    assert_eq!(problem["limit"], 4);
    assert_eq!(availability(&app, event).await, before);
    buy(&app, token, event, &["A-1-3", "A-1-4"]).await;
    let before = availability(&app, event).await;
    assert_problem_type(
        hold_seats(&app, token, event, &["B-1-1"]).await,
        409,
        "ticket-limit",
    )
    .await;
    assert_problem_type(
        hold_quantity(&app, token, event, 1).await,
        409,
        "ticket-limit",
    )
    .await;
    assert_eq!(availability(&app, event).await, before);
    assert_eq!(before["sold"], 4);
    // The limit is per buyer: someone else still buys.
    let other = app.signed_in_user().await;
    buy(&app, &other.access_token, event, &["B-1-1"]).await;
}

/// A buyer's own live hold never blocks them: a new hold takes its seats again and
/// releases it. Someone else's hold does block.
#[tokio::test]
async fn a_buyers_own_live_hold_never_blocks_them() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 5 }).await;
    let event = sale.event_id.as_str();
    let (buyer, other) = tokio::join!(app.signed_in_user(), app.signed_in_user());
    let token = buyer.access_token.as_str();

    let first = ok_json(hold_seats(&app, token, event, &["A-1-1"]).await, 201).await;
    let second = ok_json(
        hold_seats(&app, token, event, &["A-1-1", "A-1-2"]).await,
        201,
    )
    .await;

    assert_eq!(second["seatIds"], json!(["A-1-1", "A-1-2"]));
    // The replaced hold is released, and a released hold is gone for its buyer.
    assert_problem_type(
        send(
            &app,
            "GET",
            &format!("/api/orders/holds/{}", first["holdId"].as_str().unwrap()),
            token,
            None,
        )
        .await,
        410,
        "hold-released",
    )
    .await;
    let now = availability(&app, event).await;
    assert_eq!((&now["held"], &now["available"]), (&json!(2), &json!(8)));
    let problem = assert_problem_type(
        hold_seats(&app, &other.access_token, event, &["A-1-2", "A-1-3"]).await,
        409,
        "seats-unavailable",
    )
    .await;
    assert_eq!(problem["conflicts"], json!(["A-1-2"]));
    assert_eq!(availability(&app, event).await, now);
    let intent = pay(&app, token, second["holdId"].as_str().unwrap()).await;
    ok_json(
        purchase(&app, token, "own", &purchase_body(event, &second, &intent)).await,
        201,
    )
    .await;
}
