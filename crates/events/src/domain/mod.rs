//! The events service's pure types and rules: ids, the status machine, venues and their seat
//! layouts, events and their sale window and prices. No axum, no sqlx.

pub mod event;
pub mod status;
pub mod venue;

pub use event::{
    Event, EventDraft, EventFilter, EventPatch, EventType, Page, ReviseError, Revision, VenueRef,
};
pub use status::{EventStatus, IllegalTransition};
pub use venue::{Layout, Seating, Venue, VenueInput};

evently_core::id_type!(
    /// An event's id.
    EventId
);
evently_core::id_type!(
    /// A venue's id.
    VenueId
);

/// Epoch milliseconds of `t`.
pub fn to_ms(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The time at epoch milliseconds `ms`.
pub fn from_ms(ms: i64) -> time::OffsetDateTime {
    evently_bus::envelope::time_from_ms(ms)
}

/// Checks a free-text field: at most `max` characters as sent (so the schema's `maxLength`
/// is the rule), not blank once trimmed unless `may_be_empty`, and no control characters but
/// tab and newline (a NUL would also be refused by PostgreSQL). Returns it trimmed.
pub(crate) fn text(
    problem: &mut Option<evently_core::Problem>,
    pointer: &str,
    raw: &str,
    max: usize,
    may_be_empty: bool,
) -> String {
    let value = raw.trim();
    let why = if !may_be_empty && value.is_empty() {
        Some("must not be empty".to_owned())
    } else if raw.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        Some("must not contain control characters".to_owned())
    } else {
        None
    };
    if let Some(why) = why {
        add(problem, pointer, why);
    }
    value.to_owned()
}

/// Adds a field error to the validation problem being collected.
pub(crate) fn add(
    problem: &mut Option<evently_core::Problem>,
    pointer: &str,
    why: impl Into<String>,
) {
    let p = problem
        .take()
        .unwrap_or_else(evently_core::Problem::validation);
    *problem = Some(p.field(pointer, why));
}
