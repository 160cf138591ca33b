//! Exports over HTTP: an XLSX read back with calamine equals the JSON export, CSV cells
//! never start a formula, and the files are named.

use calamine::{Data, Reader};
use evently_data::service::{EVENT_HEADERS, ORDER_HEADERS};
use evently_testkit::assert_problem;
use serde_json::Value;

use crate::support::{buy, event_on_sale, get, import, ok_json, organizer};

async fn seed(app: &evently_testkit::TestApp, token: &str) {
    let csv = "externalId,eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime,type,tags,description\n\
               E1,=HYPERLINK(\"http://example.com\"),2031-03-01T20:00:00Z,Hall,10,100,EUR,2030-12-01T09:00:00Z,concert,a|b,\"two\nlines\"\n\
               E2,@Plain Night,2031-04-01T20:00:00Z,Arena,2000,0,USD,2030-12-01T09:00:00Z,,,\n\
               E3,Zoë's 🎟 night,2031-05-01T20:00:00Z,Club,5,123456,JPY,2030-12-01T09:00:00Z,comedy,x,-dash\n";
    let report = ok_json(
        import(app, token, "", "seed.csv", csv.as_bytes().to_vec()).await,
        200,
    )
    .await;
    assert_eq!(report["created"], 3, "{report}");
}

async fn download(app: &evently_testkit::TestApp, token: &str, query: &str) -> reqwest::Response {
    let r = get(
        app,
        &format!("/api/data/export/events?{query}"),
        Some(token),
    )
    .await;
    assert_eq!(r.status(), 200);
    r
}

/// The cell an XLSX export holds for a JSON field.
fn cell_of(value: Option<&Value>) -> Data {
    match value {
        None | Some(Value::Null) => Data::Empty,
        // A spreadsheet has no empty text cell.
        Some(Value::String(s)) if s.is_empty() => Data::Empty,
        Some(Value::Array(items)) if items.is_empty() => Data::Empty,
        Some(Value::String(s)) => Data::String(s.clone()),
        Some(Value::Number(n)) => Data::Float(n.as_f64().unwrap()),
        Some(Value::Array(items)) => Data::String(
            items
                .iter()
                .map(|i| i.as_str().unwrap())
                .collect::<Vec<_>>()
                .join("|"),
        ),
        Some(other) => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn an_xlsx_export_read_back_equals_the_json_export() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    seed(&app, &org.access_token).await;

    let json = download(&app, &org.access_token, "format=json").await;
    assert_eq!(json.headers()["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = json
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);

    let xlsx = download(&app, &org.access_token, "format=xlsx").await;
    let disposition = xlsx.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"events-")
            && disposition.ends_with(".xlsx\""),
        "{disposition}"
    );
    let bytes = xlsx.bytes().await.unwrap();
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let range = workbook.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    let header: Vec<Data> = EVENT_HEADERS
        .iter()
        .map(|h| Data::String((*h).into()))
        .collect();
    assert_eq!(rows[0], header);
    assert_eq!(rows.len(), lines.len() + 1);
    for (row, object) in rows[1..].iter().zip(&lines) {
        let expected: Vec<Data> = EVENT_HEADERS
            .iter()
            .map(|h| cell_of(object.get(*h)))
            .collect();
        // calamine trims trailing empty cells of the used range only at its right edge.
        let mut got = row.clone();
        got.resize(expected.len(), Data::Empty);
        assert_eq!(got, expected);
    }
    // Formula-like text is a string cell, never a formula.
    let names: Vec<&Data> = rows[1..].iter().map(|r| &r[1]).collect();
    assert!(names.contains(&&Data::String("=HYPERLINK(\"http://example.com\")".into())));
    assert!(
        workbook
            .worksheet_formula("Sheet1")
            .unwrap()
            .used_cells()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn a_csv_export_is_formula_safe_and_filtered_like_the_list() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    seed(&app, &org.access_token).await;
    let csv = download(&app, &org.access_token, "").await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let bytes = csv.bytes().await.unwrap();
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        EVENT_HEADERS.to_vec()
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let names: Vec<&str> = records.iter().map(|r| &r[1]).collect();
    assert_eq!(
        names,
        [
            "'=HYPERLINK(\"http://example.com\")",
            "'@Plain Night",
            "Zoë's 🎟 night"
        ]
    );
    let descriptions: Vec<&str> = records.iter().map(|r| &r[16]).collect();
    assert_eq!(descriptions, ["two\nlines", "", "'-dash"]);
    // Money in minor units beside its currency, then the time zone.
    assert_eq!(
        (&records[2][13], &records[2][14], &records[2][15]),
        ("123456", "JPY", "UTC")
    );

    // The list's filters.
    let only = download(&app, &org.access_token, "format=json&type=comedy").await;
    let text = only.text().await.unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("123456"));
    let none = download(&app, &org.access_token, "format=csv&city=%01").await;
    assert_eq!(none.text().await.unwrap().lines().count(), 1);

    // Bad parameters, users and anonymous callers are refused.
    assert_problem(
        get(
            &app,
            "/api/data/export/events?format=pdf",
            Some(&org.access_token),
        )
        .await,
        400,
    )
    .await;
    assert_problem(
        get(
            &app,
            "/api/data/export/events?from=yesterday",
            Some(&org.access_token),
        )
        .await,
        422,
    )
    .await;
    let user = app.signed_in_user().await;
    assert_problem(
        get(&app, "/api/data/export/events", Some(&user.access_token)).await,
        403,
    )
    .await;
    assert_problem(get(&app, "/api/data/export/events", None).await, 401).await;
}

