//! evently-gateway: the one front door.
//!
//! It owns nothing durable. For every request it decides, in this order (see [`Gateway::wrap`]):
//! 1. CORS — preflights answered, `Access-Control-Allow-*` only for allowlisted origins;
//! 2. `/internal/*` — never reachable through the gateway (404);
//! 3. the cookie bridge — a request with the `access_token` cookie and no `Authorization`
//!    header is treated as bearer. CSRF defence: a state-changing request authenticated by a
//!    cookie (access or refresh) must carry an `Origin` (or, failing that, `Referer`) that is
//!    in `gateway.cors_allowed_origins` or is the gateway's own origin; otherwise 403. When both
//!    a header and a cookie are present, the header wins;
//! 4. authentication — public routes (browsing, search, sign-in, docs, health) pass without a
//!    token; every other `/api` route needs a valid access token (401 with `WWW-Authenticate`).
//!    Services verify the token again themselves. Before the token is checked, a service of
//!    this process may refuse a request that carries one from public state
//!    ([`EarlyAnswer`]: booking refuses holds on a fully sold event), which then skips steps
//!    4 and 5;
//! 5. rate limiting — GCRA per user when signed in, per client address otherwise, with a quota
//!    per route group ([`ratelimit`]); 429 with `Retry-After` and `RateLimit-*` headers;
//! 6. routing — services running in this process are mounted directly (no HTTP hop); the
//!    others are proxied to their configured URL ([`proxy`]) through a per-upstream circuit
//!    breaker ([`breaker`]).
//!
//! `GET /health` checks every service's readiness concurrently (local checks in process,
//! remote ones over HTTP with a short timeout) and reports breakers and the rate limiter.

pub mod breaker;
pub mod contract;
pub mod proxy;
pub mod ratelimit;
pub mod routes;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use evently_core::Problem;
use evently_core::config::{Config, GatewayConfig};
use evently_core::http::{ClientAddr, EarlyAnswer, Readiness};
use evently_core::identity::{ACCESS_COOKIE, INTERNAL_TOKEN_HEADER, JwtKeys, cookie};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::breaker::Breaker;
use crate::proxy::{HttpClient, ProxyContext, Upstream};
use crate::ratelimit::{Decision, Group, RateLimiter};

/// The gateway's own routes, documented.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health_doc))]
pub struct GatewayApi;

/// Health of every service behind the gateway: local readiness checks and remote
/// `/health/ready` probes (2 s timeout each, run concurrently), breaker states and the rate
/// limiter's backend.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Every service is ready: `{status: \"healthy\", services: {…}}`"),
        (status = 503, description = "A service is down: `{status: \"degraded\", services: {…}}`"),
    ))]
pub async fn health_doc() {}

/// How long a pooled upstream connection may stay idle: two thirds of the header read timeout,
/// after which a service of the same configuration closes an idle connection itself, and no
/// longer than the shutdown drain window, at whose end a service of the same configuration
/// that is shutting down closes the connections it still has. Closing first means a request is
/// never written to a connection the service is closing, which would fail it with 502 (and a
/// non-idempotent one cannot be retried).
fn upstream_idle(server: &evently_core::config::ServerConfig) -> Duration {
    let mut idle = Duration::from_millis(server.header_read_timeout_seconds * 2000 / 3);
    if server.shutdown_drain_seconds > 0 {
        idle = idle.min(Duration::from_secs(server.shutdown_drain_seconds) * 2 / 3);
    }
    idle.max(Duration::from_millis(500))
}

/// The refresh-token cookie set by auth (also a cookie credential for the CSRF check).
const REFRESH_COOKIE: &str = "refresh_token";

