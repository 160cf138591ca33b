//! Seat ids (`<section>-<row>-<number>` or `GA-<number>`): `is_seat_id`, `section_of`, and
//! the hold selection that checks a client's seat list (`Selection::parse`). The input is
//! split at `\n` into seat ids.
#![no_main]

use evently_booking::domain::Selection;
use evently_booking::domain::inventory::{is_seat_id, section_of};
use libfuzzer_sys::fuzz_target;

fn shaped(seat: &str) -> bool {
    let parts: Vec<&str> = seat.split('-').collect();
    let token =
        |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    seat.len() <= 64
        && parts.iter().all(token)
        && parts
            .last()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        && (parts.len() == 3 || (parts.len() == 2 && parts[0] == "GA"))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let seats: Vec<String> = text.split('\n').map(str::to_owned).collect();
    for seat in &seats {
        let ok = is_seat_id(seat);
        assert_eq!(ok, shaped(seat), "{seat:?}");
        let section = section_of(seat);
        assert!(seat.starts_with(section));
        if ok {
            assert!(!section.is_empty() && !section.contains('-'));
        }
    }

    let all_valid = seats.iter().all(|s| is_seat_id(s));
    let distinct = seats.iter().collect::<std::collections::HashSet<_>>().len() == seats.len();
    let fits = (1..=10).contains(&seats.len());
    match Selection::parse(10, Some(seats.clone()), None, None) {
        Ok(Selection::Seats(chosen)) => {
            assert!(all_valid && distinct && fits);
            assert_eq!(chosen, seats);
        }
        Ok(other) => panic!("a seat list became {other:?}"),
        Err(problem) => {
            assert!(!(all_valid && distinct && fits));
            assert_eq!(problem.status().as_u16(), 422);
            assert!(!problem.errors().is_empty());
        }
    }
    // A quantity with a section named by the first line.
    let quantity = i64::from(data.first().copied().unwrap_or(0)) - 100;
    match Selection::parse(10, None, Some(quantity), Some(seats[0].clone())) {
        Ok(Selection::Best {
            quantity: q,
            section,
        }) => {
            assert_eq!(q, quantity);
            assert!((1..=10).contains(&q));
            let s = section.unwrap_or_default();
            assert!(!s.is_empty() && s.len() <= 20);
        }
        Ok(other) => panic!("a quantity became {other:?}"),
        Err(problem) => assert_eq!(problem.status().as_u16(), 422),
    }
    assert!(Selection::parse(10, Some(seats), Some(1), None).is_err());
});
