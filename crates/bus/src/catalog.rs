//! The domain events of evently: a small, versioned set that every consumer can decode
//! without depending on the service that publishes them.
//!
//! Each variant names its `type` and `schemaVersion`. A payload may gain optional fields
//! without a version bump; removing or changing a field is a new `schemaVersion`, and
//! consumers keep decoding the older ones.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::envelope::Envelope;

/// An event as other services see it (the payload of `EventCreated`/`EventUpdated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSnapshot {
    /// The event's id.
    pub event_id: Uuid,
    /// Its owner.
    pub organizer_id: Uuid,
    /// Title.
    pub event_name: String,
    /// Description, if any.
    pub description: Option<String>,
    /// When it takes place.
    #[serde(with = "time::serde::rfc3339")]
    pub event_date: OffsetDateTime,
    /// The venue, when it has a venue record.
    pub venue_id: Option<Uuid>,
    /// The venue's name.
    pub venue_name: String,
    /// The venue's city, if known.
    pub city: Option<String>,
    /// Event type (`concert`, `sports`, …).
    pub event_type: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Status (`UPCOMING`, `ON_SALE`, `SOLD_OUT`, `CANCELLED`).
    pub status: String,
    /// Seats in total.
    pub total_seats: i64,
    /// When the sale opens.
    #[serde(with = "time::serde::rfc3339")]
    pub sale_start_time: OffsetDateTime,
    /// When the sale closes, if set.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub sale_end_time: Option<OffsetDateTime>,
    /// Base price in minor units.
    pub base_price: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Per-section prices in minor units.
    pub section_prices: std::collections::BTreeMap<String, i64>,
    /// The venue's seat layout for a reserved-seat event; absent for general admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<SeatLayout>,
    /// The IANA time zone the event's local times follow (`Europe/Berlin`); absent in
    /// payloads written before events had one, which means UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl EventSnapshot {
    /// The event's IANA time zone (`UTC` when the payload has none).
    pub fn time_zone(&self) -> &str {
        self.time_zone.as_deref().unwrap_or("UTC")
    }
}

/// A reserved-seat layout: sections of rows; seat ids are `<section>-<row>-<number>`, with
/// numbers from 1 to the row's `seats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatLayout {
    /// Sections, in order.
    pub sections: Vec<SeatSection>,
}

/// One section of a [`SeatLayout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatSection {
    /// Name, e.g. `A`.
    pub name: String,
    /// Rows, in order.
    pub rows: Vec<SeatRow>,
}

/// One row of a [`SeatSection`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatRow {
    /// Label, e.g. `3`.
    pub label: String,
    /// Number of seats.
    pub seats: i64,
}

/// An event's inventory after a booking change: `available = capacity - sold - held`, where
/// `held` counts live holds only. `version` increases with every change of the event's
/// inventory, so a projection keeps the figure with the highest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// Seats (or general-admission places) in all.
    pub capacity: i64,
    /// Seats neither sold nor in a live hold.
    pub available: i64,
    /// Seats in live holds.
    pub held: i64,
    /// Seats sold.
    pub sold: i64,
    /// The inventory's version.
    pub version: i64,
}

/// What booking publishes about one change of an event's inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryChange {
    /// The event.
    pub event_id: Uuid,
    /// The buyer whose hold or order changed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    /// The hold, if a hold changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<Uuid>,
    /// The order, if an order changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
    /// The seats concerned.
    #[serde(default)]
    pub seat_ids: Vec<String>,
    /// The money concerned (an order's amount, or its refund), in minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// Its currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Why it happened: `released`, `expired`, `purchased`, `buyer`, `event-cancelled`,
    /// `waitlist-offer`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The inventory after the change.
    pub availability: Availability,
}

impl InventoryChange {
    /// A change of `event_id`'s inventory to `availability` that concerns no buyer, hold,
    /// order, seat or money (the fields a caller sets for one that does).
    pub fn of(event_id: Uuid, availability: Availability) -> Self {
        Self {
            event_id,
            user_id: None,
            hold_id: None,
            order_id: None,
            seat_ids: Vec::new(),
            amount: None,
            currency: None,
            reason: None,
            availability,
        }
    }
}

