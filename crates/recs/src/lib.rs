//! evently-recs: recommendations — events related to an event, and picks for a user —
//! explainable and fed by the domain events.
//!
//! What it promises:
//! - it owns a projection of three streams, never another service's tables: the events
//!   service's (`EventCreated`/`Updated`/`StatusChanged`/`Deleted`: type, tags, city, venue,
//!   organizer, name and description, price, date, status), booking's (`OrderPlaced` and
//!   `OrderCancelled`: who owns what, and co-purchase counts added and taken back) and the
//!   settings service's (`SettingsChanged` of a user's `preferences`: their favourite cities
//!   and event types, the newest version winning); each domain event is applied once, its id
//!   recorded in the same transaction as its effect, so replaying the streams rebuilds the
//!   same state;
//! - privacy: a co-purchase pair is used only once at least three distinct buyers bought
//!   both, and buyers of more than 50 events are left out of pair counts;
//! - related events blend item-to-item co-purchase similarity (shrunk while support is
//!   small) with content similarity, co-purchase weighing more as an event sells; content
//!   neighbours are recomputed in the background after events change, never inside the
//!   consumer's transaction;
//! - picks for a user come from their purchases' neighbours (recent ones weigh more), their
//!   city and type affinities, their favourite cities and types, and a small recent-sales
//!   prior; anonymous or new callers get popular upcoming events (in the city asked for
//!   first, else in a new caller's favourite cities, and of their favourite types); nobody is recommended an event they own,
//!   a past, cancelled or sold-out one; at most two per organizer and per type in a page;
//!   every item carries its reason;
//! - answers per user are cached briefly and dropped when that user buys, cancels or changes
//!   their preferences.
//!
//! Layout:
//! - [`domain`]: features, text vectors, similarities, the catalogue index, ranking (pure);
//! - [`store`]: `RecsStore` and its SQL body for SQLite and PostgreSQL (conformance suite in
//!   `tests/api/conformance.rs`);
//! - [`service`]: applying domain events, background refreshes, answering with the cache;
//! - [`http`]: routes and handlers; [`error`]: `RecsError` → problem.

pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use evently_bus::Bus;
use evently_bus::consumer::Handler;
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

pub use http::{RecsState, router};
pub use service::RecsService;
pub use store::RecsStore;

/// The durable name of the consumer of the events service's stream.
pub const CATALOG_CONSUMER: &str = "recs-catalog";
/// The durable name of the consumer of booking's stream.
pub const ORDERS_CONSUMER: &str = "recs-orders";
/// The durable name of the consumer of the settings service's stream.
pub const PREFERENCES_CONSUMER: &str = "recs-preferences";

/// The OpenAPI description of the recommendations service.
#[derive(OpenApi)]
#[openapi(
    paths(http::recs::for_me, http::recs::related),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "recs", description = "Recommendations: related events and picks for the caller, each with its reason"))
)]
pub struct RecsApi;

/// Opens the recommendations store at `url` (SQLite or PostgreSQL, by scheme) and migrates
/// it.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(url: &SecretString, config: &Config) -> anyhow::Result<Arc<dyn RecsStore>> {
    Ok(match Engine::of(url.expose_secret())? {
        Engine::Sqlite => {
            let db = evently_core::db::connect_sqlite(url).await?;
            Arc::new(store::SqlRecsStore::sqlite(db).await?)
        }
        Engine::Postgres => {
            let pool = evently_core::db::connect_postgres(url, "recs", &config.database).await?;
            Arc::new(store::SqlRecsStore::postgres(pool).await?)
        }
    })
}

/// Applies domain events through the service (idempotent per envelope id).
struct FeedHandler(Arc<RecsService>);

#[async_trait::async_trait]
impl Handler for FeedHandler {
    async fn handle(&self, envelope: &evently_bus::Envelope) -> anyhow::Result<()> {
        self.0.apply(envelope).await
    }
}

/// The streams recommendations read, each where this process reaches it (its service's bus
/// in this process, or NATS); `None` where it does not.
#[derive(Clone, Default)]
pub struct Feeds {
    /// The events service's stream.
    pub events: Option<Arc<dyn Bus>>,
    /// Booking's stream.
    pub booking: Option<Arc<dyn Bus>>,
    /// The settings service's stream.
    pub settings: Option<Arc<dyn Bus>>,
}

/// A running recommendations service's parts.
#[derive(Clone)]
pub struct Recs {
    /// The operations.
    pub service: Arc<RecsService>,
    /// The HTTP state.
    pub state: RecsState,
}

impl Recs {
    /// Builds the recommendations service from `config`.
    ///
    /// # Errors
    /// When the store cannot be opened.
    pub async fn build(
        config: &Config,
        keys: Arc<JwtKeys>,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let url = config
            .database
            .url_for(ServiceName::Recs, &config.server.data_dir);
        let store = open_store(&url, config).await?;
        let service = Arc::new(RecsService::new(store, clock, config.recs.clone()));
        let state = RecsState {
            service: service.clone(),
            keys,
        };
        Ok(Self { service, state })
    }

    /// The recommendations router.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// The handler applying the three streams' domain events.
    pub fn handler(&self) -> Arc<dyn Handler> {
        Arc::new(FeedHandler(self.service.clone()))
    }

    /// Starts the background work on `tracker` until `shutdown`: the catalogue and
    /// popularity refresh, and the durable consumers of the events service's stream
    /// (`feeds.events`), booking's (`feeds.booking`) and the settings service's
    /// (`feeds.settings`), where given.
    pub fn start(&self, feeds: Feeds, tracker: &TaskTracker, shutdown: &CancellationToken) {
        // Each event is one short transaction; the batch bounds unacknowledged deliveries.
        const BATCH: usize = 256;
        tracker.spawn(
            self.service
                .clone()
                .run_background(shutdown.clone())
                .instrument(tracing::info_span!("recs_background")),
        );
        for (feed, name) in [
            (feeds.events, CATALOG_CONSUMER),
            (feeds.booking, ORDERS_CONSUMER),
            (feeds.settings, PREFERENCES_CONSUMER),
        ] {
            if let Some(bus) = feed {
                tracker.spawn(
                    evently_bus::consumer::run_consumer(
                        bus,
                        name.into(),
                        self.handler(),
                        BATCH,
                        shutdown.clone(),
                    )
                    .instrument(tracing::info_span!("recs_consumer", consumer = name)),
                );
            }
        }
    }
}
