//! The page handlers: each reads what it shows through [`Api`] and renders a template.
//! Every handler is a `GET` and changes nothing (see the crate docs for why that matters).

use askama::Template;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evently_core::identity::{ACCESS_COOKIE, cookie};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::api::{Api, ApiError};
use crate::assets::ASSETS;
use crate::seatmap::SeatMapSvg;
use crate::views::{
    self, EventAnalytics, EventView, OrderList, Recommendations, SearchResults, SeatMap, money,
    revenue_words, when,
};
use crate::{CSP, WebConfig};

/// Hits per page of the event list.
const PAGE_SIZE: u32 = 20;
/// How long an event's name is remembered for the orders list: names rarely change, and
/// looking each order's event up again on every visit would spend the buyer's rate limit.
const NAME_TTL: Duration = Duration::from_secs(60);
/// Most event names remembered (the oldest are dropped first).
const NAME_CAPACITY: usize = 2048;

/// An event's name and date in words, and when they were read.
type KnownName = (Instant, String, String);

/// The state of the web client's handlers.
#[derive(Clone, Debug)]
pub struct WebState {
    pub(crate) api: Api,
    pub(crate) config: WebConfig,
    names: Arc<Mutex<HashMap<Uuid, KnownName>>>,
}

impl WebState {
    /// Handlers calling `api`.
    pub fn new(api: Api, config: WebConfig) -> Self {
        Self {
            api,
            config,
            names: Arc::default(),
        }
    }
}

/// What every page shows around its content.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Whether the browser sent a session cookie (the page offers "My orders" and "Sign
    /// out"; the API decides whether the session is still good).
    pub signed_in: bool,
    /// The stylesheet's path.
    pub css: &'static str,
    /// htmx's path.
    pub htmx: &'static str,
    /// The client module's path.
    pub app: &'static str,
    /// Who the session cookie says the caller is ([`Viewer::of`]: which links to offer).
    pub viewer: Option<Viewer>,
}

impl Layout {
    pub(crate) fn of(parts: &Parts) -> Self {
        let token = cookie(&parts.headers, ACCESS_COOKIE);
        Self {
            signed_in: token.is_some(),
            css: ASSETS.css.as_str(),
            htmx: ASSETS.htmx.as_str(),
            app: ASSETS.app.as_str(),
            viewer: token.and_then(Viewer::of),
        }
    }

    /// Whether to offer the organizer's pages.
    pub fn organizer(&self) -> bool {
        self.viewer.as_ref().is_some_and(Viewer::organizer)
    }

    /// Whether to offer the admin's pages.
    pub fn admin(&self) -> bool {
        self.viewer.as_ref().is_some_and(|v| v.role == "admin")
    }
}

/// The user and role an access token names, read without checking its signature.
///
/// Only for choosing which links a page offers (the organizer's pages, an event's sales
/// dashboard): every page and every API call behind those links is authorized by the gateway
/// from the verified token, so a forged cookie shows a link that leads to a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The user.
    pub user_id: Uuid,
    /// `user | organizer | admin`.
    pub role: String,
}

impl Viewer {
    /// The claims of the JWT `token`, if it reads as one.
    pub fn of(token: &str) -> Option<Self> {
        use base64::Engine;
        #[derive(serde::Deserialize)]
        struct Claims {
            sub: Uuid,
            role: String,
        }
        let payload = token.split('.').nth(1)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        let claims: Claims = serde_json::from_slice(&json).ok()?;
        Some(Self {
            user_id: claims.sub,
            role: claims.role,
        })
    }

    /// An organizer or an admin.
    pub fn organizer(&self) -> bool {
        matches!(self.role.as_str(), "organizer" | "admin")
    }

    /// Whether this viewer may see `organizer_id`'s event's sales.
    pub fn runs(&self, organizer_id: Option<Uuid>) -> bool {
        self.role == "admin" || (self.organizer() && organizer_id == Some(self.user_id))
    }
}

static HX_REPLACE_URL: HeaderName = HeaderName::from_static("hx-replace-url");

