use evently_core::config::RateLimitQuota;
use evently_testkit::{TestApp, assert_problem, json, spawn_app, spawn_app_with};
use std::time::{Duration, Instant};

fn cookies_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

async fn cookie_session(app: &TestApp) -> (String, String) {
    let user = app.signed_in_user().await;
    let login = app.login(&user.email, evently_testkit::PASSWORD).await;
    (cookies_of(&login), user.email)
}

#[tokio::test]
async fn public_routes_pass_and_protected_routes_need_a_token() {
    let app = spawn_app().await;

    let health = app.client.get(app.url("/health")).send().await.unwrap();
    let docs = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    let register = app
        .register(&evently_testkit::unique_email(), evently_testkit::PASSWORD)
        .await;
    let me = app
        .client
        .get(app.url("/api/auth/me"))
        .send()
        .await
        .unwrap();
    let garbage = app.get_auth("/api/users/profile", "not.a.token").await;

    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["services"]["auth"]["status"], "up");
    assert_eq!(health["rateLimiter"]["backend"], "memory");
    assert_eq!(docs.status(), 200);
    assert_eq!(register.status(), 201);
    assert_eq!(me.headers()["www-authenticate"], "Bearer realm=\"evently\"");
    assert_problem(me, 401).await;
    assert_problem(garbage, 401).await;
}

#[tokio::test]
async fn internal_routes_are_never_reachable_through_the_gateway() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    for path in [
        "/internal/auth/verify",
        "/internal/users/x",
        "/internal/users/lookup",
        "/internal/events/batch",
        "/internal",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .header("x-internal-token", evently_testkit::TEST_INTERNAL_TOKEN)
            .json(&json!({"token": user.access_token}))
            .send()
            .await
            .unwrap();
        assert_problem(response, 404).await;
    }
    for path in [
        format!("/internal/users/{}", user.id),
        "/internal/openapi.json".to_owned(),
    ] {
        let get = app
            .client
            .get(app.url(&path))
            .header("x-internal-token", evently_testkit::TEST_INTERNAL_TOKEN)
            .send()
            .await
            .unwrap();
        assert_problem(get, 404).await;
    }
}

