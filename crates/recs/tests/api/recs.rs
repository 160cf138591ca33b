//! `/api/recs` and `/api/recs/related` through the gateway: personal picks with reasons,
//! never what the caller owns, popular events for anonymous callers, and bad input.

use evently_testkit::assert_problem;
use serde_json::json;

use crate::support::{app, buy, event, ids, ok_json, send, until};

#[tokio::test]
async fn a_berlin_jazz_buyer_gets_jazz_and_berlin_first_with_reasons_never_what_they_own() {
    let app = app().await;
    let bought = event(&app, "Blue Note Quartet", "concert", &["jazz"], "Berlin").await;
    let jazz_berlin = event(&app, "Swing Trio", "concert", &["jazz", "swing"], "Berlin").await;
    let jazz_hamburg = event(&app, "Harbour Jazz", "concert", &["jazz"], "Hamburg").await;
    let theatre_berlin = event(&app, "Hamlet", "theatre", &["drama"], "Berlin").await;
    let rock_munich = event(&app, "Stadium Rock", "festival", &["rock"], "Munich").await;
    let football = event(&app, "Cup Final", "sports", &["football"], "Paris").await;
    let fans = [app.signed_in_user().await, app.signed_in_user().await];
    for fan in &fans {
        buy(&app, fan, &rock_munich).await;
        buy(&app, fan, &football).await;
    }
    let buyer = app.signed_in_user().await;
    buy(&app, &buyer, &bought).await;

    let page = until(|| async {
        let page = ok_json(
            send(
                &app,
                "GET",
                "/api/recs?limit=10",
                Some(&buyer.access_token),
                None,
            )
            .await,
            200,
        )
        .await;
        (ids(&page).first() == Some(&jazz_berlin)).then_some(page)
    })
    .await;

    let got = ids(&page);
    assert!(!got.contains(&bought), "never what they own: {page}");
    assert_eq!(
        page["items"][0]["reason"],
        json!({"kind": "sameArtistTag", "eventId": bought, "tag": "jazz"})
    );
    let rank = |id: &String| got.iter().position(|g| g == id).unwrap_or(usize::MAX);
    for alike in [&jazz_hamburg, &theatre_berlin] {
        for unlike in [&rock_munich, &football] {
            assert!(rank(alike) < rank(unlike), "jazz and Berlin first: {page}");
        }
    }
    for item in page["items"].as_array().unwrap() {
        assert!(item["reason"]["kind"].is_string(), "{item}");
    }

    let related = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/recs/related?eventId={jazz_berlin}&limit=3"),
            Some(&buyer.access_token),
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(
        !ids(&related).contains(&bought),
        "never what they own: {related}"
    );
    assert!(!ids(&related).contains(&jazz_berlin), "{related}");
}

