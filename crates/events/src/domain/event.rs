//! Events: their details, sale window and prices, and the rules a draft must meet before it
//! becomes an [`Event`] (on creation) or its next version (on update).
//!
//! Rules: the event lies in the future when created; the sale starts before the event and
//! ends (if it has an end) after it starts and no later than the event; a reserved-seating
//! event has exactly its venue's seats; prices are non-negative integer minor units in an ISO
//! 4217 currency; section prices name sections of the venue's layout.
//!
//! Booking owns seat inventory. Once an event's sale may have started (ON_SALE or SOLD_OUT),
//! the seats of a general-admission event no longer change; the available figure is
//! booking's ([`Event::follow_availability`] decides the status it calls for).

use evently_bus::catalog::EventSnapshot;
use evently_bus::{DomainEvent, Envelope};
use evently_core::Problem;
use evently_core::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::venue::{MAX_CAPACITY, Seating, Venue};
use super::{EventId, EventStatus, IllegalTransition, VenueId, add, from_ms, text};

/// Highest price in minor units (ten million in major units).
pub const MAX_PRICE: i64 = 1_000_000_000;
/// Longest description in characters.
pub const MAX_DESCRIPTION: usize = 5_000;
/// Most tags on one event.
pub const MAX_TAGS: usize = 20;

/// What kind of event it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// Music.
    Concert,
    /// Matches and races.
    Sports,
    /// Plays, musicals, opera.
    Theatre,
    /// Stand-up and the like.
    Comedy,
    /// Talks.
    Conference,
    /// Multi-day, multi-act.
    Festival,
    /// Hands-on sessions.
    Workshop,
    /// Anything else.
    Other,
}

impl EventType {
    /// Every type.
    pub const ALL: [EventType; 8] = [
        EventType::Concert,
        EventType::Sports,
        EventType::Theatre,
        EventType::Comedy,
        EventType::Conference,
        EventType::Festival,
        EventType::Workshop,
        EventType::Other,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Concert => "concert",
            EventType::Sports => "sports",
            EventType::Theatre => "theatre",
            EventType::Comedy => "comedy",
            EventType::Conference => "conference",
            EventType::Festival => "festival",
            EventType::Workshop => "workshop",
            EventType::Other => "other",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The editable details of an event, as the client gives them (times in epoch ms).
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    /// Title.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// When it takes place.
    pub event_date: i64,
    /// When the sale opens.
    pub sale_start: i64,
    /// When the sale closes.
    pub sale_end: Option<i64>,
    /// Kind.
    pub event_type: Option<EventType>,
    /// Tags.
    pub tags: Vec<String>,
    /// Seats (general admission); must match a reserved venue's capacity.
    pub total_seats: Option<i64>,
    /// Base price in minor units.
    pub base_price: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Per-section prices.
    pub section_prices: BTreeMap<String, i64>,
    /// The IANA time zone its local times follow (`UTC` when the client gives none).
    pub time_zone: String,
}

/// Where an event takes place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueRef {
    /// A venue record.
    Venue(Box<Venue>),
    /// Just a name (general admission).
    Named(String),
}

/// A change to an event: each field present replaces the current one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventPatch {
    /// Title.
    pub name: Option<String>,
    /// Description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Date.
    pub event_date: Option<i64>,
    /// Sale start.
    pub sale_start: Option<i64>,
    /// Sale end (`Some(None)` clears it).
    pub sale_end: Option<Option<i64>>,
    /// Kind.
    pub event_type: Option<EventType>,
    /// Tags.
    pub tags: Option<Vec<String>>,
    /// Seats.
    pub total_seats: Option<i64>,
    /// Base price.
    pub base_price: Option<i64>,
    /// Currency.
    pub currency: Option<String>,
    /// Section prices.
    pub section_prices: Option<BTreeMap<String, i64>>,
    /// Time zone.
    pub time_zone: Option<String>,
    /// Status (through the status machine).
    pub status: Option<EventStatus>,
    /// The venue record: an event stays at its venue, so only the current one is accepted.
    pub venue_id: Option<VenueId>,
    /// The venue's name: free for an event named by its venue alone; for one at a venue
    /// record it is the record's, so only the current one is accepted.
    pub venue_name: Option<String>,
    /// The venue's city: the record's, so only the current one is accepted.
    pub city: Option<String>,
}

