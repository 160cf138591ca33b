//! `/api/events`: create (organizers and admins), list and get (public), update, status
//! change and delete (the owning organizer or an admin).

use axum::extract::State;
use axum::http::StatusCode;
use evently_core::Problem;
use evently_core::extract::{Json, Path, Query};
use evently_core::identity::Identity;
use evently_core::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::{EventsState, PageInfo, double_option, rfc3339};
use crate::domain::{
    Event, EventDraft, EventFilter, EventId, EventPatch, EventStatus, EventType, VenueId, to_ms,
};
use crate::error::EventsError;
use crate::service::VenueChoice;

/// `POST /api/events`. Give `venueId` (a venue record) or `venueName` (general admission with
/// `totalSeats` places). Prices are integer minor units of `currency`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEventRequest {
    /// Title, 1 to 200 characters.
    #[schema(
        example = "Taylor Swift - Eras Tour",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub event_name: String,
    /// When it takes place (RFC 3339, in the future).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2030-12-05T19:00:00Z")]
    pub event_date: OffsetDateTime,
    /// A venue record.
    #[serde(default)]
    pub venue_id: Option<VenueId>,
    /// A venue name without a record.
    #[serde(default)]
    #[schema(
        example = "Lumen Field",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub venue_name: Option<String>,
    /// Places (general admission); with a reserved-seating venue it must equal its seats.
    #[serde(default, deserialize_with = "evently_core::extract::opt_int")]
    #[schema(example = 50000, minimum = 1, maximum = 1_000_000)]
    pub total_seats: Option<i64>,
    /// `UPCOMING` (default) or `ON_SALE`.
    #[serde(default)]
    pub status: Option<EventStatus>,
    /// When the sale opens (before the event); an UPCOMING event goes ON_SALE then.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-01T10:00:00Z")]
    pub sale_start_time: OffsetDateTime,
    /// When the sale closes (after it opens, no later than the event).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_end_time: Option<OffsetDateTime>,
    /// Up to 5000 characters.
    #[serde(default)]
    #[schema(max_length = 5000, pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub description: Option<String>,
    /// Kind of event.
    #[serde(default)]
    pub event_type: Option<EventType>,
    /// Up to 20 tags.
    #[serde(default)]
    #[schema(max_items = 20, inline, value_type = Vec<Tag>)]
    pub tags: Vec<String>,
    /// Price of every seat in minor units (e.g. cents).
    #[serde(deserialize_with = "evently_core::extract::int")]
    #[schema(example = 12500, minimum = 0, maximum = 1_000_000_000)]
    pub base_price: i64,
    /// ISO 4217 code.
    #[schema(example = "USD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// Per-section price overrides in minor units (reserved seating only).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Price>)]
    pub section_prices: BTreeMap<String, i64>,
    /// The IANA time zone the event's local times follow (`Europe/Berlin`); `UTC` by default.
    /// Analytics rolls the event's sales up to local hours, days and weeks in it.
    #[serde(default)]
    #[schema(example = "Europe/Berlin", min_length = 1, max_length = 64)]
    pub time_zone: Option<String>,
}

impl CreateEventRequest {
    /// The draft, venue and initial status this request asks for: the parsing every
    /// creation path shares (`POST /api/events`, and imports through the data service).
    ///
    /// # Errors
    /// 422 when neither or both of `venueId` and `venueName` are given.
    pub fn into_parts(self) -> Result<(EventDraft, VenueChoice, EventStatus), Problem> {
        let venue = match (self.venue_id, self.venue_name) {
            (Some(id), None) => VenueChoice::Id(id),
            (None, Some(name)) => VenueChoice::Name(name),
            _ => {
                return Err(Problem::invalid_field(
                    "/venueId",
                    "give exactly one of venueId and venueName",
                ));
            }
        };
        let draft = EventDraft {
            name: self.event_name,
            description: self.description,
            event_date: to_ms(self.event_date),
            sale_start: to_ms(self.sale_start_time),
            sale_end: self.sale_end_time.map(to_ms),
            event_type: self.event_type,
            tags: self.tags,
            total_seats: self.total_seats,
            base_price: self.base_price,
            currency: self.currency,
            section_prices: self.section_prices,
            time_zone: self.time_zone.unwrap_or_else(|| "UTC".to_owned()),
        };
        Ok((draft, venue, self.status.unwrap_or(EventStatus::Upcoming)))
    }
}

