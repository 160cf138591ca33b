//! evently-booking: seat inventory, holds, payments, orders and tickets, the waitlist and
//! live availability — the source of truth for what is sold.
//!
//! What it promises (ARCHITECTURE.md sections 3 and 4):
//! - a seat is never sold twice and a general-admission event never sells past capacity:
//!   every inventory change runs under its event's lock with checked conditional updates, and
//!   a unique index on valid tickets per seat is the last guard (see [`store`]);
//! - holds are all or nothing, expire on time (the expiry task wakes at the next expiry) and
//!   then return their seats; a buyer's own live hold never blocks them;
//! - an order is created at most once per hold and per idempotency key: the order, its
//!   tickets, the seats' sold state, the stored answer for the key and the `OrderPlaced`
//!   outbox row commit in one transaction;
//! - inventories are built and followed from the events service's domain events; an event
//!   cancelled or deleted by its organizer refunds every order (a saga driven by those
//!   events); every inventory change publishes its domain event with the resulting figures;
//! - its limits (hold TTL, seats per order, tickets per user, waitlist offer time) are its
//!   configuration tightened by the settings service's documents, which reach it as
//!   `SettingsChanged` events in an in-memory projection ([`settings`]): never looser than
//!   configured, never read over the network on the purchase path.
//!
//! Layout: [`domain`] (vocabulary and rules), [`store`] (the trait and the body written once
//! for both engines; its conformance suite is in `tests/conformance/`, one module per area),
//! [`service`] (operations, expiry), [`idempotency`] (the protocol of requests with an
//! `Idempotency-Key`), [`http`] (routes, one module per resource), [`error`] (→ problem), [`audit`]
//! (counting an event's inventory from its rows), [`settings`] (the settings projection).

pub mod audit;
pub mod domain;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod service;
pub mod settings;
pub mod sold_out;
pub mod store;

use async_trait::async_trait;
use evently_bus::nats::NatsBus;
use evently_bus::{Bus, Envelope, Outbox};
use evently_core::clock::SharedClock;
use evently_core::config::Config;
use evently_core::db::Engine;
use evently_core::identity::{InternalToken, JwtKeys};
use evently_core::service::ServiceName;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use utoipa::OpenApi;

pub use audit::{Audit, audit};
pub use http::{BookingState, router};
pub use service::BookingService;
pub use store::BookingStore;

/// The OpenAPI description of the booking service.
#[derive(OpenApi)]
#[openapi(
    paths(
        http::seats::seat_map, http::holds::create_hold, http::holds::get_hold,
        http::holds::hold_ttl, http::holds::refresh_hold, http::holds::release_hold,
        http::payments::create_intent, http::payments::confirm_intent, http::payments::get_payment,
        http::orders::purchase, http::orders::checkout,
        http::orders::list_orders, http::orders::get_order, http::orders::cancel_order,
        http::availability::availability, http::availability::availability_stream,
        http::waitlist::join_waitlist, http::waitlist::waitlist_position,
        http::waitlist::leave_waitlist,
    ),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "booking", description = "Seat maps, holds, payments, orders, the waitlist and availability"))
)]
pub struct BookingApi;

/// The OpenAPI description of booking's service-to-service routes, which the gateway never
/// serves: published at `/internal/openapi.json` by the process that runs it, merged with
/// the other internal routes of that process.
#[derive(OpenApi)]
#[openapi(
    paths(http::internal::event_orders),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "internal", description = "Service-to-service routes, with the `X-Internal-Token` credential")),
)]
pub struct BookingInternalApi;

/// Opens the booking store at `url` (SQLite or PostgreSQL, by scheme), migrates it, and
/// returns it with its outbox.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(
    url: &SecretString,
    config: &Config,
) -> anyhow::Result<(Arc<dyn BookingStore>, Arc<dyn Outbox>)> {
    Ok(match Engine::of(url.expose_secret())? {
        Engine::Sqlite => {
            let db = evently_core::db::connect_sqlite(url).await?;
            let store = store::SqlBookingStore::sqlite(db).await?;
            let outbox = store.outbox();
            (Arc::new(store), Arc::new(outbox))
        }
        Engine::Postgres => {
            let pool = evently_core::db::connect_postgres(url, "booking", &config.database).await?;
            let store = store::SqlBookingStore::postgres(pool).await?;
            let outbox = store.outbox();
            (Arc::new(store), Arc::new(outbox))
        }
    })
}

