//! The status machine over HTTP: every legal and illegal transition, random sequences against
//! the model, and the automatic ON_SALE at the sale start.

use evently_core::clock::ManualClock;
use evently_testkit::{
    TempDir, TestApp, Value, assert_problem, json, spawn_app, spawn_config, test_config,
};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use crate::support::{create, event_body, get, put};

const ALL: [&str; 4] = ["UPCOMING", "ON_SALE", "SOLD_OUT", "CANCELLED"];

fn model_allows(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("UPCOMING", "ON_SALE")
            | ("ON_SALE", "SOLD_OUT")
            | ("UPCOMING" | "ON_SALE" | "SOLD_OUT", "CANCELLED")
            | ("SOLD_OUT", "ON_SALE")
    )
}

/// Drives a fresh event to `status` along legal transitions; returns its path.
async fn event_in(app: &TestApp, token: &str, status: &str) -> String {
    let event = create(app, token, &event_body("Machine")).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());
    let route: &[&str] = match status {
        "UPCOMING" => &[],
        "ON_SALE" => &["ON_SALE"],
        "SOLD_OUT" => &["ON_SALE", "SOLD_OUT"],
        _ => &["CANCELLED"],
    };
    for step in route {
        let r = put(
            app,
            &format!("{path}/status"),
            token,
            &json!({"status": step}),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    path
}

#[tokio::test]
async fn every_transition_is_allowed_or_refused_as_the_machine_says() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let token = &admin.access_token;

    for from in ALL {
        for to in ALL {
            let path = event_in(&app, token, from).await;
            let r = put(
                &app,
                &format!("{path}/status"),
                token,
                &json!({"status": to}),
            )
            .await;
            let after: Value = get(&app, &path).await.json().await.unwrap();
            if model_allows(from, to) {
                assert_eq!(r.status(), 200, "{from} -> {to}");
                assert_eq!(after["status"], to);
            } else {
                let problem = assert_problem(r, 409).await;
                assert_eq!(problem["from"], from, "{from} -> {to}");
                let allowed: Vec<&str> =
                    ALL.into_iter().filter(|s| model_allows(from, s)).collect();
                assert_eq!(problem["allowed"], json!(allowed));
                assert_eq!(after["status"], from, "state unchanged");
            }
        }
    }
}

#[tokio::test]
async fn unknown_status_is_refused_and_nothing_changes() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let path = event_in(&app, &admin.access_token, "UPCOMING").await;

    let r = put(
        &app,
        &format!("{path}/status"),
        &admin.access_token,
        &json!({"status": "SOLD_AWAY"}),
    )
    .await;
    let after: Value = get(&app, &path).await.json().await.unwrap();

    assert_problem(r, 422).await;
    assert_eq!(after["version"], 1);
}

#[test]
fn random_transition_sequences_match_the_model() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, token) = rt.block_on(async {
        let app = spawn_app().await;
        let admin = app.signed_in_admin().await;
        (app, admin.access_token)
    });
    let config = ProptestConfig {
        cases: 12,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in proptest::collection::vec(0usize..4, 1..10))| {
        rt.block_on(async {
            let path = event_in(&app, &token, "UPCOMING").await;
            let mut model = "UPCOMING";
            for step in steps {
                let to = ALL[step];
                let r = put(&app, &format!("{path}/status"), &token, &json!({"status": to})).await;
                if model_allows(model, to) {
                    assert_eq!(r.status(), 200, "{model} -> {to}");
                    model = to;
                } else {
                    assert_eq!(r.status(), 409, "{model} -> {to}");
                }
                let now: Value = get(&app, &path).await.json().await.unwrap();
                assert_eq!(now["status"], model);
            }
        });
    });
}

#[tokio::test]
async fn upcoming_event_goes_on_sale_by_itself_at_sale_start() {
    let dir = TempDir::new();
    let mut config = test_config(dir.path());
    config.events.scheduler_interval_ms = 20;
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let app = spawn_config(config, Some(dir), Arc::new(clock.clone())).await;
    let admin = app.signed_in_admin().await;
    let mut body = event_body("Timed");
    body["saleStartTime"] = json!(crate::support::in_days(1));
    let event = create(&app, &admin.access_token, &body).await;
    let path = format!("/api/events/{}", event["eventId"].as_str().unwrap());
    let before: Value = get(&app, &path).await.json().await.unwrap();

    clock.advance(time::Duration::days(2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut status = Value::Null;
    while tokio::time::Instant::now() < deadline {
        let now: Value = get(&app, &path).await.json().await.unwrap();
        status = now["status"].clone();
        if status == "ON_SALE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(before["status"], "UPCOMING");
    assert_eq!(status, "ON_SALE");
}