/// `PUT /api/events/{eventId}`: every field present replaces the current one (`null` clears
/// `description` and `saleEndTime`); `status` goes through the status machine. Every field of
/// the event's representation an organizer may change is accepted, so a client can PUT back
/// what it read; the read-only ones (`eventId`, `organizerId`, `availableSeats`, `version`,
/// `createdAt`, `updatedAt`) are refused with 422 naming the field. An event stays at its
/// venue: `venueId` and `city` are accepted unchanged only, and `venueName` renames only an
/// event named by its venue alone.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateEventRequest {
    /// Title.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub event_name: Option<String>,
    /// Date (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub event_date: Option<OffsetDateTime>,
    /// Sale start (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_start_time: Option<OffsetDateTime>,
    /// Sale end (RFC 3339); `null` removes it.
    #[serde(default, deserialize_with = "double_option_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sale_end_time: Option<Option<OffsetDateTime>>,
    /// Description; `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 5000, pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub description: Option<Option<String>>,
    /// Kind of event.
    #[serde(default)]
    pub event_type: Option<EventType>,
    /// Tags (replaces them all).
    #[serde(default)]
    #[schema(max_items = 20, value_type = Option<Vec<Tag>>)]
    pub tags: Option<Vec<String>>,
    /// Places (general admission); fixed once the event is ON_SALE or SOLD_OUT, since
    /// booking owns its inventory from then on.
    #[serde(default, deserialize_with = "evently_core::extract::opt_int")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub total_seats: Option<i64>,
    /// Base price in minor units.
    #[serde(default, deserialize_with = "evently_core::extract::opt_int")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub base_price: Option<i64>,
    /// ISO 4217 code.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Per-section prices (replaces them all).
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, Price>>)]
    pub section_prices: Option<BTreeMap<String, i64>>,
    /// The IANA time zone (`Europe/Berlin`).
    #[serde(default)]
    #[schema(example = "Europe/Berlin", min_length = 1, max_length = 64)]
    pub time_zone: Option<String>,
    /// New status.
    #[serde(default)]
    pub status: Option<EventStatus>,
    /// The venue record (unchanged only).
    #[serde(default)]
    pub venue_id: Option<VenueId>,
    /// The venue's name (a new one only for an event without a venue record).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub venue_name: Option<String>,
    /// The venue's city (unchanged only).
    #[serde(default)]
    pub city: Option<String>,
}

impl UpdateEventRequest {
    /// The change this request asks for (times as epoch ms).
    pub fn into_patch(self) -> EventPatch {
        EventPatch {
            name: self.event_name,
            description: self.description,
            event_date: self.event_date.map(to_ms),
            sale_start: self.sale_start_time.map(to_ms),
            sale_end: self.sale_end_time.map(|t| t.map(to_ms)),
            event_type: self.event_type,
            tags: self.tags,
            total_seats: self.total_seats,
            base_price: self.base_price,
            currency: self.currency,
            section_prices: self.section_prices,
            time_zone: self.time_zone,
            status: self.status,
            venue_id: self.venue_id,
            venue_name: self.venue_name,
            city: self.city,
        }
    }
}

/// A tag, as the schema of request bodies describes it: 1 to 40 characters, not blank, no
/// control characters but tab and newline (stored lower-cased).
#[derive(ToSchema)]
#[schema(
    min_length = 1,
    max_length = 40,
    pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
)]
#[allow(dead_code)]
struct Tag(String);

