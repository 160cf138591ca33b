//! `/api/search`: events search and autocomplete (public). Parameters are read by hand from
//! the query string so that every bad one — unknown, repeated, malformed or out of bounds —
//! is a 422 naming it; the text is only ever split into words.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use evently_core::Problem;
use evently_core::clock::SharedClock;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi};

use crate::EventIndex;
use crate::query::{
    Filters, Highlight, Hit, MAX_QUERY_CHARS, MAX_QUERY_WORDS, MAX_SIZE, MAX_WINDOW, SearchRequest,
    SearchResults, Sort, Suggestions,
};

/// The OpenAPI description of the search service.
#[derive(OpenApi)]
#[openapi(
    paths(search_events, suggest),
    components(schemas(SearchResults, Hit, Highlight, crate::query::Facets, Suggestions)),
    tags((name = "search", description = "Typo-tolerant event search with facets"))
)]
pub struct SearchApi;

/// What the search handlers reach.
#[derive(Clone)]
pub struct SearchState {
    /// The index.
    pub index: Arc<dyn EventIndex>,
    /// The clock (past events are hidden).
    pub clock: SharedClock,
}

/// The search router (`/api/search/*`).
pub fn router(state: SearchState) -> Router {
    Router::new()
        .route("/api/search/events", get(search_events))
        .route("/api/search/suggest", get(suggest))
        .with_state(state)
}

const STATUSES: [&str; 4] = ["UPCOMING", "ON_SALE", "SOLD_OUT", "CANCELLED"];
const TYPES: [&str; 8] = [
    "concert",
    "sports",
    "theatre",
    "comedy",
    "conference",
    "festival",
    "workshop",
    "other",
];
const MAX_LIST: usize = 20;
const MAX_VALUE_CHARS: usize = 100;
const MAX_PRICE: i64 = 1_000_000_000;
const MAX_PAGE: u32 = 1000;
const PROBLEM: &str = "application/problem+json";

/// `GET /api/search/events` parameters (documentation; they are parsed by [`parse_search`]).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Words to find (typos tolerated, the last word also as a prefix); up to 100 characters
    /// and 10 words. Empty: every event matching the filters.
    #[param(max_length = 100, pattern = "^\\s*(\\S+(\\s+\\S+){0,9})?\\s*$")]
    q: Option<String>,
    /// Cities, comma-separated (case-insensitive; any of them).
    #[param(max_length = 2100, pattern = "^[^,]{0,100}(,[^,]{0,100}){0,19}$")]
    city: Option<String>,
    /// Event types, comma-separated (any of them).
    #[param(
        rename = "type",
        pattern = "^(concert|sports|theatre|comedy|conference|festival|workshop|other)(,(concert|sports|theatre|comedy|conference|festival|workshop|other)){0,19}$"
    )]
    event_type: Option<String>,
    /// Statuses, comma-separated (any of them). Default: all but `CANCELLED`.
    #[param(
        pattern = "^(UPCOMING|ON_SALE|SOLD_OUT|CANCELLED)(,(UPCOMING|ON_SALE|SOLD_OUT|CANCELLED)){0,19}$"
    )]
    status: Option<String>,
    /// Tags, comma-separated (all of them, case-insensitive).
    #[param(max_length = 2100, pattern = "^[^,]{0,100}(,[^,]{0,100}){0,19}$")]
    tags: Option<String>,
    /// Events still going on at or after this time (RFC 3339; an event lasts 6 hours).
    /// Default: now, so past events are hidden.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Events starting at or before this time (RFC 3339).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Only events with seats left (`true`) or without (`false`).
    #[param(rename = "hasSeats")]
    has_seats: Option<bool>,
    /// Lowest price at least this, in minor units.
    #[param(rename = "minPrice", minimum = 0, maximum = 1_000_000_000)]
    min_price: Option<i64>,
    /// Lowest price at most this, in minor units.
    #[param(rename = "maxPrice", minimum = 0, maximum = 1_000_000_000)]
    max_price: Option<i64>,
    /// `relevance` (default), `date`, `-date`, `price` or `-price`.
    #[param(pattern = "^(relevance|date|-date|price|-price)$")]
    sort: Option<String>,
    /// Page number, from 0. Hits beyond the 1000th are not served: such a page is empty.
    #[param(minimum = 0, maximum = 1000)]
    page: Option<u32>,
    /// Hits per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<u32>,
}

/// `GET /api/search/suggest` parameters.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SuggestParams {
    /// What has been typed so far (up to 100 characters and 10 words).
    #[param(max_length = 100, pattern = "^\\s*(\\S+(\\s+\\S+){0,9})?\\s*$")]
    q: Option<String>,
    /// Most suggestions of each kind, 1 to 20 (default 8).
    #[param(minimum = 1, maximum = 20)]
    limit: Option<u32>,
}