/// An event. Only [`Event::create`] and [`Event::revise`] make one, so its fields meet the
/// rules in the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Id.
    pub id: EventId,
    /// Owner (the organizer or admin who created it).
    pub organizer_id: UserId,
    /// Title.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// When it takes place (epoch ms).
    pub event_date: i64,
    /// Venue record, if it has one.
    pub venue_id: Option<VenueId>,
    /// Venue name.
    pub venue_name: String,
    /// Venue city, if known.
    pub city: Option<String>,
    /// Kind.
    pub event_type: Option<EventType>,
    /// Tags.
    pub tags: Vec<String>,
    /// Status.
    pub status: EventStatus,
    /// Seats in total.
    pub total_seats: i64,
    /// Sale start (epoch ms).
    pub sale_start: i64,
    /// Sale end (epoch ms).
    pub sale_end: Option<i64>,
    /// Base price in minor units.
    pub base_price: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Per-section prices in minor units.
    pub section_prices: BTreeMap<String, i64>,
    /// The IANA time zone its local times follow, as the tz database names it.
    pub time_zone: String,
    /// Whether the venue has reserved seating.
    pub reserved: bool,
    /// Seats neither sold nor held, as booking last reported them; `total_seats` until then.
    pub available: i64,
    /// The version of booking's inventory that `available` comes from; 0 until booking
    /// reports. A figure with a version no higher than this one is stale.
    pub availability_version: i64,
    /// Incremented by every change; the store refuses a write based on an older version.
    pub version: i64,
    /// Created (epoch ms).
    pub created_at: i64,
    /// Last changed (epoch ms).
    pub updated_at: i64,
}

fn check(
    draft: &EventDraft,
    venue: &VenueRef,
    creating_at: Option<i64>,
) -> Result<(EventDraft, i64), Problem> {
    let mut problem = None;
    let mut d = draft.clone();
    d.name = text(&mut problem, "/eventName", &draft.name, 200, false);
    d.description = draft
        .description
        .as_ref()
        .map(|s| text(&mut problem, "/description", s, MAX_DESCRIPTION, true));
    if let Some(now) = creating_at
        && d.event_date <= now
    {
        add(&mut problem, "/eventDate", "must be in the future");
    }
    if d.sale_start >= d.event_date {
        add(
            &mut problem,
            "/saleStartTime",
            "must be before the event date",
        );
    }
    if let Some(end) = d.sale_end
        && (end <= d.sale_start || end > d.event_date)
    {
        add(
            &mut problem,
            "/saleEndTime",
            "must be after the sale start and no later than the event date",
        );
    }
    if d.tags.len() > MAX_TAGS {
        add(&mut problem, "/tags", format!("at most {MAX_TAGS} tags"));
    }
    let mut tags = Vec::new();
    for (i, tag) in d.tags.iter().enumerate() {
        let tag = text(&mut problem, &format!("/tags/{i}"), tag, 40, false).to_lowercase();
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    d.tags = tags;
    if !(0..=MAX_PRICE).contains(&d.base_price) {
        add(
            &mut problem,
            "/basePrice",
            format!("must be 0 to {MAX_PRICE} minor units"),
        );
    }
    if d.currency.len() != 3 || !d.currency.chars().all(|c| c.is_ascii_uppercase()) {
        add(
            &mut problem,
            "/currency",
            "must be an ISO 4217 code such as USD",
        );
    }
    match time_zone(&d.time_zone) {
        Some(name) => d.time_zone = name,
        None => add(
            &mut problem,
            "/timeZone",
            "must be an IANA time zone such as Europe/Berlin",
        ),
    }
    let seats = match venue {
        VenueRef::Venue(v) => match &v.seating {
            Seating::Reserved(layout) => {
                let capacity = layout.capacity();
                if d.total_seats.is_some_and(|t| t != capacity) {
                    add(
                        &mut problem,
                        "/totalSeats",
                        format!("the venue's layout has {capacity} seats"),
                    );
                }
                for (section, price) in &d.section_prices {
                    if !layout.has_section(section) {
                        add(
                            &mut problem,
                            &format!("/sectionPrices/{section}"),
                            "no such section in the venue's layout",
                        );
                    }
                    if !(0..=MAX_PRICE).contains(price) {
                        add(
                            &mut problem,
                            &format!("/sectionPrices/{section}"),
                            format!("must be 0 to {MAX_PRICE} minor units"),
                        );
                    }
                }
                capacity
            }
            Seating::General { capacity } => general(&mut problem, &d, Some(*capacity)),
        },
        VenueRef::Named(_) => general(&mut problem, &d, None),
    };
    match problem {
        Some(p) => Err(p),
        None => Ok((d, seats)),
    }
}

/// The tz database's name of the IANA time zone `raw` (matched without regard to case, so
/// `europe/berlin` is `Europe/Berlin`); `None` for a zone the database does not know.
pub fn time_zone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 64 {
        return None;
    }
    let zone = jiff::tz::TimeZone::get(raw).ok()?;
    Some(zone.iana_name().unwrap_or(raw).to_owned())
}

