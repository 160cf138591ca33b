//! RFC 9457 problem details: the one error body of every evently response.
//!
//! A [`Problem`] renders `application/problem+json` with `type`, `title`, `status`, `detail`
//! and, for validation failures, `errors[]` with JSON-pointer field paths. The `type` is a
//! stable URI built from a slug (`https://evently.dev/problems/<slug>`); clients switch on it.
//!
//! A 5xx problem never carries internals in its body. The underlying error rides in a response
//! extension ([`InternalError`]) and [`crate::http`]'s middleware logs it exactly once.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Base of every problem `type` URI.
pub const TYPE_BASE: &str = "https://evently.dev/problems/";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer to the field (`/email`, `/seats/3`), or the parameter name.
    pub pointer: String,
    /// What is wrong with it.
    pub detail: String,
}

impl FieldError {
    /// A field error for `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// The error that caused a 5xx answer, kept out of the body and logged by the middleware.
#[derive(Debug, Clone)]
pub struct InternalError(pub Arc<anyhow::Error>);

/// An RFC 9457 problem, ready to be answered. Boxed, so that `Result<T, Problem>` stays small.
#[derive(Debug, Clone)]
pub struct Problem(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: Option<String>,
    errors: Vec<FieldError>,
    extra: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    internal: Option<Arc<anyhow::Error>>,
}

/// The wire form of a problem, also used in the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemBody {
    /// URI identifying the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Invalid fields, for validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with an explicit status, slug and title.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str) -> Self {
        Self(Box::new(Inner {
            status,
            slug,
            title,
            detail: None,
            errors: Vec::new(),
            extra: serde_json::Map::new(),
            headers: Vec::new(),
            internal: None,
        }))
    }

    /// The problem another evently service answered with `status` and `body` (its
    /// problem+json), so that it can be answered again unchanged: same status, `type`, title,
    /// detail, `errors[]` and extension members. A body that is not a problem gives the bare
    /// problem of `status`.
    pub fn from_remote(status: StatusCode, body: &[u8]) -> Self {
        let mut problem = for_status(status);
        let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body) else {
            return problem;
        };
        if let Some(slug) = map
            .remove("type")
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(|t| t.strip_prefix(TYPE_BASE))
        {
            problem.0.slug = intern(slug).unwrap_or(problem.0.slug);
        }
        if let Some(title) = map
            .remove("title")
            .as_ref()
            .and_then(serde_json::Value::as_str)
        {
            problem.0.title = intern(title).unwrap_or(problem.0.title);
        }
        map.remove("status");
        if let Some(serde_json::Value::String(detail)) = map.remove("detail") {
            problem.0.detail = Some(detail);
        }
        if let Some(errors) = map.remove("errors") {
            problem.0.errors = serde_json::from_value(errors).unwrap_or_default();
        }
        problem.0.extra = map;
        problem
    }

    /// 400: the request is malformed (bad JSON, bad header, bad parameter).
    pub fn bad_request(slug: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, "Bad request")
    }

    /// 422: well-formed but invalid; add the fields with [`Problem::field`].
    pub fn validation() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
            "Validation failed",
        )
    }

    /// 422 for a single invalid field.
    pub fn invalid_field(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::validation().field(pointer, detail)
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            .detail(detail)
            .header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"evently\""),
            )
    }

    /// 403: signed in but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail(detail)
    }

    /// 404: unknown, or not the caller's to see.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    /// 409: a business conflict.
    pub fn conflict(slug: &'static str, title: &'static str) -> Self {
        Self::new(StatusCode::CONFLICT, slug, title)
    }

    /// 429 with `Retry-After` (seconds, at least 1).
    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .retry_after(retry_after_secs)
    }

    /// 503 with `Retry-After`: a dependency is down or the service is draining.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service-unavailable",
            "Service unavailable",
        )
        .detail(detail)
        .retry_after(retry_after_secs)
    }

    /// 500 carrying `error` for the log, never for the client.
    pub fn internal(error: anyhow::Error) -> Self {
        let mut p = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
        )
        .detail("the server failed to answer; the error has been logged");
        p.0.internal = Some(Arc::new(error));
        p
    }

    /// Sets the occurrence-specific explanation.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Adds an invalid field.
    #[must_use]
    pub fn field(mut self, pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        self.0.errors.push(FieldError::new(pointer, detail));
        self
    }

    /// Adds an extension member to the body (e.g. `conflicts`).
    #[must_use]
    pub fn extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.0.extra.insert(key.to_owned(), value);
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// Adds `Retry-After` in whole seconds (at least 1).
    #[must_use]
    pub fn retry_after(self, secs: u64) -> Self {
        let secs = secs.max(1);
        self.header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    /// Attaches an internal cause that is logged but never shown.
    #[must_use]
    pub fn with_internal(mut self, error: anyhow::Error) -> Self {
        self.0.internal = Some(Arc::new(error));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable slug of the `type`.
    pub fn slug(&self) -> &'static str {
        self.0.slug
    }

    /// The field errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0.errors
    }

    /// The problem's JSON body, as answered.
    pub fn body(&self) -> serde_json::Value {
        let body = ProblemBody {
            type_: format!("{TYPE_BASE}{}", self.0.slug),
            title: self.0.title.to_owned(),
            status: self.0.status.as_u16(),
            detail: self.0.detail.clone(),
            errors: self.0.errors.clone(),
        };
        let mut value = serde_json::to_value(body).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            for (k, v) in &self.0.extra {
                map.insert(k.clone(), v.clone());
            }
        }
        value
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status.as_u16(), self.0.slug)?;
        if let Some(detail) = &self.0.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

