//! Reverse proxying to services that run in other processes.
//!
//! One pooled HTTP/1.1 client for all upstreams. Bodies stream in both directions (the request
//! body is capped at the body limit as it streams). Hop-by-hop headers are dropped both ways;
//! `X-Forwarded-For/Proto/Host`, the request id and `traceparent` are passed on; the internal
//! credential header is never forwarded from a client. Upstream failures become problems:
//! connection failure 502, breaker open 503 (with `Retry-After`), timeout 504. Body-less
//! idempotent requests are retried (bounded, with jitter) after a connection failure, 502 or 503.
//!
//! A service may run as several replicas ([`Upstream::bases`]): each request starts at the
//! next replica in turn (round robin), and a request whose connection could not be made
//! (refused, unreachable: nothing was sent, so any method is safe to send again) is sent once
//! more to the next replica, at once; that first failure does not count against the
//! service's breaker. An answer, 503 included (a replica shutting down, say), is passed on as
//! it came. With several replicas the request body is read whole (it is capped at the body
//! limit) so that it can be sent again.
//!
//! An upgrade (a WebSocket) is tunnelled: the request goes upstream with its `Upgrade` and
//! `Connection: upgrade`; when the upstream switches protocols, its 101 goes back to the
//! client and both upgraded connections are joined, byte for byte, until either side closes
//! or nothing passes either way for the idle timeout.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use evently_core::Problem;
use http_body_util::{BodyExt, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::breaker::Breaker;

/// The pooled client.
pub type HttpClient = Client<HttpConnector, Body>;

/// A client with connection pooling and keep-alive; pooled connections idle for longer than
/// `idle` are closed.
pub fn client(idle: Duration) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// One upstream service, with one or several replicas.
#[derive(Debug)]
pub struct Upstream {
    /// Service name.
    pub name: String,
    /// The replicas' base URLs (scheme and authority); never empty.
    bases: Vec<Uri>,
    /// The replica the next request starts at (modulo their number).
    next: AtomicUsize,
    /// Per replica, whether its last readiness check passed (all true until checked).
    ready: Vec<AtomicBool>,
    /// Its circuit breaker (one for the service).
    pub breaker: Arc<Breaker>,
    metrics: UpstreamMetrics,
}

impl Upstream {
    /// The upstream `name` at `bases` (its replicas; at least one), behind `breaker`.
    ///
    /// # Panics
    /// When `bases` is empty.
    pub fn new(name: &str, bases: Vec<Uri>, breaker: Arc<Breaker>) -> Self {
        assert!(!bases.is_empty(), "an upstream has at least one replica");
        Self {
            name: name.to_owned(),
            ready: bases.iter().map(|_| AtomicBool::new(true)).collect(),
            bases,
            next: AtomicUsize::new(0),
            breaker,
            metrics: UpstreamMetrics::new(name),
        }
    }

    /// The replicas' base URLs.
    pub fn bases(&self) -> &[Uri] {
        &self.bases
    }

    /// Where the next request starts: each request one replica further (round robin).
    pub fn start(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len()
    }

    /// The replica of a request's `attempt` (0 first) when it started at `start`: the next
    /// ready one on each attempt, counting from `start`; every replica in turn when none is
    /// ready (one may have come back since its last check).
    pub fn base(&self, start: usize, attempt: usize) -> &Uri {
        let n = self.bases.len();
        let ready = |i: usize| self.ready[i].load(Ordering::Relaxed);
        let candidates = (0..n).filter(|k| ready((start + k) % n)).count();
        if candidates == 0 {
            return &self.bases[(start + attempt) % n];
        }
        let wanted = attempt % candidates;
        let k = (0..n)
            .filter(|k| ready((start + k) % n))
            .nth(wanted)
            .unwrap_or(0);
        &self.bases[(start + k) % n]
    }

    /// Records whether replica `index` is ready.
    pub fn set_ready(&self, index: usize, ready: bool) {
        if let Some(flag) = self.ready.get(index)
            && flag.swap(ready, Ordering::Relaxed) != ready
        {
            tracing::info!(upstream = %self.name, replica = %self.bases[index], ready,
                "upstream replica readiness changed");
        }
    }
}

/// How often the replicas of a service with several are checked (`GET /health/ready`): a
/// replica that is shutting down (or has lost its database) gets no new requests from the
/// next check on. A replica's shutdown drain window should be longer than this plus the
/// check's timeout, so that the gateway has stopped sending to it before it closes.
pub const REPLICA_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Checks the readiness of every replica of `upstream` every [`REPLICA_CHECK_INTERVAL`]
/// while it exists (a task of its own; nothing to do for a single replica).
pub fn watch_replicas(client: HttpClient, upstream: &Arc<Upstream>) {
    if upstream.bases.len() < 2 {
        return;
    }
    let weak = Arc::downgrade(upstream);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REPLICA_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(upstream) = weak.upgrade() else {
                break;
            };
            let mut checks = tokio::task::JoinSet::new();
            for (index, base) in upstream.bases.iter().enumerate() {
                let (client, base) = (client.clone(), base.clone());
                checks.spawn(async move {
                    let ready =
                        tokio::time::timeout(REPLICA_CHECK_INTERVAL, probe_one(&client, &base))
                            .await
                            .is_ok_and(|r| r.is_ok());
                    (index, ready)
                });
            }
            while let Some(Ok((index, ready))) = checks.join_next().await {
                upstream.set_ready(index, ready);
            }
        }
    });
}

