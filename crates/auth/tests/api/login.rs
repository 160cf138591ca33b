use evently_testkit::{PASSWORD, assert_problem, json, spawn_app, spawn_app_with, unique_email};
use std::time::{Duration, Instant};

#[tokio::test]
async fn login_returns_tokens_and_sets_http_only_cookies() {
    let app = spawn_app_with(|c| c.auth.cookie_secure = true).await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;

    let response = app.login(&email, PASSWORD).await;

    assert_eq!(response.status(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("access_token="))
        .unwrap();
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("refresh_token="))
        .unwrap();
    for c in [access, refresh] {
        assert!(
            c.contains("HttpOnly") && c.contains("Secure") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(!c.contains("Domain"), "{c}");
    }
    assert!(access.contains("Path=/;"), "{access}");
    assert!(refresh.contains("Path=/api/auth"), "{refresh}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["tokenType"], "bearer");
    assert_eq!(body["expiresIn"], 900);
    assert_eq!(body["user"]["email"], email);
    assert!(body["accessToken"].as_str().unwrap().split('.').count() == 3);
    assert!(body["refreshToken"].as_str().unwrap().len() >= 43);
}

#[tokio::test]
async fn same_answer_for_unknown_email_and_wrong_password() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;

    let wrong = app.login(&email, "wrong password here").await;
    let unknown = app.login(&unique_email(), PASSWORD).await;

    let wrong = assert_problem(wrong, 401).await;
    let unknown = assert_problem(unknown, 401).await;
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn email_case_and_spaces_do_not_matter_at_login() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;

    let response = app
        .login(&format!(" {} ", email.to_uppercase()), PASSWORD)
        .await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password_then_unlock() {
    let app = spawn_app_with(|c| {
        c.auth.throttle.account_max_failures = 3;
        c.auth.throttle.base_lock_seconds = 1;
        c.auth.throttle.max_lock_seconds = 2;
    })
    .await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(app.login(&email, "wrong password here").await.status(), 401);
    }

    let locked = app.login(&email, PASSWORD).await;

    assert!(locked.headers().contains_key("retry-after"));
    assert_problem(locked, 429).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.login(&email, PASSWORD).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(Instant::now() < deadline, "the lock never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn one_client_spraying_many_accounts_is_throttled() {
    let app = spawn_app_with(|c| c.auth.throttle.ip_max_failures = 5).await;

    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            app.login(&unique_email(), "spray password 1")
                .await
                .status()
                .as_u16(),
        );
    }

    assert_eq!(&statuses[..5], &[401; 5]);
    assert_eq!(statuses[6], 429, "{statuses:?}");
}

#[tokio::test]
async fn cookie_session_reads_me_and_refreshes() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let login = app.login(&email, PASSWORD).await;
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let cookie_header = cookies.join("; ");

    let me = app
        .client
        .get(app.url("/api/auth/me"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    let refreshed = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", &cookie_header)
        .header("origin", app.base.clone())
        .send()
        .await
        .unwrap();

    assert_eq!(me.status(), 200);
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.headers().get_all("set-cookie").iter().count(), 2);
}

#[tokio::test]
async fn legacy_bcrypt_hash_logs_in_and_is_upgraded_to_argon2id() {
    let app = spawn_app().await;
    let email = unique_email();
    app.register(&email, PASSWORD).await;
    let auth = app.app_auth.as_ref().unwrap();
    let store = auth.service.store().clone();
    let parsed = evently_auth::domain::Email::parse(&email).unwrap();
    let user = store.user_by_email(&parsed).await.unwrap().unwrap();
    let legacy = bcrypt::hash(PASSWORD, 4).unwrap();
    store
        .set_password_hash(user.user.id, &legacy, 1)
        .await
        .unwrap();

    let response = app.login(&email, PASSWORD).await;

    assert_eq!(response.status(), 200);
    let stored = store
        .user_by_email(&parsed)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn malformed_login_bodies_are_4xx() {
    let app = spawn_app().await;

    let missing = app
        .post_json("/api/auth/login", &json!({"email": "a@b.io"}))
        .await;
    let extra = app
        .post_json(
            "/api/auth/login",
            &json!({"email": "a@b.io", "password": "x", "admin": true}),
        )
        .await;

    assert_problem(missing, 422).await;
    assert_problem(extra, 422).await;
}
