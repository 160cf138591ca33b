//! An event's inventory: booking's read model of the event (status, sale window, prices),
//! its seats and their states, what a hold asks for, and how seats are chosen and shown.
//!
//! It owns the seat vocabulary (seat ids, sections, general-admission places), the sale
//! window rule every inventory change starts with, the best-available choice and the views
//! of availability and the seat map. It reads nothing: the store hands it what it read.

use evently_core::Problem;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// A seat's state, stored as a number (`seats.state`): the store's conditional updates and
/// its sold-seat index use the numbers, the rules use this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeatState {
    /// On sale.
    Available,
    /// In a hold (live, or expired and not yet swept).
    Held,
    /// Sold: a valid ticket exists.
    Sold,
}

impl SeatState {
    /// The stored number.
    pub fn stored(self) -> i64 {
        match self {
            SeatState::Available => 0,
            SeatState::Held => 1,
            SeatState::Sold => 2,
        }
    }
}

impl TryFrom<i64> for SeatState {
    type Error = String;
    fn try_from(stored: i64) -> Result<Self, Self::Error> {
        match stored {
            0 => Ok(SeatState::Available),
            1 => Ok(SeatState::Held),
            2 => Ok(SeatState::Sold),
            other => Err(format!("unknown seat state {other}")),
        }
    }
}

/// The event status (as the events service publishes it) of a cancelled event.
pub const EVENT_CANCELLED: &str = "CANCELLED";

/// The seat id of general-admission place `n` (1-based): general admission is stored as
/// numbered places so that one guard covers both kinds of event.
pub fn ga_seat_id(n: i64) -> String {
    format!("GA-{n}")
}

/// The section of general-admission places.
pub const GA_SECTION: &str = "GA";

