//! Create, read, list, update and delete; who may do which.

use evently_testkit::{Value, assert_problem, json, spawn_app};

use crate::support::{create, event_body, get, in_days, organizer, post, put, send};

#[tokio::test]
async fn organizer_creates_and_anyone_reads_an_event() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let org = organizer(&app, &admin).await;

    let created = create(&app, &org.access_token, &event_body("Eras Tour")).await;
    let id = created["eventId"].as_str().unwrap();
    let fetched: Value = get(&app, &format!("/api/events/{id}"))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(created["organizerId"], org.id.as_str());
    assert_eq!(created["availableSeats"], 500);
    assert_eq!(created["totalSeats"], 500);
    assert_eq!(created["status"], "UPCOMING");
    assert_eq!(created["basePrice"], 12500);
    assert!(created["createdAt"].is_string());
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn a_plain_user_cannot_create_and_anonymous_is_401() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    let as_user = post(&app, "/api/events", &user.access_token, &event_body("Nope")).await;
    let anonymous = send(
        &app,
        reqwest::Method::POST,
        "/api/events",
        None,
        Some(&event_body("Nope")),
    )
    .await;

    assert_problem(as_user, 403).await;
    assert_problem(anonymous, 401).await;
    assert_eq!(crate::support::total(&app, "").await, 0);
}

#[tokio::test]
async fn only_the_owner_or_an_admin_may_change_an_event() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let a = organizer(&app, &admin).await;
    let b = organizer(&app, &admin).await;
    let event = create(&app, &a.access_token, &event_body("A's show")).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());

    let by_b = put(
        &app,
        &path,
        &b.access_token,
        &json!({"eventName": "B's now"}),
    )
    .await;
    let status_by_b = put(
        &app,
        &format!("{path}/status"),
        &b.access_token,
        &json!({"status": "CANCELLED"}),
    )
    .await;
    let delete_by_b = send(
        &app,
        reqwest::Method::DELETE,
        &path,
        Some(&b.access_token),
        None,
    )
    .await;
    let by_a = put(
        &app,
        &path,
        &a.access_token,
        &json!({"eventName": "A's renamed"}),
    )
    .await;
    let by_admin = put(
        &app,
        &path,
        &admin.access_token,
        &json!({"description": "by admin"}),
    )
    .await;

    assert_problem(by_b, 403).await;
    assert_problem(status_by_b, 403).await;
    assert_problem(delete_by_b, 403).await;
    assert_eq!(by_a.status(), 200);
    let body: Value = by_admin.json().await.unwrap();
    assert_eq!(body["eventName"], "A's renamed");
    assert_eq!(body["description"], "by admin");
    assert_eq!(body["version"], 3);
    assert_eq!(body["organizerId"], a.id.as_str());
}

#[tokio::test]
async fn update_refuses_owner_change_and_keeps_rules() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let org = organizer(&app, &admin).await;
    let event = create(&app, &org.access_token, &event_body("Rules")).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());

    let owner_change = put(
        &app,
        &path,
        &org.access_token,
        &json!({"organizerId": admin.id}),
    )
    .await;
    let sale_after_event = put(
        &app,
        &path,
        &org.access_token,
        &json!({"saleStartTime": in_days(40)}),
    )
    .await;
    let after: Value = get(&app, &path).await.json().await.unwrap();

    assert_problem(owner_change, 422).await;
    assert_problem(sale_after_event, 422).await;
    assert_eq!(after["version"], 1);
}

#[tokio::test]
async fn seats_of_a_general_admission_event_are_locked_once_on_sale() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let event = create(&app, token, &event_body("Fixed capacity")).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());

    let while_upcoming = put(&app, &path, token, &json!({"totalSeats": 600})).await;
    let upcoming: Value = while_upcoming.json().await.unwrap();
    put(
        &app,
        &format!("{path}/status"),
        token,
        &json!({"status": "ON_SALE"}),
    )
    .await;
    let on_sale = put(&app, &path, token, &json!({"totalSeats": 700})).await;
    let same_seats = put(
        &app,
        &path,
        token,
        &json!({"totalSeats": 600, "eventName": "Renamed"}),
    )
    .await;
    put(
        &app,
        &format!("{path}/status"),
        token,
        &json!({"status": "SOLD_OUT"}),
    )
    .await;
    let sold_out = put(&app, &path, token, &json!({"totalSeats": 10})).await;
    let after: Value = get(&app, &path).await.json().await.unwrap();

    assert_eq!(upcoming["totalSeats"], 600);
    assert_eq!(upcoming["availableSeats"], 600);
    let problem = assert_problem(on_sale, 409).await;
    assert_eq!(
        problem["type"],
        "https://evently.dev/problems/capacity-locked"
    );
    assert_eq!(same_seats.status(), 200);
    assert_problem(sold_out, 409).await;
    assert_eq!(after["totalSeats"], 600);
    assert_eq!(after["eventName"], "Renamed");
}

