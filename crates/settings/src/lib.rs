//! evently-settings: schema-checked settings documents per scope, versioned, audited, and
//! published so that services apply them without a restart.
//!
//! What it promises:
//! - one JSON document per `(scope, scopeId, namespace)`: a user's preferences
//!   (`preferences`), and booking's operational knobs (`booking`) for the platform, an
//!   organizer and an event; each namespace has a JSON Schema (draft 2020-12,
//!   `additionalProperties: false`, bounds, defaults) embedded in the binary, compiled once at
//!   start with `format` checked, and published at `GET /api/settings/schema/{namespace}`;
//! - a document is checked for size (16 KiB) and depth (8) before the schema, and a schema
//!   violation is a 422 whose `errors[]` point at the fields; nothing is written then;
//! - every document has a version (its `ETag`); a write needs `If-Match` (428 without it)
//!   and is refused with 412 when the document moved on; `PATCH` is RFC 7396 merge patch;
//! - each write stores the document, an audit row (who, when, before, after) and the
//!   `SettingsChanged` domain event in one transaction; booking keeps its own projection of
//!   that stream, so nothing on the purchase path reads settings from here;
//! - the effective value of a key is the schema default ⊕ platform ⊕ organizer ⊕ event
//!   (pretix's order), with `…/effective` naming where each key came from; which organizer
//!   owns an event comes from the events service's stream, applied once per domain event.
//!
//! Layout:
//! - [`domain`]: scopes, namespaces, merge patch, caps, effective values (pure);
//! - [`schema`]: the embedded schemas, compiled, and the checks of a body;
//! - [`store`]: `SettingsStore` and its SQL body for SQLite and PostgreSQL (conformance suite
//!   in `tests/api/conformance.rs`);
//! - [`service`]: authorisation, conditional writes, effective values, the events feed;
//! - [`http`]: routes and handlers; [`error`]: `SettingsError` → problem.

pub mod domain;
pub mod error;
pub mod http;
pub mod schema;
pub mod service;
pub mod store;

use evently_bus::consumer::Handler;
use evently_bus::nats::NatsBus;
use evently_bus::{Bus, Outbox};
use evently_core::clock::SharedClock;
use evently_core::config::Config;
use evently_core::db::Engine;
use evently_core::identity::JwtKeys;
use evently_core::service::ServiceName;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use utoipa::OpenApi;

pub use http::{SettingsState, router};
pub use service::SettingsService;
pub use store::SettingsStore;

/// The durable name of the consumer of the events service's stream (event owners).
pub const OWNERS_CONSUMER: &str = "settings-owners";

/// The OpenAPI description of the settings service.
#[derive(OpenApi)]
#[openapi(
    paths(
        http::settings::get_me, http::settings::put_me, http::settings::patch_me,
        http::settings::effective_me,
        http::settings::get_platform, http::settings::put_platform,
        http::settings::patch_platform, http::settings::effective_platform,
        http::settings::get_organizer, http::settings::put_organizer,
        http::settings::patch_organizer, http::settings::effective_organizer,
        http::settings::get_event, http::settings::put_event, http::settings::patch_event,
        http::settings::effective_event,
        http::settings::get_schema, http::settings::list_audit,
    ),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    modifiers(&DocumentBodies),
    tags((name = "settings", description = "Preferences and operational settings: schema-checked documents per scope, versioned (ETag/If-Match), audited, applied live"))
)]
pub struct SettingsApi;

/// Publishes each namespace's JSON Schema, and the schema of its merge patches, as OpenAPI
/// components, and makes them the request bodies of the routes that write that namespace's
/// documents: a client (or a contract tester) sees exactly the keys the server accepts.
struct DocumentBodies;

impl DocumentBodies {
    /// The namespace of the documents a settings path writes.
    fn namespace_of(path: &str) -> Option<domain::Namespace> {
        use domain::Namespace;
        match path {
            "/api/settings/me" => Some(Namespace::Preferences),
            "/api/settings/platform"
            | "/api/settings/organizers/{organizerId}"
            | "/api/settings/events/{eventId}" => Some(Namespace::Booking),
            _ => None,
        }
    }
}

