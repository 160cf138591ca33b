//! The data service's clients for events and booking running in other processes: the same
//! operations as [`LocalEvents`](crate::LocalEvents) and [`LocalBooking`](crate::LocalBooking),
//! over internal HTTP.
//!
//! Every call presents the internal service credential (`X-Internal-Token`) and the caller's
//! identity as the services already trust it from the gateway: an access token
//! (`Authorization: Bearer`) for that user and role, signed with the deployment's token key
//! and valid for the token lifetime, so that a resumed import with no request behind it still
//! acts for its organizer. The remote service judges the call exactly as in process; its
//! problem+json answer comes back as the same [`Problem`] (status, `type`, `errors[]`), so that
//! an import's report does not depend on where events runs. A service that cannot be reached
//! or does not answer in time is a 503.

use async_trait::async_trait;
use axum::http::StatusCode;
use evently_booking::domain::Order;
use evently_core::Problem;
use evently_core::identity::{INTERNAL_TOKEN_HEADER, Identity, InternalToken, JwtKeys};
use evently_events::domain::{EventFilter, EventStatus, EventType};
use evently_events::http::events::{EventList, EventResponse};
use evently_events::http::internal::{
    BATCH_REFUSED, BatchRefusal, BatchResponse, CheckBatchResponse,
};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::client::{BatchWritten, BookingClient, Buyer, EventsClient, UsersClient};

/// Seconds a Retry-After suggests after an unreachable service.
const RETRY_AFTER_SECONDS: u64 = 5;

/// What both clients share: the base URL of the service, the HTTP client and the credentials.
#[derive(Clone)]
struct Remote {
    /// What the service is called in problems (`events`, `booking`).
    name: &'static str,
    /// `http://host:port`, without a trailing slash.
    base: String,
    http: reqwest::Client,
    internal: InternalToken,
    keys: Arc<JwtKeys>,
}

impl Remote {
    fn new(
        name: &'static str,
        base: &str,
        timeout: Duration,
        internal: InternalToken,
        keys: Arc<JwtKeys>,
    ) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base)
            .map_err(|e| anyhow::anyhow!("the {name} service URL {base:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("the {name} service URL {base:?} must be http:// or https://");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| anyhow::anyhow!("building the {name} client: {e}"))?;
        Ok(Self {
            name,
            base,
            http,
            internal,
            keys,
        })
    }

    /// A request to `path` with the internal credential and, with `caller`, their token.
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        caller: Option<&Identity>,
    ) -> Result<reqwest::RequestBuilder, Problem> {
        self.request_with(method, path, &[], caller)
    }

    /// [`Self::request`] with a query.
    fn request_with(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        caller: Option<&Identity>,
    ) -> Result<reqwest::RequestBuilder, Problem> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), query)
            .map_err(|e| Problem::internal(anyhow::anyhow!("building a {} URL: {e}", self.name)))?;
        let mut request = self
            .http
            .request(method, url)
            .header(INTERNAL_TOKEN_HEADER, self.internal.0.expose_secret());
        if let Some(caller) = caller {
            let token = self
                .keys
                .issue_access(caller.user_id, caller.role, OffsetDateTime::now_utc())
                .map_err(Problem::internal)?;
            request = request.bearer_auth(token.token);
        }
        Ok(request)
    }

    /// Sends `request`; a success's status and body, or the problem answered.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), Problem> {
        let (status, body) = self.send_any(request).await?;
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(remote_problem(status, &body))
        }
    }

    /// Sends `request`; its status and body, whatever the status.
    async fn send_any(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), Problem> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Ok((status, body.to_vec()))
    }

    /// Reads `body` as JSON.
    fn read<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, Problem> {
        serde_json::from_slice(body).map_err(|e| {
            Problem::internal(anyhow::anyhow!(
                "the {} service answered unreadable JSON: {e}",
                self.name
            ))
        })
    }

    /// Sends `request` and reads its JSON answer.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Problem> {
        let (_, body) = self.send(request).await?;
        self.read(&body)
    }

    fn unreachable(&self, error: &reqwest::Error) -> Problem {
        tracing::warn!(service = self.name, error = %error, "service unreachable");
        Problem::unavailable(
            format!("the {} service cannot be reached; try again", self.name),
            RETRY_AFTER_SECONDS,
        )
    }
}

