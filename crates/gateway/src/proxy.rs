//! Reverse proxying to services that run in other processes.
//!
//! One pooled HTTP/1.1 client for all upstreams. Bodies stream in both directions (the request
//! body is capped at the body limit as it streams). Hop-by-hop headers are dropped both ways;
//! `X-Forwarded-For/Proto/Host`, the request id and `traceparent` are passed on; the internal
//! credential header is never forwarded from a client. Upstream failures become problems:
//! connection failure 502, breaker open 503 (with `Retry-After`), timeout 504. Body-less
//! idempotent requests are retried (bounded, with jitter) after a connection failure, 502 or 503.
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

/// One upstream service.
#[derive(Debug)]
pub struct Upstream {
    /// Service name.
    pub name: String,
    /// Base URL (scheme and authority).
    pub base: Uri,
    /// Its circuit breaker.
    pub breaker: Arc<Breaker>,
    metrics: UpstreamMetrics,
}

impl Upstream {
    /// The upstream `name` at `base`, behind `breaker`.
    pub fn new(name: &str, base: Uri, breaker: Arc<Breaker>) -> Self {
        Self {
            name: name.to_owned(),
            base,
            breaker,
            metrics: UpstreamMetrics::new(name),
        }
    }
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
    body: Body,
) -> Result<Request, Problem> {
    let mut uri = axum::http::uri::Parts::default();
    uri.scheme = Some(
        ctx.upstream
            .base
            .scheme()
            .cloned()
            .unwrap_or(axum::http::uri::Scheme::HTTP),
    );
    uri.authority = ctx.upstream.base.authority().cloned();
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
    let mut forwarded = match forwarded_request(&parts, &ctx, Body::empty()) {
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
    let limited = Body::new(Limited::new(body, ctx.body_limit));
    let mut body = Some(limited);
    let upstream = ctx.upstream;
    let mut attempt = 0;
    loop {
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
        let this_body = body.take().unwrap_or_else(Body::empty);
        let request = match forwarded_request(&parts, &ctx, this_body) {
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

/// `GET <base>/health/ready` with a short timeout: whether the upstream is ready.
pub async fn probe_ready(client: &HttpClient, upstream: &Upstream) -> Result<(), String> {
    let uri = format!("{}health/ready", ensure_slash(&upstream.base.to_string()));
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
