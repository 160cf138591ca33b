//! What the API answers (the members the pages read; the rest is ignored) and how a page
//! shows it: prices, dates, statuses and search highlights.

use serde::Deserialize;
use std::collections::BTreeMap;
use uuid::Uuid;

/// `GET /api/search/events`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    /// Hits in all.
    pub total_hits: u64,
    /// Page number, from 0.
    pub page: u32,
    /// Page size.
    pub size: u32,
    /// This page.
    pub hits: Vec<Hit>,
    /// Facet counts.
    pub facets: Facets,
}

/// One search hit.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hit {
    /// The event.
    pub event_id: Uuid,
    /// Start (RFC 3339).
    pub event_date: String,
    /// Venue.
    pub venue_name: String,
    /// City.
    pub city: Option<String>,
    /// Status.
    pub status: String,
    /// Lowest price, minor units.
    pub min_price: i64,
    /// Currency.
    pub currency: String,
    /// Seats left.
    pub available_seats: i64,
    /// The title with its matches.
    pub name_highlight: Highlight,
}

/// A text with the character ranges that matched.
#[derive(Debug, Clone, Deserialize)]
pub struct Highlight {
    /// The text, unescaped.
    pub text: String,
    /// `[start, end)` character offsets.
    #[serde(default)]
    pub ranges: Vec<[usize; 2]>,
}

impl Highlight {
    /// The text cut into pieces, each marked or not. Pages print the pieces escaped: the
    /// highlight is rebuilt here rather than trusting pre-rendered HTML.
    pub fn parts(&self) -> Vec<(String, bool)> {
        let chars: Vec<char> = self.text.chars().collect();
        let mut parts = Vec::new();
        let mut at = 0;
        for &[start, end] in &self.ranges {
            let (start, end) = (start.min(chars.len()), end.min(chars.len()));
            if start < at || end <= start {
                continue;
            }
            if start > at {
                parts.push((chars[at..start].iter().collect(), false));
            }
            parts.push((chars[start..end].iter().collect(), true));
            at = end;
        }
        if at < chars.len() {
            parts.push((chars[at..].iter().collect(), false));
        }
        parts
    }
}

/// Facet counts of a search.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Facets {
    /// Per city.
    #[serde(default)]
    pub city: BTreeMap<String, u64>,
    /// Per event type.
    #[serde(rename = "type", default)]
    pub event_type: BTreeMap<String, u64>,
}

/// `GET /api/events/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// The event.
    pub event_id: Uuid,
    /// Title.
    pub event_name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Start (RFC 3339).
    pub event_date: String,
    /// Venue.
    #[serde(default)]
    pub venue_name: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Status.
    pub status: String,
    /// Currency.
    pub currency: String,
    /// Price of a seat in minor units, unless its section has its own.
    #[serde(default)]
    pub base_price: i64,
    /// Per-section prices in minor units.
    #[serde(default)]
    pub section_prices: BTreeMap<String, i64>,
    /// The owner.
    #[serde(default)]
    pub organizer_id: Option<Uuid>,
}

/// An event with every member its organizer edits (`GET /api/events/{id}`, `GET /api/events`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    /// The event.
    pub event_id: Uuid,
    /// Title.
    pub event_name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Start (RFC 3339).
    pub event_date: String,
    /// Its venue record, if any.
    #[serde(default)]
    pub venue_id: Option<Uuid>,
    /// Venue.
    #[serde(default)]
    pub venue_name: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Kind of event.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Sale start (RFC 3339).
    pub sale_start_time: String,
    /// Sale end (RFC 3339).
    #[serde(default)]
    pub sale_end_time: Option<String>,
    /// Base price, minor units.
    pub base_price: i64,
    /// Currency.
    pub currency: String,
    /// The IANA time zone it takes place in.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Per-section prices, minor units.
    #[serde(default)]
    pub section_prices: BTreeMap<String, i64>,
    /// Status.
    pub status: String,
    /// The owner.
    pub organizer_id: Uuid,
    /// Places.
    #[serde(default)]
    pub total_seats: Option<i64>,
    /// Seats left.
    #[serde(default)]
    pub available_seats: i64,
}

/// `GET /api/events`.
#[derive(Debug, Clone, Deserialize)]
pub struct EventList {
    /// This page.
    pub events: Vec<EventDetail>,
    /// Where it sits.
    pub page: PageInfo,
}

/// Where a page sits in a listing.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    /// Pages in all.
    pub total_pages: u64,
}

/// `GET /api/venues`.
#[derive(Debug, Clone, Deserialize)]
pub struct VenueList {
    /// This page.
    pub venues: Vec<Venue>,
    /// Where it sits.
    pub page: PageInfo,
}

/// A venue.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Venue {
    /// The venue.
    pub venue_id: Uuid,
    /// Name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// Seats in all.
    pub capacity: i64,
    /// Its layout (reserved seating).
    #[serde(default)]
    pub layout: Option<VenueLayout>,
}