/// The upstream's metric handles, registered once: a labelled lookup in the recorder costs
/// allocations and hashing on every request.
#[derive(Debug)]
struct UpstreamMetrics {
    duration: metrics::Histogram,
    ok: metrics::Counter,
    server_error: metrics::Counter,
    error: metrics::Counter,
    timeout: metrics::Counter,
    breaker_open: metrics::Counter,
    connect_retry: metrics::Counter,
}

impl UpstreamMetrics {
    fn new(upstream: &str) -> Self {
        let outcome = |label: &'static str| {
            metrics::counter!("evently_gateway_upstream_requests_total",
                "upstream" => upstream.to_owned(), "outcome" => label)
        };
        Self {
            duration: metrics::histogram!("evently_gateway_upstream_duration_seconds",
                "upstream" => upstream.to_owned()),
            ok: outcome("ok"),
            server_error: outcome("5xx"),
            error: outcome("error"),
            timeout: outcome("timeout"),
            breaker_open: outcome("breaker_open"),
            connect_retry: outcome("connect_retry"),
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether `name` describes one connection, not the message (RFC 9110 §7.6.1): a match on the
/// name's text, which rules most names out by their length alone.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the few headers present is cheaper than
    // a lookup for each name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in listed {
            headers.remove(name);
        }
    }
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name))
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }
}

/// What one proxied request needs besides the request itself.
pub struct ProxyContext<'a> {
    /// The pooled client.
    pub client: &'a HttpClient,
    /// Where to.
    pub upstream: &'a Upstream,
    /// The client's address (for `X-Forwarded-For`).
    pub client_addr: evently_core::http::ClientAddr,
    /// Upstream timeout for this route.
    pub timeout: Duration,
    /// Largest request body.
    pub body_limit: usize,
    /// Retries for body-less idempotent requests.
    pub max_retries: u32,
    /// How long a tunnelled upgraded connection may stay silent both ways.
    pub upgrade_idle: Duration,
}

fn bad_gateway(upstream: &str) -> Problem {
    Problem::new(StatusCode::BAD_GATEWAY, "bad-gateway", "Bad gateway")
        .detail(format!("the {upstream} service could not be reached"))
}

