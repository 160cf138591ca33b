//! The behaviour every [`Bus`] must show. Each function is one test, run by the bus crate's
//! test binary against the in-process bus (on SQLite and, when `EVENTLY_TEST_POSTGRES_URL` is
//! set, PostgreSQL) and against NATS JetStream (when `EVENTLY_TEST_NATS_URL` is set).

#![expect(clippy::unwrap_used, reason = "conformance checks fail loudly")]

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::consumer::SeenIds;
use crate::{Bus, Delivery, DomainEvent, Envelope, Outbox, Subscription};

/// A bus under test with its outbox.
#[async_trait]
pub trait Harness: Send + Sync {
    /// The bus.
    fn bus(&self) -> Arc<dyn Bus>;
    /// The outbox it delivers.
    fn outbox(&self) -> Arc<dyn Outbox>;
    /// Whether the bus needs a relay (events stay in the outbox until [`Harness::relay`]).
    fn has_relay(&self) -> bool;
    /// Runs the relay until the outbox is drained (nothing for the in-process bus).
    async fn relay(&self);
    /// How long an unacknowledged delivery waits before redelivery.
    fn redelivery_after(&self) -> Duration;
}

fn event(aggregate: Uuid, version: i64) -> Envelope {
    DomainEvent::EventStatusChanged {
        event_id: aggregate,
        from: format!("v{}", version - 1),
        to: format!("v{version}"),
    }
    .into_envelope(version, OffsetDateTime::now_utc())
}

/// Appends `per` versions of each of `aggregates` new aggregates, interleaved; returns them
/// in append order.
async fn append_interleaved(h: &dyn Harness, aggregates: usize, per: i64) -> Vec<Envelope> {
    let ids: Vec<Uuid> = (0..aggregates).map(|_| Uuid::now_v7()).collect();
    let mut out = Vec::new();
    for version in 1..=per {
        for id in &ids {
            let e = event(*id, version);
            h.outbox().append(&e).await.unwrap();
            out.push(e);
        }
    }
    out
}

/// Receives until `n` distinct events arrived (or the deadline passes), acknowledging
/// nothing; returns every delivery, duplicates included.
async fn receive(sub: &mut Box<dyn Subscription>, n: usize, within: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got: Vec<Delivery> = Vec::new();
    let mut seen = SeenIds::new(100_000);
    let mut distinct = 0;
    while distinct < n && tokio::time::Instant::now() < deadline {
        for d in sub
            .next_batch(n - distinct, Duration::from_millis(200))
            .await
            .unwrap()
        {
            if seen.first_time(d.envelope.id) {
                distinct += 1;
            }
            got.push(d);
        }
    }
    got
}

fn ids(deliveries: &[Delivery]) -> Vec<Uuid> {
    deliveries.iter().map(|d| d.envelope.id).collect()
}

fn within(h: &dyn Harness) -> Duration {
    Duration::from_secs(10) + h.redelivery_after() * 2
}

pub async fn delivers_everything_in_outbox_order(h: Arc<dyn Harness>) {
    let sent = append_interleaved(&*h, 3, 4).await;
    h.relay().await;

    let mut sub = h.bus().subscribe("ordered").await.unwrap();
    let got = receive(&mut sub, sent.len(), within(&*h)).await;

    assert_eq!(ids(&got), sent.iter().map(|e| e.id).collect::<Vec<_>>());
    assert_eq!(got[0].envelope, sent[0], "the envelope arrives intact");
    assert!(got.windows(2).all(|w| w[0].position < w[1].position));
}

pub async fn acknowledged_events_are_not_delivered_again(h: Arc<dyn Harness>) {
    let sent = append_interleaved(&*h, 1, 5).await;
    h.relay().await;
    let mut sub = h.bus().subscribe("acker").await.unwrap();
    let got = receive(&mut sub, 5, within(&*h)).await;
    assert_eq!(got.len(), 5);

    sub.ack(&got[2]).await.unwrap();
    drop(sub);
    let mut again = h.bus().subscribe("acker").await.unwrap();
    let rest = receive(&mut again, 2, within(&*h)).await;

    let mut seen = SeenIds::new(100);
    let distinct: Vec<Uuid> = ids(&rest)
        .into_iter()
        .filter(|id| seen.first_time(*id))
        .collect();
    assert_eq!(distinct, vec![sent[3].id, sent[4].id]);
}

pub async fn consumers_keep_independent_positions(h: Arc<dyn Harness>) {
    let sent = append_interleaved(&*h, 2, 2).await;
    h.relay().await;
    let mut a = h.bus().subscribe("first").await.unwrap();
    let got_a = receive(&mut a, 4, within(&*h)).await;
    a.ack(got_a.last().unwrap()).await.unwrap();

    let mut b = h.bus().subscribe("second").await.unwrap();
    let got_b = receive(&mut b, 4, within(&*h)).await;

    assert_eq!(ids(&got_b), sent.iter().map(|e| e.id).collect::<Vec<_>>());
}

