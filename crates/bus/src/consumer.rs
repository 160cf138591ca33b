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
use uuid::Uuid;

use crate::{Bus, Envelope};

/// What a consumer does with each event.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Applies `envelope`. Must be idempotent per envelope id. An error stops the batch; the
    /// event and everything after it are delivered again later.
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()>;
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
            let mut last_ok = None;
            let mut failed = false;
            for delivery in &deliveries {
                match handler.handle(&delivery.envelope).await {
                    Ok(()) => last_ok = Some(delivery),
                    Err(e) => {
                        tracing::warn!(consumer = %name, event.id = %delivery.envelope.id, error = %e, "handler failed; will retry");
                        failed = true;
                        break;
                    }
                }
            }
            if let Some(last) = last_ok
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
