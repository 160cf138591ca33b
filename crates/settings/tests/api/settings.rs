//! Settings through the gateway: documents, conditional writes, merge patch, schema errors,
//! effective values, the audit trail, and the live effect on booking in one process.

use evently_core::identity::Role;
use evently_testkit::{TestApp, assert_problem};
use reqwest::Response;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const MERGE: &str = "application/merge-patch+json";

async fn app() -> TestApp {
    evently_testkit::spawn_app().await
}

async fn write(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    content_type: &str,
    body: &Value,
) -> Response {
    let mut request = app
        .client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(token)
        .header("Content-Type", content_type)
        .body(body.to_string());
    if let Some(tag) = if_match {
        request = request.header("If-Match", tag);
    }
    request.send().await.unwrap()
}

async fn ok(response: Response) -> (String, Value) {
    let status = response.status().as_u16();
    let tag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    (tag, serde_json::from_str(&text).unwrap())
}

/// A token for a user id of `role` (organizers are not created through the API).
fn token(app: &TestApp, user: uuid::Uuid, role: Role) -> String {
    app.keys()
        .issue_access(
            evently_core::ids::UserId(user),
            role,
            time::OffsetDateTime::now_utc(),
        )
        .unwrap()
        .token
}

/// Polls `attempt` (up to 10 s) until it gives a value.
async fn until<T, Fut: std::future::Future<Output = Option<T>>>(
    mut attempt: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(value) = attempt().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the condition never held");
}