/// An HTML answer with the pages' headers.
pub(crate) fn html(
    config: &WebConfig,
    status: StatusCode,
    rendered: askama::Result<String>,
) -> Response {
    let body = match rendered {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "a page failed to render");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The page could not be shown.",
            )
                .into_response();
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if config.hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// The error page for a failed API call.
pub(crate) fn failure(state: &WebState, layout: Layout, error: &ApiError) -> Response {
    let title = match error.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Slow down",
        StatusCode::UNAUTHORIZED => "Please sign in",
        _ => "Something went wrong",
    };
    let page = ErrorPage {
        layout,
        title,
        message: error.human(),
    };
    let mut response = html(&state.config, error.status, page.render());
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    layout: Layout,
    title: &'static str,
    message: String,
}

// ---- the event list ---------------------------------------------------------------------

/// What the search form holds (also the page's query string).
#[derive(Debug, Clone, Default)]
pub struct SearchForm {
    /// Words.
    pub q: String,
    /// City.
    pub city: String,
    /// Event type.
    pub event_type: String,
    /// Only events with seats left.
    pub has_seats: bool,
    /// `relevance | date | price`.
    pub sort: String,
    /// Page, from 0.
    pub page: u32,
}

impl SearchForm {
    fn parse(raw: Option<&str>) -> Self {
        let mut form = Self::default();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let value: String = value.trim().chars().take(100).collect();
            match key.as_ref() {
                "q" => form.q = value,
                "city" => form.city = value,
                "type" => form.event_type = value,
                "hasSeats" => form.has_seats = value == "true" || value == "on",
                "sort" if matches!(value.as_str(), "date" | "price" | "relevance") => {
                    form.sort = value;
                }
                "page" => form.page = value.parse().unwrap_or(0).min(49),
                _ => {}
            }
        }
        form
    }

    /// The page's own query string for this form (and `page`).
    fn page_query(&self, page: u32) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            out.append_pair("q", &self.q);
        }
        if !self.city.is_empty() {
            out.append_pair("city", &self.city);
        }
        if !self.event_type.is_empty() {
            out.append_pair("type", &self.event_type);
        }
        if self.has_seats {
            out.append_pair("hasSeats", "true");
        }
        if !self.sort.is_empty() {
            out.append_pair("sort", &self.sort);
        }
        if page > 0 {
            out.append_pair("page", &page.to_string());
        }
        out.finish()
    }

    fn api_query(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        // The search service takes up to ten words.
        let words: Vec<&str> = self.q.split_whitespace().take(10).collect();
        if !words.is_empty() {
            out.append_pair("q", &words.join(" "));
        }
        if !self.city.is_empty() && !self.city.contains(',') {
            out.append_pair("city", &self.city);
        }
        if !self.event_type.is_empty() {
            out.append_pair("type", &self.event_type);
        }
        if self.has_seats {
            out.append_pair("hasSeats", "true");
        }
        if !self.sort.is_empty() {
            out.append_pair("sort", &self.sort);
        }
        out.append_pair("page", &self.page.to_string());
        out.append_pair("size", &PAGE_SIZE.to_string());
        format!("/api/search/events?{}", out.finish())
    }
}

/// A facet value offered as a filter.
#[derive(Debug, Clone)]
pub struct FacetOption {
    /// The value.
    pub value: String,
    /// Shown as.
    pub label: String,
    /// Whether it is the current filter.
    pub selected: bool,
}

/// One event of the list.
#[derive(Debug, Clone)]
pub struct HitRow {
    /// Its page.
    pub href: String,
    /// Its name, cut into marked and unmarked parts.
    pub name: Vec<(String, bool)>,
    /// When.
    pub when: String,
    /// Where.
    pub place: String,
    /// "from €25".
    pub price: String,
    /// Status in words.
    pub status: &'static str,
    /// Seats left in words.
    pub seats: String,
}