/// The parameters of a query string, each at most once, all of them known.
fn params(raw: Option<&str>, known: &[&str]) -> Result<BTreeMap<String, String>, Problem> {
    let mut out = BTreeMap::new();
    let mut problem: Option<Problem> = None;
    for (key, value) in url_pairs(raw.unwrap_or_default()) {
        let error = if !known.contains(&key.as_str()) {
            Some("unknown parameter")
        } else if out.contains_key(&key) {
            Some("given more than once")
        } else {
            None
        };
        match error {
            Some(detail) => {
                problem = Some(
                    problem
                        .unwrap_or_else(Problem::validation)
                        .field(key.clone(), detail),
                );
            }
            None => {
                out.insert(key, value);
            }
        }
    }
    match problem {
        Some(p) => Err(p),
        None => Ok(out),
    }
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space; malformed escapes are kept).
fn url_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_text(p: &BTreeMap<String, String>) -> Result<String, Problem> {
    let q = p.get("q").map(String::as_str).unwrap_or_default();
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(Problem::invalid_field(
            "q",
            format!("must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    if q.split_whitespace().count() > MAX_QUERY_WORDS {
        return Err(Problem::invalid_field(
            "q",
            format!("must be at most {MAX_QUERY_WORDS} words"),
        ));
    }
    Ok(q.to_owned())
}

fn list(
    p: &BTreeMap<String, String>,
    name: &str,
    allowed: Option<&[&str]>,
) -> Result<Vec<String>, Problem> {
    let Some(raw) = p.get(name) else {
        return Ok(Vec::new());
    };
    // Free text (cities, tags) is trimmed and empty items are skipped; a closed list's items
    // must be exactly one of its values.
    let values: Vec<String> = match allowed {
        None => raw
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect(),
        Some(_) => raw.split(',').map(str::to_owned).collect(),
    };
    if values.len() > MAX_LIST {
        return Err(Problem::invalid_field(
            name,
            format!("at most {MAX_LIST} values"),
        ));
    }
    for v in &values {
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(Problem::invalid_field(
                name,
                format!("each value is at most {MAX_VALUE_CHARS} characters"),
            ));
        }
        if let Some(allowed) = allowed
            && !allowed.contains(&v.as_str())
        {
            return Err(Problem::invalid_field(
                name,
                format!("`{v}` is not one of {}", allowed.join(", ")),
            ));
        }
    }
    Ok(values)
}

fn time_param(p: &BTreeMap<String, String>, name: &str) -> Result<Option<i64>, Problem> {
    p.get(name)
        .map(|raw| {
            OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
                .map(evently_bus::envelope::time_to_ms)
                .map_err(|_| Problem::invalid_field(name, "must be an RFC 3339 date-time"))
        })
        .transpose()
}

fn int_param(
    p: &BTreeMap<String, String>,
    name: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, Problem> {
    p.get(name)
        .map(|raw| match raw.trim().parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(Problem::invalid_field(
                name,
                format!("must be a whole number from {min} to {max}"),
            )),
        })
        .transpose()
}

fn to_u32(v: Option<i64>, default: u32) -> u32 {
    v.and_then(|v| u32::try_from(v).ok()).unwrap_or(default)
}

/// The search a query string asks for at `now_ms`.
///
/// # Errors
/// 422 naming each unknown, repeated or invalid parameter.
pub fn parse_search(raw: Option<&str>, now_ms: i64) -> Result<SearchRequest, Problem> {
    let p = params(
        raw,
        &[
            "q", "city", "type", "status", "tags", "from", "to", "hasSeats", "minPrice",
            "maxPrice", "sort", "page", "size",
        ],
    )?;
    let has_seats = match p.get("hasSeats").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(Problem::invalid_field("hasSeats", "must be true or false")),
    };
    let sort = match p.get("sort").map(String::as_str) {
        None | Some("relevance") => Sort::Relevance,
        Some("date") => Sort::DateAsc,
        Some("-date") => Sort::DateDesc,
        Some("price") => Sort::PriceAsc,
        Some("-price") => Sort::PriceDesc,
        Some(_) => {
            return Err(Problem::invalid_field(
                "sort",
                "must be relevance, date, -date, price or -price",
            ));
        }
    };
    let filters = Filters {
        cities: list(&p, "city", None)?,
        types: list(&p, "type", Some(&TYPES))?,
        statuses: list(&p, "status", Some(&STATUSES))?,
        tags: list(&p, "tags", None)?,
        from_ms: time_param(&p, "from")?,
        to_ms: time_param(&p, "to")?,
        has_seats,
        min_price: int_param(&p, "minPrice", 0, MAX_PRICE)?,
        max_price: int_param(&p, "maxPrice", 0, MAX_PRICE)?,
    };
    let page = to_u32(int_param(&p, "page", 0, i64::from(MAX_PAGE))?, 0);
    let size = to_u32(int_param(&p, "size", 1, i64::from(MAX_SIZE))?, 20);
    Ok(SearchRequest {
        q: query_text(&p)?,
        filters,
        sort,
        page,
        size,
        now_ms,
    })
}

