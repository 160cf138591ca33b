//! evently-analytics: sales figures per event, per organizer and for the platform, fed by
//! the domain events and always equal to booking's own audit.
//!
//! What it promises:
//! - it owns a projection of two streams, never another service's tables: the events
//!   service's (`EventCreated`/`Updated`/`StatusChanged`/`Deleted`: owner, name, currency,
//!   status, sale start) and booking's (`SeatsHeld`, `SeatsReleased`, `OrderPlaced`,
//!   `OrderCancelled`, `SoldOut`, `WaitlistOffered`, `WaitlistJoined`, `WaitlistLeft`); each
//!   domain event is applied once, its
//!   id recorded in the same transaction as its effect, so replaying the streams rebuilds
//!   the same figures;
//! - seats sold, held and available are those of the newest inventory version booking
//!   published; every counter has its reverse (a cancellation takes its order, tickets and
//!   revenue back out), so cancelled and refunded orders never linger in the figures;
//! - money is kept per currency and never summed across currencies;
//! - activity is kept per UTC minute and rolled up when read to hours, days or weeks of the
//!   event's time zone (or the one asked for; UTC across events), across changes of offset,
//!   zero-filled;
//! - the waitlist's length counts the buyers still waiting: a join adds one, a waiting
//!   buyer's leaving and an offer (which takes the head off the list) take one away;
//! - an event's figures are its organizer's and the admins'; anyone else is told it does
//!   not exist.
//!
//! Layout:
//! - [`domain`]: what each domain event means, intervals and roll-ups (pure);
//! - [`store`]: `AnalyticsStore` and its SQL body for SQLite and PostgreSQL (conformance
//!   suite in `tests/api/conformance.rs`);
//! - [`service`]: applying domain events, answering with the access rule;
//! - [`http`]: routes and handlers; [`error`]: `AnalyticsError` → problem.

pub mod domain;
pub mod error;
pub mod http;
pub mod live;
pub mod service;
pub mod store;

use domain::announced_version;
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

pub use http::{AnalyticsState, router};
pub use service::AnalyticsService;
pub use store::AnalyticsStore;

/// The durable name of the consumer of the events service's stream.
pub const CATALOG_CONSUMER: &str = "analytics-catalog";
/// The durable name of the consumer of booking's stream.
pub const SALES_CONSUMER: &str = "analytics-sales";

/// The OpenAPI description of the analytics service.
#[derive(OpenApi)]
#[openapi(
    paths(
        http::analytics::event,
        http::analytics::overview,
        http::live::live,
        http::live::stream
    ),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "analytics", description = "Sales figures per event, organizer and platform, equal to booking's audit"))
)]
pub struct AnalyticsApi;

/// Opens the analytics store at `url` (SQLite or PostgreSQL, by scheme) and migrates it.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(
    url: &SecretString,
    config: &Config,
) -> anyhow::Result<Arc<dyn AnalyticsStore>> {
    Ok(match Engine::of(url.expose_secret())? {
        Engine::Sqlite => {
            let db = evently_core::db::connect_sqlite(url).await?;
            Arc::new(store::SqlAnalyticsStore::sqlite(db).await?)
        }
        Engine::Postgres => {
            let pool =
                evently_core::db::connect_postgres(url, "analytics", &config.database).await?;
            Arc::new(store::SqlAnalyticsStore::postgres(pool).await?)
        }
    })
}

/// The consumer name prefix of a replica's live-feed consumers.
pub const LIVE_CONSUMER: &str = "analytics-live";

/// Applies domain events through the service (idempotent per envelope id), and tells this
/// process's live watchers.
struct FeedHandler(Arc<AnalyticsService>, Arc<live::LiveHub>);

#[async_trait::async_trait]
impl Handler for FeedHandler {
    async fn handle(&self, envelope: &evently_bus::Envelope) -> anyhow::Result<()> {
        if let Some(event) = self.0.apply(envelope).await? {
            self.1.changed(event, announced_version(envelope));
        }
        announce_created(&self.1, envelope);
        Ok(())
    }

