//! The events service's operations: who may do what, domain rule, store call, with retries
//! for optimistic-write conflicts. Also the sale scheduler, and applying booking's
//! availability figures.

use evently_bus::catalog::Availability;
use evently_core::clock::SharedClock;
use evently_core::db::StoreError;
use evently_core::identity::{Identity, Role};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::domain::{
    Event, EventDraft, EventFilter, EventId, EventPatch, EventStatus, Page, ReviseError, Venue,
    VenueId, VenueInput, VenueRef, to_ms,
};
use crate::error::EventsError;
use crate::store::{BatchWrite, EventStore, VERSION_CONFLICT};

/// How many times a mutation is recomputed when the event changed under it.
const ATTEMPTS: usize = 5;

/// The operations of the events service.
pub struct EventsService {
    store: Arc<dyn EventStore>,
    clock: SharedClock,
}

/// Where a new event takes place: a venue record or just a name.
#[derive(Debug, Clone)]
pub enum VenueChoice {
    /// A venue by id.
    Id(VenueId),
    /// A free-text venue name (general admission).
    Name(String),
}

/// One event of [`EventsService::upsert_events`]: created with the id `id` chosen by the
/// caller, or updated to `draft` when an event with that id exists.
#[derive(Debug, Clone)]
pub struct UpsertItem {
    /// The event's id, derived by the caller from its own key.
    pub id: EventId,
    /// What the event is.
    pub draft: EventDraft,
    /// Where it takes place.
    pub venue: VenueChoice,
    /// Its status when created.
    pub status: EventStatus,
}

/// What [`EventsService::upsert_events`] did.
#[derive(Debug)]
pub enum BatchOutcome {
    /// Every item was written, in one transaction: for each, whether it created its event.
    Written(Vec<bool>),
    /// These items (by index) were refused, and nothing was written.
    Refused(Vec<(usize, EventsError)>),
}

/// The update an upsert makes of an existing event: every field of `draft`.
fn upsert_patch(draft: EventDraft, venue: VenueChoice) -> EventPatch {
    let (venue_id, venue_name) = match venue {
        VenueChoice::Id(v) => (Some(v), None),
        VenueChoice::Name(n) => (None, Some(n)),
    };
    EventPatch {
        name: Some(draft.name),
        description: Some(draft.description),
        event_date: Some(draft.event_date),
        sale_start: Some(draft.sale_start),
        sale_end: Some(draft.sale_end),
        event_type: draft.event_type,
        tags: Some(draft.tags),
        total_seats: draft.total_seats,
        base_price: Some(draft.base_price),
        currency: Some(draft.currency),
        section_prices: Some(draft.section_prices),
        time_zone: Some(draft.time_zone),
        status: None,
        venue_id,
        venue_name,
        city: None,
    }
}

fn revise_error(e: ReviseError) -> EventsError {
    match e {
        ReviseError::Invalid(p) => EventsError::Invalid(p),
        ReviseError::Transition(t) => EventsError::IllegalTransition(t),
        ReviseError::Final => EventsError::Cancelled,
        ReviseError::CapacityLocked => EventsError::CapacityLocked,
    }
}

/// Whether `e` refuses a whole request rather than one of its items (a failing store).
fn is_failure(e: &EventsError) -> bool {
    matches!(
        e,
        EventsError::Store(_) | EventsError::Internal(_) | EventsError::Contended
    )
}

fn is_version_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict { constraint } if constraint == VERSION_CONFLICT)
}

impl EventsService {
    /// The service over `store`, telling time by `clock`.
    pub fn new(store: Arc<dyn EventStore>, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    /// The store (readiness checks ping it).
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    fn now(&self) -> i64 {
        to_ms(self.clock.now())
    }

    fn require_organizer(identity: &Identity, what: &str) -> Result<(), EventsError> {
        if identity.has_any(&[Role::Organizer, Role::Admin]) {
            Ok(())
        } else {
            Err(EventsError::Forbidden(format!(
                "only organizers and admins can {what}"
            )))
        }
    }

    fn require_owner(identity: &Identity, event: &Event) -> Result<(), EventsError> {
        if identity.role == Role::Admin || identity.user_id == event.organizer_id {
            Ok(())
        } else {
            Err(EventsError::Forbidden(
                "only the event's organizer or an admin can change it".into(),
            ))
        }
    }

    /// Creates a venue.
    ///
    /// # Errors
    /// 403 for users, 422 for invalid input.
    pub async fn create_venue(
        &self,
        identity: &Identity,
        input: VenueInput,
    ) -> Result<Venue, EventsError> {
        Self::require_organizer(identity, "create venues")?;
        let venue = Venue::create(input, identity.user_id, self.now())?;
        self.store.insert_venue(&venue, &venue.created()).await?;
        tracing::info!(venue.id = %venue.id, "venue created");
        Ok(venue)
    }

    /// A venue.
    ///
    /// # Errors
    /// 404 if there is none.
    pub async fn venue(&self, id: VenueId) -> Result<Venue, EventsError> {
        self.store
            .venue(id)
            .await?
            .ok_or(EventsError::VenueNotFound)
    }

    /// A page of venues.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list_venues(&self, page: Page) -> Result<(Vec<Venue>, u64), EventsError> {
        Ok(self.store.list_venues(page).await?)
    }

