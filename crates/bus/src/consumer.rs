//! Consuming a bus: the loop every projection runs, and in-memory deduplication.
//!
//! Delivery is at-least-once, so a handler may see an event again (after a crash before the
//! ack, or a redelivery). A durable projection records the ids it applied in the same
//! transaction as the effect; an in-memory one can use [`SeenIds`].

use async_trait::async_trait;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::{Bus, Envelope};

/// What a consumer does with each event.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Applies `envelope`. Must be idempotent per envelope id. An error stops the batch; the
    /// event and everything after it are delivered again later.
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()>;

    /// Applies a batch in order and returns how many of it, from the first, were applied, with
    /// the error that stopped it. The default hands each event to [`Handler::handle`]; a
    /// handler whose effect depends only on the newest of several events may coalesce them.
    async fn handle_batch(&self, envelopes: &[&Envelope]) -> (usize, Option<anyhow::Error>) {
        for (i, envelope) in envelopes.iter().enumerate() {
            if let Err(e) = self.handle(envelope).await {
                return (
                    i,
                    Some(e.context(format!("handling event {}", envelope.id))),
                );
            }
        }
        (envelopes.len(), None)
    }
}

/// The most recent event ids a consumer applied, bounded so memory stays flat.
#[derive(Debug)]
pub struct SeenIds {
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    capacity: usize,
}

impl SeenIds {
    /// Remembers up to `capacity` ids (redeliveries come from the recent past only).
    pub fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; false if it was already recorded (a duplicate to skip).
    pub fn first_time(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// The span of consumer `name` applying `envelopes`: a child of the span that caused the first
/// of them (its `traceparent`), linked to the spans behind the others, so that a domain
/// event's consumers in other processes appear in the trace of the request that caused it.
/// No span when none of them was traced.
pub fn consume_span(consumer: &str, envelopes: &[&Envelope]) -> tracing::Span {
    let mut origins = envelopes.iter().filter_map(|e| e.traceparent.as_deref());
    let Some(first) = origins.next() else {
        return tracing::Span::none();
    };
    let span = tracing::debug_span!(
        target: evently_core::telemetry::CONTINUED,
        "bus.consume",
        consumer = %consumer,
        events = envelopes.len(),
        trace_id = tracing::field::Empty,
    );
    evently_core::telemetry::set_parent_from_traceparent(&span, first);
    for other in origins {
        evently_core::telemetry::add_link_to_traceparent(&span, other);
    }
    span
}

/// Runs consumer `name` until `shutdown`: handles events in order, acknowledges each batch
/// after its last handled event, and re-subscribes (from the last ack) after any failure.
pub async fn run_consumer(
    bus: Arc<dyn Bus>,
    name: String,
    handler: Arc<dyn Handler>,
    batch: usize,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    'subscribe: while !shutdown.is_cancelled() {
        let mut subscription = match bus.subscribe(&name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(consumer = %name, error = %e, "subscribing failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let deliveries = tokio::select! {
                () = shutdown.cancelled() => return,
                r = subscription.next_batch(batch, Duration::from_secs(1)) => r,
            };
            let deliveries = match deliveries {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(consumer = %name, error = %e, "receiving failed; re-subscribing");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue 'subscribe;
                }
            };
            let envelopes: Vec<&Envelope> = deliveries.iter().map(|d| &d.envelope).collect();
            let (applied, error) = handler
                .handle_batch(&envelopes)
                .instrument(consume_span(&name, &envelopes))
                .await;
            let mut failed = false;
            if let Some(e) = error {
                tracing::warn!(consumer = %name, error = format!("{e:#}"), "handler failed; will retry");
                failed = true;
            }
            if let Some(last) = applied.checked_sub(1).and_then(|i| deliveries.get(i))
                && let Err(e) = subscription.ack(last).await
            {
                tracing::warn!(consumer = %name, error = %e, "ack failed; re-subscribing");
                failed = true;
            }
            if failed {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue 'subscribe;
            }
            backoff = Duration::from_millis(100);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_are_bounded_and_detect_duplicates() {
        let mut seen = SeenIds::new(2);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert!(seen.first_time(a));
        assert!(!seen.first_time(a));
        assert!(seen.first_time(b));
        assert!(seen.first_time(c));
        assert!(seen.first_time(a), "a was evicted");
    }
}