/// A reserved-seating layout.
#[derive(Debug, Clone, Deserialize)]
pub struct VenueLayout {
    /// Sections, in order.
    pub sections: Vec<VenueSection>,
}

/// One section of a layout.
#[derive(Debug, Clone, Deserialize)]
pub struct VenueSection {
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: Vec<VenueRow>,
}

/// One row of a section.
#[derive(Debug, Clone, Deserialize)]
pub struct VenueRow {
    /// Label.
    pub label: String,
    /// Seats.
    pub seats: i64,
}

/// `GET /api/auth/me` (the members pages use).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The user.
    pub user_id: Uuid,
    /// `user | organizer | admin`.
    pub role: String,
}

/// `GET /api/orders/seats/{eventId}`.
#[derive(Debug, Clone, Deserialize)]
pub struct SeatMap {
    /// Every seat.
    pub seats: Vec<Seat>,
}

/// One seat.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seat {
    /// `<section>-<row>-<number>`.
    pub seat_id: String,
    /// Section (absent for general admission).
    #[serde(default)]
    pub section: Option<String>,
    /// Row.
    #[serde(default)]
    pub row: Option<String>,
    /// Number in the row.
    #[serde(default)]
    pub number: Option<i64>,
    /// Price, minor units.
    #[serde(default)]
    pub price: i64,
    /// `available | held | reserved`.
    pub state: String,
}

/// `GET /api/orders/orders`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderList {
    /// The caller's orders.
    pub orders: Vec<Order>,
}

/// One order.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order.
    pub order_id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// Amount, minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// `confirmed | cancelled | …`.
    pub status: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Its tickets.
    #[serde(default)]
    pub tickets: Vec<Ticket>,
}

/// One ticket.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// The seat.
    pub seat_id: String,
    /// The code checked at the door.
    pub code: String,
    /// `valid | …`.
    #[serde(default)]
    pub status: String,
}

/// `GET /api/recs` and `GET /api/recs/related`.
#[derive(Debug, Clone, Deserialize)]
pub struct Recommendations {
    /// Best first.
    pub items: Vec<Recommended>,
}

/// One recommended event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommended {
    /// The event.
    pub event_id: Uuid,
    /// Title.
    pub event_name: String,
    /// Start (RFC 3339).
    pub event_date: String,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// Why an event is recommended.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reason {
    /// People who bought `event_id` also bought it.
    #[serde(rename_all = "camelCase")]
    AlsoBought {
        /// The event they bought.
        event_id: Uuid,
    },
    /// It shares `tag` with `event_id`.
    #[serde(rename_all = "camelCase")]
    SameArtistTag {
        /// The event it is like.
        event_id: Uuid,
        /// The shared tag.
        tag: String,
    },
    /// The organizer of `event_id` runs it.
    #[serde(rename_all = "camelCase")]
    SameOrganizer {
        /// The event it is like.
        event_id: Uuid,
    },
    /// It reads like `event_id`.
    #[serde(rename_all = "camelCase")]
    SimilarTo {
        /// The event it is like.
        event_id: Uuid,
    },
    /// A type the caller buys.
    #[serde(rename_all = "camelCase")]
    YourType {
        /// The type.
        event_type: String,
    },
    /// A city the caller buys in.
    YourCity {
        /// The city.
        city: String,
    },
    /// A city the caller named a favourite.
    FavouriteCity {
        /// The city.
        city: String,
    },
    /// A type the caller named a favourite.
    #[serde(rename_all = "camelCase")]
    FavouriteType {
        /// The type.
        event_type: String,
    },
    /// It sells well in `city`.
    PopularInCity {
        /// The city.
        city: String,
    },
    /// It sells well.
    Popular,
    /// A reason this client does not know yet.
    #[serde(other)]
    Other,
}

impl Reason {
    /// The event the reason refers to, if any.
    pub fn event(&self) -> Option<Uuid> {
        match self {
            Self::AlsoBought { event_id }
            | Self::SameArtistTag { event_id, .. }
            | Self::SameOrganizer { event_id }
            | Self::SimilarTo { event_id } => Some(*event_id),
            _ => None,
        }
    }

    /// The reason as a sentence; `other` names the event it refers to ("this event" on that
    /// event's own page).
    pub fn words(&self, other: &str) -> String {
        match self {
            Self::AlsoBought { .. } => format!("People who bought {other} also bought this"),
            Self::SameArtistTag { tag, .. } => format!("Also tagged “{tag}”, like {other}"),
            Self::SameOrganizer { .. } => format!("From the organizer of {other}"),
            Self::SimilarTo { .. } => format!("Similar to {other}"),
            Self::YourType { event_type } => format!("You go to {event_type} events"),
            Self::YourCity { city } => format!("In {city}, where you go to events"),
            Self::FavouriteCity { city } => format!("In {city}, one of your favourite cities"),
            Self::FavouriteType { event_type } => {
                format!("A {event_type} event, one of your favourite kinds")
            }
            Self::PopularInCity { city } => format!("Popular in {city}"),
            Self::Popular | Self::Other => "Popular right now".to_owned(),
        }
    }
}

