//! Search follows the event stream: creations, updates, cancellations, deletions and booking's
//! availability reach it; a replay of the stream builds the same index.

use evently_bus::Bus;
use evently_search::feed::{self, CaughtUp};
use evently_search::{EventIndex, SearchRequest, Stream, TantivyIndex};
use evently_testkit::{TestApp, TestUser, Value, json, spawn_app};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

fn in_days(days: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&Rfc3339)
        .unwrap()
}

async fn organizer(app: &TestApp) -> TestUser {
    let admin = app.signed_in_admin().await;
    let user = app.signed_in_user().await;
    let r = app
        .client
        .put(app.url(&format!("/api/users/{}/role", user.id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "organizer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.login_user(&user.email).await
}

fn body(name: &str, city: &str) -> Value {
    json!({
        "eventName": name,
        "eventDate": in_days(30),
        "venueName": format!("{city} Arena"),
        "totalSeats": 50,
        "saleStartTime": in_days(-1),
        "status": "ON_SALE",
        "basePrice": 4000,
        "currency": "EUR",
        "eventType": "concert",
        "tags": ["live"],
        "description": format!("A night in {city}"),
    })
}

async fn create(app: &TestApp, token: &str, body: &Value) -> String {
    let r = app
        .client
        .post(app.url("/api/events"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    v["eventId"].as_str().unwrap().to_owned()
}

async fn search(app: &TestApp, query: &str) -> Value {
    let r = app
        .client
        .get(app.url(&format!("/api/search/events?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// How long a change may take to reach search before a test fails. Usually well under a
/// second; the ceiling is for a loaded machine (a replica's first connection to NATS, a commit
/// of the index queued behind other tests' work), and costs nothing when the change arrives.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `query` until `done` holds of its answer, for at most [`PATIENCE`].
async fn eventually(app: &TestApp, query: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = search(app, query).await;
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "search never showed it: {query} → {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn names(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["eventName"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn search_follows_create_update_cancel_and_delete() {
    let app = spawn_app().await;
    let org = organizer(&app).await;
    let id = create(
        &app,
        &org.access_token,
        &body("Metallica World Tour", "Oslo"),
    )
    .await;

    // Public: no token. A typo still finds it.
    let v = eventually(&app, "q=metalica", |v| v["totalHits"] == 1).await;
    assert_eq!(names(&v), ["Metallica World Tour"]);
    assert_eq!(v["hits"][0]["eventId"], id.as_str());
    assert_eq!(v["hits"][0]["venueName"], "Oslo Arena");
    assert_eq!(v["facets"]["type"]["concert"], 1);

    let r = app
        .client
        .put(app.url(&format!("/api/events/{id}")))
        .bearer_auth(&org.access_token)
        .json(&json!({"eventName": "Megadeth Reunion"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually(&app, "q=megadeth", |v| v["totalHits"] == 1).await;
    eventually(&app, "q=metallica", |v| v["totalHits"] == 0).await;

    let r = app
        .client
        .put(app.url(&format!("/api/events/{id}/status")))
        .bearer_auth(&org.access_token)
        .json(&json!({"status": "CANCELLED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually(&app, "q=megadeth", |v| v["totalHits"] == 0).await;
    eventually(&app, "q=megadeth&status=CANCELLED", |v| v["totalHits"] == 1).await;

    let r = app
        .client
        .delete(app.url(&format!("/api/events/{id}")))
        .bearer_auth(&org.access_token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    eventually(&app, "q=megadeth&status=CANCELLED", |v| v["totalHits"] == 0).await;
}

#[tokio::test]
async fn availability_reaches_search() {
    let app = spawn_app().await;
    let org = organizer(&app).await;
    let id = create(&app, &org.access_token, &body("Tiny Club Show", "Lyon")).await;
    eventually(&app, "q=tiny&hasSeats=true", |v| v["totalHits"] == 1).await;

    let buyer = app.signed_in_user().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        // Booking learns of the event through the bus too.
        let r = app
            .client
            .post(app.url("/api/orders/holds"))
            .bearer_auth(&buyer.access_token)
            .json(&json!({"eventId": id, "quantity": 3}))
            .send()
            .await
            .unwrap();
        if r.status() == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no hold: {}",
            r.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = eventually(&app, "q=tiny", |v| v["hits"][0]["availableSeats"] == 47).await;
    assert_eq!(v["totalHits"], 1);
}

#[tokio::test]
async fn bad_input_is_a_422_problem_and_never_a_500() {
    let app = spawn_app().await;
    for query in [
        "bogus=1",
        "status=OPEN",
        "from=yesterday",
        "size=101",
        "q=a+b+c+d+e+f+g+h+i+j+k",
    ] {
        let r = app
            .client
            .get(app.url(&format!("/api/search/events?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
    }
    for q in [
        "title:x AND (y)",
        "\"unclosed",
        "*",
        "a^2~3",
        "%00%ff",
        "-",
        "\u{1F600}",
    ] {
        let encoded: String = url_encode(q);
        let r = app
            .client
            .get(app.url(&format!("/api/search/events?q={encoded}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
        let r = app
            .client
            .get(app.url(&format!("/api/search/suggest?q={encoded}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{q}");
    }
    // Search only reads: another method is 405 for anyone, signed in or not.
    for path in ["/api/search/events", "/api/search/suggest"] {
        let r = app.client.post(app.url(path)).send().await.unwrap();
        evently_testkit::assert_problem(r, 405).await;
        let r = app.client.delete(app.url(path)).send().await.unwrap();
        evently_testkit::assert_problem(r, 405).await;
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Reads `bus` as consumer `name` into `index` until caught up.
async fn replay(bus: Arc<dyn Bus>, stream: Stream, index: Arc<dyn EventIndex>) {
    let caught_up = Arc::new(CaughtUp::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(feed::run(
        bus,
        format!("replay-{}", uuid::Uuid::now_v7().simple()),
        stream,
        index,
        caught_up.clone(),
        true,
        Duration::ZERO,
        shutdown.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caught_up.get(stream) {
        assert!(Instant::now() < deadline, "replay never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_replay_of_the_stream_equals_the_incremental_index() {
    let app = spawn_app().await;
    let org = organizer(&app).await;
    let mut ids = Vec::new();
    for (name, city) in [
        ("Jazz Festival", "Berlin"),
        ("Berlin Philharmonic", "Berlin"),
        ("Rock Night", "Paris"),
        ("Opera Gala", "Vienna"),
    ] {
        ids.push(create(&app, &org.access_token, &body(name, city)).await);
    }
    let r = app
        .client
        .put(app.url(&format!("/api/events/{}", ids[2])))
        .bearer_auth(&org.access_token)
        .json(&json!({"eventName": "Rock Night Reloaded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .delete(app.url(&format!("/api/events/{}", ids[3])))
        .bearer_auth(&org.access_token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    eventually(&app, "q=reloaded", |v| v["totalHits"] == 1).await;
    eventually(&app, "q=opera", |v| v["totalHits"] == 0).await;

    let rebuilt: Arc<dyn EventIndex> = Arc::new(TantivyIndex::in_memory(15).unwrap());
    let events = app.app_events.as_ref().unwrap().bus.clone();
    let booking = app.app_booking.as_ref().unwrap().bus.clone();
    replay(events, Stream::Events, rebuilt.clone()).await;
    replay(booking, Stream::Booking, rebuilt.clone()).await;

    let now = evently_bus::envelope::time_to_ms(OffsetDateTime::now_utc());
    for q in [
        "",
        "berlin",
        "jaz",
        "rock relaoded",
        "phil",
        "opera",
        "night",
    ] {
        let served = search(&app, &format!("q={}", url_encode(q))).await;
        let mine =
            serde_json::to_value(rebuilt.search(&SearchRequest::new(q, now)).unwrap()).unwrap();
        assert_eq!(served["totalHits"], mine["totalHits"], "{q}");
        assert_eq!(served["hits"], mine["hits"], "{q}");
        assert_eq!(served["facets"], mine["facets"], "{q}");
    }
}

#[tokio::test]
async fn two_search_processes_on_postgres_and_nats_answer_the_same() {
    let Some(postgres) = evently_testkit::postgres_url() else {
        evently_testkit::skip(
            "two_search_processes_on_postgres_and_nats_answer_the_same",
            "EVENTLY_TEST_POSTGRES_URL",
        );
        return;
    };
    let Some(nats) = std::env::var("EVENTLY_TEST_NATS_URL")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        evently_testkit::skip(
            "two_search_processes_on_postgres_and_nats_answer_the_same",
            "EVENTLY_TEST_NATS_URL",
        );
        return;
    };
    // The test's own database: a relay publishes every unpublished row of its outbox, other
    // tests' rows included on a shared one.
    let database = evently_testkit::FreshDatabase::create(&postgres).await;
    let prefix = format!("S{}", &uuid::Uuid::new_v4().simple().to_string()[..12]).to_uppercase();
    let setup = |replica: &str| {
        let (postgres, nats, prefix) = (database.url.clone(), nats.clone(), prefix.clone());
        let replica = replica.to_owned();
        move |c: &mut evently_core::config::Config| {
            c.database.url = Some(secrecy::SecretString::from(postgres));
            c.bus.nats_url = Some(secrecy::SecretString::from(nats));
            c.bus.stream_prefix = prefix;
            c.search.replica = Some(replica);
        }
    };
    let a = evently_testkit::spawn_app_with(setup("a")).await;
    let b =
        evently_testkit::spawn_services(&[evently_core::service::ServiceName::Search], setup("b"))
            .await;
    let org = organizer(&a).await;
    let tag = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    for (name, city) in [
        ("Metallica Night", "Oslo"),
        ("Metal Night", "Bergen"),
        ("Jazz Festival", "Oslo"),
    ] {
        let mut event = body(name, city);
        event["tags"] = json!([tag]);
        create(&a, &org.access_token, &event).await;
    }
    // Both replicas have indexed all three before they are compared: each follows the
    // stream at its own pace.
    for replica in [&a, &b] {
        let all = eventually(replica, &format!("tags={tag}"), |v| v["totalHits"] == 3).await;
        assert_eq!(all["facets"]["type"]["concert"], 3);
    }
    for q in ["metalica", "metal", "jazz fetsival", "night"] {
        let query = format!("q={}&tags={tag}", url_encode(q));
        let from_a = search(&a, &query).await;
        let from_b = search(&b, &query).await;
        assert!(from_a["totalHits"].as_u64() > Some(0), "{q}: {from_a}");
        assert_eq!(from_a["hits"], from_b["hits"], "{q}");
        assert_eq!(from_a["facets"], from_b["facets"], "{q}");
    }
}