/// The results part of the event list (also the fragment htmx swaps in).
#[derive(Debug, Clone, Default)]
pub struct ResultsView {
    /// A human message when the search failed.
    pub error: Option<String>,
    /// Hits in all.
    pub total: u64,
    /// This page.
    pub hits: Vec<HitRow>,
    /// City filter options with counts.
    pub cities: Vec<FacetOption>,
    /// Type filter options with counts.
    pub types: Vec<FacetOption>,
    /// The previous page's link.
    pub prev: Option<String>,
    /// The next page's link.
    pub next: Option<String>,
}

fn facet_options(
    counts: &std::collections::BTreeMap<String, u64>,
    current: &str,
) -> Vec<FacetOption> {
    let mut options: Vec<FacetOption> = counts
        .iter()
        .map(|(value, n)| FacetOption {
            value: value.clone(),
            label: format!("{value} ({n})"),
            selected: value.eq_ignore_ascii_case(current),
        })
        .collect();
    // A filter that matches nothing stays selectable, so it can be seen and cleared.
    if !current.is_empty() && !options.iter().any(|o| o.selected) {
        options.push(FacetOption {
            value: current.to_owned(),
            label: format!("{current} (0)"),
            selected: true,
        });
    }
    options
}

async fn search(state: &WebState, parts: &Parts, form: &SearchForm) -> ResultsView {
    match state
        .api
        .get::<SearchResults>(parts, &form.api_query())
        .await
    {
        Ok(found) => {
            let pages = found.total_hits.div_ceil(u64::from(found.size.max(1)));
            ResultsView {
                error: None,
                total: found.total_hits,
                hits: found
                    .hits
                    .iter()
                    .map(|hit| HitRow {
                        href: format!("/events/{}", hit.event_id),
                        name: hit.name_highlight.parts(),
                        when: when(&hit.event_date),
                        place: match &hit.city {
                            Some(city) => format!("{}, {city}", hit.venue_name),
                            None => hit.venue_name.clone(),
                        },
                        price: format!("from {}", money(hit.min_price, &hit.currency)),
                        status: views::status_words(&hit.status),
                        seats: match hit.available_seats {
                            0 => "no seats left".to_owned(),
                            1 => "1 seat left".to_owned(),
                            n => format!("{n} seats left"),
                        },
                    })
                    .collect(),
                cities: facet_options(&found.facets.city, &form.city),
                types: facet_options(&found.facets.event_type, &form.event_type),
                prev: (found.page > 0).then(|| format!("/?{}", form.page_query(found.page - 1))),
                next: (u64::from(found.page) + 1 < pages.min(50))
                    .then(|| format!("/?{}", form.page_query(found.page + 1))),
            }
        }
        Err(error) => ResultsView {
            error: Some(match error.status {
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                    "We could not search for that. Try fewer or simpler words.".to_owned()
                }
                _ => error.human(),
            }),
            ..ResultsView::default()
        },
    }
}

/// The event list.
#[derive(Template)]
#[template(path = "events.html")]
pub struct EventsPage {
    layout: Layout,
    form: SearchForm,
    results: ResultsView,
    oob: bool,
}

/// The event list's results, as htmx swaps them in (the filters' options out of band).
#[derive(Template)]
#[template(path = "events_results.html")]
pub struct EventsResults {
    results: ResultsView,
    oob: bool,
}

/// `GET /`: the event list, searched and filtered by the query string.
pub async fn events_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let form = SearchForm::parse(parts.uri.query());
    let results = search(&state, &parts, &form).await;
    let page = EventsPage {
        layout: Layout::of(&parts),
        form,
        results,
        oob: false,
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// `GET /_/events`: the results for the search form, for htmx; the address bar follows.
pub async fn events_fragment(
    State(state): State<WebState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let form = SearchForm::parse(query.as_deref());
    let results = search(&state, &parts, &form).await;
    let fragment = EventsResults { results, oob: true };
    let mut response = html(&state.config, StatusCode::OK, fragment.render());
    if let Ok(url) = HeaderValue::from_str(&format!("/?{}", form.page_query(form.page))) {
        response.headers_mut().insert(&HX_REPLACE_URL, url);
    }
    response
}

// ---- an event ---------------------------------------------------------------------------

/// An event as its page shows it.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The event.
    pub id: Uuid,
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// When.
    pub when: String,
    /// Where.
    pub place: String,
    /// Status in words.
    pub status: &'static str,
    /// Currency.
    pub currency: String,
    /// `{"base": …, "sections": {…}}` in minor units: what the checkout shows the hold to cost.
    pub prices: String,
}