fn general(problem: &mut Option<Problem>, d: &EventDraft, capacity: Option<i64>) -> i64 {
    if !d.section_prices.is_empty() {
        add(
            problem,
            "/sectionPrices",
            "only reserved-seating venues have sections",
        );
    }
    match d.total_seats {
        None => {
            if let Some(capacity) = capacity {
                return capacity;
            }
            add(problem, "/totalSeats", "required for general admission");
            0
        }
        Some(seats) => {
            let max = capacity.unwrap_or(MAX_CAPACITY);
            if !(1..=max).contains(&seats) {
                add(problem, "/totalSeats", format!("must be 1 to {max}"));
            }
            seats
        }
    }
}

impl Event {
    /// A new event owned by `organizer` from `draft` at `venue`, created at `now` (epoch ms)
    /// with `status` (UPCOMING unless the client asked for ON_SALE).
    ///
    /// # Errors
    /// 422 naming every invalid field.
    pub fn create(
        draft: &EventDraft,
        venue: &VenueRef,
        status: EventStatus,
        organizer: UserId,
        now: i64,
    ) -> Result<Event, Problem> {
        if !matches!(status, EventStatus::Upcoming | EventStatus::OnSale) {
            return Err(Problem::invalid_field(
                "/status",
                "a new event is UPCOMING or ON_SALE",
            ));
        }
        let (d, seats) = check(draft, venue, Some(now))?;
        let (venue_id, venue_name, city, reserved) = match venue {
            VenueRef::Venue(v) => (
                Some(v.id),
                v.name.clone(),
                Some(v.city.clone()),
                matches!(v.seating, Seating::Reserved(_)),
            ),
            VenueRef::Named(name) => {
                let mut problem = None;
                let name = text(&mut problem, "/venueName", name, 200, false);
                if let Some(p) = problem {
                    return Err(p);
                }
                (None, name, None, false)
            }
        };
        Ok(Event {
            id: EventId::new(),
            organizer_id: organizer,
            name: d.name,
            description: d.description,
            event_date: d.event_date,
            venue_id,
            venue_name,
            city,
            event_type: d.event_type,
            tags: d.tags,
            status,
            total_seats: seats,
            sale_start: d.sale_start,
            sale_end: d.sale_end,
            base_price: d.base_price,
            currency: d.currency,
            section_prices: d.section_prices,
            time_zone: d.time_zone,
            reserved,
            available: seats,
            availability_version: 0,
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// The draft this event was made from.
    pub fn draft(&self) -> EventDraft {
        EventDraft {
            name: self.name.clone(),
            description: self.description.clone(),
            event_date: self.event_date,
            sale_start: self.sale_start,
            sale_end: self.sale_end,
            event_type: self.event_type,
            tags: self.tags.clone(),
            total_seats: Some(self.total_seats),
            base_price: self.base_price,
            currency: self.currency.clone(),
            section_prices: self.section_prices.clone(),
            time_zone: self.time_zone.clone(),
        }
    }

    /// The next version of this event with `patch` applied at `now`; `venue` is its venue
    /// record (needed to check seats and section prices), if it has one. Returns the new
    /// version and whether the details and the status changed.
    ///
    /// # Errors
    /// [`ReviseError::Invalid`] for invalid fields, [`ReviseError::Transition`] for a status
    /// change the machine refuses, [`ReviseError::Final`] for any change to a cancelled event,
    /// [`ReviseError::CapacityLocked`] for a change of seats once the sale may have started.
    pub fn revise(
        &self,
        patch: &EventPatch,
        venue: Option<&Venue>,
        now: i64,
    ) -> Result<Revision, ReviseError> {
        if self.status == EventStatus::Cancelled {
            return Err(ReviseError::Final);
        }
        if patch
            .total_seats
            .is_some_and(|seats| seats != self.total_seats)
            && self.capacity_locked()
        {
            return Err(ReviseError::CapacityLocked);
        }
        let mut draft = self.draft();
        if patch.total_seats.is_some() {
            draft.total_seats = patch.total_seats;
        }
        if let Some(v) = &patch.name {
            draft.name.clone_from(v);
        }
        if let Some(v) = &patch.description {
            draft.description.clone_from(v);
        }
        if let Some(v) = patch.event_date {
            draft.event_date = v;
        }
        if let Some(v) = patch.sale_start {
            draft.sale_start = v;
        }
        if let Some(v) = patch.sale_end {
            draft.sale_end = v;
        }
        if let Some(v) = patch.event_type {
            draft.event_type = Some(v);
        }
        if let Some(v) = &patch.tags {
            draft.tags.clone_from(v);
        }
        if let Some(v) = patch.base_price {
            draft.base_price = v;
        }
        if let Some(v) = &patch.currency {
            draft.currency.clone_from(v);
        }
        if let Some(v) = &patch.section_prices {
            draft.section_prices.clone_from(v);
        }
        if let Some(v) = &patch.time_zone {
            draft.time_zone.clone_from(v);
        }
        let venue_name = self.revised_venue(patch).map_err(ReviseError::Invalid)?;
        let venue_ref = match venue {
            Some(v) => VenueRef::Venue(Box::new(v.clone())),
            None => VenueRef::Named(venue_name.clone()),
        };
        let (d, seats) = check(&draft, &venue_ref, None).map_err(ReviseError::Invalid)?;
        let status = match patch.status {
            Some(to) if to != self.status => self
                .status
                .transition(to)
                .map_err(ReviseError::Transition)?,
            Some(to) => to,
            None => self.status,
        };
        let mut next = self.clone();
        next.name = d.name;
        next.venue_name = venue_name;
        next.description = d.description;
        next.event_date = d.event_date;
        next.sale_start = d.sale_start;
        next.sale_end = d.sale_end;
        next.event_type = d.event_type;
        next.tags = d.tags;
        next.total_seats = seats;
        if self.availability_version == 0 {
            // Booking has not reported yet, so no seat is taken.
            next.available = seats;
        }
        next.base_price = d.base_price;
        next.currency = d.currency;
        next.section_prices = d.section_prices;
        next.time_zone = d.time_zone;
        let details_changed = next != *self;
        next.status = status;
        let status_changed = status != self.status;
        if details_changed || status_changed {
            next.version += 1;
            next.updated_at = now;
        }
        Ok(Revision {
            event: next,
            details_changed,
            status_changed,
        })
    }

    /// The venue name after `patch`: an event stays at its venue, so a venue id or city other
    /// than the current one is refused, and so is another name for a venue record's event.
    /// An event named by its venue alone may be renamed.
    fn revised_venue(&self, patch: &EventPatch) -> Result<String, Problem> {
        let mut problem = None;
        if patch.venue_id.is_some_and(|id| Some(id) != self.venue_id) {
            add(
                &mut problem,
                "/venueId",
                "an event stays at its venue; create a new event for another venue",
            );
        }
        if patch
            .city
            .as_ref()
            .is_some_and(|city| Some(city) != self.city.as_ref())
        {
            add(
                &mut problem,
                "/city",
                "the venue's city; it cannot be set on the event",
            );
        }
        let name = match &patch.venue_name {
            Some(name) if self.venue_id.is_none() => {
                text(&mut problem, "/venueName", name, 200, false)
            }
            Some(name) if *name != self.venue_name => {
                add(
                    &mut problem,
                    "/venueName",
                    "the venue record's name; it cannot be set on the event",
                );
                self.venue_name.clone()
            }
            _ => self.venue_name.clone(),
        };
        match problem {
            Some(p) => Err(p),
            None => Ok(name),
        }
    }

    /// This event with its status changed to `to` at `now` (the next version).
    ///
    /// # Errors
    /// [`IllegalTransition`] when the machine refuses.
    pub fn with_status(&self, to: EventStatus, now: i64) -> Result<Event, IllegalTransition> {
        let status = self.status.transition(to)?;
        let mut next = self.clone();
        next.status = status;
        next.version += 1;
        next.updated_at = now;
        Ok(next)
    }

    /// Whether the seats of this general-admission event are fixed because its sale may have
    /// started (ON_SALE or SOLD_OUT): booking owns the inventory from then on. A
    /// reserved-seating event always has exactly its layout's seats.
    pub fn capacity_locked(&self) -> bool {
        !self.reserved && matches!(self.status, EventStatus::OnSale | EventStatus::SoldOut)
    }

    /// Seats still available: booking's latest figure, or every seat before booking reported.
    pub fn available_seats(&self) -> i64 {
        self.available
    }

    /// The next version of this event with the status its available figure calls for, at
    /// `now`: SOLD_OUT when an ON_SALE event has no seat left, ON_SALE again when seats of a
    /// SOLD_OUT event came back; `None` when the status stays (an UPCOMING or CANCELLED
    /// event never follows inventory). The change goes through the status machine.
    pub fn follow_availability(&self, now: i64) -> Option<Event> {
        let to = match self.status {
            EventStatus::OnSale if self.available <= 0 => EventStatus::SoldOut,
            EventStatus::SoldOut if self.available > 0 => EventStatus::OnSale,
            _ => return None,
        };
        self.with_status(to, now).ok()
    }

    /// How other services see this event. `venue` is its venue record, if it has one; a
    /// reserved-seating event publishes that venue's layout, from which booking creates
    /// its seats.
    pub fn snapshot(&self, venue: Option<&Venue>) -> EventSnapshot {
        debug_assert!(
            venue.is_none_or(|v| Some(v.id) == self.venue_id),
            "the snapshot's venue is the event's own"
        );
        let layout = match venue.map(|v| &v.seating) {
            Some(Seating::Reserved(layout)) if self.reserved => Some(layout.seat_layout()),
            _ => None,
        };
        EventSnapshot {
            event_id: self.id.0,
            organizer_id: self.organizer_id.0,
            event_name: self.name.clone(),
            description: self.description.clone(),
            event_date: from_ms(self.event_date),
            venue_id: self.venue_id.map(|v| v.0),
            venue_name: self.venue_name.clone(),
            city: self.city.clone(),
            event_type: self.event_type.map(|t| t.as_str().to_owned()),
            tags: self.tags.clone(),
            status: self.status.as_str().to_owned(),
            total_seats: self.total_seats,
            sale_start_time: from_ms(self.sale_start),
            sale_end_time: self.sale_end.map(from_ms),
            base_price: self.base_price,
            currency: self.currency.clone(),
            section_prices: self.section_prices.clone(),
            layout,
            time_zone: Some(self.time_zone.as_str().to_owned()),
        }
    }

    /// `EventCreated` for this (new) event at `venue`, its venue record if it has one.
    pub fn created_in(&self, venue: Option<&Venue>) -> Envelope {
        DomainEvent::EventCreated(self.snapshot(venue))
            .into_envelope(self.version, from_ms(self.updated_at))
    }

    /// `EventCreated` for this (new) event when it has no seat layout to publish (general
    /// admission). An event at a reserved-seating venue uses [`Event::created_in`].
    pub fn created(&self) -> Envelope {
        debug_assert!(
            !self.reserved,
            "a reserved-seating event publishes its layout"
        );
        self.created_in(None)
    }

    /// `EventUpdated` for this version at `venue`, its venue record if it has one.
    pub fn updated_in(&self, venue: Option<&Venue>) -> Envelope {
        DomainEvent::EventUpdated(self.snapshot(venue))
            .into_envelope(self.version, from_ms(self.updated_at))
    }

    /// `EventStatusChanged` from `from` to this version's status.
    pub fn status_changed(&self, from: EventStatus) -> Envelope {
        DomainEvent::EventStatusChanged {
            event_id: self.id.0,
            from: from.as_str().to_owned(),
            to: self.status.as_str().to_owned(),
        }
        .into_envelope(self.version, from_ms(self.updated_at))
    }

    /// `EventDeleted` for this event, deleted at `now`.
    pub fn deleted(&self, now: i64) -> Envelope {
        DomainEvent::EventDeleted {
            event_id: self.id.0,
        }
        .into_envelope(self.version + 1, from_ms(now))
    }
}

/// The result of [`Event::revise`].
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// The next version (unchanged if nothing changed).
    pub event: Event,
    /// Whether any detail changed.
    pub details_changed: bool,
    /// Whether the status changed.
    pub status_changed: bool,
}

/// Why a revision was refused.
#[derive(Debug)]
pub enum ReviseError {
    /// Invalid fields (422).
    Invalid(Problem),
    /// A refused status change (409).
    Transition(IllegalTransition),
    /// The event is cancelled and can no longer change (409).
    Final,
    /// A change of seats once the sale may have started (409; see [`Event::capacity_locked`]).
    CapacityLocked,
}

/// Which events a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only events on or after this time (epoch ms).
    pub from: Option<i64>,
    /// Only events on or before this time (epoch ms).
    pub to: Option<i64>,
    /// Only events in this city (case-insensitive).
    pub city: Option<String>,
    /// Only events of this type.
    pub event_type: Option<EventType>,
}

/// One page of a listing: `number` from 0, `size` items per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Page number, from 0.
    pub number: u32,
    /// Items per page (at least 1).
    pub size: u32,
}

