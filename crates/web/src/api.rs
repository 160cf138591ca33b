//! Calls to the JSON API from a page handler, in process.
//!
//! A call is a `GET` built from the page request: its `Cookie` header (the session), its
//! `X-Forwarded-For`, `X-Request-Id` and `Accept-Language`, and the connection's address, and
//! dispatched to the gateway's router, so the edge authenticates it from the cookie and counts
//! it against the caller's rate limit exactly as if the browser had called `/api` itself.
//! Only reads go this way; a page never changes state.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use evently_core::http::TrustForwardedFor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use tower::ServiceExt;

/// The largest API answer a page reads (a page of 100 search hits is far below).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The gateway's router, called in process.
#[derive(Clone)]
pub struct Api {
    router: Router,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// The problem+json body of an API answer (the members a page shows).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProblemBody {
    /// The problem type URI (`https://evently.dev/problems/<slug>`).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A short summary.
    #[serde(default)]
    pub title: String,
    /// What happened.
    #[serde(default)]
    pub detail: Option<String>,
}

/// A call that did not answer 2xx with the expected body.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The answer's status (500 when the body could not be read).
    pub status: StatusCode,
    /// The problem, when the answer carried one.
    pub problem: ProblemBody,
    /// `Retry-After`, when given.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn broken(what: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %what, "an API answer could not be read");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            problem: ProblemBody::default(),
            retry_after: None,
        }
    }

    /// The problem type's slug (`seats-unavailable`), or `""`.
    pub fn slug(&self) -> &str {
        self.problem.kind.rsplit('/').next().unwrap_or_default()
    }

    /// The message a person reads for this failure.
    pub fn human(&self) -> String {
        match self.status {
            StatusCode::UNAUTHORIZED => "Please sign in to see this.".to_owned(),
            StatusCode::NOT_FOUND => "We could not find that.".to_owned(),
            StatusCode::TOO_MANY_REQUESTS => format!(
                "You are going a little fast. Please try again in {} seconds.",
                self.retry_after.unwrap_or(5)
            ),
            s if s.is_server_error() => {
                "Something went wrong on our side. Please try again in a moment.".to_owned()
            }
            _ => self
                .problem
                .detail
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| self.problem.title.clone()),
        }
    }
}

impl Api {
    /// Calls through `router` (the gateway's, edge included).
    pub fn new(router: Router) -> Self {
        Self { router }
    }

    /// `GET path_and_query` on behalf of the browser request `from`.
    ///
    /// # Errors
    /// A non-2xx answer (with its problem), or a body that is not the expected JSON (500).
    pub async fn get<T: DeserializeOwned>(
        &self,
        from: &Parts,
        path_and_query: &str,
    ) -> Result<T, ApiError> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path_and_query)
            .header(header::ACCEPT, HeaderValue::from_static("application/json"));
        for name in [
            header::COOKIE,
            header::ACCEPT_LANGUAGE,
            header::HeaderName::from_static("x-forwarded-for"),
            header::HeaderName::from_static("x-request-id"),
        ] {
            if let Some(value) = from.headers.get(&name) {
                request = request.header(name, value.clone());
            }
        }
        let mut request = request.body(Body::empty()).map_err(ApiError::broken)?;
        // The client address the edge rate-limits by, as the stack saw it.
        if let Some(info) = from.extensions.get::<ConnectInfo<SocketAddr>>() {
            request.extensions_mut().insert(*info);
        }
        if let Some(trust) = from.extensions.get::<TrustForwardedFor>() {
            request.extensions_mut().insert(*trust);
        }
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(ApiError::broken)?;
        if !status.is_success() {
            return Err(ApiError {
                status,
                problem: serde_json::from_slice(&body).unwrap_or_default(),
                retry_after,
            });
        }
        serde_json::from_slice(&body).map_err(ApiError::broken)
    }
}
