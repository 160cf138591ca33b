//! `evently-bench`: benchmarks that print figures (targets are checked here, never in tests).
//!
//! Run them on a release build, e.g. `cargo run --release --bin evently-bench -- auth`.
//! Each subcommand lives in its own module.

mod auth;
mod crash;
// The crash harness is the test kit's (`evently_testkit::crash`), compiled into the bench as
// well: the bench cannot depend on the test kit, which depends on this crate.
#[path = "../../../../testkit/src/crash.rs"]
mod crash_harness;
mod data;
mod events;
mod gateway;
mod onsale;
mod recs;
mod search;
mod server;
mod web;

/// Benchmarks that print figures; run them on a release build.
#[derive(Debug, clap::Parser)]
#[command(name = "evently-bench", version)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Debug, clap::Subcommand)]
enum Bench {
    /// Argon2id's hash rate, and sign-ins per second over HTTP during a login storm.
    Auth {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        clients: usize,
    },
    /// Live WebSocket subscribers watching an on-sale (embedded SQLite), then the same sale
    /// without them.
    Analytics {
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 10_000)]
        seats: u32,
        #[arg(long, default_value_t = 40_000)]
        buyers: usize,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Buyers pay and buy in one checkout request.
        #[arg(long)]
        checkout: bool,
    },
    /// Purchases while the server is killed (SIGKILL) and restarted; nothing acknowledged
    /// may be lost.
    Crash(crash::Args),
    /// Exports of an event's orders as CSV and XLSX, and an import of a CSV.
    Data {
        #[arg(long, default_value_t = 1_000_000)]
        orders: u64,
        #[arg(long, default_value_t = 10_000)]
        rows: u64,
    },
    /// Event listing over HTTP, and domain events through the outbox and bus.
    Events {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        events: u32,
        #[arg(long, default_value_t = 20_000)]
        outbox_events: u64,
    },
    /// An authenticated request with `wrk`: directly, through the gateway, through nginx,
    /// and in one process.
    Gateway {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 32)]
        connections: u32,
    },
    /// An on-sale rush: buyers race for an event's seats.
    Onsale(onsale::Options),
    /// How good and how fast recommendations are, on a generated world.
    Recs {
        #[arg(long, default_value_t = 2000)]
        users: usize,
        #[arg(long, default_value_t = 1500)]
        events: usize,
        #[arg(long)]
        orders: Option<usize>,
        /// The share of users who name favourites.
        #[arg(long, default_value_t = 0.0)]
        favourites: f64,
        /// Users whose recommendations are evaluated (default: all).
        #[arg(long)]
        eval_users: Option<usize>,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        seed: u64,
    },
    /// Search against PostgreSQL full-text search and SQLite FTS5 on the same events.
    Search {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Also measure PostgreSQL's full-text search there.
        #[arg(long, value_name = "postgres://…")]
        database_url: Option<String>,
    },
    /// The server time of the web client's event list over many events.
    Web {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    match cli.bench {
        Bench::Auth { seconds, clients } => auth::run(seconds, clients).await,
        Bench::Crash(args) => crash::run(args).await,
        Bench::Analytics {
            subscribers,
            seats,
            buyers,
            concurrency,
            checkout,
        } => {
            onsale::live::run(
                onsale::Options {
                    runs: 1,
                    seats,
                    buyers,
                    concurrency,
                    max_quantity: 1,
                    database_url: None,
                    split: false,
                    nats_url: String::new(),
                    redis_url: String::new(),
                    checkout,
                },
                subscribers,
            )
            .await
        }
        Bench::Data { orders, rows } => data::run(orders, rows).await,
        Bench::Events {
            seconds,
            clients,
            events,
            outbox_events,
        } => events::run(seconds, clients, events, outbox_events).await,
        Bench::Gateway {
            seconds,
            runs,
            connections,
        } => gateway::run(seconds, runs, connections).await,
        Bench::Onsale(options) => onsale::run(options).await,
        Bench::Recs {
            users,
            events,
            orders,
            favourites,
            eval_users,
            clients,
            seed,
        } => {
            recs::run(recs::Options {
                users,
                events,
                orders,
                favourites,
                eval_users: eval_users.unwrap_or(usize::MAX),
                clients,
                seed,
            })
            .await
        }
        Bench::Search {
            events,
            clients,
            seconds,
            database_url,
        } => search::run(events, clients, seconds, database_url).await,
        Bench::Web { events, requests } => web::run(events, requests).await,
    }
}
