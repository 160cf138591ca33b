//! Imports over HTTP: XLSX and CSV variants with their exact reports, all-or-nothing,
//! re-imports by external id, the error report as CSV, and refused uploads.

use evently_data::import::external_event_id;
use evently_testkit::assert_problem;
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{all_events, get, import, ok_json, organizer};

/// A semicolon CSV with a byte-order mark, as Excel saves it in many locales: a valid row,
/// a formula-like name, a bad date and a repeated external id.
fn excel_csv() -> Vec<u8> {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(
        "External ID;Event Name;DATE;venue;Seats;Price;currency;Sale Start;type;Tags\r\n\
         A1;Jazz Night;2030-06-01T19:00:00Z;Blue Note;100;2500;EUR;2030-01-01T10:00:00Z;Concert;jazz|live\r\n\
         A2;=1+2;2030-06-02T19:00:00Z;Blue Note;100;2500;EUR;2030-01-01T10:00:00Z;;\r\n\
         A3;Bad Date;2030-02-30T19:00:00Z;Blue Note;100;2500;EUR;2030-01-01T10:00:00Z;;\r\n\
         \r\n\
         A1;Again;2030-06-03T19:00:00Z;Blue Note;100;2500;EUR;2030-01-01T10:00:00Z;;\r\n"
            .as_bytes(),
    );
    bytes
}

fn expected_errors(date_message: &str) -> Value {
    json!([
        {"row": 4, "column": "C", "field": "eventDate", "value": "2030-02-30T19:00:00Z",
         "code": "invalid", "message": date_message},
        {"row": 6, "column": "A", "field": "externalId", "value": "A1",
         "code": "duplicate", "message": "repeats the externalId of row 2"},
    ])
}

