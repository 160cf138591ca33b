//! Who may see which figures, the series and its CSV, and bad input.

use evently_testkit::{assert_problem, spawn_app};

use crate::support::{buy, event, eventually, figures, ok_json, organizer, send, zoned_event};

#[tokio::test]
async fn an_event_is_its_organizers_and_the_admins_and_nobody_elses() {
    let app = spawn_app().await;
    let owner = organizer(&app).await;
    let rival = organizer(&app).await;
    let buyer = app.signed_in_user().await;
    let admin = app.signed_in_admin().await;
    let id = event(&app, &owner, 10, 1000, "EUR").await;
    buy(&app, &buyer, &id, 2).await;
    eventually(|| async { figures(&app, &owner, &id).await["orders"] == 1 }).await;
    let path = format!("/api/analytics/events/{id}");

    let for_admin = figures(&app, &admin, &id).await;
    let for_rival = send(&app, "GET", &path, &rival.access_token, None).await;
    let for_buyer = send(&app, "GET", &path, &buyer.access_token, None).await;
    let unknown = send(
        &app,
        "GET",
        &format!("/api/analytics/events/{}", uuid::Uuid::now_v7()),
        &admin.access_token,
        None,
    )
    .await;
    let anonymous = app.client.get(app.url(&path)).send().await.unwrap();
    let rival_overview = ok_json(
        send(
            &app,
            "GET",
            "/api/analytics/overview",
            &rival.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    let platform = ok_json(
        send(
            &app,
            "GET",
            "/api/analytics/overview",
            &admin.access_token,
            None,
        )
        .await,
        200,
    )
    .await;

    assert_eq!(for_admin["tickets"], 2);
    assert_eq!(for_admin["revenue"][0]["gross"], 2000);
    assert_problem(for_rival, 404).await;
    assert_problem(for_buyer, 404).await;
    assert_problem(unknown, 404).await;
    assert_problem(anonymous, 401).await;
    assert_eq!(rival_overview["scope"], "organizer");
    assert_eq!(rival_overview["events"], 0);
    assert_eq!(rival_overview["revenue"], serde_json::json!([]));
    assert_eq!(platform["scope"], "platform");
    assert_eq!(platform["topEvents"][0]["eventId"], id.as_str());
}

#[tokio::test]
async fn the_series_is_zero_filled_in_the_events_time_zone_and_comes_as_csv() {
    let app = spawn_app().await;
    let owner = organizer(&app).await;
    let buyer = app.signed_in_user().await;
    let id = zoned_event(&app, &owner, 10, 1000, "EUR", Some("Asia/Kolkata")).await;
    buy(&app, &buyer, &id, 3).await;
    eventually(|| async { figures(&app, &owner, &id).await["orders"] == 1 }).await;
    let now = time::OffsetDateTime::now_utc();
    let from = (now - time::Duration::days(2))
        .date()
        .midnight()
        .assume_utc();
    let to = from + time::Duration::days(4);
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let query = format!(
        "from={}&to={}",
        rfc(from).replace('+', "%2B"),
        rfc(to).replace('+', "%2B")
    );

    let hourly = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/analytics/events/{id}?{query}"),
            &owner.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    let daily_csv = send(
        &app,
        "GET",
        &format!(
            "/api/analytics/events/{id}?{query}&interval=day&format=csv&timeZone=America/New_York"
        ),
        &owner.access_token,
        None,
    )
    .await;

    let series = &hourly["series"];
    assert_eq!(series["interval"], "hour", "four days are hourly");
    assert_eq!(series["timeZone"], "Asia/Kolkata", "the event's own");
    let points = series["points"].as_array().unwrap();
    // Kolkata's hours (+05:30) start at half past in UTC: one more point covers the start.
    assert_eq!(points.len(), 4 * 24 + 1);
    assert!(points[0]["start"].as_str().unwrap().ends_with(":30:00Z"));
    let sold: i64 = points
        .iter()
        .map(|p| p["ticketsSold"].as_i64().unwrap())
        .sum();
    assert_eq!(sold, 3);
    assert!(points.iter().all(|p| p["revenue"][0]["currency"] == "EUR"));
    assert_eq!(daily_csv.status(), 200);
    assert!(
        daily_csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = daily_csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "start,holdsCreated,ordersPlaced,ordersCancelled,ticketsSold,ticketsCancelled,\"gross EUR\",\"refunded EUR\",\"net EUR\""
    );
    assert_eq!(lines.len(), 1 + 5, "{csv}");
    assert!(
        lines.iter().any(|l| l.ends_with(",1,1,0,3,0,3000,0,3000")),
        "{csv}"
    );
    // New York's days (west of UTC) start at 05:00 UTC in winter, 04:00 in summer.
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains("T05:00:00Z,") || l.contains("T04:00:00Z,")),
        "{csv}"
    );

    // Across events the series is in UTC unless a zone is asked for.
    let overview = |zone: &'static str| {
        let (app, owner, query) = (&app, &owner, &query);
        async move {
            ok_json(
                send(
                    app,
                    "GET",
                    &format!("/api/analytics/overview?{query}&interval=day{zone}"),
                    &owner.access_token,
                    None,
                )
                .await,
                200,
            )
            .await
        }
    };
    let utc = overview("").await;
    assert_eq!(utc["series"]["timeZone"], "UTC");
    assert_eq!(utc["series"]["points"].as_array().unwrap().len(), 4);
    assert!(
        utc["series"]["points"][0]["start"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00Z")
    );
    let kolkata = overview("&timeZone=asia/kolkata").await;
    assert_eq!(kolkata["series"]["timeZone"], "Asia/Kolkata");
    assert_eq!(kolkata["series"]["points"].as_array().unwrap().len(), 5);
    assert!(
        kolkata["series"]["points"][0]["start"]
            .as_str()
            .unwrap()
            .ends_with("T18:30:00Z")
    );
}

#[tokio::test]
async fn bad_input_is_a_problem() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let id = uuid::Uuid::now_v7();
    for (query, status) in [
        ("interval=minute", 422),
        ("format=xml", 422),
        ("timeZone=Mars/Olympus", 422),
        ("timeZone=%2B05:30", 422),
        ("utcOffset=%2B05:30", 400),
        ("from=yesterday", 422),
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 422),
        ("from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 422),
        ("bogus=1", 400),
    ] {
        let r = send(
            &app,
            "GET",
            &format!("/api/analytics/overview?{query}"),
            &admin.access_token,
            None,
        )
        .await;
        let problem = assert_problem(r, status).await;
        if query.starts_with("timeZone") {
            assert_eq!(problem["errors"][0]["pointer"], "timeZone", "{problem}");
        }
    }
    let r = send(
        &app,
        "GET",
        "/api/analytics/events/not-a-uuid",
        &admin.access_token,
        None,
    )
    .await;
    assert_problem(r, 400).await;
    let r = send(
        &app,
        "GET",
        &format!("/api/analytics/events/{id}?interval=week"),
        &admin.access_token,
        None,
    )
    .await;
    assert_problem(r, 404).await;
}
