//! The evently application: wires the selected services into one process.
//!
//! `evently serve` runs every service in one process by default; `--services a,b` runs a
//! subset. Each selected service contributes its router; the process adds the operational
//! routes (`/health/*`, `/metrics`), the merged OpenAPI document (`/openapi.json`, `/docs`) and
//! the common middleware stack. A process that runs the gateway also serves the web client
//! (`evently-web`) at `/`.
//!
//! Entry points take their environment as arguments ([`serve`] takes a bound listener and a
//! shutdown token), so tests run the real application on port 0.

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use evently_analytics::Analytics;
use evently_auth::Auth;
use evently_booking::Booking;
use evently_bus::Bus;
use evently_core::clock::{SharedClock, SystemClock};
use evently_core::config::Config;
use evently_core::http::{Readiness, StackOptions};
use evently_core::identity::{InternalToken, JwtKeys};
use evently_core::service::ServiceName;
use evently_events::Events;
use evently_recs::Recs;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};
use utoipa::OpenApi;

/// The operational routes, documented.
#[derive(OpenApi)]
#[openapi(
    paths(
        evently_core::http::live,
        evently_core::http::ready,
        evently_core::http::render_metrics
    ),
    tags((name = "operations", description = "Health and metrics"))
)]
struct OpsApi;

/// The OpenAPI document of one service.
fn service_openapi(service: ServiceName) -> utoipa::openapi::OpenApi {
    match service {
        ServiceName::Auth => evently_auth::AuthApi::openapi(),
        ServiceName::Events => evently_events::EventsApi::openapi(),
        ServiceName::Booking => evently_booking::BookingApi::openapi(),
        ServiceName::Recs => evently_recs::RecsApi::openapi(),
        ServiceName::Search => evently_search::SearchApi::openapi(),
        ServiceName::Settings => evently_settings::SettingsApi::openapi(),
        ServiceName::Analytics => evently_analytics::AnalyticsApi::openapi(),
        ServiceName::Data => evently_data::DataApi::openapi(),
        ServiceName::Gateway => evently_gateway::GatewayApi::openapi(),
    }
}

/// The OpenAPI document of one service's service-to-service routes, for the services that
/// have some.
fn service_internal_openapi(service: ServiceName) -> Option<utoipa::openapi::OpenApi> {
    match service {
        ServiceName::Auth => Some(evently_auth::AuthInternalApi::openapi()),
        ServiceName::Events => Some(evently_events::EventsInternalApi::openapi()),
        ServiceName::Booking => Some(evently_booking::BookingInternalApi::openapi()),
        _ => None,
    }
}

/// The document of the internal routes a process serves.
#[derive(OpenApi)]
#[openapi(
    paths(internal_doc),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "internal", description = "Service-to-service routes, with the `X-Internal-Token` credential")),
)]
struct InternalDocApi;

/// This document: the internal routes of the services of this process.
#[utoipa::path(get, path = "/internal/openapi.json", tag = "internal",
    responses((status = 200, description = "The OpenAPI document of the internal routes")))]
async fn internal_doc(
    axum::extract::State(doc): axum::extract::State<Arc<utoipa::openapi::OpenApi>>,
) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(doc.as_ref().clone())
}

/// The merged OpenAPI document of the service-to-service routes of `services` (the gateway
/// never serves them): what `/internal/openapi.json` of a process running them answers.
pub fn internal_openapi(services: &[ServiceName]) -> utoipa::openapi::OpenApi {
    let mut doc = InternalDocApi::openapi();
    for service in services {
        if let Some(internal) = service_internal_openapi(*service) {
            doc.merge(internal);
        }
    }
    doc.info.title = "evently internal routes".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc
}

/// The merged OpenAPI document of `services`, with the limits `config` sets.
pub fn openapi(config: &Config, services: &[ServiceName]) -> utoipa::openapi::OpenApi {
    let mut doc = OpsApi::openapi();
    for service in services {
        doc.merge(service_openapi(*service));
    }
    doc.info.title = "evently".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "Event ticketing: accounts, events, seat holds and orders. Errors are RFC 9457 \
         problem+json; problem `type` URIs are https://evently.dev/problems/<slug>."
            .into(),
    );
    evently_gateway::contract::complete(&mut doc);
    evently_gateway::contract::publish_limits(
        &mut doc,
        evently_gateway::contract::Limits {
            seats_per_order: config.booking.max_seats_per_order,
            page_size: config.events.max_page_size,
            recommendations: config.recs.max_limit,
        },
    );
    doc
}