/// A paid payment intent given back without an order (the payload of `PaymentRefunded`): its
/// hold expired, was released or was cancelled with its event before the purchase committed.
/// A refund of an order is its `OrderCancelled`, never this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefund {
    /// The payment intent.
    pub payment_intent_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The hold it paid for.
    pub hold_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// Minor units refunded (the whole amount).
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// Why: the status its hold ended with (`expired`, `released`, `cancelled`).
    pub reason: String,
}

/// A change of an event's waitlist (the payload of `WaitlistJoined` and `WaitlistLeft`).
///
/// The waitlist's length counts the entries still waiting: an offer takes the head's entry
/// off the list (it now holds seats in the buyer's name, a `WaitlistOffered`), so only
/// joining adds to it and only leaving a waiting entry (or the event's cancellation closing
/// it) or an offer takes from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistChange {
    /// The event.
    pub event_id: Uuid,
    /// The buyer who joined or left.
    pub user_id: Uuid,
    /// The seats the buyer waits (or waited) for.
    pub quantity: i64,
    /// For `WaitlistLeft`: whether the entry was still waiting (`false`: it had been offered
    /// seats, so the offer already took it off the list). Always `true` for `WaitlistJoined`.
    pub waiting: bool,
    /// Why: `joined`, `left` (the buyer), `event-cancelled`.
    pub reason: String,
    /// Entries waiting after the change.
    pub waitlist_length: i64,
}

/// A venue as other services see it (the payload of `VenueCreated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VenueSnapshot {
    /// The venue's id.
    pub venue_id: Uuid,
    /// Name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// Seats in total.
    pub capacity: i64,
    /// Whether seats are reserved (a layout) or general admission.
    pub reserved: bool,
}

/// A settings document after a change (the payload of `SettingsChanged`): the whole
/// document, so a projection keeps the one with the highest `version` per
/// `(scope, scopeId, namespace)` and needs nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsDocument {
    /// `user`, `platform`, `organizer` or `event`.
    pub scope: String,
    /// The user, organizer or event; the nil UUID for the platform.
    pub scope_id: Uuid,
    /// The namespace (`preferences`, `booking`).
    pub namespace: String,
    /// The document's version after the change (1 for the first).
    pub version: i64,
    /// The document as stored (only the keys set at this scope).
    pub document: serde_json::Value,
}