/// The problem another service answered with `status` and `body`. An unreachable upstream
/// behind a proxy (502, 504) counts as unreachable: 503.
pub(crate) fn remote_problem(status: StatusCode, body: &[u8]) -> Problem {
    match status {
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => Problem::unavailable(
            "a service cannot be reached; try again",
            RETRY_AFTER_SECONDS,
        ),
        StatusCode::SERVICE_UNAVAILABLE => {
            Problem::from_remote(status, body).retry_after(RETRY_AFTER_SECONDS)
        }
        _ => Problem::from_remote(status, body),
    }
}

/// The refused events of a batch, each with the problem the events service answered for it.
fn refusals(rows: Vec<BatchRefusal>) -> Vec<(usize, Problem)> {
    rows.into_iter()
        .map(|r| {
            let status = r
                .problem
                .get("status")
                .and_then(serde_json::Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let bytes = serde_json::to_vec(&r.problem).unwrap_or_default();
            (r.index, remote_problem(status, &bytes))
        })
        .collect()
}

/// The events service of another process.
pub struct HttpEvents {
    remote: Remote,
    /// Largest page `GET /api/events` answers.
    max_page_size: u32,
}

impl HttpEvents {
    /// A client of the events service at `base` (`http://events:8080`).
    ///
    /// # Errors
    /// When `base` is not an http(s) URL.
    pub fn new(
        base: &str,
        timeout: Duration,
        max_page_size: u32,
        internal: InternalToken,
        keys: Arc<JwtKeys>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            remote: Remote::new("events", base, timeout, internal, keys)?,
            max_page_size: max_page_size.max(1),
        })
    }
}

/// The query of `GET /api/events` for `filter`.
pub(crate) fn list_query(
    filter: &EventFilter,
    page: u32,
    size: u32,
) -> Vec<(&'static str, String)> {
    fn name<T: serde::Serialize>(value: &T) -> Option<String> {
        serde_json::to_value(value)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
    }
    fn instant(ms: i64) -> Option<String> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
    }
    let mut query = vec![("page", page.to_string()), ("size", size.to_string())];
    if let Some(status) = filter.status.as_ref().and_then(name::<EventStatus>) {
        query.push(("status", status));
    }
    if let Some(from) = filter.from.and_then(instant) {
        query.push(("from", from));
    }
    if let Some(to) = filter.to.and_then(instant) {
        query.push(("to", to));
    }
    if let Some(city) = &filter.city {
        query.push(("city", city.clone()));
    }
    if let Some(kind) = filter.event_type.as_ref().and_then(name::<EventType>) {
        query.push(("type", kind));
    }
    query
}

/// The remote page size for a page of `size`: the largest divisor of `size` the remote
/// accepts, so that page `p` of `size` is a whole run of remote pages.
pub(crate) fn remote_page_size(size: u32, max: u32) -> u32 {
    let size = size.max(1);
    (1..=size.min(max.max(1)))
        .rev()
        .find(|d| size.is_multiple_of(*d))
        .unwrap_or(1)
}

#[async_trait]
impl EventsClient for HttpEvents {
    async fn check(&self, caller: &Identity, body: &serde_json::Value) -> Result<(), Problem> {
        let request = self
            .remote
            .request(
                reqwest::Method::POST,
                "/internal/events/check",
                Some(caller),
            )?
            .json(body);
        self.remote.send(request).await.map(|_| ())
    }

    async fn check_all(
        &self,
        caller: &Identity,
        bodies: &[serde_json::Value],
    ) -> Result<Vec<(usize, Problem)>, Problem> {
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        let request = self
            .remote
            .request(
                reqwest::Method::POST,
                "/internal/events/check-batch",
                Some(caller),
            )?
            .json(&serde_json::json!({ "events": bodies }));
        let checked: CheckBatchResponse = self.remote.json(request).await?;
        if let Some(r) = checked.refused.iter().find(|r| r.index >= bodies.len()) {
            return Err(Problem::internal(anyhow::anyhow!(
                "the events service refused event {} of {}",
                r.index,
                bodies.len()
            )));
        }
        Ok(refusals(checked.refused))
    }