/// The event page: details, the seat map and the checkout.
#[derive(Template)]
#[template(path = "event.html")]
pub struct EventPage {
    layout: Layout,
    event: EventRow,
    map: Option<SeatMapSvg>,
    available: usize,
    capacity: usize,
    on_sale: bool,
    sold_out: bool,
    waitlist_open: bool,
    /// Whether to link the sales dashboard (the event's organizer or an admin).
    runs_it: bool,
}

/// `GET /events/{id}`: the event, its seat map with live states, and the checkout.
pub async fn event_page(
    State(state): State<WebState>,
    Path(event_id): Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    let Ok(event_id) = Uuid::parse_str(&event_id) else {
        let missing = ApiError {
            status: StatusCode::NOT_FOUND,
            problem: crate::api::ProblemBody::default(),
            retry_after: None,
        };
        return failure(&state, layout, &missing);
    };
    let (event_path, seats_path) = (
        format!("/api/events/{event_id}"),
        format!("/api/orders/seats/{event_id}"),
    );
    let (event, seats) = tokio::join!(
        state.api.get::<EventView>(&parts, &event_path),
        state.api.get::<SeatMap>(&parts, &seats_path),
    );
    let (event, seats) = match (event, seats) {
        (Ok(event), Ok(seats)) => (event, seats),
        (Err(error), _) | (_, Err(error)) => return failure(&state, layout, &error),
    };
    let place = match (&event.venue_name, &event.city) {
        (Some(venue), Some(city)) => format!("{venue}, {city}"),
        (Some(venue), None) => venue.clone(),
        (None, Some(city)) => city.clone(),
        (None, None) => String::new(),
    };
    let runs_it = layout
        .viewer
        .as_ref()
        .is_some_and(|v| v.runs(event.organizer_id));
    let page = EventPage {
        runs_it,
        map: SeatMapSvg::new(&seats.seats, &event.currency),
        available: seats
            .seats
            .iter()
            .filter(|s| s.state == "available")
            .count(),
        capacity: seats.seats.len(),
        on_sale: event.status == "ON_SALE",
        sold_out: event.status == "SOLD_OUT",
        waitlist_open: matches!(event.status.as_str(), "ON_SALE" | "SOLD_OUT"),
        event: EventRow {
            id: event.event_id,
            name: event.event_name,
            description: event.description.unwrap_or_default(),
            when: when(&event.event_date),
            place,
            status: views::status_words(&event.status),
            currency: event.currency,
            prices: serde_json::json!({"base": event.base_price, "sections": event.section_prices})
                .to_string(),
        },
        layout,
    };
    html(&state.config, StatusCode::OK, page.render())
}

// ---- my orders --------------------------------------------------------------------------

/// The orders page: its list loads after the page (see the crate docs on `SameSite`).
#[derive(Template)]
#[template(path = "orders.html")]
pub struct OrdersPage {
    layout: Layout,
}

/// `GET /orders`.
pub async fn orders_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let page = OrdersPage {
        layout: Layout::of(&parts),
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// A ticket as shown.
#[derive(Debug, Clone)]
pub struct TicketRow {
    /// "Section A, row 1, seat 2" (or the seat id).
    pub seat: String,
    /// The code.
    pub code: String,
    /// Its QR code (inline SVG built by [`crate::qr`]).
    pub qr: String,
    /// Whether it still admits.
    pub valid: bool,
}

/// An order as shown.
#[derive(Debug, Clone)]
pub struct OrderRow {
    /// The order.
    pub id: Uuid,
    /// The event's page.
    pub event_href: String,
    /// The event's name.
    pub event_name: String,
    /// When the event is.
    pub event_when: String,
    /// Amount in words.
    pub amount: String,
    /// Status in words.
    pub status: String,
    /// Whether it may be cancelled.
    pub cancellable: bool,
    /// When it was bought.
    pub bought: String,
    /// Its tickets.
    pub tickets: Vec<TicketRow>,
}

/// The orders list.
#[derive(Template)]
#[template(path = "orders_list.html")]
pub struct OrdersList {
    signed_out: bool,
    error: Option<String>,
    orders: Vec<OrderRow>,
}

fn seat_words(seat_id: &str) -> String {
    let parts: Vec<&str> = seat_id.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [number, row, section] => format!("Section {section}, row {row}, seat {number}"),
        _ => seat_id.to_owned(),
    }
}

