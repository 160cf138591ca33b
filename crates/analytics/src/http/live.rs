//! `GET /api/analytics/live` (WebSocket) and `GET /api/analytics/live/stream` (its SSE
//! twin): the figures of the events the caller may see, each at most once per second, the
//! latest value winning.
//!
//! Everything is decided before the upgrade: the `Origin` (cross-site WebSocket hijacking:
//! the upgrade is a GET, which the gateway's CSRF rule does not cover), the token (the
//! `access_token` cookie, an `Authorization` header, or the subprotocol pair
//! `evently.v1, evently.bearer.<token>`, never the URL), the events (each the caller's or an
//! admin's) and the caller's connection cap. The socket then closes with 4401 when the token
//! expires, 1001 when the process shuts down, and after two unanswered pings; a message that
//! cannot be sent within the send timeout drops the client.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use evently_core::Problem;
use evently_core::extract::Query;
use evently_core::identity::{ACCESS_COOKIE, Claims, Identity, Role, cookie};
use evently_core::ids::UserId;
use futures_util::StreamExt as _;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::AnalyticsState;
use crate::error::AnalyticsError;
use crate::live::{Feed, LiveFigures, Place};
use crate::store::Scope;

const PROBLEM: &str = "application/problem+json";
/// The subprotocol of the live feed.
pub const PROTOCOL: &str = "evently.v1";
/// The prefix of the subprotocol carrying the access token.
pub const BEARER_PROTOCOL: &str = "evently.bearer.";
/// The close code of a socket whose token expired: refresh, then reconnect.
pub const TOKEN_EXPIRED: u16 = 4401;
/// The largest message a client may send (it has nothing to say but pongs and close).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Read buffer per socket (it grows for a larger message, up to [`MAX_MESSAGE`]).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes a socket may buffer for a client before sends fail.
const MAX_WRITE_BUFFER: usize = 256 * 1024;
/// Unanswered pings after which a socket is closed.
const MISSED_PONGS: u32 = 2;

/// Parameters of the live routes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// Comma-separated event ids to watch (each the caller's, or any for an admin); when
    /// absent or empty, every event of the caller's (an admin's: every event), newest first, up to
    /// `analytics.live_max_events`, and the events created while the connection is open,
    /// while it watches fewer than that.
    #[param(value_type = Option<String>, pattern = "^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(,[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})*)?$")]
    pub event_ids: Option<String>,
}

/// The subprotocols a client offered.
fn offered(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Refuses an `Origin` that is neither the allowlist's nor the host the browser asked: the
/// request's own `Host`, or, behind a proxying gateway, the `X-Forwarded-Host` the gateway
/// set from it (a browser cannot set that header on a WebSocket handshake, and the gateway
/// replaces any a client sends).
fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), Problem> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser: nothing to hijack.
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let same_host = [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|name| headers.get(name).and_then(|h| h.to_str().ok()))
        .any(|host| origin_host == Some(host));
    if same_host || allowed.iter().any(|a| a == origin) {
        Ok(())
    } else {
        Err(Problem::forbidden("this origin may not open the live feed"))
    }
}

/// The caller's verified claims, from the `Authorization` header, the `access_token`
/// cookie or the bearer subprotocol, in that order.
fn claims(
    state: &AnalyticsState,
    headers: &HeaderMap,
    protocols: &[String],
) -> Result<Claims, Problem> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let token = from_header
        .or_else(|| cookie(headers, ACCESS_COOKIE).map(str::to_owned))
        .or_else(|| {
            protocols
                .iter()
                .find_map(|p| p.strip_prefix(BEARER_PROTOCOL))
                .map(str::to_owned)
        })
        .ok_or_else(|| Problem::unauthorized("an access token is required"))?;
    Ok(state.keys.verify(&token)?)
}

