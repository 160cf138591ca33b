//! evently-auth: users, password hashes, refresh-token families and login throttling.
//!
//! What it promises:
//! - passwords are stored as Argon2id PHC strings (bcrypt hashes from the seeds still verify
//!   and are upgraded on the next successful login); hashing never runs on the async runtime;
//! - access tokens are short-lived JWTs (see `evently_core::identity`); refresh tokens are
//!   opaque, stored only as SHA-256, rotate on every use, and a reused rotated token revokes
//!   its whole family;
//! - login answers the same for an unknown email and a wrong password, and repeated failures
//!   per account and per client are throttled with a lock that always ends.
//!
//! Layout:
//! - [`domain`]: parsed inputs (`Email`, `Password`, …), users, the throttle rule;
//! - [`hashing`]: the bounded password hasher;
//! - [`store`]: `AuthStore` and its SQLite and PostgreSQL backends (their conformance suite
//!   is in `tests/api/conformance.rs`);
//! - [`service`]: the operations;
//! - [`http`]: routes and handlers; [`error`]: `AuthError` → problem.

pub mod domain;
pub mod error;
pub mod hashing;
pub mod http;
pub mod service;
pub mod store;

use evently_core::clock::SharedClock;
use evently_core::config::Config;
use evently_core::db::Engine;
use evently_core::identity::{InternalToken, JwtKeys};
use evently_core::service::ServiceName;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use utoipa::OpenApi;

pub use http::{AuthState, router};
pub use service::AuthService;
pub use store::AuthStore;

/// The OpenAPI description of the auth service.
#[derive(OpenApi)]
#[openapi(
    paths(
        http::auth::register, http::auth::signup, http::auth::login, http::auth::refresh,
        http::auth::logout, http::auth::me,
        http::users::get_profile, http::users::update_profile, http::users::set_role,
        http::auth::change_password, http::users::set_status, http::users::list_users,
    ),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags(
        (name = "auth", description = "Registration, sign-in, token refresh"),
        (name = "users", description = "Profiles and roles"),
    )
)]
pub struct AuthApi;

/// The OpenAPI description of auth's service-to-service routes, which the gateway never
/// serves: published at `/internal/openapi.json` by the process that runs it, merged with
/// the other internal routes of that process.
#[derive(OpenApi)]
#[openapi(
    paths(http::internal::verify_token, http::internal::get_user, http::internal::lookup_users),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "internal", description = "Service-to-service routes, with the `X-Internal-Token` credential")),
)]
pub struct AuthInternalApi;

/// Opens the auth store at `url` (SQLite or PostgreSQL, by scheme) and migrates it.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(url: &SecretString, config: &Config) -> anyhow::Result<Arc<dyn AuthStore>> {
    Ok(match Engine::of(url.expose_secret())? {
        Engine::Sqlite => {
            let db = evently_core::db::connect_sqlite(url).await?;
            Arc::new(store::SqlAuthStore::sqlite(db).await?)
        }
        Engine::Postgres => {
            let pool = evently_core::db::connect_postgres(url, "auth", &config.database).await?;
            Arc::new(store::SqlAuthStore::postgres(pool).await?)
        }
    })
}

/// A running auth service's parts.
#[derive(Clone)]
pub struct Auth {
    /// The operations (also used by `evently admin`).
    pub service: Arc<AuthService>,
    /// The HTTP state.
    pub state: AuthState,
}

impl Auth {
    /// Builds the auth service from `config`.
    ///
    /// # Errors
    /// When the store cannot be opened or the hashing parameters are invalid.
    pub async fn build(
        config: &Config,
        keys: Arc<JwtKeys>,
        internal: InternalToken,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let url = config
            .database
            .url_for(ServiceName::Auth, &config.server.data_dir);
        let store = open_store(&url, config).await?;
        Self::with_store(config, store, keys, internal, clock)
    }

    /// Builds the auth service over an already opened `store`.
    ///
    /// # Errors
    /// When the hashing parameters are invalid.
    pub fn with_store(
        config: &Config,
        store: Arc<dyn AuthStore>,
        keys: Arc<JwtKeys>,
        internal: InternalToken,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let hasher = hashing::PasswordHasher::new(&config.auth.password)?;
        let service = Arc::new(AuthService::new(
            store,
            hasher,
            keys.clone(),
            clock,
            config.auth.clone(),
        ));
        let state = AuthState {
            service: service.clone(),
            keys,
            internal,
            config: Arc::new(config.auth.clone()),
        };
        Ok(Self { service, state })
    }

    /// The auth router.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }
}
