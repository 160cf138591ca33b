//! The organizer's pages: their events with status changes, venues with the layout editor,
//! and the event form. Each handler reads through [`Api`](crate::api::Api) like every page;
//! the forms and buttons send their changes from the client module to `/api/venues`,
//! `/api/events` and `/api/events/{id}/status`.

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use uuid::Uuid;

use crate::api::{ApiError, ProblemBody};
use crate::pages::{Layout, WebState, failure, html};
use crate::views::{
    self, EventDetail, EventList, Me, Venue, VenueList, local_input, money, units, when,
};

/// Most pages of events or venues a page reads (100 each).
const MAX_PAGES: u32 = 10;

/// The event types the API knows, with their words.
const EVENT_TYPES: [(&str, &str); 8] = [
    ("concert", "Concert"),
    ("sports", "Sports"),
    ("theatre", "Theatre"),
    ("comedy", "Comedy"),
    ("conference", "Conference"),
    ("festival", "Festival"),
    ("workshop", "Workshop"),
    ("other", "Other"),
];

/// The caller, when they are an organizer or an admin; the page to show otherwise.
async fn organizer(state: &WebState, parts: &Parts, layout: &Layout) -> Result<Me, Response> {
    let me = state
        .api
        .get::<Me>(parts, "/api/auth/me")
        .await
        .map_err(|error| failure(state, layout.clone(), &error))?;
    if matches!(me.role.as_str(), "organizer" | "admin") {
        return Ok(me);
    }
    let refused = ApiError {
        status: StatusCode::FORBIDDEN,
        problem: ProblemBody {
            detail: Some(
                "These pages are for organizers. An admin can make your account an organizer's."
                    .to_owned(),
            ),
            ..ProblemBody::default()
        },
        retry_after: None,
    };
    Err(failure(state, layout.clone(), &refused))
}

/// Every item of the paged list at `list` (the first [`MAX_PAGES`] pages of 100); `split`
/// takes a page apart into its items and the number of pages.
async fn all_pages<L: serde::de::DeserializeOwned, T>(
    state: &WebState,
    parts: &Parts,
    list: &str,
    split: fn(L) -> (Vec<T>, u64),
) -> Result<Vec<T>, ApiError> {
    let mut items = Vec::new();
    for page in 0..MAX_PAGES {
        let answer: L = state
            .api
            .get(parts, &format!("{list}?size=100&page={page}"))
            .await?;
        let (more, total_pages) = split(answer);
        items.extend(more);
        if u64::from(page) + 1 >= total_pages {
            break;
        }
    }
    Ok(items)
}

/// Every event (the first [`MAX_PAGES`] pages).
async fn all_events(state: &WebState, parts: &Parts) -> Result<Vec<EventDetail>, ApiError> {
    all_pages(state, parts, "/api/events", |l: EventList| {
        (l.events, l.page.total_pages)
    })
    .await
}

/// Every venue (the first [`MAX_PAGES`] pages).
async fn all_venues(state: &WebState, parts: &Parts) -> Result<Vec<Venue>, ApiError> {
    all_pages(state, parts, "/api/venues", |l: VenueList| {
        (l.venues, l.page.total_pages)
    })
    .await
}

// ---- my events --------------------------------------------------------------------------

/// One of the organizer's events as listed.
#[derive(Debug, Clone)]
pub struct MyEventRow {
    /// The event.
    pub id: Uuid,
    /// Title.
    pub name: String,
    /// When.
    pub when: String,
    /// Where.
    pub place: String,
    /// Status in words.
    pub status: &'static str,
    /// The wire status.
    pub status_code: String,
    /// "12 of 40 seats left".
    pub seats: String,
    /// "from €25".
    pub price: String,
    /// Whether it may be put on sale now.
    pub can_open: bool,
    /// Whether it may be cancelled.
    pub can_cancel: bool,
}

/// The organizer's events.
#[derive(Template)]
#[template(path = "my_events.html")]
pub struct MyEventsPage {
    layout: Layout,
    admin: bool,
    events: Vec<MyEventRow>,
}