/// The feed of the events `caller` asked for, or of every event they may see (including
/// those created later), and a place under their cap.
async fn subscribe(
    state: &AnalyticsState,
    caller: &Identity,
    query: &LiveQuery,
) -> Result<(Feed, Place), AnalyticsError> {
    let config = state.service.config();
    let max = config.live_max_events as usize;
    let mut follow = None;
    let figures = match query
        .event_ids
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(raw) => {
            let ids: Vec<Uuid> = raw
                .split(',')
                .map(|id| id.trim().parse::<Uuid>())
                .collect::<Result<_, _>>()
                .map_err(|_| Problem::invalid_field("eventIds", "must be comma-separated UUIDs"))?;
            if ids.len() > max {
                return Err(Problem::invalid_field(
                    "eventIds",
                    format!("at most {max} events per connection"),
                )
                .into());
            }
            let mut all = Vec::with_capacity(ids.len());
            for id in ids {
                all.push(state.service.visible(caller, id).await?);
            }
            all
        }
        None => {
            follow = Some(state.hub.follow(*caller, max));
            let scope = if caller.role == Role::Admin {
                Scope::Platform
            } else {
                Scope::Organizer(caller.user_id.0)
            };
            let mut all = state.service.store().events(scope).await?;
            all.retain(|e| !e.deleted && e.organizer_id.is_some());
            all.sort_by_key(|e| std::cmp::Reverse(e.created_at));
            all.truncate(max);
            all
        }
    };
    let place = state
        .hub
        .admit(
            caller.user_id,
            config.live_max_connections_per_user as usize,
        )
        .ok_or_else(|| Problem::too_many_requests(1).detail("too many live connections"))?;
    let feed = Feed::new(
        figures
            .iter()
            .map(|f| state.hub.subscribe(f.event_id, f))
            .collect(),
    );
    Ok((
        match follow {
            Some(follow) => feed.following(follow),
            None => feed,
        },
        place,
    ))
}

/// Milliseconds from now until `claims` expire.
fn lifetime(state: &AnalyticsState, claims: &Claims) -> Duration {
    let left = claims.exp.saturating_mul(1000) - state.service.now();
    Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

/// The live figures of the events the caller may see, over a WebSocket (subprotocol
/// `evently.v1`). Authenticates by the `access_token` cookie, an `Authorization` header, or
/// `Sec-WebSocket-Protocol: evently.v1, evently.bearer.<token>` (then `evently.v1` is
/// selected). Each text message is one event's `LiveFigures`, at most one per event and
/// second. Closes with 4401 when the token expires, 1001 on shutdown.
#[utoipa::path(get, path = "/api/analytics/live", tag = "analytics", params(LiveQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket; each text message is a LiveFigures", body = LiveFigures),
        (status = 400, description = "Not a WebSocket upgrade, a malformed query string or an unknown parameter, or `evently.v1` missing from the offered subprotocols", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "Missing or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "An `Origin` outside the allowlist", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "An event that does not exist or is not the caller's", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "`eventIds` malformed or too many", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 429, description = "Rate limited, or the caller's live connections are all taken", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn live(
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AnalyticsError> {
    check_origin(&headers, &state.origins)?;
    let protocols = offered(&headers);
    let claims = claims(&state, &headers, &protocols)?;
    if !protocols.is_empty() && !protocols.iter().any(|p| p == PROTOCOL) {
        return Err(Problem::bad_request("subprotocol-required")
            .detail(format!("the offered subprotocols must include {PROTOCOL}"))
            .into());
    }
    let upgrade = upgrade.map_err(|_| {
        Problem::bad_request("websocket-upgrade-required").detail("a WebSocket upgrade is required")
    })?;
    let caller = Identity {
        user_id: UserId(claims.sub),
        role: claims.role,
    };
    let (feed, place) = subscribe(&state, &caller, &query).await?;
    let config = state.service.config();
    let settings = Settings {
        ping: Duration::from_secs(config.live_ping_seconds),
        send_timeout: Duration::from_secs(config.live_send_timeout_seconds),
        lifetime: lifetime(&state, &claims),
    };
    let shutdown = state.hub.shutdown.clone();
    let tracked = state.hub.sockets.token();
    // Small buffers: a client sends only pongs and a close, and gets at most one figures
    // message per second per event, so tungstenite's 128 KiB read buffer, allocated per
    // socket up front, would be most of a socket's memory. Messages are written out at once.
    let mut upgrade = upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    if !protocols.is_empty() {
        upgrade.set_selected_protocol(HeaderValue::from_static(PROTOCOL));
    }
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            run_socket(socket, feed, settings, shutdown).await;
            drop((place, tracked));
        })
        .into_response())
}

