//! The NATS JetStream bus: a relay publishes a service's outbox to a stream; consumers are
//! durable JetStream pull consumers.
//!
//! Ordering and loss: the relay publishes one row at a time in `seq` order and waits for
//! JetStream's ack before the next, so the stream holds the outbox in order; it marks rows
//! published only up to the last acknowledged one. If NATS goes away, publishing fails, the
//! relay backs off and retries from the first unpublished row once the client has reconnected.
//! A row that was stored but whose ack was lost is published again with the same
//! `Nats-Msg-Id` (the event id) and JetStream drops it as a duplicate within the stream's
//! duplicate window, so neither loss nor reordering of an aggregate's events can happen.
//!
//! Consumers use `AckPolicy::All`: acknowledging a message acknowledges every earlier one,
//! which is exactly the "position" of [`crate::Subscription::ack`]. Unacknowledged messages are
//! redelivered after `ack_wait`. A subscription hands out the stream without a hole from the
//! consumer's acknowledgement floor: a delivery lost in transit is read from the stream before
//! anything after it is handed out, so no acknowledgement ever covers an event unseen.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::outbox::{Outbox, OutboxRow};
use crate::{Bus, BusError, Delivery, Envelope, Subscription, now_ms};

/// Where one service's events live on NATS.
#[derive(Debug, Clone)]
pub struct NatsTarget {
    /// Stream name, e.g. `EVENTLY_EVENTS`.
    pub stream: String,
    /// Subject prefix; events go to `<prefix>.<aggregate type>.<event type>`.
    pub subject_prefix: String,
    /// How long a delivered, unacknowledged message waits before redelivery.
    pub ack_wait: Duration,
}

/// The JetStream bus of one service's stream.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    target: NatsTarget,
    stream: Arc<OnceCell<stream::Stream>>,
    inactive_threshold: Option<Duration>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl NatsBus {
    /// Connects to the NATS server at `url`. The connection is retried in the background if
    /// the server is not up yet, and re-established whenever it drops.
    ///
    /// # Errors
    /// An invalid URL or target name.
    pub async fn connect(url: &str, target: NatsTarget) -> Result<Self, BusError> {
        if !valid_token(&target.stream) {
            return Err(BusError::broker(anyhow::anyhow!(
                "stream names are letters, digits, '_' or '-'"
            )));
        }
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(BusError::broker)?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(5));
        Ok(Self {
            client,
            js,
            target,
            stream: Arc::new(OnceCell::new()),
            inactive_threshold: None,
        })
    }

    /// The same bus, whose consumers NATS deletes after `threshold` without a subscriber:
    /// for per-replica consumers, so that a replica gone for good leaves nothing behind.
    #[must_use]
    pub fn with_inactive_threshold(mut self, threshold: Duration) -> Self {
        self.inactive_threshold = Some(threshold);
        self
    }

    /// The stream, created on first use (so start-up does not wait for NATS).
    async fn stream(&self) -> Result<&stream::Stream, BusError> {
        self.stream
            .get_or_try_init(|| async {
                self.js
                    .get_or_create_stream(stream::Config {
                        name: self.target.stream.clone(),
                        subjects: vec![format!("{}.>", self.target.subject_prefix)],
                        storage: stream::StorageType::File,
                        // Re-publishes after a relay crash arrive within this window.
                        duplicate_window: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await
                    .map_err(BusError::broker)
            })
            .await
    }

    /// The subject of `envelope`.
    pub fn subject(&self, envelope: &Envelope) -> String {
        format!(
            "{}.{}.{}",
            self.target.subject_prefix, envelope.aggregate_type, envelope.event_type
        )
    }

    /// Publishes one envelope and waits for JetStream's ack.
    async fn publish(&self, envelope: &Envelope) -> Result<(), BusError> {
        self.stream().await?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", envelope.id.to_string().as_str());
        let body = envelope
            .to_json()
            .map_err(|e| BusError::Corrupt(e.to_string()))?;
        self.js
            .publish_with_headers(self.subject(envelope), headers, body.into())
            .await
            .map_err(BusError::broker)?
            .await
            .map_err(BusError::broker)?;
        Ok(())
    }

    /// How many messages the stream holds (operations and tests: after a relay has drained
    /// its outbox, one per outbox row, JetStream having dropped re-published copies).
    ///
    /// # Errors
    /// When NATS cannot be reached or has no such stream.
    pub async fn stream_messages(&self) -> Result<u64, BusError> {
        let mut stream = self
            .js
            .get_stream(&self.target.stream)
            .await
            .map_err(BusError::broker)?;
        let info = stream.info().await.map_err(BusError::broker)?;
        Ok(info.state.messages)
    }

    /// Deletes the stream (tests and benchmarks clean up with it).
    ///
    /// # Errors
    /// When NATS refuses.
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        self.js
            .delete_stream(&self.target.stream)
            .await
            .map_err(BusError::broker)?;
        Ok(())
    }
}

