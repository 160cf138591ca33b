//! Traces across processes: with `EVENTLY_OTLP_ENDPOINT` set, a purchase is one trace from
//! the gateway through booking (its request, its store) and, through the outbox and NATS, to
//! the consumers of booking's domain events in the events process. An OTLP/HTTP receiver in
//! the test collects what every process exports.

mod support;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Serve, evently, free_port, sell_two_seats, start, temp_dir};

/// Spans the purchase's trace must hold (process, span name): the gateway's request, booking's
/// store, the relay publishing its domain event and the events process applying it.
const REQUIRED: [(&str, &str); 4] = [
    ("evently-gateway", "request"),
    ("evently-booking", "purchase"),
    ("evently-booking", "bus.publish"),
    ("evently-events", "apply_availability"),
];

/// One exported span, flattened.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    route: Option<String>,
}

type Spans = Arc<Mutex<Vec<Span>>>;

async fn receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut sink = sink.lock().expect("not poisoned");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                            AnyValue::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let route = span
                            .attributes
                            .iter()
                            .find(|a| a.key == "http.route")
                            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                                AnyValue::StringValue(s) => Some(s.clone()),
                                _ => None,
                            });
                        sink.push(Span {
                            service: service.clone(),
                            name: span.name,
                            trace: span.trace_id,
                            id: span.span_id,
                            parent: span.parent_span_id,
                            route,
                        });
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), spans)
}

/// The spans of one trace as an indented tree (service: name), roots first.
fn tree(spans: &[Span]) -> String {
    let ids: Vec<&[u8]> = spans.iter().map(|s| s.id.as_slice()).collect();
    let mut children: BTreeMap<&[u8], Vec<&Span>> = BTreeMap::new();
    let mut roots = Vec::new();
    for span in spans {
        if span.parent.is_empty() || !ids.contains(&span.parent.as_slice()) {
            roots.push(span);
        } else {
            children
                .entry(span.parent.as_slice())
                .or_default()
                .push(span);
        }
    }
    fn walk(span: &Span, depth: usize, children: &BTreeMap<&[u8], Vec<&Span>>, out: &mut String) {
        let route = span
            .route
            .as_deref()
            .map_or(String::new(), |r| format!(" {r}"));
        out.push_str(&format!(
            "{}{}: {}{route}\n",
            "  ".repeat(depth),
            span.service,
            span.name
        ));
        for child in children.get(span.id.as_slice()).into_iter().flatten() {
            walk(child, depth + 1, children, out);
        }
    }
    let mut out = String::new();
    for root in roots {
        walk(root, 0, &children, &mut out);
    }
    out
}

