//! How the data service reaches the events, booking and auth services: through their
//! operations, never their tables. [`EventsClient`], [`BookingClient`] and [`UsersClient`]
//! are the seams; [`LocalEvents`], [`LocalBooking`] and [`LocalUsers`] call the services
//! running in the same process directly ([`LocalEvents`] with the same parser and rules as
//! `POST /api/events`).

use async_trait::async_trait;
use evently_auth::AuthService;
use evently_booking::BookingService;
use evently_booking::domain::{Order, OrderId};
use evently_core::Problem;
use evently_core::identity::Identity;
use evently_core::ids::UserId;
use evently_events::EventsService;
use evently_events::domain::{EventFilter, EventId, Page};
use evently_events::http::events::{CreateEventRequest, EventResponse};
use evently_events::service::{BatchOutcome, UpsertItem};
use std::sync::Arc;
use uuid::Uuid;

/// What the data service asks of the events service.
#[async_trait]
pub trait EventsClient: Send + Sync + 'static {
    /// Checks `body` (the JSON body of `POST /api/events`) as that endpoint would for
    /// `caller`, creating nothing.
    ///
    /// # Errors
    /// The problem `POST /api/events` would answer.
    async fn check(&self, caller: &Identity, body: &serde_json::Value) -> Result<(), Problem>;

    /// Checks every one of `bodies` as [`EventsClient::check`] does: the problem of each
    /// refused one, with its index.
    ///
    /// # Errors
    /// A failure of the events service itself (5xx), for any body.
    async fn check_all(
        &self,
        caller: &Identity,
        bodies: &[serde_json::Value],
    ) -> Result<Vec<(usize, Problem)>, Problem> {
        let mut refused = Vec::new();
        for (index, body) in bodies.iter().enumerate() {
            match self.check(caller, body).await {
                Ok(()) => {}
                Err(problem) if problem.status().is_server_error() => return Err(problem),
                Err(problem) => refused.push((index, problem)),
            }
        }
        Ok(refused)
    }

    /// Creates the event `body` describes with id `id` for `caller`, or updates the event
    /// with that id to it; `true` when it created it.
    ///
    /// # Errors
    /// The problem `POST /api/events` or `PUT /api/events/{id}` would answer.
    async fn upsert(
        &self,
        caller: &Identity,
        id: Uuid,
        body: &serde_json::Value,
    ) -> Result<bool, Problem>;

    /// Creates or updates every event of `rows` (each an id and a body, as for
    /// [`EventsClient::upsert`]) for `caller`, in one transaction: all of them, or none
    /// when any is refused.
    ///
    /// # Errors
    /// The events service's failure (nothing written); refused rows are
    /// [`BatchWritten::Refused`].
    async fn upsert_all(
        &self,
        caller: &Identity,
        rows: &[(Uuid, serde_json::Value)],
    ) -> Result<BatchWritten, Problem>;

    /// One page of the events matching `filter`, as `GET /api/events` shows them.
    ///
    /// # Errors
    /// The events service's failure.
    async fn list(
        &self,
        filter: &EventFilter,
        page: u32,
        size: u32,
    ) -> Result<Vec<EventResponse>, Problem>;
}

/// What [`EventsClient::upsert_all`] did.
#[derive(Debug)]
pub enum BatchWritten {
    /// Every row was written: for each, whether it created its event.
    Written(Vec<bool>),
    /// These rows (by index) were refused, each with its problem; nothing was written.
    Refused(Vec<(usize, Problem)>),
}

/// The events service of this process.
pub struct LocalEvents(pub Arc<EventsService>);

fn parse(body: &serde_json::Value) -> Result<CreateEventRequest, Problem> {
    let bytes = serde_json::to_vec(body).map_err(|e| Problem::internal(e.into()))?;
    evently_core::extract::from_json_slice(&bytes)
}

#[async_trait]
impl EventsClient for LocalEvents {
    async fn check(&self, caller: &Identity, body: &serde_json::Value) -> Result<(), Problem> {
        let (draft, venue, status) = parse(body)?.into_parts()?;
        Ok(self.0.check_event(caller, &draft, venue, status).await?)
    }

