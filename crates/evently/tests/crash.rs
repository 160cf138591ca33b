//! The crash harness in CI (TESTPLAN F-15, F-11): a purchase workload against the real
//! `evently` binary, SIGKILLed at random moments and restarted on the same data, with clients
//! retrying under the same `Idempotency-Key`; then the audit of
//! [`evently_testkit::crash`](../../testkit/src/crash.rs). `evently-bench crash` runs the
//! same harness with hundreds of kills.

#[path = "../../testkit/src/crash.rs"]
#[expect(dead_code, reason = "the tests read only the report's verdict figures")]
mod crash;

use crash::{Engine, Options, Report};

fn options(engine: Engine, seed: u64) -> Options {
    Options {
        evently: env!("CARGO_BIN_EXE_evently").into(),
        engine,
        kills: 10,
        buyers: 6,
        seats: 6000,
        max_uptime_ms: 1200,
        seed,
    }
}

fn assert_clean(report: &Report) {
    assert!(report.violations.is_empty(), "{report:#?}");
    assert_eq!(report.kills, 10, "{report:#?}");
    assert!(report.acknowledged > 0, "{report:#?}");
    assert_eq!(i64::try_from(report.acknowledged).ok(), Some(report.sold));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_repeated_sigkill_on_sqlite() {
    let report = crash::run(options(Engine::Sqlite, 21)).await.unwrap();

    eprintln!("{report:?}");
    assert_clean(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_repeated_sigkill_on_postgres() {
    let Ok(url) = std::env::var("EVENTLY_TEST_POSTGRES_URL") else {
        eprintln!(
            "skipped: acknowledged_orders_survive_repeated_sigkill_on_postgres: \
             EVENTLY_TEST_POSTGRES_URL not set"
        );
        return;
    };

    let report = crash::run(options(Engine::Postgres(url), 22))
        .await
        .unwrap();

    eprintln!("{report:?}");
    assert_clean(&report);
}