async fn event_name(state: &WebState, parts: &Parts, event_id: Uuid) -> (String, String) {
    let now = Instant::now();
    if let Ok(names) = state.names.lock()
        && let Some((at, name, date)) = names.get(&event_id)
        && now.duration_since(*at) < NAME_TTL
    {
        return (name.clone(), date.clone());
    }
    match state
        .api
        .get::<EventView>(parts, &format!("/api/events/{event_id}"))
        .await
    {
        Ok(event) => {
            let found = (event.event_name, when(&event.event_date));
            if let Ok(mut names) = state.names.lock() {
                if names.len() >= NAME_CAPACITY {
                    names.retain(|_, (at, _, _)| now.duration_since(*at) < NAME_TTL);
                    if names.len() >= NAME_CAPACITY {
                        names.clear();
                    }
                }
                names.insert(event_id, (now, found.0.clone(), found.1.clone()));
            }
            found
        }
        Err(_) => ("An event".to_owned(), String::new()),
    }
}

/// `GET /_/orders`: the caller's orders with their tickets' QR codes, for htmx.
pub async fn orders_fragment(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let list = match state
        .api
        .get::<OrderList>(&parts, "/api/orders/orders?size=50")
        .await
    {
        Ok(list) => list,
        Err(error) => {
            let fragment = OrdersList {
                signed_out: error.status == StatusCode::UNAUTHORIZED,
                error: Some(error.human()),
                orders: Vec::new(),
            };
            return html(&state.config, StatusCode::OK, fragment.render());
        }
    };
    let mut orders = Vec::with_capacity(list.orders.len());
    for order in list.orders {
        let (event_name, event_when) = event_name(&state, &parts, order.event_id).await;
        let tickets = order
            .tickets
            .iter()
            .map(|t| TicketRow {
                seat: seat_words(&t.seat_id),
                code: t.code.clone(),
                qr: crate::qr::svg(&t.code).unwrap_or_default(),
                valid: t.status.is_empty() || t.status == "valid",
            })
            .collect();
        orders.push(OrderRow {
            id: order.order_id,
            event_href: format!("/events/{}", order.event_id),
            event_name,
            event_when,
            amount: money(order.amount, &order.currency),
            cancellable: order.status == "confirmed",
            status: match order.status.as_str() {
                "confirmed" => "Confirmed".to_owned(),
                "cancelled" => "Cancelled and refunded".to_owned(),
                other => other.to_owned(),
            },
            bought: when(&order.created_at),
            tickets,
        });
    }
    let fragment = OrdersList {
        signed_out: false,
        error: None,
        orders,
    };
    html(&state.config, StatusCode::OK, fragment.render())
}

// ---- the organizer's live dashboard ------------------------------------------------------

/// One bar of the sales chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// "Mon 4 Jan 2027, 20:00 UTC: 3 tickets".
    pub label: String,
}

/// The sales chart, drawn on the server.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The event.
    pub event_id: Uuid,
    /// `hour | day | week`.
    pub interval: String,
    /// Its bars (none without sales).
    pub bars: Vec<Bar>,
    /// The drawing's width.
    pub width: u32,
    /// "12 tickets over 3 hours".
    pub summary: String,
}