#[tokio::test]
async fn preferences_are_versioned_and_patched_by_merge_patch() {
    let app = app().await;
    let user = app.signed_in_user().await;
    let t = user.access_token.as_str();

    let (tag0, empty) = ok(app.get_auth("/api/settings/me", t).await).await;
    let put = write(&app, "PUT", "/api/settings/me", t, Some(&tag0), "application/json",
        &json!({"locale": "de-DE", "notifications": {"email": true, "push": true}, "favouriteCities": ["Berlin"]})).await;
    let (tag1, created) = ok(put).await;
    let patch = write(&app, "PATCH", "/api/settings/me", t, Some(&tag1), MERGE,
        &json!({"locale": null, "notifications": {"push": null, "marketing": true}, "favouriteEventTypes": ["jazz"]})).await;
    let (tag2, patched) = ok(patch).await;
    let (_, effective) = ok(app.get_auth("/api/settings/me/effective", t).await).await;

    assert_eq!(
        (tag0.as_str(), empty["version"].clone()),
        ("\"0\"", json!(0))
    );
    assert_eq!(empty["document"], json!({}));
    assert_eq!(
        (tag1.as_str(), created["version"].clone()),
        ("\"1\"", json!(1))
    );
    assert_eq!(tag2, "\"2\"");
    assert_eq!(
        patched["document"],
        json!({"notifications": {"email": true, "marketing": true}, "favouriteCities": ["Berlin"], "favouriteEventTypes": ["jazz"]})
    );
    assert_eq!(
        effective["document"]["locale"], "en",
        "a removed key falls back to its default"
    );
    let source = |key: &str| {
        effective["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == key)
            .unwrap()["source"]
            .clone()
    };
    assert_eq!(source("/locale"), "default");
    assert_eq!(source("/notifications/marketing"), "user");
    assert_eq!(source("/notifications/reminderHoursBefore"), "default");
}

#[tokio::test]
async fn a_stale_or_missing_if_match_changes_nothing() {
    let app = app().await;
    let user = app.signed_in_user().await;
    let t = user.access_token.as_str();
    ok(write(
        &app,
        "PUT",
        "/api/settings/me",
        t,
        Some("\"0\""),
        "application/json",
        &json!({"locale": "fr"}),
    )
    .await)
    .await;

    let stale = write(
        &app,
        "PATCH",
        "/api/settings/me",
        t,
        Some("\"0\""),
        MERGE,
        &json!({"locale": "it"}),
    )
    .await;
    let stale_put = write(
        &app,
        "PUT",
        "/api/settings/me",
        t,
        Some("\"7\""),
        "application/json",
        &json!({}),
    )
    .await;
    let missing = write(
        &app,
        "PUT",
        "/api/settings/me",
        t,
        None,
        "application/json",
        &json!({}),
    )
    .await;
    let garbled = write(
        &app,
        "PUT",
        "/api/settings/me",
        t,
        Some("v1"),
        "application/json",
        &json!({}),
    )
    .await;

    assert_eq!(stale.headers()["etag"], "\"1\"");
    let body = assert_problem(stale, 412).await;
    assert_eq!(body["currentVersion"], 1);
    assert_problem(stale_put, 412).await;
    assert_problem(missing, 428).await;
    assert_problem(garbled, 400).await;
    let (tag, doc) = ok(app.get_auth("/api/settings/me", t).await).await;
    assert_eq!(tag, "\"1\"");
    assert_eq!(doc["document"], json!({"locale": "fr"}));
}

#[tokio::test]
async fn schema_violations_point_at_their_fields_and_change_nothing() {
    let app = app().await;
    let user = app.signed_in_user().await;
    let t = user.access_token.as_str();

    let bad = write(&app, "PUT", "/api/settings/me", t, Some("*"), "application/json",
        &json!({"timeZone": 5, "notifications": {"digestAddress": "nobody", "sms": true}, "favouriteCities": ["a", "a"]})).await;
    let body = assert_problem(bad, 422).await;
    let bad_patch = write(
        &app,
        "PATCH",
        "/api/settings/me",
        t,
        Some("*"),
        MERGE,
        &json!({"notifications": {"reminderHoursBefore": 500}}),
    )
    .await;
    let patch_body = assert_problem(bad_patch, 422).await;
    let wrong_type = write(
        &app,
        "PATCH",
        "/api/settings/me",
        t,
        Some("*"),
        "application/json",
        &json!({}),
    )
    .await;
    let too_big = write(
        &app,
        "PUT",
        "/api/settings/me",
        t,
        Some("*"),
        "application/json",
        &json!({"locale": "x".repeat(17 * 1024)}),
    )
    .await;
    let too_deep = write(
        &app,
        "PUT",
        "/api/settings/me",
        t,
        Some("*"),
        "application/json",
        &json!({"a": [[[[[[[[[1]]]]]]]]]}),
    )
    .await;

    let mut pointers: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        [
            "/favouriteCities",
            "/notifications/digestAddress",
            "/notifications/sms",
            "/timeZone"
        ]
    );
    assert_eq!(
        patch_body["errors"][0]["pointer"],
        "/notifications/reminderHoursBefore"
    );
    assert_eq!(wrong_type.headers()["accept-patch"], MERGE);
    assert_problem(wrong_type, 415).await;
    assert_problem(too_big, 413).await;
    assert_problem(too_deep, 422).await;
    let (tag, _) = ok(app.get_auth("/api/settings/me", t).await).await;
    assert_eq!(tag, "\"0\"", "nothing was written");
}