/// A price in minor units, as the schema of request bodies describes it.
#[derive(ToSchema)]
#[schema(minimum = 0, maximum = 1_000_000_000)]
#[allow(dead_code)]
struct Price(i64);

fn double_option_time<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    time::serde::rfc3339::option::deserialize(d).map(Some)
}

/// `PUT /api/events/{eventId}/status`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeStatusRequest {
    /// The new status.
    pub status: EventStatus,
}

/// An event as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    /// Id.
    pub event_id: EventId,
    /// Title.
    pub event_name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it takes place (RFC 3339).
    pub event_date: String,
    /// The venue record, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue_id: Option<VenueId>,
    /// Venue name.
    pub venue_name: String,
    /// Venue city.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Kind of event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventType>,
    /// Tags.
    pub tags: Vec<String>,
    /// Status.
    pub status: EventStatus,
    /// Seats in total.
    pub total_seats: i64,
    /// Seats neither sold nor held, as booking last reported them (every seat before the
    /// first report).
    pub available_seats: i64,
    /// Sale start (RFC 3339).
    pub sale_start_time: String,
    /// Sale end (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_end_time: Option<String>,
    /// Base price in minor units.
    pub base_price: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Per-section prices in minor units.
    pub section_prices: BTreeMap<String, i64>,
    /// The IANA time zone its local times follow.
    #[schema(example = "Europe/Berlin")]
    pub time_zone: String,
    /// The owner.
    pub organizer_id: UserId,
    /// Increases with every change.
    pub version: i64,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl From<Event> for EventResponse {
    fn from(e: Event) -> Self {
        Self {
            available_seats: e.available_seats(),
            event_id: e.id,
            event_name: e.name,
            description: e.description,
            event_date: rfc3339(e.event_date),
            venue_id: e.venue_id,
            venue_name: e.venue_name,
            city: e.city,
            event_type: e.event_type,
            tags: e.tags,
            status: e.status,
            total_seats: e.total_seats,
            sale_start_time: rfc3339(e.sale_start),
            sale_end_time: e.sale_end.map(rfc3339),
            base_price: e.base_price,
            currency: e.currency,
            section_prices: e.section_prices,
            time_zone: e.time_zone,
            organizer_id: e.organizer_id,
            version: e.version,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    /// The events, by date.
    pub events: Vec<EventResponse>,
    /// Where this page sits.
    pub page: PageInfo,
}

/// `GET /api/events` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEventsQuery {
    /// Page number, from 0.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub page: Option<u32>,
    /// Page size, 1 to the configured maximum (100 by default).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<u32>,
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only events on or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Only events on or before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Only events in this city (case-insensitive).
    pub city: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<EventType>,
}

fn parse_time(name: &str, raw: &str) -> Result<i64, Problem> {
    OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(to_ms)
        .map_err(|_| Problem::invalid_field(name, "must be an RFC 3339 date-time"))
}

/// The filter of the event list's parameters (`status`, `from`, `to`, `city`, `type`), as
/// every listing of events reads them (`GET /api/events`, and exports through the data
/// service); `None` when no event can match.
///
/// # Errors
/// 422 for a `from` or `to` that is not RFC 3339.
pub fn event_filter(
    status: Option<EventStatus>,
    from: Option<&str>,
    to: Option<&str>,
    city: Option<String>,
    event_type: Option<EventType>,
) -> Result<Option<EventFilter>, Problem> {
    let filter = EventFilter {
        status,
        from: from.map(|t| parse_time("from", t)).transpose()?,
        to: to.map(|t| parse_time("to", t)).transpose()?,
        city: city.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()),
        event_type,
    };
    // A stored city never holds a control character (venues and events are validated), and
    // PostgreSQL refuses NUL in text: such a filter matches nothing, without a query.
    let impossible = filter
        .city
        .as_deref()
        .is_some_and(|c| c.chars().any(char::is_control));
    Ok((!impossible).then_some(filter))
}

const PROBLEM: &str = "application/problem+json";

