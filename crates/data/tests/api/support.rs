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
