//! The search service as a process runs it: its index, its router, its readiness and the
//! consumers that feed it.

use anyhow::Context;
use evently_bus::Bus;
use evently_core::clock::SharedClock;
use evently_core::config::Config;
use evently_core::http::ReadinessCheck;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::feed::{self, CaughtUp};
use crate::{EventIndex, SearchState, Stream, TantivyIndex};

/// A running search service's parts.
#[derive(Clone)]
pub struct Search {
    /// The index.
    pub index: Arc<dyn EventIndex>,
    state: SearchState,
    caught_up: Arc<CaughtUp>,
    consumer: String,
    fresh: bool,
    /// Least time between two commits of booking's feed (availability).
    pace: std::time::Duration,
}

impl Search {
    /// Opens the index of `config` (`[search]`): in memory, or under `<data_dir>/search/`.
    ///
    /// # Errors
    /// When the index or the replica name cannot be read or created.
    pub fn build(config: &Config, clock: SharedClock) -> anyhow::Result<Self> {
        let heap = config.search.writer_heap_mb;
        let index = if config.search.in_memory {
            TantivyIndex::in_memory(heap)?
        } else {
            TantivyIndex::open(&config.server.data_dir.join("search"), heap)
                .context("opening the search index")?
        };
        let replica = match &config.search.replica {
            Some(r) => r.clone(),
            None => replica_name(&config.server.data_dir)?,
        };
        let fresh = index.is_fresh();
        let index: Arc<dyn EventIndex> = Arc::new(index);
        Ok(Self {
            state: SearchState {
                index: index.clone(),
                clock,
            },
            index,
            caught_up: Arc::new(CaughtUp::default()),
            consumer: format!("search-{replica}"),
            fresh,
            pace: std::time::Duration::from_millis(config.search.commit_interval_ms),
        })
    }

    /// The search router.
    pub fn router(&self) -> axum::Router {
        crate::router(self.state.clone())
    }

    /// The durable name of this replica's consumers (one on each stream).
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// Whether the index has read both streams to their end once.
    pub fn caught_up(&self) -> bool {
        self.caught_up.get(Stream::Events) && self.caught_up.get(Stream::Booking)
    }

    /// Readiness: down until the index has caught up with its streams.
    pub fn readiness(&self) -> ReadinessCheck {
        let caught_up = self.caught_up.clone();
        Arc::new(move || {
            let caught_up = caught_up.clone();
            Box::pin(async move {
                if caught_up.get(Stream::Events) && caught_up.get(Stream::Booking) {
                    Ok(())
                } else {
                    Err("the search index is catching up with the event stream".to_owned())
                }
            })
        })
    }

    /// Starts this replica's consumers of `events` and (when given) `booking` on `tracker`
    /// until `shutdown`. A fresh index replays both streams from their beginning.
    pub fn start(
        &self,
        events: Arc<dyn Bus>,
        booking: Option<Arc<dyn Bus>>,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        let feeds = [(Stream::Events, Some(events)), (Stream::Booking, booking)];
        for (stream, bus) in feeds {
            let Some(bus) = bus else {
                // Nothing to wait for.
                self.caught_up.set(stream);
                continue;
            };
            let stream_name = match stream {
                Stream::Events => "events",
                Stream::Booking => "booking",
            };
            tracker.spawn(
                feed::run(
                    bus,
                    self.consumer.clone(),
                    stream,
                    self.index.clone(),
                    self.caught_up.clone(),
                    self.fresh,
                    // Organizers' changes go at once; availability is paced.
                    match stream {
                        Stream::Events => std::time::Duration::ZERO,
                        Stream::Booking => self.pace,
                    },
                    shutdown.clone(),
                )
                .instrument(tracing::info_span!(
                    "search_feed",
                    consumer = %self.consumer,
                    stream = stream_name
                )),
            );
        }
    }
}

/// This replica's name, generated once and kept in `<data_dir>/search-replica`.
fn replica_name(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("search-replica");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.trim().is_empty()
    {
        return Ok(existing.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir)?;
    let name = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    std::fs::write(&path, &name).with_context(|| format!("writing {}", path.display()))?;
    Ok(name)
}