impl Chart {
    fn of(figures: &EventAnalytics) -> Self {
        let total: i64 = figures.series.points.iter().map(|p| p.tickets_sold).sum();
        let (bars, width) = if total > 0 {
            bars(&figures.series.points)
        } else {
            (Vec::new(), 0)
        };
        Self {
            event_id: figures.event_id,
            interval: figures.series.interval.clone(),
            bars,
            width,
            summary: format!(
                "{total} tickets over {} {}s",
                figures.series.points.len(),
                figures.series.interval
            ),
        }
    }
}

/// An event's sales figures, updated live by the client module.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    layout: Layout,
    event_id: Uuid,
    name: String,
    status: &'static str,
    sold: i64,
    held: i64,
    available: i64,
    orders: i64,
    cancellations: i64,
    revenue: String,
    conversion: String,
    chart: Chart,
}

/// The sales chart alone, for htmx.
#[derive(Template)]
#[template(path = "dashboard_chart.html")]
pub struct ChartFragment {
    chart: Chart,
}

/// The sales chart's bars: one per point, scaled to the busiest.
fn bars(points: &[views::Point]) -> (Vec<Bar>, u32) {
    const STEP: u32 = 12;
    const HEIGHT: i64 = 100;
    let points = &points[points.len().saturating_sub(120)..];
    let top = points
        .iter()
        .map(|p| p.tickets_sold)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars = points
        .iter()
        .zip(0u32..)
        .map(|(p, i)| {
            let height = u32::try_from(p.tickets_sold.max(0) * HEIGHT / top).unwrap_or(0);
            Bar {
                x: i * STEP,
                y: 110 - height,
                width: STEP - 2,
                height,
                label: format!("{}: {} tickets", when(&p.start), p.tickets_sold),
            }
        })
        .collect::<Vec<_>>();
    // A short series keeps its bars narrow rather than stretched across the chart.
    let width = u32::try_from(bars.len()).unwrap_or(0) * STEP;
    (bars, width.max(24 * STEP))
}