#[tokio::test]
async fn a_purchase_is_one_trace_across_the_gateway_booking_and_the_events_consumer() {
    let Ok(nats) = std::env::var("EVENTLY_TEST_NATS_URL") else {
        eprintln!(
            "skipped: a_purchase_is_one_trace_across_the_gateway_booking_and_the_events_consumer: \
             EVENTLY_TEST_NATS_URL not set"
        );
        return;
    };
    let (endpoint, spans) = receiver().await;
    let dir = temp_dir();
    let prefix = format!("TRACE_{}_{}", std::process::id(), free_port());
    let process = |service: &str| {
        let mut command = evently(&dir);
        let data = dir.join(service);
        std::fs::create_dir_all(&data).expect("a data dir");
        command
            .env("EVENTLY_DATA_DIR", data)
            .env(
                "EVENTLY_JWT__SECRET",
                "a shared secret of at least 32 bytes!",
            )
            .env("EVENTLY_INTERNAL__TOKEN", "a shared internal token")
            .env("EVENTLY_NATS_URL", &nats)
            .env("EVENTLY_BUS__STREAM_PREFIX", &prefix)
            .env("EVENTLY_OTLP_ENDPOINT", &endpoint)
            // Export within 100 ms rather than the default 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        command
    };
    // Each service listens on a port the system picks and names in its first line: a port
    // found free beforehand can be taken by another socket before the service binds it.
    let mut running: Vec<Serve> = Vec::new();
    let mut command = process("gateway");
    command.args(["serve", "--services", "gateway", "--listen", "127.0.0.1:0"]);
    for service in ["auth", "events", "booking"] {
        let mut serve = process(service);
        serve.args(["serve", "--services", service, "--listen", "127.0.0.1:0"]);
        let serve = start(serve).0;
        command.env(
            format!("EVENTLY_GATEWAY__SERVICES__{}", service.to_uppercase()),
            &serve.base,
        );
        running.push(serve);
    }
    let gateway = start(command).0;
    let base = gateway.base.clone();
    running.push(gateway);

    sell_two_seats(&base, &base, process("auth")).await;

    // The purchase's trace: booking's request span for /api/orders/purchase is in it.
    let mut found = None;
    for _ in 0..200 {
        let all = spans.lock().expect("not poisoned").clone();
        let purchase = all.iter().find(|s| {
            s.service == "evently-booking"
                && s.name == "request"
                && s.route.as_deref() == Some("/api/orders/purchase")
        });
        if let Some(purchase) = purchase {
            let trace: Vec<Span> = all
                .iter()
                .filter(|s| s.trace == purchase.trace)
                .cloned()
                .collect();
            // Booking's request is a child of the gateway's.
            let booking = trace.iter().any(|s| {
                s.service == "evently-gateway" && s.name == "request" && s.id == purchase.parent
            });
            let consumed = trace
                .iter()
                .any(|s| s.service == "evently-events" && s.name == "bus.consume");
            let complete = REQUIRED.iter().all(|(service, name)| {
                trace
                    .iter()
                    .any(|s| s.service == *service && s.name == *name)
            });
            if booking && consumed && complete {
                found = Some(trace);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = spans.lock().expect("not poisoned").clone();
    let trace = found.unwrap_or_else(|| {
        panic!(
            "no trace joins the gateway, booking and the events consumer; received:\n{}",
            tree(&all)
        )
    });
    println!("the purchase's trace:\n{}", tree(&trace));
    let services: std::collections::BTreeSet<&str> =
        trace.iter().map(|s| s.service.as_str()).collect();
    assert!(services.len() >= 3, "{services:?}");
    // One root (the gateway's request), every other span hangs from it.
    let roots = trace
        .iter()
        .filter(|s| s.parent.is_empty() || !trace.iter().any(|p| p.id == s.parent))
        .count();
    assert_eq!(roots, 1, "one root:\n{}", tree(&trace));
    // The store's span, the relay's publish and the consumer's work are in it.
    for (service, name) in REQUIRED {
        assert!(
            trace.iter().any(|s| s.service == service && s.name == name),
            "no {service}: {name} in\n{}",
            tree(&trace)
        );
    }
    // Background polls start no traces of their own.
    assert!(
        !all.iter()
            .any(|s| s.name == "unpublished" || s.name == "expire_due"),
        "{}",
        tree(&all)
    );
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn log_lines_of_a_request_carry_the_trace_id_it_continues() {
    let (endpoint, _spans) = receiver().await;
    let dir = temp_dir();
    let log = dir.join("stderr.log");
    let mut command = evently(&dir);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("EVENTLY_LOG", "info")
        .env("EVENTLY_LOG_FORMAT", "json")
        .env("EVENTLY_OTLP_ENDPOINT", &endpoint)
        .stderr(std::fs::File::create(&log).expect("a log file"));
    let (server, _) = support::start_with_stderr(command);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let answer = reqwest::Client::new()
        .get(format!("{}/api/events", server.base))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let mut line = None;
    for _ in 0..50 {
        line = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|l| l.contains("request answered") && l.contains("/api/events"))
            .map(str::to_owned);
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line: serde_json::Value =
        serde_json::from_str(&line.expect("the access log line")).expect("a JSON log line");
    assert_eq!(line["span"]["trace_id"], trace, "{line}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