impl utoipa::Modify for DocumentBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        let components = openapi.components.get_or_insert_with(Default::default);
        for namespace in domain::Namespace::ALL {
            for (name, schema) in [
                (
                    schema::document_component(*namespace),
                    schema::openapi_document(*namespace),
                ),
                (
                    schema::patch_component(*namespace),
                    schema::openapi_patch(*namespace),
                ),
            ] {
                // The embedded schemas are fixed at build time; a test checks they convert.
                if let Ok(schema) = serde_json::from_value(schema) {
                    components.schemas.insert(name, RefOr::T(schema));
                }
            }
        }
        for (path, item) in &mut openapi.paths.paths {
            let Some(namespace) = Self::namespace_of(path) else {
                continue;
            };
            for (operation, component) in [
                (&mut item.put, schema::document_component(namespace)),
                (&mut item.patch, schema::patch_component(namespace)),
            ] {
                let Some(RefOr::T(body)) = operation
                    .as_mut()
                    .and_then(|operation| operation.request_body.as_mut())
                else {
                    continue;
                };
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content {
                        content.schema = Some(RefOr::Ref(Ref::from_schema_name(component.clone())));
                    }
                }
            }
        }
    }
}

/// Opens the settings store at `url` (SQLite or PostgreSQL, by scheme), migrates it, and
/// returns it with its outbox.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(
    url: &SecretString,
    config: &Config,
) -> anyhow::Result<(Arc<dyn SettingsStore>, Arc<dyn Outbox>)> {
    Ok(match Engine::of(url.expose_secret())? {
        Engine::Sqlite => {
            let db = evently_core::db::connect_sqlite(url).await?;
            let store = store::SqlSettingsStore::sqlite(db).await?;
            let outbox = store.outbox();
            (Arc::new(store), Arc::new(outbox))
        }
        Engine::Postgres => {
            let pool =
                evently_core::db::connect_postgres(url, "settings", &config.database).await?;
            let store = store::SqlSettingsStore::postgres(pool).await?;
            let outbox = store.outbox();
            (Arc::new(store), Arc::new(outbox))
        }
    })
}

/// Applies the events service's domain events (event owners), idempotent per envelope id.
struct OwnersHandler(Arc<SettingsService>);

#[async_trait::async_trait]
impl Handler for OwnersHandler {
    async fn handle(&self, envelope: &evently_bus::Envelope) -> anyhow::Result<()> {
        self.0.apply(envelope).await
    }
}

/// A running settings service's parts.
#[derive(Clone)]
pub struct Settings {
    /// The operations.
    pub service: Arc<SettingsService>,
    /// The HTTP state.
    pub state: SettingsState,
    /// The outbox its changes are written to.
    pub outbox: Arc<dyn Outbox>,
    /// The bus delivering that outbox (`SettingsChanged`).
    pub bus: Arc<dyn Bus>,
    nats: Option<NatsBus>,
    config: Config,
}

impl Settings {
    /// Builds the settings service from `config`: compiles the schemas, opens the store and
    /// its bus.
    ///
    /// # Errors
    /// When a schema does not compile, or the store or the bus cannot be opened.
    pub async fn build(
        config: &Config,
        keys: Arc<JwtKeys>,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let schemas = Arc::new(schema::Schemas::compile()?);
        let url = config
            .database
            .url_for(ServiceName::Settings, &config.server.data_dir);
        let (store, outbox) = open_store(&url, config).await?;
        let (bus, nats) =
            evently_bus::wiring::open(&config.bus, ServiceName::Settings, outbox.clone()).await?;
        let service = Arc::new(SettingsService::new(store, schemas, clock));
        let state = SettingsState {
            service: service.clone(),
            keys,
        };
        Ok(Self {
            service,
            state,
            outbox,
            bus,
            nats,
            config: config.clone(),
        })
    }

    /// The settings router.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// The handler applying the events service's stream (which organizer owns which event).
    pub fn handler(&self) -> Arc<dyn Handler> {
        Arc::new(OwnersHandler(self.service.clone()))
    }