#[tokio::test]
async fn the_access_cookie_is_bridged_to_a_bearer_token() {
    let app = spawn_app().await;
    let (cookies, email) = cookie_session(&app).await;

    let me = app
        .client
        .get(app.url("/api/auth/me"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap();

    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["email"], email);
}

#[tokio::test]
async fn cookie_authenticated_writes_need_an_allowed_origin() {
    let app = spawn_app_with(|c| {
        c.gateway.cors_allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let (cookies, _) = cookie_session(&app).await;
    let put = |origin: Option<&str>, name: &str| {
        let mut r = app
            .client
            .put(app.url("/api/users/profile"))
            .header("cookie", &cookies)
            .json(&json!({"name": name}));
        if let Some(origin) = origin {
            r = r.header("origin", origin);
        }
        r.send()
    };

    let evil = put(Some("https://evil.example"), "Evil").await.unwrap();
    let none = put(None, "Nobody").await.unwrap();
    let allowed = put(Some("https://app.example.com"), "Allowed")
        .await
        .unwrap();

    assert_problem(evil, 403).await;
    assert_problem(none, 403).await;
    assert_eq!(allowed.status(), 200);
    let me: serde_json::Value = app
        .client
        .get(app.url("/api/auth/me"))
        .header("cookie", &cookies)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Allowed", "the refused writes changed nothing");
}

#[tokio::test]
async fn refresh_by_cookie_from_another_site_is_refused() {
    let app = spawn_app().await;
    let (cookies, _) = cookie_session(&app).await;

    let evil = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", &cookies)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    let same_site = app
        .client
        .post(app.url("/api/auth/refresh"))
        .header("cookie", &cookies)
        .header("origin", app.base.clone())
        .send()
        .await
        .unwrap();

    assert_problem(evil, 403).await;
    assert_eq!(
        same_site.status(),
        200,
        "the refused attempt did not rotate the token"
    );
}

#[tokio::test]
async fn the_authorization_header_wins_over_a_cookie() {
    let app = spawn_app().await;
    let (cookies, cookie_email) = cookie_session(&app).await;
    let header_user = app.signed_in_user().await;

    let me: serde_json::Value = app
        .client
        .get(app.url("/api/auth/me"))
        .header("cookie", &cookies)
        .bearer_auth(&header_user.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(me["email"], header_user.email);
    assert_ne!(me["email"], cookie_email);
}

#[tokio::test]
async fn cors_preflight_is_allowed_only_for_listed_origins() {
    let app = spawn_app_with(|c| {
        c.gateway.cors_allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };

    let allowed = preflight("https://app.example.com").await.unwrap();
    let denied = preflight("https://evil.example").await.unwrap();
    let simple = app
        .client
        .get(app.url("/api/events"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();

    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h.get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().to_lowercase().contains("origin"))
    );
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
    assert!(!simple.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn security_headers_and_hsts_when_configured() {
    let app = spawn_app_with(|c| c.gateway.hsts = true).await;

    for response in [
        app.client
            .get(app.url("/api/auth/me"))
            .send()
            .await
            .unwrap(),
        app.client.get(app.url("/api/nope")).send().await.unwrap(),
        app.client.get(app.url("/health")).send().await.unwrap(),
    ] {
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(
            h["strict-transport-security"]
                .to_str()
                .unwrap()
                .contains("max-age=31536000")
        );
        assert!(h.contains_key("x-request-id"));
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_headers_then_recovers() {
    let app = spawn_app_with(|c| {
        c.gateway.rate_limits.default = RateLimitQuota::new(60, 3);
    })
    .await;
    let user = app.signed_in_user().await;
    let other = app.signed_in_user().await;

    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let r = app.get_auth("/api/auth/me", &user.access_token).await;
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    let limited = last.unwrap();
    let h = limited.headers().clone();
    let other_user = app.get_auth("/api/auth/me", &other.access_token).await;

    assert_eq!(statuses, vec![200, 200, 200, 429]);
    assert_eq!(h["ratelimit-limit"], "3");
    assert_eq!(h["ratelimit-remaining"], "0");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=1).contains(&retry), "{retry}");
    assert_problem(limited, 429).await;
    assert_eq!(other_user.status(), 200, "budgets are per user");
    let deadline = Instant::now() + Duration::from_secs(10);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    loop {
        let r = app.get_auth("/api/auth/me", &user.access_token).await;
        if r.status() == 200 {
            assert!(r.headers().contains_key("ratelimit-remaining"));
            break;
        }
        assert!(Instant::now() < deadline, "the budget never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sign_in_routes_have_a_stricter_budget_per_client_address() {
    let app = spawn_app_with(|c| {
        c.gateway.rate_limits.auth = RateLimitQuota::new(60, 2);
    })
    .await;

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            app.login("nobody@example.com", "whatever pass")
                .await
                .status()
                .as_u16(),
        );
    }
    let health = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();

    assert_eq!(statuses, vec![401, 401, 429]);
    assert_eq!(health.status(), 200, "operational routes are never limited");
}

#[tokio::test]
async fn a_client_cannot_escape_its_budget_by_claiming_other_addresses() {
    let app = spawn_app_with(|c| {
        c.gateway.rate_limits.auth = RateLimitQuota::new(60, 2);
    })
    .await;

    // The edge does not trust X-Forwarded-For from clients (server.trust_forwarded_for is off),
    // so every claimed address is the same peer.
    let mut statuses = Vec::new();
    for claimed in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let response = app
            .client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", claimed)
            .header("x-real-ip", claimed)
            .json(&json!({"email": "nobody@example.com", "password": "whatever pass"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses, vec![401, 401, 429]);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let huge = json!({"email": "a@b.io", "password": "x".repeat(200_000), "name": "n"});

    let response = app.post_json("/api/auth/register", &huge).await;

    assert_problem(response, 413).await;
}

#[tokio::test]
async fn every_error_answer_carries_the_security_and_cors_headers_and_no_server_banner() {
    use evently_testkit::{ServiceName, spawn_services};
    const ORIGIN: &str = "https://app.example";
    // Auth in process; events "remote" at a port nothing listens on.
    let app = spawn_services(&[ServiceName::Gateway, ServiceName::Auth], |c| {
        c.gateway.hsts = true;
        c.gateway.cors_allowed_origins = vec![ORIGIN.into()];
        c.gateway
            .services
            .insert("events".into(), "http://127.0.0.1:1".into());
        c.gateway.breaker.consecutive_failures = 1;
        c.gateway.breaker.open_seconds = 30;
        c.gateway.max_retries = 0;
        // Registration (413 below) and the first sign-in spend the sign-in budget.
        c.gateway.rate_limits.auth = RateLimitQuota::new(60, 2);
    })
    .await;
    let login = json!({"email": "nobody@example.com", "password": "whatever pass"});
    let huge = json!({"email": "a@b.io", "password": "x".repeat(200_000), "name": "n"});
    // Every request from an allowed cross-site origin, which must be able to read the error.
    let send = async |method: reqwest::Method, path: &str, body: Option<&serde_json::Value>| {
        let mut request = app
            .client
            .request(method, app.url(path))
            .header("origin", ORIGIN);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    };

    use reqwest::Method;
    let answers = vec![
        send(Method::GET, "/api/auth/me", None).await,
        send(Method::GET, "/api/nope", None).await,
        send(Method::DELETE, "/api/auth/login", None).await,
        send(Method::POST, "/api/auth/register", Some(&huge)).await,
        send(Method::POST, "/api/auth/login", Some(&login)).await,
        send(Method::POST, "/api/auth/login", Some(&login)).await,
        send(Method::GET, "/api/events", None).await,
        send(Method::GET, "/api/events", None).await,
        send(Method::GET, "/health", None).await,
    ];

    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, vec![401, 404, 405, 413, 401, 429, 502, 503, 503]);
    for response in &answers {
        let h = response.headers();
        let status = response.status();
        assert_eq!(h["x-content-type-options"], "nosniff", "{status}");
        assert_eq!(h["x-frame-options"], "DENY", "{status}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{status}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{status}"
        );
        assert!(
            h.get("strict-transport-security")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("max-age=31536000")),
            "{status}: {h:?}"
        );
        assert_eq!(h["access-control-allow-origin"], ORIGIN, "{status}");
        assert!(!h.contains_key("server"), "{status}: no server banner");
        assert!(h.contains_key("x-request-id"), "{status}");
    }
}