#[tokio::test]
async fn anonymous_callers_get_popular_events_in_their_city_first() {
    let app = app().await;
    let quiet = event(&app, "Quiet Recital", "concert", &["classical"], "Vienna").await;
    let busy = event(&app, "Big Derby", "sports", &["football"], "Munich").await;
    let fan = app.signed_in_user().await;
    buy(&app, &fan, &busy).await;

    let page = until(|| async {
        let page = ok_json(send(&app, "GET", "/api/recs", None, None).await, 200).await;
        (ids(&page) == [busy.clone(), quiet.clone()]).then_some(page)
    })
    .await;
    assert_eq!(page["items"][0]["reason"], json!({"kind": "popular"}));

    let vienna = ok_json(
        send(&app, "GET", "/api/recs?city=vienna", None, None).await,
        200,
    )
    .await;
    assert_eq!(ids(&vienna)[0], quiet);
    assert_eq!(
        vienna["items"][0]["reason"],
        json!({"kind": "popularInCity", "city": "Vienna"})
    );

    // A signed-in caller who bought nothing gets the same popular events.
    let newcomer = app.signed_in_user().await;
    let fresh = ok_json(
        send(&app, "GET", "/api/recs", Some(&newcomer.access_token), None).await,
        200,
    )
    .await;
    assert_eq!(ids(&fresh), ids(&page));
    let metrics = app.metrics().await;
    for name in [
        "evently_recs_domain_events_applied_total",
        "evently_recs_catalogue_events",
        "evently_recs_answer_cache_total",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    // The buyer is never offered the event they own.
    let own = ok_json(
        send(&app, "GET", "/api/recs", Some(&fan.access_token), None).await,
        200,
    )
    .await;
    assert!(!ids(&own).contains(&busy), "{own}");
}

#[tokio::test]
async fn a_newcomer_who_names_a_favourite_city_and_type_gets_those_events_first() {
    let app = app().await;
    let both = event(&app, "Tram Laughs", "comedy", &["standup"], "Lisbon").await;
    let city_only = event(&app, "Fado Stage", "theatre", &["drama"], "Lisbon").await;
    let type_only = event(&app, "Fjord Roast", "comedy", &["roast"], "Oslo").await;
    let best_seller = event(&app, "Big Derby", "sports", &["football"], "Munich").await;
    let other = event(&app, "Quiet Recital", "concert", &["classical"], "Vienna").await;
    let fan = app.signed_in_user().await;
    buy(&app, &fan, &best_seller).await;
    let newcomer = app.signed_in_user().await;
    let token = Some(newcomer.access_token.as_str());
    // Before any preferences: popular events, the best seller first (and cached).
    until(|| async {
        let page = ok_json(send(&app, "GET", "/api/recs", token, None).await, 200).await;
        (ids(&page).first() == Some(&best_seller)).then_some(())
    })
    .await;

    let patched = app
        .client
        .patch(app.url("/api/settings/me"))
        .bearer_auth(&newcomer.access_token)
        .header("Content-Type", "application/merge-patch+json")
        .header("If-Match", "\"0\"")
        .body(r#"{"favouriteCities": ["Lisbon"], "favouriteEventTypes": ["comedy"]}"#)
        .send()
        .await
        .unwrap();
    ok_json(patched, 200).await;

    let page = until(|| async {
        let page = ok_json(send(&app, "GET", "/api/recs", token, None).await, 200).await;
        (ids(&page).first() == Some(&both)).then_some(page)
    })
    .await;

    assert_eq!(
        ids(&page)[..3],
        [both, city_only.clone(), type_only.clone()],
        "{page}"
    );
    assert_eq!(
        page["items"][0]["reason"],
        json!({"kind": "favouriteCity", "city": "Lisbon"})
    );
    assert_eq!(
        page["items"][1]["reason"],
        json!({"kind": "favouriteCity", "city": "Lisbon"})
    );
    assert_eq!(
        page["items"][2]["reason"],
        json!({"kind": "favouriteType", "eventType": "comedy"})
    );
    assert_eq!(ids(&page)[3..], [best_seller.clone(), other], "{page}");
    // A city asked for still comes first; the favourite type next.
    let munich = ok_json(
        send(&app, "GET", "/api/recs?city=Munich", token, None).await,
        200,
    )
    .await;
    assert_eq!(ids(&munich)[0], best_seller, "{munich}");
    assert_eq!(
        munich["items"][1]["reason"]["kind"], "favouriteType",
        "{munich}"
    );
    // Anonymous callers have no favourites.
    let anonymous = ok_json(send(&app, "GET", "/api/recs", None, None).await, 200).await;
    assert_eq!(ids(&anonymous)[0], best_seller, "{anonymous}");
}

#[tokio::test]
async fn a_cached_answer_follows_new_sales_of_other_buyers() {
    let app = app().await;
    let quiet = event(&app, "Quiet Quartet", "concert", &["jazz"], "Porto").await;
    let hit = event(&app, "Sold Out Soon", "concert", &["jazz"], "Porto").await;
    let newcomer = app.signed_in_user().await;
    let token = Some(newcomer.access_token.as_str());
    // Asked (and cached) while nothing has sold.
    until(|| async {
        let page = ok_json(send(&app, "GET", "/api/recs", token, None).await, 200).await;
        let ids = ids(&page);
        (ids.contains(&quiet) && ids.contains(&hit)).then_some(())
    })
    .await;

    let fan = app.signed_in_user().await;
    buy(&app, &fan, &hit).await;

    // The newcomer's cached answer gives way once the sale reaches the figures.
    until(|| async {
        let page = ok_json(send(&app, "GET", "/api/recs", token, None).await, 200).await;
        (ids(&page).first() == Some(&hit)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_a_problem_and_a_bad_token_is_401() {
    let app = app().await;

    for path in [
        "/api/recs?limit=0",
        "/api/recs?limit=abc",
        "/api/recs?limit=51",
        "/api/recs/related",
        "/api/recs/related?eventId=not-a-uuid",
        "/api/recs/related?eventId=0190a0c4-0000-7000-8000-000000000000&limit=-1",
    ] {
        let problem = assert_problem(send(&app, "GET", path, None, None).await, 422).await;
        assert!(
            problem["errors"][0]["pointer"].is_string(),
            "{path}: {problem}"
        );
    }
    assert_problem(
        send(&app, "GET", "/api/recs?colour=red", None, None).await,
        400,
    )
    .await;
    assert_problem(
        send(
            &app,
            "GET",
            "/api/recs/related?eventId=0190a0c4-0000-7000-8000-000000000000",
            None,
            None,
        )
        .await,
        404,
    )
    .await;
    let refused = send(&app, "GET", "/api/recs", Some("not.a.token"), None).await;
    assert!(refused.headers().contains_key("www-authenticate"));
    assert_problem(refused, 401).await;
    assert_problem(
        send(
            &app,
            "GET",
            "/api/recs/related?eventId=0190a0c4-0000-7000-8000-000000000000",
            Some("x"),
            None,
        )
        .await,
        401,
    )
    .await;
}

#[tokio::test]
async fn openapi_documents_both_routes_and_their_statuses() {
    let app = app().await;

    let doc = ok_json(send(&app, "GET", "/openapi.json", None, None).await, 200).await;

    for (path, statuses) in [
        ("/api/recs", &["200", "400", "401", "422", "429", "503"][..]),
        (
            "/api/recs/related",
            &["200", "400", "401", "404", "422", "429", "503"][..],
        ),
    ] {
        let responses = &doc["paths"][path]["get"]["responses"];
        for status in statuses {
            assert!(
                responses[status].is_object(),
                "{path} {status}: {responses}"
            );
        }
    }
}

#[tokio::test]
async fn a_cancelled_event_leaves_the_recommendations() {
    let app = app().await;
    let anchor = event(&app, "Blue Note Quartet", "concert", &["jazz"], "Berlin").await;
    let alike = event(&app, "Swing Trio", "concert", &["jazz"], "Berlin").await;
    let path = format!("/api/recs/related?eventId={anchor}");
    until(|| async {
        let related = ok_json(send(&app, "GET", &path, None, None).await, 200).await;
        ids(&related).contains(&alike).then_some(())
    })
    .await;
    let admin = app.signed_in_admin().await;

    ok_json(
        send(
            &app,
            "PUT",
            &format!("/api/events/{alike}/status"),
            Some(&admin.access_token),
            Some(&json!({"status": "CANCELLED"})),
        )
        .await,
        200,
    )
    .await;

    until(|| async {
        let related = ok_json(send(&app, "GET", &path, None, None).await, 200).await;
        let popular = ok_json(send(&app, "GET", "/api/recs", None, None).await, 200).await;
        (!ids(&related).contains(&alike) && !ids(&popular).contains(&alike)).then_some(())
    })
    .await;
}
