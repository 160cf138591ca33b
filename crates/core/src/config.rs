//! evently's configuration: one typed value, loaded once, validated before anything binds.
//!
//! Sources, later overriding earlier:
//! 1. built-in defaults — the embedded setup: SQLite under `./data`, generated secrets;
//! 2. an optional TOML file (`--config FILE` or `EVENTLY_CONFIG`);
//! 3. `EVENTLY_<SECTION>__<KEY>` environment variables (e.g. `EVENTLY_JWT__ACCESS_TTL_SECONDS`);
//! 4. the documented shortcuts `EVENTLY_DATABASE_URL`, `EVENTLY_LISTEN`, `EVENTLY_DATA_DIR`,
//!    `EVENTLY_LOG`, `EVENTLY_LOG_FORMAT`;
//! 5. command-line flags (`--listen`, `--data-dir`), applied by the binary.
//!
//! This module is the only place that reads the process environment. Secrets are
//! [`SecretString`], so printing a `Config` never shows them. Every key is documented in
//! `config.example.toml` at the repository root.

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::service::ServiceName;

mod analytics;
mod booking;
mod data;
pub use data::DataConfig;
mod events;
mod recs;
pub use analytics::AnalyticsConfig;
pub use booking::BookingConfig;
pub use events::{BusConfig, EventsConfig};
pub use recs::RecsConfig;
mod search;
pub use search::SearchConfig;

mod gateway;
pub use gateway::{
    BreakerConfig, GatewayConfig, RateLimitQuota, RateLimits, RedisConfig, upstream_urls,
};

/// The whole configuration of one `evently` process.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where and how the HTTP server listens.
    pub server: ServerConfig,
    /// Which database each service uses.
    pub database: DatabaseConfig,
    /// Access-token signing and verification.
    pub jwt: JwtConfig,
    /// The auth service's own settings.
    pub auth: AuthConfig,
    /// Service-to-service credentials.
    pub internal: InternalConfig,
    /// The events service's own settings.
    pub events: EventsConfig,
    /// The booking service's own settings (holds, limits, payments, waitlist).
    pub booking: BookingConfig,
    /// The recommendations service's own settings.
    pub recs: RecsConfig,
    /// `[analytics]`
    pub analytics: AnalyticsConfig,
    /// The domain-event bus (in-process, or NATS JetStream).
    pub bus: BusConfig,
    /// Logging.
    pub log: LogConfig,
    /// The API gateway.
    pub gateway: GatewayConfig,
    /// Redis (shared rate-limit state).
    pub redis: RedisConfig,
    /// The search service's index.
    pub search: SearchConfig,
    /// The data service's imports and exports.
    pub data: DataConfig,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    pub listen: SocketAddr,
    /// Directory for SQLite files, generated secrets and other local state.
    pub data_dir: PathBuf,
    /// Largest accepted request body in bytes (413 beyond it).
    pub body_limit_bytes: usize,
    /// Per-request timeout in seconds (the request is answered 503 after it).
    pub request_timeout_seconds: u64,
    /// Trust the left-most `X-Forwarded-For` address as the client address. Only enable this
    /// behind a proxy that sets the header itself (the evently gateway does).
    pub trust_forwarded_for: bool,
    /// Seconds from a shutdown signal (SIGTERM, Ctrl-C) until the process has exited: the
    /// drain window, then in-flight requests, live sockets and background work (an outbox
    /// relay finishes its batch) get what is left; whatever is still running then is dropped.
    pub shutdown_grace_seconds: u64,
    /// Seconds the process keeps serving after a shutdown signal, with `/health/ready`
    /// answering 503 from the signal on and every response closing its connection
    /// (`Connection: close`), before it stops accepting connections. Load balancers that poll
    /// readiness take the process out meanwhile, and a connection a client keeps idle in its
    /// pool is closed by the client itself first if the client drops idle connections sooner
    /// (the evently gateway does: see `gateway.services`), instead of racing a request the
    /// client is writing. 0 stops accepting at once. Less than `shutdown_grace_seconds`.
    pub shutdown_drain_seconds: u64,
    /// Largest request head (request line and headers) in bytes: 431 and the connection closed
    /// beyond it.
    pub max_header_bytes: usize,
    /// Seconds a client gets to send a whole request head, counted from when the server starts
    /// waiting for it (also between requests on a kept-alive connection); the connection is
    /// closed after it. The defence against clients that trickle their headers (slowloris).
    pub header_read_timeout_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            body_limit_bytes: 64 * 1024,
            request_timeout_seconds: 30,
            trust_forwarded_for: false,
            shutdown_grace_seconds: 30,
            shutdown_drain_seconds: 5,
            max_header_bytes: 32 * 1024,
            header_read_timeout_seconds: 30,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Database for every service (`sqlite:…` or `postgres://…`). Unset: one SQLite file per
    /// service in the data directory. On PostgreSQL each service keeps its tables in its own
    /// schema (`auth`, …) of this database.
    pub url: Option<SecretString>,
    /// Database for the auth service only; overrides `url`.
    pub auth_url: Option<SecretString>,
    /// Database for the events service only; overrides `url`.
    pub events_url: Option<SecretString>,
    /// Database for the booking service only; overrides `url`.
    pub booking_url: Option<SecretString>,
    /// Database for the recommendations service only; overrides `url`.
    pub recs_url: Option<SecretString>,
    /// Database for the settings service only; overrides `url`.
    pub settings_url: Option<SecretString>,
    /// Database for the analytics service only; overrides `url`.
    pub analytics_url: Option<SecretString>,
    /// Database for the data service only; overrides `url`.
    pub data_url: Option<SecretString>,
    /// Most connections a service keeps open to PostgreSQL.
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before answering 503.
    pub acquire_timeout_seconds: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            auth_url: None,
            events_url: None,
            booking_url: None,
            recs_url: None,
            settings_url: None,
            analytics_url: None,
            data_url: None,
            max_connections: 16,
            acquire_timeout_seconds: 5,
        }
    }
}