#[tokio::test]
async fn delete_is_204_then_404() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let event = create(&app, &admin.access_token, &event_body("Gone soon")).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());

    let deleted = send(
        &app,
        reqwest::Method::DELETE,
        &path,
        Some(&admin.access_token),
        None,
    )
    .await;
    let again = send(
        &app,
        reqwest::Method::DELETE,
        &path,
        Some(&admin.access_token),
        None,
    )
    .await;
    let fetched = get(&app, &path).await;

    assert_eq!(deleted.status(), 204);
    assert_problem(again, 404).await;
    assert_problem(fetched, 404).await;
}

#[tokio::test]
async fn pagination_metadata_is_right_at_the_edges() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    for i in 0..5 {
        create(&app, &admin.access_token, &event_body(&format!("E{i}"))).await;
    }
    let page = |q: &'static str| {
        let app = &app;
        async move {
            let body: Value = get(app, &format!("/api/events?{q}"))
                .await
                .json()
                .await
                .unwrap();
            (
                body["events"].as_array().unwrap().len(),
                body["page"].clone(),
            )
        }
    };

    let (n0, p0) = page("page=0&size=2").await;
    let (n2, p2) = page("page=2&size=2").await;
    let (n3, p3) = page("page=3&size=2").await;
    let (n_exact, p_exact) = page("page=0&size=5").await;
    let (n_default, p_default) = page("").await;

    assert_eq!(
        (n0, p0),
        (
            2,
            json!({"number": 0, "size": 2, "totalElements": 5, "totalPages": 3})
        )
    );
    assert_eq!(
        (n2, p2),
        (
            1,
            json!({"number": 2, "size": 2, "totalElements": 5, "totalPages": 3})
        )
    );
    assert_eq!(
        (n3, p3),
        (
            0,
            json!({"number": 3, "size": 2, "totalElements": 5, "totalPages": 3})
        )
    );
    assert_eq!((n_exact, p_exact["totalPages"].clone()), (5, json!(1)));
    assert_eq!((n_default, p_default["size"].clone()), (5, json!(20)));
}

#[tokio::test]
async fn every_filter_narrows_the_listing() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let venue: Value = post(
        &app,
        "/api/venues",
        token,
        &json!({"name": "Spektrum", "address": "Sonja Henies plass 2", "city": "Oslo", "capacity": 800}),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut in_oslo = event_body("Oslo gig");
    in_oslo["venueName"] = Value::Null;
    in_oslo.as_object_mut().unwrap().remove("venueName");
    in_oslo["venueId"] = venue["venueId"].clone();
    in_oslo["totalSeats"] = json!(800);
    create(&app, token, &in_oslo).await;
    let mut sports = event_body("Cup final");
    sports["eventType"] = json!("sports");
    sports["eventDate"] = json!(in_days(60));
    create(&app, token, &sports).await;
    let on_sale = create(&app, token, &event_body("Selling")).await;
    put(
        &app,
        &format!(
            "/api/events/{}/status",
            on_sale["eventId"].as_str().unwrap()
        ),
        token,
        &json!({"status": "ON_SALE"}),
    )
    .await;

    let total = |q: &'static str| crate::support::total(&app, q);
    assert_eq!(total("").await, 3);
    assert_eq!(total("?city=oslo").await, 1);
    assert_eq!(total("?type=sports").await, 1);
    assert_eq!(total("?status=ON_SALE").await, 1);
    assert_eq!(total("?status=UPCOMING").await, 2);
    let from = format!("?from={}", in_days(45).replace('+', "%2B"));
    assert_eq!(crate::support::total(&app, &from).await, 1);
    let to = format!("?to={}", in_days(45).replace('+', "%2B"));
    assert_eq!(crate::support::total(&app, &to).await, 2);
    assert_eq!(total("?city=Bergen").await, 0);
}

