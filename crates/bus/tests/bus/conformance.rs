use async_trait::async_trait;
use evently_bus::conformance::{self as suite, Harness};
use evently_bus::in_process::InProcessBus;
use evently_bus::nats::{NatsBus, NatsTarget, Relay};
use evently_bus::outbox::SqlOutbox;
use evently_bus::{Bus, Outbox};
use evently_core::config::DatabaseConfig;
use evently_core::sql::Db;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;

use crate::{TempDir, env};

struct InProcess {
    bus: Arc<InProcessBus>,
    outbox: Arc<dyn Outbox>,
    _dir: Option<TempDir>,
}

pub async fn sqlite_outbox(dir: &TempDir) -> Arc<dyn Outbox> {
    let url = SecretString::from(format!("sqlite://{}", dir.path().join("bus.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    evently_bus::outbox::create_sqlite_tables(&db)
        .await
        .unwrap();
    Arc::new(SqlOutbox::new(Db::sqlite(&db.path, 2).unwrap()))
}

#[async_trait]
impl Harness for InProcess {
    fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }
    fn outbox(&self) -> Arc<dyn Outbox> {
        self.outbox.clone()
    }
    fn has_relay(&self) -> bool {
        false
    }
    async fn relay(&self) {}
    fn redelivery_after(&self) -> Duration {
        Duration::ZERO
    }
}

async fn in_process_sqlite() -> Option<Arc<dyn Harness>> {
    let dir = TempDir::new();
    let outbox = sqlite_outbox(&dir).await;
    Some(Arc::new(InProcess {
        bus: Arc::new(InProcessBus::new(outbox.clone(), Duration::from_millis(10))),
        outbox,
        _dir: Some(dir),
    }))
}

/// The outbox on in-process SQLite connections, as the booking store uses it.
async fn in_process_sqlite_connections() -> Option<Arc<dyn Harness>> {
    let dir = TempDir::new();
    let path = dir.path().join("bus.db");
    let url = SecretString::from(format!("sqlite://{}", path.display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    evently_bus::outbox::create_sqlite_tables(&db)
        .await
        .unwrap();
    let outbox: Arc<dyn Outbox> = Arc::new(SqlOutbox::new(Db::sqlite_pools(
        evently_core::sqlite::Pool::open(&path, 2, false).unwrap(),
        evently_core::sqlite::Pool::open(&path, 1, true).unwrap(),
    )));
    Some(Arc::new(InProcess {
        bus: Arc::new(InProcessBus::new(outbox.clone(), Duration::from_millis(10))),
        outbox,
        _dir: Some(dir),
    }))
}

async fn in_process_postgres() -> Option<Arc<dyn Harness>> {
    let url = env("EVENTLY_TEST_POSTGRES_URL")?;
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    evently_bus::outbox::create_postgres_tables(&pool)
        .await
        .unwrap();
    let outbox: Arc<dyn Outbox> = Arc::new(SqlOutbox::new(Db::postgres(pool)));
    Some(Arc::new(InProcess {
        bus: Arc::new(InProcessBus::new(outbox.clone(), Duration::from_millis(10))),
        outbox,
        _dir: None,
    }))
}

struct Nats {
    bus: NatsBus,
    relay: Relay,
    outbox: Arc<dyn Outbox>,
    _dir: TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        // Streams are per test; remove this one without blocking the runtime.
        let bus = self.bus.clone();
        tokio::spawn(async move {
            let _ = bus.delete_stream().await;
        });
    }
}

#[async_trait]
impl Harness for Nats {
    fn bus(&self) -> Arc<dyn Bus> {
        Arc::new(self.bus.clone())
    }
    fn outbox(&self) -> Arc<dyn Outbox> {
        self.outbox.clone()
    }
    fn has_relay(&self) -> bool {
        true
    }
    async fn relay(&self) {
        while self.relay.publish_pending().await.unwrap() > 0 {}
    }
    fn redelivery_after(&self) -> Duration {
        Duration::from_secs(1)
    }
}

pub async fn nats_bus(url: &str) -> NatsBus {
    let id = uuid::Uuid::new_v4().simple().to_string();
    NatsBus::connect(
        url,
        NatsTarget {
            stream: format!("T_{id}"),
            subject_prefix: format!("t{id}"),
            ack_wait: Duration::from_secs(1),
        },
    )
    .await
    .unwrap()
}

async fn nats() -> Option<Arc<dyn Harness>> {
    let url = env("EVENTLY_TEST_NATS_URL")?;
    let dir = TempDir::new();
    let outbox = sqlite_outbox(&dir).await;
    let bus = nats_bus(&url).await;
    let relay = Relay::new(outbox.clone(), bus.clone(), 64, Duration::from_millis(10));
    Some(Arc::new(Nats {
        bus,
        relay,
        outbox,
        _dir: dir,
    }))
}

macro_rules! bus_suite {
    ($($test:ident),+ $(,)?) => {
        mod in_process_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let h = super::in_process_sqlite().await.unwrap();
                    super::suite::$test(h).await;
                }
            )+
        }
        mod in_process_sqlite_connections {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let h = super::in_process_sqlite_connections().await.unwrap();
                    super::suite::$test(h).await;
                }
            )+
        }
        mod in_process_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(h) = super::in_process_postgres().await else {
                        eprintln!(concat!("skipped: in_process_postgres::", stringify!($test), ": EVENTLY_TEST_POSTGRES_URL not set"));
                        return;
                    };
                    super::suite::$test(h).await;
                }
            )+
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(h) = super::nats().await else {
                        eprintln!(concat!("skipped: nats::", stringify!($test), ": EVENTLY_TEST_NATS_URL not set"));
                        return;
                    };
                    super::suite::$test(h).await;
                }
            )+
        }
    };
}

bus_suite!(
    delivers_everything_in_outbox_order,
    acknowledged_events_are_not_delivered_again,
    consumers_keep_independent_positions,
    reset_replays_from_the_beginning,
    redelivery_after_a_crash_is_applied_once,
    a_resumed_consumer_starts_at_its_first_unacknowledged_event,
    a_delivery_taken_elsewhere_is_not_skipped,
    events_wait_for_the_relay_and_keep_per_aggregate_order,
);