impl DatabaseConfig {
    /// The database URL for `service`: its own URL, else the shared one, else a SQLite file in
    /// `data_dir`.
    pub fn url_for(&self, service: ServiceName, data_dir: &Path) -> SecretString {
        let own = match service {
            ServiceName::Auth => self.auth_url.as_ref(),
            ServiceName::Events => self.events_url.as_ref(),
            ServiceName::Booking => self.booking_url.as_ref(),
            ServiceName::Recs => self.recs_url.as_ref(),
            ServiceName::Settings => self.settings_url.as_ref(),
            ServiceName::Analytics => self.analytics_url.as_ref(),
            ServiceName::Data => self.data_url.as_ref(),
            ServiceName::Search | ServiceName::Gateway => None,
        };
        match own.or(self.url.as_ref()) {
            Some(url) => url.clone(),
            None => SecretString::from(format!(
                "sqlite://{}",
                data_dir.join(format!("{service}.db")).display()
            )),
        }
    }
}

/// `[jwt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// HS256 signing secret (at least 32 bytes). Unset: generated on first start and kept in
    /// `<data_dir>/jwt-secret`. Every process of one deployment must share it.
    pub secret: Option<SecretString>,
    /// `iss` of issued tokens; required on verification.
    pub issuer: String,
    /// `aud` of issued tokens; required on verification.
    pub audience: String,
    /// Access-token lifetime in seconds (60..=3600).
    pub access_ttl_seconds: u64,
    /// Clock-skew allowance for `exp`/`nbf`/`iat` in seconds (at most 30).
    pub leeway_seconds: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            secret: None,
            issuer: "evently".into(),
            audience: "evently".into(),
            access_ttl_seconds: 15 * 60,
            leeway_seconds: 30,
        }
    }
}

/// `SameSite` attribute of the auth cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SameSite {
    /// Never sent on cross-site requests.
    Strict,
    /// Sent on top-level cross-site navigations.
    Lax,
    /// Always sent (requires `Secure`).
    None,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Refresh-token lifetime in seconds.
    pub refresh_ttl_seconds: u64,
    /// Set `Secure` on the auth cookies (turn off only for plain-HTTP development).
    pub cookie_secure: bool,
    /// `SameSite` of the auth cookies.
    pub cookie_same_site: SameSite,
    /// Password hashing.
    pub password: PasswordConfig,
    /// Failed-login throttling.
    pub throttle: ThrottleConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            refresh_ttl_seconds: 14 * 24 * 3600,
            cookie_secure: true,
            cookie_same_site: SameSite::Strict,
            password: PasswordConfig::default(),
            throttle: ThrottleConfig::default(),
        }
    }
}