/// The gateway of one process.
#[derive(Clone)]
pub struct Gateway {
    keys: Arc<JwtKeys>,
    limiter: Arc<dyn RateLimiter>,
    config: GatewayConfig,
    upstreams: BTreeMap<&'static str, Arc<Upstream>>,
    local: Vec<(String, Readiness)>,
    client: HttpClient,
    allowed_origins: Vec<String>,
    body_limit: usize,
    /// The body limit of file uploads (`routes::IMPORT_PATH`).
    upload_limit: usize,
    request_timeout: Duration,
    /// A local service's answers from public state, given before authentication.
    early: Option<Arc<dyn EarlyAnswer>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstreams", &self.upstreams.keys().collect::<Vec<_>>())
            .field(
                "local",
                &self.local.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway for `config`, with the services in `local` (name and readiness) running in
    /// this process; every other service with a URL in `gateway.services` is proxied.
    ///
    /// # Errors
    /// An unknown service name or an invalid URL in `gateway.services`.
    pub fn new(
        config: &Config,
        keys: Arc<JwtKeys>,
        local: Vec<(String, Readiness)>,
    ) -> anyhow::Result<Arc<Self>> {
        let mut upstreams = BTreeMap::new();
        for (name, url) in &config.gateway.services {
            let Some(known) = routes::known_services().find(|s| s == name) else {
                anyhow::bail!(
                    "gateway.services.{name}: unknown service; known services are {}",
                    routes::known_services().collect::<Vec<_>>().join(", ")
                );
            };
            if local.iter().any(|(n, _)| n == name) {
                tracing::info!(service = %name, "service runs in this process; its URL is not used");
                continue;
            }
            let bases = evently_core::config::upstream_urls(url)
                .map(|url| {
                    url.parse::<Uri>()
                        .map_err(|e| anyhow::anyhow!("gateway.services.{name}: invalid URL: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            upstreams.insert(
                known,
                Arc::new(Upstream::new(
                    known,
                    bases,
                    Breaker::new(known, config.gateway.breaker.clone()),
                )),
            );
        }
        let limiter = ratelimit::build(&config.gateway.rate_limits, &config.redis)?;
        let client = proxy::client(upstream_idle(&config.server));
        for upstream in upstreams.values() {
            proxy::watch_replicas(client.clone(), upstream);
        }
        Ok(Arc::new(Self {
            keys,
            limiter,
            config: config.gateway.clone(),
            upstreams,
            local,
            client,
            allowed_origins: config.gateway.cors_allowed_origins.clone(),
            body_limit: config.server.body_limit_bytes,
            upload_limit: config.data.max_import_bytes + routes::MULTIPART_OVERHEAD,
            request_timeout: config.request_timeout(),
            early: None,
        }))
    }

    /// Uses `limiter` instead of the configured one (tests).
    #[must_use]
    pub fn with_limiter(self: Arc<Self>, limiter: Arc<dyn RateLimiter>) -> Arc<Self> {
        let mut me = Arc::unwrap_or_clone(self);
        me.limiter = limiter;
        Arc::new(me)
    }

    /// Lets `early` answer the requests it wants before authentication and rate limiting
    /// (step 4 of the module docs): a service of this process refusing from public state.
    #[must_use]
    pub fn with_early_answer(self: Arc<Self>, early: Arc<dyn EarlyAnswer>) -> Arc<Self> {
        let mut me = Arc::unwrap_or_clone(self);
        me.early = Some(early);
        Arc::new(me)
    }

    /// Puts the edge in front of `services` (the routers of the local services, merged), adds
    /// `GET /health` and proxies everything else to remote services.
    pub fn wrap(self: &Arc<Self>, services: Router) -> Router {
        let health_gw = self.clone();
        let proxy_gw = self.clone();
        services
            .route(
                "/health",
                get(move || {
                    let gw = health_gw.clone();
                    async move { gw.health().await }
                }),
            )
            .fallback(move |addr: ClientAddr, request: Request| {
                let gw = proxy_gw.clone();
                async move { gw.dispatch(addr, request).await }
            })
            // One `layer` call (CORS outermost): every route is wrapped once for the edge. The
            // request timeout is inside the edge, so a timed-out answer still gets CORS and
            // HSTS (the common stack leaves it out when the gateway runs).
            .layer((
                self.cors(),
                middleware::from_fn_with_state(self.clone(), edge),
                evently_core::http::timeout_layer(self.request_timeout),
            ))
    }

    fn cors(&self) -> CorsLayer {
        let origins: Vec<HeaderValue> = self
            .allowed_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::HeaderName::from_static("idempotency-key"),
                header::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                header::HeaderName::from_static("ratelimit-limit"),
                header::HeaderName::from_static("ratelimit-remaining"),
                header::HeaderName::from_static("ratelimit-reset"),
            ])
            .max_age(Duration::from_secs(600))
    }

    /// Whether a cookie-authenticated write comes from an allowed origin.
    fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        origin_allowed(&self.allowed_origins, headers)
    }

    async fn dispatch(&self, addr: ClientAddr, request: Request) -> Response {
        let path = request.uri().path();
        let upstream = routes::service_for(path).and_then(|s| self.upstreams.get(s));
        let Some(upstream) = upstream else {
            return Problem::not_found("no such route").into_response();
        };
        let timeout = match routes::group_for(request.method(), path) {
            Some(Group::Auth) => self.config.auth_timeout_seconds,
            _ => self.config.upstream_timeout_seconds,
        };
        // File uploads carry more than a JSON body: the data service checks their own cap.
        let body_limit = if path == routes::IMPORT_PATH {
            self.body_limit.max(self.upload_limit)
        } else {
            self.body_limit
        };
        proxy::forward(
            request,
            ProxyContext {
                client: &self.client,
                upstream,
                client_addr: addr,
                timeout: Duration::from_secs(timeout),
                body_limit,
                max_retries: self.config.max_retries,
                upgrade_idle: Duration::from_secs(self.config.upgrade_idle_timeout_seconds),
            },
        )
        .await
    }

    async fn health(&self) -> Response {
        let mut services = serde_json::Map::new();
        let mut healthy = true;
        let local = self.local.iter().map(|(name, readiness)| async move {
            let (ok, checks) = readiness.run().await;
            (
                name.clone(),
                ok,
                serde_json::json!({"status": if ok {"up"} else {"down"}, "mode": "local", "checks": checks}),
            )
        });
        let remote = self.upstreams.values().map(|upstream| async move {
            let result = proxy::probe_ready(&self.client, upstream).await;
            let ok = result.is_ok();
            let mut value = serde_json::json!({
                "status": if ok {"up"} else {"down"},
                "mode": "remote",
                "breaker": upstream.breaker.state().as_str(),
            });
            if let Err(detail) = result {
                value["detail"] = serde_json::Value::String(detail);
            }
            (upstream.name.clone(), ok, value)
        });
        let (local, remote) = tokio::join!(join_all(local), join_all(remote));
        for (name, ok, value) in local.into_iter().chain(remote) {
            healthy &= ok;
            services.insert(name, value);
        }
        let limiter = serde_json::json!({
            "backend": self.limiter.backend(),
            // A limiter on its in-process fallback still protects every route, so it does not
            // make the gateway unhealthy; it is reported so that someone restores Redis.
            "status": if self.limiter.healthy() { "up" } else { "fallback" },
        });
        let body = serde_json::json!({
            "status": if healthy { "healthy" } else { "degraded" },
            "services": services,
            "rateLimiter": limiter,
        });
        let status = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = (status, axum::Json(body)).into_response();
        if !healthy {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let futures: Vec<_> = futures.map(Box::pin).collect();
    // Checks are few and bounded by their own timeouts; polling them together keeps /health
    // as slow as the slowest check, not their sum.
    let results = futures_lite_join(futures).await;
    out.extend(results);
    out
}

async fn futures_lite_join<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if results[i].is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn rate_headers(headers: &mut HeaderMap, d: &Decision) {
    let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
    headers.insert(&RATELIMIT_LIMIT, HeaderValue::from(d.limit));
    headers.insert(&RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
    headers.insert(&RATELIMIT_RESET, HeaderValue::from(secs(d.reset)));
}

/// The rate-limit key: `user:<id>` when signed in, `ip:<address>` otherwise. Built without the
/// formatting machinery: it is made for every request.
fn rate_key(user: Option<uuid::Uuid>, addr: ClientAddr) -> String {
    match user {
        Some(id) => {
            let mut buffer = uuid::Uuid::encode_buffer();
            let id = id.hyphenated().encode_lower(&mut buffer);
            let mut key = String::with_capacity(5 + id.len());
            key.push_str("user:");
            key.push_str(id);
            key
        }
        None => {
            let mut key = String::with_capacity(48);
            key.push_str("ip:");
            addr.push_to(&mut key);
            key
        }
    }
}

/// Whether a request's origin is one of `allowed` or the gateway's own (`http(s)://` its
/// `Host`): its `Origin` header or, without one, the scheme and authority of its `Referer`.
/// A request with neither is not from an allowed origin. Part of the cookie bridge's CSRF
/// check (step 3 of the module docs).
pub fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let own = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| [format!("http://{host}"), format!("https://{host}")]);
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            let referer = headers.get(header::REFERER)?.to_str().ok()?;
            let uri: Uri = referer.parse().ok()?;
            Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
        });
    let Some(origin) = origin else {
        return false;
    };
    allowed.contains(&origin) || own.is_some_and(|own| own.contains(&origin))
}