#[tokio::test]
async fn reserved_venue_gives_the_event_its_seats_and_section_prices() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let venue = post(
        &app,
        "/api/venues",
        token,
        &json!({"name": "Opera", "address": "Kirsten Flagstads plass 1", "city": "Oslo",
                "layout": {"sections": [
                    {"name": "A", "rows": [{"label": "1", "seats": 10}, {"label": "2", "seats": 12}]},
                    {"name": "B", "rows": [{"label": "1", "seats": 8}]}]}}),
    )
    .await;
    assert_eq!(venue.status(), 201);
    let venue: Value = venue.json().await.unwrap();
    let venue_id = venue["venueId"].as_str().unwrap();
    let mut body = event_body("Carmen");
    body.as_object_mut().unwrap().remove("venueName");
    body.as_object_mut().unwrap().remove("totalSeats");
    body["venueId"] = json!(venue_id);
    body["sectionPrices"] = json!({"A": 20000});

    let created = create(&app, token, &body).await;
    let mut wrong_seats = body.clone();
    wrong_seats["totalSeats"] = json!(31);
    let mut wrong_section = body.clone();
    wrong_section["sectionPrices"] = json!({"Z": 1});
    let duplicate_rows = post(
        &app,
        "/api/venues",
        token,
        &json!({"name": "Bad", "address": "x", "city": "Oslo",
                "layout": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 1}, {"label": "1", "seats": 2}]}]}}),
    )
    .await;
    let listed: Value = get(&app, "/api/venues?size=10").await.json().await.unwrap();
    let fetched: Value = get(&app, &format!("/api/venues/{venue_id}"))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(venue["capacity"], 30);
    assert_eq!(created["totalSeats"], 30);
    assert_eq!(created["city"], "Oslo");
    assert_eq!(created["sectionPrices"]["A"], 20000);
    assert_problem(post(&app, "/api/events", token, &wrong_seats).await, 422).await;
    assert_problem(post(&app, "/api/events", token, &wrong_section).await, 422).await;
    assert_problem(duplicate_rows, 422).await;
    assert_eq!(listed["page"]["totalElements"], 1);
    assert_eq!(fetched["layout"]["sections"][1]["rows"][0]["seats"], 8);
}

#[tokio::test]
async fn events_work_on_postgres() {
    let Some(url) = evently_testkit::postgres_url() else {
        evently_testkit::skip("events_work_on_postgres", "EVENTLY_TEST_POSTGRES_URL");
        return;
    };
    let schema_url = url.clone();
    let app = evently_testkit::spawn_app_with(|c| {
        c.database.url = Some(secrecy::SecretString::from(schema_url));
    })
    .await;
    let admin = app.signed_in_admin().await;

    let event = create(&app, &admin.access_token, &event_body("On Postgres")).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());
    let renamed = put(
        &app,
        &path,
        &admin.access_token,
        &json!({"eventName": "Renamed"}),
    )
    .await;
    let illegal = put(
        &app,
        &format!("{path}/status"),
        &admin.access_token,
        &json!({"status": "SOLD_OUT"}),
    )
    .await;

    // PostgreSQL refuses NUL in text; a filter holding one matches nothing, and is no 500.
    let nul_city = get(&app, "/api/events?city=Ber%00lin").await;

    assert_eq!(renamed.status(), 200);
    assert_problem(illegal, 409).await;
    assert_eq!(nul_city.status(), 200);
    let nul_city: Value = nul_city.json().await.unwrap();
    assert_eq!(nul_city["page"]["totalElements"], 0);
    assert!(crate::support::total(&app, "").await >= 1);
}

/// The fields of an event's representation that only the server sets.
const READ_ONLY: [&str; 6] = [
    "eventId",
    "organizerId",
    "availableSeats",
    "version",
    "createdAt",
    "updatedAt",
];