    /// The whole delivery in one transaction (one commit instead of one per domain event:
    /// during an on-sale the projection keeps up with booking at a fraction of the cost).
    async fn handle_batch(
        &self,
        envelopes: &[&evently_bus::Envelope],
    ) -> (usize, Option<anyhow::Error>) {
        let (changed, outcome) = match self.0.apply_batch(envelopes).await {
            Ok(changed) => (changed, (envelopes.len(), None)),
            Err((changed, failed, e)) => (
                changed,
                (
                    failed,
                    Some(e.context(format!("handling event {}", envelopes[failed].id))),
                ),
            ),
        };
        for (event, version) in changed {
            self.1.changed(event, version);
        }
        for envelope in &envelopes[..outcome.0] {
            announce_created(&self.1, envelope);
        }
        outcome
    }
}

/// Tells this replica's live watchers about every domain event, whichever replica applies
/// it to the projection.
struct LiveHandler(Arc<live::LiveHub>);

#[async_trait::async_trait]
impl Handler for LiveHandler {
    async fn handle(&self, envelope: &evently_bus::Envelope) -> anyhow::Result<()> {
        if let Some(change) = domain::change_of(envelope) {
            self.0
                .changed(change.event_id(), announced_version(envelope));
        }
        announce_created(&self.0, envelope);
        Ok(())
    }
}

/// Tells `hub` of an event's creation, for the live feeds that follow every event their
/// caller may see (applied or not: a duplicate announcement is taken in once).
fn announce_created(hub: &live::LiveHub, envelope: &evently_bus::Envelope) {
    if envelope.event_type == "EventCreated"
        && let Some(change) = domain::change_of(envelope)
    {
        hub.created(change.event_id());
    }
}

/// A running analytics service's parts.
#[derive(Clone)]
pub struct Analytics {
    /// The operations.
    pub service: Arc<AnalyticsService>,
    /// The HTTP state.
    pub state: AnalyticsState,
    /// The live feed's channels.
    pub hub: Arc<live::LiveHub>,
}

impl Analytics {
    /// Builds the analytics service from `config`.
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
            .url_for(ServiceName::Analytics, &config.server.data_dir);
        let store = open_store(&url, config).await?;
        let service = Arc::new(AnalyticsService::new(
            store,
            clock,
            config.analytics.clone(),
        ));
        let hub = Arc::new(live::LiveHub::new(service.clone()));
        let state = AnalyticsState {
            service: service.clone(),
            keys,
            hub: hub.clone(),
            origins: Arc::new(config.gateway.cors_allowed_origins.clone()),
        };
        Ok(Self {
            service,
            state,
            hub,
        })
    }

    /// The analytics router.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// The handler applying both streams' domain events to the projection.
    pub fn handler(&self) -> Arc<dyn Handler> {
        Arc::new(FeedHandler(self.service.clone(), self.hub.clone()))
    }

    /// Starts, on `tracker` until `shutdown`: the durable consumers of the events
    /// service's stream (`events_feed`) and booking's (`booking_feed`), where given; this
    /// replica's own consumers of both for the live feed (`live_feeds`: on NATS, where
    /// another replica may apply what this one's clients watch; in one process the
    /// projection's consumer tells the live feed itself); and the live feed's refresher.
    pub fn start(
        &self,
        events_feed: Option<Arc<dyn Bus>>,
        booking_feed: Option<Arc<dyn Bus>>,
        live_feeds: Vec<Arc<dyn Bus>>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        // Each event is one short transaction; the batch bounds unacknowledged deliveries.
        const BATCH: usize = 256;
        tracker.spawn(
            self.hub
                .clone()
                .run(shutdown.clone())
                .instrument(tracing::info_span!("analytics_live")),
        );
        let (hub, stop) = (self.hub.clone(), shutdown.clone());
        tracker.spawn(async move {
            stop.cancelled().await;
            hub.shutdown.cancel();
        });
        let replica = uuid::Uuid::now_v7().simple().to_string();
        for (i, bus) in live_feeds.into_iter().enumerate() {
            let name = format!("{LIVE_CONSUMER}-{i}-{replica}");
            tracker.spawn(
                evently_bus::consumer::run_consumer(
                    bus,
                    name.clone(),
                    Arc::new(LiveHandler(self.hub.clone())),
                    BATCH,
                    shutdown.clone(),
                )
                .instrument(tracing::info_span!(
                    "analytics_live_consumer",
                    consumer = name
                )),
            );
        }
        for (feed, name) in [
            (events_feed, CATALOG_CONSUMER),
            (booking_feed, SALES_CONSUMER),
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
                    .instrument(tracing::info_span!("analytics_consumer", consumer = name)),
                );
            }
        }
    }
}
