//! What a search asks and answers, independent of the engine.

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::document::IndexedEvent;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Most words in a query.
pub const MAX_QUERY_WORDS: usize = 10;
/// Largest page.
pub const MAX_SIZE: u32 = 100;
/// Deepest hit a client can page to (`(page + 1) · size`).
pub const MAX_WINDOW: u32 = 1000;

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Words matched, typos, field, exactness, BM25; ties: on sale first, then sooner.
    #[default]
    Relevance,
    /// Soonest first.
    DateAsc,
    /// Latest first.
    DateDesc,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
}

/// Filters; an empty list means no filter on that field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Any of these cities (case-insensitive).
    pub cities: Vec<String>,
    /// Any of these event types.
    pub types: Vec<String>,
    /// Any of these statuses; empty: every status but `CANCELLED`.
    pub statuses: Vec<String>,
    /// All of these tags (case-insensitive).
    pub tags: Vec<String>,
    /// Events still going on at or after this time (epoch ms); `None`: from now.
    pub from_ms: Option<i64>,
    /// Events starting at or before this time (epoch ms).
    pub to_ms: Option<i64>,
    /// Only events with seats left (`true`) or sold out (`false`).
    pub has_seats: Option<bool>,
    /// Lowest price at least this (minor units).
    pub min_price: Option<i64>,
    /// Lowest price at most this (minor units).
    pub max_price: Option<i64>,
}

/// One search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// The user's words (never parsed as a query language).
    pub q: String,
    /// Filters.
    pub filters: Filters,
    /// Order.
    pub sort: Sort,
    /// Page, from 0.
    pub page: u32,
    /// Hits per page.
    pub size: u32,
    /// Now, epoch ms (past events are those that ended before it).
    pub now_ms: i64,
}

impl SearchRequest {
    /// A first page of 20 for `q` with default filters at `now_ms`.
    pub fn new(q: impl Into<String>, now_ms: i64) -> Self {
        Self {
            q: q.into(),
            filters: Filters::default(),
            sort: Sort::Relevance,
            page: 0,
            size: 20,
            now_ms,
        }
    }
}

/// A text with the ranges of the words that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Highlight {
    /// The text (cropped around the first match for a description), unescaped.
    pub text: String,
    /// The same text HTML-escaped, each match in `<mark>…</mark>`.
    pub html: String,
    /// The matches as `[start, end)` character offsets in `text`.
    pub ranges: Vec<[usize; 2]>,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    /// The event's id.
    pub event_id: uuid::Uuid,
    /// Title.
    pub event_name: String,
    /// Start (RFC 3339).
    pub event_date: String,
    /// Venue name.
    pub venue_name: String,
    /// City.
    pub city: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Status.
    pub status: String,
    /// Lowest price in minor units.
    pub min_price: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Seats left, by booking's newest figure.
    pub available_seats: i64,
    /// The title with its matches.
    pub name_highlight: Highlight,
    /// The description cropped around its first match, with its matches.
    pub description_highlight: Option<Highlight>,
}

/// Counts of each value among the hits; a selected facet's counts ignore its own filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Facets {
    /// Hits per city.
    pub city: BTreeMap<String, u64>,
    /// Hits per event type.
    #[serde(rename = "type")]
    pub event_type: BTreeMap<String, u64>,
    /// Hits per status.
    pub status: BTreeMap<String, u64>,
    /// Hits per month of their date (`YYYY-MM`).
    pub month: BTreeMap<String, u64>,
}

/// A page of hits.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    /// Hits in all (exact).
    pub total_hits: u64,
    /// Page number, from 0.
    pub page: u32,
    /// Page size.
    pub size: u32,
    /// The words that were matched: the query's, less those dropped from its end when all of
    /// them together matched nothing.
    pub matched_words: Vec<String>,
    /// This page.
    pub hits: Vec<Hit>,
    /// Facet counts.
    pub facets: Facets,
}

/// Autocomplete suggestions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suggestions {
    /// Event names.
    pub names: Vec<Highlight>,
    /// Cities.
    pub cities: Vec<String>,
}

impl Hit {
    pub(crate) fn new(e: &IndexedEvent, name: Highlight, description: Option<Highlight>) -> Self {
        Self {
            event_id: e.event_id,
            event_name: e.name.clone(),
            event_date: evently_bus::envelope::time_from_ms(e.date_ms)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            venue_name: e.venue.clone(),
            city: e.city.clone(),
            event_type: e.event_type.clone(),
            tags: e.tags.clone(),
            status: e.status.clone(),
            min_price: e.min_price,
            currency: e.currency.clone(),
            available_seats: e.available,
            name_highlight: name,
            description_highlight: description,
        }
    }
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The engine failed (an I/O error on the index).
    #[error("search engine: {0:#}")]
    Engine(anyhow::Error),
}