/// `GET /dashboard/events/{id}`: an event's sales for its organizer (or an admin).
pub async fn dashboard_page(
    State(state): State<WebState>,
    Path(event_id): Path<Uuid>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    let path = format!("/api/analytics/events/{event_id}?interval=hour");
    let figures = match state.api.get::<EventAnalytics>(&parts, &path).await {
        Ok(figures) => figures,
        Err(error) => return failure(&state, layout, &error),
    };
    let page = DashboardPage {
        layout,
        event_id: figures.event_id,
        chart: Chart::of(&figures),
        name: figures.event_name,
        status: views::status_words(&figures.status),
        sold: figures.sold,
        held: figures.held,
        available: figures.available,
        orders: figures.orders,
        cancellations: figures.cancellations,
        revenue: revenue_words(&figures.revenue),
        conversion: figures
            .holds
            .conversion
            .map_or_else(|| "–".to_owned(), |c| format!("{:.0} %", c * 100.0)),
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// `GET /_/dashboard/events/{id}/chart`: the sales chart, redrawn by htmx when live figures
/// arrive (the page asks at most once every few seconds).
pub async fn chart_fragment(
    State(state): State<WebState>,
    Path(event_id): Path<Uuid>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let path = format!("/api/analytics/events/{event_id}?interval=hour");
    match state.api.get::<EventAnalytics>(&parts, &path).await {
        Ok(figures) => {
            let fragment = ChartFragment {
                chart: Chart::of(&figures),
            };
            html(&state.config, StatusCode::OK, fragment.render())
        }
        // The chart on the page stays as it was; htmx swaps nothing in on an error status.
        Err(error) => (error.status, ()).into_response(),
    }
}

// ---- recommendations ----------------------------------------------------------------------

/// A recommended event as shown.
#[derive(Debug, Clone)]
pub struct RecRow {
    /// Its page.
    pub href: String,
    /// Its name.
    pub name: String,
    /// When.
    pub when: String,
    /// City.
    pub city: String,
    /// Why, in words.
    pub reason: String,
}

/// A list of recommendations, for htmx.
#[derive(Template)]
#[template(path = "recs.html")]
pub struct RecsList {
    items: Vec<RecRow>,
    error: Option<String>,
}

async fn recommendations(
    state: &WebState,
    parts: &Parts,
    path: &str,
    this_event: Option<Uuid>,
) -> Response {
    let fragment = match state.api.get::<Recommendations>(parts, path).await {
        Ok(found) => {
            let mut items = Vec::with_capacity(found.items.len());
            for item in found.items {
                let other = match item.reason.event() {
                    Some(id) if Some(id) == this_event => "this event".to_owned(),
                    Some(id) => event_name(state, parts, id).await.0,
                    None => String::new(),
                };
                items.push(RecRow {
                    href: format!("/events/{}", item.event_id),
                    name: item.event_name,
                    when: when(&item.event_date),
                    city: item.city.unwrap_or_default(),
                    reason: item.reason.words(&other),
                });
            }
            RecsList { items, error: None }
        }
        Err(error) => RecsList {
            items: Vec::new(),
            error: Some(error.human()),
        },
    };
    html(&state.config, StatusCode::OK, fragment.render())
}

/// `GET /_/recs`: recommendations for the caller (popular events when signed out), for htmx.
pub async fn recs_fragment(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    recommendations(&state, &parts, "/api/recs?limit=4", None).await
}

/// `GET /_/events/{id}/related`: events like this one, for htmx.
pub async fn related_fragment(
    State(state): State<WebState>,
    Path(event_id): Path<Uuid>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let path = format!("/api/recs/related?eventId={event_id}&limit=4");
    recommendations(&state, &parts, &path, Some(event_id)).await
}

// ---- accounts ---------------------------------------------------------------------------

/// The sign-in and sign-up forms (the client module sends them to `/api/auth/…`).
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    layout: Layout,
    signup: bool,
    next: String,
}

/// Where to go after signing in: a path of this site, else the event list.
fn next_path(raw: Option<&str>) -> String {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .filter(|v| v.starts_with('/') && !v.starts_with("//") && !v.contains('\\'))
        .unwrap_or_else(|| "/".to_owned())
}

/// `GET /signin`.
pub async fn signin_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let page = AccountPage {
        layout: Layout::of(&parts),
        signup: false,
        next: next_path(parts.uri.query()),
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// The profile form (filled and saved by the client module: personal data is read after the
/// page, with the session).
#[derive(Template)]
#[template(path = "profile.html")]
pub struct ProfilePage {
    layout: Layout,
}

/// `GET /profile`.
pub async fn profile_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let page = ProfilePage {
        layout: Layout::of(&parts),
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// The preferences form (filled and saved by the client module, like the profile).
#[derive(Template)]
#[template(path = "preferences.html")]
pub struct PreferencesPage {
    layout: Layout,
}

/// `GET /preferences`.
pub async fn preferences_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let page = PreferencesPage {
        layout: Layout::of(&parts),
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// `GET /signup`.
pub async fn signup_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let page = AccountPage {
        layout: Layout::of(&parts),
        signup: true,
        next: next_path(parts.uri.query()),
    };
    html(&state.config, StatusCode::OK, page.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(next_path(Some("next=%2Forders")), "/orders");
        assert_eq!(next_path(Some("next=%2F%2Fevil.example")), "/");
        assert_eq!(next_path(Some("next=https://evil.example")), "/");
        assert_eq!(next_path(None), "/");
    }

    #[test]
    fn the_search_form_round_trips_through_the_address_bar() {
        let form = SearchForm::parse(Some("q=sonatta&city=Lisbon&hasSeats=true&sort=date&x=1"));

        assert_eq!(form.q, "sonatta");
        assert_eq!(
            form.page_query(0),
            "q=sonatta&city=Lisbon&hasSeats=true&sort=date"
        );
        assert!(
            form.api_query()
                .starts_with("/api/search/events?q=sonatta&city=Lisbon")
        );
    }

    #[test]
    fn seat_ids_read_as_words() {
        assert_eq!(seat_words("A-3-12"), "Section A, row 3, seat 12");
        assert_eq!(seat_words("GA-7"), "GA-7");
    }
}