/// A subscription hands out the stream in order from the consumer's acknowledgement floor,
/// whatever happened to earlier deliveries. A delivery can be lost in transit (the connection
/// dropped with it, or another subscriber of the consumer took it): JetStream sends it again
/// only after `ack_wait`, and meanwhile delivers the messages after it. Acknowledging one of
/// those would, under `AckPolicy::All`, acknowledge the lost one unseen; so when a delivery
/// skips ahead of the next expected stream sequence, the messages in between are read from
/// the stream itself and handed out first.
struct NatsSubscription {
    consumer: consumer::PullConsumer,
    stream: stream::Stream,
    /// The stream sequence to hand out next.
    next: u64,
    /// Consumer deliveries not yet acknowledged, with their stream sequences.
    pending: VecDeque<(u64, jetstream::Message)>,
}

impl NatsSubscription {
    /// Hands out, in order, the stream's messages from `self.next` up to `before` (exclusive)
    /// that the consumer did not deliver here. A sequence the stream no longer holds is
    /// skipped, as a consumer would.
    async fn fill_gap(&mut self, before: u64, out: &mut Vec<Delivery>) -> Result<(), BusError> {
        let first = self
            .stream
            .get_info()
            .await
            .map_err(BusError::broker)?
            .state
            .first_sequence;
        self.next = self.next.max(first);
        tracing::warn!(
            from = self.next,
            to = before,
            "deliveries lost in transit; reading them from the stream"
        );
        while self.next < before {
            let position = self.next;
            match self.stream.get_raw_message(position).await {
                Ok(message) => decode(&message.payload, position, out),
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(BusError::broker(e)),
            }
            self.next = position + 1;
        }
        Ok(())
    }
}

/// Appends the envelope of the message at `position` to `out`; an undecodable one is logged
/// and skipped (it would never decode, and holding it back would hold back the stream).
fn decode(payload: &[u8], position: u64, out: &mut Vec<Delivery>) {
    match Envelope::from_json(payload) {
        Ok(envelope) => out.push(Delivery { envelope, position }),
        Err(e) => tracing::warn!(error = %e, position, "skipping an undecodable message"),
    }
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max.max(1))
            .expires(wait.max(Duration::from_millis(10)))
            .messages()
            .await
            .map_err(BusError::broker)?;
        let mut out = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(boxed)?;
            let position = message.info().map_err(boxed)?.stream_sequence;
            if position > self.next {
                self.fill_gap(position, &mut out).await?;
            }
            // A lower sequence is a redelivery of a message this subscription already handed
            // out (it is kept only so that its acknowledgement settles it).
            if position == self.next {
                decode(&message.payload, position, &mut out);
                self.next = position + 1;
            }
            self.pending.push_back((position, message));
        }
        Ok(out)
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        // Under `AckPolicy::All` acknowledging the latest delivery at or before `delivery`
        // acknowledges every earlier one; messages read from the stream have none of their
        // own, and are settled with it or with a later acknowledgement.
        let upto = delivery.position;
        let Some((_, message)) = self
            .pending
            .iter()
            .filter(|(position, _)| *position <= upto)
            .max_by_key(|(position, _)| *position)
        else {
            return Ok(());
        };
        // The double ack waits for the server, so an acknowledged event is never redelivered.
        message.double_ack().await.map_err(boxed)?;
        self.pending.retain(|(position, _)| *position > upto);
        Ok(())
    }
}

