//! The published OpenAPI document against the server that publishes it: every operation is
//! routed and documents its problem answers; every route of the services' routers is in the
//! document; every link leads to an operation; and the document itself is a reviewed snapshot.

use std::collections::BTreeSet;

use evently_testkit::{Value, spawn_app};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn document() -> (evently_testkit::TestApp, Value) {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (app, doc)
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// `{eventId}` and `{event_id}` alike become `{}`.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn every_operation_documents_its_problem_answers() {
    let (_app, doc) = document().await;

    for (method, path, op) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        let responses = op["responses"].as_object().unwrap();
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let by_ref = response["$ref"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("#/components/responses/"));
                let inline = response["content"]["application/problem+json"]["schema"]["$ref"]
                    == "#/components/schemas/Problem";
                assert!(by_ref || inline, "{name} {status} is not a problem answer");
                assert!(
                    response["content"].as_object().is_none_or(|c| c.len() == 1),
                    "{name} {status} has other content types"
                );
            }
        }
        let has = |status: &str| responses.contains_key(status);
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for status in ["400", "502", "503", "504"] {
            assert!(has(status), "{name} lacks {status}");
        }
        if secured {
            assert!(has("401") && has("403"), "{name} lacks 401/403");
        }
        if op.get("requestBody").is_some() {
            for status in ["413", "415", "422"] {
                assert!(has(status), "{name} lacks {status}");
            }
        }
        if params.iter().any(|p| p["in"] == "path") {
            assert!(has("404"), "{name} lacks 404");
        }
        if path.starts_with("/api/") {
            assert!(has("429"), "{name} lacks 429");
        }
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    assert!(problem["properties"]["errors"].is_object());
    let too_many = &doc["components"]["responses"]["TooManyRequests"]["headers"];
    for header in [
        "Retry-After",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
    ] {
        assert!(too_many[header].is_object(), "429 lacks {header}");
    }
    assert!(
        doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| !p.starts_with("/internal"))
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let (app, doc) = document().await;
    let token = app.signed_in_admin().await.access_token;
    let id = "01a242c7-aa82-76d7-8222-96dea03a090d";

    for (method, path, _) in operations(&doc) {
        let mut url = String::new();
        for segment in path.split('/').skip(1) {
            url.push('/');
            url.push_str(if segment.starts_with('{') {
                id
            } else {
                segment
            });
        }
        let request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), app.url(&url))
            .bearer_auth(&token)
            .header("Idempotency-Key", "contract-probe")
            .timeout(std::time::Duration::from_secs(5));
        let request = if method == "get" || method == "delete" {
            request
        } else {
            request.json(&serde_json::json!({}))
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: not routed ({body})");
        assert!(
            !(status == 404 && body.contains("no such route")),
            "{method} {path}: not routed"
        );
    }
}

/// The routes the services' routers register, read from their route tables.
fn routed() -> BTreeSet<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut out = BTreeSet::new();
    for file in [
        "auth/src/http/mod.rs",
        "events/src/http/mod.rs",
        "booking/src/http/mod.rs",
        "recs/src/http/mod.rs",
        "search/src/http.rs",
        "settings/src/http/mod.rs",
        "analytics/src/http/mod.rs",
        "data/src/http.rs",
    ] {
        let source = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        for route in source.split(".route(").skip(1) {
            let path = route.split('"').nth(1).unwrap().to_owned();
            let handlers = route.split(".with_state").next().unwrap();
            for method in METHODS {
                if handlers.contains(&format!("{method}(")) {
                    out.insert((method.to_owned(), shape(&path)));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn every_public_route_is_documented() {
    let (_app, doc) = document().await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, shape(&path)))
        .collect();

    let routes = routed();
    assert!(routes.len() > 30, "route tables not read: {routes:?}");
    for (method, path) in routes {
        if path.starts_with("/internal") {
            continue;
        }
        assert!(
            documented.contains(&(method.clone(), path.clone())),
            "{method} {path} is routed but not documented"
        );
    }
}

#[tokio::test]
async fn every_link_leads_to_an_operation() {
    let (_app, doc) = document().await;
    let ids: BTreeSet<String> = operations(&doc)
        .iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
        .collect();
    let mut links = 0;

    for (method, path, op) in operations(&doc) {
        for response in op["responses"].as_object().unwrap().values() {
            for link in response["links"].as_object().into_iter().flatten() {
                let target = link.1["operationId"].as_str().unwrap();
                assert!(ids.contains(target), "{method} {path}: link to {target}");
                links += 1;
            }
        }
    }
    assert!(links >= 15, "{links} links");
}

#[tokio::test]
async fn the_document_is_the_reviewed_one() {
    let (_app, doc) = document().await;
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test]
async fn the_document_publishes_the_configured_limits() {
    let app = evently_testkit::spawn_app_with(|c| {
        c.booking.max_seats_per_order = 4;
        c.events.max_page_size = 50;
        c.recs.max_limit = 20;
    })
    .await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    let size = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]["maximum"]
            .clone()
    };

    assert_eq!(
        schemas["HoldRequest"]["properties"]["quantity"]["maximum"],
        4
    );
    assert_eq!(
        schemas["HoldRequest"]["properties"]["seatIds"]["maxItems"],
        4
    );
    assert_eq!(
        schemas["PurchaseRequest"]["properties"]["seatIds"]["maxItems"],
        4
    );
    assert_eq!(
        schemas["WaitlistRequest"]["properties"]["quantity"]["maximum"],
        4
    );
    assert_eq!(size("/api/events", "size"), 50);
    assert_eq!(size("/api/venues", "size"), 50);
    assert_eq!(size("/api/recs", "limit"), 20);
    assert_eq!(size("/api/recs/related", "limit"), 20);
}