/// Create an event (organizers and admins); the caller owns it.
#[utoipa::path(post, path = "/api/events", tag = "events", security(("bearer" = [])),
    request_body = CreateEventRequest,
    responses(
        (status = 201, description = "Created", body = EventResponse),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not an organizer or admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn create_event(
    State(state): State<EventsState>,
    identity: Identity,
    Json(body): Json<CreateEventRequest>,
) -> Result<(StatusCode, axum::Json<EventResponse>), EventsError> {
    let (draft, venue, status) = body.into_parts()?;
    let event = state
        .service
        .create_event(&identity, draft, venue, status)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(event.into())))
}

/// List events (public), by date, with filters.
#[utoipa::path(get, path = "/api/events", tag = "events", params(ListEventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 400, description = "Malformed parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Parameter out of bounds", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn list_events(
    State(state): State<EventsState>,
    Query(query): Query<ListEventsQuery>,
) -> Result<axum::Json<EventList>, EventsError> {
    let page = super::page(&state.config, query.page, query.size)?;
    let filter = event_filter(
        query.status,
        query.from.as_deref(),
        query.to.as_deref(),
        query.city,
        query.event_type,
    )?;
    let (events, total) = match filter {
        None => (Vec::new(), 0),
        Some(filter) => state.service.list_events(&filter, page).await?,
    };
    Ok(axum::Json(EventList {
        events: events.into_iter().map(Into::into).collect(),
        page: PageInfo {
            number: page.number,
            size: page.size,
            total_elements: total,
            total_pages: page.total_pages(total),
        },
    }))
}

