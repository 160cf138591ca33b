//! The data service in a process of its own: auth, events and booking in one `evently`
//! process, data in another (reaching all three over internal HTTP with the service
//! credential),
//! a gateway in a third, on PostgreSQL. Skipped (with a message) without
//! `EVENTLY_TEST_POSTGRES_URL`.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use serde_json::json;
use support::{drop_database, evently, free_port, fresh_database, sell_two_seats, start, temp_dir};

const SECRET: &str = "data-remote-test-secret-0123456789abcdef";
const INTERNAL: &str = "data-remote-test-internal-token";

fn shared(dir: &std::path::Path) -> std::process::Command {
    let mut command = evently(dir);
    command
        .env("EVENTLY_JWT__SECRET", SECRET)
        .env("EVENTLY_INTERNAL__TOKEN", INTERNAL)
        .env("EVENTLY_AUTH__COOKIE_SECURE", "false");
    command
}

/// A CSV with a valid row and an impossible date (the same rows as the in-process import
/// tests), and with `name` for the valid row.
fn csv(name: &str) -> Vec<u8> {
    format!(
        "externalId,eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime\n\
         R1,{name},2030-06-01T19:00:00Z,Blue Note,100,2500,EUR,2030-01-01T10:00:00Z\n\
         R2,Bad Date,2030-02-30T19:00:00Z,Blue Note,100,2500,EUR,2030-01-01T10:00:00Z\n"
    )
    .into_bytes()
}

async fn import(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    bytes: Vec<u8>,
) -> serde_json::Value {
    import_in(http, gateway, token, "partial", bytes, 200).await
}

