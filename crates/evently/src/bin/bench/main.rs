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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let text = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    match args.first().map(String::as_str) {
        Some("auth") => {
            auth::run(arg("--seconds", 10), usize::try_from(arg("--clients", 32))?).await
        }
        Some("crash") => {
            crash::run(crash::Args {
                kills: usize::try_from(arg("--kills", 100))?,
                buyers: usize::try_from(arg("--buyers", 8))?,
                seats: u32::try_from(arg("--seats", 20_000))?,
                max_uptime_ms: arg("--max-uptime-ms", 1500),
                seed: arg("--seed", 21),
                database_url: text("--database-url"),
            })
            .await
        }
        Some("analytics") => {
            onsale::live::run(
                onsale::Options {
                    runs: 1,
                    seats: u32::try_from(arg("--seats", 10_000))?,
                    buyers: usize::try_from(arg("--buyers", 40_000))?,
                    concurrency: usize::try_from(arg("--concurrency", 256))?,
                    max_quantity: 1,
                    database_url: None,
                    split: false,
                    nats_url: String::new(),
                    redis_url: String::new(),
                    checkout: flag("--checkout"),
                },
                usize::try_from(arg("--subscribers", 10_000))?,
            )
            .await
        }
        Some("data") => data::run(arg("--orders", 1_000_000), arg("--rows", 10_000)).await,
        Some("events") => {
            events::run(
                arg("--seconds", 10),
                usize::try_from(arg("--clients", 32))?,
                u32::try_from(arg("--events", 1000))?,
                arg("--outbox-events", 20_000),
            )
            .await
        }
        Some("gateway") => {
            gateway::run(
                arg("--seconds", 5),
                usize::try_from(arg("--runs", 3))?,
                u32::try_from(arg("--connections", 32))?,
            )
            .await
        }
        Some("onsale") => {
            onsale::run(onsale::Options {
                runs: usize::try_from(arg("--runs", 1))?,
                seats: u32::try_from(arg("--seats", 50_000))?,
                buyers: usize::try_from(arg("--buyers", 200_000))?,
                concurrency: usize::try_from(arg("--concurrency", 256))?,
                max_quantity: u32::try_from(arg("--max-quantity", 1))?,
                database_url: text("--database-url"),
                split: flag("--split"),
                nats_url: text("--nats-url").unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
                redis_url: text("--redis-url").unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
                checkout: flag("--checkout"),
            })
            .await
        }
        Some("recs") => {
            recs::run(recs::Options {
                users: usize::try_from(arg("--users", 2000))?,
                events: usize::try_from(arg("--events", 1500))?,
                orders: text("--orders").map(|o| o.parse()).transpose()?,
                favourites: text("--favourites").map_or(Ok(0.0), |p| p.parse())?,
                eval_users: usize::try_from(arg("--eval-users", u64::MAX)).unwrap_or(usize::MAX),
                clients: usize::try_from(arg("--clients", 16))?,
                seed: arg("--seed", 20),
            })
            .await
        }
        Some("search") => {
            search::run(
                usize::try_from(arg("--events", 100_000))?,
                usize::try_from(arg("--clients", 32))?,
                arg("--seconds", 10),
                text("--database-url"),
            )
            .await
        }
        Some("web") => {
            web::run(
                usize::try_from(arg("--events", 10_000))?,
                usize::try_from(arg("--requests", 200))?,
            )
            .await
        }
        _ => {
            eprintln!(
                "usage: evently-bench auth [--seconds N] [--clients N]\n\
                 \x20      evently-bench analytics [--subscribers N] [--seats N] [--buyers N] [--concurrency N] [--checkout]\n\
                 \x20      evently-bench crash [--kills N] [--buyers N] [--seats N] [--max-uptime-ms N]\n\
                 \x20                          [--seed N] [--database-url postgres://…]\n\
                 \x20      evently-bench data [--orders N] [--rows N]\n\
                 \x20      evently-bench events [--seconds N] [--clients N] [--events N] [--outbox-events N]\n\
                 \x20      evently-bench gateway [--seconds N] [--runs N] [--connections N]\n\
                 \x20      evently-bench onsale [--runs N] [--seats N] [--buyers N] [--concurrency N]\n\
                 \x20                           [--max-quantity N] [--database-url postgres://…] [--checkout]\n\
                 \x20                           [--split [--nats-url URL] [--redis-url URL]]\n\
                 \x20      evently-bench recs [--users N] [--events N] [--orders N] [--favourites P] [--eval-users N] [--clients N] [--seed N]\n\
                 \x20      evently-bench search [--events N] [--clients N] [--seconds N] [--database-url postgres://…]\n\
                 \x20      evently-bench web [--events N] [--requests N]\n\
                 run on a release build: cargo run --release --bin evently-bench -- auth"
            );
            std::process::exit(2);
        }
    }
}