    /// Creates an event owned by the caller.
    ///
    /// # Errors
    /// 403 for users, 404 for an unknown venue (as 422 on `/venueId`), 422 for invalid input.
    pub async fn create_event(
        &self,
        identity: &Identity,
        draft: EventDraft,
        venue: VenueChoice,
        status: EventStatus,
    ) -> Result<Event, EventsError> {
        let (event, venue) = self.prepare(identity, &draft, venue, status).await?;
        self.store
            .insert_event(&event, &event.created_in(venue.as_ref()))
            .await?;
        tracing::info!(event.id = %event.id, "event created");
        Ok(event)
    }

    /// The event `identity` would create from `draft` at `venue`, and its venue record:
    /// every rule of [`EventsService::create_event`], nothing stored.
    async fn prepare(
        &self,
        identity: &Identity,
        draft: &EventDraft,
        venue: VenueChoice,
        status: EventStatus,
    ) -> Result<(Event, Option<Venue>), EventsError> {
        Self::require_organizer(identity, "create events")?;
        let venue = match venue {
            VenueChoice::Id(id) => {
                VenueRef::Venue(Box::new(self.store.venue(id).await?.ok_or_else(|| {
                    evently_core::Problem::invalid_field("/venueId", "no such venue")
                })?))
            }
            VenueChoice::Name(name) => VenueRef::Named(name),
        };
        let event = Event::create(draft, &venue, status, identity.user_id, self.now())?;
        let record = match venue {
            VenueRef::Venue(v) => Some(*v),
            VenueRef::Named(_) => None,
        };
        Ok((event, record))
    }

    /// Checks that `identity` may create the event `draft` describes, by the rules of
    /// [`EventsService::create_event`], without creating it (an import's dry run and
    /// all-or-nothing check).
    ///
    /// # Errors
    /// As [`EventsService::create_event`].
    pub async fn check_event(
        &self,
        identity: &Identity,
        draft: &EventDraft,
        venue: VenueChoice,
        status: EventStatus,
    ) -> Result<(), EventsError> {
        self.prepare(identity, draft, venue, status)
            .await
            .map(|_| ())
    }

    /// Creates the event `draft` describes with the id `id` chosen by the caller, or, when
    /// an event with that id exists already, updates it to `draft` (its owner or an admin
    /// only). The caller derives `id` from its own key (an import job's row, or an
    /// organizer's external id), so running the same request again never makes a second
    /// event. Returns the event and whether this call created it.
    ///
    /// # Errors
    /// As [`EventsService::create_event`] and [`EventsService::update_event`].
    pub async fn upsert_event(
        &self,
        identity: &Identity,
        id: EventId,
        draft: EventDraft,
        venue: VenueChoice,
        status: EventStatus,
    ) -> Result<(Event, bool), EventsError> {
        if self.store.event(id).await?.is_none() {
            let (mut event, record) = self
                .prepare(identity, &draft, venue.clone(), status)
                .await?;
            event.id = id;
            match self
                .store
                .insert_event(&event, &event.created_in(record.as_ref()))
                .await
            {
                Ok(()) => {
                    tracing::info!(event.id = %event.id, "event created");
                    return Ok((event, true));
                }
                // Created meanwhile by the same request running twice: update it below.
                Err(StoreError::Conflict { .. }) if self.store.event(id).await?.is_some() => {}
                Err(e) => return Err(e.into()),
            }
        }
        let patch = upsert_patch(draft, venue);
        Ok((self.update_event(identity, id, &patch).await?, false))
    }