/// `application/problem+json`
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let inner = *self.0;
        let mut response = (inner.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in inner.headers {
            headers.insert(name, value);
        }
        if let Some(internal) = inner.internal {
            response.extensions_mut().insert(InternalError(internal));
        }
        response
    }
}

/// `text` as a `&'static str`: problem slugs and titles are a small fixed set, so each distinct
/// one is kept once; past [`INTERNED_MAX`] distinct texts (a misbehaving peer) `None`.
fn intern(text: &str) -> Option<&'static str> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    if text.is_empty() || text.len() > 200 {
        return None;
    }
    let mut texts = TEXTS
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = texts.get(text) {
        return Some(known);
    }
    if texts.len() >= INTERNED_MAX {
        return None;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    texts.insert(leaked);
    Some(leaked)
}

/// Most distinct remote problem slugs and titles kept.
const INTERNED_MAX: usize = 512;

/// A problem answer for a bare status (used by the fallback that turns axum's plain-text
/// rejections and unknown routes into problems).
pub fn for_status(status: StatusCode) -> Problem {
    let (slug, title) = match status {
        StatusCode::BAD_REQUEST => ("bad-request", "Bad request"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "Unauthorized"),
        StatusCode::FORBIDDEN => ("forbidden", "Forbidden"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::REQUEST_TIMEOUT => ("request-timeout", "Request timeout"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload-too-large", "Payload too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation-failed", "Validation failed"),
        StatusCode::TOO_MANY_REQUESTS => ("rate-limited", "Too many requests"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("header-too-large", "Request header fields too large")
        }
        StatusCode::SERVICE_UNAVAILABLE => ("service-unavailable", "Service unavailable"),
        StatusCode::GATEWAY_TIMEOUT => ("gateway-timeout", "Gateway timeout"),
        s if s.is_server_error() => ("internal", "Internal server error"),
        _ => ("error", "Error"),
    };
    Problem::new(status, slug, title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_problem_is_answered_again_unchanged() {
        let original = Problem::conflict("capacity-locked", "Capacity locked")
            .detail("the sale may have started")
            .field("/totalSeats", "cannot change")
            .extension("allowed", serde_json::json!(["CANCELLED"]));
        let body = serde_json::to_vec(&original.body()).unwrap_or_default();
        let again = Problem::from_remote(StatusCode::CONFLICT, &body);
        assert_eq!(again.status(), StatusCode::CONFLICT);
        assert_eq!(again.slug(), "capacity-locked");
        assert_eq!(again.errors(), original.errors());
        assert_eq!(again.body(), original.body());
    }

    #[test]
    fn a_remote_answer_that_is_not_a_problem_gives_the_bare_problem_of_its_status() {
        let p = Problem::from_remote(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(p.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(p.slug(), "internal");
        let p = Problem::from_remote(
            StatusCode::UNPROCESSABLE_ENTITY,
            br#"{"type":"about:blank","errors":"not a list"}"#,
        );
        assert_eq!(p.slug(), "validation-failed");
        assert!(p.errors().is_empty());
    }

    #[test]
    fn validation_problem_lists_fields_and_has_problem_content_type() {
        let response = Problem::validation()
            .field("/email", "not an email")
            .into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn internal_problem_hides_cause_from_body() {
        let p = Problem::internal(anyhow::anyhow!("sqlx: relation users does not exist"));
        let body = p.body().to_string();
        assert!(!body.contains("sqlx"), "{body}");
        let response = p.into_response();
        assert!(response.extensions().get::<InternalError>().is_some());
    }
}
