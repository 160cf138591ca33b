//! The behaviour every [`EventStore`] backend must show. Each function is one test; the
//! `evently_testkit::conformance_suite!` macro runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database. The
//! store is given with its outbox, which every change must reach in the same transaction.

#![expect(clippy::unwrap_used, reason = "conformance checks fail loudly")]

use evently_bus::Outbox;
use evently_core::db::StoreError;
use evently_core::ids::UserId;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::{EventStore, VERSION_CONFLICT};
use crate::domain::{
    Event, EventDraft, EventFilter, EventStatus, EventType, Page, Venue, VenueInput, VenueRef,
};

/// A store under test and its outbox.
pub type Subject = (Arc<dyn EventStore>, Arc<dyn Outbox>);

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_900_000_000_000;

fn draft(name: &str, days_ahead: i64) -> EventDraft {
    EventDraft {
        name: name.into(),
        description: Some("Zoë's 🎟 night".into()),
        event_date: NOW + days_ahead * DAY,
        sale_start: NOW + DAY / 2,
        sale_end: None,
        event_type: Some(EventType::Concert),
        tags: vec!["pop".into()],
        total_seats: Some(100),
        base_price: 4500,
        currency: "EUR".into(),
        section_prices: BTreeMap::new(),
    }
}

fn event(name: &str, days_ahead: i64) -> Event {
    Event::create(
        &draft(name, days_ahead),
        &VenueRef::Named("Hall".into()),
        EventStatus::Upcoming,
        UserId::new(),
        NOW,
    )
    .unwrap()
}

async fn outbox_types(outbox: &Arc<dyn Outbox>) -> Vec<String> {
    outbox
        .read_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.envelope.event_type)
        .collect()
}

pub async fn venue_and_event_round_trip_with_their_outbox_rows((store, outbox): Subject) {
    let venue = Venue::create(
        VenueInput {
            name: "Arena".into(),
            address: "1 Main St".into(),
            city: "Oslo".into(),
            capacity: None,
            layout: Some(crate::domain::Layout {
                sections: vec![crate::domain::venue::Section {
                    name: "A".into(),
                    rows: vec![crate::domain::venue::Row {
                        label: "1".into(),
                        seats: 3,
                    }],
                }],
            }),
        },
        UserId::new(),
        NOW,
    )
    .unwrap();
    store.insert_venue(&venue, &venue.created()).await.unwrap();
    let mut d = draft("Reserved", 10);
    d.total_seats = None;
    d.section_prices.insert("A".into(), 9900);
    let e = Event::create(
        &d,
        &VenueRef::Venue(Box::new(venue.clone())),
        EventStatus::Upcoming,
        UserId::new(),
        NOW,
    )
    .unwrap();
    store.insert_event(&e, &e.created()).await.unwrap();

    assert_eq!(store.venue(venue.id).await.unwrap().unwrap(), venue);
    assert_eq!(store.event(e.id).await.unwrap().unwrap(), e);
    assert_eq!(
        outbox_types(&outbox).await,
        ["VenueCreated", "EventCreated"]
    );
    let rows = outbox.read_after(0, 10).await.unwrap();
    assert_eq!(rows[1].envelope.aggregate_id, e.id.0);
    assert_eq!(rows[1].envelope.aggregate_version, 1);
}