    /// Creates or updates every event of `items` as [`EventsService::upsert_event`] would,
    /// all in one transaction: every item is judged first, and either all are written, each
    /// with its domain events, or none is ([`BatchOutcome::Refused`] lists every item that
    /// was refused). An item whose event changed meanwhile is judged again on its new
    /// version. The same items written again create nothing twice: the ids are the
    /// caller's keys.
    ///
    /// # Errors
    /// Store failures; 409 `concurrent-update` when the events kept changing.
    pub async fn upsert_events(
        &self,
        identity: &Identity,
        items: Vec<UpsertItem>,
    ) -> Result<BatchOutcome, EventsError> {
        for _ in 0..ATTEMPTS {
            let mut writes = Vec::with_capacity(items.len());
            let mut created = Vec::with_capacity(items.len());
            let mut refused = Vec::new();
            let mut seen = std::collections::HashSet::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                if !seen.insert(item.id) {
                    refused.push((
                        index,
                        EventsError::Invalid(evently_core::Problem::invalid_field(
                            "/eventId",
                            "the batch names this event more than once",
                        )),
                    ));
                    continue;
                }
                match self.batch_write(identity, item).await {
                    Ok(Some(write)) => {
                        created.push(matches!(write, BatchWrite::Insert { .. }));
                        writes.push(write);
                    }
                    Ok(None) => created.push(false),
                    Err(e) if is_failure(&e) => return Err(e),
                    Err(e) => refused.push((index, e)),
                }
            }
            if !refused.is_empty() {
                return Ok(BatchOutcome::Refused(refused));
            }
            match self.store.write_batch(&writes).await {
                Ok(()) => {
                    tracing::info!(
                        events.created = created.iter().filter(|c| **c).count(),
                        events.written = writes.len(),
                        "events written in one batch"
                    );
                    return Ok(BatchOutcome::Written(created));
                }
                // An event created, changed or deleted meanwhile: judge the batch again.
                Err(StoreError::Conflict { .. } | StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EventsError::Contended)
    }

    /// The write that upserts `item` as it stands now, or `None` when it changes nothing.
    async fn batch_write(
        &self,
        identity: &Identity,
        item: &UpsertItem,
    ) -> Result<Option<BatchWrite>, EventsError> {
        let Some(current) = self.store.event(item.id).await? else {
            let (mut event, record) = self
                .prepare(identity, &item.draft, item.venue.clone(), item.status)
                .await?;
            event.id = item.id;
            let created = event.created_in(record.as_ref());
            return Ok(Some(BatchWrite::Insert { event, created }));
        };
        Self::require_owner(identity, &current)?;
        let venue = match current.venue_id {
            Some(v) => self.store.venue(v).await?,
            None => None,
        };
        let patch = upsert_patch(item.draft.clone(), item.venue.clone());
        let revision = current
            .revise(&patch, venue.as_ref(), self.now())
            .map_err(revise_error)?;
        if !revision.details_changed && !revision.status_changed {
            return Ok(None);
        }
        let next = revision.event;
        let mut events = Vec::new();
        if revision.details_changed {
            events.push(next.updated_in(venue.as_ref()));
        }
        if revision.status_changed {
            events.push(next.status_changed(current.status));
        }
        Ok(Some(BatchWrite::Update {
            event: next,
            expected_version: current.version,
            events,
        }))
    }

    /// An event.
    ///
    /// # Errors
    /// 404 if there is none.
    pub async fn event(&self, id: EventId) -> Result<Event, EventsError> {
        self.store
            .event(id)
            .await?
            .ok_or(EventsError::EventNotFound)
    }

    /// A page of events matching `filter`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        page: Page,
    ) -> Result<(Vec<Event>, u64), EventsError> {
        Ok(self.store.list_events(filter, page).await?)
    }

    /// Applies `patch` to an event (details and, through the status machine, status).
    ///
    /// # Errors
    /// 404, 403 (not the owner or an admin), 422 invalid fields, 409 illegal transition, a
    /// cancelled event, or a change of seats once the sale may have started.
    pub async fn update_event(
        &self,
        identity: &Identity,
        id: EventId,
        patch: &EventPatch,
    ) -> Result<Event, EventsError> {
        for _ in 0..ATTEMPTS {
            let current = self.event(id).await?;
            Self::require_owner(identity, &current)?;
            let venue = match current.venue_id {
                Some(v) => self.store.venue(v).await?,
                None => None,
            };
            let revision = current
                .revise(patch, venue.as_ref(), self.now())
                .map_err(revise_error)?;
            if !revision.details_changed && !revision.status_changed {
                return Ok(current);
            }
            let next = revision.event;
            let mut events = Vec::new();
            if revision.details_changed {
                events.push(next.updated_in(venue.as_ref()));
            }
            if revision.status_changed {
                events.push(next.status_changed(current.status));
            }
            match self
                .store
                .update_event(&next, current.version, &events)
                .await
            {
                Ok(()) => {
                    tracing::info!(event.id = %id, event.version = next.version, "event updated");
                    return Ok(next);
                }
                Err(e) if is_version_conflict(&e) => continue,
                Err(StoreError::NotFound) => return Err(EventsError::EventNotFound),
                Err(e) => return Err(e.into()),
            }
        }
        Err(EventsError::Contended)
    }