    /// Starts the background work on `tracker` until `shutdown`: on NATS the outbox relay,
    /// and the durable consumer of the events service's stream (`events_feed`), when given.
    pub fn start(
        &self,
        events_feed: Option<Arc<dyn Bus>>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        // Each event is one short transaction; the batch bounds unacknowledged deliveries.
        const BATCH: usize = 256;
        if let Some(nats) = &self.nats {
            let relay =
                evently_bus::wiring::relay(&self.config.bus, self.outbox.clone(), nats.clone());
            tracker.spawn(relay.run(shutdown.clone()));
        }
        if let Some(bus) = events_feed {
            tracker.spawn(
                evently_bus::consumer::run_consumer(
                    bus,
                    OWNERS_CONSUMER.into(),
                    self.handler(),
                    BATCH,
                    shutdown.clone(),
                )
                .instrument(tracing::info_span!(
                    "settings_consumer",
                    consumer = OWNERS_CONSUMER
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    /// The statements of `sql` without its comment lines.
    fn statements(sql: &str) -> String {
        sql.lines()
            .filter(|l| !l.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned()
    }

    #[test]
    fn migrations_create_the_outbox_exactly_as_the_bus_defines_it() {
        for (bus, settings) in [
            (
                include_str!("../../bus/migrations/sqlite.sql"),
                include_str!("../migrations/sqlite/0001_settings.sql"),
            ),
            (
                include_str!("../../bus/migrations/postgres.sql"),
                include_str!("../migrations/postgres/0001_settings.sql"),
            ),
        ] {
            assert!(
                settings.contains(&statements(bus)),
                "the settings migration's outbox tables differ from evently-bus's"
            );
        }
    }

    #[test]
    fn write_bodies_are_the_namespace_schemas_published_whole() {
        use super::domain::Namespace;
        use super::schema::*;
        use utoipa::OpenApi;
        let doc = serde_json::to_value(super::SettingsApi::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for namespace in Namespace::ALL {
            // Nothing of the embedded schema is lost on the way into the document.
            assert_eq!(
                schemas[document_component(*namespace)],
                openapi_document(*namespace)
            );
            assert_eq!(
                schemas[patch_component(*namespace)],
                openapi_patch(*namespace)
            );
        }
        let body = |path: &str, method: &str, media: &str| {
            doc["paths"][path][method]["requestBody"]["content"][media]["schema"]["$ref"].clone()
        };
        assert_eq!(
            body("/api/settings/me", "put", "application/json"),
            "#/components/schemas/PreferencesDocument"
        );
        for path in [
            "/api/settings/platform",
            "/api/settings/organizers/{organizerId}",
            "/api/settings/events/{eventId}",
        ] {
            assert_eq!(
                body(path, "put", "application/json"),
                "#/components/schemas/BookingSettingsDocument"
            );
            assert_eq!(
                body(path, "patch", "application/merge-patch+json"),
                "#/components/schemas/BookingSettingsPatch"
            );
        }
    }

    #[test]
    fn a_patch_the_patch_schema_accepts_leaves_a_valid_document() {
        use super::domain::{Namespace, merge_patch};
        use super::schema::{Schemas, openapi_patch};
        use serde_json::json;
        let schemas = Schemas::compile().unwrap();
        let patch = jsonschema::draft202012::new(&openapi_patch(Namespace::Booking)).unwrap();
        let document = json!({ "holdTtlSeconds": 600, "saleDefaults": { "currency": "EUR" } });
        // (patch, the patch schema accepts it, the result is a valid document): every patch
        // the schema accepts leaves a valid document; removing a key that is not there is
        // harmless to the server but outside the schema.
        for (change, accepted, valid) in [
            (json!({ "holdTtlSeconds": null }), true, true),
            (
                json!({ "saleDefaults": { "currency": null, "saleOpensDaysBefore": 7 } }),
                true,
                true,
            ),
            (
                json!({ "saleDefaults": null, "maxSeatsPerOrder": 4 }),
                true,
                true,
            ),
            (json!({ "holdTtlSeconds": 5 }), false, false),
            (json!({ "unknown": 1 }), false, false),
            (json!({ "saleDefaults": { "unknown": 2 } }), false, false),
            (json!({ "saleDefaults": { "unknown": null } }), false, true),
        ] {
            assert_eq!(patch.is_valid(&change), accepted, "{change}");
            let mut result = document.clone();
            merge_patch(&mut result, &change);
            assert_eq!(
                schemas.validate(Namespace::Booking, &result).is_ok(),
                valid,
                "{change} → {result}"
            );
        }
    }
}
