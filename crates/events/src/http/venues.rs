//! `/api/venues`: create (organizers and admins), list and get (public).

use axum::extract::State;
use axum::http::StatusCode;
use evently_core::extract::{Json, Path, Query};
use evently_core::identity::Identity;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{EventsState, PageInfo, rfc3339};
use crate::domain::{Layout, Seating, Venue, VenueId, VenueInput};
use crate::error::EventsError;

/// `POST /api/venues`: either `capacity` (general admission) or `layout` (reserved seating).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVenueRequest {
    /// Name, 1 to 200 characters.
    #[schema(
        example = "Lumen Field",
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Street address.
    #[schema(
        example = "800 Occidental Ave S",
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub address: String,
    /// City.
    #[schema(
        example = "Seattle",
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub city: String,
    /// General-admission capacity, 1 to 1000000.
    #[serde(default, deserialize_with = "evently_core::extract::opt_int")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub capacity: Option<i64>,
    /// Reserved seating: sections → rows with a seat count.
    #[serde(default)]
    pub layout: Option<Layout>,
}

/// A venue as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VenueResponse {
    /// Id.
    pub venue_id: VenueId,
    /// Name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// Seats in total.
    pub capacity: i64,
    /// The layout, for reserved seating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl From<Venue> for VenueResponse {
    fn from(v: Venue) -> Self {
        let capacity = v.seating.capacity();
        Self {
            venue_id: v.id,
            name: v.name,
            address: v.address,
            city: v.city,
            capacity,
            layout: match v.seating {
                Seating::General { .. } => None,
                Seating::Reserved(l) => Some(l),
            },
            created_at: rfc3339(v.created_at),
        }
    }
}

/// A page of venues.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VenueList {
    /// The venues.
    pub venues: Vec<VenueResponse>,
    /// Where this page sits.
    pub page: PageInfo,
}

/// `GET /api/venues` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListVenuesQuery {
    /// Page number, from 0.
    #[param(minimum = 0, maximum = 1_000_000)]
    pub page: Option<u32>,
    /// Page size, 1 to the configured maximum (100 by default).
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<u32>,
}

/// Create a venue (organizers and admins).
#[utoipa::path(post, path = "/api/venues", tag = "venues", security(("bearer" = [])),
    request_body = CreateVenueRequest,
    responses(
        (status = 201, description = "Created", body = VenueResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an organizer or admin", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn create_venue(
    State(state): State<EventsState>,
    identity: Identity,
    Json(body): Json<CreateVenueRequest>,
) -> Result<(StatusCode, axum::Json<VenueResponse>), EventsError> {
    let venue = state
        .service
        .create_venue(
            &identity,
            VenueInput {
                name: body.name,
                address: body.address,
                city: body.city,
                capacity: body.capacity,
                layout: body.layout,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(venue.into())))
}

/// List venues (public).
#[utoipa::path(get, path = "/api/venues", tag = "venues", params(ListVenuesQuery),
    responses(
        (status = 200, description = "A page of venues", body = VenueList),
        (status = 422, description = "Page size out of bounds", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_venues(
    State(state): State<EventsState>,
    Query(query): Query<ListVenuesQuery>,
) -> Result<axum::Json<VenueList>, EventsError> {
    let page = super::page(&state.config, query.page, query.size)?;
    let (venues, total) = state.service.list_venues(page).await?;
    Ok(axum::Json(VenueList {
        venues: venues.into_iter().map(Into::into).collect(),
        page: PageInfo {
            number: page.number,
            size: page.size,
            total_elements: total,
            total_pages: page.total_pages(total),
        },
    }))
}

/// One venue (public).
#[utoipa::path(get, path = "/api/venues/{venueId}", tag = "venues",
    params(("venueId" = Uuid, Path, description = "The venue's id")),
    responses(
        (status = 200, description = "The venue", body = VenueResponse),
        (status = 400, description = "Malformed id", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such venue", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_venue(
    State(state): State<EventsState>,
    Path(id): Path<VenueId>,
) -> Result<axum::Json<VenueResponse>, EventsError> {
    Ok(axum::Json(state.service.venue(id).await?.into()))
}