struct Settings {
    ping: Duration,
    send_timeout: Duration,
    lifetime: Duration,
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str, timeout: Duration) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(timeout, socket.send(Message::Close(Some(frame)))).await;
}

async fn run_socket(
    mut socket: WebSocket,
    mut feed: Feed,
    settings: Settings,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let expiry = tokio::time::sleep(settings.lifetime);
    tokio::pin!(expiry);
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + settings.ping, settings.ping);
    let mut unanswered = 0u32;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {
                close(&mut socket, 1001, "server shutting down", settings.send_timeout).await;
                return;
            }
            () = &mut expiry => {
                close(&mut socket, TOKEN_EXPIRED, "token expired", settings.send_timeout).await;
                return;
            }
            _ = ping.tick() => {
                if unanswered >= MISSED_PONGS {
                    close(&mut socket, 1011, "no pong", settings.send_timeout).await;
                    return;
                }
                unanswered += 1;
                let sent = tokio::time::timeout(settings.send_timeout, socket.send(Message::Ping(Default::default()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    return;
                }
            }
            received = socket.recv() => match received {
                Some(Ok(Message::Pong(_))) => unanswered = 0,
                Some(Ok(Message::Ping(_) | Message::Text(_) | Message::Binary(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            message = feed.next() => {
                let sent = tokio::time::timeout(settings.send_timeout, socket.send(Message::Text(message.json.clone()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    metrics::counter!("evently_analytics_live_dropped_total").increment(1);
                    return;
                }
            }
        }
    }
}

/// The name of every event of the live stream.
const FIGURES_EVENT: &str = "figures";

/// One Server-Sent Event of the live stream, as OpenAPI 3.1 describes an event of a
/// `text/event-stream` answer: named `figures`, its data a [`LiveFigures`] as JSON.
pub struct LiveFiguresEvent;

impl utoipa::PartialSchema for LiveFiguresEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        evently_core::http::sse_event_schema(FIGURES_EVENT, "LiveFigures")
    }
}

impl utoipa::ToSchema for LiveFiguresEvent {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "LiveFigures".to_owned(),
            <LiveFigures as utoipa::PartialSchema>::schema(),
        ));
        <LiveFigures as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The live figures of the events the caller may see, as server-sent events (`figures`,
/// each a LiveFigures), at most one per event and second; the stream ends when the token
/// expires or the process shuts down.
#[utoipa::path(get, path = "/api/analytics/live/stream", tag = "analytics", params(LiveQuery),
    responses(
        (status = 200, description = "`text/event-stream`: each event is `figures` with a LiveFigures as its data", content_type = "text/event-stream", body = LiveFiguresEvent),
        (status = 400, description = "Malformed query string or an unknown parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "Missing or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "An `Origin` outside the allowlist", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "An event that does not exist or is not the caller's", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "`eventIds` malformed or too many", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 429, description = "Rate limited, or the caller's live connections are all taken", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
) -> Result<Response, AnalyticsError> {
    check_origin(&headers, &state.origins)?;
    let claims = claims(&state, &headers, &[])?;
    let caller = Identity {
        user_id: UserId(claims.sub),
        role: claims.role,
    };
    let (feed, place) = subscribe(&state, &caller, &query).await?;
    let end = {
        let shutdown = state.hub.shutdown.clone();
        let lifetime = lifetime(&state, &claims);
        async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(lifetime) => {}
            }
        }
    };
    let tracked = state.hub.sockets.token();
    let events = futures_util::stream::unfold(
        (feed, place, tracked),
        |(mut feed, place, tracked)| async move {
            let message = feed.next().await;
            let event = SseEvent::default()
                .event(FIGURES_EVENT)
                .data(message.json.as_str());
            Some((Ok::<_, Infallible>(event), (feed, place, tracked)))
        },
    )
    .take_until(end);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