async fn import_in(
    http: &reqwest::Client,
    gateway: &str,
    token: &str,
    mode: &str,
    bytes: Vec<u8>,
    expected: u16,
) -> serde_json::Value {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("events.csv"),
    );
    let reply = http
        .post(format!("{gateway}/api/data/import/events?mode={mode}"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let text = reply.text().await.unwrap();
    assert_eq!(status, expected, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn data_in_its_own_process_imports_and_exports_through_the_services_apis() {
    let Ok(postgres) = std::env::var("EVENTLY_TEST_POSTGRES_URL") else {
        eprintln!("skipped: EVENTLY_TEST_POSTGRES_URL is not set");
        return;
    };
    let dir = temp_dir();
    let unique = format!("evently_data_remote_{}", std::process::id());
    let database = fresh_database(&postgres, &unique).await;
    let core_port = free_port();
    let core_url = format!("http://127.0.0.1:{core_port}");

    let mut command = shared(&dir);
    command
        .args(["serve", "--services", "auth,events,booking", "--listen"])
        .arg(format!("127.0.0.1:{core_port}"))
        .env("EVENTLY_DATABASE_URL", &database);
    let core = start(command).0;

    let mut command = shared(&dir);
    command
        .args(["serve", "--services", "data", "--listen", "127.0.0.1:0"])
        .env("EVENTLY_DATABASE_URL", &database)
        .env("EVENTLY_DATA__EVENTS_URL", &core_url)
        .env("EVENTLY_DATA__BOOKING_URL", &core_url)
        .env("EVENTLY_DATA__AUTH_URL", &core_url);
    let data = start(command).0;

    let mut command = shared(&dir);
    command
        .args(["serve", "--services", "gateway", "--listen", "127.0.0.1:0"])
        .env("EVENTLY_GATEWAY__SERVICES__AUTH", &core_url)
        .env("EVENTLY_GATEWAY__SERVICES__EVENTS", &core_url)
        .env("EVENTLY_GATEWAY__SERVICES__BOOKING", &core_url)
        .env("EVENTLY_GATEWAY__SERVICES__DATA", &data.base);
    let gateway = start(command).0;
    let gw = gateway.base.clone();

    let mut admin = shared(&dir);
    admin.env("EVENTLY_DATABASE_URL", &database);
    let sale = sell_two_seats(&gw, &gw, admin).await;
    let http = reqwest::Client::new();

    // The import creates the valid row's event in the events process and reports the invalid
    // row exactly as an import in one process does.
    let report = import(&http, &gw, &sale.organizer, csv("Jazz Night")).await;
    assert_eq!(
        report,
        json!({
            "jobId": report["jobId"], "dryRun": false, "mode": "partial", "format": "csv",
            "encoding": "utf-8", "rows": 2, "created": 1, "updated": 0, "failed": 1,
            "errors": [{"row": 3, "column": "C", "field": "eventDate",
                        "value": "2030-02-30T19:00:00Z", "code": "invalid",
                        "message": "day was not in range"}],
        })
    );
    let listed = |events: &serde_json::Value, name: &str| {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["eventName"] == name)
            .count()
    };
    let events: serde_json::Value = http
        .get(format!("{gw}/api/events?size=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed(&events, "Jazz Night"), 1, "{events}");

    // A re-import with the same externalId updates the event rather than adding one.
    let again = import(&http, &gw, &sale.organizer, csv("Jazz Night Revisited")).await;
    assert_eq!(again["created"], 0, "{again}");
    assert_eq!(again["updated"], 1, "{again}");
    let events: serde_json::Value = http
        .get(format!("{gw}/api/events?size=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed(&events, "Jazz Night"), 0, "{events}");
    assert_eq!(listed(&events, "Jazz Night Revisited"), 1, "{events}");

    // An atomic import is written in one batch of the events process: once R1's sale opens
    // its seats are locked, and a file whose last row changes them writes no row at all,
    // though every row passes the checks.
    let r1 = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["eventName"] == "Jazz Night Revisited")
        .unwrap()["eventId"]
        .as_str()
        .unwrap()
        .to_owned();
    let opened = http
        .put(format!("{gw}/api/events/{r1}/status"))
        .bearer_auth(&sale.organizer)
        .json(&json!({"status": "ON_SALE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200, "{}", opened.text().await.unwrap());
    let atomic = |seats: u32| {
        format!(
            "externalId,eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime\n\
             R3,Blues Night,2030-07-01T19:00:00Z,Blue Note,50,2500,EUR,2030-01-01T10:00:00Z\n\
             R1,Jazz Night Revisited,2030-06-01T19:00:00Z,Blue Note,{seats},2500,EUR,2030-01-01T10:00:00Z\n"
        )
        .into_bytes()
    };
    let refused = import_in(&http, &gw, &sale.organizer, "atomic", atomic(200), 422).await;
    assert_eq!(
        (&refused["created"], &refused["updated"], &refused["failed"]),
        (&json!(0), &json!(0), &json!(1)),
        "{refused}"
    );
    assert_eq!(refused["errors"][0]["row"], 3, "{refused}");
    assert_eq!(refused["errors"][0]["code"], "capacity-locked", "{refused}");
    let events: serde_json::Value = http
        .get(format!("{gw}/api/events?size=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed(&events, "Blues Night"), 0, "{events}");
    // Fixed, it writes both rows; imported again, it creates nothing twice.
    for (created, updated) in [(1, 1), (0, 2)] {
        let written = import_in(&http, &gw, &sale.organizer, "atomic", atomic(100), 200).await;
        assert_eq!(
            (&written["created"], &written["updated"], &written["failed"]),
            (&json!(created), &json!(updated), &json!(0)),
            "{written}"
        );
    }
    let events: serde_json::Value = http
        .get(format!("{gw}/api/events?size=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed(&events, "Blues Night"), 1, "{events}");

    // Exports read events and booking's orders over HTTP.
    let export = http
        .get(format!("{gw}/api/data/export/events?format=csv"))
        .bearer_auth(&sale.organizer)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let export = export.text().await.unwrap();
    assert!(export.contains("Jazz Night Revisited"), "{export}");
    assert!(export.contains("Harbour Lights Festival"), "{export}");
    let orders = http
        .get(format!(
            "{gw}/api/data/export/orders?eventId={}&format=csv",
            sale.event_id
        ))
        .bearer_auth(&sale.organizer)
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 200);
    let orders = orders.text().await.unwrap();
    assert_eq!(orders.lines().count(), 3, "{orders}");
    assert!(orders.contains(&sale.order_id), "{orders}");
    // Each ticket's row names its buyer, looked up in the auth process.
    assert!(
        orders
            .lines()
            .next()
            .unwrap()
            .contains("buyerId,buyerName,buyerEmail"),
        "{orders}"
    );
    assert_eq!(
        orders.matches(",Buyer,buyer@example.com,").count(),
        2,
        "{orders}"
    );

    // The internal routes answer only with the service credential.
    let refused = http
        .post(format!("{core_url}/internal/events/check"))
        .bearer_auth(&sale.organizer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    // The process of auth, events and booking documents the internal routes of all three.
    let internal: serde_json::Value = http
        .get(format!("{core_url}/internal/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/internal/users/lookup",
        "/internal/events/batch",
        "/internal/booking/events/{eventId}/orders",
    ] {
        assert!(internal["paths"][path].is_object(), "{path} in {internal}");
    }
    let refused = http
        .post(format!("{core_url}/internal/users/lookup"))
        .json(&json!({"ids": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let refused = http
        .post(format!("{core_url}/internal/events/batch"))
        .bearer_auth(&sale.organizer)
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    drop((gateway, data, core));
    drop_database(&postgres, &unique).await;
    let _ = std::fs::remove_dir_all(&dir);
}