fn forwarded_request(
    parts: &axum::http::request::Parts,
    ctx: &ProxyContext<'_>,
    base: &Uri,
    body: Body,
) -> Result<Request, Problem> {
    let mut uri = axum::http::uri::Parts::default();
    uri.scheme = Some(
        base.scheme()
            .cloned()
            .unwrap_or(axum::http::uri::Scheme::HTTP),
    );
    uri.authority = base.authority().cloned();
    uri.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| axum::http::uri::PathAndQuery::from_static("/")),
    );
    let uri = Uri::from_parts(uri)
        .map_err(|e| Problem::internal(anyhow::anyhow!("building the upstream URI: {e}")))?;
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(evently_core::identity::INTERNAL_TOKEN_HEADER);
    // With traces exported, the service continues the gateway's span rather than the client's.
    evently_core::telemetry::inject_traceparent(&mut headers);
    let host = headers.remove(header::HOST);
    let mut forwarded_for = String::with_capacity(64);
    if let Some(prior) = parts
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
    {
        forwarded_for.push_str(prior);
        forwarded_for.push_str(", ");
    }
    ctx.client_addr.push_to(&mut forwarded_for);
    let forwarded_for = HeaderValue::from_str(&forwarded_for);
    if let Ok(v) = forwarded_for {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let Some(host) = host {
        headers.insert(&X_FORWARDED_HOST, host);
    }
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

fn retryable_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn has_no_body(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::TRANSFER_ENCODING)
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(20 + u64::from(nanos % 60))
}

/// The protocol `headers` ask to upgrade to (`Upgrade`, with `Connection: upgrade`).
fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    asked
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Proxies the upgrade `request` asks for: upstream with its `Upgrade`, then, on 101, a
/// tunnel between the two upgraded connections.
async fn forward_upgrade(
    mut request: Request,
    protocol: HeaderValue,
    ctx: ProxyContext<'_>,
) -> Response {
    let upstream = ctx.upstream;
    let client_side = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let call = match upstream.breaker.try_call(Instant::now()) {
        Ok(call) => call,
        Err(wait) => {
            upstream.metrics.breaker_open.increment(1);
            return Problem::unavailable(
                format!("the {} service is unavailable", upstream.name),
                wait.as_secs().max(1),
            )
            .into_response();
        }
    };
    let base = upstream.base(upstream.start(), 0);
    let mut forwarded = match forwarded_request(&parts, &ctx, base, Body::empty()) {
        Ok(r) => r,
        Err(p) => {
            call.finish(true);
            return p.into_response();
        }
    };
    forwarded
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    forwarded.headers_mut().insert(header::UPGRADE, protocol);
    let m = &upstream.metrics;
    let mut response = match tokio::time::timeout(ctx.timeout, ctx.client.request(forwarded)).await
    {
        Err(_elapsed) => {
            call.finish(false);
            m.timeout.increment(1);
            return Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "gateway-timeout",
                "Gateway timeout",
            )
            .detail(format!(
                "the {} service did not answer in time",
                upstream.name
            ))
            .into_response();
        }
        Ok(Err(error)) => {
            call.finish(false);
            m.error.increment(1);
            tracing::warn!(upstream = %upstream.name, error = %error, "upstream upgrade failed");
            return bad_gateway(&upstream.name).into_response();
        }
        Ok(Ok(response)) => response,
    };
    let status = response.status();
    call.finish(!status.is_server_error());
    m.ok.increment(1);
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // Refused before the upgrade (401, 403, 404, …): an ordinary answer.
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers);
        return Response::from_parts(head, Body::new(body));
    }
    let upstream_side = hyper::upgrade::on(&mut response);
    let (head, _) = response.into_parts();
    let idle = ctx.upgrade_idle;
    let name = upstream.name.clone();
    tokio::spawn(async move {
        let (client, server) = match tokio::try_join!(client_side, upstream_side) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(upstream = %name, error = %e, "upgrade not completed");
                return;
            }
        };
        let outcome = tunnel(
            hyper_util::rt::TokioIo::new(client),
            hyper_util::rt::TokioIo::new(server),
            idle,
        )
        .await;
        tracing::debug!(upstream = %name, ?outcome, "tunnel closed");
    });
    // The 101 as the upstream sent it: its `Upgrade`, `Connection`, `Sec-WebSocket-Accept`
    // and selected protocol belong to this exchange.
    Response::from_parts(head, Body::empty())
}

