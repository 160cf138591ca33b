//! The venue's generated layout: `--seats` seats in rows of 100 (the last one shorter), 50 rows
//! to a section, sections named `A`, `B`, …
//!
//! Invariants: the rows hold exactly `--seats` seats (1 to 1,000,000, a venue's largest
//! capacity), in at most 100 sections (the most a venue allows; sections get deeper instead),
//! in layout order, which is the order the seat map lists the seats in.

use anyhow::ensure;
use serde_json::{Value, json};

/// Seats in one row of the generated layout.
const SEATS_PER_ROW: u32 = 100;
/// Rows in one section of the generated layout (more when 100 sections are not enough).
const ROWS_PER_SECTION: u32 = 50;

/// One row of the generated layout.
pub(super) struct RowSpec {
    pub(super) section: String,
    pub(super) label: String,
    pub(super) seats: u32,
}

/// `A`, `B`, …, `Z`, `AA`, `AB`, …
fn section_name(index: u32) -> String {
    let mut i = index + 1;
    let mut name = Vec::new();
    while i > 0 {
        i -= 1;
        name.push(b'A' + u8::try_from(i % 26).unwrap_or(0));
        i /= 26;
    }
    name.reverse();
    String::from_utf8_lossy(&name).into_owned()
}

/// Rows of 100 seats (the last one shorter), 50 rows to a section; deeper sections when more
/// than 100 sections would be needed (the venue allows at most 100, of at most 500 rows).
pub(super) fn layout(seats: u32) -> anyhow::Result<Vec<RowSpec>> {
    ensure!(
        (1..=1_000_000).contains(&seats),
        "--seats must be between 1 and 1000000 (a venue's largest capacity)"
    );
    let rows_total = seats.div_ceil(SEATS_PER_ROW);
    let per_section = ROWS_PER_SECTION.max(rows_total.div_ceil(100));
    Ok((0..rows_total)
        .map(|r| RowSpec {
            section: section_name(r / per_section),
            label: (r % per_section + 1).to_string(),
            seats: (seats - r * SEATS_PER_ROW).min(SEATS_PER_ROW),
        })
        .collect())
}

pub(super) fn layout_json(rows: &[RowSpec]) -> Value {
    let mut sections: Vec<(String, Vec<Value>)> = Vec::new();
    for row in rows {
        let entry = json!({"label": row.label, "seats": row.seats});
        match sections.last_mut() {
            Some((name, rows)) if *name == row.section => rows.push(entry),
            _ => sections.push((row.section.clone(), vec![entry])),
        }
    }
    json!({
        "sections": sections
            .into_iter()
            .map(|(name, rows)| json!({"name": name, "rows": rows}))
            .collect::<Vec<_>>()
    })
}
