use evently_core::config::RateLimitQuota;
use evently_testkit::{
    PASSWORD, ServiceName, TestApp, assert_problem, json, spawn_services, unique_email,
};
use secrecy::SecretString;
use std::time::{Duration, Instant};

pub(crate) async fn auth_and_gateway(
    tweak: impl Fn(&mut evently_core::config::Config) + Copy,
) -> (TestApp, TestApp) {
    let auth = spawn_services(&[ServiceName::Auth], |c| {
        c.server.trust_forwarded_for = true;
        tweak(c);
    })
    .await;
    let base = auth.base.clone();
    let gateway = spawn_services(&[ServiceName::Gateway], |c| {
        c.gateway.services.insert("auth".into(), base);
        c.gateway.breaker.consecutive_failures = 3;
        c.gateway.breaker.open_seconds = 30;
        tweak(c);
    })
    .await;
    (auth, gateway)
}

#[tokio::test]
async fn remote_services_are_proxied_with_the_same_contract() {
    let (_auth, gw) = auth_and_gateway(|_| {}).await;
    let email = unique_email();

    let register = gw.register(&email, PASSWORD).await;
    let user = gw.login_user(&email).await;
    let me = gw
        .client
        .get(gw.url("/api/auth/me"))
        .bearer_auth(&user.access_token)
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    let no_token = gw.client.get(gw.url("/api/auth/me")).send().await.unwrap();
    let internal = gw
        .client
        .get(gw.url(&format!("/internal/users/{}", user.id)))
        .header("x-internal-token", evently_testkit::TEST_INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    let health: serde_json::Value = gw
        .client
        .get(gw.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(register.status(), 201);
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["x-request-id"], "trace-me-123");
    assert_problem(no_token, 401).await;
    assert_problem(internal, 404).await;
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["services"]["auth"]["mode"], "remote");
    assert_eq!(health["services"]["auth"]["breaker"], "closed");
}

#[tokio::test]
async fn proxied_bodies_are_limited_and_errors_stay_problems() {
    let (_auth, gw) = auth_and_gateway(|_| {}).await;

    let huge = gw
        .post_json(
            "/api/auth/register",
            &json!({"email": "a@b.io", "password": "x".repeat(200_000), "name": "n"}),
        )
        .await;
    let malformed = gw
        .client
        .post(gw.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    let unknown = gw
        .client
        .get(gw.url("/api/nothing-here"))
        .send()
        .await
        .unwrap();

    assert_problem(huge, 413).await;
    assert_problem(malformed, 400).await;
    assert_problem(unknown, 404).await;
}

#[tokio::test]
async fn a_dead_upstream_opens_the_breaker_and_health_degrades() {
    let (auth, gw) = auth_and_gateway(|_| {}).await;
    let user = gw.signed_in_user().await;
    drop(auth);
    // Let the upstream's listener close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = gw.get_auth("/api/auth/me", &user.access_token).await;
        if r.status() != 200 {
            break;
        }
        assert!(Instant::now() < deadline, "upstream never went away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            gw.get_auth("/api/auth/me", &user.access_token)
                .await
                .status()
                .as_u16(),
        );
    }
    let fast = Instant::now();
    let open = gw.get_auth("/api/auth/me", &user.access_token).await;
    let fast_ms = fast.elapsed().as_millis();
    let health = gw.client.get(gw.url("/health")).send().await.unwrap();

    assert!(
        statuses.iter().all(|s| *s == 502 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(*statuses.last().unwrap(), 503, "{statuses:?}");
    assert!(open.headers().contains_key("retry-after"));
    assert_problem(open, 503).await;
    assert!(
        fast_ms < 1000,
        "an open breaker answers without waiting ({fast_ms} ms)"
    );
    assert_eq!(health.status(), 503);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["services"]["auth"]["status"], "down");
    assert_eq!(health["services"]["auth"]["breaker"], "open");
}

#[tokio::test]
async fn two_gateways_sharing_redis_enforce_one_budget() {
    let Ok(redis) = std::env::var("EVENTLY_TEST_REDIS_URL") else {
        eprintln!(
            "skipped: two_gateways_sharing_redis_enforce_one_budget: EVENTLY_TEST_REDIS_URL not set"
        );
        return;
    };
    let prefix = format!("evently-test-{}", uuid::Uuid::new_v4().simple());
    let tweak = |c: &mut evently_core::config::Config| {
        c.redis.url = Some(SecretString::from(redis.clone()));
        c.redis.key_prefix = prefix.clone();
        c.gateway.rate_limits.default = RateLimitQuota::new(6, 6);
    };
    let auth = spawn_services(&[ServiceName::Auth], |_| {}).await;
    let gateways: Vec<TestApp> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let base = auth.base.clone();
            let tweak = &tweak;
            v.push(
                spawn_services(&[ServiceName::Gateway], move |c| {
                    c.gateway.services.insert("auth".into(), base);
                    tweak(c);
                })
                .await,
            );
        }
        v
    };

    let mut allowed = 0;
    for i in 0..10 {
        let gw = &gateways[i % 2];
        let r = gw
            .client
            .get(gw.url("/api/users/profile"))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            401 => allowed += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }

    assert_eq!(allowed, 6, "one budget of 6 across both gateways");
    let health: serde_json::Value = gateways[0]
        .client
        .get(gateways[0].url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["rateLimiter"]["backend"], "redis");
    assert_eq!(health["rateLimiter"]["status"], "up");
}

