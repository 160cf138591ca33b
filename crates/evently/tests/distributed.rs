//! evently across processes: auth, events and two gateways as separate `evently` processes on
//! PostgreSQL, Redis and (when `EVENTLY_TEST_NATS_URL` is set) NATS of this machine. Skipped
//! (with a message) without `EVENTLY_TEST_POSTGRES_URL` and `EVENTLY_TEST_REDIS_URL`.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{
    Serve, admin_create, drop_database, evently, free_port, fresh_database, start, temp_dir,
};

const SECRET: &str = "distributed-test-secret-0123456789abcdef";
const INTERNAL: &str = "distributed-test-internal-token";

struct Deployment {
    dir: std::path::PathBuf,
    postgres: String,
    redis: String,
    nats: Option<String>,
    prefix: String,
    auth_port: u16,
    events_port: u16,
}

impl Deployment {
    fn shared(&self, mut command: Command) -> Command {
        command
            .env("EVENTLY_JWT__SECRET", SECRET)
            .env("EVENTLY_INTERNAL__TOKEN", INTERNAL)
            .env("EVENTLY_AUTH__COOKIE_SECURE", "false");
        command
    }

    fn auth(&self) -> Serve {
        let mut command = self.shared(evently(&self.dir));
        command
            .args(["serve", "--services", "auth", "--listen"])
            .arg(format!("127.0.0.1:{}", self.auth_port))
            .env("EVENTLY_DATABASE_URL", &self.postgres)
            .env("EVENTLY_SERVER__TRUST_FORWARDED_FOR", "true");
        start(command).0
    }

    fn events(&self) -> Serve {
        let mut command = self.shared(evently(&self.dir));
        command
            .args(["serve", "--services", "events", "--listen"])
            .arg(format!("127.0.0.1:{}", self.events_port))
            .env("EVENTLY_DATABASE_URL", &self.postgres)
            .env(
                "EVENTLY_BUS__STREAM_PREFIX",
                self.prefix.replace('-', "_").to_uppercase(),
            );
        if let Some(nats) = &self.nats {
            command.env("EVENTLY_NATS_URL", nats);
        }
        start(command).0
    }

    fn create_admin(&self, email: &str) {
        let mut command = self.shared(evently(&self.dir));
        command.env("EVENTLY_DATABASE_URL", &self.postgres);
        let output = admin_create(command, email, "Root", "correct horse battery");
        assert!(output.status.success());
    }

    fn gateway(&self) -> Serve {
        let mut command = self.shared(evently(&self.dir));
        command
            .args(["serve", "--services", "gateway", "--listen", "127.0.0.1:0"])
            .env(
                "EVENTLY_GATEWAY__SERVICES__AUTH",
                format!("http://127.0.0.1:{}", self.auth_port),
            )
            .env(
                "EVENTLY_GATEWAY__SERVICES__EVENTS",
                format!("http://127.0.0.1:{}", self.events_port),
            )
            .env("EVENTLY_REDIS_URL", &self.redis)
            .env("EVENTLY_REDIS__KEY_PREFIX", &self.prefix)
            // One token a minute after a burst of 40: refills cannot blur the count below.
            .env("EVENTLY_GATEWAY__RATE_LIMITS__DEFAULT__PER_MINUTE", "1")
            .env("EVENTLY_GATEWAY__RATE_LIMITS__DEFAULT__BURST", "40")
            .env("EVENTLY_GATEWAY__BREAKER__CONSECUTIVE_FAILURES", "3")
            .env("EVENTLY_GATEWAY__BREAKER__OPEN_SECONDS", "1");
        start(command).0
    }
}

