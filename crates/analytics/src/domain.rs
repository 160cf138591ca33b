//! What analytics makes of the domain events, and how per-minute activity becomes a series
//! (pure).

use evently_bus::catalog::Availability;
use evently_bus::{DomainEvent, Envelope};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A minute in epoch ms.
pub const MINUTE_MS: i64 = 60_000;
/// An hour in epoch ms.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// A day in epoch ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// A week in epoch ms.
pub const WEEK_MS: i64 = 7 * DAY_MS;

/// Epoch milliseconds of `t`.
pub fn ms(t: time::OffsetDateTime) -> i64 {
    evently_bus::envelope::time_to_ms(t)
}

/// An event as the events service describes it, as far as analytics cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// The event.
    pub event_id: Uuid,
    /// Its organizer.
    pub organizer_id: Uuid,
    /// Its title.
    pub name: String,
    /// The currency of its prices.
    pub currency: String,
    /// Its status.
    pub status: String,
    /// When its sale opens (epoch ms).
    pub sale_start: i64,
    /// The IANA time zone its local times follow.
    pub time_zone: String,
}

/// Why held seats came back on sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The buyer let go.
    Released,
    /// The hold ran out.
    Expired,
    /// The event was cancelled or deleted.
    Cancelled,
    /// Not a hold ending (e.g. a capacity change): availability only.
    Other,
}

/// What one inventory change does to the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryKind {
    /// A buyer's hold.
    Held,
    /// A waitlist offer (a hold in the waiting buyer's name).
    Offered,
    /// A hold ended without an order.
    Released(Release),
    /// A hold became an order.
    Placed,
    /// An order was cancelled and refunded.
    Cancelled,
    /// The last available seat went.
    SoldOut,
}

/// One change of an event's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryFact {
    /// What happened.
    pub kind: InventoryKind,
    /// The event.
    pub event_id: Uuid,
    /// When (epoch ms).
    pub at: i64,
    /// Seats concerned.
    pub seats: i64,
    /// Money concerned (an order's amount or its refund), minor units.
    pub amount: i64,
    /// Its currency, when there is money.
    pub currency: Option<String>,
    /// The inventory after the change.
    pub availability: Availability,
}

/// A change of the projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An event was created or its details changed (`at`: when, epoch ms).
    Event(EventInfo, i64),
    /// An event's status changed.
    Status {
        /// The event.
        event_id: Uuid,
        /// Its new status.
        status: String,
    },
    /// An event was deleted.
    Deleted {
        /// The event.
        event_id: Uuid,
    },
    /// Booking changed the event's inventory.
    Inventory(InventoryFact),
    /// A buyer joined or left the event's waitlist.
    Waitlist {
        /// The event.
        event_id: Uuid,
        /// How the number of waiting entries moved: +1 for a join, -1 for a waiting entry
        /// that left, 0 for an offered one that left (its offer took it off already).
        delta: i64,
    },
}

impl Change {
    /// The event the change concerns.
    pub fn event_id(&self) -> Uuid {
        match self {
            Change::Event(info, _) => info.event_id,
            Change::Status { event_id, .. }
            | Change::Deleted { event_id }
            | Change::Waitlist { event_id, .. } => *event_id,
            Change::Inventory(fact) => fact.event_id,
        }
    }
}

/// The types analytics reads.
pub const TYPES: [&str; 12] = [
    "EventCreated",
    "EventUpdated",
    "EventStatusChanged",
    "EventDeleted",
    "SeatsHeld",
    "SeatsReleased",
    "OrderPlaced",
    "OrderCancelled",
    "SoldOut",
    "WaitlistOffered",
    "WaitlistJoined",
    "WaitlistLeft",
];

/// The inventory version `envelope` announces (0 for other aggregates): the version the
/// projection has reached once it has applied `envelope`.
pub fn announced_version(envelope: &Envelope) -> i64 {
    if envelope.aggregate_type == "inventory" {
        envelope.aggregate_version
    } else {
        0
    }
}