/// Why a tunnel ended.
#[derive(Debug, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides closed.
    Closed,
    /// Nothing passed either way for the idle timeout.
    Idle,
    /// A read or write failed.
    Failed,
}

/// Copies bytes both ways between `a` and `b` until both have closed, or nothing passed for
/// `idle`, or an error.
pub async fn tunnel<A, B>(a: A, b: B, idle: Duration) -> TunnelEnd
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let (mut a_buf, mut b_buf) = (vec![0u8; 8192], vec![0u8; 8192]);
    let (mut a_open, mut b_open) = (true, true);
    let mut deadline = tokio::time::Instant::now() + idle;
    while a_open || b_open {
        tokio::select! {
            read = a_read.read(&mut a_buf), if a_open => match read {
                Ok(0) => {
                    a_open = false;
                    let _ = b_write.shutdown().await;
                }
                Ok(n) => {
                    if b_write.write_all(&a_buf[..n]).await.is_err() {
                        return TunnelEnd::Failed;
                    }
                    deadline = tokio::time::Instant::now() + idle;
                }
                Err(_) => return TunnelEnd::Failed,
            },
            read = b_read.read(&mut b_buf), if b_open => match read {
                Ok(0) => {
                    b_open = false;
                    let _ = a_write.shutdown().await;
                }
                Ok(n) => {
                    if a_write.write_all(&b_buf[..n]).await.is_err() {
                        return TunnelEnd::Failed;
                    }
                    deadline = tokio::time::Instant::now() + idle;
                }
                Err(_) => return TunnelEnd::Failed,
            },
            () = tokio::time::sleep_until(deadline) => return TunnelEnd::Idle,
        }
    }
    TunnelEnd::Closed
}

/// Proxies `request` to the upstream of `ctx`.
pub async fn forward(request: Request, ctx: ProxyContext<'_>) -> Response {
    if request.method() == Method::GET
        && let Some(protocol) = upgrade_of(request.headers())
    {
        return forward_upgrade(request, protocol, ctx).await;
    }
    let (parts, body) = request.into_parts();
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len > ctx.body_limit)
    {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        )
        .detail("the request body exceeds the size limit")
        .into_response();
    }
    let retries = if retryable_method(&parts.method) && has_no_body(&parts.headers) {
        ctx.max_retries
    } else {
        0
    };
    let upstream = ctx.upstream;
    let several = upstream.bases.len() > 1;
    // With several replicas the body is kept, to be sent again to the next one.
    let (mut body, kept) = if several {
        match Limited::new(body, ctx.body_limit).collect().await {
            Ok(collected) => (None, Some(collected.to_bytes())),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Payload too large",
                )
                .detail("the request body exceeds the size limit")
                .into_response();
            }
            Err(error) => {
                tracing::debug!(%error, "reading the request body failed");
                return Problem::bad_request("bad-request")
                    .detail("the request body could not be read")
                    .into_response();
            }
        }
    } else {
        (Some(Body::new(Limited::new(body, ctx.body_limit))), None)
    };
    let start = upstream.start();
    // Retries of body-less idempotent requests, and tries in all (each on the next replica).
    let mut attempt = 0;
    let mut tries = 0;
    let mut connect_retried = false;
    loop {
        let base = upstream.base(start, tries);
        tries += 1;
        let call = match upstream.breaker.try_call(Instant::now()) {
            Ok(call) => call,
            Err(wait) => {
                upstream.metrics.breaker_open.increment(1);
                return Problem::unavailable(
                    format!("the {} service is unavailable", upstream.name),
                    wait.as_secs().max(1),
                )
                .into_response();
            }
        };
        let this_body = match &kept {
            Some(bytes) => Body::from(bytes.clone()),
            None => body.take().unwrap_or_else(Body::empty),
        };
        let request = match forwarded_request(&parts, &ctx, base, this_body) {
            Ok(r) => r,
            Err(p) => {
                call.finish(true);
                return p.into_response();
            }
        };
        let start = Instant::now();
        let outcome = tokio::time::timeout(ctx.timeout, ctx.client.request(request)).await;
        let m = &upstream.metrics;
        m.duration.record(start.elapsed().as_secs_f64());
        let (counter, retry, response) = match outcome {
            Err(_elapsed) => {
                call.finish(false);
                (
                    &m.timeout,
                    false,
                    Problem::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "gateway-timeout",
                        "Gateway timeout",
                    )
                    .detail(format!(
                        "the {} service did not answer in time",
                        upstream.name
                    ))
                    .into_response(),
                )
            }
            Ok(Err(error)) if several && !connect_retried && error.is_connect() => {
                // Nothing reached this replica: the next one gets the request at once, and
                // the breaker hears only of the outcome there.
                drop(call);
                connect_retried = true;
                m.connect_retry.increment(1);
                tracing::debug!(upstream = %upstream.name, %base, error = %error,
                    "upstream replica refused the connection; trying the next one");
                continue;
            }
            Ok(Err(error)) => {
                call.finish(false);
                if is_body_too_large(&error) {
                    return Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload-too-large",
                        "Payload too large",
                    )
                    .detail("the request body exceeds the size limit")
                    .into_response();
                }
                tracing::warn!(upstream = %upstream.name, error = %error, "upstream request failed");
                (&m.error, true, bad_gateway(&upstream.name).into_response())
            }
            Ok(Ok(response)) => {
                let status = response.status();
                call.finish(!status.is_server_error());
                let retry = matches!(
                    status,
                    StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
                );
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                (
                    if status.is_server_error() {
                        &m.server_error
                    } else {
                        &m.ok
                    },
                    retry,
                    Response::from_parts(head, Body::new(body)),
                )
            }
        };
        counter.increment(1);
        if retry && attempt < retries {
            attempt += 1;
            tokio::time::sleep(jitter()).await;
            continue;
        }
        return response;
    }
}