/// One event (public).
#[utoipa::path(get, path = "/api/events/{eventId}", tag = "events",
    params(("eventId" = Uuid, Path, description = "The event's id")),
    responses(
        (status = 200, description = "The event", body = EventResponse),
        (status = 400, description = "Malformed id", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn get_event(
    State(state): State<EventsState>,
    Path(id): Path<EventId>,
) -> Result<axum::Json<EventResponse>, EventsError> {
    Ok(axum::Json(state.service.event(id).await?.into()))
}

/// Change an event's details (and status) — its organizer or an admin.
#[utoipa::path(put, path = "/api/events/{eventId}", tag = "events", security(("bearer" = [])),
    params(("eventId" = Uuid, Path, description = "The event's id")),
    request_body = UpdateEventRequest,
    responses(
        (status = 200, description = "The updated event", body = EventResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not the organizer or an admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 409, description = "Illegal status change, the event is cancelled, or `totalSeats` changed once the sale may have started (`capacity-locked`)", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn update_event(
    State(state): State<EventsState>,
    identity: Identity,
    Path(id): Path<EventId>,
    Json(body): Json<UpdateEventRequest>,
) -> Result<axum::Json<EventResponse>, EventsError> {
    let patch = body.into_patch();
    let event = state.service.update_event(&identity, id, &patch).await?;
    Ok(axum::Json(event.into()))
}

/// Change an event's status — its organizer or an admin. `UPCOMING → ON_SALE → SOLD_OUT`,
/// `SOLD_OUT → ON_SALE`, and anything but `CANCELLED` → `CANCELLED`; other changes are 409.
#[utoipa::path(put, path = "/api/events/{eventId}/status", tag = "events", security(("bearer" = [])),
    params(("eventId" = Uuid, Path, description = "The event's id")),
    request_body = ChangeStatusRequest,
    responses(
        (status = 200, description = "The event with its new status", body = EventResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not the organizer or an admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 409, description = "Illegal transition; `allowed` lists the legal targets", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Unknown status", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn change_status(
    State(state): State<EventsState>,
    identity: Identity,
    Path(id): Path<EventId>,
    Json(body): Json<ChangeStatusRequest>,
) -> Result<axum::Json<EventResponse>, EventsError> {
    let event = state
        .service
        .change_status(&identity, id, body.status)
        .await?;
    Ok(axum::Json(event.into()))
}

/// Delete an event — its organizer or an admin.
#[utoipa::path(delete, path = "/api/events/{eventId}", tag = "events", security(("bearer" = [])),
    params(("eventId" = Uuid, Path, description = "The event's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not the organizer or an admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn delete_event(
    State(state): State<EventsState>,
    identity: Identity,
    Path(id): Path<EventId>,
) -> Result<StatusCode, EventsError> {
    state.service.delete_event(&identity, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::{CreateEventRequest, UpdateEventRequest};
    use crate::domain::event::{MAX_DESCRIPTION, MAX_PRICE, MAX_TAGS};
    use crate::domain::venue::MAX_CAPACITY;
    use serde_json::Value;

    fn schema<T: utoipa::PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    /// The bounds the schema publishes are the ones the domain enforces.
    #[test]
    fn the_schema_states_the_event_rules() {
        for request in [
            schema::<CreateEventRequest>(),
            schema::<UpdateEventRequest>(),
        ] {
            let p = &request["properties"];
            assert_eq!(p["description"]["maxLength"], MAX_DESCRIPTION);
            assert_eq!(p["tags"]["maxItems"], MAX_TAGS);
            assert_eq!(p["basePrice"]["maximum"], MAX_PRICE);
            assert_eq!(p["totalSeats"]["maximum"], MAX_CAPACITY);
            assert_eq!(p["eventName"]["maxLength"], 200);
            assert_eq!(p["currency"]["pattern"], "^[A-Z]{3}$");
            assert_eq!(request["additionalProperties"], false);
        }
    }

    mod parser_properties {
        use super::super::{ChangeStatusRequest, CreateEventRequest, UpdateEventRequest};
        use crate::http::venues::CreateVenueRequest;
        use evently_core::extract::from_json_slice;
        use proptest::prelude::*;

        fn refused_as_400_or_422<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
            from_json_slice::<T>(bytes)
                .err()
                .is_none_or(|p| matches!(p.status().as_u16(), 400 | 422))
        }

        proptest! {
            // A fixed budget, so `cargo test` stays quick; the fuzz targets run longer.
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any bytes as an events or venues body are the DTO, a 400 or a 422.
            #[test]
            fn any_events_body_is_a_dto_or_a_400_or_422(
                bytes in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                prop_assert!(refused_as_400_or_422::<CreateEventRequest>(&bytes));
                prop_assert!(refused_as_400_or_422::<UpdateEventRequest>(&bytes));
                prop_assert!(refused_as_400_or_422::<ChangeStatusRequest>(&bytes));
                prop_assert!(refused_as_400_or_422::<CreateVenueRequest>(&bytes));
            }

            /// An update of any field values parses to a patch or a 422; the times of a patch
            /// are the body's, in epoch ms.
            #[test]
            fn event_updates_parse_to_their_patch(
                name in proptest::option::of("\\PC{0,20}"),
                date in proptest::option::of(0i64..4_000_000_000),
                seats in proptest::option::of(any::<i64>()),
                tags in proptest::option::of(proptest::collection::vec("\\PC{0,8}", 0..4)),
            ) {
                let mut body = serde_json::Map::new();
                if let Some(n) = &name { body.insert("eventName".into(), n.clone().into()); }
                if let Some(d) = date {
                    let t = time::OffsetDateTime::from_unix_timestamp(d).unwrap();
                    let text = t.format(&time::format_description::well_known::Rfc3339).unwrap();
                    body.insert("eventDate".into(), text.into());
                }
                if let Some(s) = seats { body.insert("totalSeats".into(), s.into()); }
                if let Some(t) = &tags { body.insert("tags".into(), t.clone().into()); }
                let bytes = serde_json::Value::Object(body).to_string();
                let patch = from_json_slice::<UpdateEventRequest>(bytes.as_bytes()).unwrap().into_patch();
                prop_assert_eq!(patch.name, name);
                prop_assert_eq!(patch.event_date, date.map(|d| d * 1000));
                prop_assert_eq!(patch.total_seats, seats);
                prop_assert_eq!(patch.tags, tags);
            }
        }
    }
}