/// Every domain event evently publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    /// A venue was created.
    VenueCreated(VenueSnapshot),
    /// An event was created.
    EventCreated(EventSnapshot),
    /// An event's details changed (not its status alone).
    EventUpdated(EventSnapshot),
    /// An event's status changed.
    EventStatusChanged {
        /// The event.
        event_id: Uuid,
        /// Status before.
        from: String,
        /// Status after.
        to: String,
    },
    /// An event was deleted.
    EventDeleted {
        /// The event.
        event_id: Uuid,
    },
    /// Seats went into a hold (a buyer's, or a waitlist offer).
    SeatsHeld(InventoryChange),
    /// Held seats came back on sale (released, expired, or cancelled with their event).
    SeatsReleased(InventoryChange),
    /// A hold became an order: its seats are sold.
    OrderPlaced(InventoryChange),
    /// An order was cancelled and refunded: its seats are back on sale.
    OrderCancelled(InventoryChange),
    /// The last available seat went into a hold or an order.
    SoldOut(InventoryChange),
    /// The head of an event's waitlist was offered seats as a hold in their name.
    WaitlistOffered(InventoryChange),
    /// A buyer joined an event's waitlist.
    WaitlistJoined(WaitlistChange),
    /// A buyer's waitlist entry ended before being bought: they left, or the event was
    /// cancelled.
    WaitlistLeft(WaitlistChange),
    /// A settings document was written.
    SettingsChanged(SettingsDocument),
    /// A paid intent whose purchase never committed was refunded.
    PaymentRefunded(PaymentRefund),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusChangedPayload {
    event_id: Uuid,
    from: String,
    to: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletedPayload {
    event_id: Uuid,
}

/// Why an envelope could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A type (or schema version of it) this build does not know.
    #[error("unknown event type {event_type} v{schema_version}")]
    Unknown {
        /// The type.
        event_type: String,
        /// Its schema version.
        schema_version: u32,
    },
    /// A known type whose payload does not match its schema.
    #[error("malformed {event_type} payload: {source}")]
    Malformed {
        /// The type.
        event_type: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl DomainEvent {
    /// The event type, as written in envelopes.
    pub fn event_type(&self) -> &'static str {
        match self {
            DomainEvent::VenueCreated(_) => "VenueCreated",
            DomainEvent::EventCreated(_) => "EventCreated",
            DomainEvent::EventUpdated(_) => "EventUpdated",
            DomainEvent::EventStatusChanged { .. } => "EventStatusChanged",
            DomainEvent::EventDeleted { .. } => "EventDeleted",
            DomainEvent::SeatsHeld(_) => "SeatsHeld",
            DomainEvent::SeatsReleased(_) => "SeatsReleased",
            DomainEvent::OrderPlaced(_) => "OrderPlaced",
            DomainEvent::OrderCancelled(_) => "OrderCancelled",
            DomainEvent::SoldOut(_) => "SoldOut",
            DomainEvent::WaitlistOffered(_) => "WaitlistOffered",
            DomainEvent::WaitlistJoined(_) => "WaitlistJoined",
            DomainEvent::WaitlistLeft(_) => "WaitlistLeft",
            DomainEvent::SettingsChanged(_) => "SettingsChanged",
            DomainEvent::PaymentRefunded(_) => "PaymentRefunded",
        }
    }

    /// The payload schema version this build writes.
    pub fn schema_version(&self) -> u32 {
        1
    }

    /// The aggregate type and id this event is about.
    pub fn aggregate(&self) -> (&'static str, Uuid) {
        match self {
            DomainEvent::VenueCreated(v) => ("venue", v.venue_id),
            DomainEvent::EventCreated(e) | DomainEvent::EventUpdated(e) => ("event", e.event_id),
            DomainEvent::EventStatusChanged { event_id, .. }
            | DomainEvent::EventDeleted { event_id } => ("event", *event_id),
            DomainEvent::SeatsHeld(c)
            | DomainEvent::SeatsReleased(c)
            | DomainEvent::OrderPlaced(c)
            | DomainEvent::OrderCancelled(c)
            | DomainEvent::SoldOut(c)
            | DomainEvent::WaitlistOffered(c) => ("inventory", c.event_id),
            DomainEvent::WaitlistJoined(w) | DomainEvent::WaitlistLeft(w) => {
                ("waitlist", w.event_id)
            }
            DomainEvent::SettingsChanged(d) => ("settings", d.scope_id),
            DomainEvent::PaymentRefunded(r) => ("payment", r.payment_intent_id),
        }
    }

    fn payload(&self) -> serde_json::Value {
        let value = match self {
            DomainEvent::VenueCreated(v) => serde_json::to_value(v),
            DomainEvent::EventCreated(e) | DomainEvent::EventUpdated(e) => serde_json::to_value(e),
            DomainEvent::EventStatusChanged { event_id, from, to } => {
                serde_json::to_value(StatusChangedPayload {
                    event_id: *event_id,
                    from: from.clone(),
                    to: to.clone(),
                })
            }
            DomainEvent::EventDeleted { event_id } => serde_json::to_value(DeletedPayload {
                event_id: *event_id,
            }),
            DomainEvent::SeatsHeld(c)
            | DomainEvent::SeatsReleased(c)
            | DomainEvent::OrderPlaced(c)
            | DomainEvent::OrderCancelled(c)
            | DomainEvent::SoldOut(c)
            | DomainEvent::WaitlistOffered(c) => serde_json::to_value(c),
            DomainEvent::WaitlistJoined(w) | DomainEvent::WaitlistLeft(w) => {
                serde_json::to_value(w)
            }
            DomainEvent::SettingsChanged(d) => serde_json::to_value(d),
            DomainEvent::PaymentRefunded(r) => serde_json::to_value(r),
        };
        // Plain structs of strings, numbers and maps with string keys always serialise.
        value.unwrap_or(serde_json::Value::Null)
    }

    /// Wraps the event in a new envelope (fresh UUIDv7 id) for version `aggregate_version`
    /// of its aggregate.
    pub fn into_envelope(self, aggregate_version: i64, at: OffsetDateTime) -> Envelope {
        let (aggregate_type, aggregate_id) = self.aggregate();
        Envelope {
            id: Uuid::now_v7(),
            event_type: self.event_type().to_owned(),
            schema_version: self.schema_version(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id,
            aggregate_version,
            // Outboxes keep milliseconds; the envelope reads back exactly as written.
            occurred_at: at
                .replace_nanosecond(at.nanosecond() / 1_000_000 * 1_000_000)
                .unwrap_or(at),
            payload: self.payload(),
            traceparent: evently_core::telemetry::current_traceparent(),
        }
    }

    /// Decodes the event in `envelope`.
    ///
    /// # Errors
    /// An unknown type or schema version, or a payload that does not match its schema.
    pub fn decode(envelope: &Envelope) -> Result<Self, DecodeError> {
        fn parse<T: serde::de::DeserializeOwned>(e: &Envelope) -> Result<T, DecodeError> {
            serde_json::from_value(e.payload.clone()).map_err(|source| DecodeError::Malformed {
                event_type: e.event_type.clone(),
                source,
            })
        }
        if envelope.schema_version != 1 {
            return Err(DecodeError::Unknown {
                event_type: envelope.event_type.clone(),
                schema_version: envelope.schema_version,
            });
        }
        Ok(match envelope.event_type.as_str() {
            "VenueCreated" => DomainEvent::VenueCreated(parse(envelope)?),
            "EventCreated" => DomainEvent::EventCreated(parse(envelope)?),
            "EventUpdated" => DomainEvent::EventUpdated(parse(envelope)?),
            "EventStatusChanged" => {
                let p: StatusChangedPayload = parse(envelope)?;
                DomainEvent::EventStatusChanged {
                    event_id: p.event_id,
                    from: p.from,
                    to: p.to,
                }
            }
            "EventDeleted" => {
                let p: DeletedPayload = parse(envelope)?;
                DomainEvent::EventDeleted {
                    event_id: p.event_id,
                }
            }
            "SeatsHeld" => DomainEvent::SeatsHeld(parse(envelope)?),
            "SeatsReleased" => DomainEvent::SeatsReleased(parse(envelope)?),
            "OrderPlaced" => DomainEvent::OrderPlaced(parse(envelope)?),
            "OrderCancelled" => DomainEvent::OrderCancelled(parse(envelope)?),
            "SoldOut" => DomainEvent::SoldOut(parse(envelope)?),
            "WaitlistOffered" => DomainEvent::WaitlistOffered(parse(envelope)?),
            "WaitlistJoined" => DomainEvent::WaitlistJoined(parse(envelope)?),
            "WaitlistLeft" => DomainEvent::WaitlistLeft(parse(envelope)?),
            "SettingsChanged" => DomainEvent::SettingsChanged(parse(envelope)?),
            "PaymentRefunded" => DomainEvent::PaymentRefunded(parse(envelope)?),
            other => {
                return Err(DecodeError::Unknown {
                    event_type: other.to_owned(),
                    schema_version: envelope.schema_version,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_through_its_envelope() {
        let id = Uuid::now_v7();
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let snapshot = EventSnapshot {
            event_id: id,
            organizer_id: Uuid::now_v7(),
            event_name: "Eras".into(),
            description: None,
            event_date: at,
            venue_id: None,
            venue_name: "Lumen Field".into(),
            city: Some("Seattle".into()),
            event_type: Some("concert".into()),
            tags: vec!["pop".into()],
            status: "UPCOMING".into(),
            total_seats: 10,
            sale_start_time: at,
            sale_end_time: None,
            base_price: 5000,
            currency: "USD".into(),
            section_prices: Default::default(),
            layout: Some(SeatLayout {
                sections: vec![SeatSection {
                    name: "A".into(),
                    rows: vec![SeatRow {
                        label: "1".into(),
                        seats: 10,
                    }],
                }],
            }),
            time_zone: Some("Europe/Berlin".into()),
        };
        let change = InventoryChange {
            event_id: id,
            user_id: Some(Uuid::now_v7()),
            hold_id: Some(Uuid::now_v7()),
            order_id: None,
            seat_ids: vec!["A-1-1".into()],
            amount: Some(5000),
            currency: Some("USD".into()),
            reason: Some("released".into()),
            availability: Availability {
                capacity: 10,
                available: 9,
                held: 1,
                sold: 0,
                version: 4,
            },
        };
        let events = [
            DomainEvent::SeatsHeld(change.clone()),
            DomainEvent::SeatsReleased(change.clone()),
            DomainEvent::OrderPlaced(change.clone()),
            DomainEvent::OrderCancelled(change.clone()),
            DomainEvent::SoldOut(change.clone()),
            DomainEvent::WaitlistOffered(change),
            DomainEvent::WaitlistJoined(WaitlistChange {
                event_id: id,
                user_id: Uuid::now_v7(),
                quantity: 2,
                waiting: true,
                reason: "joined".into(),
                waitlist_length: 3,
            }),
            DomainEvent::WaitlistLeft(WaitlistChange {
                event_id: id,
                user_id: Uuid::now_v7(),
                quantity: 2,
                waiting: false,
                reason: "left".into(),
                waitlist_length: 0,
            }),
            DomainEvent::PaymentRefunded(PaymentRefund {
                payment_intent_id: id,
                event_id: Uuid::now_v7(),
                hold_id: Uuid::now_v7(),
                user_id: Uuid::now_v7(),
                amount: 5000,
                currency: "USD".into(),
                reason: "expired".into(),
            }),
            DomainEvent::EventCreated(snapshot.clone()),
            DomainEvent::EventUpdated(snapshot),
            DomainEvent::EventStatusChanged {
                event_id: id,
                from: "UPCOMING".into(),
                to: "ON_SALE".into(),
            },
            DomainEvent::EventDeleted { event_id: id },
            DomainEvent::SettingsChanged(SettingsDocument {
                scope: "organizer".into(),
                scope_id: id,
                namespace: "booking".into(),
                version: 2,
                document: serde_json::json!({"maxTicketsPerUser": 4}),
            }),
            DomainEvent::VenueCreated(VenueSnapshot {
                venue_id: id,
                name: "Hall".into(),
                address: "1 Main St".into(),
                city: "Oslo".into(),
                capacity: 100,
                reserved: false,
            }),
        ];
        for event in events {
            let envelope = event.clone().into_envelope(3, at);
            let json = envelope.to_json().unwrap();
            let back = Envelope::from_json(&json).unwrap();
            assert_eq!(back, envelope);
            assert_eq!(back.aggregate_id, id);
            assert_eq!(DomainEvent::decode(&back).unwrap(), event);
        }
    }

    #[test]
    fn a_snapshot_without_a_time_zone_is_in_utc() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut envelope = DomainEvent::EventDeleted {
            event_id: Uuid::now_v7(),
        }
        .into_envelope(1, at);
        envelope.event_type = "EventCreated".into();
        envelope.aggregate_type = "event".into();
        envelope.payload = serde_json::json!({
            "eventId": Uuid::now_v7(), "organizerId": Uuid::now_v7(), "eventName": "Old",
            "description": null, "eventDate": "2027-01-15T20:00:00Z", "venueId": null,
            "venueName": "Hall", "city": null, "eventType": null, "tags": [],
            "status": "UPCOMING", "totalSeats": 10, "saleStartTime": "2027-01-01T00:00:00Z",
            "basePrice": 100, "currency": "EUR", "sectionPrices": {}
        });
        let DomainEvent::EventCreated(snapshot) = DomainEvent::decode(&envelope).unwrap() else {
            panic!("not an EventCreated");
        };
        assert_eq!(snapshot.time_zone, None);
        assert_eq!(snapshot.time_zone(), "UTC");
        assert!(
            !DomainEvent::EventCreated(snapshot)
                .into_envelope(1, at)
                .payload
                .as_object()
                .unwrap()
                .contains_key("timeZone"),
            "no time zone, no field"
        );
    }

    #[test]
    fn unknown_type_or_version_is_refused() {
        let mut envelope = DomainEvent::EventDeleted {
            event_id: Uuid::now_v7(),
        }
        .into_envelope(1, OffsetDateTime::UNIX_EPOCH);
        envelope.schema_version = 2;
        assert!(DomainEvent::decode(&envelope).is_err());
        envelope.schema_version = 1;
        envelope.event_type = "EventExploded".into();
        assert!(DomainEvent::decode(&envelope).is_err());
    }
}
