//! Venues: general admission with a capacity, or reserved seating with a layout of sections,
//! rows and seat counts. Seat ids are `<section>-<row>-<number>` (e.g. `A-3-12`), so section
//! names and row labels are short and never contain `-`.

use evently_bus::catalog::{SeatLayout, SeatRow, SeatSection};
use evently_core::Problem;
use evently_core::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use super::{VenueId, add, text};

/// Most seats a venue may have.
pub const MAX_CAPACITY: i64 = 1_000_000;
/// Most sections in a layout.
pub const MAX_SECTIONS: usize = 100;
/// Most rows in one section.
pub const MAX_ROWS: usize = 500;
/// Most seats in one row.
pub const MAX_SEATS_PER_ROW: i64 = 1_000;

/// One row: its label and how many seats it has (numbered 1..=seats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Label, e.g. `3` or `AA`.
    pub label: String,
    /// Number of seats.
    pub seats: i64,
}

/// One section: its name and rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Name, e.g. `A` or `Balcony`.
    pub name: String,
    /// Its rows, in order.
    pub rows: Vec<Row>,
}

/// A reserved-seating layout. Only [`Layout::parse`] makes one, so a `Layout` is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Sections, in order.
    pub sections: Vec<Section>,
}

fn is_seat_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Layout {
    /// Checks a layout: 1..=100 sections with unique names, each with 1..=500 rows with unique
    /// labels and 1..=1000 seats, names and labels made of letters, digits and `_` (at most 20),
    /// and at most [`MAX_CAPACITY`] seats in all.
    ///
    /// # Errors
    /// 422 naming every offending field.
    pub fn parse(raw: Layout) -> Result<Layout, Problem> {
        let mut problem = None;
        if raw.sections.is_empty() || raw.sections.len() > MAX_SECTIONS {
            add(
                &mut problem,
                "/layout/sections",
                format!("must have 1 to {MAX_SECTIONS} sections"),
            );
        }
        let mut names = HashSet::new();
        let mut total: i64 = 0;
        for (i, section) in raw.sections.iter().enumerate() {
            let at = format!("/layout/sections/{i}");
            if !is_seat_token(&section.name) {
                add(
                    &mut problem,
                    &format!("{at}/name"),
                    "must be 1 to 20 letters, digits or '_'",
                );
            } else if !names.insert(section.name.to_ascii_lowercase()) {
                add(
                    &mut problem,
                    &format!("{at}/name"),
                    "duplicate section name",
                );
            }
            if section.rows.is_empty() || section.rows.len() > MAX_ROWS {
                add(
                    &mut problem,
                    &format!("{at}/rows"),
                    format!("must have 1 to {MAX_ROWS} rows"),
                );
            }
            let mut labels = HashSet::new();
            for (j, row) in section.rows.iter().enumerate() {
                let at = format!("{at}/rows/{j}");
                if !is_seat_token(&row.label) {
                    add(
                        &mut problem,
                        &format!("{at}/label"),
                        "must be 1 to 20 letters, digits or '_'",
                    );
                } else if !labels.insert(row.label.to_ascii_lowercase()) {
                    add(
                        &mut problem,
                        &format!("{at}/label"),
                        "duplicate row label in this section",
                    );
                }
                if !(1..=MAX_SEATS_PER_ROW).contains(&row.seats) {
                    add(
                        &mut problem,
                        &format!("{at}/seats"),
                        format!("must be 1 to {MAX_SEATS_PER_ROW}"),
                    );
                } else {
                    total += row.seats;
                }
            }
        }
        if total > MAX_CAPACITY {
            add(
                &mut problem,
                "/layout",
                format!("has more than {MAX_CAPACITY} seats"),
            );
        }
        match problem {
            Some(p) => Err(p),
            None => Ok(raw),
        }
    }

    /// Seats in all sections.
    pub fn capacity(&self) -> i64 {
        self.sections
            .iter()
            .flat_map(|s| &s.rows)
            .map(|r| r.seats)
            .sum()
    }

    /// Whether a section named `name` exists.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.iter().any(|s| s.name == name)
    }

    /// The layout as other services see it (booking creates one seat per number of each row).
    pub fn seat_layout(&self) -> SeatLayout {
        SeatLayout {
            sections: self
                .sections
                .iter()
                .map(|s| SeatSection {
                    name: s.name.clone(),
                    rows: s
                        .rows
                        .iter()
                        .map(|r| SeatRow {
                            label: r.label.clone(),
                            seats: r.seats,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Every seat id, section by section, row by row, in seat order.
    pub fn seat_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.sections.iter().flat_map(|s| {
            s.rows.iter().flat_map(move |r| {
                (1..=r.seats).map(move |n| format!("{}-{}-{}", s.name, r.label, n))
            })
        })
    }
}

/// How a venue seats its audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seating {
    /// Anyone anywhere, up to a capacity.
    General {
        /// Places.
        capacity: i64,
    },
    /// Numbered seats.
    Reserved(Layout),
}

impl Seating {
    /// Places in total.
    pub fn capacity(&self) -> i64 {
        match self {
            Seating::General { capacity } => *capacity,
            Seating::Reserved(layout) => layout.capacity(),
        }
    }
}

/// What a client sends to create a venue.
#[derive(Debug, Clone)]
pub struct VenueInput {
    /// Name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// General-admission capacity (exclusive with `layout`).
    pub capacity: Option<i64>,
    /// Reserved-seating layout (exclusive with `capacity`).
    pub layout: Option<Layout>,
}

/// A venue. Venues do not change once created, so events can copy their name and city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venue {
    /// Id.
    pub id: VenueId,
    /// Name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// City.
    pub city: String,
    /// Capacity or layout.
    pub seating: Seating,
    /// Who created it.
    pub created_by: UserId,
    /// When (epoch ms).
    pub created_at: i64,
}

impl Venue {
    /// A new venue from `input`.
    ///
    /// # Errors
    /// 422 naming every invalid field; exactly one of `capacity` and `layout` must be given.
    pub fn create(input: VenueInput, by: UserId, now: i64) -> Result<Venue, Problem> {
        let mut problem = None;
        let name = text(&mut problem, "/name", &input.name, 200, false);
        let address = text(&mut problem, "/address", &input.address, 300, false);
        let city = text(&mut problem, "/city", &input.city, 100, false);
        let seating = match (input.capacity, input.layout) {
            (Some(capacity), None) => {
                if !(1..=MAX_CAPACITY).contains(&capacity) {
                    add(
                        &mut problem,
                        "/capacity",
                        format!("must be 1 to {MAX_CAPACITY}"),
                    );
                }
                Some(Seating::General { capacity })
            }
            (None, Some(layout)) => match Layout::parse(layout) {
                Ok(layout) => Some(Seating::Reserved(layout)),
                Err(p) => {
                    for e in p.errors() {
                        add(&mut problem, &e.pointer, e.detail.clone());
                    }
                    None
                }
            },
            _ => {
                add(
                    &mut problem,
                    "/capacity",
                    "give either capacity (general admission) or layout (reserved seating)",
                );
                None
            }
        };
        match (problem, seating) {
            (None, Some(seating)) => Ok(Venue {
                id: VenueId::new(),
                name,
                address,
                city,
                seating,
                created_by: by,
                created_at: now,
            }),
            (Some(p), _) => Err(p),
            (None, None) => Err(Problem::invalid_field("/layout", "invalid layout")),
        }
    }
}

impl Venue {
    /// `VenueCreated` for this venue.
    pub fn created(&self) -> evently_bus::Envelope {
        evently_bus::DomainEvent::VenueCreated(evently_bus::catalog::VenueSnapshot {
            venue_id: self.id.0,
            name: self.name.clone(),
            address: self.address.clone(),
            city: self.city.clone(),
            capacity: self.seating.capacity(),
            reserved: matches!(self.seating, Seating::Reserved(_)),
        })
        .into_envelope(1, super::from_ms(self.created_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(sections: &[(&str, &[(&str, i64)])]) -> Layout {
        Layout {
            sections: sections
                .iter()
                .map(|(name, rows)| Section {
                    name: (*name).into(),
                    rows: rows
                        .iter()
                        .map(|(label, seats)| Row {
                            label: (*label).into(),
                            seats: *seats,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn layout_capacity_and_seat_ids() {
        let l = Layout::parse(layout(&[("A", &[("1", 2), ("2", 1)]), ("B", &[("1", 1)])])).unwrap();
        assert_eq!(l.capacity(), 4);
        let ids: Vec<String> = l.seat_ids().collect();
        assert_eq!(ids, ["A-1-1", "A-1-2", "A-2-1", "B-1-1"]);
    }

    #[test]
    fn published_seat_layout_names_the_same_seats() {
        let l = Layout::parse(layout(&[("A", &[("1", 2), ("2", 1)]), ("B", &[("1", 1)])])).unwrap();

        let published = l.seat_layout();

        let expanded: Vec<String> = published
            .sections
            .iter()
            .flat_map(|s| {
                s.rows.iter().flat_map(move |r| {
                    (1..=r.seats).map(move |n| format!("{}-{}-{}", s.name, r.label, n))
                })
            })
            .collect();
        assert_eq!(expanded, l.seat_ids().collect::<Vec<_>>());
    }

    #[test]
    fn bad_layouts_are_refused() {
        for bad in [
            layout(&[]),
            layout(&[("A", &[])]),
            layout(&[("A", &[("1", 0)])]),
            layout(&[("A", &[("1", -3)])]),
            layout(&[("A", &[("1", 1)]), ("a", &[("1", 1)])]),
            layout(&[("A", &[("1", 1), ("1", 2)])]),
            layout(&[("A-B", &[("1", 1)])]),
            layout(&[("A", &[("1", 1001)])]),
        ] {
            assert!(Layout::parse(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn venue_needs_exactly_one_of_capacity_and_layout() {
        let input = |capacity, layout| VenueInput {
            name: "Hall".into(),
            address: "1 Main St".into(),
            city: "Oslo".into(),
            capacity,
            layout,
        };
        let by = UserId::new();
        assert!(Venue::create(input(Some(10), None), by, 0).is_ok());
        assert!(Venue::create(input(None, None), by, 0).is_err());
        assert!(Venue::create(input(Some(-1), None), by, 0).is_err());
        let l = layout(&[("A", &[("1", 2)])]);
        assert!(Venue::create(input(Some(2), Some(l.clone())), by, 0).is_err());
        assert_eq!(
            Venue::create(input(None, Some(l)), by, 0)
                .unwrap()
                .seating
                .capacity(),
            2
        );
    }

    mod parser_properties {
        use super::*;
        use evently_core::extract::from_json_slice;
        use proptest::prelude::*;

        /// Seat id shape as booking checks it: `<section>-<row>-<number>`, at most 64 bytes.
        fn is_booking_seat_id(id: &str) -> bool {
            let parts: Vec<&str> = id.split('-').collect();
            id.len() <= 64
                && parts.len() == 3
                && parts.iter().all(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                && parts[2].bytes().all(|b| b.is_ascii_digit())
        }

        /// Valid layouts: distinct section names and row labels (case-insensitively).
        fn valid_layout() -> impl Strategy<Value = Layout> {
            let rows = proptest::collection::btree_map("[a-z0-9_]{1,20}", 1i64..=40, 1..6);
            proptest::collection::btree_map("[A-Z0-9_]{1,20}", rows, 1..5).prop_map(|sections| {
                Layout {
                    sections: sections
                        .into_iter()
                        .map(|(name, rows)| Section {
                            name,
                            rows: rows
                                .into_iter()
                                .map(|(label, seats)| Row { label, seats })
                                .collect(),
                        })
                        .collect(),
                }
            })
        }

        proptest! {
            // A fixed budget, so `cargo test` stays quick; the fuzz targets run longer.
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// A valid layout is accepted as it is, survives a JSON round trip unchanged, and
            /// names `capacity` distinct seats that booking accepts as seat ids.
            #[test]
            fn valid_layouts_round_trip_and_name_distinct_seat_ids(layout in valid_layout()) {
                let parsed = Layout::parse(layout.clone()).unwrap();
                prop_assert_eq!(&parsed, &layout);
                let json = serde_json::to_vec(&parsed).unwrap();
                let back = from_json_slice::<Layout>(&json).unwrap();
                prop_assert_eq!(Layout::parse(back).unwrap(), parsed.clone());
                let ids: Vec<String> = parsed.seat_ids().collect();
                prop_assert_eq!(i64::try_from(ids.len()).unwrap(), parsed.capacity());
                prop_assert!(ids.iter().all(|id| is_booking_seat_id(id)), "{:?}", ids);
                prop_assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
            }

            /// Any layout (any names, labels and seat counts) is accepted or refused with a
            /// 422 naming fields under `/layout`; never a panic.
            #[test]
            fn any_layout_is_accepted_or_names_its_faults(
                sections in proptest::collection::vec(
                    ("\\PC{0,24}", proptest::collection::vec(("\\PC{0,24}", any::<i64>()), 0..4)),
                    0..4,
                ),
            ) {
                let layout = Layout {
                    sections: sections
                        .into_iter()
                        .map(|(name, rows)| Section {
                            name,
                            rows: rows.into_iter().map(|(label, seats)| Row { label, seats }).collect(),
                        })
                        .collect(),
                };
                match Layout::parse(layout.clone()) {
                    Ok(parsed) => {
                        prop_assert!((1..=MAX_CAPACITY).contains(&parsed.capacity()));
                        prop_assert!(parsed.seat_ids().all(|id| is_booking_seat_id(&id)));
                    }
                    Err(p) => {
                        prop_assert_eq!(p.status().as_u16(), 422);
                        prop_assert!(!p.errors().is_empty());
                        prop_assert!(p.errors().iter().all(|e| e.pointer.starts_with("/layout")));
                    }
                }
            }

            /// Any bytes as a layout body are a layout, a 400 or a 422; never a panic.
            #[test]
            fn any_layout_body_is_a_layout_or_a_400_or_422(
                bytes in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                if let Err(p) = from_json_slice::<Layout>(&bytes) {
                    prop_assert!(matches!(p.status().as_u16(), 400 | 422));
                }
            }
        }
    }
}
