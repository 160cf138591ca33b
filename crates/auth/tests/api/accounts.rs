//! Password change and account disabling (TESTPLAN A-16): both end the account's other
//! sessions by revoking its refresh families.

use evently_testkit::{PASSWORD, TestApp, assert_problem, json, spawn_app};
use serde_json::Value;

async fn change_password(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.client
        .put(app.url("/api/users/password"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.post_json("/api/auth/refresh", &json!({"refreshToken": refresh_token}))
        .await
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_the_old_password() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let other = app.login_user(&user.email).await;
    let new_password = "a brand new passphrase";

    let wrong = change_password(
        &app,
        &user.access_token,
        &json!({"currentPassword": "not it at all", "newPassword": new_password}),
    )
    .await;
    let weak = change_password(
        &app,
        &user.access_token,
        &json!({"currentPassword": PASSWORD, "newPassword": "short"}),
    )
    .await;
    let anonymous = app
        .client
        .put(app.url("/api/users/password"))
        .json(&json!({"currentPassword": PASSWORD, "newPassword": new_password}))
        .send()
        .await
        .unwrap();
    let changed = change_password(
        &app,
        &user.access_token,
        &json!({"currentPassword": PASSWORD, "newPassword": new_password}),
    )
    .await;

    let problem = assert_problem(wrong, 422).await;
    assert_eq!(
        problem["errors"][0]["pointer"], "/currentPassword",
        "{problem}"
    );
    let problem = assert_problem(weak, 422).await;
    assert_eq!(problem["errors"][0]["pointer"], "/newPassword", "{problem}");
    assert_problem(anonymous, 401).await;
    assert_eq!(changed.status(), 200);
    assert!(
        changed
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("refresh_token=")),
    );
    let session: Value = changed.json().await.unwrap();
    // Every refresh family of the account is revoked: this login's and the other one's…
    assert_problem(refresh(&app, &user.refresh_token).await, 401).await;
    assert_problem(refresh(&app, &other.refresh_token).await, 401).await;
    // …except the new session the change started.
    let renewed = refresh(&app, session["refreshToken"].as_str().unwrap()).await;
    assert_eq!(renewed.status(), 200);
    assert_problem(app.login(&user.email, PASSWORD).await, 401).await;
    assert_eq!(app.login(&user.email, new_password).await.status(), 200);
}

#[tokio::test]
async fn a_disabled_account_loses_its_sessions_and_cannot_sign_in_until_enabled() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let user = app.signed_in_user().await;
    let set = |token: String, id: String, active: bool| {
        let app = &app;
        async move {
            app.client
                .put(app.url(&format!("/api/users/{id}/status")))
                .bearer_auth(token)
                .json(&json!({"active": active}))
                .send()
                .await
                .unwrap()
        }
    };

    let by_user = set(user.access_token.clone(), admin.id.clone(), false).await;
    let own = set(admin.access_token.clone(), admin.id.clone(), false).await;
    let unknown = set(
        admin.access_token.clone(),
        uuid::Uuid::now_v7().to_string(),
        false,
    )
    .await;
    let disabled = set(admin.access_token.clone(), user.id.clone(), false).await;

    assert_problem(by_user, 403).await;
    assert_problem(own, 403).await;
    assert_problem(unknown, 404).await;
    assert_eq!(disabled.status(), 200);
    let body: Value = disabled.json().await.unwrap();
    assert_eq!(body, json!({"userId": user.id, "active": false}));
    assert_problem(refresh(&app, &user.refresh_token).await, 401).await;
    assert_problem(app.login(&user.email, PASSWORD).await, 401).await;
    let malformed = app
        .client
        .put(app.url(&format!("/api/users/{}/status", user.id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"active": "no"}))
        .send()
        .await
        .unwrap();
    assert!(malformed.status().is_client_error());

    let enabled = set(admin.access_token.clone(), user.id.clone(), true).await;

    assert_eq!(enabled.status(), 200);
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 200);
}
