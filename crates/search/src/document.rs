//! What the index holds about one event, and how the bus's events change it.

use evently_bus::DomainEvent;
use evently_bus::catalog::{EventSnapshot, InventoryChange};
use evently_bus::envelope::time_to_ms;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long an event is taken to last after its start: an event counts as ongoing (in a date
/// range, and not yet past) until then.
pub const DURATION_MS: i64 = 6 * 60 * 60 * 1000;

/// One indexed event: everything a hit shows and every filter needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexedEvent {
    /// The event's id.
    pub event_id: Uuid,
    /// Title.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Start, epoch milliseconds.
    pub date_ms: i64,
    /// Venue name.
    pub venue: String,
    /// City.
    pub city: Option<String>,
    /// Event type.
    pub event_type: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Status (`UPCOMING`, `ON_SALE`, `SOLD_OUT`, `CANCELLED`).
    pub status: String,
    /// The lowest price in minor units (base or any section's).
    pub min_price: i64,
    /// Currency.
    pub currency: String,
    /// Seats in total.
    pub total_seats: i64,
    /// Seats available, by booking's newest figure (all seats until one arrives).
    pub available: i64,
    /// The inventory version `available` comes from (0: none yet).
    pub inventory_version: i64,
    /// The event's aggregate version this snapshot comes from.
    pub version: i64,
}

impl IndexedEvent {
    /// The event as a snapshot of `version` describes it, keeping availability already known.
    pub fn from_snapshot(s: &EventSnapshot, version: i64, known: Option<&IndexedEvent>) -> Self {
        let min_price = s
            .section_prices
            .values()
            .copied()
            .chain(std::iter::once(s.base_price))
            .min()
            .unwrap_or(s.base_price);
        let (available, inventory_version) = match known {
            Some(k) if k.inventory_version > 0 => (k.available, k.inventory_version),
            _ => (s.total_seats, 0),
        };
        Self {
            event_id: s.event_id,
            name: s.event_name.clone(),
            description: s.description.clone(),
            date_ms: time_to_ms(s.event_date),
            venue: s.venue_name.clone(),
            city: s.city.clone(),
            event_type: s.event_type.clone(),
            tags: s.tags.clone(),
            status: s.status.clone(),
            min_price,
            currency: s.currency.clone(),
            total_seats: s.total_seats,
            available,
            inventory_version,
            version,
        }
    }
}

/// One change the index applies, decoded from a bus envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The event as of `version` (created or updated).
    Upsert(Box<EventSnapshot>, i64),
    /// The event's status as of `version`.
    Status(Uuid, String, i64),
    /// The event is gone.
    Delete(Uuid),
    /// Booking's newest figure.
    Availability(InventoryChange),
}

impl Change {
    /// The change an envelope carries; `None` for events search does not index (and for an
    /// undecodable one, which is logged and skipped: it would never decode, and the event's
    /// next change carries its whole state again).
    pub fn of(envelope: &evently_bus::Envelope) -> Option<Change> {
        let decoded = match DomainEvent::decode(envelope) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(envelope.id = %envelope.id, error = %e, "undecodable event skipped by search");
                return None;
            }
        };
        let version = envelope.aggregate_version;
        Some(match decoded {
            DomainEvent::EventCreated(s) | DomainEvent::EventUpdated(s) => {
                Change::Upsert(Box::new(s), version)
            }
            DomainEvent::EventStatusChanged { event_id, to, .. } => {
                Change::Status(event_id, to, version)
            }
            DomainEvent::EventDeleted { event_id } => Change::Delete(event_id),
            DomainEvent::SeatsHeld(c)
            | DomainEvent::SeatsReleased(c)
            | DomainEvent::OrderPlaced(c)
            | DomainEvent::OrderCancelled(c)
            | DomainEvent::SoldOut(c)
            | DomainEvent::WaitlistOffered(c) => Change::Availability(c),
            DomainEvent::VenueCreated(_)
            | DomainEvent::SettingsChanged(_)
            | DomainEvent::PaymentRefunded(_)
            | DomainEvent::WaitlistJoined(_)
            | DomainEvent::WaitlistLeft(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waitlist_changes_are_not_indexed() {
        let w = evently_bus::catalog::WaitlistChange {
            event_id: uuid::Uuid::now_v7(),
            user_id: uuid::Uuid::now_v7(),
            quantity: 2,
            waiting: true,
            reason: "joined".into(),
            waitlist_length: 1,
        };
        let at = time::OffsetDateTime::UNIX_EPOCH;
        for event in [
            DomainEvent::WaitlistJoined(w.clone()),
            DomainEvent::WaitlistLeft(w),
        ] {
            assert!(Change::of(&event.into_envelope(1, at)).is_none());
        }
    }
}
