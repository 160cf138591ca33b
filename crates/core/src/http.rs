//! The HTTP stack every evently router gets, and the operational routes.
//!
//! Layer order, outermost first (see [`apply_stack`]):
//! 1. request id — accept a sane incoming `X-Request-Id` or generate a UUIDv7; echo it back;
//! 2. tracing span (method, route, request id, user id once known; it continues an incoming
//!    `traceparent` when traces are exported) and the access log line;
//! 3. metrics — `evently_http_requests_total` and `evently_http_request_duration_seconds`;
//! 4. security headers — nosniff, frame-deny, referrer policy, a strict CSP on JSON (a CSP or
//!    referrer policy set by the handler is kept);
//! 5. problem fallback — any error answer that is not JSON (axum's plain-text rejections,
//!    405, timeouts) becomes problem+json; internal causes are logged here, once;
//! 6. timeout — 503 after `server.request_timeout_seconds` (a gateway applies it inside its
//!    edge instead, so that a timed-out answer still gets the edge's CORS and HSTS headers).
//!
//! Unknown routes answer a 404 problem ([`not_found`]), and bodies are capped by
//! `DefaultBodyLimit` (413 from the extractors).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Instrument;

use crate::problem::{self, InternalError, PROBLEM_JSON, Problem};

/// Header carrying the request id.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id of the current request (a request extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// Options of the common stack.
#[derive(Debug, Clone, Copy)]
pub struct StackOptions {
    /// Largest accepted body.
    pub body_limit_bytes: usize,
    /// Per-request timeout; `None` when the caller applies it further in (the gateway does).
    pub timeout: Option<Duration>,
    /// Trust `X-Forwarded-For` for the client address.
    pub trust_forwarded_for: bool,
}

/// Wraps `router` in the common stack (see the module docs for the order). The router's own
/// fallback is kept; give it [`not_found`] when it has none.
pub fn apply_stack(router: Router, options: StackOptions) -> Router {
    // The recorder must be installed before handles are taken and kept.
    let _ = metrics_handle();
    let metrics = Arc::new(RequestMetrics::default());
    // One `layer` call: the router wraps (and boxes) every route once for the whole stack,
    // instead of once per layer on every request.
    router.layer(
        ServiceBuilder::new()
            .layer(axum::Extension(TrustForwardedFor(
                options.trust_forwarded_for,
            )))
            .layer(RequestIdLayer)
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(make_span)
                    .on_request(())
                    .on_response(on_response)
                    .on_failure(()),
            )
            .layer(AnswerLayer { metrics })
            .option_layer(options.timeout.map(timeout_layer))
            .layer(DefaultBodyLimit::max(options.body_limit_bytes)),
    )
}

/// The per-request timeout: 503 (made a problem by the stack) after `timeout`.
pub fn timeout_layer(timeout: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout)
}

/// The 404 problem for unknown routes.
pub async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

fn valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new request id: a UUIDv7, so ids sort by time in the logs. Its 74 random bits come from
/// a per-thread SplitMix64 sequence seeded once from the operating system: a request id must be
/// unique, not secret, and asking the kernel for randomness on every request is a system call.
fn new_request_id() -> HeaderValue {
    thread_local! {
        static STATE: std::cell::Cell<u64> =
            std::cell::Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    let (a, b) = STATE.with(|state| {
        let next = || {
            // SplitMix64 (Steele, Lea, Flood 2014): a full-period sequence with good mixing.
            let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(s);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        (next(), next())
    });
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buffer))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Stack item 1 and items 3 to 5 are plain services rather than `from_fn` middleware: a
/// `from_fn` layer clones its inner service and allocates three boxes per request, these
/// allocate one.
#[derive(Clone)]
struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// Accepts a sane incoming `X-Request-Id` or generates one, passes it on (header and
/// [`RequestId`] extension) and echoes it in the response.
#[derive(Clone)]
struct RequestIdService<S> {
    inner: S,
}

impl<S, B> Service<Request> for RequestIdService<S>
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = axum::http::Response<B>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = match request.headers().get(&X_REQUEST_ID) {
            Some(value) if valid_request_id(value) => value.clone(),
            _ => new_request_id(),
        };
        request
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), id.clone());
        request.extensions_mut().insert(RequestId(id.clone()));
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            response.headers_mut().insert(X_REQUEST_ID.clone(), id);
            Ok(response)
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn make_span(request: &Request<Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let span = tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.route = %route,
        request.id = %request_id,
        user.id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::set_parent_from_headers(&span, request.headers());
    span
}

