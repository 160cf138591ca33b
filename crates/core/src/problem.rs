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
use serde::Serialize;
use std::sync::Arc;

/// Base of every problem `type` URI.
pub const TYPE_BASE: &str = "https://evently.dev/problems/";

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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
