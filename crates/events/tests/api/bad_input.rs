//! Bad input is a 4xx problem and writes nothing.

use evently_testkit::{Value, assert_problem, json, spawn_app};

use crate::support::{event_body, get, in_days, post, total};

#[tokio::test]
async fn invalid_event_bodies_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let cases: Vec<(&str, Value, u16)> = vec![
        (
            "impossible date",
            json!({"eventDate": "2030-02-30T19:00:00Z"}),
            422,
        ),
        (
            "no offset",
            json!({"eventDate": "2030-02-03T19:00:00"}),
            422,
        ),
        (
            "year 10000",
            json!({"eventDate": "10000-01-01T00:00:00Z"}),
            422,
        ),
        (
            "event in the past",
            json!({"eventDate": in_days(-1), "saleStartTime": in_days(-2)}),
            422,
        ),
        (
            "sale starts after the event",
            json!({"saleStartTime": in_days(31)}),
            422,
        ),
        (
            "sale ends before it starts",
            json!({"saleEndTime": in_days(5)}),
            422,
        ),
        ("negative seats", json!({"totalSeats": -10}), 422),
        ("zero seats", json!({"totalSeats": 0}), 422),
        ("negative price", json!({"basePrice": -1}), 422),
        ("fractional price", json!({"basePrice": 10.5}), 422),
        ("overflowing price", json!({"basePrice": 1e30}), 422),
        ("bad currency", json!({"currency": "dollars"}), 422),
        (
            "unknown time zone",
            json!({"timeZone": "Mars/Olympus"}),
            422,
        ),
        ("offset for a time zone", json!({"timeZone": "+02:00"}), 422),
        ("unknown status", json!({"status": "SOLD_AWAY"}), 422),
        ("sold out at birth", json!({"status": "SOLD_OUT"}), 422),
        ("unknown type", json!({"eventType": "rave"}), 422),
        ("empty name", json!({"eventName": "   "}), 422),
        ("NUL in name", json!({"eventName": "a\u{0}b"}), 422),
        (
            "owner smuggled in",
            json!({"organizerId": "00000000-0000-0000-0000-000000000000"}),
            422,
        ),
        (
            "section prices without sections",
            json!({"sectionPrices": {"A": 1}}),
            422,
        ),
        (
            "both venue kinds",
            json!({"venueId": "00000000-0000-7000-8000-000000000000"}),
            422,
        ),
    ];

    for (why, patch, status) in cases {
        let mut body = event_body("Bad");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = post(&app, "/api/events", token, &body).await;
        let got = r.status().as_u16();
        assert_eq!(got, status, "{why}");
        assert_problem(r, status).await;
    }
    let huge = "x".repeat(10 * 1024 * 1024);
    let mut body = event_body("Huge");
    body["description"] = json!(huge);
    let too_big = post(&app, "/api/events", token, &body).await;
    let malformed = app
        .client
        .post(app.url("/api/events"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{\"eventName\": ")
        .send()
        .await
        .unwrap();

    assert_problem(too_big, 413).await;
    assert_problem(malformed, 400).await;
    assert_eq!(total(&app, "").await, 0, "nothing was written");
}

#[tokio::test]
async fn bad_ids_and_query_parameters_are_problems() {
    let app = spawn_app().await;

    for (path, status) in [
        ("/api/events/abc", 400),
        ("/api/events/123", 400),
        ("/api/events/00000000-0000-7000-8000-000000000000", 404),
        ("/api/venues/not-a-uuid", 400),
        ("/api/events?size=1000000000", 422),
        ("/api/events?size=101", 422),
        ("/api/events?size=0", 422),
        ("/api/events?page=-1", 400),
        ("/api/events?status=SOLD_AWAY", 400),
        ("/api/events?type=rave", 400),
        ("/api/events?from=yesterday", 422),
        ("/api/events?sort=name", 400),
        ("/api/venues?size=5000", 422),
    ] {
        let r = get(&app, path).await;
        assert_problem(r, status).await;
    }
    let ok = get(&app, "/api/events?size=100").await;
    assert_eq!(ok.status(), 200);
}