pub async fn reset_replays_from_the_beginning(h: Arc<dyn Harness>) {
    let sent = append_interleaved(&*h, 2, 3).await;
    h.relay().await;
    let mut sub = h.bus().subscribe("rebuild").await.unwrap();
    let got = receive(&mut sub, sent.len(), within(&*h)).await;
    sub.ack(got.last().unwrap()).await.unwrap();
    drop(sub);

    h.bus().reset("rebuild").await.unwrap();
    let mut replay = h.bus().subscribe("rebuild").await.unwrap();
    let again = receive(&mut replay, sent.len(), within(&*h)).await;

    assert_eq!(ids(&again), sent.iter().map(|e| e.id).collect::<Vec<_>>());
}

pub async fn redelivery_after_a_crash_is_applied_once(h: Arc<dyn Harness>) {
    let sent = append_interleaved(&*h, 2, 3).await;
    h.relay().await;
    let mut sub = h.bus().subscribe("crashy").await.unwrap();
    let first = receive(&mut sub, sent.len(), within(&*h)).await;
    // The consumer applied the first half, then crashed before acknowledging anything.
    let mut applied = SeenIds::new(100);
    let mut effects = Vec::new();
    for d in &first[..3] {
        if applied.first_time(d.envelope.id) {
            effects.push(d.envelope.id);
        }
    }
    drop(sub);

    let mut again = h.bus().subscribe("crashy").await.unwrap();
    let second = receive(&mut again, sent.len(), within(&*h)).await;
    for d in &second {
        if applied.first_time(d.envelope.id) {
            effects.push(d.envelope.id);
        }
    }
    again.ack(second.last().unwrap()).await.unwrap();

    assert_eq!(effects, sent.iter().map(|e| e.id).collect::<Vec<_>>());
}

pub async fn a_resumed_consumer_starts_at_its_first_unacknowledged_event(h: Arc<dyn Harness>) {
    let mut sent = append_interleaved(&*h, 1, 4).await;
    h.relay().await;
    let mut sub = h.bus().subscribe("resumer").await.unwrap();
    let got = receive(&mut sub, 4, within(&*h)).await;
    sub.ack(&got[1]).await.unwrap();
    // The third and fourth were delivered and never acknowledged (lost with a connection, or
    // a process that stopped); newer events follow them.
    drop(sub);
    sent.extend(append_interleaved(&*h, 1, 2).await);
    h.relay().await;

    let mut again = h.bus().subscribe("resumer").await.unwrap();
    let resumed = receive(&mut again, 4, within(&*h)).await;

    assert_eq!(
        ids(&resumed)[..4],
        sent[2..].iter().map(|e| e.id).collect::<Vec<_>>()[..],
        "nothing after an unacknowledged event comes before it"
    );
}

pub async fn a_delivery_taken_elsewhere_is_not_skipped(h: Arc<dyn Harness>) {
    let sent = append_interleaved(&*h, 2, 3).await;
    h.relay().await;
    let mut sub = h.bus().subscribe("shared").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(
            sub.next_batch(2 - got.len(), Duration::from_millis(300))
                .await
                .unwrap(),
        );
    }
    // A second subscriber of the same consumer takes what comes next, if the bus hands it
    // over (on NATS it does: a pull consumer serves whoever asks).
    let mut other = h.bus().subscribe("shared").await.unwrap();
    other
        .next_batch(2, Duration::from_millis(300))
        .await
        .unwrap();

    got.extend(receive(&mut sub, sent.len() - 2, within(&*h)).await);

    assert_eq!(
        ids(&got)[..sent.len()],
        sent.iter().map(|e| e.id).collect::<Vec<_>>()[..],
        "the first subscription sees every event, in order"
    );
    sub.ack(&got[sent.len() - 1]).await.unwrap();
}

pub async fn events_wait_for_the_relay_and_keep_per_aggregate_order(h: Arc<dyn Harness>) {
    let mut sub = h.bus().subscribe("patient").await.unwrap();
    let sent = append_interleaved(&*h, 4, 5).await;
    if h.has_relay() {
        let early = sub
            .next_batch(100, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(
            early.is_empty(),
            "nothing is delivered before the relay runs"
        );
        assert_eq!(h.outbox().unpublished_count().await.unwrap(), 20);
    }

    h.relay().await;
    let got = receive(&mut sub, sent.len(), within(&*h)).await;

    assert_eq!(got.len(), sent.len());
    for aggregate in sent.iter().map(|e| e.aggregate_id) {
        let versions: Vec<i64> = got
            .iter()
            .filter(|d| d.envelope.aggregate_id == aggregate)
            .map(|d| d.envelope.aggregate_version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    }
    if h.has_relay() {
        assert_eq!(h.outbox().unpublished_count().await.unwrap(), 0);
    }
}