    async fn upsert(
        &self,
        caller: &Identity,
        id: Uuid,
        body: &serde_json::Value,
    ) -> Result<bool, Problem> {
        let (draft, venue, status) = parse(body)?.into_parts()?;
        let (_, created) = self
            .0
            .upsert_event(caller, EventId(id), draft, venue, status)
            .await?;
        Ok(created)
    }

    async fn upsert_all(
        &self,
        caller: &Identity,
        rows: &[(Uuid, serde_json::Value)],
    ) -> Result<BatchWritten, Problem> {
        let mut items = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        for (index, (id, body)) in rows.iter().enumerate() {
            match parse(body).and_then(CreateEventRequest::into_parts) {
                Ok((draft, venue, status)) => items.push(UpsertItem {
                    id: EventId(*id),
                    draft,
                    venue,
                    status,
                }),
                Err(problem) => refused.push((index, problem)),
            }
        }
        if !refused.is_empty() {
            return Ok(BatchWritten::Refused(refused));
        }
        Ok(match self.0.upsert_events(caller, items).await? {
            BatchOutcome::Written(created) => BatchWritten::Written(created),
            BatchOutcome::Refused(refused) => BatchWritten::Refused(
                refused
                    .into_iter()
                    .map(|(index, e)| (index, Problem::from(e)))
                    .collect(),
            ),
        })
    }

    async fn list(
        &self,
        filter: &EventFilter,
        page: u32,
        size: u32,
    ) -> Result<Vec<EventResponse>, Problem> {
        let (events, _) = self
            .0
            .list_events(filter, Page { number: page, size })
            .await?;
        Ok(events.into_iter().map(Into::into).collect())
    }
}

/// What the data service asks of booking.
#[async_trait]
pub trait BookingClient: Send + Sync + 'static {
    /// One page of the orders of `event_id` (with their tickets) whose id is above `after`,
    /// by order id, for `caller` (the event's organizer or an admin).
    ///
    /// # Errors
    /// 404 for an unknown event or one the caller does not manage.
    async fn event_orders(
        &self,
        caller: &Identity,
        event_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Order>, Problem>;
}

/// The booking service of this process.
pub struct LocalBooking(pub Arc<BookingService>);

#[async_trait]
impl BookingClient for LocalBooking {
    async fn event_orders(
        &self,
        caller: &Identity,
        event_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Order>, Problem> {
        Ok(self
            .0
            .event_orders(caller, event_id, after.map(OrderId), limit)
            .await?)
    }
}

/// Most users [`UsersClient::users`] looks up per call (as `POST /internal/users/lookup`).
pub const MAX_USER_LOOKUP: usize = evently_auth::store::MAX_LOOKUP;

/// A user as an orders export names them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Buyer {
    /// The user.
    pub user_id: Uuid,
    /// Their name.
    pub name: String,
    /// Their e-mail address.
    pub email: String,
}

/// What the data service asks of the auth service.
#[async_trait]
pub trait UsersClient: Send + Sync + 'static {
    /// The users with these ids (at most [`MAX_USER_LOOKUP`]), in one lookup; ids of no
    /// user are left out.
    ///
    /// # Errors
    /// The auth service's failure; 422 beyond [`MAX_USER_LOOKUP`] ids.
    async fn users(&self, ids: &[Uuid]) -> Result<Vec<Buyer>, Problem>;
}

/// The auth service of this process.
pub struct LocalUsers(pub Arc<AuthService>);

#[async_trait]
impl UsersClient for LocalUsers {
    async fn users(&self, ids: &[Uuid]) -> Result<Vec<Buyer>, Problem> {
        let ids: Vec<UserId> = ids.iter().copied().map(UserId).collect();
        Ok(self
            .0
            .contacts(&ids)
            .await?
            .into_iter()
            .map(|u| Buyer {
                user_id: u.id.0,
                name: u.name.as_str().to_owned(),
                email: u.email.as_str().to_owned(),
            })
            .collect())
    }
}
