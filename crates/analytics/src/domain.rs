//! What analytics makes of the domain events, and how per-minute activity becomes a series
//! (pure).

use evently_bus::catalog::Availability;
use evently_bus::{DomainEvent, Envelope};
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
}

impl Change {
    /// The event the change concerns.
    pub fn event_id(&self) -> Uuid {
        match self {
            Change::Event(info, _) => info.event_id,
            Change::Status { event_id, .. } | Change::Deleted { event_id } => *event_id,
            Change::Inventory(fact) => fact.event_id,
        }
    }
}

/// The types analytics reads.
pub const TYPES: [&str; 10] = [
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
];

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

    /// Its length in ms (fixed: offsets are fixed, so no day is longer than another).
    pub fn len_ms(self) -> i64 {
        match self {
            Interval::Hour => HOUR_MS,
            Interval::Day => DAY_MS,
            Interval::Week => WEEK_MS,
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

    /// The start (epoch ms) of the point holding `t`, in local time `offset_ms` east of UTC.
    pub fn floor(self, t: i64, offset_ms: i64) -> i64 {
        let local = t + offset_ms;
        let start = match self {
            Interval::Hour | Interval::Day => local.div_euclid(self.len_ms()) * self.len_ms(),
            Interval::Week => {
                let day = local.div_euclid(DAY_MS);
                // 1970-01-01 was a Thursday: Monday is three days later in the cycle.
                (day - (day + 3).rem_euclid(7)) * DAY_MS
            }
        };
        start - offset_ms
    }
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
/// `interval` covering `[from, to)` in local time `offset_ms` east of UTC; each point is
/// `(start, activity)`. Every currency seen in the range appears in every point.
pub fn roll_up(
    minutes: &[(i64, Activity)],
    from: i64,
    to: i64,
    interval: Interval,
    offset_ms: i64,
) -> Vec<(i64, Activity)> {
    let first = interval.floor(from, offset_ms);
    let step = interval.len_ms();
    let mut points: Vec<(i64, Activity)> = Vec::new();
    let mut start = first;
    while start < to {
        points.push((start, Activity::default()));
        start += step;
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
        let index = usize::try_from((interval.floor(*minute, offset_ms) - first) / step).ok();
        if let Some(point) = index.and_then(|i| points.get_mut(i)) {
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

/// Parses a fixed UTC offset `Z`, `+HH:MM` or `-HH:MM` (at most ±14:00, minutes a multiple
/// of 15) into ms east of UTC.
pub fn parse_offset(raw: &str) -> Option<i64> {
    if raw == "Z" || raw == "+00:00" || raw == "-00:00" {
        return Some(0);
    }
    let (sign, rest) = match raw.as_bytes().first()? {
        b'+' => (1, &raw[1..]),
        b'-' => (-1, &raw[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m >= 60 || m % 15 != 0 || (h == 14 && m > 0) {
        return None;
    }
    Some(sign * (h * HOUR_MS + m * MINUTE_MS))
}

/// Formats an offset of `offset_ms` as `+HH:MM`.
pub fn format_offset(offset_ms: i64) -> String {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let minutes = offset_ms.abs() / MINUTE_MS;
    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
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

    #[test]
    fn points_start_at_local_boundaries() {
        let offset = parse_offset("+05:30").unwrap();
        // 2026-03-04 20:00 UTC is 01:30 on 2026-03-05 in +05:30.
        let t = at("2026-03-04T20:00:00Z");
        assert_eq!(Interval::Hour.floor(t, offset), at("2026-03-04T19:30:00Z"));
        assert_eq!(Interval::Day.floor(t, offset), at("2026-03-04T18:30:00Z"));
        // 2026-03-05 is a Thursday: its week began on Monday 2026-03-02 local.
        assert_eq!(Interval::Week.floor(t, offset), at("2026-03-01T18:30:00Z"));
        assert_eq!(
            Interval::Week.floor(at("2026-03-02T00:00:00Z"), 0),
            at("2026-03-02T00:00:00Z")
        );
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

        let points = roll_up(&minutes, from, to, Interval::Hour, 0);

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
    fn offsets_parse_strictly() {
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("+05:45"), Some(5 * HOUR_MS + 45 * MINUTE_MS));
        assert_eq!(
            parse_offset("-03:30"),
            Some(-(3 * HOUR_MS + 30 * MINUTE_MS))
        );
        for bad in ["", "05:00", "+5:00", "+15:00", "+05:07", "+aa:00", "UTC"] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
        assert_eq!(format_offset(-(3 * HOUR_MS + 30 * MINUTE_MS)), "-03:30");
    }
}