/// `GET /api/analytics/events/{id}` (the members the dashboard shows).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventAnalytics {
    /// The event.
    pub event_id: Uuid,
    /// Its name.
    pub event_name: String,
    /// Its status.
    pub status: String,
    /// Seats sold.
    pub sold: i64,
    /// Seats held.
    pub held: i64,
    /// Seats available.
    pub available: i64,
    /// Live orders.
    pub orders: i64,
    /// Cancelled orders.
    pub cancellations: i64,
    /// Revenue per currency.
    #[serde(default)]
    pub revenue: Vec<Revenue>,
    /// Holds by outcome.
    pub holds: HoldFigures,
    /// Sales over time.
    pub series: Series,
}

/// Revenue in one currency.
#[derive(Debug, Clone, Deserialize)]
pub struct Revenue {
    /// Currency.
    pub currency: String,
    /// Gross less refunds, minor units.
    pub net: i64,
}

/// Holds by outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct HoldFigures {
    /// Converted / created.
    #[serde(default)]
    pub conversion: Option<f64>,
}

/// A series of figures.
#[derive(Debug, Clone, Deserialize)]
pub struct Series {
    /// `hour | day | week`.
    pub interval: String,
    /// Points, oldest first.
    pub points: Vec<Point>,
}

/// One point of a series.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Its start (RFC 3339).
    pub start: String,
    /// Tickets sold in it.
    pub tickets_sold: i64,
}

/// Revenue per currency in words: `€120 · $40`, or `0` when there is none.
pub fn revenue_words(revenue: &[Revenue]) -> String {
    if revenue.is_empty() {
        return "0".to_owned();
    }
    revenue
        .iter()
        .map(|r| money(r.net, &r.currency))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// `amount` minor units of `currency` as people write it: `€40`, `€12.50`, `CHF 30`.
pub fn money(amount: i64, currency: &str) -> String {
    let symbol = match currency {
        "EUR" => "€",
        "USD" => "$",
        "GBP" => "£",
        _ => "",
    };
    let sign = if amount < 0 { "-" } else { "" };
    let amount = amount.unsigned_abs();
    let units = if amount.is_multiple_of(100) {
        format!("{}", amount / 100)
    } else {
        format!("{}.{:02}", amount / 100, amount % 100)
    };
    if symbol.is_empty() {
        format!("{sign}{currency} {units}")
    } else {
        format!("{sign}{symbol}{units}")
    }
}

/// An RFC 3339 time as `Mon 4 Jan 2027, 20:00 UTC`; the text itself when it does not parse.
pub fn when(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return rfc3339.to_owned();
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
    );
    at.format(&format).unwrap_or_else(|_| rfc3339.to_owned())
}

/// An RFC 3339 time as a `datetime-local` input's value in UTC (`2027-01-04T20:00`), or `""`.
pub fn local_input(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let Ok(at) = time::OffsetDateTime::parse(rfc3339, &Rfc3339) else {
        return String::new();
    };
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Minor units as a price input's value: `40`, `12.50`.
pub fn units(amount: i64) -> String {
    if amount % 100 == 0 {
        format!("{}", amount / 100)
    } else {
        format!("{}.{:02}", amount / 100, (amount % 100).abs())
    }
}

/// An event status in words.
pub fn status_words(status: &str) -> &'static str {
    match status {
        "ON_SALE" => "On sale",
        "UPCOMING" => "Coming soon",
        "SOLD_OUT" => "Sold out",
        "CANCELLED" => "Cancelled",
        _ => "",
    }
}

fn utc() -> String {
    "UTC".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_read_as_people_write_them() {
        assert_eq!(money(4000, "EUR"), "€40");
        assert_eq!(money(1250, "USD"), "$12.50");
        assert_eq!(money(3000, "CHF"), "CHF 30");
    }

    #[test]
    fn dates_read_in_words() {
        assert_eq!(when("2027-01-04T20:00:00Z"), "Mon 4 Jan 2027, 20:00 UTC");
        assert_eq!(when("not a date"), "not a date");
        assert_eq!(local_input("2027-01-04T21:00:00+01:00"), "2027-01-04T20:00");
        assert_eq!(local_input("soon"), "");
    }

    #[test]
    fn prices_fill_inputs_in_units() {
        assert_eq!(units(4000), "40");
        assert_eq!(units(1250), "12.50");
    }

    #[test]
    fn highlights_split_into_marked_parts() {
        let h = Highlight {
            text: "Moonlight Sonata Night".into(),
            ranges: vec![[10, 16]],
        };
        assert_eq!(
            h.parts(),
            vec![
                ("Moonlight ".to_owned(), false),
                ("Sonata".to_owned(), true),
                (" Night".to_owned(), false)
            ]
        );
    }
}
