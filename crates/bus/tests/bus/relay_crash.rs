//! A relay that dies between publishing a batch and marking it published (TESTPLAN F-05,
//! F-06): the rows stay unpublished, the next relay publishes them again, and JetStream
//! drops the copies by their `Nats-Msg-Id` (the envelope id), so a consumer gets each event
//! once.

use async_trait::async_trait;
use evently_bus::nats::Relay;
use evently_bus::outbox::OutboxRow;
use evently_bus::{Bus, BusError, DomainEvent, Envelope, Outbox};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::conformance::{nats_bus, sqlite_outbox};
use crate::{TempDir, env};

/// An outbox whose `mark_published` never lands: the process dies after JetStream
/// acknowledged the batch and before the mark commits.
struct DiesBeforeMark(Arc<dyn Outbox>);

#[async_trait]
impl Outbox for DiesBeforeMark {
    async fn append(&self, envelope: &Envelope) -> Result<i64, BusError> {
        self.0.append(envelope).await
    }
    async fn read_after(&self, after: i64, limit: u32) -> Result<Vec<OutboxRow>, BusError> {
        self.0.read_after(after, limit).await
    }
    async fn unpublished(&self, limit: u32) -> Result<Vec<OutboxRow>, BusError> {
        self.0.unpublished(limit).await
    }
    async fn mark_published(&self, _: i64, _: i64) -> Result<(), BusError> {
        Err(BusError::Corrupt("killed before the mark committed".into()))
    }
    async fn unpublished_count(&self) -> Result<u64, BusError> {
        self.0.unpublished_count().await
    }
    async fn position(&self, consumer: &str) -> Result<i64, BusError> {
        self.0.position(consumer).await
    }
    async fn set_position(&self, consumer: &str, seq: i64, now: i64) -> Result<(), BusError> {
        self.0.set_position(consumer, seq, now).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_before_marking_republishes_and_jetstream_keeps_one_copy() {
    let Some(url) = env("EVENTLY_TEST_NATS_URL") else {
        eprintln!("skipped: a_relay_killed_before_marking: EVENTLY_TEST_NATS_URL not set");
        return;
    };
    let dir = TempDir::new();
    let outbox = sqlite_outbox(&dir).await;
    let bus = nats_bus(&url).await;
    let mut ids = BTreeSet::new();
    for version in 1..=20 {
        let e = DomainEvent::EventDeleted {
            event_id: uuid::Uuid::now_v7(),
        }
        .into_envelope(version, time::OffsetDateTime::now_utc());
        ids.insert(e.id);
        outbox.append(&e).await.unwrap();
    }
    let dying = Relay::new(
        Arc::new(DiesBeforeMark(outbox.clone())),
        bus.clone(),
        64,
        Duration::from_millis(10),
    );

    let first = dying.publish_pending().await;
    let left = outbox.unpublished_count().await.unwrap();
    let restarted = Relay::new(outbox.clone(), bus.clone(), 64, Duration::from_millis(10));
    let second = restarted.publish_pending().await.unwrap();

    assert!(first.is_err(), "the mark did not land");
    assert_eq!(
        left, 20,
        "nothing was marked: everything is published again"
    );
    assert_eq!(second, 20);
    assert_eq!(outbox.unpublished_count().await.unwrap(), 0);
    let mut sub = bus.subscribe("after-relay-crash").await.unwrap();
    let mut got = Vec::new();
    // Read until the stream stays quiet: a copy, if JetStream kept one, would show here.
    loop {
        let batch = sub
            .next_batch(64, Duration::from_millis(500))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        sub.ack(batch.last().unwrap()).await.unwrap();
        got.extend(batch.into_iter().map(|d| d.envelope.id));
    }
    assert_eq!(got.len(), 20, "each event once: {got:?}");
    assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), ids);
    bus.delete_stream().await.unwrap();
}