fn now_ms(clock: &SharedClock) -> i64 {
    evently_bus::envelope::time_to_ms(clock.now())
}

/// Search events (public): ranked hits with highlights, exact `totalHits`, disjunctive facets.
#[utoipa::path(get, path = "/api/search/events", tag = "search", params(SearchParams),
    responses(
        (status = 200, description = "A page of hits with facet counts", body = SearchResults),
        (status = 422, description = "Unknown, repeated or invalid parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn search_events(
    State(state): State<SearchState>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<SearchResults>, Problem> {
    let mut request = parse_search(raw.as_deref(), now_ms(&state.clock))?;
    // Hits beyond the window are not served: such a page is empty, its counts exact.
    let beyond = u64::from(request.page) * u64::from(request.size) >= u64::from(MAX_WINDOW);
    let (page, size) = (request.page, request.size);
    if beyond {
        request.page = 0;
        request.size = 0;
    }
    let index = state.index.clone();
    let mut results = tokio::task::spawn_blocking(move || index.search(&request))
        .await
        .map_err(|e| Problem::internal(e.into()))?
        .map_err(|e| Problem::internal(e.into()))?;
    if beyond {
        results.page = page;
        results.size = size;
    } else {
        // The last page of the window stops at its 1000th hit.
        let room = usize::try_from(MAX_WINDOW - page * size).unwrap_or(usize::MAX);
        results.hits.truncate(room);
    }
    Ok(axum::Json(results))
}

/// Autocomplete (public): event names and cities for what has been typed, the last word as a
/// prefix, typos tolerated.
#[utoipa::path(get, path = "/api/search/suggest", tag = "search", params(SuggestParams),
    responses(
        (status = 200, description = "Suggestions", body = Suggestions),
        (status = 422, description = "Unknown, repeated or invalid parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn suggest(
    State(state): State<SearchState>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Suggestions>, Problem> {
    let p = params(raw.as_deref(), &["q", "limit"])?;
    let q = query_text(&p)?;
    let limit = usize::try_from(to_u32(int_param(&p, "limit", 1, 20)?, 8)).unwrap_or(8);
    let now = now_ms(&state.clock);
    let index = state.index.clone();
    let suggestions = tokio::task::spawn_blocking(move || index.suggest(&q, now, limit))
        .await
        .map_err(|e| Problem::internal(e.into()))?
        .map_err(|e| Problem::internal(e.into()))?;
    Ok(axum::Json(suggestions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(p: &Problem) -> Vec<String> {
        p.errors().iter().map(|e| e.pointer.clone()).collect()
    }

    #[test]
    fn bad_parameters_are_422_naming_them() {
        for (raw, field) in [
            ("bogus=1", "bogus"),
            ("q=a&q=b", "q"),
            ("status=OPEN", "status"),
            ("type=party", "type"),
            ("type=concert,", "type"),
            ("status=ON_SALE,%20UPCOMING", "status"),
            ("from=tomorrow", "from"),
            ("size=0", "size"),
            ("size=101", "size"),
            ("page=-1", "page"),
            ("hasSeats=yes", "hasSeats"),
            ("minPrice=1.5", "minPrice"),
            ("sort=name", "sort"),
        ] {
            let p = parse_search(Some(raw), 0).expect_err(raw);
            assert_eq!(
                p.status(),
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "{raw}"
            );
            assert_eq!(fields(&p), vec![field.to_owned()], "{raw}");
        }
        let long = format!("q={}", "a".repeat(101));
        assert!(parse_search(Some(&long), 0).is_err());
        assert!(parse_search(Some("q=a+b+c+d+e+f+g+h+i+j+k"), 0).is_err());
    }

    #[test]
    fn query_language_is_just_words() {
        let r = parse_search(
            Some("q=title%3A%22x%22+AND+(y%5E2)&city=Berlin,Paris&type=concert&size=5"),
            0,
        )
        .expect("valid");
        assert_eq!(r.q, "title:\"x\" AND (y^2)");
        assert_eq!(r.filters.cities, vec!["Berlin", "Paris"]);
        assert_eq!(r.size, 5);
    }
}