/// `GET /organizer/events`: the caller's events (every event for an admin) with their status.
pub async fn my_events_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    let me = match organizer(&state, &parts, &layout).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let admin = me.role == "admin";
    let events = match all_events(&state, &parts).await {
        Ok(events) => events,
        Err(error) => return failure(&state, layout, &error),
    };
    let events = events
        .into_iter()
        .filter(|e| admin || e.organizer_id == me.user_id)
        .map(|e| MyEventRow {
            id: e.event_id,
            when: when(&e.event_date),
            place: [e.venue_name.clone(), e.city.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            status: views::status_words(&e.status),
            seats: match e.total_seats {
                Some(total) => format!("{} of {total} seats left", e.available_seats),
                None => format!("{} seats left", e.available_seats),
            },
            price: format!("from {}", money(e.base_price, &e.currency)),
            can_open: e.status == "UPCOMING",
            can_cancel: e.status != "CANCELLED",
            status_code: e.status,
            name: e.event_name,
        })
        .collect();
    let page = MyEventsPage {
        layout,
        admin,
        events,
    };
    html(&state.config, StatusCode::OK, page.render())
}

// ---- venues -----------------------------------------------------------------------------

/// A venue as listed.
#[derive(Debug, Clone)]
pub struct VenueRow {
    /// Name.
    pub name: String,
    /// Address and city.
    pub place: String,
    /// "3 sections, 120 seats" or "General admission, 500 places".
    pub seating: String,
}

/// The venues and the form for a new one.
#[derive(Template)]
#[template(path = "venues.html")]
pub struct VenuesPage {
    layout: Layout,
    venues: Vec<VenueRow>,
}

/// `GET /organizer/venues`.
pub async fn venues_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    if let Err(page) = organizer(&state, &parts, &layout).await {
        return page;
    }
    let venues = match all_venues(&state, &parts).await {
        Ok(venues) => venues,
        Err(error) => return failure(&state, layout, &error),
    };
    let venues = venues
        .into_iter()
        .map(|v| VenueRow {
            seating: match &v.layout {
                Some(layout) => {
                    let n = layout.sections.len();
                    format!(
                        "{n} section{}, {} seats",
                        if n == 1 { "" } else { "s" },
                        v.capacity
                    )
                }
                None => format!("General admission, {} places", v.capacity),
            },
            place: format!("{}, {}", v.address, v.city),
            name: v.name,
        })
        .collect();
    let page = VenuesPage { layout, venues };
    html(&state.config, StatusCode::OK, page.render())
}

// ---- the event form ---------------------------------------------------------------------

/// A venue offered by the event form.
#[derive(Debug, Clone)]
pub struct VenueOption {
    /// The venue.
    pub id: Uuid,
    /// "Harbour Hall, Lisbon (120 seats)".
    pub label: String,
    /// Its sections, `|`-separated (empty for general admission).
    pub sections: String,
    /// Whether the event is there.
    pub selected: bool,
}

/// An event type offered by the form.
#[derive(Debug, Clone)]
pub struct TypeOption {
    /// The wire value.
    pub value: &'static str,
    /// Its words.
    pub label: &'static str,
    /// Whether the event is of it.
    pub selected: bool,
}

/// What the event form holds.
#[derive(Debug, Clone, Default)]
pub struct EventFields {
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Start, as a `datetime-local` value in UTC.
    pub date: String,
    /// Sale start, likewise.
    pub sale_start: String,
    /// Sale end, likewise.
    pub sale_end: String,
    /// Base price in units.
    pub base_price: String,
    /// Currency.
    pub currency: String,
    /// The IANA time zone.
    pub time_zone: String,
    /// Tags, comma-separated.
    pub tags: String,
    /// The venue's name without a record.
    pub venue_name: String,
    /// Places without a venue record.
    pub total_seats: String,
    /// Per-section prices in units, `section=price` joined by `|`.
    pub section_prices: String,
}

/// The event form, to create or edit.
#[derive(Template)]
#[template(path = "event_form.html")]
pub struct EventFormPage {
    layout: Layout,
    /// The event edited; `None` for a new one.
    event_id: Option<Uuid>,
    fields: EventFields,
    venues: Vec<VenueOption>,
    types: Vec<TypeOption>,
    /// Whether the event has no venue record.
    no_venue: bool,
}

fn type_options(current: Option<&str>) -> Vec<TypeOption> {
    EVENT_TYPES
        .iter()
        .map(|&(value, label)| TypeOption {
            value,
            label,
            selected: current == Some(value),
        })
        .collect()
}

