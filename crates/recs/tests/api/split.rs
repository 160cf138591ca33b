//! Recommendations in a process of their own, behind a gateway in another that proxies to
//! them: the same contract, and, over NATS, fed by the other process's domain events (the
//! events service's, booking's and the settings service's).

use evently_testkit::{ServiceName, TestApp, assert_problem, spawn_services};
use secrecy::SecretString;

use crate::support::{buy, event, ids, ok_json, send, until};

#[tokio::test]
async fn a_gateway_proxies_to_recs_running_elsewhere() {
    let recs = spawn_services(&[ServiceName::Recs], |_| {}).await;
    let base = recs.base.clone();
    let gateway = spawn_services(&[ServiceName::Gateway], |c| {
        c.gateway.services.insert("recs".into(), base);
    })
    .await;

    let anonymous = send(&gateway, "GET", "/api/recs", None, None).await;
    let bad_token = send(&gateway, "GET", "/api/recs", Some("not.a.token"), None).await;
    let bad_limit = send(&gateway, "GET", "/api/recs?limit=0", None, None).await;
    let health = ok_json(send(&gateway, "GET", "/health", None, None).await, 200).await;

    assert_eq!(
        ok_json(anonymous, 200).await,
        serde_json::json!({"items": []})
    );
    assert_problem(bad_token, 401).await;
    assert_problem(bad_limit, 422).await;
    assert_eq!(health["services"]["recs"]["mode"], "remote");
}

/// Everything but recs in one process, recs in another, the domain events between them on
/// NATS (`EVENTLY_TEST_NATS_URL`), each stream under a prefix of this test's own.
#[tokio::test]
async fn recs_in_their_own_process_are_fed_over_nats() {
    let Ok(nats) = std::env::var("EVENTLY_TEST_NATS_URL") else {
        evently_testkit::skip(
            "recs_in_their_own_process_are_fed_over_nats",
            "EVENTLY_TEST_NATS_URL",
        );
        return;
    };
    let prefix = format!("T{}", uuid::Uuid::new_v4().simple());
    let on_nats = |c: &mut evently_core::config::Config| {
        c.bus.nats_url = Some(SecretString::from(nats.clone()));
        c.bus.stream_prefix.clone_from(&prefix);
        c.recs.rebuild_interval_ms = 10;
        c.recs.popularity_refresh_ms = 20;
    };
    let recs = spawn_services(&[ServiceName::Recs], on_nats).await;
    let base = recs.base.clone();
    let main: TestApp = spawn_services(
        &[
            ServiceName::Auth,
            ServiceName::Events,
            ServiceName::Booking,
            ServiceName::Settings,
            ServiceName::Gateway,
        ],
        |c| {
            on_nats(c);
            c.gateway.services.insert("recs".into(), base);
        },
    )
    .await;
    let bought = event(&main, "Blue Note Quartet", "concert", &["jazz"], "Berlin").await;
    let alike = event(&main, "Swing Trio", "concert", &["jazz"], "Berlin").await;
    let buyer = main.signed_in_user().await;

    buy(&main, &buyer, &bought).await;

    let page = until(|| async {
        let page = ok_json(
            send(&main, "GET", "/api/recs", Some(&buyer.access_token), None).await,
            200,
        )
        .await;
        (ids(&page).first() == Some(&alike)).then_some(page)
    })
    .await;
    assert!(!ids(&page).contains(&bought), "{page}");

    // Preferences set in the other process reach recs over NATS too.
    let newcomer = main.signed_in_user().await;
    let patched = main
        .client
        .patch(main.url("/api/settings/me"))
        .bearer_auth(&newcomer.access_token)
        .header("Content-Type", "application/merge-patch+json")
        .header("If-Match", "\"0\"")
        .body(r#"{"favouriteCities": ["Berlin"]}"#)
        .send()
        .await
        .unwrap();
    ok_json(patched, 200).await;
    until(|| async {
        let page = ok_json(
            send(
                &main,
                "GET",
                "/api/recs",
                Some(&newcomer.access_token),
                None,
            )
            .await,
            200,
        )
        .await;
        (page["items"][0]["reason"]["kind"] == "favouriteCity").then_some(())
    })
    .await;
}
