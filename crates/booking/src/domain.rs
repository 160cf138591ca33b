//! Booking's vocabulary: inventories, seats, holds, payment intents, orders and tickets, the
//! waitlist, and the rules that need no database (seat ids, prices, ticket codes).

use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Seat states as stored.
pub mod seat_state {
    /// On sale.
    pub const AVAILABLE: i64 = 0;
    /// In a hold (live, or expired and not yet swept).
    pub const HELD: i64 = 1;
    /// Sold: a valid ticket exists.
    pub const SOLD: i64 = 2;
}

/// The seat id of general-admission place `n` (1-based): general admission is stored as
/// numbered places so that one guard covers both kinds of event.
pub fn ga_seat_id(n: i64) -> String {
    format!("GA-{n}")
}

/// The section of general-admission places.
pub const GA_SECTION: &str = "GA";

/// Booking's read model of one event, fed by the events service's domain events, and its
/// inventory counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The event.
    pub event_id: Uuid,
    /// Its organizer (who may see its orders).
    pub organizer_id: Uuid,
    /// The event's status as last published (`UPCOMING`, `ON_SALE`, `SOLD_OUT`, `CANCELLED`).
    pub status: String,
    /// The event was deleted.
    pub deleted: bool,
    /// When the event takes place (epoch ms).
    pub event_date: i64,
    /// When the sale opens (epoch ms).
    pub sale_start: i64,
    /// When it closes, if set (epoch ms).
    pub sale_end: Option<i64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Price of a seat in minor units, unless its section has its own.
    pub base_price: i64,
    /// Per-section prices in minor units.
    pub section_prices: BTreeMap<String, i64>,
    /// Reserved seating (a layout) rather than general admission.
    pub reserved: bool,
    /// Seats in all.
    pub capacity: i64,
    /// Seats in holds (live ones, once expired holds are swept).
    pub held: i64,
    /// Seats sold.
    pub sold: i64,
    /// Increases with every inventory change.
    pub version: i64,
    /// When expired holds next need sweeping (epoch ms): at or before the earliest expiry of
    /// the event's active holds.
    pub sweep_at: i64,
}

/// The price of one seat of `section`: its section's price, or the event's base price.
pub fn seat_price(section_prices: &BTreeMap<String, i64>, base_price: i64, section: &str) -> i64 {
    section_prices.get(section).copied().unwrap_or(base_price)
}

impl Inventory {
    /// Seats neither sold nor held.
    pub fn available(&self) -> i64 {
        self.capacity - self.held - self.sold
    }

    /// The price of one seat of `section`.
    pub fn price_of(&self, section: &str) -> i64 {
        seat_price(&self.section_prices, self.base_price, section)
    }

    /// The price tier of `section`: the section's name when it has its own price, else `base`.
    pub fn tier_of<'a>(&self, section: &'a str) -> &'a str {
        if self.section_prices.contains_key(section) {
            section
        } else {
            "base"
        }
    }

    /// Why a hold cannot be taken at `now`, if it cannot.
    pub fn sale_closed(&self, now: i64) -> Option<&'static str> {
        if self.deleted || self.status == "CANCELLED" {
            Some("the event is cancelled")
        } else if now < self.sale_start {
            Some("the sale has not started")
        } else if self.sale_end.is_some_and(|end| now >= end) || now >= self.event_date {
            Some("the sale has ended")
        } else {
            None
        }
    }

    /// The figures published with each change.
    pub fn availability(&self) -> evently_bus::catalog::Availability {
        evently_bus::catalog::Availability {
            capacity: self.capacity,
            available: self.available(),
            held: self.held,
            sold: self.sold,
            version: self.version,
        }
    }
}

/// The section of seat id `seat` (`A-3-12` → `A`; `GA-7` → `GA`).
pub fn section_of(seat: &str) -> &str {
    seat.split('-').next().unwrap_or(seat)
}