#[tokio::test]
async fn schemas_are_public_and_scopes_are_guarded() {
    let app = app().await;
    let user = app.signed_in_user().await;
    let admin = app.signed_in_admin().await;
    let organizer = uuid::Uuid::now_v7();
    let org_token = token(&app, organizer, Role::Organizer);

    let schema = app
        .client
        .get(app.url("/api/settings/schema/booking"))
        .send()
        .await
        .unwrap();
    let unknown = app
        .client
        .get(app.url("/api/settings/schema/nope"))
        .send()
        .await
        .unwrap();
    let user_platform = app
        .get_auth("/api/settings/platform", &user.access_token)
        .await;
    let user_audit = app
        .get_auth("/api/settings/audit", &user.access_token)
        .await;
    let other_org = app
        .get_auth(
            &format!("/api/settings/organizers/{}", uuid::Uuid::now_v7()),
            &org_token,
        )
        .await;
    let unknown_event = app
        .get_auth(
            &format!("/api/settings/events/{}", uuid::Uuid::now_v7()),
            &org_token,
        )
        .await;
    let own = write(
        &app,
        "PATCH",
        &format!("/api/settings/organizers/{organizer}"),
        &org_token,
        Some("\"0\""),
        MERGE,
        &json!({"holdTtlSeconds": 120}),
    )
    .await;

    assert_eq!(schema.status(), 200);
    assert_eq!(schema.headers()["content-type"], "application/schema+json");
    let schema: Value = schema.json().await.unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_problem(unknown, 404).await;
    assert_problem(user_platform, 403).await;
    assert_problem(user_audit, 403).await;
    assert_problem(other_org, 403).await;
    assert_problem(unknown_event, 404).await;
    ok(own).await;
    let (_, effective) = ok(app
        .get_auth(
            &format!("/api/settings/organizers/{organizer}/effective"),
            &admin.access_token,
        )
        .await)
    .await;
    assert_eq!(effective["document"]["holdTtlSeconds"], 120);
    let (_, audit) = ok(app
        .get_auth(
            &format!("/api/settings/audit?scope=organizer&scopeId={organizer}"),
            &admin.access_token,
        )
        .await)
    .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
    assert_eq!(audit["items"][0]["actor"], organizer.to_string());
    assert_eq!(audit["items"][0]["version"], 1);
    assert_eq!(
        audit["items"][0]["document"],
        json!({"holdTtlSeconds": 120})
    );
    assert!(audit["items"][0].get("previous").is_none_or(Value::is_null));
    let bad_query = app
        .get_auth("/api/settings/audit?scope=galaxy", &admin.access_token)
        .await;
    assert_problem(bad_query, 422).await;
}