#[tokio::test]
async fn a_partial_csv_import_reports_every_row_as_the_user_sees_it() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    let report = ok_json(
        import(
            &app,
            &org.access_token,
            "mode=partial",
            "events.csv",
            excel_csv(),
        )
        .await,
        200,
    )
    .await;
    let date_message = report["errors"][0]["message"].as_str().unwrap().to_owned();
    assert_eq!(date_message, "day was not in range");
    assert_eq!(
        report,
        json!({
            "jobId": report["jobId"], "dryRun": false, "mode": "partial", "format": "csv",
            "encoding": "utf-8", "rows": 4, "created": 2, "updated": 0, "failed": 2,
            "errors": expected_errors(&date_message),
        })
    );
    let organizer_id: Uuid = org.id.parse().unwrap();
    let jazz = ok_json(
        get(
            &app,
            &format!("/api/events/{}", external_event_id(organizer_id, "A1")),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(jazz["eventName"], "Jazz Night");
    assert_eq!(jazz["eventType"], "concert");
    assert_eq!(jazz["tags"], json!(["jazz", "live"]));
    assert_eq!(jazz["basePrice"], 2500);
    assert_eq!(jazz["organizerId"], org.id.as_str());
    // A formula-like cell is text: stored as written, never evaluated.
    let formula = ok_json(
        get(
            &app,
            &format!("/api/events/{}", external_event_id(organizer_id, "A2")),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(formula["eventName"], "=1+2");
    assert_eq!(all_events(&app).await.len(), 2);

    // The job keeps its report, also as CSV (guarded against formulas).
    let job = report["jobId"].as_str().unwrap();
    let view = ok_json(
        get(
            &app,
            &format!("/api/data/import/jobs/{job}"),
            Some(&org.access_token),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(view["status"], "done");
    assert_eq!(view["rowsWritten"], 2);
    assert_eq!(view["report"], report);
    let csv = get(
        &app,
        &format!("/api/data/import/jobs/{job}/errors.csv"),
        Some(&org.access_token),
    )
    .await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("import-{job}-errors.csv"))
    );
    let text = csv.text().await.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("row,column,field,value,code,message"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("4,C,eventDate,2030-02-30T19:00:00Z,invalid,")
    );
    assert_eq!(
        lines.next(),
        Some("6,A,externalId,A1,duplicate,repeats the externalId of row 2")
    );
    // Someone else's job is not found.
    let other = organizer(&app).await;
    assert_problem(
        get(
            &app,
            &format!("/api/data/import/jobs/{job}"),
            Some(&other.access_token),
        )
        .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn an_atomic_import_with_one_bad_row_creates_nothing() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    let problem = assert_problem(
        import(&app, &org.access_token, "", "events.csv", excel_csv()).await,
        422,
    )
    .await;
    assert_eq!(problem["mode"], "atomic");
    assert_eq!(problem["rows"], 4);
    assert_eq!(problem["created"], 0);
    assert_eq!(problem["failed"], 2);
    let date_message = problem["errors"][0]["message"].as_str().unwrap().to_owned();
    assert_eq!(problem["errors"], expected_errors(&date_message));
    assert!(all_events(&app).await.is_empty());

    // A dry run judges the same rows and writes nothing either.
    let dry = ok_json(
        import(
            &app,
            &org.access_token,
            "dryRun=true&mode=partial",
            "events.csv",
            excel_csv(),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(dry["dryRun"], true);
    assert_eq!(
        (dry["created"].clone(), dry["failed"].clone()),
        (json!(0), json!(2))
    );
    assert!(all_events(&app).await.is_empty());
}

#[tokio::test]
async fn windows_1252_and_tab_separated_files_are_read_and_external_ids_update() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    let organizer_id: Uuid = org.id.parse().unwrap();
    // "Café Müller" in Windows-1252, tab-separated.
    let mut file = b"externalId\teventName\teventDate\tvenueName\ttotalSeats\tbasePrice\tcurrency\tsaleStartTime\n".to_vec();
    file.extend_from_slice(b"X-1\tCaf\xE9 M\xFCller\t2031-02-01T20:00:00Z\tHall\t50\t1000\tUSD\t2030-12-01T09:00:00Z\n");
    let report = ok_json(
        import(&app, &org.access_token, "", "cafe.tsv", file).await,
        200,
    )
    .await;
    assert_eq!(report["encoding"], "windows-1252");
    assert_eq!(
        (report["created"].clone(), report["failed"].clone()),
        (json!(1), json!(0))
    );
    let path = format!("/api/events/{}", external_event_id(organizer_id, "X-1"));
    let event = ok_json(get(&app, &path, None).await, 200).await;
    assert_eq!(event["eventName"], "Café Müller");

    // The same external id again: the event is updated, not duplicated.
    let again = "externalId,eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime,Time Zone\n\
                 X-1,Café Müller (late show),2031-02-01T22:00:00Z,Hall,50,1200,USD,2030-12-01T09:00:00Z, America/Chicago \n";
    let report = ok_json(
        import(
            &app,
            &org.access_token,
            "",
            "again.csv",
            again.as_bytes().to_vec(),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (report["created"].clone(), report["updated"].clone()),
        (json!(0), json!(1))
    );
    let event = ok_json(get(&app, &path, None).await, 200).await;
    assert_eq!(event["eventName"], "Café Müller (late show)");
    assert_eq!(event["basePrice"], 1200);
    assert_eq!(event["timeZone"], "America/Chicago");
    assert_eq!(all_events(&app).await.len(), 1);
}

/// An XLSX workbook built like a user's: strings, numbers, a real date cell, a formula with
/// its cached result, and a fractional price.
fn workbook() -> Vec<u8> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    let headers = [
        "Name",
        "Event Date",
        "Venue",
        "Capacity",
        "Price",
        "Currency",
        "Sale start",
    ];
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let date_format = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    let event_date = ExcelDateTime::from_ymd(2030, 9, 1)
        .unwrap()
        .and_hms(20, 0, 0)
        .unwrap();
    let sale = ExcelDateTime::from_ymd(2030, 3, 1).unwrap();
    let rows: [(&str, f64); 3] = [("Opera Gala", 9900.0), ("", 500.0), ("Half Price", 12.5)];
    for (i, (name, price)) in rows.iter().enumerate() {
        let r = i as u32 + 1;
        if name.is_empty() {
            sheet
                .write_formula(
                    r,
                    0,
                    Formula::new("=\"Formula \"&\"Night\"").set_result("Formula Night"),
                )
                .unwrap();
        } else {
            sheet.write_string(r, 0, *name).unwrap();
        }
        sheet
            .write_datetime_with_format(r, 1, &event_date, &date_format)
            .unwrap();
        sheet.write_string(r, 2, "Opera House").unwrap();
        sheet.write_number(r, 3, 300).unwrap();
        sheet.write_number(r, 4, *price).unwrap();
        sheet.write_string(r, 5, "EUR").unwrap();
        sheet
            .write_datetime_with_format(r, 6, &sale, &date_format)
            .unwrap();
    }
    workbook.save_to_buffer().unwrap()
}

#[tokio::test]
async fn a_real_xlsx_is_read_by_content_with_dates_numbers_and_formulas() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    // Named .csv on purpose: the format is recognised by content.
    let report = ok_json(
        import(
            &app,
            &org.access_token,
            "mode=partial",
            "upload.csv",
            workbook(),
        )
        .await,
        200,
    )
    .await;
    let message = report["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        report,
        json!({
            "jobId": report["jobId"], "dryRun": false, "mode": "partial", "format": "xlsx",
            "encoding": "utf-8", "rows": 3, "created": 2, "updated": 0, "failed": 1,
            "errors": [{"row": 4, "column": "E", "field": "basePrice", "value": "12.5",
                        "code": "invalid", "message": message}],
        })
    );
    assert!(message.contains("whole number"), "{message}");
    let mut events = all_events(&app).await;
    events.sort_by_key(|e| e["eventName"].as_str().unwrap().to_owned());
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Formula Night", "Opera Gala"]);
    assert_eq!(events[1]["eventDate"], "2030-09-01T20:00:00Z");
    assert_eq!(events[1]["saleStartTime"], "2030-03-01T00:00:00Z");
    assert_eq!(events[1]["totalSeats"], 300);
    assert_eq!(events[1]["basePrice"], 9900);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_change_nothing() {
    let app = evently_testkit::spawn_app_with(|c| c.data.max_import_rows = 3).await;
    let org = organizer(&app).await;
    let user = app.signed_in_user().await;
    let valid = b"name,date\nx,y\n".to_vec();
    // Users may not import.
    assert_problem(
        import(&app, &user.access_token, "", "a.csv", valid.clone()).await,
        403,
    )
    .await;
    // Unknown columns are named, not skipped.
    let p = assert_problem(
        import(
            &app,
            &org.access_token,
            "",
            "a.csv",
            b"name,colour\nx,red\n".to_vec(),
        )
        .await,
        422,
    )
    .await;
    assert!(
        p["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("`colour`"),
        "{p}"
    );
    // Row cap.
    let many = b"name\na\nb\nc\nd\n".to_vec();
    assert_problem(
        import(&app, &org.access_token, "", "a.csv", many).await,
        422,
    )
    .await;
    // A broken zip (zip bombs: see the unit tests of `import::parse`).
    assert_problem(
        import(
            &app,
            &org.access_token,
            "",
            "a.xlsx",
            b"PK\x03\x04broken".to_vec(),
        )
        .await,
        422,
    )
    .await;
    // Not multipart, and a missing file part.
    let r = app
        .client
        .post(app.url("/api/data/import/events"))
        .bearer_auth(&org.access_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 415).await;
    let form = reqwest::multipart::Form::new().text("other", "x");
    let r = app
        .client
        .post(app.url("/api/data/import/events"))
        .bearer_auth(&org.access_token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_problem(r, 422).await;
    assert!(all_events(&app).await.is_empty());
}

#[tokio::test]
async fn a_file_beyond_the_size_limit_is_413() {
    let app = evently_testkit::spawn_app_with(|c| c.data.max_import_bytes = 4096).await;
    let org = organizer(&app).await;
    let big = vec![b'a'; 5000];
    assert_problem(
        import(&app, &org.access_token, "", "big.csv", big).await,
        413,
    )
    .await;
}

#[tokio::test]
async fn a_file_larger_than_a_json_body_is_accepted_up_to_the_import_limit() {
    let app = evently_testkit::spawn_app().await;
    let org = organizer(&app).await;
    let mut csv =
        "eventName,eventDate,venueName,totalSeats,basePrice,currency,saleStartTime,description\n"
            .to_owned();
    let filler = "x".repeat(200);
    for i in 0..1500 {
        csv.push_str(&format!(
            "Show {i},2031-01-01T20:00:00Z,Hall,10,100,EUR,2030-12-01T09:00:00Z,{filler}\n"
        ));
    }
    assert!(csv.len() > 4 * app.config.server.body_limit_bytes);
    let report = ok_json(
        import(
            &app,
            &org.access_token,
            "dryRun=true",
            "big.csv",
            csv.into_bytes(),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (report["rows"].clone(), report["failed"].clone()),
        (json!(1500), json!(0))
    );
}
