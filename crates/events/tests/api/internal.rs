//! `/internal/events/*` as another service calls it: the batch that writes an atomic import,
//! behind the internal credential and for the caller's token, and the internal OpenAPI
//! document, which lists every internal route of the router.

use evently_testkit::{
    ServiceName, TEST_INTERNAL_TOKEN, TestApp, TestUser, Value, assert_problem, json,
    spawn_services,
};
use uuid::Uuid;

use crate::support::{event_body, organizer, total};

/// `POST` of `body` to the internal route at `path` for the holder of `token`, with the
/// internal credential when given.
async fn internal_post(
    app: &TestApp,
    path: &str,
    token: &str,
    credential: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).bearer_auth(token);
    if let Some(credential) = credential {
        request = request.header("x-internal-token", credential);
    }
    request.json(body).send().await.unwrap()
}

async fn batch(
    app: &TestApp,
    token: &str,
    credential: Option<&str>,
    events: &[(Uuid, Value)],
) -> reqwest::Response {
    let events: Vec<Value> = events
        .iter()
        .map(|(id, event)| json!({"eventId": id, "event": event}))
        .collect();
    let body = json!({ "events": events });
    internal_post(app, "/internal/events/batch", token, credential, &body).await
}

/// Auth and events without the gateway (which never forwards /internal/*), batches of at most
/// `max_rows` events; with an admin and an organizer the admin made.
async fn internal_app(max_rows: Option<usize>) -> (TestApp, TestUser, TestUser) {
    let app = spawn_services(&[ServiceName::Auth, ServiceName::Events], |c| {
        if let Some(max_rows) = max_rows {
            c.data.max_import_rows = max_rows;
        }
    })
    .await;
    let admin = app.signed_in_admin().await;
    let org = organizer(&app, &admin).await;
    (app, admin, org)
}

