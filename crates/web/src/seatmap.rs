//! The venue's seat map as SVG: sections stacked, each row a line of seats, every seat a
//! focusable button with an accessible name ("Section A, row 3, seat 12, €40, available").
//!
//! Geometry is fixed by the layout alone, never by seat states, so a live update changes a
//! seat's colour and name but nothing moves (no layout shift).

use crate::views::{Seat, money};

/// The side of one seat cell, in SVG units (CSS pixels at scale 1).
const CELL: u32 = 30;
/// The seat square inside its cell.
const SEAT: u32 = 24;
/// Room for the row labels on the left.
const GUTTER: u32 = 36;
/// Room for a section's heading.
const HEADING: u32 = 28;
/// Room between sections.
const GAP: u32 = 14;

/// A row's label and its seats, in the venue's order.
type Row<'a> = (String, Vec<&'a Seat>);

/// One seat as drawn.
#[derive(Debug, Clone)]
pub struct SeatSvg {
    /// `A-3-12`.
    pub id: String,
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Centre of its number.
    pub text_x: u32,
    /// Baseline of its number.
    pub text_y: u32,
    /// Its number.
    pub number: String,
    /// "Section A, row 3, seat 12, €40" (the state is added after it).
    pub label: String,
    /// `available | held | reserved`.
    pub state: String,
    /// The state in words.
    pub state_words: &'static str,
    /// Price, minor units.
    pub price: i64,
    /// Index of its price tier (for its colour): 0 for the dearest.
    pub tier: usize,
}

/// A row label.
#[derive(Debug, Clone)]
pub struct RowSvg {
    /// Label.
    pub label: String,
    /// Baseline.
    pub y: u32,
}

/// A section.
#[derive(Debug, Clone)]
pub struct SectionSvg {
    /// Name.
    pub name: String,
    /// Baseline of its heading.
    pub y: u32,
    /// Its rows.
    pub rows: Vec<RowSvg>,
    /// Its seats.
    pub seats: Vec<SeatSvg>,
}

/// A price tier of the legend.
#[derive(Debug, Clone)]
pub struct Tier {
    /// Index (colour).
    pub index: usize,
    /// The price in words.
    pub price: String,
}

/// The drawn map.
#[derive(Debug, Clone)]
pub struct SeatMapSvg {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Sections, top to bottom.
    pub sections: Vec<SectionSvg>,
    /// Price tiers, dearest first.
    pub tiers: Vec<Tier>,
}

/// A seat's state in words.
pub fn state_words(state: &str) -> &'static str {
    match state {
        "available" => "available",
        "held" => "held",
        "reserved" => "sold",
        _ => "unavailable",
    }
}

impl SeatMapSvg {
    /// The map of `seats` priced in `currency`; `None` when the event has no reserved seats
    /// (general admission).
    pub fn new(seats: &[Seat], currency: &str) -> Option<Self> {
        // General admission lists its places as `GA-<n>`: there is nothing to choose from.
        let reserved = |s: &Seat| match (&s.section, &s.row, s.number) {
            (Some(section), Some(row), Some(number)) => {
                s.seat_id == format!("{section}-{row}-{number}")
            }
            _ => false,
        };
        if seats.is_empty() || !seats.iter().all(reserved) {
            return None;
        }
        let mut prices: Vec<i64> = seats.iter().map(|s| s.price).collect();
        prices.sort_unstable_by(|a, b| b.cmp(a));
        prices.dedup();
        // Sections and rows keep the venue's order (the order the API lists seats in).
        let mut grouped: Vec<(String, Vec<Row<'_>>)> = Vec::new();
        for seat in seats {
            let section = seat.section.clone().unwrap_or_default();
            let row = seat.row.clone().unwrap_or_default();
            let si = match grouped.iter().position(|(name, _)| *name == section) {
                Some(i) => i,
                None => {
                    grouped.push((section, Vec::new()));
                    grouped.len() - 1
                }
            };
            let rows = &mut grouped[si].1;
            let ri = match rows.iter().position(|(label, _)| *label == row) {
                Some(i) => i,
                None => {
                    rows.push((row, Vec::new()));
                    rows.len() - 1
                }
            };
            rows[ri].1.push(seat);
        }
        let widest = grouped
            .iter()
            .flat_map(|(_, rows)| rows.iter().map(|(_, seats)| seats.len()))
            .max()
            .unwrap_or(0);
        let width = GUTTER + u32::try_from(widest).unwrap_or(u32::MAX / CELL) * CELL + 4;
        let mut y = 0;
        let mut sections = Vec::new();
        for (name, rows) in grouped {
            y += HEADING;
            let heading_y = y - 10;
            let mut row_svgs = Vec::new();
            let mut seat_svgs = Vec::new();
            for (label, mut row_seats) in rows {
                row_seats.sort_by_key(|s| s.number.unwrap_or(0));
                row_svgs.push(RowSvg {
                    label: label.clone(),
                    y: y + CELL / 2 + 5,
                });
                for (i, seat) in row_seats.into_iter().enumerate() {
                    let x = GUTTER + u32::try_from(i).unwrap_or(0) * CELL;
                    let number = seat.number.map(|n| n.to_string()).unwrap_or_default();
                    let price = money(seat.price, currency);
                    seat_svgs.push(SeatSvg {
                        id: seat.seat_id.clone(),
                        x,
                        y: y + (CELL - SEAT) / 2,
                        text_x: x + SEAT / 2,
                        text_y: y + (CELL - SEAT) / 2 + SEAT / 2 + 4,
                        label: format!("Section {name}, row {label}, seat {number}, {price}"),
                        number,
                        state: seat.state.clone(),
                        state_words: state_words(&seat.state),
                        price: seat.price,
                        tier: prices.iter().position(|p| *p == seat.price).unwrap_or(0),
                    });
                }
                y += CELL;
            }
            sections.push(SectionSvg {
                name,
                y: heading_y,
                rows: row_svgs,
                seats: seat_svgs,
            });
            y += GAP;
        }
        let tiers = prices
            .iter()
            .enumerate()
            .map(|(index, p)| Tier {
                index,
                price: money(*p, currency),
            })
            .collect();
        Some(Self {
            width,
            height: y,
            sections,
            tiers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(section: &str, row: &str, number: i64, price: i64, state: &str) -> Seat {
        Seat {
            seat_id: format!("{section}-{row}-{number}"),
            section: Some(section.into()),
            row: Some(row.into()),
            number: Some(number),
            price,
            state: state.into(),
        }
    }

    #[test]
    fn seats_are_named_for_people_and_placed_by_layout() {
        let seats = vec![
            seat("A", "3", 2, 4000, "available"),
            seat("A", "3", 1, 4000, "reserved"),
            seat("B", "1", 1, 2500, "held"),
        ];

        let map = SeatMapSvg::new(&seats, "EUR").unwrap();

        assert_eq!(map.sections.len(), 2);
        let a = &map.sections[0].seats;
        assert_eq!(a[0].id, "A-3-1");
        assert_eq!(a[0].state_words, "sold");
        assert_eq!(a[1].label, "Section A, row 3, seat 2, €40");
        assert!(a[1].x > a[0].x);
        assert_eq!(map.sections[1].seats[0].tier, 1);
        assert_eq!(map.tiers.len(), 2);
    }

    #[test]
    fn general_admission_has_no_map() {
        let seats = vec![Seat {
            seat_id: "GA-1".into(),
            section: Some("GA".into()),
            row: Some("1".into()),
            number: Some(1),
            price: 1000,
            state: "available".into(),
        }];
        assert!(SeatMapSvg::new(&seats, "EUR").is_none());
    }
}