/// The shared secrets of a deployment: configured, or generated once and kept in the data
/// directory.
pub struct Secrets {
    /// Access-token keys.
    pub keys: Arc<JwtKeys>,
    /// Service-to-service credential.
    pub internal: InternalToken,
}

impl Secrets {
    /// Loads the secrets of `config`.
    ///
    /// # Errors
    /// When a generated secret cannot be read or written.
    pub fn load(config: &Config) -> anyhow::Result<Self> {
        let dir = &config.server.data_dir;
        let jwt = match &config.jwt.secret {
            Some(secret) => secret.clone(),
            None => evently_core::secret::load_or_create(dir, "jwt-secret")?,
        };
        let internal = match &config.internal.token {
            Some(token) => token.clone(),
            None => evently_core::secret::load_or_create(dir, "internal-token")?,
        };
        Ok(Self {
            keys: Arc::new(JwtKeys::new(&config.jwt, &jwt)),
            internal: InternalToken(Arc::new(internal)),
        })
    }
}

/// A built application: its router and the services' handles.
pub struct App {
    /// The complete router, middleware included.
    pub router: Router,
    /// Cancelled when the process starts shutting down: `/health/ready` answers 503 from then.
    pub draining: CancellationToken,
    /// The auth service, when selected.
    pub auth: Option<Auth>,
    /// The events service, when selected; [`serve`] runs its background work.
    pub events: Option<Events>,
    /// The booking service, when selected; [`serve`] runs its background work.
    pub booking: Option<Booking>,
    /// The recommendations service, when selected; [`serve`] runs its background work.
    pub recs: Option<Recs>,
    /// Where recommendations read the events service's, booking's and the settings
    /// service's domain events from (when recs runs here).
    recs_feeds: evently_recs::Feeds,
    /// Where booking reads the events service's domain events from (when booking runs here).
    events_feed: Option<Arc<dyn Bus>>,
    /// Where events reads booking's domain events from (when events runs here).
    booking_feed: Option<Arc<dyn Bus>>,
    /// The search service, when selected, with the streams it reads (events', booking's).
    pub search: Option<evently_search::Search>,
    search_feeds: Option<SearchFeeds>,
    /// The settings service, when selected; [`serve`] runs its background work.
    pub settings: Option<evently_settings::Settings>,
    /// Where settings reads the events service's domain events from (event owners).
    settings_events_feed: Option<Arc<dyn Bus>>,
    /// Where booking reads the settings service's domain events from, and the name of its
    /// consumer there (when booking runs here).
    booking_settings_feed: Option<(Arc<dyn Bus>, String, bool)>,
    /// The analytics service, when selected; [`serve`] runs its consumers.
    pub analytics: Option<Analytics>,
    /// Where analytics reads the events service's and booking's domain events from.
    analytics_feeds: Feeds,
    /// This replica's own feeds of both streams for the analytics live feed (on NATS).
    analytics_live_feeds: Vec<Arc<dyn Bus>>,
    /// The data service, when selected; [`serve`] runs its background work.
    pub data: Option<evently_data::Data>,
}

