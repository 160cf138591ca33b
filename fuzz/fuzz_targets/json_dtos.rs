//! Every JSON request body evently accepts, parsed as the server parses it
//! (`evently_core::extract::from_json_slice`, which `Json<T>` and `OptionalJson<T>` call) and
//! then checked by the same validation the handler runs next. Each input is tried as every
//! DTO. A malformed or ill-shaped body must be a 400 or 422 problem; a validation failure a
//! 422 naming at least one field; nothing may panic.
#![no_main]

use evently_auth::domain::{Email, MAX_PASSWORD_CHARS, Name, Password, Phone};
use evently_auth::http::{auth, internal, users};
use evently_booking::domain::Selection;
use evently_booking::http::{holds, orders, payments, waitlist};
use evently_core::Problem;
use evently_core::extract::from_json_slice;
use evently_core::ids::UserId;
use evently_events::domain::venue::{Row, Section};
use evently_events::domain::{
    Event, EventDraft, EventStatus, Layout, ReviseError, Venue, VenueInput, VenueRef,
};
use evently_events::http::{events, venues};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The fixed "now" of every check (epoch ms, 2027-01-15).
const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

/// A body the DTO refused: 400 (not JSON) or 422 (wrong shape), never anything else.
fn refused(problem: &Problem) {
    let status = problem.status().as_u16();
    assert!(status == 400 || status == 422, "body refused with {status}");
}

/// A validation failure: 422 naming at least one field (handlers index the first one).
fn invalid(problem: &Problem) {
    assert_eq!(problem.status().as_u16(), 422, "{problem:?}");
    assert!(
        !problem.errors().is_empty(),
        "a 422 without a field: {problem:?}"
    );
}

fn parse<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    match from_json_slice::<T>(data) {
        Ok(dto) => Some(dto),
        Err(problem) => {
            refused(&problem);
            None
        }
    }
}

fn check<T>(result: Result<T, Problem>) -> Option<T> {
    result.map_err(|p| invalid(&p)).ok()
}

struct Fixtures {
    organizer: UserId,
    reserved: Venue,
    general: Event,
    seated: Event,
}

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let organizer = UserId::new();
    let layout = Layout {
        sections: vec![Section {
            name: "A".into(),
            rows: vec![Row {
                label: "1".into(),
                seats: 10,
            }],
        }],
    };
    let reserved = Venue::create(
        VenueInput {
            name: "Hall".into(),
            address: "1 Main St".into(),
            city: "Oslo".into(),
            capacity: None,
            layout: Some(layout),
        },
        organizer,
        NOW,
    )
    .expect("a valid venue");
    let draft = |seats| EventDraft {
        name: "Concert".into(),
        description: None,
        event_date: NOW + 30 * DAY,
        sale_start: NOW + DAY,
        sale_end: None,
        event_type: None,
        tags: Vec::new(),
        total_seats: seats,
        base_price: 1000,
        currency: "USD".into(),
        section_prices: BTreeMap::new(),
    };
    let general = Event::create(
        &draft(Some(100)),
        &VenueRef::Named("Hall".into()),
        EventStatus::Upcoming,
        organizer,
        NOW,
    )
    .expect("a valid event");
    let seated = Event::create(
        &draft(None),
        &VenueRef::Venue(Box::new(reserved.clone())),
        EventStatus::Upcoming,
        organizer,
        NOW,
    )
    .expect("a valid seated event");
    Fixtures {
        organizer,
        reserved,
        general,
        seated,
    }
});

fn revise(event: &Event, patch: &evently_events::domain::EventPatch, venue: Option<&Venue>) {
    match event.revise(patch, venue, NOW) {
        Ok(_)
        | Err(ReviseError::Transition(_) | ReviseError::Final | ReviseError::CapacityLocked) => {}
        Err(ReviseError::Invalid(problem)) => invalid(&problem),
    }
}

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURES;

    // auth
    if let Some(body) = parse::<auth::RegisterRequest>(data) {
        let _ = check(Email::parse(&body.email));
        let _ = check(Password::parse(&body.password));
        let _ = check(Name::parse(&body.name));
    }
    if let Some(body) = parse::<auth::LoginRequest>(data)
        && body.password.len() <= 4 * MAX_PASSWORD_CHARS
    {
        let _ = Email::parse(&body.email);
    }
    if let Some(body) = parse::<auth::ChangePasswordRequest>(data) {
        let _ = check(Password::parse(&body.new_password));
    }
    let _ = parse::<Option<auth::RefreshRequest>>(data);
    if let Some(body) = parse::<users::UpdateProfileRequest>(data) {
        if let Some(name) = body.name {
            let _ = check(Name::parse(&name));
        }
        if let Some(Some(phone)) = body.phone
            && let Some(parsed) = check(Phone::parse(&phone))
        {
            // A parsed phone is canonical: parsing it again gives it back.
            let again = Phone::parse(parsed.as_str()).expect("a parsed phone parses again");
            assert_eq!(again, parsed);
        }
    }
    let _ = parse::<users::SetRoleRequest>(data);
    let _ = parse::<users::SetStatusRequest>(data);
    let _ = parse::<internal::VerifyRequest>(data);

    // events and venues
    if let Some(body) = parse::<events::CreateEventRequest>(data)
        && let Some((draft, _venue, status)) = check(body.into_parts())
    {
        let named = VenueRef::Named("Hall".into());
        let _ = check(Event::create(&draft, &named, status, fx.organizer, NOW));
        let seated = VenueRef::Venue(Box::new(fx.reserved.clone()));
        let _ = check(Event::create(&draft, &seated, status, fx.organizer, NOW));
    }
    if let Some(body) = parse::<events::UpdateEventRequest>(data) {
        let patch = body.into_patch();
        revise(&fx.general, &patch, None);
        revise(&fx.seated, &patch, Some(&fx.reserved));
    }
    if let Some(body) = parse::<events::ChangeStatusRequest>(data) {
        let _ = fx.general.with_status(body.status, NOW);
    }
    if let Some(body) = parse::<venues::CreateVenueRequest>(data)
        && let Some(venue) = check(Venue::create(
            VenueInput {
                name: body.name,
                address: body.address,
                city: body.city,
                capacity: body.capacity,
                layout: body.layout,
            },
            fx.organizer,
            NOW,
        ))
    {
        let capacity = venue.seating.capacity();
        assert!((1..=evently_events::domain::venue::MAX_CAPACITY).contains(&capacity));
    }

    // booking
    if let Some(body) = parse::<holds::HoldRequest>(data)
        && let Some(selection) = check(Selection::parse(
            10,
            body.seat_ids,
            body.quantity,
            body.section,
        ))
    {
        assert!((1..=10).contains(&selection.quantity()));
    }
    let _ = parse::<Option<holds::HoldRefreshRequest>>(data);
    if let Some(body) = parse::<orders::PurchaseRequest>(data) {
        // The handler fingerprints the body by serialising it; that must not fail.
        serde_json::to_string(&body).expect("a purchase request serialises");
    }
    let _ = parse::<payments::IntentRequest>(data);
    let _ = parse::<payments::ConfirmRequest>(data);
    let _ = parse::<waitlist::WaitlistRequest>(data);
});