/// What `envelope` means to analytics; `None` for other types, and for undecodable ones
/// (logged: they would never decode, and holding them back would hold back the stream).
pub fn change_of(envelope: &Envelope) -> Option<Change> {
    if !TYPES.contains(&envelope.event_type.as_str()) {
        return None;
    }
    let at = ms(envelope.occurred_at);
    let fact = |kind, c: evently_bus::catalog::InventoryChange| {
        Change::Inventory(InventoryFact {
            kind,
            event_id: c.event_id,
            at,
            seats: i64::try_from(c.seat_ids.len()).unwrap_or(i64::MAX),
            amount: c.amount.unwrap_or(0),
            currency: c.currency,
            availability: c.availability,
        })
    };
    match DomainEvent::decode(envelope) {
        Ok(DomainEvent::EventCreated(s) | DomainEvent::EventUpdated(s)) => Some(Change::Event(
            EventInfo {
                event_id: s.event_id,
                organizer_id: s.organizer_id,
                name: s.event_name,
                currency: s.currency,
                status: s.status,
                sale_start: ms(s.sale_start_time),
                time_zone: s.time_zone.unwrap_or_else(|| "UTC".to_owned()),
            },
            at,
        )),
        Ok(DomainEvent::EventStatusChanged { event_id, to, .. }) => Some(Change::Status {
            event_id,
            status: to,
        }),
        Ok(DomainEvent::EventDeleted { event_id }) => Some(Change::Deleted { event_id }),
        Ok(DomainEvent::SeatsHeld(c)) => Some(fact(InventoryKind::Held, c)),
        Ok(DomainEvent::WaitlistOffered(c)) => Some(fact(InventoryKind::Offered, c)),
        Ok(DomainEvent::SeatsReleased(c)) => {
            let why = match c.reason.as_deref() {
                Some("released") => Release::Released,
                Some("expired") => Release::Expired,
                Some("cancelled") => Release::Cancelled,
                _ => Release::Other,
            };
            Some(fact(InventoryKind::Released(why), c))
        }
        Ok(DomainEvent::OrderPlaced(c)) => Some(fact(InventoryKind::Placed, c)),
        Ok(DomainEvent::OrderCancelled(c)) => Some(fact(InventoryKind::Cancelled, c)),
        Ok(DomainEvent::SoldOut(c)) => Some(fact(InventoryKind::SoldOut, c)),
        Ok(DomainEvent::WaitlistJoined(w)) => Some(Change::Waitlist {
            event_id: w.event_id,
            delta: 1,
        }),
        Ok(DomainEvent::WaitlistLeft(w)) => Some(Change::Waitlist {
            event_id: w.event_id,
            delta: if w.waiting { -1 } else { 0 },
        }),
        Ok(
            DomainEvent::VenueCreated(_)
            | DomainEvent::SettingsChanged(_)
            | DomainEvent::PaymentRefunded(_),
        ) => None,
        Err(e) => {
            tracing::error!(
                envelope.id = %envelope.id,
                envelope.event_type = %envelope.event_type,
                error = %e,
                "undecodable domain event skipped"
            );
            None
        }
    }
}

/// The width of a series point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// An hour.
    Hour,
    /// A day.
    Day,
    /// A week, from Monday.
    Week,
}