async fn poll_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn health_of(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn auth_events_and_two_gateways_as_separate_processes() {
    let (Ok(postgres), Ok(redis)) = (
        std::env::var("EVENTLY_TEST_POSTGRES_URL"),
        std::env::var("EVENTLY_TEST_REDIS_URL"),
    ) else {
        eprintln!(
            "skipped: auth_events_and_two_gateways_as_separate_processes: EVENTLY_TEST_POSTGRES_URL or EVENTLY_TEST_REDIS_URL not set"
        );
        return;
    };
    // A database of its own: the other test here also runs events with a relay.
    let database = format!("distributed_a_{}_{}", std::process::id(), free_port());
    let admin_url = postgres;
    let postgres = fresh_database(&admin_url, &database).await;
    let d = Deployment {
        dir: temp_dir(),
        postgres,
        redis,
        nats: std::env::var("EVENTLY_TEST_NATS_URL").ok(),
        prefix: format!("evently-test-{}", std::process::id()),
        auth_port: free_port(),
        events_port: free_port(),
    };
    let auth = d.auth();
    let _events = d.events();
    let gw1 = d.gateway();
    let gw2 = d.gateway();
    let http = reqwest::Client::new();
    let email = format!(
        "dist-{}@example.com",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );

    // register -> login -> me through the gateway
    let register = http
        .post(format!("{}/api/auth/register", gw1.base))
        .json(
            &serde_json::json!({"email": email, "password": "correct horse battery", "name": "D"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 201);
    let login: serde_json::Value = http
        .post(format!("{}/api/auth/login", gw2.base))
        .json(&serde_json::json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().unwrap().to_owned();
    let me = http
        .get(format!("{}/api/auth/me", gw1.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let health: serde_json::Value = http
        .get(format!("{}/health", gw1.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["rateLimiter"]["backend"], "redis");

    // An admin (bootstrapped with the CLI) creates an event through one gateway; the other
    // gateway serves it publicly.
    let admin_email = format!("root-{email}");
    d.create_admin(&admin_email);
    let admin: serde_json::Value = http
        .post(format!("{}/api/auth/login", gw1.base))
        .json(&serde_json::json!({"email": admin_email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let in_30_days = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let in_10_days = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let event = serde_json::json!({
        "eventName": "Distributed Tour", "eventDate": rfc(in_30_days),
        "venueName": "Lumen Field", "totalSeats": 500, "saleStartTime": rfc(in_10_days),
        "basePrice": 12500, "currency": "USD", "eventType": "concert", "tags": ["pop"],
    });
    let admin_token = admin["accessToken"].as_str().unwrap();
    let created = http
        .post(format!("{}/api/events", gw1.base))
        .bearer_auth(admin_token)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    // Signed in, so that this request draws on the admin's budget, not the address's.
    let public = http
        .get(format!(
            "{}/api/events/{}",
            gw2.base,
            created["eventId"].as_str().unwrap()
        ))
        .bearer_auth(admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
    let user_cannot = http
        .post(format!("{}/api/events", gw2.base))
        .bearer_auth(&token)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(user_cannot.status(), 403);
    assert_eq!(
        health_of(&http, &gw1.base).await["services"]["events"]["status"],
        "up"
    );

    // Two gateways, one Redis: one budget of 40 for this client address.
    let mut allowed = 0;
    for i in 0..50 {
        let gw = if i % 2 == 0 { &gw1 } else { &gw2 };
        let status = http
            .get(format!("{}/api/users/profile", gw.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        match status {
            401 => allowed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(allowed, 40, "both gateways drew on one shared budget");

    // Kill auth: the breaker opens and answers fast; /health is degraded.
    drop(auth);
    let mut last = 0;
    for _ in 0..6 {
        last = http
            .get(format!("{}/api/auth/me", gw1.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(last == 502 || last == 503, "{last}");
    }
    assert_eq!(last, 503);
    let started = Instant::now();
    let fast = http
        .get(format!("{}/api/auth/me", gw1.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(fast.status(), 503);
    assert!(started.elapsed() < Duration::from_millis(500));
    let degraded = http
        .get(format!("{}/health", gw1.base))
        .send()
        .await
        .unwrap();
    assert_eq!(degraded.status(), 503);
    let degraded: serde_json::Value = degraded.json().await.unwrap();
    assert_eq!(degraded["status"], "degraded");

    // Restart auth on the same port: the half-open probe succeeds and traffic flows again.
    let _auth = d.auth();
    poll_until("recovery through the gateway", async || {
        http.get(format!("{}/api/auth/me", gw1.base))
            .bearer_auth(&token)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let healthy = http
        .get(format!("{}/health", gw1.base))
        .send()
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
    let _ = std::fs::remove_dir_all(&d.dir);
    drop_database(&admin_url, &database).await;
}

/// A settings change made in one process reaches booking in another over NATS: the platform
/// ticket limit is lowered through the settings process and the next hold in the booking
/// process is refused. Skipped without `EVENTLY_TEST_POSTGRES_URL` and
/// `EVENTLY_TEST_NATS_URL`.
#[tokio::test]
async fn a_platform_ticket_limit_set_in_one_process_refuses_holds_in_another() {
    let (Ok(postgres), Ok(nats)) = (
        std::env::var("EVENTLY_TEST_POSTGRES_URL"),
        std::env::var("EVENTLY_TEST_NATS_URL"),
    ) else {
        eprintln!(
            "skipped: a_platform_ticket_limit_set_in_one_process_refuses_holds_in_another: EVENTLY_TEST_POSTGRES_URL or EVENTLY_TEST_NATS_URL not set"
        );
        return;
    };
    // A database of its own: the other test here also runs events with a relay, which would
    // publish this test's outbox rows to its own streams.
    let database = format!("distributed_b_{}_{}", std::process::id(), free_port());
    let admin_url = postgres;
    let postgres = fresh_database(&admin_url, &database).await;
    let dir = temp_dir();
    let prefix = format!("EVENTLY_SETTINGS_TEST_{}", std::process::id());
    let settings_port = free_port();
    let process = |services: &str, listen: String| {
        let mut command = evently(&dir);
        command
            .args(["serve", "--services", services, "--listen", &listen])
            .env("EVENTLY_JWT__SECRET", SECRET)
            .env("EVENTLY_INTERNAL__TOKEN", INTERNAL)
            .env("EVENTLY_DATABASE_URL", &postgres)
            .env("EVENTLY_NATS_URL", &nats)
            .env("EVENTLY_BUS__STREAM_PREFIX", &prefix)
            .env(
                "EVENTLY_GATEWAY__SERVICES__SETTINGS",
                format!("http://127.0.0.1:{settings_port}"),
            )
            .env(
                "EVENTLY_GATEWAY__RATE_LIMITS__DEFAULT__PER_MINUTE",
                "100000",
            )
            .env("EVENTLY_GATEWAY__RATE_LIMITS__DEFAULT__BURST", "100000")
            .env(
                "EVENTLY_GATEWAY__RATE_LIMITS__PURCHASE__PER_MINUTE",
                "100000",
            )
            .env("EVENTLY_GATEWAY__RATE_LIMITS__PURCHASE__BURST", "100000");
        command
    };
    let _settings = start(process("settings", format!("127.0.0.1:{settings_port}"))).0;
    let main = start(process(
        "auth,events,booking,gateway",
        "127.0.0.1:0".to_owned(),
    ))
    .0;
    let http = reqwest::Client::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let admin_email = format!("settings-root-{nanos}@example.com");
    let mut command = evently(&dir);
    command
        .env("EVENTLY_JWT__SECRET", SECRET)
        .env("EVENTLY_DATABASE_URL", &postgres);
    assert!(
        admin_create(command, &admin_email, "Root", "correct horse battery")
            .status
            .success()
    );
    let login = async |email: &str| -> String {
        let body: serde_json::Value = http
            .post(format!("{}/api/auth/login", main.base))
            .json(&serde_json::json!({"email": email, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["accessToken"].as_str().unwrap().to_owned()
    };
    let admin = login(&admin_email).await;
    let buyer_email = format!("settings-buyer-{nanos}@example.com");
    let registered = http
        .post(format!("{}/api/auth/register", main.base))
        .json(&serde_json::json!({"email": buyer_email, "password": "correct horse battery", "name": "B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let buyer = login(&buyer_email).await;
    let rfc = |d: time::Duration| {
        (time::OffsetDateTime::now_utc() + d)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let created: serde_json::Value = http
        .post(format!("{}/api/events", main.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "eventName": "Settings Across Processes", "eventDate": rfc(time::Duration::days(30)),
            "venueName": "Hall", "totalSeats": 100, "saleStartTime": rfc(time::Duration::seconds(-5)),
            "status": "ON_SALE", "basePrice": 3000, "currency": "EUR",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event_id = created["eventId"].as_str().unwrap().to_owned();
    let put_platform = async |document: serde_json::Value| {
        let response = http
            .put(format!("{}/api/settings/platform", main.base))
            .bearer_auth(&admin)
            .header("If-Match", "*")
            .json(&document)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    };
    // The status of a hold of `quantity`, and the problem type of a refusal.
    let hold = async |quantity: i64| -> (u16, String) {
        let response = http
            .post(format!("{}/api/orders/holds", main.base))
            .bearer_auth(&buyer)
            .json(&serde_json::json!({"eventId": event_id, "quantity": quantity}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        (status, body["type"].as_str().unwrap_or_default().to_owned())
    };
    // The platform document of earlier runs stays in the database; this run starts from none.
    put_platform(serde_json::json!({})).await;
    poll_until("a hold of three within the configured limit", async || {
        hold(3).await.0 == 201
    })
    .await;

    put_platform(serde_json::json!({"maxTicketsPerUser": 2})).await;

    poll_until("the lowered limit reaching booking", async || {
        hold(3).await.0 != 201
    })
    .await;
    assert_eq!(
        hold(3).await,
        (409, "https://evently.dev/problems/ticket-limit".to_owned())
    );
    assert_eq!(hold(2).await.0, 201);
    put_platform(serde_json::json!({})).await;
    let _ = std::fs::remove_dir_all(&dir);
    drop_database(&admin_url, &database).await;
}