/// A running booking service's parts.
#[derive(Clone)]
pub struct Booking {
    /// The operations.
    pub service: Arc<BookingService>,
    /// The HTTP state.
    pub state: BookingState,
    /// The outbox its changes are written to.
    pub outbox: Arc<dyn Outbox>,
    /// The bus delivering that outbox.
    pub bus: Arc<dyn Bus>,
    nats: Option<NatsBus>,
    config: Config,
}

struct CatalogHandler(Arc<BookingService>);

/// Feeds the settings projection; idempotent by document version.
struct SettingsHandler(Arc<BookingService>);

#[async_trait]
impl evently_bus::consumer::Handler for SettingsHandler {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.0.apply_settings(envelope)
    }
}

#[async_trait]
impl evently_bus::consumer::Handler for CatalogHandler {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.0.apply_catalog(envelope).await
    }
}

impl Booking {
    /// Builds the booking service from `config`; other services reach its `/internal/*`
    /// routes with `internal`.
    ///
    /// # Errors
    /// When the store cannot be opened or the bus cannot be set up.
    pub async fn build(
        config: &Config,
        keys: Arc<JwtKeys>,
        internal: InternalToken,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let url = config
            .database
            .url_for(ServiceName::Booking, &config.server.data_dir);
        let (store, outbox) = open_store(&url, config).await?;
        let (bus, nats) =
            evently_bus::wiring::open(&config.bus, ServiceName::Booking, outbox.clone()).await?;
        let service = Arc::new(BookingService::new(store, clock, config.booking.clone()));
        let state = BookingState {
            service: service.clone(),
            keys,
            internal,
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

    /// The booking router.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// What the gateway of this process may answer for booking before authentication:
    /// holds on fully sold events ([`http::holds::SoldOutRefusals`]), where the store sees
    /// every write (embedded SQLite).
    #[must_use]
    pub fn early_answer(&self) -> Option<Arc<dyn evently_core::http::EarlyAnswer>> {
        http::holds::SoldOutRefusals::new(self.service.clone())
            .map(|r| Arc::new(r) as Arc<dyn evently_core::http::EarlyAnswer>)
    }

    /// Starts the consumer `consumer` of the settings service's stream (`settings_bus`) on
    /// `tracker` until `shutdown`, feeding the in-memory settings projection. The projection
    /// lives in memory, so the stream is read from its beginning at every start: with
    /// `replay`, the consumer's position is reset first (a name this process reuses); a
    /// name new to the bus starts from the beginning anyway.
    pub fn start_settings_consumer(
        &self,
        settings_bus: Arc<dyn Bus>,
        consumer: String,
        replay: bool,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        let handler = Arc::new(SettingsHandler(self.service.clone()));
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                if replay {
                    // Until the reset succeeds the projection would miss older documents.
                    while let Err(e) = settings_bus.reset(&consumer).await {
                        tracing::warn!(consumer = %consumer, error = %e, "resetting failed; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        }
                    }
                }
                evently_bus::consumer::run_consumer(settings_bus, consumer, handler, 256, shutdown)
                    .await;
            }
            .instrument(tracing::info_span!("booking_settings_consumer")),
        );
    }

    /// Starts the background work on `tracker` until `shutdown`: the expiry task, the
    /// consumer of the events service's domain events (from `events_bus`), and on NATS the
    /// outbox relay.
    pub fn start(
        &self,
        events_bus: Arc<dyn Bus>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        tracker.spawn(self.service.clone().run_expiry(shutdown.clone()));
        tracker.spawn(evently_bus::consumer::run_consumer(
            events_bus,
            "booking-catalog".into(),
            Arc::new(CatalogHandler(self.service.clone())),
            256,
            shutdown.clone(),
        ));
        if let Some(nats) = &self.nats {
            let relay =
                evently_bus::wiring::relay(&self.config.bus, self.outbox.clone(), nats.clone());
            tracker.spawn(relay.run(shutdown.clone()));
        }
    }
}