fn on_response(response: &Response, latency: Duration, _span: &tracing::Span) {
    let status = response.status().as_u16();
    let duration_ms = latency.as_secs_f64() * 1000.0;
    if response.status().is_server_error() {
        tracing::warn!(http.status = status, duration_ms, "request answered");
    } else {
        tracing::info!(http.status = status, duration_ms, "request answered");
    }
}

/// The handles of `evently_http_requests_total` and `evently_http_request_duration_seconds`
/// per route, method and status, registered once and then reused: looking a labelled metric up
/// in the recorder builds its key (owned label strings) and hashes it on every request. Grows
/// like the recorder's own registry, one entry per label set seen.
#[derive(Default)]
struct RequestMetrics {
    // A read-mostly map: after warm-up every request only takes the read lock.
    by_route: RwLock<HashMap<String, Vec<LabelledHandles>>>,
}

/// The method and status labels of one series pair, and its handles.
type LabelledHandles = (Method, u16, Counter, Histogram);

impl RequestMetrics {
    fn record(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let find = |entries: &Vec<LabelledHandles>| {
            entries
                .iter()
                .find(|(m, s, _, _)| m == method && *s == status)
                .map(|(_, _, c, h)| (c.clone(), h.clone()))
        };
        let cached = self
            .by_route
            .read()
            .ok()
            .and_then(|map| map.get(route).and_then(find));
        let (counter, histogram) = cached.unwrap_or_else(|| {
            let labels = [
                ("route", route.to_owned()),
                ("method", method.as_str().to_owned()),
                ("status", status.to_string()),
            ];
            let counter = metrics::counter!("evently_http_requests_total", &labels);
            let histogram = metrics::histogram!("evently_http_request_duration_seconds", &labels);
            if let Ok(mut map) = self.by_route.write() {
                let entries = map.entry(route.to_owned()).or_default();
                if find(entries).is_none() {
                    entries.push((method.clone(), status, counter.clone(), histogram.clone()));
                }
            }
            (counter, histogram)
        });
        counter.increment(1);
        histogram.record(seconds);
    }
}

/// Layer of [`AnswerService`].
#[derive(Clone)]
struct AnswerLayer {
    metrics: Arc<RequestMetrics>,
}

impl<S> Layer<S> for AnswerLayer {
    type Service = AnswerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AnswerService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Metrics, security headers and the problem fallback (stack items 3 to 5, in that order from
/// the outside), in one service so that a request pays for one layer, not three.
#[derive(Clone)]
struct AnswerService<S> {
    inner: S,
    metrics: Arc<RequestMetrics>,
}

impl<S> Service<Request> for AnswerService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let start = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let mut response = problem_fallback(response);
            security_headers(&mut response);
            metrics.record(
                route.as_ref().map_or("unmatched", MatchedPath::as_str),
                &method,
                response.status().as_u16(),
                start.elapsed().as_secs_f64(),
            );
            Ok(response)
        })
    }
}

const CSP_JSON: &str = "default-src 'none'; frame-ancestors 'none'";
const CSP_HTML: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

static CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");

fn security_headers(response: &mut Response) {
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A handler that sets its own policy keeps it: the web client's pages carry a stricter
    // CSP than the API docs, and a referrer policy under which the browser still sends
    // `Origin` on same-origin writes (the gateway's CSRF check reads it).
    if !headers.contains_key(header::REFERRER_POLICY) {
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if is_html { CSP_HTML } else { CSP_JSON }),
        );
    }
    headers.insert(
        &CROSS_ORIGIN_RESOURCE_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with(PROBLEM_JSON))
}