fn is_body_too_large(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// `GET <base>/health/ready` of every replica, concurrently, with a short timeout: ready when
/// one of them is (the others' failures are the error's text otherwise).
pub async fn probe_ready(client: &HttpClient, upstream: &Upstream) -> Result<(), String> {
    if let [base] = upstream.bases() {
        return probe_one(client, base).await;
    }
    let mut probes = tokio::task::JoinSet::new();
    for base in upstream.bases() {
        let (client, base) = (client.clone(), base.clone());
        probes.spawn(async move {
            probe_one(&client, &base)
                .await
                .map_err(|e| format!("{base}: {e}"))
        });
    }
    let mut failures = Vec::new();
    while let Some(outcome) = probes.join_next().await {
        match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(failures.join("; "))
}

async fn probe_one(client: &HttpClient, base: &Uri) -> Result<(), String> {
    let uri = format!("{}health/ready", ensure_slash(&base.to_string()));
    let request = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(2), client.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("unreachable: {e}"))?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", status.as_u16()))
    }
}

fn ensure_slash(base: &str) -> String {
    if base.ends_with('/') {
        base.to_owned()
    } else {
        format!("{base}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tunnel_carries_both_ways_and_closes_when_idle() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut client, a) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(tunnel(a, b, Duration::from_millis(200)));

        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        server.write_all(b"pong").await.unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).await.unwrap();

        assert_eq!((&got, &back), (b"ping", b"pong"));
        assert_eq!(tunnel.await.unwrap(), TunnelEnd::Idle);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0, "closed");
    }

    #[tokio::test]
    async fn a_tunnel_ends_when_both_sides_close() {
        let (client, a) = tokio::io::duplex(64);
        let (b, server) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(tunnel(a, b, Duration::from_secs(60)));

        drop(client);
        drop(server);

        assert_eq!(tunnel.await.unwrap(), TunnelEnd::Closed);
    }

    fn upstream(bases: &[&str]) -> Upstream {
        Upstream::new(
            "booking",
            bases.iter().map(|b| b.parse().unwrap()).collect(),
            Breaker::new("booking", evently_core::config::BreakerConfig::default()),
        )
    }

    #[test]
    fn requests_start_at_each_replica_in_turn() {
        let u = upstream(&["http://a:1", "http://b:2", "http://c:3"]);
        let firsts: Vec<String> = (0..6)
            .map(|_| u.base(u.start(), 0).authority().unwrap().to_string())
            .collect();
        assert_eq!(firsts, ["a:1", "b:2", "c:3", "a:1", "b:2", "c:3"]);
    }

    #[test]
    fn a_request_tried_again_goes_to_the_next_replica_and_wraps_around() {
        let u = upstream(&["http://a:1", "http://b:2"]);
        let start = u.start();
        let tried: Vec<String> = (0..3)
            .map(|attempt| u.base(start, attempt).authority().unwrap().to_string())
            .collect();
        assert_eq!(tried, ["a:1", "b:2", "a:1"]);
        let next = u.start();
        assert_eq!(u.base(next, 0).authority().unwrap().as_str(), "b:2");
        assert_eq!(u.base(next, 1).authority().unwrap().as_str(), "a:1");
    }

    #[test]
    fn a_replica_that_is_not_ready_gets_no_requests_until_it_is_again() {
        let u = upstream(&["http://a:1", "http://b:2", "http://c:3"]);
        u.set_ready(1, false);
        let firsts: Vec<String> = (0..4)
            .map(|_| u.base(u.start(), 0).authority().unwrap().to_string())
            .collect();
        assert_eq!(firsts, ["a:1", "c:3", "c:3", "a:1"]);
        let start = u.start();
        let tried: Vec<String> = (0..3)
            .map(|attempt| u.base(start, attempt).authority().unwrap().to_string())
            .collect();
        assert_eq!(
            tried,
            ["c:3", "a:1", "c:3"],
            "the retry goes to a ready one"
        );
        u.set_ready(1, true);
        let firsts: Vec<String> = (0..3)
            .map(|_| u.base(u.start(), 0).authority().unwrap().to_string())
            .collect();
        assert_eq!(firsts, ["c:3", "a:1", "b:2"]);
    }

    #[test]
    fn when_no_replica_is_ready_each_is_tried_in_turn() {
        let u = upstream(&["http://a:1", "http://b:2"]);
        u.set_ready(0, false);
        u.set_ready(1, false);
        let start = u.start();
        assert_eq!(u.base(start, 0).authority().unwrap().as_str(), "a:1");
        assert_eq!(u.base(start, 1).authority().unwrap().as_str(), "b:2");
    }

    #[test]
    fn one_replica_is_always_chosen() {
        let u = upstream(&["http://only:8080"]);
        for attempt in 0..4 {
            let start = u.start();
            assert_eq!(
                u.base(start, attempt).authority().unwrap().as_str(),
                "only:8080"
            );
        }
    }

    #[test]
    fn the_replicas_of_a_service_entry_are_comma_separated() {
        let urls: Vec<&str> =
            evently_core::config::upstream_urls("http://a:1, http://b:2 ,http://c:3").collect();
        assert_eq!(urls, ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(
            evently_core::config::upstream_urls("http://a:1").collect::<Vec<_>>(),
            ["http://a:1"]
        );
        assert!(evently_core::config::upstream_urls("http://a:1,").any(str::is_empty));
    }

    #[test]
    fn the_hop_by_hop_test_names_exactly_the_hop_by_hop_headers() {
        for name in [
            header::CONNECTION,
            HeaderName::from_static("keep-alive"),
            HeaderName::from_static("proxy-connection"),
            header::PROXY_AUTHENTICATE,
            header::PROXY_AUTHORIZATION,
            header::TE,
            header::TRAILER,
            header::TRANSFER_ENCODING,
            header::UPGRADE,
        ] {
            assert!(is_hop_by_hop(&name), "{name}");
        }
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::AUTHORIZATION,
            header::HOST,
            header::TRAILER.as_str().to_uppercase().parse().unwrap(),
            HeaderName::from_static("x-connection"),
            HeaderName::from_static("tee"),
        ] {
            assert_eq!(is_hop_by_hop(&name), name == header::TRAILER, "{name}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_including_those_named_by_connection() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close, x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("x-request-id", "abc".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-request-id"));
    }
}