fn venue_options(venues: &[Venue], current: Option<Uuid>) -> Vec<VenueOption> {
    venues
        .iter()
        .map(|v| VenueOption {
            id: v.venue_id,
            label: format!("{}, {} ({} seats)", v.name, v.city, v.capacity),
            sections: v
                .layout
                .as_ref()
                .map(|l| {
                    l.sections
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .unwrap_or_default(),
            selected: current == Some(v.venue_id),
        })
        .collect()
}

/// `GET /organizer/events/new`, with `?venue=` the venue to propose.
pub async fn new_event_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let proposed = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "venue")
        .and_then(|(_, value)| Uuid::parse_str(&value).ok());
    let layout = Layout::of(&parts);
    if let Err(page) = organizer(&state, &parts, &layout).await {
        return page;
    }
    let venues = match all_venues(&state, &parts).await {
        Ok(venues) => venues,
        Err(error) => return failure(&state, layout, &error),
    };
    let page = EventFormPage {
        layout,
        event_id: None,
        fields: EventFields {
            currency: "EUR".to_owned(),
            time_zone: "UTC".to_owned(),
            ..EventFields::default()
        },
        no_venue: venues.is_empty(),
        venues: venue_options(&venues, proposed),
        types: type_options(None),
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// `GET /organizer/events/{id}/edit`.
pub async fn edit_event_page(
    State(state): State<WebState>,
    Path(event_id): Path<Uuid>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    if let Err(page) = organizer(&state, &parts, &layout).await {
        return page;
    }
    let path = format!("/api/events/{event_id}");
    let (event, venues) = tokio::join!(
        state.api.get::<EventDetail>(&parts, &path),
        all_venues(&state, &parts),
    );
    let (event, venues) = match (event, venues) {
        (Ok(event), Ok(venues)) => (event, venues),
        (Err(error), _) | (_, Err(error)) => return failure(&state, layout, &error),
    };
    let page = EventFormPage {
        layout,
        event_id: Some(event.event_id),
        fields: EventFields {
            name: event.event_name.clone(),
            description: event.description.clone().unwrap_or_default(),
            date: local_input(&event.event_date),
            sale_start: local_input(&event.sale_start_time),
            sale_end: event
                .sale_end_time
                .as_deref()
                .map(local_input)
                .unwrap_or_default(),
            base_price: units(event.base_price),
            currency: event.currency.clone(),
            time_zone: event.time_zone.clone(),
            tags: event.tags.join(", "),
            venue_name: event.venue_name.clone().unwrap_or_default(),
            total_seats: event.total_seats.map(|n| n.to_string()).unwrap_or_default(),
            section_prices: event
                .section_prices
                .iter()
                .map(|(section, price)| format!("{section}={}", units(*price)))
                .collect::<Vec<_>>()
                .join("|"),
        },
        no_venue: event.venue_id.is_none(),
        venues: venue_options(&venues, event.venue_id),
        types: type_options(event.event_type.as_deref()),
    };
    html(&state.config, StatusCode::OK, page.render())
}

// ---- import and export ------------------------------------------------------------------

/// An event offered for an orders export.
#[derive(Debug, Clone)]
pub struct ExportOption {
    /// The event.
    pub id: Uuid,
    /// "Gala (Mon 4 Jan 2027, 20:00 UTC)".
    pub label: String,
}

/// The import form and the export links.
#[derive(Template)]
#[template(path = "data.html")]
pub struct DataPage {
    layout: Layout,
    events: Vec<ExportOption>,
}

/// `GET /organizer/data`: import events from a CSV or XLSX file; export events and orders.
pub async fn data_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    let me = match organizer(&state, &parts, &layout).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let events = match all_events(&state, &parts).await {
        Ok(events) => events,
        Err(error) => return failure(&state, layout, &error),
    };
    let events = events
        .into_iter()
        .filter(|e| me.role == "admin" || e.organizer_id == me.user_id)
        .map(|e| ExportOption {
            id: e.event_id,
            label: format!("{} ({})", e.event_name, when(&e.event_date)),
        })
        .collect();
    html(
        &state.config,
        StatusCode::OK,
        DataPage { layout, events }.render(),
    )
}