impl App {
    /// Starts the services' background work on `tracker` until `shutdown`: schedulers,
    /// outbox relays, the hold expiry task and the domain-event consumers.
    pub fn start(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        if let Some(events) = &self.events {
            events.start(tracker, shutdown);
            if let Some(feed) = &self.booking_feed {
                events.start_availability_consumer(feed.clone(), tracker, shutdown);
            }
        }
        if let (Some(booking), Some(feed)) = (&self.booking, &self.events_feed) {
            booking.start(feed.clone(), tracker, shutdown);
        }
        if let Some(recs) = &self.recs {
            recs.start(self.recs_feeds.clone(), tracker, shutdown);
        }
        if let (Some(search), Some((events, booking))) = (&self.search, &self.search_feeds) {
            search.start(events.clone(), booking.clone(), tracker, shutdown);
        }
        if let Some(settings) = &self.settings {
            settings.start(self.settings_events_feed.clone(), tracker, shutdown);
        }
        if let (Some(booking), Some((feed, name, replay))) =
            (&self.booking, &self.booking_settings_feed)
        {
            booking.start_settings_consumer(feed.clone(), name.clone(), *replay, tracker, shutdown);
        }
        if let Some(analytics) = &self.analytics {
            let (events, booking) = &self.analytics_feeds;
            analytics.start(
                events.clone(),
                booking.clone(),
                self.analytics_live_feeds.clone(),
                tracker,
                shutdown,
            );
        }
        if let Some(data) = &self.data {
            data.start(tracker, shutdown);
        }
    }
}

