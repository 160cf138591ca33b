//! evently-search: a typo-tolerant index of events, fed by the event stream.
//!
//! What it promises:
//! - every search process keeps its own index ([`engine::TantivyIndex`], on disk under
//!   `<data_dir>/search/index-v<N>`, or in memory) behind the [`EventIndex`] trait, fed by its
//!   own durable consumers of the events and booking streams ([`feed`]);
//! - each delivered batch is applied in one index commit that also records the bus position
//!   reached, and acknowledged only after that commit; a redelivery below the recorded position
//!   changes nothing, so the index is exactly the stream's effect;
//! - a missing index, or one of another schema version, is rebuilt by replaying the stream;
//!   readiness stays false until the index has caught up with both streams;
//! - relevance follows Meilisearch's rules and adds BM25 within a bucket
//!   (see [`engine`]); user text is never parsed as a query language.
//!
//! Layout: [`document`] (what is indexed, and the bus events that change it), [`query`] (the
//! request and answer types), [`engine`] (tantivy), [`feed`] (the consumers), [`http`].

pub mod conformance;
pub mod document;
pub mod engine;
pub mod feed;
pub mod http;
pub mod query;
pub mod service;

pub use http::{SearchApi, SearchState, router};

use serde::{Deserialize, Serialize};

pub use engine::TantivyIndex;
pub use service::Search;

pub use query::{Filters, SearchError, SearchRequest, SearchResults, Sort, Suggestions};

/// The streams the index is fed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The events service's (snapshots, status, deletions).
    Events,
    /// Booking's (availability).
    Booking,
}

/// The bus positions an index reflects, stored in its commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    /// Last applied position of the events stream.
    pub events: u64,
    /// Last applied position of booking's stream.
    pub booking: u64,
}

impl Positions {
    /// The position of `stream`.
    pub fn get(&self, stream: Stream) -> u64 {
        match stream {
            Stream::Events => self.events,
            Stream::Booking => self.booking,
        }
    }

    /// Sets the position of `stream`.
    pub fn set(&mut self, stream: Stream, position: u64) {
        match stream {
            Stream::Events => self.events = position,
            Stream::Booking => self.booking = position,
        }
    }
}

/// An index of events: applied batches of bus changes, searched.
#[async_trait::async_trait]
pub trait EventIndex: Send + Sync {
    /// Applies `batch` (bus positions and their changes) of `stream` in one commit that
    /// records the last position (`None`: an event that changes nothing here, whose position
    /// still counts); changes at or below the recorded position are skipped.
    async fn apply(
        &self,
        stream: Stream,
        batch: Vec<(u64, Option<document::Change>)>,
    ) -> anyhow::Result<()>;

    /// The last position of `stream` the index reflects.
    fn position(&self, stream: Stream) -> u64;

    /// One page of hits with facets.
    ///
    /// # Errors
    /// When the engine fails.
    fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError>;

    /// Names and cities for autocomplete.
    ///
    /// # Errors
    /// When the engine fails.
    fn suggest(&self, q: &str, now_ms: i64, limit: usize) -> Result<Suggestions, SearchError>;

    /// Events in the index.
    fn len(&self) -> u64;

    /// Whether the index holds no event.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