/// Whether `seat` is shaped like a seat id: `<section>-<row>-<number>` or `GA-<number>`, made
/// of letters, digits and `_`, at most 64 characters.
pub fn is_seat_id(seat: &str) -> bool {
    if seat.is_empty() || seat.len() > 64 {
        return false;
    }
    let parts: Vec<&str> = seat.split('-').collect();
    let tokens_ok = parts
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    let number_ok = parts
        .last()
        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()));
    tokens_ok && number_ok && (parts.len() == 3 || (parts.len() == 2 && parts[0] == GA_SECTION))
}

/// What a hold asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These seats, all or nothing.
    Seats(Vec<String>),
    /// This many seats: general admission, or the best available on a reserved-seat event
    /// (adjacent in one row where possible), optionally within one section.
    Best {
        /// How many.
        quantity: i64,
        /// Only this section.
        section: Option<String>,
    },
}

impl Selection {
    /// How many seats.
    pub fn quantity(&self) -> i64 {
        match self {
            Selection::Seats(s) => i64::try_from(s.len()).unwrap_or(i64::MAX),
            Selection::Best { quantity, .. } => *quantity,
        }
    }
}

/// Where a hold comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// The buyer took it.
    Buyer,
    /// A waitlist offer made in the buyer's name.
    Waitlist,
}

impl HoldKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::Buyer => "buyer",
            HoldKind::Waitlist => "waitlist",
        }
    }
}

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Its id.
    pub id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The held seats.
    pub seat_ids: Vec<String>,
    /// `buyer` or `waitlist`.
    pub kind: String,
    /// `active`, `released`, `expired`, `purchased` or `cancelled`.
    pub status: String,
    /// Created (epoch ms).
    pub created_at: i64,
    /// Expires (epoch ms).
    pub expires_at: i64,
}

impl Hold {
    /// Live at `now`: active and not yet expired.
    pub fn is_live(&self, now: i64) -> bool {
        hold_is_live(&self.status, self.expires_at, now)
    }
}

/// Whether a hold of `status` expiring at `expires_at` is live at `now` (read without the rest
/// of the hold).
pub fn hold_is_live(status: &str, expires_at: i64, now: i64) -> bool {
    status == "active" && expires_at > now
}

/// A simulated payment intent as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    /// Its id.
    pub id: Uuid,
    /// The hold it pays for.
    pub hold_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// Minor units, computed from the hold.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// `requires_confirmation`, `succeeded`, `declined`, `cancelled` or `refunded`.
    pub status: String,
    /// SHA-256 of the client secret, hex.
    pub secret_hash: String,
}

/// One ticket of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// Its id.
    pub ticket_id: Uuid,
    /// The seat (or general-admission place) it admits to.
    pub seat_id: String,
    /// The unguessable code printed on the ticket.
    pub code: String,
    /// `valid` or `void`.
    pub status: String,
}

/// An order as stored and answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Its id.
    pub order_id: Uuid,
    /// The event.
    pub event_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The hold it was bought from.
    pub hold_id: Uuid,
    /// The payment.
    pub payment_intent_id: Uuid,
    /// The seats bought.
    pub seat_ids: Vec<String>,
    /// Minor units paid.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// `confirmed` or `cancelled`.
    pub status: String,
    /// Minor units refunded, once cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_amount: Option<i64>,
    /// Why it was cancelled: `buyer`, `organizer`, `admin` or `event-cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// When it was placed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    /// The tickets.
    pub tickets: Vec<Ticket>,
}

/// A seat on the seat map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatView {
    /// `A-3-12`, or `GA-7` for a general-admission place.
    pub seat_id: String,
    /// Section.
    pub section: String,
    /// Row label.
    pub row: String,
    /// Number in the row.
    pub number: i64,
    /// Price tier: the section's name when it has its own price, else `base`.
    pub price_tier: String,
    /// Price in minor units.
    pub price: i64,
    /// `available`, `held` (in a live hold) or `reserved` (sold).
    pub state: String,
}

/// An event's availability, exact as of the read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityView {
    /// The event.
    pub event_id: Uuid,
    /// The event's status.
    pub status: String,
    /// Whether holds are taken now (status and sale window).
    pub on_sale: bool,
    /// Seats in all.
    pub capacity: i64,
    /// Seats neither sold nor in a live hold.
    pub available: i64,
    /// Seats in live holds.
    pub held: i64,
    /// Seats sold.
    pub sold: i64,
    /// `available == 0`: sold plus live holds fill the event.
    pub sold_out: bool,
    /// Increases with every inventory change.
    pub version: i64,
}