#[tokio::test]
async fn an_events_orders_are_exported_page_by_page_one_row_per_ticket() {
    // Two orders per page: the export reads booking by keyset across several pages.
    let app = evently_testkit::spawn_app_with(|c| c.data.export_page_size = 2).await;
    let org = organizer(&app).await;
    let event = event_on_sale(&app, &org).await;
    let mut buyers = std::collections::HashMap::new();
    for (n, quantity) in [1, 2, 1, 1, 3].into_iter().enumerate() {
        let buyer = app.signed_in_user().await;
        // One buyer's name is formula-like: a CSV cell that must not be evaluated.
        let name = if n == 1 {
            "=HYPERLINK(\"http://example.com\")".to_owned()
        } else {
            format!("Buyer {n}")
        };
        let renamed = app
            .client
            .put(app.url("/api/users/profile"))
            .bearer_auth(&buyer.access_token)
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(renamed.status(), 200);
        buy(&app, &buyer, &event, quantity).await;
        buyers.insert(buyer.id.clone(), (name, buyer.email.clone()));
    }
    let path = format!("/api/data/export/orders?eventId={event}");
    let json = get(
        &app,
        &format!("{path}&format=json"),
        Some(&org.access_token),
    )
    .await;
    assert_eq!(json.status(), 200);
    let lines: Vec<Value> = json
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8);
    let mut orders: Vec<&str> = lines
        .iter()
        .map(|l| l["orderId"].as_str().unwrap())
        .collect();
    assert!(orders.windows(2).all(|w| w[0] <= w[1]), "by order id");
    orders.dedup();
    assert_eq!(orders.len(), 5);
    let mut tickets: Vec<&str> = lines
        .iter()
        .map(|l| l["ticketId"].as_str().unwrap())
        .collect();
    tickets.sort_unstable();
    tickets.dedup();
    assert_eq!(tickets.len(), 8);
    assert!(
        lines
            .iter()
            .all(|l| l["currency"] == "EUR" && l["orderStatus"] == "confirmed")
    );
    let three = lines.iter().find(|l| l["amount"] == 9000).unwrap();
    assert_eq!(three["ticketStatus"], "valid");
    // Every row names its buyer, as auth knows them.
    for line in &lines {
        let (name, email) = &buyers[line["buyerId"].as_str().unwrap()];
        assert_eq!(line["buyerName"], name.as_str(), "{line}");
        assert_eq!(line["buyerEmail"], email.as_str(), "{line}");
    }

    // The CSV holds the same buyers, the formula-like name guarded.
    let csv = get(&app, &format!("{path}&format=csv"), Some(&org.access_token)).await;
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), ORDER_HEADERS);
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let mut guarded = 0;
    for record in reader.records() {
        let record = record.unwrap();
        let (name, email) = &buyers[&record[column("buyerId")]];
        assert_eq!(&record[column("buyerEmail")], email.as_str());
        if name.starts_with('=') {
            assert_eq!(record[column("buyerName")], format!("'{name}"));
            guarded += 1;
        } else {
            assert_eq!(&record[column("buyerName")], name.as_str());
        }
    }
    assert_eq!(guarded, 2, "the buyer of two tickets");

    // The XLSX holds the same rows.
    let xlsx = get(
        &app,
        &format!("{path}&format=xlsx"),
        Some(&org.access_token),
    )
    .await;
    assert!(
        xlsx.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("orders-{event}.xlsx"))
    );
    let bytes = xlsx.bytes().await.unwrap();
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let range = workbook.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows.len(), 9);
    for (row, object) in rows[1..].iter().zip(&lines) {
        let expected: Vec<Data> = ORDER_HEADERS
            .iter()
            .map(|h| cell_of(object.get(*h)))
            .collect();
        let mut got = row.clone();
        got.resize(expected.len(), Data::Empty);
        assert_eq!(got, expected);
    }

    // Only the event's organizer or an admin; anonymous callers not at all.
    let admin = app.signed_in_admin().await;
    assert_eq!(
        get(&app, &path, Some(&admin.access_token)).await.status(),
        200
    );
    let other = organizer(&app).await;
    assert_problem(get(&app, &path, Some(&other.access_token)).await, 404).await;
    let unknown = format!("/api/data/export/orders?eventId={}", uuid::Uuid::now_v7());
    assert_problem(get(&app, &unknown, Some(&org.access_token)).await, 404).await;
    assert_problem(get(&app, &path, None).await, 401).await;
    assert_problem(
        get(
            &app,
            "/api/data/export/orders?eventId=nope",
            Some(&org.access_token),
        )
        .await,
        400,
    )
    .await;
}