/// `[auth.password]` — Argon2id cost. The defaults are OWASP's (m = 19 MiB, t = 2, p = 1).
/// Lower them only for test or benchmark set-up, never in production.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordConfig {
    /// Argon2id memory cost in KiB.
    pub memory_kib: u32,
    /// Argon2id passes.
    pub iterations: u32,
    /// Argon2id lanes.
    pub parallelism: u32,
    /// Most hashes computed at once; 0 means one per CPU core. Requests beyond this wait for
    /// a slot (up to `queue_timeout_ms`) instead of starving the async runtime.
    pub max_concurrent_hashes: usize,
    /// How long a login may wait for a hashing slot before it is answered 503.
    pub queue_timeout_ms: u64,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent_hashes: 0,
            queue_timeout_ms: 10_000,
        }
    }
}

impl PasswordConfig {
    /// The number of hashing slots, resolving 0 to the number of CPU cores.
    pub fn slots(&self) -> usize {
        if self.max_concurrent_hashes > 0 {
            self.max_concurrent_hashes
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

/// `[auth.throttle]` — failed-login throttling, per account and per client address.
/// After `*_max_failures` failures within `window_seconds`, further attempts (even with the
/// right password) get 429 for `base_lock_seconds`, doubling with each further failure up to
/// `max_lock_seconds`. The lock always ends, so an attacker cannot lock a user out for good.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failures of one account before it is locked.
    pub account_max_failures: u32,
    /// Failures from one client address (any accounts) before it is locked.
    pub ip_max_failures: u32,
    /// Window in which failures are counted.
    pub window_seconds: u64,
    /// First lock duration.
    pub base_lock_seconds: u64,
    /// Longest lock duration.
    pub max_lock_seconds: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            account_max_failures: 5,
            ip_max_failures: 50,
            window_seconds: 15 * 60,
            base_lock_seconds: 30,
            max_lock_seconds: 15 * 60,
        }
    }
}

/// `[internal]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalConfig {
    /// Credential services present to each other's `/internal/*` routes (header
    /// `X-Internal-Token`). Unset: generated and kept in `<data_dir>/internal-token`.
    pub token: Option<SecretString>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default; for machines).
    #[default]
    Json,
    /// Human-readable lines.
    Pretty,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `evently_auth=debug,info`.
    pub filter: String,
    /// `json` or `pretty`.
    pub format: LogFormat,
    /// OTLP/HTTP collector (e.g. `http://otel-collector:4318`) that receives traces; unset, no
    /// spans leave the process and nothing is exported. Shortcut `EVENTLY_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces sampled (0..=1); a request carrying a sampled `traceparent` is
    /// always followed.
    pub trace_sample_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Json,
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
        }
    }
}