/// Builds the application for `services` (all of them when empty).
///
/// # Errors
/// When a store cannot be opened or a secret cannot be loaded.
pub async fn build(
    config: &Config,
    services: &[ServiceName],
    clock: SharedClock,
) -> anyhow::Result<App> {
    let services = selected(services);
    // Install the metrics recorder before the first request is counted.
    let _ = evently_core::http::metrics_handle();
    let secrets = Secrets::load(config)?;
    let mut routers = Router::new();
    let mut local: Vec<(String, Readiness)> = Vec::new();
    let mut auth = None;
    let mut events: Option<Events> = None;
    let mut booking: Option<Booking> = None;
    let mut recs: Option<Recs> = None;
    let mut search: Option<evently_search::Search> = None;
    let mut settings: Option<evently_settings::Settings> = None;
    let mut analytics: Option<Analytics> = None;
    let mut data: Option<evently_data::Data> = None;
    for service in &services {
        match service {
            ServiceName::Auth => {
                let built = Auth::build(
                    config,
                    secrets.keys.clone(),
                    secrets.internal.clone(),
                    clock.clone(),
                )
                .await
                .context("starting the auth service")?;
                let store = built.service.store().clone();
                let mut readiness = Readiness::default();
                readiness.add(
                    "auth-store",
                    Arc::new(move || {
                        let store = store.clone();
                        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                local.push(("auth".into(), readiness));
                routers = routers.merge(built.router());
                auth = Some(built);
            }
            ServiceName::Events => {
                let built = Events::build(
                    config,
                    secrets.keys.clone(),
                    secrets.internal.clone(),
                    clock.clone(),
                )
                .await
                .context("starting the events service")?;
                let store = built.service.store().clone();
                let bus = built.bus.clone();
                let mut readiness = Readiness::default();
                readiness.add(
                    "events-store",
                    Arc::new(move || {
                        let store = store.clone();
                        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                readiness.add(
                    "events-bus",
                    Arc::new(move || {
                        let bus = bus.clone();
                        Box::pin(async move { bus.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                local.push(("events".into(), readiness));
                routers = routers.merge(built.router());
                events = Some(built);
            }
            ServiceName::Booking => {
                let built = Booking::build(
                    config,
                    secrets.keys.clone(),
                    secrets.internal.clone(),
                    clock.clone(),
                )
                .await
                .context("starting the booking service")?;
                let store = built.service.store().clone();
                let bus = built.bus.clone();
                let mut readiness = Readiness::default();
                readiness.add(
                    "booking-store",
                    Arc::new(move || {
                        let store = store.clone();
                        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                readiness.add(
                    "booking-bus",
                    Arc::new(move || {
                        let bus = bus.clone();
                        Box::pin(async move { bus.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                local.push(("booking".into(), readiness));
                routers = routers.merge(built.router());
                booking = Some(built);
            }
            ServiceName::Recs => {
                let built = Recs::build(config, secrets.keys.clone(), clock.clone())
                    .await
                    .context("starting the recommendations service")?;
                let store = built.service.store().clone();
                let mut readiness = Readiness::default();
                readiness.add(
                    "recs-store",
                    Arc::new(move || {
                        let store = store.clone();
                        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                local.push(("recs".into(), readiness));
                routers = routers.merge(built.router());
                recs = Some(built);
            }
            ServiceName::Search => {
                let built = evently_search::Search::build(config, clock.clone())
                    .context("starting the search service")?;
                let mut readiness = Readiness::default();
                readiness.add("search-index", built.readiness());
                local.push(("search".into(), readiness));
                routers = routers.merge(built.router());
                search = Some(built);
            }
            ServiceName::Settings => {
                let built =
                    evently_settings::Settings::build(config, secrets.keys.clone(), clock.clone())
                        .await
                        .context("starting the settings service")?;
                let store = built.service.store().clone();
                let bus = built.bus.clone();
                let mut readiness = Readiness::default();
                readiness.add(
                    "settings-store",
                    Arc::new(move || {
                        let store = store.clone();
                        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                readiness.add(
                    "settings-bus",
                    Arc::new(move || {
                        let bus = bus.clone();
                        Box::pin(async move { bus.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                local.push(("settings".into(), readiness));
                routers = routers.merge(built.router());
                settings = Some(built);
            }
            ServiceName::Analytics => {
                let built = Analytics::build(config, secrets.keys.clone(), clock.clone())
                    .await
                    .context("starting the analytics service")?;
                let store = built.service.store().clone();
                let mut readiness = Readiness::default();
                readiness.add(
                    "analytics-store",
                    Arc::new(move || {
                        let store = store.clone();
                        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                local.push(("analytics".into(), readiness));
                routers = routers.merge(built.router());
                analytics = Some(built);
            }
            ServiceName::Data => {
                // Imports and exports go through the events and booking services' operations:
                // directly when they run in this process (services sort after them, so they
                // are built already), else over internal HTTP.
                let (client, booking_client, users_client) = data_clients(
                    config,
                    &secrets,
                    events.as_ref(),
                    booking.as_ref(),
                    auth.as_ref(),
                )?;
                let built = evently_data::Data::build(
                    config,
                    secrets.keys.clone(),
                    client,
                    booking_client,
                    users_client,
                    clock.clone(),
                )
                .await
                .context("starting the data service")?;
                let store = built.service.store().clone();
                let mut readiness = Readiness::default();
                readiness.add(
                    "data-store",
                    Arc::new(move || {
                        let store = store.clone();
                        Box::pin(async move { store.ping().await.map_err(|e| e.to_string()) })
                    }),
                );
                local.push(("data".into(), readiness));
                routers = routers.merge(built.router());
                data = Some(built);
            }
            ServiceName::Gateway => {}
        }
    }
    // Each of events and booking consumes the other's domain events: from the bus in this
    // process when both run here, else from NATS.
    let events_feed = match (&booking, &events) {
        (None, _) => None,
        (Some(_), Some(e)) => Some(e.bus.clone()),
        (Some(_), None) => {
            Some(evently_bus::wiring::remote(&config.bus, ServiceName::Events).await?)
        }
    };
    let booking_feed = match (&events, &booking) {
        (None, _) => None,
        (Some(_), Some(b)) => Some(b.bus.clone()),
        (Some(_), None) => match config.bus.nats_url {
            Some(_) => Some(evently_bus::wiring::remote(&config.bus, ServiceName::Booking).await?),
            None => {
                tracing::warn!(
                    "events runs without booking and without NATS: availableSeats will not \
                     follow sales"
                );
                None
            }
        },
    };
    let recs_feeds = match &recs {
        None => evently_recs::Feeds::default(),
        Some(_) => evently_recs::Feeds {
            events: recs_feed(
                config,
                events.as_ref().map(|e| e.bus.clone()),
                ServiceName::Events,
            )
            .await?,
            booking: recs_feed(
                config,
                booking.as_ref().map(|b| b.bus.clone()),
                ServiceName::Booking,
            )
            .await?,
            settings: recs_feed(
                config,
                settings.as_ref().map(|s| s.bus.clone()),
                ServiceName::Settings,
            )
            .await?,
        },
    };
    let analytics_feeds = match &analytics {
        None => (None, None),
        Some(_) => (
            feed_for(
                config,
                events.as_ref().map(|e| e.bus.clone()),
                ServiceName::Events,
                "analytics",
            )
            .await?,
            feed_for(
                config,
                booking.as_ref().map(|b| b.bus.clone()),
                ServiceName::Booking,
                "analytics",
            )
            .await?,
        ),
    };
    // Each replica follows every event for its own live watchers; in one process the
    // projection's consumer tells them itself.
    let analytics_live_feeds = match (&analytics, &config.bus.nats_url) {
        (Some(_), Some(_)) => {
            let inactive = Duration::from_secs(config.search.inactive_threshold_seconds);
            vec![
                evently_bus::wiring::replica(&config.bus, ServiceName::Events, inactive).await?,
                evently_bus::wiring::replica(&config.bus, ServiceName::Booking, inactive).await?,
            ]
        }
        _ => Vec::new(),
    };
    let search_feeds = match &search {
        None => None,
        Some(_) => Some(search_feeds(config, events.as_ref(), booking.as_ref()).await?),
    };
    let settings_events_feed = match &settings {
        None => None,
        Some(_) => match (events.as_ref(), &config.bus.nats_url) {
            (Some(e), _) => Some(e.bus.clone()),
            (None, Some(_)) => {
                Some(evently_bus::wiring::remote(&config.bus, ServiceName::Events).await?)
            }
            (None, None) => {
                tracing::warn!(
                    "settings runs without events and without NATS: only admins can reach \
                     event settings"
                );
                None
            }
        },
    };
    let booking_settings_feed = match &booking {
        None => None,
        Some(_) => booking_settings_feed(config, settings.as_ref()).await?,
    };
    let mut readiness = Readiness::default();
    for (_, r) in &local {
        readiness.extend(r);
    }
    // From the shutdown signal on, this process is not ready: [`serve`] keeps answering for
    // the drain window so that whoever routes to it notices.
    let draining = CancellationToken::new();
    let signalled = draining.clone();
    readiness.add(
        "shutdown",
        Arc::new(move || {
            let draining = signalled.is_cancelled();
            Box::pin(async move {
                if draining {
                    Err("shutting down".to_owned())
                } else {
                    Ok(())
                }
            })
        }),
    );
    // One document of the internal routes of the services of this process (the gateway
    // never forwards /internal, so behind it this is reachable by no one).
    let routers = routers.route(
        "/internal/openapi.json",
        axum::routing::get(internal_doc).with_state(Arc::new(internal_openapi(&services))),
    );
    let (router, documented) = if services.contains(&ServiceName::Gateway) {
        let gateway = evently_gateway::Gateway::new(config, secrets.keys.clone(), local)
            .context("starting the gateway")?;
        let gateway = match booking.as_ref().and_then(Booking::early_answer) {
            Some(early) => gateway.with_early_answer(early),
            None => gateway,
        };
        let api = gateway.wrap(routers);
        // The web client sits next to the edge, not behind it: its pages and assets never
        // count against a rate limit, while the API calls its pages make go through the edge
        // (in process) like any client's.
        let web = evently_web::router(
            api.clone(),
            evently_web::WebConfig {
                hsts: config.gateway.hsts,
            },
        );
        // The gateway fronts every service, local or remote, so it documents them all.
        (web.merge(api), ServiceName::ALL.to_vec())
    } else {
        (
            routers.fallback(evently_core::http::not_found),
            services.clone(),
        )
    };
    let router = router
        .merge(evently_core::http::ops_router(readiness))
        .merge(evently_core::http::docs_router(openapi(
            config,
            &documented,
        )));
    let router = evently_core::http::apply_stack(
        router,
        StackOptions {
            body_limit_bytes: config.server.body_limit_bytes,
            // The gateway times requests out inside its edge.
            timeout: (!services.contains(&ServiceName::Gateway)).then(|| config.request_timeout()),
            trust_forwarded_for: config.server.trust_forwarded_for,
        },
    );
    Ok(App {
        router,
        draining,
        auth,
        events,
        booking,
        recs,
        recs_feeds,
        events_feed,
        booking_feed,
        search,
        search_feeds,
        settings,
        settings_events_feed,
        booking_settings_feed,
        analytics,
        analytics_feeds,
        analytics_live_feeds,
        data,
    })
}

/// The data service's ways to events and, when it has them, to booking and auth.
type DataClients = (
    Arc<dyn evently_data::EventsClient>,
    Option<Arc<dyn evently_data::BookingClient>>,
    Option<Arc<dyn evently_data::UsersClient>>,
);

/// How the data service reaches events, booking and auth: the services of this process, else
/// the services at `data.events_url` / `data.booking_url` / `data.auth_url` (or the gateway's
/// upstream URLs) over internal HTTP. Without booking, orders exports answer 503; without
/// auth, they leave the buyers' names and e-mails empty.
fn data_clients(
    config: &Config,
    secrets: &Secrets,
    events: Option<&Events>,
    booking: Option<&Booking>,
    auth: Option<&evently_auth::Auth>,
) -> anyhow::Result<DataClients> {
    let timeout = Duration::from_secs(config.data.upstream_timeout_seconds);
    let url_of = |own: &Option<String>, service: &str| {
        own.clone()
            .or_else(|| config.gateway.services.get(service).cloned())
    };
    let events: Arc<dyn evently_data::EventsClient> = match events {
        Some(e) => Arc::new(evently_data::LocalEvents(e.service.clone())),
        None => {
            let url = url_of(&config.data.events_url, "events").context(
                "the data service reads and writes events through the events service: run \
                 `events` in the same process, or set data.events_url",
            )?;
            Arc::new(evently_data::HttpEvents::new(
                &url,
                timeout,
                config.events.max_page_size,
                secrets.internal.clone(),
                secrets.keys.clone(),
            )?)
        }
    };
    let booking: Option<Arc<dyn evently_data::BookingClient>> = match booking {
        Some(b) => Some(Arc::new(evently_data::LocalBooking(b.service.clone()))),
        None => match url_of(&config.data.booking_url, "booking") {
            Some(url) => Some(Arc::new(evently_data::HttpBooking::new(
                &url,
                timeout,
                secrets.internal.clone(),
                secrets.keys.clone(),
            )?)),
            None => {
                tracing::warn!(
                    "data runs without booking and without data.booking_url: orders exports \
                     answer 503"
                );
                None
            }
        },
    };
    let users: Option<Arc<dyn evently_data::UsersClient>> = match auth {
        Some(a) => Some(Arc::new(evently_data::LocalUsers(a.service.clone()))),
        None => match url_of(&config.data.auth_url, "auth") {
            Some(url) => Some(Arc::new(evently_data::HttpUsers::new(
                &url,
                timeout,
                secrets.internal.clone(),
                secrets.keys.clone(),
            )?)),
            None => {
                tracing::warn!(
                    "data runs without auth and without data.auth_url: orders exports leave \
                     buyers' names and e-mails empty"
                );
                None
            }
        },
    };
    Ok((events, booking, users))
}

/// The settings stream booking's in-memory projection reads, with its consumer's name and
/// whether to reset it first: without NATS the settings service's bus in this process (one
/// booking reads it, under a fixed name, replayed from the start); on NATS a consumer of this
/// process alone, whichever process runs settings, since several booking processes may read
/// the stream (`booking-settings-<uuid>`, new to the stream, so read from its beginning; NATS
/// deletes it an hour after the process is gone). Without either, booking applies its
/// configuration alone (and says so).
async fn booking_settings_feed(
    config: &Config,
    settings: Option<&evently_settings::Settings>,
) -> anyhow::Result<Option<(Arc<dyn Bus>, String, bool)>> {
    if let (Some(settings), None) = (settings, &config.bus.nats_url) {
        return Ok(Some((
            settings.bus.clone(),
            "booking-settings".to_owned(),
            true,
        )));
    }
    if config.bus.nats_url.is_none() {
        tracing::warn!(
            "booking runs without settings and without NATS: only its configured limits apply"
        );
        return Ok(None);
    }
    let bus = evently_bus::wiring::replica(
        &config.bus,
        ServiceName::Settings,
        Duration::from_secs(3600),
    )
    .await?;
    Ok(Some((
        bus,
        format!("booking-settings-{}", uuid::Uuid::now_v7().simple()),
        false,
    )))
}

/// The stream of `service` for the recommendations consumers: its bus in this process,
/// else NATS; without either, recommendations run without it (and say so).
async fn recs_feed(
    config: &Config,
    local: Option<Arc<dyn Bus>>,
    service: ServiceName,
) -> anyhow::Result<Option<Arc<dyn Bus>>> {
    feed_for(config, local, service, "recs").await
}

/// The stream of `service` for the durable consumers of `reader`: its bus in this process,
/// else NATS; without either, `reader` runs without it (and says so).
async fn feed_for(
    config: &Config,
    local: Option<Arc<dyn Bus>>,
    service: ServiceName,
    reader: &str,
) -> anyhow::Result<Option<Arc<dyn Bus>>> {
    match (local, &config.bus.nats_url) {
        (Some(bus), _) => Ok(Some(bus)),
        (None, Some(_)) => Ok(Some(
            evently_bus::wiring::remote(&config.bus, service).await?,
        )),
        (None, None) => {
            tracing::warn!(
                %service,
                reader,
                "{reader} runs without {service} and without NATS: its domain events will not \
                 reach {reader}"
            );
            Ok(None)
        }
    }
}

/// The events service's and booking's streams, each where it can be reached.
type Feeds = (Option<Arc<dyn Bus>>, Option<Arc<dyn Bus>>);

/// The streams search reads: events', and booking's when it can be reached.
type SearchFeeds = (Arc<dyn Bus>, Option<Arc<dyn Bus>>);

/// The streams a search replica reads: on NATS its own connection, whose per-replica
/// consumers go away `search.inactive_threshold_seconds` after the replica does; else the
/// in-process buses of events and booking running here (search needs at least events').
async fn search_feeds(
    config: &Config,
    events: Option<&Events>,
    booking: Option<&Booking>,
) -> anyhow::Result<SearchFeeds> {
    if config.bus.nats_url.is_some() {
        let inactive = Duration::from_secs(config.search.inactive_threshold_seconds);
        let events =
            evently_bus::wiring::replica(&config.bus, ServiceName::Events, inactive).await?;
        let booking =
            evently_bus::wiring::replica(&config.bus, ServiceName::Booking, inactive).await?;
        return Ok((events, Some(booking)));
    }
    let events = events.map(|e| e.bus.clone()).context(
        "search runs without the events service and without NATS: set bus.nats_url \
         (EVENTLY_NATS_URL) so that it receives the events it indexes",
    )?;
    if booking.is_none() {
        tracing::warn!(
            "search runs without booking and without NATS: availability will not follow sales"
        );
    }
    Ok((events, booking.map(|b| b.bus.clone())))
}

/// `services`, or every service when it is empty.
pub fn selected(services: &[ServiceName]) -> Vec<ServiceName> {
    if services.is_empty() {
        ServiceName::ALL.to_vec()
    } else {
        let mut s = services.to_vec();
        s.sort();
        s.dedup();
        s
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then shuts down within
/// `server.shutdown_grace_seconds` of it:
///
/// 1. at once, `/health/ready` answers 503 ([`App::draining`]);
/// 2. for `server.shutdown_drain_seconds` the process goes on accepting and serving, every
///    response with `Connection: close`, so that each connection closes after its next answer
///    rather than while a client may be writing to it;
/// 3. then the listener is closed (new connections are refused), idle connections are closed
///    and requests in flight finish; live sockets are told to close (1001);
/// 4. last, background work stops (an outbox relay finishes the batch it is publishing, and
///    marks published only what JetStream acknowledged).
///
/// Whatever still runs when the grace period is over is dropped.
///
/// HTTP/1.1 with the limits of `[server]`: request heads larger than `max_header_bytes` get
/// 431 and a head that takes longer than `header_read_timeout_seconds` to arrive closes the
/// connection, so a client cannot hold a connection open by trickling its headers.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    config: &Config,
    app: App,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let drain = Duration::from_secs(config.server.shutdown_drain_seconds);
    // Background work (sale scheduler, outbox relay) stops after the HTTP server has
    // drained, so requests in flight still see it running.
    let background = TaskTracker::new();
    let stop_background = CancellationToken::new();
    // Live sockets outlive their upgrade request: they are told to close (1001) when the
    // server stops accepting, and waited for like connections.
    let live = app
        .analytics
        .as_ref()
        .map(|a| (a.hub.shutdown.clone(), a.hub.sockets.clone()));
    app.start(&background, &stop_background);
    background.close();

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(
            config.server.header_read_timeout_seconds,
        ))
        .max_header_size(config.server.max_header_bytes);
    let mut make_service = app
        .router
        .into_make_service_with_connect_info::<SocketAddr>();
    let draining = app.draining;
    // Cancelled at the end of the drain window: connections finish what they are doing.
    let closing = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let drain_over = async {
            match deadline {
                // The grace period's deadline is `grace` after the signal.
                Some(deadline) => tokio::time::sleep_until(deadline - grace + drain).await,
                None => std::future::pending::<()>().await,
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait for connections to finish
                    // rather than spin.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled(), if deadline.is_none() => {
                deadline = Some(tokio::time::Instant::now() + grace);
                draining.cancel();
                tracing::info!(drain_seconds = drain.as_secs(), "shutting down: not ready; draining");
                continue;
            }
            () = drain_over => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(service) = make_service.call(remote).await;
        let close_after = draining.clone();
        let service = hyper_util::service::TowerToHyperService::new(
            service
                .map_request(|request: Request<hyper::body::Incoming>| request.map(Body::new))
                .map_response(move |mut response: axum::response::Response| {
                    if close_after.is_cancelled() {
                        response.headers_mut().insert(
                            axum::http::header::CONNECTION,
                            axum::http::HeaderValue::from_static("close"),
                        );
                    }
                    response
                }),
        );
        let connection = http
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .with_upgrades();
        let stop = closing.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    closing.cancel();
    let deadline = deadline.unwrap_or_else(|| tokio::time::Instant::now() + grace);
    if let Some((stop, sockets)) = &live {
        stop.cancel();
        sockets.close();
    }
    connections.close();
    if tokio::time::timeout_at(deadline, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
    if let Some((_, sockets)) = &live
        && tokio::time::timeout_at(deadline, sockets.wait())
            .await
            .is_err()
    {
        tracing::warn!("live sockets did not close within the grace period");
    }
    stop_background.cancel();
    if tokio::time::timeout_at(deadline, background.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop within the grace period");
    }
    tracing::info!("shut down");
    Ok(())
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Runs `evently serve`: builds, binds `server.listen`, prints the address, and serves until
/// `shutdown`.
///
/// # Errors
/// When building or binding fails.
pub async fn run(
    config: Config,
    services: &[ServiceName],
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = build(&config, services, Arc::new(SystemClock)).await?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let names: Vec<_> = selected(services).iter().map(|s| s.as_str()).collect();
    println!(
        "evently listening on http://{addr} (services: {})",
        names.join(", ")
    );
    println!("API docs: http://{addr}/docs  (OpenAPI: http://{addr}/openapi.json)");
    tracing::info!(%addr, services = %names.join(","), "evently started");
    serve(&config, app, listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use evently_core::service::ServiceName;
    use std::collections::BTreeMap;

    /// Merging keeps one schema per component name: two services naming different schemas
    /// alike would silently publish one of them for both services' routes.
    #[test]
    fn no_two_services_publish_different_schemas_under_one_name() {
        let mut seen: BTreeMap<String, (ServiceName, serde_json::Value)> = BTreeMap::new();
        for service in ServiceName::ALL {
            let doc = super::service_openapi(*service);
            let Some(components) = doc.components else {
                continue;
            };
            for (name, schema) in components.schemas {
                let schema = serde_json::to_value(schema).unwrap_or_default();
                match seen.get(&name) {
                    Some((first, earlier)) => assert_eq!(
                        earlier, &schema,
                        "{name} differs between {first} and {service}"
                    ),
                    None => {
                        seen.insert(name, (*service, schema));
                    }
                }
            }
        }
    }
}