    /// Changes an event's status through the status machine.
    ///
    /// # Errors
    /// 404, 403 (not the owner or an admin), 409 for a transition the machine refuses.
    pub async fn change_status(
        &self,
        identity: &Identity,
        id: EventId,
        to: EventStatus,
    ) -> Result<Event, EventsError> {
        for _ in 0..ATTEMPTS {
            let current = self.event(id).await?;
            Self::require_owner(identity, &current)?;
            let next = current.with_status(to, self.now())?;
            match self
                .store
                .update_event(
                    &next,
                    current.version,
                    &[next.status_changed(current.status)],
                )
                .await
            {
                Ok(()) => {
                    tracing::info!(event.id = %id, from = %current.status, to = %next.status, "event status changed");
                    return Ok(next);
                }
                Err(e) if is_version_conflict(&e) => continue,
                Err(StoreError::NotFound) => return Err(EventsError::EventNotFound),
                Err(e) => return Err(e.into()),
            }
        }
        Err(EventsError::Contended)
    }

    /// Deletes an event.
    ///
    /// # Errors
    /// 404, 403 (not the owner or an admin).
    pub async fn delete_event(&self, identity: &Identity, id: EventId) -> Result<(), EventsError> {
        for _ in 0..ATTEMPTS {
            let current = self.event(id).await?;
            Self::require_owner(identity, &current)?;
            match self
                .store
                .delete_event(id, current.version, &current.deleted(self.now()))
                .await
            {
                Ok(()) => {
                    tracing::info!(event.id = %id, "event deleted");
                    return Ok(());
                }
                Err(e) if is_version_conflict(&e) => continue,
                Err(StoreError::NotFound) => return Err(EventsError::EventNotFound),
                Err(e) => return Err(e.into()),
            }
        }
        Err(EventsError::Contended)
    }

    /// Opens the sale of every UPCOMING event whose sale start has passed; returns how many
    /// this call opened.
    ///
    /// # Errors
    /// Store failures.
    pub async fn open_due_sales(&self) -> Result<usize, EventsError> {
        // The flip is UPCOMING -> ON_SALE, which the machine allows; the store applies it
        // only to rows still UPCOMING.
        debug_assert!(
            EventStatus::Upcoming
                .transition(EventStatus::OnSale)
                .is_ok()
        );
        let flipped = self.store.open_due_sales(self.now()).await?;
        for event in &flipped {
            tracing::info!(event.id = %event.id, "sale opened");
        }
        if !flipped.is_empty() {
            metrics::counter!("evently_events_sales_opened_total").increment(flipped.len() as u64);
        }
        Ok(flipped.len())
    }

    /// Applies booking's `availability` of event `id` (the inventory after one of its
    /// changes): stores the available figure if its version is newer than the stored one,
    /// and flips ON_SALE ⇄ SOLD_OUT as the figure says. Returns whether anything changed;
    /// a figure for an unknown (deleted) event, or one no newer than the stored one, changes
    /// nothing, so applying the same figure again is harmless.
    ///
    /// # Errors
    /// Store failures.
    pub async fn apply_availability(
        &self,
        id: EventId,
        availability: &Availability,
    ) -> Result<bool, EventsError> {
        // A figure below zero would be booking's bug; as far as sales go it means no seat.
        let available = availability.available.max(0);
        let applied = self
            .store
            .apply_availability(id, availability.version, available, self.now())
            .await?;
        let Some(applied) = applied else {
            tracing::debug!(
                event.id = %id,
                availability.version = availability.version,
                "stale or unknown availability skipped"
            );
            return Ok(false);
        };
        tracing::debug!(
            event.id = %id,
            availability.version = availability.version,
            available,
            "availability applied"
        );
        if let Some(from) = applied.flipped_from {
            tracing::info!(event.id = %id, %from, to = %applied.event.status, "event status follows availability");
            metrics::counter!(
                "evently_events_availability_flips_total",
                "to" => applied.event.status.as_str()
            )
            .increment(1);
        }
        Ok(true)
    }

    /// Runs the sale scheduler until `shutdown`, every `interval`. Correct across restarts
    /// (it works from the stored sale start, not from timers) and with any number of
    /// processes (the flip is a conditional update).
    pub async fn run_scheduler(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        async move {
            tracing::info!(
                interval_ms = interval.as_millis() as u64,
                "sale scheduler started"
            );
            loop {
                if let Err(e) = self.open_due_sales().await {
                    tracing::warn!(error = %e, "opening due sales failed; retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
            tracing::info!("sale scheduler stopped");
        }
        .instrument(tracing::info_span!("sale_scheduler"))
        .await;
    }
}
