//! Venue layouts: a JSON layout as `POST /api/venues` reads it (`from_json_slice`, then
//! `Layout::parse`). An accepted layout stays within its limits, survives a JSON round trip
//! unchanged, and names seats that booking accepts as seat ids (`is_seat_id`), all distinct.
#![no_main]

use evently_booking::domain::inventory::is_seat_id;
use evently_core::extract::from_json_slice;
use evently_events::domain::Layout;
use evently_events::domain::venue::{MAX_CAPACITY, MAX_ROWS, MAX_SEATS_PER_ROW, MAX_SECTIONS};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let raw = match from_json_slice::<Layout>(data) {
        Ok(raw) => raw,
        Err(problem) => {
            let status = problem.status().as_u16();
            assert!(status == 400 || status == 422, "{status}");
            return;
        }
    };
    let layout = match Layout::parse(raw.clone()) {
        Ok(layout) => layout,
        Err(problem) => {
            assert_eq!(problem.status().as_u16(), 422);
            assert!(!problem.errors().is_empty());
            return;
        }
    };
    assert_eq!(layout, raw);
    assert!((1..=MAX_SECTIONS).contains(&layout.sections.len()));
    assert!((1..=MAX_CAPACITY).contains(&layout.capacity()));
    for section in &layout.sections {
        assert!((1..=MAX_ROWS).contains(&section.rows.len()));
        assert!(
            section
                .rows
                .iter()
                .all(|r| (1..=MAX_SEATS_PER_ROW).contains(&r.seats))
        );
    }

    let json = serde_json::to_vec(&layout).expect("a layout serialises");
    let back = from_json_slice::<Layout>(&json).expect("a serialised layout parses");
    assert_eq!(back, layout);
    assert_eq!(Layout::parse(back).ok(), Some(layout.clone()));

    // Every seat id is one booking accepts, and no two are the same (checked on the first and
    // last seat of each row, so that a large layout stays quick).
    let mut seen = HashSet::new();
    for section in &layout.sections {
        for row in &section.rows {
            for n in [1, row.seats] {
                let id = format!("{}-{}-{}", section.name, row.label, n);
                assert!(is_seat_id(&id), "{id}");
            }
            assert!(seen.insert((
                section.name.to_ascii_lowercase(),
                row.label.to_ascii_lowercase()
            )));
        }
    }
    if layout.capacity() <= 2_000 {
        let ids: Vec<String> = layout.seat_ids().collect();
        assert_eq!(ids.len() as i64, layout.capacity());
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    }
    let published = layout.seat_layout();
    assert_eq!(published.sections.len(), layout.sections.len());
});
