//! evently-events: venues, events, event status and the sale scheduler.
//!
//! What it promises:
//! - venues are validated once (general admission capacity, or a layout of uniquely named
//!   sections and rows; seat ids `<section>-<row>-<number>`) and never change;
//! - events are created by organizers and admins, who own them; only the owner or an admin
//!   changes or deletes one (403 otherwise); every status change goes through the status
//!   machine (409 naming the allowed targets otherwise);
//! - an UPCOMING event goes ON_SALE by itself at its sale start: the scheduler's flip is a
//!   conditional update, correct across restarts and with several processes;
//! - booking owns seat inventory: a reserved-seating event publishes its venue's layout in
//!   `EventCreated`/`EventUpdated` (booking's seats are `<section>-<row>-<number>`), and a
//!   general-admission event's seats no longer change once it is ON_SALE or SOLD_OUT (409);
//! - `availableSeats` is booking's latest figure, consumed from booking's bus: a figure is
//!   applied only if its inventory version is newer (redeliveries change nothing), and an
//!   ON_SALE event with no seat left goes SOLD_OUT, and back when seats return, in the same
//!   transaction as the figure; UPCOMING and CANCELLED events never follow inventory;
//! - every change writes its domain event to the outbox in the same transaction; the bus
//!   (in-process, or NATS JetStream through the outbox relay) delivers them.
//!
//! Layout:
//! - [`domain`]: ids, the status machine, venues and layouts, events and their rules;
//! - [`store`]: `EventStore` and its SQLite and PostgreSQL backends (their conformance suite
//!   is in `tests/api/conformance.rs`);
//! - [`service`]: the operations and the scheduler;
//! - [`availability`]: the consumer of booking's inventory events;
//! - [`http`]: routes and handlers; [`error`]: `EventsError` → problem.

pub mod availability;
pub mod domain;
pub mod error;
pub mod http;
pub mod service;
pub mod store;

use evently_bus::consumer::Handler;
use evently_bus::nats::NatsBus;
use evently_bus::{Bus, Outbox};
use evently_core::clock::SharedClock;
use evently_core::config::Config;
use evently_core::db::Engine;
use evently_core::identity::{InternalToken, JwtKeys};
use evently_core::service::ServiceName;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use utoipa::OpenApi;

pub use http::{EventsState, router};
pub use service::EventsService;
pub use store::EventStore;

/// The OpenAPI description of the events service.
#[derive(OpenApi)]
#[openapi(
    paths(
        http::venues::create_venue, http::venues::list_venues, http::venues::get_venue,
        http::events::create_event, http::events::list_events, http::events::get_event,
        http::events::update_event, http::events::change_status, http::events::delete_event,
    ),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags(
        (name = "events", description = "Events, their status and sale window"),
        (name = "venues", description = "Venues and seat layouts"),
    )
)]
pub struct EventsApi;

/// The OpenAPI description of the events service's service-to-service routes, which the
/// gateway never serves: published at `/internal/openapi.json` by the process that runs it,
/// merged with the other internal routes of that process.
#[derive(OpenApi)]
#[openapi(
    paths(
        http::internal::check_event, http::internal::check_batch, http::internal::upsert_event,
        http::internal::upsert_batch,
    ),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "internal", description = "Service-to-service routes, with the `X-Internal-Token` credential")),
)]
pub struct EventsInternalApi;

/// Opens the events store at `url` (SQLite or PostgreSQL, by scheme), migrates it, and
/// returns it with its outbox.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(
    url: &SecretString,
    config: &Config,
) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn Outbox>)> {
    Ok(match Engine::of(url.expose_secret())? {
        Engine::Sqlite => {
            let db = evently_core::db::connect_sqlite(url).await?;
            let store = store::SqlEventStore::sqlite(db).await?;
            let outbox = store.outbox();
            (Arc::new(store), Arc::new(outbox))
        }
        Engine::Postgres => {
            let pool = evently_core::db::connect_postgres(url, "events", &config.database).await?;
            let store = store::SqlEventStore::postgres(pool).await?;
            let outbox = store.outbox();
            (Arc::new(store), Arc::new(outbox))
        }
    })
}

/// A running events service's parts.
#[derive(Clone)]
pub struct Events {
    /// The operations.
    pub service: Arc<EventsService>,
    /// The HTTP state.
    pub state: EventsState,
    /// The outbox its changes are written to.
    pub outbox: Arc<dyn Outbox>,
    /// The bus delivering that outbox.
    pub bus: Arc<dyn Bus>,
    nats: Option<NatsBus>,
    config: Config,
}

impl Events {
    /// Builds the events service from `config`; other services reach its `/internal/*`
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
            .url_for(ServiceName::Events, &config.server.data_dir);
        let (store, outbox) = open_store(&url, config).await?;
        let (bus, nats) =
            evently_bus::wiring::open(&config.bus, ServiceName::Events, outbox.clone()).await?;
        let service = Arc::new(EventsService::new(store, clock));
        let state = EventsState {
            service: service.clone(),
            keys,
            config: Arc::new(config.events.clone()),
            internal,
            batch: http::BatchLimits::for_imports(&config.data, config.server.body_limit_bytes),
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

    /// The events router.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// Starts the background work on `tracker` until `shutdown`: the sale scheduler, and on
    /// NATS the outbox relay.
    pub fn start(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        let interval = Duration::from_millis(self.config.events.scheduler_interval_ms);
        tracker.spawn(
            self.service
                .clone()
                .run_scheduler(interval, shutdown.clone()),
        );
        if let Some(nats) = &self.nats {
            let relay =
                evently_bus::wiring::relay(&self.config.bus, self.outbox.clone(), nats.clone());
            tracker.spawn(relay.run(shutdown.clone()));
        }
    }

    /// The handler that applies booking's inventory events to events' availability and
    /// status (see [`availability`]); idempotent per figure.
    pub fn availability_handler(&self) -> Arc<dyn Handler> {
        Arc::new(availability::AvailabilityHandler::new(self.service.clone()))
    }

    /// Starts the durable consumer `events-availability` of `booking_bus` on `tracker` until
    /// `shutdown`, applying booking's inventory events with [`Events::availability_handler`].
    pub fn start_availability_consumer(
        &self,
        booking_bus: Arc<dyn Bus>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        // Each figure is one short transaction; a batch this size keeps a busy sale's
        // backlog moving without holding many unacknowledged deliveries.
        const BATCH: usize = 256;
        tracker.spawn(
            evently_bus::consumer::run_consumer(
                booking_bus,
                availability::AVAILABILITY_CONSUMER.into(),
                self.availability_handler(),
                BATCH,
                shutdown.clone(),
            )
            .instrument(tracing::info_span!(
                "availability_consumer",
                consumer = availability::AVAILABILITY_CONSUMER
            )),
        );
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
        for (bus, events) in [
            (
                include_str!("../../bus/migrations/sqlite.sql"),
                include_str!("../migrations/sqlite/0001_events.sql"),
            ),
            (
                include_str!("../../bus/migrations/postgres.sql"),
                include_str!("../migrations/postgres/0001_events.sql"),
            ),
        ] {
            assert!(
                events.contains(&statements(bus)),
                "the events migration's outbox tables differ from evently-bus's"
            );
        }
        let traceparent = statements(include_str!("../../bus/migrations/outbox_traceparent.sql"));
        for later in [
            include_str!("../migrations/sqlite/0003_outbox_traceparent.sql"),
            include_str!("../migrations/postgres/0003_outbox_traceparent.sql"),
        ] {
            assert_eq!(statements(later), traceparent);
        }
    }
}