/// An events service stand-in that answers `GET /api/events` at once, or never while `slow`
/// is set, and counts the requests it receives.
async fn switchable_upstream() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let slow = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, c) = (slow.clone(), calls.clone());
    let router = axum::Router::new().route(
        "/api/events",
        axum::routing::get(move || {
            let (slow, calls) = (s.clone(), c.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                if slow.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                axum::Json(json!({"items": []}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, slow, calls)
}

#[tokio::test]
async fn a_slow_upstream_times_out_then_the_breaker_stops_calling_it_until_a_probe_succeeds() {
    use std::sync::atomic::Ordering;
    let (base, slow, calls) = switchable_upstream().await;
    let gw = spawn_services(&[ServiceName::Gateway], |c| {
        c.gateway.services.insert("events".into(), base);
        c.gateway.upstream_timeout_seconds = 1;
        c.gateway.breaker.consecutive_failures = 2;
        c.gateway.breaker.open_seconds = 1;
    })
    .await;
    let get = async || {
        let started = Instant::now();
        let response = gw.client.get(gw.url("/api/events")).send().await.unwrap();
        (response, started.elapsed())
    };

    // Two timeouts: 504 each, after the route's timeout.
    let (first, first_took) = get().await;
    let (second, _) = get().await;
    // Open: answered at once, and the upstream is not called.
    let (open, open_took) = get().await;
    let calls_while_open = calls.load(Ordering::SeqCst);
    // After open_seconds one probe goes through; still slow, so it fails and reopens.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (probe, _) = get().await;
    let (reopened, _) = get().await;
    let calls_after_failed_probe = calls.load(Ordering::SeqCst);
    // The upstream recovers: the next probe succeeds and closes the breaker.
    slow.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (recovered, _) = get().await;
    let (after, _) = get().await;
    let metrics = gw.metrics().await;

    assert!(first_took >= Duration::from_millis(900), "{first_took:?}");
    assert_problem(first, 504).await;
    assert_problem(second, 504).await;
    assert!(open.headers().contains_key("retry-after"));
    assert_problem(open, 503).await;
    assert!(open_took < Duration::from_millis(500), "{open_took:?}");
    assert_eq!(
        calls_while_open, 2,
        "an open breaker does not call the upstream"
    );
    assert_problem(probe, 504).await;
    assert_problem(reopened, 503).await;
    assert_eq!(calls_after_failed_probe, 3, "one probe while half-open");
    assert_eq!(recovered.status(), 200);
    assert_eq!(after.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert!(
        metrics.contains(r#"outcome="timeout""#) && metrics.contains(r#"outcome="breaker_open""#),
        "{metrics}"
    );
}