/// Creates an ON_SALE general-admission event (organised by the admin) and waits until
/// booking and settings know it; returns its id.
async fn event(app: &TestApp, admin: &str) -> String {
    let at = |d: time::Duration| {
        (time::OffsetDateTime::now_utc() + d)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let created = app
        .client
        .post(app.url("/api/events"))
        .bearer_auth(admin)
        .json(&json!({
            "eventName": "Settings Night", "eventDate": at(time::Duration::days(30)),
            "venueName": "Hall", "totalSeats": 100, "saleStartTime": at(time::Duration::seconds(-5)),
            "status": "ON_SALE", "basePrice": 3000, "currency": "EUR",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let id = created.json::<Value>().await.unwrap()["eventId"]
        .as_str()
        .unwrap()
        .to_owned();
    until(|| async {
        let r = app
            .client
            .get(app.url(&format!("/api/events/{id}/availability")))
            .send()
            .await
            .unwrap();
        (r.status() == 200).then_some(())
    })
    .await;
    id
}

async fn hold(app: &TestApp, buyer: &str, event_id: &str, quantity: i64) -> Response {
    app.client
        .post(app.url("/api/orders/holds"))
        .bearer_auth(buyer)
        .json(&json!({"eventId": event_id, "quantity": quantity}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn effective_event_settings_name_the_layer_of_each_key() {
    let app = app().await;
    let admin = app.signed_in_admin().await;
    let a = admin.access_token.as_str();
    let event_id = event(&app, a).await;
    let organizer_doc = format!("/api/settings/organizers/{}", admin.id);

    ok(write(
        &app,
        "PUT",
        "/api/settings/platform",
        a,
        Some("*"),
        "application/json",
        &json!({"maxTicketsPerUser": 8, "holdTtlSeconds": 240}),
    )
    .await)
    .await;
    ok(write(
        &app,
        "PUT",
        &organizer_doc,
        a,
        Some("*"),
        "application/json",
        &json!({"maxTicketsPerUser": 6, "saleDefaults": {"currency": "EUR"}}),
    )
    .await)
    .await;
    ok(write(
        &app,
        "PUT",
        &format!("/api/settings/events/{event_id}"),
        a,
        Some("*"),
        "application/json",
        &json!({"maxTicketsPerUser": 4}),
    )
    .await)
    .await;
    // The event's owner reaches settings through the events stream.
    let effective = until(|| async {
        let (_, e) = ok(app
            .get_auth(&format!("/api/settings/events/{event_id}/effective"), a)
            .await)
        .await;
        (e["document"]["saleDefaults"]["currency"] == "EUR").then_some(e)
    })
    .await;

    let source = |key: &str| {
        let k = effective["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key"] == key)
            .unwrap();
        (k["value"].clone(), k["source"].as_str().unwrap().to_owned())
    };
    assert_eq!(source("/maxTicketsPerUser"), (json!(4), "event".to_owned()));
    assert_eq!(
        source("/holdTtlSeconds"),
        (json!(240), "platform".to_owned())
    );
    assert_eq!(
        source("/saleDefaults/currency"),
        (json!("EUR"), "organizer".to_owned())
    );
    assert_eq!(
        source("/saleDefaults/saleOpensDaysBefore"),
        (json!(30), "default".to_owned())
    );
    assert_eq!(
        source("/maxSeatsPerOrder"),
        (json!(10), "default".to_owned())
    );
}

#[tokio::test]
async fn a_lower_platform_ticket_limit_refuses_the_next_hold() {
    let app = app().await;
    let admin = app.signed_in_admin().await;
    let buyer = app.signed_in_user().await;
    let event_id = event(&app, &admin.access_token).await;
    let first = hold(&app, &buyer.access_token, &event_id, 3).await;
    assert_eq!(
        first.status(),
        201,
        "three tickets are within booking's configured limit"
    );

    ok(write(
        &app,
        "PATCH",
        "/api/settings/platform",
        &admin.access_token,
        Some("\"0\""),
        MERGE,
        &json!({"maxTicketsPerUser": 2, "holdTtlSeconds": 60}),
    )
    .await)
    .await;
    // Booking applies the change once the SettingsChanged event reaches its projection.
    let refused = until(|| async {
        let r = hold(&app, &buyer.access_token, &event_id, 3).await;
        (r.status() == 409).then_some(r)
    })
    .await;
    let smaller = hold(&app, &buyer.access_token, &event_id, 2).await;

    let body = assert_problem(refused, 409).await;
    assert_eq!(body["type"], "https://evently.dev/problems/ticket-limit");
    assert_eq!(smaller.status(), 201);
    let smaller: Value = smaller.json().await.unwrap();
    let ttl = smaller["expiresInSeconds"].as_i64().unwrap();
    assert!(
        (1..=60).contains(&ttl),
        "the shorter hold TTL applies to new holds: {ttl}"
    );

    // A looser setting never exceeds booking's configured limit (10).
    ok(write(
        &app,
        "PUT",
        "/api/settings/platform",
        &admin.access_token,
        Some("*"),
        "application/json",
        &json!({"maxTicketsPerUser": 100}),
    )
    .await)
    .await;
    until(|| async {
        (hold(&app, &buyer.access_token, &event_id, 10)
            .await
            .status()
            == 201)
            .then_some(())
    })
    .await;
    let over = hold(&app, &buyer.access_token, &event_id, 11).await;
    assert_eq!(
        over.status(),
        422,
        "11 seats exceed the configured seats per order"
    );
}

#[tokio::test]
async fn booking_rebuilds_its_settings_from_the_stream_after_a_restart() {
    let dir = evently_testkit::TempDir::new();
    let mut config = evently_testkit::test_config(dir.path());
    // The first process's index lock may outlive it briefly; this test is about booking.
    config.search.in_memory = true;
    let clock: evently_core::clock::SharedClock =
        std::sync::Arc::new(evently_core::clock::SystemClock);
    let first = evently_testkit::spawn_config(config.clone(), None, clock.clone()).await;
    let admin = first.signed_in_admin().await;
    let event_id = event(&first, &admin.access_token).await;
    ok(write(
        &first,
        "PUT",
        "/api/settings/platform",
        &admin.access_token,
        Some("\"0\""),
        "application/json",
        &json!({"maxTicketsPerUser": 2}),
    )
    .await)
    .await;
    let buyer = first.signed_in_user().await;
    until(|| async {
        (hold(&first, &buyer.access_token, &event_id, 3)
            .await
            .status()
            == 409)
            .then_some(())
    })
    .await;
    drop(first);

    let second = evently_testkit::spawn_config(config, None, clock).await;
    let buyer = second.signed_in_user().await;
    let refused = until(|| async {
        let r = hold(&second, &buyer.access_token, &event_id, 3).await;
        (r.status() == 409).then_some(r)
    })
    .await;

    // No settings were written since the restart: the limit comes from replaying the stream
    // (a hold taken before the replay finished is replaced by the next one, so polling is
    // fair; without the replay the limit never returns and the poll fails).
    let body = assert_problem(refused, 409).await;
    assert_eq!(body["type"], "https://evently.dev/problems/ticket-limit");
}

/// Pays for `hold` (a hold view) as `buyer` and asks to buy it; the purchase's answer.
async fn pay_and_buy(app: &TestApp, buyer: &str, event_id: &str, hold: &Value) -> Response {
    let intent: Value = app
        .client
        .post(app.url("/api/orders/payments/intent"))
        .bearer_auth(buyer)
        .json(&json!({"holdId": hold["holdId"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let confirmed = app
        .client
        .post(app.url("/api/orders/payments/confirm"))
        .bearer_auth(buyer)
        .json(&json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    app.client
        .post(app.url("/api/orders/purchase"))
        .bearer_auth(buyer)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"eventId": event_id, "holdId": hold["holdId"], "seatIds": hold["seatIds"], "paymentIntentId": intent["paymentIntentId"]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lower_platform_ticket_limit_refuses_a_purchase_that_no_longer_fits() {
    let app = app().await;
    let admin = app.signed_in_admin().await;
    let buyer = app.signed_in_user().await;
    let probe = app.signed_in_user().await;
    let event_id = event(&app, &admin.access_token).await;
    let first: Value = hold(&app, &buyer.access_token, &event_id, 2)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        pay_and_buy(&app, &buyer.access_token, &event_id, &first)
            .await
            .status(),
        201
    );
    let second: Value = hold(&app, &buyer.access_token, &event_id, 2)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["status"], "active", "{second}");

    ok(write(
        &app,
        "PATCH",
        "/api/settings/platform",
        &admin.access_token,
        Some("\"0\""),
        MERGE,
        &json!({"maxTicketsPerUser": 3}),
    )
    .await)
    .await;
    // Another buyer's hold of four shows that the limit reached booking.
    until(|| async {
        (hold(&app, &probe.access_token, &event_id, 4).await.status() == 409).then_some(())
    })
    .await;
    let refused = pay_and_buy(&app, &buyer.access_token, &event_id, &second).await;

    let body = assert_problem(refused, 409).await;
    assert_eq!(body["type"], "https://evently.dev/problems/ticket-limit");
}

/// A patch is judged on its own before its `If-Match`: a bad one is refused 422 even when the
/// tag is stale (the client fixes the body first), removing an unknown key is refused as the
/// published patch schema says, and a good patch with a stale tag is 412.
#[tokio::test]
async fn a_bad_patch_is_refused_before_its_precondition_is_compared() {
    let app = app().await;
    let user = app.signed_in_user().await;
    let t = &user.access_token;
    let stale = Some("\"7\"");
    let bad = write(
        &app,
        "PATCH",
        "/api/settings/me",
        t,
        stale,
        MERGE,
        &json!({"notifications": {"reminderHoursBefore": 1000}}),
    )
    .await;
    let body = assert_problem(bad, 422).await;
    assert_eq!(
        body["errors"][0]["pointer"],
        "/notifications/reminderHoursBefore"
    );
    let unknown = write(
        &app,
        "PATCH",
        "/api/settings/me",
        t,
        Some("*"),
        MERGE,
        &json!({"sms": null}),
    )
    .await;
    let body = assert_problem(unknown, 422).await;
    assert_eq!(body["errors"][0]["pointer"], "/sms");
    let good = write(
        &app,
        "PATCH",
        "/api/settings/me",
        t,
        stale,
        MERGE,
        &json!({"locale": null}),
    )
    .await;
    assert_problem(good, 412).await;
    let (tag, _) = ok(app.get_auth("/api/settings/me", t).await).await;
    assert_eq!(tag, "\"0\"", "nothing was written");
}
