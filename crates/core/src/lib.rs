//! evently-core: what every evently service shares.
//!
//! It owns no business data. It gives each service the same answers to the same cross-cutting
//! questions, so that the services look alike from the outside:
//!
//! - [`config`]: one typed configuration, loaded once from defaults, a TOML file and `EVENTLY_*`.
//! - [`problem`]: RFC 9457 problem+json errors; the one error body every service returns.
//! - [`extract`]: `Json`, `Path` and `Query` extractors whose rejections are problems.
//! - [`identity`]: access-token signing and verification (JWT), the caller's identity, roles.
//! - [`http`]: the middleware stack every service router gets (request id, tracing, metrics,
//!   security headers, problem fallback), and the `/health/*`, `/metrics` routes.
//! - [`db`]: SQLite and PostgreSQL connection setup, tuned per engine, behind one URL.
//! - [`sqlite`]: in-process SQLite connections with sqlx's query API, for hot write paths.
//! - [`sql`]: one SQL API over both engines (`Db`, `Tx`, `query`, `Row`), so that a store's
//!   body is written once.
//! - [`idempotency`]: the `Idempotency-Key` protocol ([`idempotency::run`]) and its rule.
//! - [`telemetry`]: logging initialisation.
//! - [`clock`], [`secret`], [`ids`], [`stored`], [`service`]: small shared types.
//!
//! Nothing here knows about a particular service; services depend on this crate, never the
//! other way round.

pub mod clock;
pub mod config;
pub mod db;
pub mod extract;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod problem;
pub mod secret;
pub mod service;
pub mod sql;
pub mod sqlite;
pub mod stored;
pub mod telemetry;
#[cfg(test)]
mod test_dir;

pub use problem::Problem;