    async fn upsert(
        &self,
        caller: &Identity,
        id: Uuid,
        body: &serde_json::Value,
    ) -> Result<bool, Problem> {
        let request = self
            .remote
            .request(
                reqwest::Method::PUT,
                &format!("/internal/events/{id}"),
                Some(caller),
            )?
            .json(body);
        let (status, _) = self.remote.send(request).await?;
        Ok(status == StatusCode::CREATED)
    }

    async fn upsert_all(
        &self,
        caller: &Identity,
        rows: &[(Uuid, serde_json::Value)],
    ) -> Result<BatchWritten, Problem> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Item<'a> {
            event_id: Uuid,
            event: &'a serde_json::Value,
        }
        #[derive(serde::Deserialize)]
        struct Refused {
            rows: Vec<BatchRefusal>,
        }
        let events: Vec<Item<'_>> = rows
            .iter()
            .map(|(event_id, event)| Item {
                event_id: *event_id,
                event,
            })
            .collect();
        let request = self
            .remote
            .request(
                reqwest::Method::POST,
                "/internal/events/batch",
                Some(caller),
            )?
            .json(&serde_json::json!({ "events": events }));
        let (status, body) = self.remote.send_any(request).await?;
        if status.is_success() {
            let written: BatchResponse = self.remote.read(&body)?;
            if written.results.len() != rows.len() {
                return Err(Problem::internal(anyhow::anyhow!(
                    "the events service answered {} results for {} events",
                    written.results.len(),
                    rows.len()
                )));
            }
            return Ok(BatchWritten::Written(
                written.results.into_iter().map(|r| r.created).collect(),
            ));
        }
        let problem = remote_problem(status, &body);
        if problem.slug() != BATCH_REFUSED {
            return Err(problem);
        }
        let refused: Refused = self.remote.read(&body)?;
        Ok(BatchWritten::Refused(refusals(refused.rows)))
    }

    async fn list(
        &self,
        filter: &EventFilter,
        page: u32,
        size: u32,
    ) -> Result<Vec<EventResponse>, Problem> {
        let remote_size = remote_page_size(size, self.max_page_size);
        let per_page = size.max(1) / remote_size;
        let first = page.saturating_mul(per_page);
        let mut events = Vec::with_capacity(size as usize);
        for remote_page in first..first.saturating_add(per_page) {
            let request = self.remote.request_with(
                reqwest::Method::GET,
                "/api/events",
                &list_query(filter, remote_page, remote_size),
                None,
            )?;
            let list: EventList = self.remote.json(request).await?;
            let short = list.events.len() < remote_size as usize;
            events.extend(list.events);
            if short {
                break;
            }
        }
        Ok(events)
    }
}

/// The booking service of another process.
pub struct HttpBooking {
    remote: Remote,
}

impl HttpBooking {
    /// A client of the booking service at `base` (`http://booking:8080`).
    ///
    /// # Errors
    /// When `base` is not an http(s) URL.
    pub fn new(
        base: &str,
        timeout: Duration,
        internal: InternalToken,
        keys: Arc<JwtKeys>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            remote: Remote::new("booking", base, timeout, internal, keys)?,
        })
    }
}