#[tokio::test]
async fn an_event_put_back_as_read_is_accepted_and_read_only_fields_are_named() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let org = organizer(&app, &admin).await;
    let event = create(&app, &org.access_token, &event_body("Round trip")).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());
    let read: Value = get(&app, &path).await.json().await.unwrap();
    let mut body = read.clone();
    for field in READ_ONLY {
        body.as_object_mut().unwrap().remove(field);
    }

    let same = put(&app, &path, &org.access_token, &body).await;
    assert_eq!(same.status(), 200);
    let same: Value = same.json().await.unwrap();
    body["venueName"] = json!("Renamed Hall");
    let renamed = put(&app, &path, &org.access_token, &body).await;
    assert_eq!(renamed.status(), 200);
    let renamed: Value = renamed.json().await.unwrap();
    for field in READ_ONLY {
        let mut with_read_only = body.clone();
        with_read_only[field] = read[field].clone();
        let refused = put(&app, &path, &org.access_token, &with_read_only).await;
        let problem = assert_problem(refused, 422).await;
        assert!(
            problem.to_string().contains(field),
            "{field} not named: {problem}"
        );
    }
    let after: Value = get(&app, &path).await.json().await.unwrap();

    // Putting back what was read changes nothing, not even the version.
    assert_eq!(same, read);
    assert_eq!(renamed["venueName"], "Renamed Hall");
    assert_eq!(renamed["version"], read["version"].as_i64().unwrap() + 1);
    assert_eq!(after, renamed);
}

#[tokio::test]
async fn an_event_stays_at_its_venue_record() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;
    let venue: Value = post(
        &app,
        "/api/venues",
        token,
        &json!({"name": "Hall", "address": "1 Main St", "city": "Berlin", "capacity": 100}),
    )
    .await
    .json()
    .await
    .unwrap();
    let mut draft = event_body("At a venue");
    draft.as_object_mut().unwrap().remove("venueName");
    draft.as_object_mut().unwrap().remove("totalSeats");
    draft["venueId"] = venue["venueId"].clone();
    let event = create(&app, token, &draft).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());

    let unchanged = put(
        &app,
        &path,
        token,
        &json!({"venueId": venue["venueId"], "venueName": "Hall", "city": "Berlin"}),
    )
    .await;
    let renamed = put(&app, &path, token, &json!({"venueName": "Other"})).await;
    let moved = put(
        &app,
        &path,
        token,
        &json!({"venueId": "01a242c7-aa82-76d7-8222-96dea03a090d", "city": "Paris"}),
    )
    .await;
    let after: Value = get(&app, &path).await.json().await.unwrap();

    assert_eq!(unchanged.status(), 200);
    let problem = assert_problem(renamed, 422).await;
    assert_eq!(problem["errors"][0]["pointer"], "/venueName");
    let problem = assert_problem(moved, 422).await;
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/venueId", "/city"]);
    assert_eq!(after["venueName"], "Hall");
    assert_eq!(after["version"], 1);
}

#[tokio::test]
async fn the_time_zone_defaults_to_utc_and_is_set_changed_and_listed() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let org = organizer(&app, &admin).await;
    let plain = create(&app, &org.access_token, &event_body("In UTC")).await;
    let mut body = event_body("In Berlin");
    body["timeZone"] = json!("europe/berlin");
    let berlin = create(&app, &org.access_token, &body).await;
    let path = format!("/api/events/{}", berlin["eventId"].as_str().unwrap());

    assert_eq!(plain["timeZone"], "UTC");
    assert_eq!(
        berlin["timeZone"], "Europe/Berlin",
        "the tz database's name"
    );
    let list: Value = get(&app, "/api/events").await.json().await.unwrap();
    let mut zones: Vec<&str> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["timeZone"].as_str().unwrap())
        .collect();
    zones.sort_unstable();
    assert_eq!(zones, ["Europe/Berlin", "UTC"]);

    let moved = put(
        &app,
        &path,
        &org.access_token,
        &json!({"timeZone": "America/New_York"}),
    )
    .await;
    assert_eq!(moved.status(), 200);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(moved["timeZone"], "America/New_York");
    assert_eq!(moved["version"], berlin["version"].as_i64().unwrap() + 1);

    for bad in ["Mars/Olympus", "+01:00", ""] {
        let refused = put(&app, &path, &org.access_token, &json!({"timeZone": bad})).await;
        let problem = assert_problem(refused, 422).await;
        assert_eq!(problem["errors"][0]["pointer"], "/timeZone", "{problem}");
    }
    let after: Value = get(&app, &path).await.json().await.unwrap();
    assert_eq!(after, moved, "refused changes change nothing");
}