impl Page {
    /// Rows to skip.
    pub fn offset(&self) -> i64 {
        i64::from(self.number) * i64::from(self.size)
    }

    /// Pages needed for `total` items.
    pub fn total_pages(&self, total: u64) -> u64 {
        total.div_ceil(u64::from(self.size.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn draft() -> EventDraft {
        EventDraft {
            name: "Eras Tour".into(),
            description: None,
            event_date: 10 * DAY,
            sale_start: 2 * DAY,
            sale_end: None,
            event_type: Some(EventType::Concert),
            tags: vec!["Pop".into(), "pop".into()],
            total_seats: Some(100),
            base_price: 5000,
            currency: "USD".into(),
            section_prices: BTreeMap::new(),
            time_zone: "UTC".into(),
        }
    }

    fn named() -> VenueRef {
        VenueRef::Named("Lumen Field".into())
    }

    #[test]
    fn time_zones_are_checked_against_the_tz_database() {
        let zoned = |tz: &str| {
            let mut d = draft();
            d.time_zone = tz.into();
            Event::create(&d, &named(), EventStatus::Upcoming, UserId::new(), DAY)
        };
        assert_eq!(zoned("UTC").unwrap().time_zone, "UTC");
        assert_eq!(zoned("europe/berlin").unwrap().time_zone, "Europe/Berlin");
        assert_eq!(zoned("Asia/Kolkata").unwrap().time_zone, "Asia/Kolkata");
        for bad in [
            "",
            "Mars/Olympus",
            "+01:00",
            "Europe/Berlin/x",
            "../etc/passwd",
        ] {
            let p = zoned(bad).unwrap_err();
            assert_eq!(p.errors()[0].pointer, "/timeZone", "{bad}");
        }
    }

    #[test]
    fn valid_draft_becomes_an_upcoming_event() {
        let e = Event::create(
            &draft(),
            &named(),
            EventStatus::Upcoming,
            UserId::new(),
            DAY,
        )
        .unwrap();
        assert_eq!(e.total_seats, 100);
        assert_eq!(e.tags, ["pop"]);
        assert_eq!(e.version, 1);
    }

    #[test]
    fn sale_window_rules_are_enforced() {
        let mut d = draft();
        d.sale_start = 11 * DAY;
        assert!(Event::create(&d, &named(), EventStatus::Upcoming, UserId::new(), DAY).is_err());
        let mut d = draft();
        d.sale_end = Some(DAY);
        assert!(Event::create(&d, &named(), EventStatus::Upcoming, UserId::new(), DAY).is_err());
        let d = draft();
        assert!(
            Event::create(&d, &named(), EventStatus::Upcoming, UserId::new(), 11 * DAY).is_err(),
            "past event"
        );
    }

    #[test]
    fn prices_and_seats_must_be_sane() {
        for f in [
            (|d: &mut EventDraft| d.base_price = -1) as fn(&mut EventDraft),
            |d| d.total_seats = Some(-5),
            |d| d.total_seats = None,
            |d| d.currency = "usd".into(),
            |d| {
                d.section_prices.insert("A".into(), 10);
            },
        ] {
            let mut d = draft();
            f(&mut d);
            assert!(
                Event::create(&d, &named(), EventStatus::Upcoming, UserId::new(), DAY).is_err(),
                "{d:?}"
            );
        }
    }

    #[test]
    fn revise_changes_version_only_when_something_changed() {
        let e = Event::create(
            &draft(),
            &named(),
            EventStatus::Upcoming,
            UserId::new(),
            DAY,
        )
        .unwrap();
        let same = e.revise(&EventPatch::default(), None, 2 * DAY).unwrap();
        assert!(!same.details_changed && !same.status_changed);
        assert_eq!(same.event.version, 1);
        let patch = EventPatch {
            name: Some("Eras Tour II".into()),
            status: Some(EventStatus::OnSale),
            ..Default::default()
        };
        let r = e.revise(&patch, None, 2 * DAY).unwrap();
        assert!(r.details_changed && r.status_changed);
        assert_eq!(r.event.version, 2);
        let bad = EventPatch {
            status: Some(EventStatus::SoldOut),
            ..Default::default()
        };
        assert!(matches!(
            e.revise(&bad, None, 2 * DAY),
            Err(ReviseError::Transition(_))
        ));
    }

    fn event_in(status: EventStatus) -> Event {
        let mut e = Event::create(
            &draft(),
            &named(),
            EventStatus::Upcoming,
            UserId::new(),
            DAY,
        )
        .unwrap();
        e.status = status;
        e
    }

    #[test]
    fn seats_of_a_general_admission_event_lock_once_the_sale_may_have_started() {
        let more_seats = EventPatch {
            total_seats: Some(150),
            ..Default::default()
        };
        let same_seats = EventPatch {
            total_seats: Some(100),
            name: Some("Renamed".into()),
            ..Default::default()
        };

        let upcoming = event_in(EventStatus::Upcoming)
            .revise(&more_seats, None, 2 * DAY)
            .unwrap();

        assert_eq!(upcoming.event.total_seats, 150);
        for status in [EventStatus::OnSale, EventStatus::SoldOut] {
            let e = event_in(status);
            assert!(e.capacity_locked());
            assert!(
                matches!(
                    e.revise(&more_seats, None, 2 * DAY),
                    Err(ReviseError::CapacityLocked)
                ),
                "{status}"
            );
            assert!(e.revise(&same_seats, None, 2 * DAY).is_ok(), "{status}");
        }
    }

    #[test]
    fn available_seats_follow_total_until_booking_reports() {
        let more_seats = EventPatch {
            total_seats: Some(150),
            ..Default::default()
        };
        let fresh = event_in(EventStatus::Upcoming);
        let mut reported = fresh.clone();
        reported.available = 7;
        reported.availability_version = 3;

        let fresh_next = fresh.revise(&more_seats, None, 2 * DAY).unwrap().event;
        let reported_next = reported.revise(&more_seats, None, 2 * DAY).unwrap().event;

        assert_eq!(fresh.available_seats(), 100);
        assert_eq!(fresh_next.available_seats(), 150);
        assert_eq!(reported_next.available_seats(), 7);
    }

    #[test]
    fn only_on_sale_and_sold_out_events_follow_availability() {
        let with = |status, available| {
            let mut e = event_in(status);
            e.available = available;
            e.follow_availability(3 * DAY)
                .map(|n| (n.status, n.version))
        };

        assert_eq!(
            with(EventStatus::OnSale, 0),
            Some((EventStatus::SoldOut, 2))
        );
        assert_eq!(with(EventStatus::OnSale, 1), None);
        assert_eq!(
            with(EventStatus::SoldOut, 1),
            Some((EventStatus::OnSale, 2))
        );
        assert_eq!(with(EventStatus::SoldOut, 0), None);
        for status in [EventStatus::Upcoming, EventStatus::Cancelled] {
            assert_eq!(with(status, 0), None, "{status}");
            assert_eq!(with(status, 5), None, "{status}");
        }
    }

    #[test]
    fn reserved_event_publishes_its_venue_layout_and_general_admission_none() {
        let venue = Venue::create(
            crate::domain::VenueInput {
                name: "Opera".into(),
                address: "1 Main St".into(),
                city: "Oslo".into(),
                capacity: None,
                layout: Some(crate::domain::Layout {
                    sections: vec![crate::domain::venue::Section {
                        name: "A".into(),
                        rows: vec![crate::domain::venue::Row {
                            label: "1".into(),
                            seats: 3,
                        }],
                    }],
                }),
            },
            UserId::new(),
            0,
        )
        .unwrap();
        let mut d = draft();
        d.total_seats = None;
        let reserved = Event::create(
            &d,
            &VenueRef::Venue(Box::new(venue.clone())),
            EventStatus::Upcoming,
            UserId::new(),
            DAY,
        )
        .unwrap();
        let general = event_in(EventStatus::Upcoming);

        let snapshot = reserved.snapshot(Some(&venue));

        let layout = snapshot.layout.unwrap();
        assert_eq!(layout.sections[0].name, "A");
        assert_eq!(layout.sections[0].rows[0].label, "1");
        assert_eq!(layout.sections[0].rows[0].seats, 3);
        assert_eq!(snapshot.total_seats, 3);
        assert_eq!(general.snapshot(None).layout, None);
        assert_eq!(general.snapshot(None).total_seats, 100);
    }
}
