//! The consumers that feed an index: one durable consumer per stream and replica, each
//! delivered batch applied in one commit that records its position, then acknowledged.

use evently_bus::Bus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::document::Change;
use crate::{EventIndex, Stream};

/// Deliveries per batch of `stream`: one index commit each. Booking's batches are larger: in
/// an on-sale rush its thousands of availability changes a second coalesce into one document
/// per event, and a commit costs about the same whatever it carries (tantivy builds a new
/// segment and its term dictionaries). The events stream's batches stay smaller, so that a
/// replay commits segments of a size the merge policy folds as it goes.
pub fn batch_size(stream: Stream) -> usize {
    match stream {
        Stream::Events => 512,
        Stream::Booking => 4096,
    }
}

/// Whether each stream has been read to its end once.
#[derive(Debug, Default)]
pub struct CaughtUp {
    events: AtomicBool,
    booking: AtomicBool,
}

impl CaughtUp {
    fn flag(&self, stream: Stream) -> &AtomicBool {
        match stream {
            Stream::Events => &self.events,
            Stream::Booking => &self.booking,
        }
    }

    /// Marks `stream` as read to its end.
    pub fn set(&self, stream: Stream) {
        self.flag(stream).store(true, Ordering::Release);
    }

    /// Whether `stream` has been read to its end.
    pub fn get(&self, stream: Stream) -> bool {
        self.flag(stream).load(Ordering::Acquire)
    }
}

/// Consumes `bus` as the durable consumer `name` into `index` until `shutdown`. With `replay`
/// (a fresh index) the consumer is first reset, so the stream is read from its beginning.
/// Commits are at least `pace` apart while changes trickle in: what arrives sooner waits and
/// goes in the next commit (a commit, and the reader's reload after it, cost the same for one
/// change as for hundreds); a full batch, with more waiting behind it, is followed at once.
#[expect(
    clippy::too_many_arguments,
    reason = "the consumer's parts and its pace"
)]
pub async fn run(
    bus: Arc<dyn Bus>,
    name: String,
    stream: Stream,
    index: Arc<dyn EventIndex>,
    caught_up: Arc<CaughtUp>,
    replay: bool,
    pace: Duration,
    shutdown: CancellationToken,
) {
    let mut committed: Option<Instant> = None;
    let most = batch_size(stream);
    let mut backoff = Duration::from_millis(100);
    let mut reset_pending = replay;
    'subscribe: while !shutdown.is_cancelled() {
        if reset_pending {
            if let Err(e) = bus.reset(&name).await {
                tracing::warn!(consumer = %name, error = %e, "resetting failed; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            reset_pending = false;
        }
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
            if let Some(rest) = committed.map(|at| pace.saturating_sub(at.elapsed()))
                && !rest.is_zero()
            {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(rest) => {}
                }
            }
            let deliveries = tokio::select! {
                () = shutdown.cancelled() => return,
                r = subscription.next_batch(most, Duration::from_millis(200)) => r,
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
            let Some(last) = deliveries.last() else {
                caught_up.set(stream);
                continue;
            };
            let batch = deliveries
                .iter()
                .map(|d| (d.position, Change::of(&d.envelope)))
                .collect();
            let envelopes: Vec<&evently_bus::Envelope> =
                deliveries.iter().map(|d| &d.envelope).collect();
            let span = evently_bus::consumer::consume_span(&name, &envelopes);
            // A full batch means more is waiting (a replay, a backlog): the next goes at once.
            committed = (deliveries.len() < most).then(Instant::now);
            if let Err(e) = index.apply(stream, batch).instrument(span).await {
                tracing::warn!(consumer = %name, error = format!("{e:#}"), "indexing failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue 'subscribe;
            }
            if let Err(e) = subscription.ack(last).await {
                // The commit holds the position: the redelivery is skipped.
                tracing::warn!(consumer = %name, error = %e, "ack failed; re-subscribing");
                continue 'subscribe;
            }
            backoff = Duration::from_millis(100);
        }
    }
}
