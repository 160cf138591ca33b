//! Every change reaches the bus, in order per event, through the outbox.

use evently_bus::{DomainEvent, Envelope};
use evently_testkit::{json, spawn_app};
use std::time::Duration;

use crate::support::{create, event_body, post, put, send};

#[tokio::test]
async fn every_change_is_delivered_in_order_per_event() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let bus = app.app_events.as_ref().unwrap().bus.clone();
    let mut sub = bus.subscribe("test-projection").await.unwrap();

    let venue = post(
        &app,
        "/api/venues",
        token,
        &json!({"name": "Hall", "address": "1 Main St", "city": "Oslo", "capacity": 100}),
    )
    .await;
    assert_eq!(venue.status(), 201);
    let a = create(&app, token, &event_body("A")).await;
    let b = create(&app, token, &event_body("B")).await;
    let a_path = format!("/api/events/{}", a["eventId"].as_str().unwrap());
    let b_path = format!("/api/events/{}", b["eventId"].as_str().unwrap());
    put(
        &app,
        &a_path,
        token,
        &json!({"eventName": "A2", "status": "ON_SALE"}),
    )
    .await;
    put(
        &app,
        &format!("{b_path}/status"),
        token,
        &json!({"status": "CANCELLED"}),
    )
    .await;
    put(
        &app,
        &format!("{a_path}/status"),
        token,
        &json!({"status": "SOLD_OUT"}),
    )
    .await;
    send(&app, reqwest::Method::DELETE, &a_path, Some(token), None).await;

    let mut got: Vec<Envelope> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 8 && tokio::time::Instant::now() < deadline {
        for d in sub
            .next_batch(50, Duration::from_millis(100))
            .await
            .unwrap()
        {
            got.push(d.envelope);
        }
    }

    let of = |id: &str| -> Vec<(String, i64)> {
        got.iter()
            .filter(|e| e.aggregate_id.to_string() == id)
            .map(|e| (e.event_type.clone(), e.aggregate_version))
            .collect()
    };
    assert_eq!(got.len(), 8);
    assert_eq!(got[0].event_type, "VenueCreated");
    assert_eq!(
        of(a["eventId"].as_str().unwrap()),
        [
            ("EventCreated".to_owned(), 1),
            ("EventUpdated".to_owned(), 2),
            ("EventStatusChanged".to_owned(), 2),
            ("EventStatusChanged".to_owned(), 3),
            ("EventDeleted".to_owned(), 4),
        ]
    );
    assert_eq!(
        of(b["eventId"].as_str().unwrap()),
        [
            ("EventCreated".to_owned(), 1),
            ("EventStatusChanged".to_owned(), 2)
        ]
    );
    for envelope in &got {
        DomainEvent::decode(envelope).unwrap();
    }
}

#[tokio::test]
async fn reserved_event_publishes_its_venue_layout_and_general_admission_none() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let bus = app.app_events.as_ref().unwrap().bus.clone();
    let mut sub = bus.subscribe("test-layout").await.unwrap();
    let layout = json!({"sections": [
        {"name": "A", "rows": [{"label": "1", "seats": 2}, {"label": "2", "seats": 3}]},
        {"name": "B", "rows": [{"label": "1", "seats": 1}]}]});
    let venue: evently_testkit::Value = post(
        &app,
        "/api/venues",
        token,
        &json!({"name": "Opera", "address": "1 Main St", "city": "Oslo", "layout": layout}),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut body = event_body("Carmen");
    body.as_object_mut().unwrap().remove("venueName");
    body.as_object_mut().unwrap().remove("totalSeats");
    body["venueId"] = venue["venueId"].clone();
    let reserved = create(&app, token, &body).await;
    let reserved_path = format!("/api/events/{}", reserved["eventId"].as_str().unwrap());
    put(
        &app,
        &reserved_path,
        token,
        &json!({"eventName": "Carmen II"}),
    )
    .await;
    create(&app, token, &event_body("Standing")).await;

    let mut got: Vec<Envelope> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < 4 && tokio::time::Instant::now() < deadline {
        for d in sub
            .next_batch(50, Duration::from_millis(100))
            .await
            .unwrap()
        {
            got.push(d.envelope);
        }
    }

    let snapshots: Vec<_> = got
        .iter()
        .filter_map(|e| match DomainEvent::decode(e).unwrap() {
            DomainEvent::EventCreated(s) | DomainEvent::EventUpdated(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(snapshots.len(), 3);
    for reserved in &snapshots[..2] {
        assert_eq!(reserved.total_seats, 6);
        assert_eq!(serde_json::to_value(&reserved.layout).unwrap(), layout);
    }
    assert_eq!(snapshots[1].event_name, "Carmen II");
    assert_eq!(snapshots[2].layout, None);
    assert_eq!(snapshots[2].total_seats, 500);
}
