//! Booking's inventory figures reach events: `availableSeats` and the ON_SALE ⇄ SOLD_OUT
//! flips, through the handler and through the consumer of a booking bus.

use evently_bus::catalog::{Availability, InventoryChange};
use evently_bus::in_process::InProcessBus;
use evently_bus::outbox::SqlOutbox;
use evently_bus::{DomainEvent, Envelope, Outbox};
use evently_testkit::{TempDir, TestApp, Value, json, spawn_app};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::support::{create, event_body, get, put};

/// The inventory of a 500-seat event after a change leaving `available` seats, at inventory
/// version `version`.
fn change(event_id: Uuid, available: i64, version: i64) -> InventoryChange {
    InventoryChange {
        event_id,
        user_id: Some(Uuid::now_v7()),
        hold_id: Some(Uuid::now_v7()),
        order_id: None,
        seat_ids: Vec::new(),
        amount: None,
        currency: None,
        reason: None,
        availability: Availability {
            capacity: 500,
            available,
            held: 500 - available,
            sold: 0,
            version,
        },
    }
}

fn envelope(event: DomainEvent, version: i64) -> Envelope {
    event.into_envelope(version, OffsetDateTime::now_utc())
}

/// An ON_SALE event; returns its id and path.
async fn on_sale(app: &TestApp, token: &str) -> (Uuid, String) {
    let event = create(app, token, &event_body("Selling fast")).await;
    let id: Uuid = event["eventId"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/events/{id}");
    let r = put(
        app,
        &format!("{path}/status"),
        token,
        &json!({"status": "ON_SALE"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    (id, path)
}

async fn seats_and_status(app: &TestApp, path: &str) -> (i64, String, i64) {
    let body: Value = get(app, path).await.json().await.unwrap();
    (
        body["availableSeats"].as_i64().unwrap(),
        body["status"].as_str().unwrap().to_owned(),
        body["version"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn booking_figures_set_available_seats_and_flip_sold_out_and_back() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let handler = app.app_events.as_ref().unwrap().availability_handler();
    let (id, path) = on_sale(&app, &admin.access_token).await;
    let sold_out = envelope(DomainEvent::SoldOut(change(id, 0, 2)), 2);

    handler
        .handle(&envelope(DomainEvent::SeatsHeld(change(id, 498, 1)), 1))
        .await
        .unwrap();
    let held = seats_and_status(&app, &path).await;
    let listed: Value = get(&app, "/api/events").await.json().await.unwrap();
    handler.handle(&sold_out).await.unwrap();
    let after_sold_out = seats_and_status(&app, &path).await;
    handler.handle(&sold_out).await.unwrap();
    handler
        .handle(&envelope(DomainEvent::SeatsReleased(change(id, 500, 1)), 1))
        .await
        .unwrap();
    let after_stale = seats_and_status(&app, &path).await;
    handler
        .handle(&envelope(DomainEvent::OrderCancelled(change(id, 3, 3)), 3))
        .await
        .unwrap();
    let after_return = seats_and_status(&app, &path).await;

    assert_eq!(held, (498, "ON_SALE".to_owned(), 2));
    assert_eq!(listed["events"][0]["availableSeats"], 498);
    assert_eq!(after_sold_out, (0, "SOLD_OUT".to_owned(), 3));
    assert_eq!(
        after_stale, after_sold_out,
        "a redelivery and an older figure change nothing"
    );
    assert_eq!(after_return, (3, "ON_SALE".to_owned(), 4));
}

#[tokio::test]
async fn upcoming_and_cancelled_events_keep_their_status() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let handler = app.app_events.as_ref().unwrap().availability_handler();
    let upcoming = create(&app, token, &event_body("Not yet")).await;
    let upcoming_id: Uuid = upcoming["eventId"].as_str().unwrap().parse().unwrap();
    let (cancelled_id, cancelled_path) = on_sale(&app, token).await;
    put(
        &app,
        &format!("{cancelled_path}/status"),
        token,
        &json!({"status": "CANCELLED"}),
    )
    .await;

    for (i, id) in [upcoming_id, cancelled_id].into_iter().enumerate() {
        handler
            .handle(&envelope(DomainEvent::SoldOut(change(id, 0, 1)), 1))
            .await
            .unwrap();
        let version = i64::try_from(i).unwrap() + 2;
        handler
            .handle(&envelope(
                DomainEvent::OrderPlaced(change(id, 0, version)),
                version,
            ))
            .await
            .unwrap();
    }

    let upcoming = seats_and_status(&app, &format!("/api/events/{upcoming_id}")).await;
    let cancelled = seats_and_status(&app, &cancelled_path).await;
    assert_eq!(upcoming, (0, "UPCOMING".to_owned(), 1));
    assert_eq!(cancelled, (0, "CANCELLED".to_owned(), 3));
}

#[tokio::test]
async fn other_events_unknown_ids_and_undecodable_figures_are_ignored() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let handler = app.app_events.as_ref().unwrap().availability_handler();
    let (id, path) = on_sale(&app, &admin.access_token).await;
    let mut malformed = envelope(DomainEvent::SoldOut(change(id, 0, 9)), 9);
    malformed.payload = json!({"eventId": id, "availability": "none"});
    let mut future = envelope(DomainEvent::SoldOut(change(id, 0, 9)), 9);
    future.schema_version = 2;

    for e in [
        envelope(DomainEvent::SoldOut(change(Uuid::now_v7(), 0, 1)), 1),
        envelope(DomainEvent::EventDeleted { event_id: id }, 7),
        envelope(
            DomainEvent::EventStatusChanged {
                event_id: id,
                from: "ON_SALE".into(),
                to: "SOLD_OUT".into(),
            },
            7,
        ),
        malformed,
        future,
    ] {
        handler.handle(&e).await.unwrap();
    }

    assert_eq!(
        seats_and_status(&app, &path).await,
        (500, "ON_SALE".to_owned(), 2)
    );
}

#[tokio::test]
async fn the_availability_consumer_follows_booking_bus() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let (id, path) = on_sale(&app, &admin.access_token).await;
    let dir = TempDir::new();
    let url = secrecy::SecretString::from(format!(
        "sqlite://{}",
        dir.path().join("booking.db").display()
    ));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    evently_bus::outbox::create_sqlite_tables(&db)
        .await
        .unwrap();
    let booking_outbox: Arc<dyn Outbox> = Arc::new(SqlOutbox::new(
        evently_core::sql::Db::sqlite(&db.path, 2).unwrap(),
    ));
    let booking_bus = Arc::new(InProcessBus::new(
        booking_outbox.clone(),
        Duration::from_millis(20),
    ));
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    app.app_events
        .as_ref()
        .unwrap()
        .start_availability_consumer(booking_bus, &tracker, &shutdown);

    for e in [
        envelope(DomainEvent::SeatsHeld(change(id, 1, 1)), 1),
        envelope(DomainEvent::SoldOut(change(id, 0, 2)), 2),
    ] {
        booking_outbox.append(&e).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = seats_and_status(&app, &path).await;
    while seen.1 != "SOLD_OUT" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen = seats_and_status(&app, &path).await;
    }
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;

    assert_eq!(seen, (0, "SOLD_OUT".to_owned(), 3));
    assert_eq!(
        booking_outbox
            .position("events-availability")
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn a_batch_applies_each_events_newest_figure_whatever_its_order() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let handler = app.app_events.as_ref().unwrap().availability_handler();
    let (first, first_path) = on_sale(&app, &admin.access_token).await;
    let (second, second_path) = on_sale(&app, &admin.access_token).await;
    let batch = [
        envelope(DomainEvent::SeatsHeld(change(first, 499, 1)), 1),
        envelope(DomainEvent::SeatsHeld(change(second, 450, 7)), 7),
        envelope(DomainEvent::SeatsHeld(change(first, 480, 3)), 3),
        envelope(DomainEvent::SeatsReleased(change(first, 490, 2)), 2),
        envelope(DomainEvent::SoldOut(change(second, 0, 6)), 6),
    ];

    let refs: Vec<&Envelope> = batch.iter().collect();
    let (applied, error) = handler.handle_batch(&refs).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(applied, batch.len(), "the whole batch is acknowledged");
    let (seats, status, _) = seats_and_status(&app, &first_path).await;
    assert_eq!((seats, status.as_str()), (480, "ON_SALE"));
    let (seats, status, _) = seats_and_status(&app, &second_path).await;
    assert_eq!(
        (seats, status.as_str()),
        (450, "ON_SALE"),
        "version 7 is newer than the sell-out at version 6"
    );
}