fn problem_fallback(response: Response) -> Response {
    if let Some(InternalError(error)) = response.extensions().get::<InternalError>() {
        tracing::error!(error = ?error, "request failed");
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, _body) = response.into_parts();
    let mut problem = problem::for_status(status);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        problem = problem.detail("this route does not accept that method");
    } else if status == StatusCode::SERVICE_UNAVAILABLE {
        problem = problem
            .detail("the request took too long and was abandoned")
            .retry_after(1);
    }
    let mut rebuilt = problem.into_response();
    // Only the body and its framing are replaced: what the layers inside set (`Allow`,
    // `Retry-After`, `WWW-Authenticate`, CORS, HSTS, `Vary`, rate-limit headers …) stays, the
    // inner value winning over the problem's.
    let headers = rebuilt.headers_mut();
    for name in parts.headers.keys() {
        if matches!(
            *name,
            header::CONTENT_TYPE | header::CONTENT_LENGTH | header::TRANSFER_ENCODING
        ) {
            continue;
        }
        headers.remove(name);
        for value in parts.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    rebuilt
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program); the
            // handle still renders this one's metrics.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// An answer a service of this process gives from public state before the gateway
/// authenticates a request (step 4 of the gateway's order) or counts it against a rate limit:
/// a refusal that is true for every caller, so knowing the caller could not change it, and
/// that costs less than checking the caller would. The gateway asks only for requests that
/// carry a credential (a request without one is still refused with 401) and a small body of
/// declared length.
#[async_trait::async_trait]
pub trait EarlyAnswer: Send + Sync {
    /// Whether requests of this method and path may be answered early; called for every
    /// request, so it must be cheap (compare, and read a flag).
    fn wants(&self, method: &Method, path: &str) -> bool;

    /// The answer to a request it wants (its head and whole body), or `None` to pass it on as
    /// usual: whenever the request is not certain to get this answer on the usual path.
    async fn answer(&self, head: &http::request::Parts, body: &[u8]) -> Option<Response>;
}

/// A dependency whose health decides readiness.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Named readiness checks of this process.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, ReadinessCheck)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Readiness").field("checks", &names).finish()
    }
}

impl Readiness {
    /// Adds a check named `name`.
    pub fn add(&mut self, name: impl Into<String>, check: ReadinessCheck) {
        self.checks.push((name.into(), check));
    }

    /// Adds every check of `other`.
    pub fn extend(&mut self, other: &Readiness) {
        self.checks.extend(other.checks.iter().cloned());
    }

    /// Runs every check concurrently, each bounded by two seconds.
    pub async fn run(&self) -> (bool, serde_json::Map<String, serde_json::Value>) {
        let futures = self.checks.iter().map(|(name, check)| {
            let name = name.clone();
            let fut = check();
            async move {
                let result = tokio::time::timeout(Duration::from_secs(2), fut)
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
                (name, result)
            }
        });
        let results = futures_join_all(futures).await;
        let mut ok = true;
        let mut map = serde_json::Map::new();
        for (name, result) in results {
            let value = match result {
                Ok(()) => serde_json::json!({"status": "up"}),
                Err(e) => {
                    ok = false;
                    serde_json::json!({"status": "down", "detail": e})
                }
            };
            map.insert(name, value);
        }
        (ok, map)
    }
}