#[async_trait]
impl Bus for NatsBus {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn subscribe(&self, name: &str) -> Result<Box<dyn Subscription>, BusError> {
        if !valid_token(name) {
            return Err(BusError::broker(anyhow::anyhow!(
                "consumer names are letters, digits, '_' or '-'"
            )));
        }
        let stream = self.stream().await?;
        let consumer = stream
            .get_or_create_consumer(
                name,
                consumer::pull::Config {
                    durable_name: Some(name.to_owned()),
                    ack_policy: consumer::AckPolicy::All,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ack_wait: self.target.ack_wait,
                    inactive_threshold: self.inactive_threshold.unwrap_or_default(),
                    ..Default::default()
                },
            )
            .await
            .map_err(BusError::broker)?;
        let floor = consumer
            .get_info()
            .await
            .map_err(BusError::broker)?
            .ack_floor
            .stream_sequence;
        Ok(Box::new(NatsSubscription {
            consumer,
            stream: stream.clone(),
            next: floor + 1,
            pending: VecDeque::new(),
        }))
    }

    async fn reset(&self, name: &str) -> Result<(), BusError> {
        let stream = self.stream().await?;
        match stream.delete_consumer(name).await {
            Ok(_) => Ok(()),
            Err(e) => match e.kind() {
                consumer_error if is_not_found(&consumer_error) => Ok(()),
                _ => Err(BusError::broker(e)),
            },
        }
    }

    async fn ping(&self) -> Result<(), BusError> {
        tokio::time::timeout(Duration::from_secs(2), self.client.flush())
            .await
            .map_err(|_| BusError::broker(anyhow::anyhow!("NATS did not answer")))?
            .map_err(BusError::broker)
    }
}

fn boxed(e: Box<dyn std::error::Error + Send + Sync>) -> BusError {
    BusError::Broker(anyhow::anyhow!(e))
}

fn is_not_found(kind: &stream::ConsumerErrorKind) -> bool {
    matches!(kind, stream::ConsumerErrorKind::JetStream(e) if e.code() == 404)
}

/// Publishes one outbox to JetStream.
pub struct Relay {
    outbox: Arc<dyn Outbox>,
    bus: NatsBus,
    batch: u32,
    idle: Duration,
}

impl Relay {
    /// A relay of `outbox` to `bus`, `batch` rows per round, looking for new rows every
    /// `idle` when the outbox is drained.
    pub fn new(outbox: Arc<dyn Outbox>, bus: NatsBus, batch: u32, idle: Duration) -> Self {
        Self {
            outbox,
            bus,
            batch,
            idle,
        }
    }

    /// Publishes up to one batch of unpublished rows, in order; returns how many were
    /// published. Rows are marked published up to the last one JetStream acknowledged, even
    /// when a later one failed.
    ///
    /// # Errors
    /// The first failure (after marking what did get through).
    pub async fn publish_pending(&self) -> Result<usize, BusError> {
        let rows = self.outbox.unpublished(self.batch).await?;
        let mut last: Option<&OutboxRow> = None;
        let mut failure = None;
        for row in &rows {
            // Publishing continues the trace of the request that wrote the row.
            let span = match &row.envelope.traceparent {
                None => tracing::Span::none(),
                Some(origin) => {
                    let span = tracing::debug_span!(
                        target: evently_core::telemetry::CONTINUED,
                        "bus.publish",
                        event.r#type = %row.envelope.event_type,
                        event.id = %row.envelope.id,
                        trace_id = tracing::field::Empty,
                    );
                    evently_core::telemetry::set_parent_from_traceparent(&span, origin);
                    span
                }
            };
            match self.bus.publish(&row.envelope).instrument(span).await {
                Ok(()) => last = Some(row),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let published = rows
            .iter()
            .take_while(|r| last.is_some_and(|l| r.seq <= l.seq))
            .count();
        if let Some(last) = last {
            self.outbox.mark_published(last.seq, now_ms()).await?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(published),
        }
    }

    /// Runs until `shutdown`: publishes whenever there is something to publish, and backs off
    /// (100 ms doubling to 5 s) while NATS or the database fails.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = tracing::info_span!("outbox_relay", bus.stream = %self.bus.target.stream);
        async move {
            tracing::info!("outbox relay started");
            let mut backoff = Duration::from_millis(100);
            loop {
                let pause = match self.publish_pending().await {
                    Ok(n) => {
                        backoff = Duration::from_millis(100);
                        if n > 0 {
                            metrics::counter!("evently_bus_relayed_events_total")
                                .increment(n as u64);
                        }
                        if n == self.batch as usize {
                            Duration::ZERO
                        } else {
                            self.idle
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox relay failed; retrying");
                        let pause = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        pause
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
            tracing::info!("outbox relay stopped");
        }
        .instrument(span)
        .await;
    }
}
