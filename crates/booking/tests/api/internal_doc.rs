//! The internal OpenAPI document lists every internal route of booking's router, and the
//! process running booking (here with events, whose routes share the document) serves it.

use evently_testkit::{ServiceName, Value, spawn_services};

#[tokio::test]
async fn every_internal_route_is_in_the_served_internal_document() {
    let app = spawn_services(&[ServiceName::Events, ServiceName::Booking], |_| {}).await;
    let doc: Value = app
        .client
        .get(app.url("/internal/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = evently_testkit::internal_routes(include_str!("../../src/http/mod.rs"));
    assert!(routes.contains(&(
        "get".to_owned(),
        "/internal/booking/events/{}/orders".to_owned()
    )));
    let own =
        serde_json::to_value(<evently_booking::BookingInternalApi as utoipa::OpenApi>::openapi())
            .unwrap();
    evently_testkit::assert_internal_doc(&own, &doc, &routes);
}