async fn edge(
    axum::extract::State(gw): axum::extract::State<Arc<Gateway>>,
    addr: ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let mut response = guard(&gw, addr, request, next).await;
    if gw.config.hsts {
        response.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// Steps 2 to 5 of the module docs; `edge` adds HSTS to whatever this answers.
async fn guard(gw: &Gateway, addr: ClientAddr, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if path == "/internal"
        || path.starts_with("/internal/")
        || (path.starts_with("/api/") && routes::service_for(&path).is_none())
    {
        return Problem::not_found("no such route").into_response();
    }
    // A client can never present the service credential through the edge.
    request.headers_mut().remove(INTERNAL_TOKEN_HEADER);

    let headers = request.headers();
    let has_header = headers.contains_key(header::AUTHORIZATION);
    let access_cookie = cookie(headers, ACCESS_COOKIE).map(str::to_owned);
    let cookie_credential = access_cookie.is_some() || cookie(headers, REFRESH_COOKIE).is_some();
    if !has_header && cookie_credential && !method.is_safe() && !gw.origin_allowed(headers) {
        metrics::counter!("evently_gateway_csrf_rejections_total").increment(1);
        return Problem::forbidden(
            "a cookie-authenticated change must come from an allowed origin (Origin header)",
        )
        .into_response();
    }
    if !has_header
        && let Some(token) = access_cookie
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }

    let request = match &gw.early {
        Some(early)
            if request.headers().contains_key(header::AUTHORIZATION)
                && early.wants(&method, &path) =>
        {
            match answer_early(gw, early.as_ref(), request).await {
                Ok(answer) => return answer,
                Err(request) => request,
            }
        }
        _ => request,
    };

    let token = evently_core::identity::token_from_headers(&method, request.headers());
    let verified = token.and_then(|t| gw.keys.verify(t));
    let user = verified.as_ref().ok().map(|claims| claims.sub);
    // Requests are counted before they are refused for a missing or bad token, so that
    // guessing tokens is rate limited like everything else.
    let refusal = match (&verified, routes::is_public(&method, &path)) {
        (Err(e), false) => Some(*e),
        _ => None,
    };

    let proceed = |request: Request| async move {
        match refusal {
            Some(error) => Problem::from(error).into_response(),
            None => next.run(request).await,
        }
    };
    match routes::group_for(&method, &path) {
        None => proceed(request).await,
        Some(group) => {
            let key = rate_key(user, addr);
            match gw.limiter.check(group, &key).await {
                Ok(decision) if !decision.allowed => {
                    metrics::counter!("evently_gateway_ratelimit_rejections_total",
                        "group" => group.as_str())
                    .increment(1);
                    let retry = decision.retry_after.as_secs()
                        + u64::from(decision.retry_after.subsec_nanos() > 0);
                    let mut response = Problem::too_many_requests(retry)
                        .detail("rate limit exceeded; retry after the time in Retry-After")
                        .into_response();
                    rate_headers(response.headers_mut(), &decision);
                    response
                }
                Ok(decision) => {
                    let mut response = proceed(request).await;
                    rate_headers(response.headers_mut(), &decision);
                    response
                }
                Err(error) => {
                    // Only a limiter without a fallback can fail; fail open rather than 500.
                    tracing::warn!(%error, "rate limiter failed; request allowed");
                    proceed(request).await
                }
            }
        }
    }
}

/// The largest body an [`EarlyAnswer`] is shown; a request with a larger one, or without a
/// declared length, takes the usual path.
const EARLY_BODY_MAX: u64 = 1024;

/// Reads the body of a request `early` wants and asks it for an answer: the answer, or the
/// request to pass on (its body read into memory).
async fn answer_early(
    gw: &Gateway,
    early: &dyn EarlyAnswer,
    request: Request,
) -> Result<Response, Request> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|n| n > EARLY_BODY_MAX) {
        return Err(request);
    }
    let (head, body) = request.into_parts();
    let limit = usize::try_from(EARLY_BODY_MAX).unwrap_or(usize::MAX);
    let bytes =
        match tokio::time::timeout(gw.request_timeout, axum::body::to_bytes(body, limit)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => {
                return Ok(Problem::bad_request("unreadable-body")
                    .detail("the request body could not be read")
                    .into_response());
            }
            Err(_) => return Ok(StatusCode::SERVICE_UNAVAILABLE.into_response()),
        };
    match early.answer(&head, &bytes).await {
        Some(answer) => {
            metrics::counter!("evently_gateway_early_answers_total").increment(1);
            Ok(answer)
        }
        None => Err(Request::from_parts(head, axum::body::Body::from(bytes))),
    }
}