#[tokio::test]
async fn a_large_export_runs_as_a_job_polled_then_downloaded() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    seed(&app, &org.access_token).await;
    let start = app
        .client
        .post(app.url("/api/data/export/jobs"))
        .bearer_auth(&org.access_token)
        .json(&serde_json::json!({"kind": "events", "format": "xlsx", "type": "concert"}))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = start.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/data/export/jobs/{}", job["jobId"].as_str().unwrap())
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let view = loop {
        let view = ok_json(get(&app, &location, Some(&org.access_token)).await, 200).await;
        if view["status"] != "running" {
            break view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the export never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(view["status"], "done", "{view}");
    assert_eq!(view["rowsWritten"], 1);
    let file = get(
        &app,
        view["download"].as_str().unwrap(),
        Some(&org.access_token),
    )
    .await;
    assert_eq!(file.status(), 200);
    let bytes = file.bytes().await.unwrap();
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let range = workbook.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(range.height(), 2);
    assert_eq!(
        range.get((1, 1)),
        Some(&Data::String("=HYPERLINK(\"http://example.com\")".into()))
    );

    // Someone else's job is not found; an orders export of an unknown event is refused
    // before any job starts.
    let other = organizer(&app).await;
    assert_problem(get(&app, &location, Some(&other.access_token)).await, 404).await;
    let refused = app
        .client
        .post(app.url("/api/data/export/jobs"))
        .bearer_auth(&org.access_token)
        .json(&serde_json::json!({"kind": "orders", "eventId": uuid::Uuid::now_v7()}))
        .send()
        .await
        .unwrap();
    assert_problem(refused, 404).await;
}