impl Interval {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
        }
    }

    /// The interval a span of `span_ms` gets when none is asked for: hourly under 7 days,
    /// daily under 90, weekly beyond.
    pub fn auto(span_ms: i64) -> Self {
        if span_ms < 7 * DAY_MS {
            Interval::Hour
        } else if span_ms < 90 * DAY_MS {
            Interval::Day
        } else {
            Interval::Week
        }
    }

    /// The start (epoch ms) of the point holding `t` in time zone `tz`: the local hour, the
    /// local day from its first instant (midnight, or the end of a gap at midnight), or the
    /// local week from Monday's first instant.
    pub fn floor(self, t: i64, tz: &TimeZone) -> i64 {
        let Ok(at) = Timestamp::from_millisecond(t) else {
            return t;
        };
        match self {
            Interval::Hour => {
                // A local hour starts where the local clock reads a whole hour; offsets
                // change on whole quarter hours, so the hour holding `t` has `t`'s offset.
                let offset = i64::from(tz.to_offset(at).seconds()) * 1000;
                (t + offset).div_euclid(HOUR_MS) * HOUR_MS - offset
            }
            Interval::Day | Interval::Week => {
                let local = at.to_zoned_datetime(tz.clone());
                let days = match self {
                    Interval::Week => i64::from(local.weekday().to_monday_zero_offset()),
                    _ => 0,
                };
                local
                    .date()
                    .checked_sub(days.days())
                    .and_then(|date| date.to_zoned_datetime(tz.clone()))
                    .and_then(|midnight| midnight.start_of_day())
                    .map_or(t, |start| start.timestamp().as_millisecond())
            }
        }
    }

    /// The start of the point after the one starting at `start` in time zone `tz` (a local
    /// day is 23, 24 or 25 hours long around a change of offset).
    pub fn next(self, start: i64, tz: &TimeZone) -> i64 {
        let days = match self {
            Interval::Hour => return self.floor(start + HOUR_MS, tz).max(start + MINUTE_MS),
            Interval::Day => 1,
            Interval::Week => 7,
        };
        let Ok(at) = Timestamp::from_millisecond(start) else {
            return start + days * DAY_MS;
        };
        at.to_zoned_datetime(tz.clone())
            .date()
            .checked_add(days.days())
            .and_then(|date| date.to_zoned_datetime(tz.clone()))
            .and_then(|midnight| midnight.start_of_day())
            .map_or(start + days * DAY_MS, |next| {
                next.timestamp().as_millisecond()
            })
    }
}

/// The time zone the tz database names `name` (matched without regard to case); `None` for
/// one it does not know.
pub fn zone(name: &str) -> Option<TimeZone> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return None;
    }
    TimeZone::get(name).ok()
}

/// The name of `tz` as the tz database gives it.
pub fn zone_name(tz: &TimeZone) -> &str {
    tz.iana_name().unwrap_or("UTC")
}

/// Activity in one minute (or one rolled-up point).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// Holds created (buyer holds and waitlist offers).
    pub holds: i64,
    /// Orders placed.
    pub orders_placed: i64,
    /// Orders cancelled.
    pub orders_cancelled: i64,
    /// Tickets sold.
    pub tickets_sold: i64,
    /// Tickets cancelled.
    pub tickets_cancelled: i64,
    /// `(gross, refunded)` per currency.
    pub money: BTreeMap<String, (i64, i64)>,
}

impl Activity {
    /// Adds `other` in.
    pub fn add(&mut self, other: &Activity) {
        self.holds += other.holds;
        self.orders_placed += other.orders_placed;
        self.orders_cancelled += other.orders_cancelled;
        self.tickets_sold += other.tickets_sold;
        self.tickets_cancelled += other.tickets_cancelled;
        for (currency, (gross, refunded)) in &other.money {
            let slot = self.money.entry(currency.clone()).or_default();
            slot.0 += gross;
            slot.1 += refunded;
        }
    }
}