async fn futures_join_all<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut n = 0usize;
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) }.in_current_span());
        n += 1;
    }
    let mut out: Vec<Option<F::Output>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, v)) = joined
            && let Some(slot) = out.get_mut(i)
        {
            *slot = Some(v);
        }
    }
    out.into_iter().flatten().collect()
}

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn ops_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(Arc::new(readiness))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process is alive")))]
pub async fn live() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: every dependency of this process answers.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "Ready"), (status = 503, description = "A dependency is down")))]
pub async fn ready(State(readiness): State<Arc<Readiness>>) -> Response {
    let (ok, checks) = readiness.run().await;
    let body =
        serde_json::json!({"status": if ok { "ready" } else { "unready" }, "checks": checks});
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, axum::Json(body)).into_response();
    if !ok {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn render_metrics() -> Response {
    let body = metrics_handle().render();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
        .into_response()
}

/// `/openapi.json` and the interactive docs at `/docs`, served from the binary.
pub fn docs_router(openapi: utoipa::openapi::OpenApi) -> Router {
    Router::new().merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_are_written_as_displayed() {
        for addr in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "9.99.100.199",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let addr = ClientAddr(Some(addr.parse().unwrap()));
            let mut text = String::from("x ");
            addr.push_to(&mut text);
            assert_eq!(text, format!("x {addr}"));
        }
        let mut text = String::new();
        ClientAddr(None).push_to(&mut text);
        assert_eq!(text, "unknown");
    }

    #[test]
    fn request_ids_are_validated() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123_x.y:z")));
        assert!(!valid_request_id(&HeaderValue::from_static("a b")));
        assert!(!valid_request_id(&HeaderValue::from_static("<script>")));
        let long = "a".repeat(200);
        assert!(!valid_request_id(&HeaderValue::from_str(&long).unwrap()));
    }

    #[test]
    fn generated_request_ids_are_distinct_uuid_v7s() {
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_request_id()).collect();

        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(valid_request_id(id));
            let uuid = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
        }
    }
}

/// Whether this process trusts `X-Forwarded-For` (a request extension set by the stack).
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedFor(pub bool);

/// The client's address: the peer address, or — when `server.trust_forwarded_for` is on — the
/// left-most `X-Forwarded-For` entry set by the trusted proxy in front of this service. `None`
/// when neither is known. It displays as the address (`unknown` for `None`), formatted only
/// where a text is needed: most requests never need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

impl ClientAddr {
    /// Appends the address as [`Display`](std::fmt::Display) shows it. An IPv4 address (the
    /// common case, and one a proxy writes into every forwarded request) is written digit by
    /// digit, without the formatting machinery.
    pub fn push_to(self, text: &mut String) {
        match self.0 {
            Some(std::net::IpAddr::V4(ip)) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push('.');
                    }
                    if octet >= 100 {
                        text.push(char::from(b'0' + octet / 100));
                    }
                    if octet >= 10 {
                        text.push(char::from(b'0' + octet / 10 % 10));
                    }
                    text.push(char::from(b'0' + octet % 10));
                }
            }
            _ => {
                use std::fmt::Write as _;
                let _ = write!(text, "{self}");
            }
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let trust = parts
            .extensions
            .get::<TrustForwardedFor>()
            .is_some_and(|t| t.0);
        Ok(ClientAddr(client_addr(
            &parts.headers,
            &parts.extensions,
            trust,
        )))
    }
}

fn client_addr(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trust_forwarded_for: bool,
) -> Option<std::net::IpAddr> {
    if trust_forwarded_for
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
    {
        return Some(forwarded);
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The schema of one Server-Sent Event as OpenAPI 3.1 describes the items of a
/// `text/event-stream` answer: an object whose `event` is `name` and whose `data` is a string
/// holding the component `data_schema` as JSON (`contentMediaType` + `contentSchema`).
pub fn sse_event_schema(
    name: &str,
    data_schema: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Ref, RefOr};
    let data = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!("{data_schema} as JSON")))
        .content_media_type("application/json")
        .content_schema(Some(Ref::from_schema_name(data_schema)));
    RefOr::T(
        ObjectBuilder::new()
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([name])),
            )
            .required("event")
            .property("data", data)
            .required("data")
            .property("id", ObjectBuilder::new().schema_type(Type::String))
            .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
            .into(),
    )
}
