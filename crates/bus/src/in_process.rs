//! The in-process bus (the embedded default): consumers read the outbox table directly.
//!
//! Each consumer's position is a row in `bus_positions`, next to the outbox, so it survives
//! restarts. A subscription reads ahead of that position in memory; acknowledging writes it.
//! Waiting for new rows is a short poll (`bus.poll_interval_ms`): the outbox is the only
//! channel, so events committed by any process sharing the database are seen.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

use crate::outbox::Outbox;
use crate::{Bus, BusError, Delivery, Subscription, now_ms};

/// Consumers over one outbox, in this process.
#[derive(Clone)]
pub struct InProcessBus {
    outbox: Arc<dyn Outbox>,
    poll: Duration,
}

impl InProcessBus {
    /// A bus over `outbox`, looking for new rows every `poll` while a consumer waits.
    pub fn new(outbox: Arc<dyn Outbox>, poll: Duration) -> Self {
        Self { outbox, poll }
    }
}

struct InProcessSubscription {
    outbox: Arc<dyn Outbox>,
    consumer: String,
    cursor: i64,
    poll: Duration,
}

#[async_trait]
impl Subscription for InProcessSubscription {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let limit = u32::try_from(max.clamp(1, 10_000)).unwrap_or(10_000);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let rows = self.outbox.read_after(self.cursor, limit).await?;
            if let Some(last) = rows.last() {
                self.cursor = last.seq;
                return Ok(rows
                    .into_iter()
                    .map(|row| Delivery {
                        position: u64::try_from(row.seq).unwrap_or(0),
                        envelope: row.envelope,
                    })
                    .collect());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            tokio::time::sleep(self.poll.min(deadline - now)).await;
        }
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let seq = i64::try_from(delivery.position)
            .map_err(|_| BusError::Corrupt("position out of range".into()))?;
        self.outbox
            .set_position(&self.consumer, seq, now_ms())
            .await
    }
}

#[async_trait]
impl Bus for InProcessBus {
    fn kind(&self) -> &'static str {
        "in-process"
    }

    async fn subscribe(&self, consumer: &str) -> Result<Box<dyn Subscription>, BusError> {
        let cursor = self.outbox.position(consumer).await?;
        Ok(Box::new(InProcessSubscription {
            outbox: self.outbox.clone(),
            consumer: consumer.to_owned(),
            cursor,
            poll: self.poll,
        }))
    }

    async fn reset(&self, consumer: &str) -> Result<(), BusError> {
        self.outbox.set_position(consumer, 0, now_ms()).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.outbox.position("ping").await.map(|_| ())
    }
}