/// Rolls per-minute `minutes` (`(minute, activity)`) up into zero-filled points of
/// `interval` covering `[from, to)` in time zone `tz`; each point is `(start, activity)`, the
/// first starting at or before `from`. Every currency seen in the range appears in every
/// point.
pub fn roll_up(
    minutes: &[(i64, Activity)],
    from: i64,
    to: i64,
    interval: Interval,
    tz: &TimeZone,
) -> Vec<(i64, Activity)> {
    let mut points: Vec<(i64, Activity)> = Vec::new();
    let mut start = interval.floor(from, tz);
    while start < to {
        points.push((start, Activity::default()));
        start = interval.next(start, tz);
    }
    let currencies: Vec<String> = {
        let mut all: Vec<String> = minutes
            .iter()
            .filter(|(m, _)| *m >= from && *m < to)
            .flat_map(|(_, a)| a.money.keys().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    for (minute, activity) in minutes {
        if *minute < from || *minute >= to {
            continue;
        }
        // The last point starting at or before the minute.
        let index = points.partition_point(|(start, _)| start <= minute);
        if let Some(point) = index.checked_sub(1).and_then(|i| points.get_mut(i)) {
            point.1.add(activity);
        }
    }
    for (_, point) in &mut points {
        for currency in &currencies {
            point.money.entry(currency.clone()).or_default();
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc: &str) -> i64 {
        ms(
            time::OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
    }

    #[test]
    fn auto_interval_follows_the_span() {
        assert_eq!(Interval::auto(6 * DAY_MS), Interval::Hour);
        assert_eq!(Interval::auto(7 * DAY_MS), Interval::Day);
        assert_eq!(Interval::auto(89 * DAY_MS), Interval::Day);
        assert_eq!(Interval::auto(90 * DAY_MS), Interval::Week);
        assert_eq!(Interval::auto(400 * DAY_MS), Interval::Week);
    }

    fn tz(name: &str) -> TimeZone {
        zone(name).unwrap()
    }

    fn starts(points: &[(i64, Activity)]) -> Vec<i64> {
        points.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn points_start_at_local_boundaries() {
        let kolkata = tz("Asia/Kolkata");
        // 2026-03-04 20:00 UTC is 01:30 on 2026-03-05 in Kolkata (+05:30).
        let t = at("2026-03-04T20:00:00Z");
        assert_eq!(
            Interval::Hour.floor(t, &kolkata),
            at("2026-03-04T19:30:00Z")
        );
        assert_eq!(Interval::Day.floor(t, &kolkata), at("2026-03-04T18:30:00Z"));
        // 2026-03-05 is a Thursday: its week began on Monday 2026-03-02 local.
        assert_eq!(
            Interval::Week.floor(t, &kolkata),
            at("2026-03-01T18:30:00Z")
        );
        assert_eq!(
            Interval::Week.floor(at("2026-03-02T00:00:00Z"), &TimeZone::UTC),
            at("2026-03-02T00:00:00Z")
        );
        // West of UTC: 2026-03-05 02:00 UTC is still the 4th in New York (-05:00).
        let new_york = tz("America/New_York");
        let t = at("2026-03-05T02:00:00Z");
        assert_eq!(
            Interval::Day.floor(t, &new_york),
            at("2026-03-04T05:00:00Z")
        );
        assert_eq!(
            Interval::Hour.floor(t, &new_york),
            at("2026-03-05T02:00:00Z")
        );
        assert_eq!(
            Interval::Week.floor(t, &new_york),
            at("2026-03-02T05:00:00Z")
        );
    }

    #[test]
    fn berlin_days_follow_daylight_saving_time() {
        let berlin = tz("Europe/Berlin");
        // Clocks go forward on Sunday 2026-03-29 (02:00 CET becomes 03:00 CEST) and back
        // on Sunday 2026-10-25 (03:00 CEST becomes 02:00 CET).
        let days = roll_up(
            &[],
            at("2026-03-28T00:00:00+01:00"),
            at("2026-03-31T00:00:00+02:00"),
            Interval::Day,
            &berlin,
        );
        assert_eq!(
            starts(&days),
            [
                at("2026-03-27T23:00:00Z"),
                at("2026-03-28T23:00:00Z"),
                at("2026-03-29T22:00:00Z"),
            ]
        );
        assert_eq!(days[2].0 - days[1].0, 23 * HOUR_MS, "the short day");
        let autumn = roll_up(
            &[],
            at("2026-10-25T00:00:00+02:00"),
            at("2026-10-26T00:00:00+01:00"),
            Interval::Day,
            &berlin,
        );
        assert_eq!(starts(&autumn), [at("2026-10-24T22:00:00Z")]);
        assert_eq!(
            Interval::Day.next(autumn[0].0, &berlin) - autumn[0].0,
            25 * HOUR_MS,
            "the long day"
        );
        // The short day has 23 hourly points, the long one 25 (02:00 twice).
        let hours =
            |from: &str, to: &str| roll_up(&[], at(from), at(to), Interval::Hour, &berlin).len();
        assert_eq!(
            hours("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
            23
        );
        assert_eq!(
            hours("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
            25
        );
        // Weeks start on Monday local, whatever the offset.
        let weeks = roll_up(
            &[],
            at("2026-03-25T12:00:00Z"),
            at("2026-04-07T00:00:00Z"),
            Interval::Week,
            &berlin,
        );
        assert_eq!(
            starts(&weeks),
            [
                at("2026-03-22T23:00:00Z"),
                at("2026-03-29T22:00:00Z"),
                at("2026-04-05T22:00:00Z"),
            ]
        );
    }

    #[test]
    fn activity_lands_in_the_local_day_it_happened() {
        let berlin = tz("Europe/Berlin");
        let sale = Activity {
            orders_placed: 1,
            ..Activity::default()
        };
        let minutes = vec![
            // 23:30 CET on the 28th.
            (at("2026-03-28T22:30:00Z"), sale.clone()),
            // 00:30 CET on the 29th, then 03:30 CEST (the hour from 02:00 never was).
            (at("2026-03-28T23:30:00Z"), sale.clone()),
            (at("2026-03-29T01:30:00Z"), sale.clone()),
            // 23:59 CEST on the 29th: the short day's last minute.
            (at("2026-03-29T21:59:00Z"), sale.clone()),
            // 00:00 CEST on the 30th.
            (at("2026-03-29T22:00:00Z"), sale),
        ];
        let days = roll_up(
            &minutes,
            at("2026-03-28T00:00:00+01:00"),
            at("2026-03-31T00:00:00+02:00"),
            Interval::Day,
            &berlin,
        );
        let placed: Vec<i64> = days.iter().map(|(_, a)| a.orders_placed).collect();
        assert_eq!(placed, [1, 3, 1]);
        let hours = roll_up(
            &minutes,
            at("2026-03-29T00:00:00+01:00"),
            at("2026-03-30T00:00:00+02:00"),
            Interval::Hour,
            &berlin,
        );
        assert_eq!(hours[0].1.orders_placed, 1, "00:00 CET");
        assert_eq!(hours[0].0, at("2026-03-28T23:00:00Z"));
        assert_eq!(
            hours[2].0,
            at("2026-03-29T01:00:00Z"),
            "03:00 CEST follows 01:00 CET"
        );
        assert_eq!(hours[2].1.orders_placed, 1);
        assert_eq!(hours[22].1.orders_placed, 1, "23:00 CEST");
    }

    #[test]
    fn roll_up_zero_fills_and_keeps_currencies_apart() {
        let from = at("2026-03-04T00:00:00Z");
        let to = from + 3 * HOUR_MS;
        let sale = |gross: i64, currency: &str| Activity {
            orders_placed: 1,
            tickets_sold: 2,
            money: BTreeMap::from([(currency.to_owned(), (gross, 0))]),
            ..Activity::default()
        };
        let minutes = vec![
            (from + MINUTE_MS, sale(100, "EUR")),
            (from + 2 * MINUTE_MS, sale(70, "USD")),
            (from + 2 * HOUR_MS + 5 * MINUTE_MS, sale(30, "EUR")),
            (to, sale(1, "GBP")),
        ];

        let points = roll_up(&minutes, from, to, Interval::Hour, &TimeZone::UTC);

        assert_eq!(points.len(), 3);
        assert_eq!(points[0].1.orders_placed, 2);
        assert_eq!(points[0].1.money["EUR"], (100, 0));
        assert_eq!(points[0].1.money["USD"], (70, 0));
        assert_eq!(
            points[1].1,
            Activity {
                money: BTreeMap::from([("EUR".into(), (0, 0)), ("USD".into(), (0, 0))]),
                ..Activity::default()
            }
        );
        assert_eq!(points[2].1.money["EUR"], (30, 0));
        assert!(!points[2].1.money.contains_key("GBP"), "outside the range");
    }

    #[test]
    fn zones_are_looked_up_in_the_tz_database() {
        assert_eq!(zone_name(&tz("europe/berlin")), "Europe/Berlin");
        assert_eq!(zone_name(&tz("UTC")), "UTC");
        for bad in ["", "+05:30", "Z", "Mars/Olympus", "Europe"] {
            assert!(zone(bad).is_none(), "{bad}");
        }
    }
}