/// A free seat as the best-available choice sees it, in layout order: id, section, row label,
/// number in the row.
pub type Candidate = (String, String, String, i64);

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

    /// Every seat is sold (so none is held): sold out for every buyer alike.
    pub fn fully_sold(&self) -> bool {
        self.capacity > 0 && self.sold >= self.capacity
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

    /// The event was cancelled or deleted: nothing of it can be bought any more.
    pub fn is_cancelled(&self) -> bool {
        self.deleted || self.status == EVENT_CANCELLED
    }

    /// Why a hold cannot be taken at `now`, if it cannot.
    pub fn sale_closed(&self, now: i64) -> Option<&'static str> {
        if self.is_cancelled() {
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

    /// Checks what a hold asks for: either `seat_ids` (1 to `max_seats` distinct seat ids,
    /// without `section`) or `quantity` (1 to `max_seats`, optionally within a `section` named
    /// by 1 to 20 letters, digits or `_`).
    ///
    /// # Errors
    /// 422 naming the offending fields.
    pub fn parse(
        max_seats: u32,
        seat_ids: Option<Vec<String>>,
        quantity: Option<i64>,
        section: Option<String>,
    ) -> Result<Selection, Problem> {
        let max = i64::from(max_seats);
        match (seat_ids, quantity) {
            (Some(seats), None) => {
                let mut problem = None::<Problem>;
                let mut add = |pointer: String, detail: String| {
                    problem = Some(
                        problem
                            .take()
                            .unwrap_or_else(Problem::validation)
                            .field(pointer, detail),
                    );
                };
                if seats.is_empty() || seats.len() > max_seats as usize {
                    add("/seatIds".into(), format!("must hold 1 to {max} seats"));
                }
                if section.is_some() {
                    add("/section".into(), "only with quantity".into());
                }
                let mut seen = std::collections::HashSet::new();
                for (i, seat) in seats.iter().enumerate().take(max as usize + 1) {
                    if !is_seat_id(seat) {
                        add(format!("/seatIds/{i}"), "not a seat id".into());
                    } else if !seen.insert(seat.as_str()) {
                        add(format!("/seatIds/{i}"), "duplicate seat".into());
                    }
                }
                match problem {
                    Some(p) => Err(p),
                    None => Ok(Selection::Seats(seats)),
                }
            }
            (None, Some(quantity)) => {
                if !(1..=max).contains(&quantity) {
                    return Err(Problem::invalid_field(
                        "/quantity",
                        format!("must be 1 to {max}"),
                    ));
                }
                if let Some(s) = &section
                    && (s.is_empty()
                        || s.len() > 20
                        || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                {
                    return Err(Problem::invalid_field("/section", "not a section name"));
                }
                Ok(Selection::Best { quantity, section })
            }
            _ => Err(Problem::validation()
                .detail("give either seatIds or quantity")
                .field("/seatIds", "give either seatIds or quantity")),
        }
    }
}

/// How many free seats, in layout order, a best-available choice of `quantity` looks
/// through: adjacent seats on a reserved-seat event are looked for among the first free ones
/// (wide enough to find a run past a few scattered gaps, bounded so the read stays small);
/// one seat, or general admission, is simply the first ones.
pub fn best_window(reserved: bool, quantity: i64) -> i64 {
    if reserved && quantity > 1 {
        offer_window(quantity)
    } else {
        quantity
    }
}

/// How many free seats, in layout order, a waitlist offer of `quantity` looks through.
pub fn offer_window(quantity: i64) -> i64 {
    (quantity.saturating_mul(20)).max(200)
}

/// Picks `quantity` seats from `candidates` (available seats in layout order): the first run
/// of adjacent numbers in one row long enough, else the first `quantity`. `None` when there
/// are too few.
pub fn pick_best(candidates: &[Candidate], quantity: usize) -> Option<Vec<String>> {
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

/// Whether a seat in `state`, held (if it is) by `holder` until `hold_expires`, keeps
/// `buyer` from holding it at `now`: sold, or in another buyer's live hold. The buyer's own
/// hold never blocks them (a new hold replaces it), and an expired hold blocks nobody.
pub fn seat_blocks(
    state: SeatState,
    holder: Option<Uuid>,
    hold_expires: Option<i64>,
    buyer: Uuid,
    now: i64,
) -> bool {
    match state {
        SeatState::Sold => true,
        SeatState::Held => holder != Some(buyer) && hold_expires.is_some_and(|e| e > now),
        SeatState::Available => false,
    }
}

/// How the seat map shows a seat in `state`, held (if it is) until `hold_expires`, at
/// `now`: `reserved` when sold, `held` while its hold is live, otherwise `available` (an
/// expired hold not yet swept no longer holds it).
pub fn seat_shown_as(state: SeatState, hold_expires: Option<i64>, now: i64) -> &'static str {
    match state {
        SeatState::Sold => "reserved",
        SeatState::Held if hold_expires.is_some_and(|e| e > now) => "held",
        SeatState::Held | SeatState::Available => "available",
    }
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

impl AvailabilityView {
    /// The availability of `inv` at `now`, where `expired` of its held seats are in holds that
    /// expired but were not yet swept (they count as available).
    pub fn of(inv: &Inventory, expired: i64, now: i64) -> Self {
        let held = inv.held - expired;
        let available = inv.capacity - held - inv.sold;
        Self {
            event_id: inv.event_id,
            status: inv.status.clone(),
            on_sale: inv.sale_closed(now).is_none(),
            capacity: inv.capacity,
            available,
            held,
            sold: inv.sold,
            sold_out: available == 0,
            version: inv.version,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An event on sale from 1,000 to 10,000 (epoch ms), taking place at 20,000: 10 seats,
    /// none held or sold.
    pub(crate) fn on_sale() -> Inventory {
        Inventory {
            event_id: Uuid::from_u128(1),
            organizer_id: Uuid::from_u128(2),
            status: "ON_SALE".into(),
            deleted: false,
            event_date: 20_000,
            sale_start: 1_000,
            sale_end: Some(10_000),
            currency: "EUR".into(),
            base_price: 3000,
            section_prices: BTreeMap::from([("A".to_owned(), 5000)]),
            reserved: true,
            capacity: 10,
            held: 0,
            sold: 0,
            version: 0,
            sweep_at: i64::MAX,
        }
    }

    fn seat(s: &str, r: &str, n: i64) -> Candidate {
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
    fn the_sale_is_open_between_its_start_and_its_end_or_the_event() {
        let mut inv = on_sale();

        assert_eq!(inv.sale_closed(999), Some("the sale has not started"));
        assert_eq!(inv.sale_closed(1_000), None);
        assert_eq!(inv.sale_closed(9_999), None);
        assert_eq!(inv.sale_closed(10_000), Some("the sale has ended"));
        inv.sale_end = None;
        assert_eq!(inv.sale_closed(19_999), None);
        assert_eq!(inv.sale_closed(20_000), Some("the sale has ended"));
        inv.status = EVENT_CANCELLED.into();
        assert_eq!(inv.sale_closed(5_000), Some("the event is cancelled"));
        let deleted = Inventory {
            deleted: true,
            ..on_sale()
        };
        assert_eq!(deleted.sale_closed(5_000), Some("the event is cancelled"));
        assert!(deleted.is_cancelled());
        assert!(!on_sale().is_cancelled());
    }

    #[test]
    fn prices_come_from_the_section_or_the_base() {
        let inv = on_sale();

        assert_eq!((inv.price_of("A"), inv.tier_of("A")), (5000, "A"));
        assert_eq!((inv.price_of("B"), inv.tier_of("B")), (3000, "base"));
    }

    #[test]
    fn best_available_looks_wider_only_for_adjacent_reserved_seats() {
        assert_eq!(best_window(true, 1), 1);
        assert_eq!(best_window(false, 6), 6);
        assert_eq!(best_window(true, 2), 200);
        assert_eq!(best_window(true, 15), 300);
        assert_eq!(offer_window(1), 200);
    }

    #[test]
    fn a_seat_blocks_others_when_sold_or_in_a_live_hold_of_someone_else() {
        let (me, other) = (Uuid::from_u128(7), Uuid::from_u128(8));

        assert!(seat_blocks(SeatState::Sold, None, None, me, 5));
        assert!(seat_blocks(SeatState::Held, Some(other), Some(6), me, 5));
        assert!(!seat_blocks(SeatState::Held, Some(other), Some(5), me, 5));
        assert!(!seat_blocks(SeatState::Held, Some(me), Some(6), me, 5));
        assert!(!seat_blocks(SeatState::Available, None, None, me, 5));
    }

    #[test]
    fn seat_states_parse_from_their_stored_numbers() {
        for state in [SeatState::Available, SeatState::Held, SeatState::Sold] {
            assert_eq!(SeatState::try_from(state.stored()), Ok(state));
        }
        assert!(SeatState::try_from(3).is_err());
    }

    #[test]
    fn the_seat_map_shows_expired_holds_as_available() {
        assert_eq!(seat_shown_as(SeatState::Sold, None, 5), "reserved");
        assert_eq!(seat_shown_as(SeatState::Held, Some(6), 5), "held");
        assert_eq!(seat_shown_as(SeatState::Held, Some(5), 5), "available");
        assert_eq!(seat_shown_as(SeatState::Held, None, 5), "available");
        assert_eq!(seat_shown_as(SeatState::Available, None, 5), "available");
    }

    #[test]
    fn availability_counts_unswept_expired_holds_as_available() {
        let inv = Inventory {
            held: 4,
            sold: 3,
            ..on_sale()
        };

        let view = AvailabilityView::of(&inv, 1, 5_000);

        assert_eq!((view.held, view.available, view.sold), (3, 4, 3));
        assert!(view.on_sale && !view.sold_out);
        let full = AvailabilityView::of(&Inventory { held: 7, ..inv }, 0, 50_000);
        assert!(full.sold_out && !full.on_sale);
    }
}
