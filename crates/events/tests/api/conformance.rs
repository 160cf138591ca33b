//! The behaviour every [`EventStore`] backend must show. Each function is one test;
//! `evently_testkit::conformance_suite!` at the bottom runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database. A new
//! test is added to that list, next to its function. The store is given with its outbox,
//! which every change must reach in the same transaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use evently_bus::Outbox;
use evently_core::config::DatabaseConfig;
use evently_core::db::StoreError;
use evently_core::ids::UserId;
use evently_events::domain::{
    Event, EventDraft, EventFilter, EventStatus, EventType, Page, Venue, VenueInput, VenueRef,
};
use evently_events::store::{BatchWrite, EventStore, SqlEventStore, VERSION_CONFLICT};
use secrecy::SecretString;

/// A store under test and its outbox.
type Subject = (Arc<dyn EventStore>, Arc<dyn Outbox>);

async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("events.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    let store = SqlEventStore::sqlite(db).await.unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

async fn postgres_store(url: String, schema: String) -> Subject {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    let store = SqlEventStore::postgres(pool).await.unwrap();
    let outbox = store.outbox();
    (Arc::new(store), Arc::new(outbox))
}

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
        time_zone: "Europe/Berlin".into(),
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

async fn venue_and_event_round_trip_with_their_outbox_rows((store, outbox): Subject) {
    let venue = Venue::create(
        VenueInput {
            name: "Arena".into(),
            address: "1 Main St".into(),
            city: "Oslo".into(),
            capacity: None,
            layout: Some(evently_events::domain::Layout {
                sections: vec![evently_events::domain::venue::Section {
                    name: "A".into(),
                    rows: vec![evently_events::domain::venue::Row {
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
    store
        .insert_event(&e, &e.created_in(Some(&venue)))
        .await
        .unwrap();

    assert_eq!(store.venue(venue.id).await.unwrap().unwrap(), venue);
    assert_eq!(store.event(e.id).await.unwrap().unwrap(), e);
    assert_eq!(
        outbox_types(&outbox).await,
        ["VenueCreated", "EventCreated"]
    );
    let rows = outbox.read_after(0, 10).await.unwrap();
    assert_eq!(rows[1].envelope.aggregate_id, e.id.0);
    assert_eq!(rows[1].envelope.aggregate_version, 1);
    assert_eq!(
        rows[1].envelope.payload["layout"],
        serde_json::json!({"sections": [{"name": "A", "rows": [{"label": "1", "seats": 3}]}]})
    );
    assert_eq!(rows[1].envelope.payload["timeZone"], "Europe/Berlin");
}

async fn time_zone_is_stored_and_changed((store, outbox): Subject) {
    let e = event("Zoned", 5);
    store.insert_event(&e, &e.created()).await.unwrap();
    assert_eq!(
        store.event(e.id).await.unwrap().unwrap().time_zone,
        "Europe/Berlin"
    );
    let moved = e
        .revise(
            &evently_events::domain::EventPatch {
                time_zone: Some("america/new_york".into()),
                ..Default::default()
            },
            None,
            NOW + 1,
        )
        .unwrap();
    assert!(moved.details_changed);
    let moved = moved.event;
    store
        .update_event(&moved, e.version, &[moved.updated_in(None)])
        .await
        .unwrap();

    let stored = store.event(e.id).await.unwrap().unwrap();
    assert_eq!(stored.time_zone, "America/New_York", "the database's name");
    assert_eq!(stored, moved);
    let rows = outbox.read_after(0, 10).await.unwrap();
    assert_eq!(rows[1].envelope.payload["timeZone"], "America/New_York");
}

async fn failed_outbox_write_leaves_neither_row_nor_event((store, outbox): Subject) {
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

async fn stale_update_is_a_version_conflict((store, outbox): Subject) {
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

async fn delete_removes_the_row_and_records_it((store, outbox): Subject) {
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

async fn listing_filters_and_pages((store, _outbox): Subject) {
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

async fn due_sales_open_once((store, outbox): Subject) {
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

async fn outbox_seq_follows_commit_order_under_concurrency((store, outbox): Subject) {
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

/// A stored event that is ON_SALE (version 2), with its two outbox rows.
async fn on_sale(store: &Arc<dyn EventStore>, name: &str) -> Event {
    let e = event(name, 5);
    store.insert_event(&e, &e.created()).await.unwrap();
    let next = e.with_status(EventStatus::OnSale, NOW + 1).unwrap();
    store
        .update_event(&next, e.version, &[next.status_changed(e.status)])
        .await
        .unwrap();
    next
}

/// The `(from, to)` of every `EventStatusChanged` in the outbox, in order.
async fn status_changes(outbox: &Arc<dyn Outbox>) -> Vec<(String, String)> {
    outbox
        .read_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.envelope.event_type == "EventStatusChanged")
        .map(|r| {
            let p = &r.envelope.payload;
            (
                p["from"].as_str().unwrap().to_owned(),
                p["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn newer_availability_is_stored_and_older_or_equal_is_not((store, outbox): Subject) {
    let e = on_sale(&store, "Counted").await;
    let at = NOW + 2;

    let first = store.apply_availability(e.id, 3, 40, at).await.unwrap();
    let equal = store.apply_availability(e.id, 3, 10, at).await.unwrap();
    let older = store.apply_availability(e.id, 2, 5, at).await.unwrap();
    let after_stale = store.event(e.id).await.unwrap().unwrap();
    let newer = store.apply_availability(e.id, 4, 39, at).await.unwrap();
    let unknown = store
        .apply_availability(event("Never stored", 5).id, 1, 0, at)
        .await
        .unwrap();
    let stored = store.event(e.id).await.unwrap().unwrap();

    let first = first.unwrap();
    assert_eq!(first.flipped_from, None);
    assert_eq!(
        (
            first.event.available_seats(),
            first.event.availability_version
        ),
        (40, 3)
    );
    assert!(equal.is_none() && older.is_none() && unknown.is_none());
    assert_eq!(after_stale.available_seats(), 40);
    assert_eq!(newer.unwrap().event.available_seats(), 39);
    assert_eq!(
        (stored.available_seats(), stored.availability_version),
        (39, 4)
    );
    assert_eq!(stored.status, EventStatus::OnSale);
    assert_eq!(stored.version, e.version, "a figure is not an event change");
    assert_eq!(
        outbox_types(&outbox).await,
        ["EventCreated", "EventStatusChanged"]
    );
}

async fn availability_flips_sold_out_and_back_once_each((store, outbox): Subject) {
    let e = on_sale(&store, "Hot").await;
    let at = NOW + 3;

    let (a, b) = tokio::join!(
        store.apply_availability(e.id, 1, 0, at),
        store.apply_availability(e.id, 1, 0, at)
    );
    let sold_out = store.event(e.id).await.unwrap().unwrap();
    let redelivered = store.apply_availability(e.id, 1, 0, at).await.unwrap();
    let still_none = store
        .apply_availability(e.id, 2, 0, at)
        .await
        .unwrap()
        .unwrap();
    let back = store
        .apply_availability(e.id, 3, 2, at + 1)
        .await
        .unwrap()
        .unwrap();
    let stale_zero = store.apply_availability(e.id, 2, 0, at + 2).await.unwrap();
    let stored = store.event(e.id).await.unwrap().unwrap();

    let applied: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(applied.len(), 1, "one of two concurrent deliveries applies");
    assert_eq!(applied[0].flipped_from, Some(EventStatus::OnSale));
    assert_eq!(sold_out.status, EventStatus::SoldOut);
    assert_eq!(sold_out.version, e.version + 1);
    assert!(redelivered.is_none());
    assert_eq!(still_none.flipped_from, None);
    assert_eq!(back.flipped_from, Some(EventStatus::SoldOut));
    assert!(stale_zero.is_none(), "an overtaken sell-out does not flip");
    assert_eq!(stored.status, EventStatus::OnSale);
    assert_eq!(stored.available_seats(), 2);
    assert_eq!(stored.version, e.version + 2);
    assert_eq!(
        status_changes(&outbox).await,
        [
            ("UPCOMING".to_owned(), "ON_SALE".to_owned()),
            ("ON_SALE".to_owned(), "SOLD_OUT".to_owned()),
            ("SOLD_OUT".to_owned(), "ON_SALE".to_owned()),
        ]
    );
    let versions: Vec<i64> = outbox
        .read_after(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.envelope.aggregate_version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4]);
}

async fn availability_never_flips_cancelled_or_upcoming_events((store, outbox): Subject) {
    let upcoming = event("Announced", 5);
    store
        .insert_event(&upcoming, &upcoming.created())
        .await
        .unwrap();
    let selling = on_sale(&store, "Called off").await;
    let cancelled = selling
        .with_status(EventStatus::Cancelled, NOW + 2)
        .unwrap();
    store
        .update_event(
            &cancelled,
            selling.version,
            &[cancelled.status_changed(selling.status)],
        )
        .await
        .unwrap();
    let at = NOW + 3;

    let up = store
        .apply_availability(upcoming.id, 1, 0, at)
        .await
        .unwrap()
        .unwrap();
    let off_empty = store
        .apply_availability(cancelled.id, 1, 0, at)
        .await
        .unwrap()
        .unwrap();
    let off_returned = store
        .apply_availability(cancelled.id, 2, 100, at)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(up.flipped_from, None);
    assert_eq!(up.event.status, EventStatus::Upcoming);
    assert_eq!(up.event.available_seats(), 0);
    assert_eq!(off_empty.flipped_from, None);
    assert_eq!(off_returned.flipped_from, None);
    let stored = store.event(cancelled.id).await.unwrap().unwrap();
    assert_eq!(stored.status, EventStatus::Cancelled);
    assert_eq!(stored.available_seats(), 100);
    assert_eq!(stored.version, cancelled.version);
    assert_eq!(
        status_changes(&outbox).await,
        [
            ("UPCOMING".to_owned(), "ON_SALE".to_owned()),
            ("ON_SALE".to_owned(), "CANCELLED".to_owned()),
        ]
    );
}

async fn organizer_update_keeps_a_reported_availability((store, _outbox): Subject) {
    let e = event("Resized", 5);
    store.insert_event(&e, &e.created()).await.unwrap();
    let bigger = evently_events::domain::EventPatch {
        total_seats: Some(120),
        ..Default::default()
    };
    let resized = e.revise(&bigger, None, NOW + 1).unwrap().event;
    store
        .update_event(&resized, e.version, &[resized.updated_in(None)])
        .await
        .unwrap();
    let before_report = store.event(e.id).await.unwrap().unwrap();
    store
        .apply_availability(e.id, 1, 90, NOW + 2)
        .await
        .unwrap()
        .unwrap();
    // Computed from a read taken before booking reported, so it still carries the seats as
    // available; the stored figure must win.
    let stale_read = resized
        .revise(
            &evently_events::domain::EventPatch {
                total_seats: Some(130),
                ..Default::default()
            },
            None,
            NOW + 3,
        )
        .unwrap()
        .event;

    store
        .update_event(&stale_read, resized.version, &[stale_read.updated_in(None)])
        .await
        .unwrap();

    assert_eq!(before_report.available_seats(), 120);
    let stored = store.event(e.id).await.unwrap().unwrap();
    assert_eq!(stored.total_seats, 130);
    assert_eq!(
        (stored.available_seats(), stored.availability_version),
        (90, 1)
    );
}

async fn a_batch_writes_every_event_with_its_outbox_rows((store, outbox): Subject) {
    let kept = event("Kept", 5);
    store.insert_event(&kept, &kept.created()).await.unwrap();
    let fresh = event("Fresh", 6);
    let renamed = {
        let mut next = kept.clone();
        next.name = "Renamed".into();
        next.version += 1;
        next
    };

    store
        .write_batch(&[
            BatchWrite::Insert {
                created: fresh.created(),
                event: fresh.clone(),
            },
            BatchWrite::Update {
                events: vec![renamed.updated_in(None)],
                event: renamed.clone(),
                expected_version: kept.version,
            },
        ])
        .await
        .unwrap();

    assert_eq!(store.event(fresh.id).await.unwrap().unwrap(), fresh);
    assert_eq!(store.event(kept.id).await.unwrap().unwrap().name, "Renamed");
    assert_eq!(
        outbox_types(&outbox).await,
        ["EventCreated", "EventCreated", "EventUpdated"]
    );
}

async fn a_batch_with_a_failing_write_writes_nothing((store, outbox): Subject) {
    let kept = event("Kept", 5);
    store.insert_event(&kept, &kept.created()).await.unwrap();
    let moved = kept.with_status(EventStatus::OnSale, NOW + 1).unwrap();
    store
        .update_event(&moved, kept.version, &[moved.status_changed(kept.status)])
        .await
        .unwrap();
    let before = outbox_types(&outbox).await;
    let fresh = event("Fresh", 6);
    let renamed = {
        let mut next = kept.clone();
        next.name = "Renamed".into();
        next.version += 1;
        next
    };

    // The last write was computed from a version that moved on: the insert before it and
    // its outbox row are rolled back with it.
    let err = store
        .write_batch(&[
            BatchWrite::Insert {
                created: fresh.created(),
                event: fresh.clone(),
            },
            BatchWrite::Update {
                events: vec![renamed.updated_in(None)],
                event: renamed,
                expected_version: kept.version,
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref constraint } if constraint == VERSION_CONFLICT),
        "{err:?}"
    );
    assert!(store.event(fresh.id).await.unwrap().is_none());
    assert_eq!(store.event(kept.id).await.unwrap().unwrap(), moved);
    assert_eq!(outbox_types(&outbox).await, before);

    // An id that exists already is a conflict, and rolls back the writes before it too.
    let other = event("Other", 7);
    let err = store
        .write_batch(&[
            BatchWrite::Insert {
                created: other.created(),
                event: other.clone(),
            },
            BatchWrite::Insert {
                created: kept.created(),
                event: kept.clone(),
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(store.event(other.id).await.unwrap().is_none());
    assert_eq!(outbox_types(&outbox).await, before);
}

evently_testkit::conformance_suite!(
    suite: crate::conformance,
    sqlite: super::sqlite_store,
    postgres: super::postgres_store,
    tests: [
        venue_and_event_round_trip_with_their_outbox_rows,
        time_zone_is_stored_and_changed,
        failed_outbox_write_leaves_neither_row_nor_event,
        stale_update_is_a_version_conflict,
        delete_removes_the_row_and_records_it,
        listing_filters_and_pages,
        due_sales_open_once,
        outbox_seq_follows_commit_order_under_concurrency,
        newer_availability_is_stored_and_older_or_equal_is_not,
        availability_flips_sold_out_and_back_once_each,
        availability_never_flips_cancelled_or_upcoming_events,
        organizer_update_keeps_a_reported_availability,
        a_batch_writes_every_event_with_its_outbox_rows,
        a_batch_with_a_failing_write_writes_nothing,
    ]
);