#[cfg(test)]
mod parser_properties {
    use super::origin_allowed;
    use axum::http::{HeaderMap, HeaderValue, header};
    use proptest::prelude::*;

    fn headers(pairs: &[(header::HeaderName, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.append(name.clone(), v);
            }
        }
        headers
    }

    proptest! {
        // A fixed budget, so `cargo test` stays quick; the fuzz targets run longer.
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any `Origin`, `Referer` and `Host` bytes get an answer, never a panic; without
        /// an `Origin` or a `Referer` the answer is no.
        #[test]
        fn any_origin_headers_are_judged(
            origin in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60)),
            referer in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60)),
            host in proptest::collection::vec(any::<u8>(), 0..30),
        ) {
            let mut pairs: Vec<(header::HeaderName, &[u8])> = vec![(header::HOST, &host)];
            if let Some(o) = &origin { pairs.push((header::ORIGIN, o)); }
            if let Some(r) = &referer { pairs.push((header::REFERER, r)); }
            let h = headers(&pairs);
            let allowed = ["https://tickets.example".to_owned()];
            let verdict = origin_allowed(&allowed, &h);
            if !h.contains_key(header::ORIGIN) && !h.contains_key(header::REFERER) {
                prop_assert!(!verdict);
            }
        }

        /// An allowed origin, or the gateway's own, is allowed as `Origin` and as the origin
        /// of a `Referer` URL; an origin differing from them is not.
        #[test]
        fn allowed_and_own_origins_are_allowed(
            host in "[a-z]{1,12}(\\.[a-z]{2,5})?(:[0-9]{2,4})?",
            path in "(/[a-z0-9]{0,8}){0,3}",
            other in "[a-z]{1,12}",
        ) {
            let allowed = ["https://tickets.example".to_owned()];
            for origin in ["https://tickets.example".to_owned(), format!("http://{host}"), format!("https://{host}")] {
                let as_origin = headers(&[(header::HOST, host.as_bytes()), (header::ORIGIN, origin.as_bytes())]);
                prop_assert!(origin_allowed(&allowed, &as_origin), "{}", origin);
                let referer = format!("{origin}{path}");
                let as_referer = headers(&[(header::HOST, host.as_bytes()), (header::REFERER, referer.as_bytes())]);
                prop_assert!(origin_allowed(&allowed, &as_referer), "{}", referer);
            }
            let foreign = format!("https://{other}.attacker.example");
            let h = headers(&[(header::HOST, host.as_bytes()), (header::ORIGIN, foreign.as_bytes())]);
            prop_assert!(!origin_allowed(&allowed, &h));
        }
    }
}
