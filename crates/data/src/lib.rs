//! evently-data: importing events from CSV and XLSX files, and exporting events as CSV,
//! newline-delimited JSON or XLSX.
//!
//! What it promises:
//! - it owns only its import jobs (each with its uploaded file while it runs, its report
//!   for 24 hours after) and the record of which rows a job wrote; it reads and writes events
//!   through the events service's operations ([`client::EventsClient`]) and booking's orders
//!   through its ([`client::BookingClient`]), never their tables: called directly when they run
//!   in the same process, over internal HTTP with the service credential when they do not;
//! - an import reads XLSX (recognised by content; zip bombs refused before unpacking) or CSV
//!   (UTF-8 with or without BOM, else Windows-1252; `,`, `;` or tab), maps headers by
//!   case-insensitive aliases, refuses unknown columns, and judges every row with the
//!   parser and rules of `POST /api/events`; `atomic` writes nothing unless every row is
//!   valid, `partial` writes the valid rows; the report numbers rows as a spreadsheet does;
//! - each row writes the event whose id is derived from the job and row (or from the
//!   organizer and the row's `externalId`), so a stopped job resumes without duplicates and
//!   a re-import with external ids updates rather than duplicates;
//! - exports stream at constant memory and are safe to open in a spreadsheet (formula-like
//!   text is never evaluated).
//!
//! Layout:
//! - [`import`]: reading files, mapping columns, the report;
//! - [`export`]: streamed CSV, NDJSON and XLSX writers;
//! - [`store`]: `DataStore` and its SQL body for SQLite and PostgreSQL (conformance suite
//!   in `tests/api/conformance.rs`);
//! - [`client`]: the seam to the events and booking services, with their in-process
//!   implementations; [`remote`]: the same over internal HTTP, for services in other processes;
//! - [`service`]: the operations; [`http`]: routes and handlers; [`error`]: `DataError`.

pub mod client;
pub mod error;
pub mod export;
pub mod http;
pub mod import;
pub mod remote;
pub mod service;
pub mod store;

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

pub use client::{BookingClient, EventsClient, LocalBooking, LocalEvents, LocalUsers, UsersClient};
pub use http::{DataState, router};
pub use remote::{HttpBooking, HttpEvents, HttpUsers};
pub use service::DataService;
pub use store::DataStore;

/// The OpenAPI description of the data service.
#[derive(OpenApi)]
#[openapi(
    paths(
        http::import_events, http::import_job, http::import_errors_csv, http::export_events,
        http::export_orders, http::start_export, http::export_job, http::export_file,
    ),
    components(schemas(evently_core::problem::ProblemBody, evently_core::problem::FieldError)),
    tags((name = "data", description = "Import events from CSV or XLSX; export events as CSV, NDJSON or XLSX"))
)]
pub struct DataApi;

/// Opens the data store at `url` (SQLite or PostgreSQL, by scheme) and migrates it.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(url: &SecretString, config: &Config) -> anyhow::Result<Arc<dyn DataStore>> {
    Ok(match Engine::of(url.expose_secret())? {
        Engine::Sqlite => {
            let db = evently_core::db::connect_sqlite(url).await?;
            Arc::new(store::SqlDataStore::sqlite(db).await?)
        }
        Engine::Postgres => {
            let pool = evently_core::db::connect_postgres(url, "data", &config.database).await?;
            Arc::new(store::SqlDataStore::postgres(pool).await?)
        }
    })
}

/// A running data service's parts.
#[derive(Clone)]
pub struct Data {
    /// The operations.
    pub service: Arc<DataService>,
    /// The HTTP state.
    pub state: DataState,
}

impl Data {
    /// Builds the data service from `config`, reaching events through `events` and, when
    /// given, booking through `booking` and auth through `users`.
    ///
    /// # Errors
    /// When the store cannot be opened.
    pub async fn build(
        config: &Config,
        keys: Arc<JwtKeys>,
        events: Arc<dyn EventsClient>,
        booking: Option<Arc<dyn BookingClient>>,
        users: Option<Arc<dyn UsersClient>>,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let url = config
            .database
            .url_for(ServiceName::Data, &config.server.data_dir);
        let store = open_store(&url, config).await?;
        let mut service = DataService::new(store, events, clock, config.data.clone())
            .with_files(config.server.data_dir.join("exports"));
        if let Some(booking) = booking {
            service = service.with_booking(booking);
        }
        if let Some(users) = users {
            service = service.with_users(users);
        }
        let service = Arc::new(service);
        let state = DataState {
            service: service.clone(),
            keys,
        };
        Ok(Self { service, state })
    }

    /// The data router.
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// Starts the background work on `tracker` until `shutdown`: resuming stopped imports,
    /// then purging expired jobs.
    pub fn start(&self, tracker: &TaskTracker, shutdown: &CancellationToken) {
        tracker.spawn(
            self.service
                .clone()
                .run_background(shutdown.clone())
                .instrument(tracing::info_span!("data_background")),
        );
    }
}
