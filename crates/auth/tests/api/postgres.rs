//! The black-box flow on PostgreSQL (skipped without `EVENTLY_TEST_POSTGRES_URL`).

use evently_testkit::{
    PASSWORD, assert_problem, json, postgres_url, skip, spawn_app_with, unique_email,
};
use secrecy::SecretString;

#[tokio::test]
async fn register_login_me_refresh_logout_on_postgres() {
    let Some(url) = postgres_url() else {
        skip(
            "register_login_me_refresh_logout_on_postgres",
            "EVENTLY_TEST_POSTGRES_URL",
        );
        return;
    };
    let app = spawn_app_with(|c| c.database.url = Some(SecretString::from(url))).await;
    let email = unique_email();

    assert_eq!(app.register(&email, PASSWORD).await.status(), 201);
    assert_problem(app.register(&email.to_uppercase(), PASSWORD).await, 409).await;
    // An address with NUL names no account (and PostgreSQL cannot store it as a throttle key).
    let nul = app
        .post_json(
            "/api/auth/login",
            &json!({"email": "a\u{0}@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(nul, 401).await;
    let user = app.login_user(&email).await;
    let me = app.get_auth("/api/auth/me", &user.access_token).await;
    let rotated = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await;
    let replay = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await;
    let logout = app
        .post_json(
            "/api/auth/logout",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await;
    let ready: serde_json::Value = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(me.status(), 200);
    assert_eq!(rotated.status(), 200);
    assert_problem(replay, 401).await;
    assert_eq!(logout.status(), 204);
    assert_eq!(ready["status"], "ready");
}
