//! Test support for evently: run the real application on a random port, temporary data
//! directories, PostgreSQL test URLs, and the store conformance macro.
//!
//! Tests that need PostgreSQL read `EVENTLY_TEST_POSTGRES_URL`; without it they print
//! `skipped: EVENTLY_TEST_POSTGRES_URL not set` and pass, so `cargo test` works on a machine
//! with no servers. Logs stay silent unless `EVENTLY_TEST_LOG=1`.

#![expect(
    clippy::unwrap_used,
    reason = "test support fails loudly on broken set-up"
)]

pub mod crash;
pub mod proxy;

use evently::App;
use evently_core::clock::{SharedClock, SystemClock};
use evently_core::config::{Config, LogConfig, LogFormat};
use evently_core::identity::JwtKeys;
pub use evently_core::service::ServiceName;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use serde_json::{Value, json};

/// The JWT secret test apps sign with, so tests can forge tokens.
pub const TEST_JWT_SECRET: &str = "evently-test-secret-0123456789-abcdefghij";
/// The internal credential of test apps.
pub const TEST_INTERNAL_TOKEN: &str = "evently-test-internal-token";

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("evently-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `EVENTLY_TEST_POSTGRES_URL`, if set.
pub fn postgres_url() -> Option<String> {
    std::env::var("EVENTLY_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Says that a test was skipped and why.
pub fn skip(test: &str, var: &str) {
    eprintln!("skipped: {test}: {var} not set");
}

/// A fresh schema name for one PostgreSQL test.
pub fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

pub fn init_test_logging() {
    if std::env::var("EVENTLY_TEST_LOG").is_ok_and(|v| v == "1") {
        evently_core::telemetry::init(&LogConfig {
            filter: "debug,sqlx=warn,hyper=info".into(),
            format: LogFormat::Pretty,
            ..LogConfig::default()
        });
    }
}

/// A configuration for tests: temp data dir, known secrets, cheap password hashing (never
/// the default), cookies without `Secure` so that plain-HTTP clients get them back.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.data_dir = data_dir.to_path_buf();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.jwt.secret = Some(SecretString::from(TEST_JWT_SECRET));
    config.internal.token = Some(SecretString::from(TEST_INTERNAL_TOKEN));
    config.auth.password.memory_kib = 256;
    config.auth.password.iterations = 1;
    config.auth.password.parallelism = 1;
    // Functional tests send many requests from one address; the gateway's tests set their own
    // quotas to exercise limiting.
    let generous = evently_core::config::RateLimitQuota::new(1_000_000, 1_000_000);
    config.gateway.rate_limits.default = generous;
    config.gateway.rate_limits.auth = generous;
    config.gateway.rate_limits.purchase = generous;
    // Expired holds come back within 50 ms, so expiry tests need not wait long.
    config.booking.expiry_max_sleep_ms = 50;
    config.bus.poll_interval_ms = 10;
    config
}

/// The real application, serving on a random port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub config: Config,
    pub app_auth: Option<evently_auth::Auth>,
    pub app_events: Option<evently_events::Events>,
    pub app_booking: Option<evently_booking::Booking>,
    shutdown: CancellationToken,
    _dir: Option<TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Spawns every service on SQLite in a temp directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns every service after `tweak` adjusts the test configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = TempDir::new();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    spawn_config(config, Some(dir), Arc::new(SystemClock)).await
}

/// Spawns only `services` (e.g. auth without the gateway in front).
pub async fn spawn_services(services: &[ServiceName], tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = TempDir::new();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    spawn_with(config, Some(dir), Arc::new(SystemClock), services).await
}

/// Spawns the application with an explicit configuration and clock.
pub async fn spawn_config(config: Config, dir: Option<TempDir>, clock: SharedClock) -> TestApp {
    spawn_with(config, dir, clock, &[]).await
}

async fn spawn_with(
    config: Config,
    dir: Option<TempDir>,
    clock: SharedClock,
    services: &[ServiceName],
) -> TestApp {
    init_test_logging();
    config.validate().unwrap();
    let mut app: App = evently::build(&config, services, clock).await.unwrap();
    let auth = app.auth.take();
    let events = app.events.clone();
    let booking = app.booking.clone();
    let search = app.search.clone();
    let listener = TcpListener::bind(config.server.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serve_config = config.clone();
    let token = shutdown.clone();
    tokio::spawn(async move {
        evently::serve(&serve_config, app, listener, token)
            .await
            .unwrap();
    });
    // Search is ready once its index has read the streams; tests start from there.
    if let Some(search) = search {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !search.caught_up() {
            assert!(
                std::time::Instant::now() < deadline,
                "search never caught up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        config,
        app_auth: auth,
        app_events: events,
        app_booking: booking,
        shutdown,
        _dir: dir,
    }
}

/// A unique email for one test.
pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The keys this app signs with, for forging edge-case tokens.
    pub fn keys(&self) -> JwtKeys {
        JwtKeys::new(&self.config.jwt, &SecretString::from(TEST_JWT_SECRET))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/auth/register",
            &json!({"email": email, "password": password, "name": "Test User"}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers and signs in a fresh user.
    pub async fn signed_in_user(&self) -> TestUser {
        let email = unique_email();
        let r = self.register(&email, PASSWORD).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        self.login_user(&email).await
    }

    pub async fn login_user(&self, email: &str) -> TestUser {
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        TestUser {
            id: body["user"]["userId"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            access_token: body["accessToken"].as_str().unwrap().to_owned(),
            refresh_token: body["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an admin directly through the service (as `evently admin create` does) and
    /// signs them in.
    pub async fn signed_in_admin(&self) -> TestUser {
        use evently_auth::domain::{Email, Name, Password};
        let email = unique_email();
        let auth = self.app_auth.as_ref().expect("auth runs in this app");
        auth.service
            .register(
                Email::parse(&email).unwrap(),
                Password::parse(PASSWORD).unwrap(),
                Name::parse("Admin").unwrap(),
                evently_core::identity::Role::Admin,
            )
            .await
            .unwrap();
        self.login_user(&email).await
    }
}

/// Asserts that `response` is a problem+json with `status`, and returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert_eq!(content_type, "application/problem+json", "body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], status);
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("https://evently.dev/problems/")
    );
    assert!(body["title"].is_string());
    for leak in ["serde", "sqlx", "panicked", "evently_", "SELECT", "INSERT"] {
        assert!(!text.contains(leak), "problem leaks `{leak}`: {text}");
    }
    body
}

/// Runs a store conformance suite against SQLite (always) and PostgreSQL (when
/// `EVENTLY_TEST_POSTGRES_URL` is set; otherwise each test reports itself skipped).
///
/// `sqlite` is an async fn `(dir: &Path) -> Store`; `postgres` is an async fn
/// `(url: String, schema: String) -> Store`; `suite` is the module of `async fn test(Store)`.
#[macro_export]
macro_rules! conformance_suite {
    (suite: $suite:path, sqlite: $sqlite:path, postgres: $postgres:path, tests: [$($test:ident),+ $(,)?]) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    use $suite as suite;
                    let dir = $crate::TempDir::new();
                    let store = $sqlite(dir.path()).await;
                    suite::$test(store).await;
                }
            )+
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    use $suite as suite;
                    let Some(url) = $crate::postgres_url() else {
                        $crate::skip(concat!("postgres::", stringify!($test)), "EVENTLY_TEST_POSTGRES_URL");
                        return;
                    };
                    let store = $postgres(url, $crate::fresh_schema()).await;
                    suite::$test(store).await;
                }
            )+
        }
    };
}

/// A database of its own on the test PostgreSQL server, for a test that must not disturb
/// others (it terminates its connections, or cuts its server off); dropped, with every
/// connection to it, when the value is.
#[derive(Debug)]
pub struct FreshDatabase {
    /// Its URL.
    pub url: String,
    server: String,
    name: String,
}

impl FreshDatabase {
    /// Creates one on the server at `server_url` (a `postgres://…/<db>` URL).
    ///
    /// # Panics
    /// When the server cannot be reached or the database cannot be created.
    pub async fn create(server_url: &str) -> Self {
        use sqlx::Connection;
        let name = format!("evently_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(server_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let (base, _) = server_url.rsplit_once('/').unwrap();
        Self {
            url: format!("{base}/{name}"),
            server: server_url.to_owned(),
            name,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime; the database is dropped from a runtime of
        // its own on another thread.
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// The `/internal/*` routes that the router source `source` declares, as `(method, path)`
/// with every path parameter written `{}`: read from its `.route("…", get(…).post(…))`
/// calls, so that a route added to a router is seen without being listed again.
pub fn internal_routes(source: &str) -> std::collections::BTreeSet<(String, String)> {
    let mut routes = std::collections::BTreeSet::new();
    for call in source.split(".route(").skip(1) {
        let Some(path) = call.split('"').nth(1) else {
            continue;
        };
        if !path.starts_with("/internal") {
            continue;
        }
        // The handlers: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(call.len(), |(i, _)| i);
        let handlers = &call[..end];
        for method in ["get", "post", "put", "delete", "patch"] {
            let declared = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                handlers[..i]
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            });
            if declared {
                routes.insert((method.to_owned(), template(path)));
            }
        }
    }
    routes
}

/// `path` with every `{parameter}` written `{}`.
fn template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            _ if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// The operations of the OpenAPI document `doc` as `(method, path)`, parameters as `{}`.
fn documented(doc: &Value) -> std::collections::BTreeSet<(String, String)> {
    let mut operations = std::collections::BTreeSet::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for method in methods.as_object().unwrap().keys() {
            operations.insert((method.clone(), template(path)));
        }
    }
    operations
}

/// Asserts that a service's internal OpenAPI document `own` describes exactly the internal
/// routes `routes` of its router (see [`internal_routes`]), each with a success and the 404
/// of a missing credential, and that `served`, the `/internal/openapi.json` of a process
/// running the service, holds them all and itself.
///
/// # Panics
/// When a route is missing from either document, or `own` lists one the router lacks.
pub fn assert_internal_doc(
    own: &Value,
    served: &Value,
    routes: &std::collections::BTreeSet<(String, String)>,
) {
    assert!(!routes.is_empty(), "the router declares no internal route");
    for (path, operations) in own["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} documents no success"
            );
            assert!(
                responses.contains_key("404"),
                "{method} {path} does not document the 404 of a missing credential"
            );
        }
    }
    assert_eq!(
        &documented(own),
        routes,
        "the internal OpenAPI document and the router's internal routes differ"
    );
    let served = documented(served);
    for route in routes {
        assert!(served.contains(route), "{route:?} is not served");
    }
    assert!(served.contains(&("get".to_owned(), "/internal/openapi.json".to_owned())));
}