pub async fn failed_outbox_write_leaves_neither_row_nor_event((store, outbox): Subject) {
    let first = event("First", 5);
    let created = first.created();
    store.insert_event(&first, &created).await.unwrap();
    let second = event("Second", 6);
    // Same envelope id: the outbox insert fails after the event row was written.
    let mut clash = second.created();
    clash.id = created.id;

    let err = store.insert_event(&second, &clash).await.unwrap_err();

    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(store.event(second.id).await.unwrap().is_none());
    assert_eq!(outbox.read_after(0, 10).await.unwrap().len(), 1);
    let (all, total) = store
        .list_events(
            &EventFilter::default(),
            Page {
                number: 0,
                size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((all.len(), total), (1, 1));
}

pub async fn stale_update_is_a_version_conflict((store, outbox): Subject) {
    let e = event("Versioned", 5);
    store.insert_event(&e, &e.created()).await.unwrap();
    let next = e.with_status(EventStatus::OnSale, NOW + 1).unwrap();
    store
        .update_event(&next, e.version, &[next.status_changed(e.status)])
        .await
        .unwrap();

    let stale = e.with_status(EventStatus::Cancelled, NOW + 2).unwrap();
    let err = store
        .update_event(&stale, e.version, &[stale.status_changed(e.status)])
        .await
        .unwrap_err();

    assert!(
        matches!(err, StoreError::Conflict { ref constraint } if constraint == VERSION_CONFLICT)
    );
    assert_eq!(store.event(e.id).await.unwrap().unwrap(), next);
    assert_eq!(
        outbox_types(&outbox).await,
        ["EventCreated", "EventStatusChanged"]
    );
    let gone = event("Never stored", 5);
    let err = store.update_event(&gone, 1, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
}

pub async fn delete_removes_the_row_and_records_it((store, outbox): Subject) {
    let e = event("Doomed", 5);
    store.insert_event(&e, &e.created()).await.unwrap();

    store
        .delete_event(e.id, e.version, &e.deleted(NOW + 5))
        .await
        .unwrap();

    assert!(store.event(e.id).await.unwrap().is_none());
    assert_eq!(
        outbox_types(&outbox).await,
        ["EventCreated", "EventDeleted"]
    );
    let err = store
        .delete_event(e.id, e.version, &e.deleted(NOW + 6))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
}

pub async fn listing_filters_and_pages((store, _outbox): Subject) {
    let mut oslo = Vec::new();
    for i in 0..5 {
        let mut e = event(&format!("E{i}"), 2 + i);
        e.city = Some(if i % 2 == 0 { "Oslo" } else { "Bergen" }.into());
        if i == 4 {
            e.event_type = Some(EventType::Sports);
        }
        store.insert_event(&e, &e.created()).await.unwrap();
        if i % 2 == 0 {
            oslo.push(e.id);
        }
    }
    let all = EventFilter::default();
    let page = |number, size| Page { number, size };

    let (first, total) = store.list_events(&all, page(0, 2)).await.unwrap();
    let (last, _) = store.list_events(&all, page(2, 2)).await.unwrap();
    let (beyond, total_beyond) = store.list_events(&all, page(3, 2)).await.unwrap();
    let by_city = EventFilter {
        city: Some("OSLO".into()),
        ..Default::default()
    };
    let (in_oslo, n_oslo) = store.list_events(&by_city, page(0, 10)).await.unwrap();
    let ranged = EventFilter {
        from: Some(NOW + 3 * DAY),
        to: Some(NOW + 4 * DAY),
        ..Default::default()
    };
    let (in_range, _) = store.list_events(&ranged, page(0, 10)).await.unwrap();
    let sports = EventFilter {
        event_type: Some(EventType::Sports),
        ..Default::default()
    };
    let (n_sports, n_on_sale) = (
        store.list_events(&sports, page(0, 10)).await.unwrap().1,
        store
            .list_events(
                &EventFilter {
                    status: Some(EventStatus::OnSale),
                    ..Default::default()
                },
                page(0, 10),
            )
            .await
            .unwrap()
            .1,
    );

    assert_eq!(total, 5);
    assert_eq!(
        first.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["E0", "E1"]
    );
    assert_eq!(
        last.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["E4"]
    );
    assert!(beyond.is_empty());
    assert_eq!(total_beyond, 5);
    assert_eq!(n_oslo, 3);
    assert_eq!(in_oslo.iter().map(|e| e.id).collect::<Vec<_>>(), oslo);
    assert_eq!(
        in_range.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["E1", "E2"]
    );
    assert_eq!((n_sports, n_on_sale), (1, 0));
}

pub async fn due_sales_open_once((store, outbox): Subject) {
    let due = event("Due", 5);
    let later = {
        let mut d = draft("Later", 5);
        d.sale_start = NOW + 3 * DAY;
        Event::create(
            &d,
            &VenueRef::Named("Hall".into()),
            EventStatus::Upcoming,
            UserId::new(),
            NOW,
        )
        .unwrap()
    };
    store.insert_event(&due, &due.created()).await.unwrap();
    store.insert_event(&later, &later.created()).await.unwrap();
    let at = NOW + DAY;

    let (a, b) = tokio::join!(store.open_due_sales(at), store.open_due_sales(at));
    let again = store.open_due_sales(at).await.unwrap();

    let flipped: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    assert_eq!(flipped.len(), 1, "one flip across concurrent runs");
    assert_eq!(flipped[0].id, due.id);
    assert_eq!(flipped[0].status, EventStatus::OnSale);
    assert_eq!(flipped[0].version, 2);
    assert!(again.is_empty());
    assert_eq!(
        store.event(later.id).await.unwrap().unwrap().status,
        EventStatus::Upcoming
    );
    assert_eq!(
        outbox_types(&outbox).await,
        ["EventCreated", "EventCreated", "EventStatusChanged"]
    );
}

pub async fn outbox_seq_follows_commit_order_under_concurrency((store, outbox): Subject) {
    let events: Vec<Event> = (0..20).map(|i| event(&format!("C{i}"), 3)).collect();
    let mut tasks = Vec::new();
    for e in events.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.insert_event(&e, &e.created()).await.unwrap();
            let next = e.with_status(EventStatus::OnSale, NOW + 1).unwrap();
            store
                .update_event(&next, 1, &[next.status_changed(e.status)])
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let rows = outbox.read_after(0, 1000).await.unwrap();

    assert_eq!(rows.len(), 40);
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
    for e in &events {
        let versions: Vec<i64> = rows
            .iter()
            .filter(|r| r.envelope.aggregate_id == e.id.0)
            .map(|r| r.envelope.aggregate_version)
            .collect();
        assert_eq!(versions, [1, 2], "per-aggregate order");
    }
}