#[async_trait]
impl BookingClient for HttpBooking {
    async fn event_orders(
        &self,
        caller: &Identity,
        event_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Order>, Problem> {
        let mut query = vec![("limit", limit.clamp(1, 10_000).to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        let request = self.remote.request_with(
            reqwest::Method::GET,
            &format!("/internal/booking/events/{event_id}/orders"),
            &query,
            Some(caller),
        )?;
        self.remote.json(request).await
    }
}

/// The auth service of another process.
pub struct HttpUsers {
    remote: Remote,
}

impl HttpUsers {
    /// A client of the auth service at `base` (`http://auth:8080`).
    ///
    /// # Errors
    /// When `base` is not an http(s) URL.
    pub fn new(
        base: &str,
        timeout: Duration,
        internal: InternalToken,
        keys: Arc<JwtKeys>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            remote: Remote::new("auth", base, timeout, internal, keys)?,
        })
    }
}

#[async_trait]
impl UsersClient for HttpUsers {
    async fn users(&self, ids: &[Uuid]) -> Result<Vec<Buyer>, Problem> {
        #[derive(serde::Deserialize)]
        struct Found {
            users: Vec<Buyer>,
        }
        // The service credential alone: a lookup acts for no user.
        let request = self
            .remote
            .request(reqwest::Method::POST, "/internal/users/lookup", None)?
            .json(&serde_json::json!({ "ids": ids }));
        let found: Found = self.remote.json(request).await?;
        Ok(found.users)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn a_validation_problem_keeps_its_status_type_and_fields() {
        let sent = Problem::invalid_field("/eventDate", "must be in the future")
            .field("/currency", "must be an ISO 4217 code");
        let body = serde_json::to_vec(&sent.body()).unwrap();
        let got = remote_problem(StatusCode::UNPROCESSABLE_ENTITY, &body);
        assert_eq!(got.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(got.slug(), sent.slug());
        assert_eq!(got.errors(), sent.errors());
        assert_eq!(got.body(), sent.body());
    }

    #[test]
    fn a_refusal_keeps_its_status_type_and_detail() {
        let sent = Problem::forbidden("only organizers and admins can create events");
        let body = serde_json::to_vec(&sent.body()).unwrap();
        let got = remote_problem(StatusCode::FORBIDDEN, &body);
        assert_eq!(got.status(), StatusCode::FORBIDDEN);
        assert_eq!(got.slug(), "forbidden");
        assert_eq!(got.body(), sent.body());
    }

    #[test]
    fn a_proxy_that_cannot_reach_the_service_is_a_503() {
        for status in [StatusCode::BAD_GATEWAY, StatusCode::GATEWAY_TIMEOUT] {
            let got = remote_problem(status, b"upstream down");
            assert_eq!(got.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(got.slug(), "service-unavailable");
        }
    }

    #[tokio::test]
    async fn an_unreachable_service_is_a_503() {
        // A port nothing listens on: bound, then closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let keys = Arc::new(JwtKeys::new(
            &evently_core::config::JwtConfig::default(),
            &secrecy::SecretString::from("a-test-secret-of-at-least-32-bytes!!"),
        ));
        let internal = InternalToken(Arc::new(secrecy::SecretString::from("t")));
        let caller = Identity {
            user_id: evently_core::ids::UserId(Uuid::new_v4()),
            role: evently_core::identity::Role::Organizer,
        };
        let events = HttpEvents::new(
            &format!("http://{addr}"),
            Duration::from_secs(2),
            100,
            internal.clone(),
            keys.clone(),
        )
        .unwrap();
        let problem = events
            .check(&caller, &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(problem.status(), StatusCode::SERVICE_UNAVAILABLE);
        let booking = HttpBooking::new(
            &format!("http://{addr}/"),
            Duration::from_secs(2),
            internal,
            keys,
        )
        .unwrap();
        let problem = booking
            .event_orders(&caller, Uuid::new_v4(), None, 10)
            .await
            .unwrap_err();
        assert_eq!(problem.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_list_query_carries_every_filter() {
        let filter = EventFilter {
            status: Some(EventStatus::OnSale),
            from: Some(0),
            to: Some(86_400_000),
            city: Some("Lyon".into()),
            event_type: None,
        };
        let query = list_query(&filter, 3, 100);
        assert_eq!(
            query,
            vec![
                ("page", "3".to_owned()),
                ("size", "100".to_owned()),
                ("status", "ON_SALE".to_owned()),
                ("from", "1970-01-01T00:00:00Z".to_owned()),
                ("to", "1970-01-02T00:00:00Z".to_owned()),
                ("city", "Lyon".to_owned()),
            ]
        );
    }

    #[test]
    fn a_page_is_a_whole_run_of_remote_pages() {
        assert_eq!(remote_page_size(500, 100), 100);
        assert_eq!(remote_page_size(50, 100), 50);
        assert_eq!(remote_page_size(250, 100), 50);
        assert_eq!(remote_page_size(101, 100), 1);
    }
}