/// A waitlist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistEntry {
    /// The event.
    pub event_id: Uuid,
    /// Seats wanted.
    pub quantity: i64,
    /// `waiting` or `offered` while on the list; then `claimed`, `left`, `lapsed` or `closed`.
    pub status: String,
    /// Place in the list (1 = next to be offered), while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// The hold offered, once offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<Uuid>,
    /// When the offer lapses (RFC 3339), once offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_expires_at: Option<String>,
}

/// An inventory audit's raw counts (see [`crate::audit::Audit`]).
pub use crate::audit::Audit;

/// Settings the store applies inside its transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most tickets one user may hold and own for one event.
    pub max_tickets_per_user: i64,
    /// How long a waitlist offer lasts (ms).
    pub offer_ttl_ms: i64,
}

/// 16 random bytes as URL-safe base64 (22 characters): ticket codes and client secrets.
///
/// # Errors
/// When the operating system has no randomness to give.
pub fn random_token() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of `text`, hex.
pub fn sha256_hex(text: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text);
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// RFC 3339 text of epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    evently_bus::envelope::time_from_ms(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Picks `quantity` seats from `candidates` (available seats in layout order: id, section,
/// row, number): the first run of adjacent numbers in one row long enough, else the first
/// `quantity`. `None` when there are too few.
pub fn pick_best(
    candidates: &[(String, String, String, i64)],
    quantity: usize,
) -> Option<Vec<String>> {
    if candidates.len() < quantity || quantity == 0 {
        return None;
    }
    let mut start = 0;
    for i in 0..candidates.len() {
        if i > start {
            let (_, s0, r0, n0) = &candidates[i - 1];
            let (_, s1, r1, n1) = &candidates[i];
            if s0 != s1 || r0 != r1 || *n1 != n0 + 1 {
                start = i;
            }
        }
        if i + 1 - start == quantity {
            return Some(candidates[start..=i].iter().map(|c| c.0.clone()).collect());
        }
    }
    Some(candidates[..quantity].iter().map(|c| c.0.clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(s: &str, r: &str, n: i64) -> (String, String, String, i64) {
        (format!("{s}-{r}-{n}"), s.into(), r.into(), n)
    }

    #[test]
    fn best_available_prefers_adjacent_seats_in_one_row() {
        let seats = [
            seat("A", "1", 1),
            seat("A", "1", 3),
            seat("A", "1", 4),
            seat("A", "2", 5),
        ];
        assert_eq!(pick_best(&seats, 2).unwrap(), ["A-1-3", "A-1-4"]);
        assert_eq!(pick_best(&seats, 1).unwrap(), ["A-1-1"]);
        // No run of three: the first three, scattered.
        assert_eq!(pick_best(&seats, 3).unwrap(), ["A-1-1", "A-1-3", "A-1-4"]);
        assert!(pick_best(&seats, 5).is_none());
        // A run does not continue across rows.
        let rows = [seat("A", "1", 9), seat("A", "2", 10)];
        assert_eq!(pick_best(&rows, 2).unwrap(), ["A-1-9", "A-2-10"]);
    }

    #[test]
    fn seat_ids_are_checked_for_shape() {
        for ok in ["A-3-12", "GA-7", "Balcony_1-AA-1"] {
            assert!(is_seat_id(ok), "{ok}");
        }
        for bad in [
            "",
            "A",
            "A-3",
            "A-3-x",
            "A--1",
            "A-3-1-2",
            "A-3-1 ",
            "B-7",
            "A-3-1\u{0}",
        ] {
            assert!(!is_seat_id(bad), "{bad:?}");
        }
        assert_eq!(section_of("A-3-12"), "A");
    }

    #[test]
    fn random_tokens_differ_and_secrets_compare_exactly() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &b));
        assert!(!constant_time_eq("abc", "abcd"));
        assert_eq!(sha256_hex(b"abc").len(), 64);
    }
}