impl Config {
    /// Loads the configuration from the defaults, `file` (or `EVENTLY_CONFIG`) and the
    /// environment, then validates it.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, an unknown key, a value of the wrong type, or a
    /// value out of range — with the offending key named.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("EVENTLY_CONFIG").map(PathBuf::from));
        if let Some(file) = &file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(
                Env::prefixed("EVENTLY_")
                    .filter(|key| key.as_str().contains("__"))
                    .split("__"),
            )
            .merge(Env::raw().filter_map(|key| {
                let mapped = match key.as_str().to_ascii_uppercase().as_str() {
                    "EVENTLY_DATABASE_URL" => "database.url",
                    "EVENTLY_LISTEN" => "server.listen",
                    "EVENTLY_DATA_DIR" => "server.data_dir",
                    "EVENTLY_LOG" => "log.filter",
                    "EVENTLY_LOG_FORMAT" => "log.format",
                    "EVENTLY_NATS_URL" => "bus.nats_url",
                    "EVENTLY_REDIS_URL" => "redis.url",
                    "EVENTLY_OTLP_ENDPOINT" => "log.otlp_endpoint",
                    _ => return None,
                };
                Some(mapped.into())
            }));
        let config: Config = figment
            .extract()
            .context("invalid configuration (see config.example.toml for every key)")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value's range; called by [`Config::load`], and by anyone who builds a
    /// `Config` in code.
    ///
    /// # Errors
    /// The first value out of range, with its key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.log.trace_sample_ratio) {
            bail!("log.trace_sample_ratio must be between 0 and 1");
        }
        if let Some(endpoint) = &self.log.otlp_endpoint
            && !endpoint.starts_with("http://")
        {
            bail!(
                "log.otlp_endpoint must be an http:// URL (OTLP over HTTP; for TLS, send to a local collector)"
            );
        }
        let jwt = &self.jwt;
        if let Some(secret) = &jwt.secret
            && secret.expose_secret().len() < 32
        {
            bail!("jwt.secret must be at least 32 bytes");
        }
        if !(60..=3600).contains(&jwt.access_ttl_seconds) {
            bail!("jwt.access_ttl_seconds must be between 60 and 3600");
        }
        if jwt.leeway_seconds > 30 {
            bail!("jwt.leeway_seconds must be at most 30");
        }
        if jwt.issuer.is_empty() || jwt.audience.is_empty() {
            bail!("jwt.issuer and jwt.audience must not be empty");
        }
        let auth = &self.auth;
        if !(60..=90 * 24 * 3600).contains(&auth.refresh_ttl_seconds) {
            bail!("auth.refresh_ttl_seconds must be between 60 and 7776000");
        }
        if auth.cookie_same_site == SameSite::None && !auth.cookie_secure {
            bail!("auth.cookie_same_site = \"None\" requires auth.cookie_secure = true");
        }
        let pw = &auth.password;
        if pw.memory_kib < 8 * pw.parallelism.max(1) || pw.memory_kib > 4 * 1024 * 1024 {
            bail!("auth.password.memory_kib must be between 8 x parallelism and 4194304");
        }
        if !(1..=64).contains(&pw.iterations) || !(1..=16).contains(&pw.parallelism) {
            bail!("auth.password.iterations must be 1..=64 and parallelism 1..=16");
        }
        let th = &auth.throttle;
        if th.account_max_failures == 0 || th.ip_max_failures == 0 {
            bail!("auth.throttle.*_max_failures must be at least 1");
        }
        if th.base_lock_seconds == 0 || th.max_lock_seconds < th.base_lock_seconds {
            bail!("auth.throttle: need 0 < base_lock_seconds <= max_lock_seconds");
        }
        if self.server.body_limit_bytes < 1024 {
            bail!("server.body_limit_bytes must be at least 1024");
        }
        if !(1024..=1024 * 1024).contains(&self.server.max_header_bytes) {
            bail!("server.max_header_bytes must be between 1024 and 1048576");
        }
        if self.server.header_read_timeout_seconds == 0 {
            bail!("server.header_read_timeout_seconds must be at least 1");
        }
        if self.server.request_timeout_seconds == 0 {
            bail!("server.request_timeout_seconds must be at least 1");
        }
        if self.server.shutdown_drain_seconds >= self.server.shutdown_grace_seconds {
            bail!("server.shutdown_drain_seconds must be less than server.shutdown_grace_seconds");
        }
        self.gateway.validate()?;
        self.events.validate()?;
        self.booking.validate()?;
        self.recs.validate()?;
        self.analytics.validate()?;
        self.data.validate()?;
        self.bus.validate()?;
        self.search.validate()?;
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
        }
        Ok(())
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_embedded() {
        let config = Config::default();
        config.validate().unwrap();
        let url = config
            .database
            .url_for(ServiceName::Auth, Path::new("/tmp/x"));
        assert_eq!(url.expose_secret(), "sqlite:///tmp/x/auth.db");
        assert!(config.jwt.secret.is_none(), "no built-in secret");
        assert_eq!(config.jwt.access_ttl_seconds, 900);
    }

    #[test]
    fn short_secret_is_refused() {
        let mut config = Config::default();
        config.jwt.secret = Some(SecretString::from("short"));
        assert!(config.validate().is_err());
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let mut config = Config::default();
        config.jwt.secret = Some(SecretString::from(
            "a-very-secret-value-that-is-long-enough",
        ));
        config.database.url = Some(SecretString::from("postgres://u:hunter2@db/x"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("a-very-secret-value"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn the_example_file_is_valid_and_states_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.example.toml");
        assert!(example.exists(), "{}", example.display());
        let stated: Config = Figment::new()
            .merge(Toml::file(&example))
            .extract()
            .unwrap();
        stated.validate().unwrap();
        // Every key the example sets is set to its default (the others are commented out).
        assert_eq!(format!("{stated:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn toml_file_with_unknown_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("evently-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("evently.toml");
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:9\"\nbogus = 1\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:9\"\n").unwrap();
        let config = Config::load(Some(&file)).unwrap();
        assert_eq!(config.server.listen.port(), 9);
        std::fs::remove_dir_all(dir).ok();
    }
}