#[tokio::test]
async fn a_batch_writes_all_its_events_or_none() {
    let (app, admin, org) = internal_app(Some(3)).await;
    let token = org.access_token.as_str();
    let (one, two, three) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let rows = [(one, event_body("One")), (two, event_body("Two"))];

    // No credential, or a wrong one: the route is not there, and nothing is written.
    assert_problem(batch(&app, token, None, &rows).await, 404).await;
    assert_problem(batch(&app, token, Some("guess"), &rows).await, 404).await;
    assert_eq!(total(&app, "").await, 0);

    let written = batch(&app, token, Some(TEST_INTERNAL_TOKEN), &rows).await;
    assert_eq!(written.status(), 200);
    let written: Value = written.json().await.unwrap();
    assert_eq!(
        written,
        json!({"results": [{"eventId": one, "created": true}, {"eventId": two, "created": true}]})
    );
    // The same batch again creates nothing twice.
    let again: Value = batch(&app, token, Some(TEST_INTERNAL_TOKEN), &rows)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["results"][0]["created"], false);
    assert_eq!(total(&app, "").await, 2);

    // One refused event refuses the batch: each refused event's index and problem, and
    // neither the new event nor the renamed one is written.
    let mut bad = event_body("Bad");
    bad["currency"] = json!("euros");
    let refused = batch(
        &app,
        token,
        Some(TEST_INTERNAL_TOKEN),
        &[
            (three, event_body("Three")),
            (one, event_body("One renamed")),
            (two, bad),
        ],
    )
    .await;
    let body = assert_problem(refused, 422).await;
    assert_eq!(body["type"], "https://evently.dev/problems/batch-refused");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["rows"][0]["index"], 2);
    assert_eq!(body["rows"][0]["problem"]["status"], 422);
    assert_eq!(
        body["rows"][0]["problem"]["errors"][0]["pointer"],
        "/currency"
    );
    assert_eq!(total(&app, "").await, 2);
    let first: Value = app
        .client
        .get(app.url(&format!("/api/events/{one}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["eventName"], "One");

    // Someone else's event is refused as its update would be; a user may create nothing.
    let other = organizer(&app, &admin).await;
    let body = assert_problem(
        batch(
            &app,
            &other.access_token,
            Some(TEST_INTERNAL_TOKEN),
            &[(one, event_body("Taken over"))],
        )
        .await,
        422,
    )
    .await;
    assert_eq!(body["rows"][0]["problem"]["status"], 403);

    // More events than an import has rows is refused whole.
    let four: Vec<(Uuid, Value)> = (0..4)
        .map(|i| (Uuid::now_v7(), event_body(&format!("Many {i}"))))
        .collect();
    assert_problem(
        batch(&app, token, Some(TEST_INTERNAL_TOKEN), &four).await,
        422,
    )
    .await;
    assert_eq!(total(&app, "").await, 2);
}

async fn check_batch(
    app: &TestApp,
    token: &str,
    credential: Option<&str>,
    events: &[Value],
) -> reqwest::Response {
    let body = json!({ "events": events });
    internal_post(
        app,
        "/internal/events/check-batch",
        token,
        credential,
        &body,
    )
    .await
}

#[tokio::test]
async fn a_batch_check_names_each_refused_event_and_writes_nothing() {
    let (app, _, org) = internal_app(Some(3)).await;
    let token = org.access_token.as_str();
    let mut bad_currency = event_body("Bad currency");
    bad_currency["currency"] = json!("euros");
    let events = [event_body("Good"), bad_currency, json!({"eventName": 7})];

    // No credential, or a wrong one: the route is not there.
    assert_problem(check_batch(&app, token, None, &events).await, 404).await;
    assert_problem(check_batch(&app, token, Some("guess"), &events).await, 404).await;

    let checked = check_batch(&app, token, Some(TEST_INTERNAL_TOKEN), &events).await;
    assert_eq!(checked.status(), 200);
    let checked: Value = checked.json().await.unwrap();
    let refused = checked["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{checked}");
    assert_eq!(refused[0]["index"], 1);
    assert_eq!(refused[0]["problem"]["status"], 422);
    assert_eq!(refused[0]["problem"]["errors"][0]["pointer"], "/currency");
    // A body `POST /api/events` could not even read is refused as it would be there.
    assert_eq!(refused[1]["index"], 2);
    assert!(
        refused[1]["problem"]["status"] == 422 || refused[1]["problem"]["status"] == 400,
        "{checked}"
    );
    // Nothing is created, whatever the answer.
    let good = check_batch(&app, token, Some(TEST_INTERNAL_TOKEN), &events[..1]).await;
    assert_eq!(good.json::<Value>().await.unwrap(), json!({"refused": []}));
    assert_eq!(total(&app, "").await, 0);

    // A user may create nothing: every event is refused as `POST /api/events` would be.
    let user = app.signed_in_user().await;
    let checked: Value = check_batch(
        &app,
        &user.access_token,
        Some(TEST_INTERNAL_TOKEN),
        &events[..1],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(checked["refused"][0]["problem"]["status"], 403, "{checked}");
    // More events than an import has rows is refused whole.
    let four: Vec<Value> = (0..4).map(|i| event_body(&format!("Many {i}"))).collect();
    assert_problem(
        check_batch(&app, token, Some(TEST_INTERNAL_TOKEN), &four).await,
        422,
    )
    .await;
}

#[tokio::test]
async fn every_internal_route_is_in_the_served_internal_document() {
    let app = spawn_services(&[ServiceName::Events], |_| {}).await;
    let doc: Value = app
        .client
        .get(app.url("/internal/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = evently_testkit::internal_routes(include_str!("../../src/http/mod.rs"));
    assert!(routes.contains(&("post".to_owned(), "/internal/events/batch".to_owned())));
    assert!(routes.contains(&("post".to_owned(), "/internal/events/check-batch".to_owned())));
    assert!(routes.contains(&("put".to_owned(), "/internal/events/{}".to_owned())));
    let own =
        serde_json::to_value(<evently_events::EventsInternalApi as utoipa::OpenApi>::openapi())
            .unwrap();
    evently_testkit::assert_internal_doc(&own, &doc, &routes);
    // The public document keeps none of them.
    let public =
        serde_json::to_value(<evently_events::EventsApi as utoipa::OpenApi>::openapi()).unwrap();
    assert!(
        public["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| !p.starts_with("/internal"))
    );
}

#[tokio::test]
async fn a_batch_larger_than_a_json_body_is_accepted_up_to_an_imports_size() {
    let (app, _, org) = internal_app(None).await;
    // 200 events of about 1.5 KB: far beyond the 64 KiB of any other JSON body.
    let rows: Vec<(Uuid, Value)> = (0..200)
        .map(|i| {
            let mut event = event_body(&format!("Long {i}"));
            event["description"] = json!("d".repeat(1_000));
            (Uuid::now_v7(), event)
        })
        .collect();
    let written = batch(&app, &org.access_token, Some(TEST_INTERNAL_TOKEN), &rows).await;
    assert_eq!(written.status(), 200, "{}", written.text().await.unwrap());
    assert_eq!(total(&app, "").await, 200);
}
