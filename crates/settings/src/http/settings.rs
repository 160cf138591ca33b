//! Settings documents per scope — the caller's preferences (`/api/settings/me`), the
//! platform's (`/api/settings/platform`), an organizer's and an event's operational knobs —
//! with their effective values, the namespaces' JSON Schemas and the audit trail.
//!
//! Reads answer `ETag: "<version>"`. `PUT` replaces the document (`application/json`),
//! `PATCH` merges a JSON Merge Patch (RFC 7396, `application/merge-patch+json`; `null`
//! removes a key). Both need `If-Match`: the ETag read (`"0"` for a document never
//! written) or `*` to overwrite whatever is there; without it 428, with a stale one 412.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evently_core::Problem;
use evently_core::extract::{Path, Query};
use evently_core::identity::Identity;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::SettingsState;
use crate::domain::{DocKey, Expected, Namespace, Scope, etag};
use crate::error::SettingsError;
use crate::schema::Schemas;
use crate::service::{Change, Read};

/// The media type of a merge patch (RFC 7396).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A settings document of one scope.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DocumentView {
    /// `user`, `platform`, `organizer` or `event`.
    pub scope: String,
    /// The user, organizer or event; the nil UUID for the platform.
    pub scope_id: Uuid,
    /// `preferences` (users) or `booking` (platform, organizers, events).
    pub namespace: String,
    /// The version (also the ETag); 0 for a document never written.
    pub version: i64,
    /// The keys set at this scope (see `GET /api/settings/schema/{namespace}`).
    #[schema(value_type = Object)]
    pub document: Value,
    /// When it was last written (RFC 3339), if ever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Who wrote it last, if anyone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<Uuid>,
}

fn rfc3339(ms: i64) -> String {
    evently_bus::envelope::time_from_ms(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl From<Read> for DocumentView {
    fn from(read: Read) -> Self {
        Self {
            scope: read.key.scope.as_str().to_owned(),
            scope_id: read.key.scope_id,
            namespace: read.key.namespace.as_str().to_owned(),
            version: read.version,
            document: read.value,
            updated_at: read.updated_at.map(rfc3339),
            updated_by: read.updated_by,
        }
    }
}

/// One key of an effective document.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveKeyView {
    /// JSON pointer of the key (`/holdTtlSeconds`, `/saleDefaults/currency`).
    pub key: String,
    /// Its effective value.
    pub value: Value,
    /// Where it came from: `default`, `user`, `platform`, `organizer` or `event`.
    pub source: String,
}

/// The effective settings of a scope: the schema's defaults, then the platform's document,
/// the organizer's and the event's as far as the scope goes (a user's: defaults, then theirs).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveView {
    /// The scope asked about.
    pub scope: String,
    /// Its id.
    pub scope_id: Uuid,
    /// The namespace.
    pub namespace: String,
    /// The merged document.
    #[schema(value_type = Object)]
    pub document: Value,
    /// Every key with its value and source.
    pub keys: Vec<EffectiveKeyView>,
}

/// One write in the audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    /// Its place in the trail (pass as `before` for the next page).
    pub seq: i64,
    /// The document's scope.
    pub scope: String,
    /// The scope's id.
    pub scope_id: Uuid,
    /// The namespace.
    pub namespace: String,
    /// The version the write made.
    pub version: i64,
    /// Who wrote.
    pub actor: Uuid,
    /// When (RFC 3339).
    pub at: String,
    /// The document before; absent for its first write.
    #[schema(value_type = Option<Object>)]
    pub previous: Option<Value>,
    /// The document after.
    #[schema(value_type = Object)]
    pub document: Value,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntryView>,
    /// `before` for the next page, when there may be one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// `GET /api/settings/audit` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this scope's document (`user`, `platform`, `organizer`, `event`); with `scopeId`
    /// unless `platform`.
    #[param(value_type = Option<String>, pattern = "^(user|platform|organizer|event)$")]
    pub scope: Option<String>,
    /// The scope's id.
    #[param(value_type = Option<String>, format = Uuid)]
    pub scope_id: Option<String>,
    /// Entries older than this `seq` (from `nextBefore`).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub before: Option<String>,
    /// Entries per page, 1 to 100 (50 when absent).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

fn with_etag(read: Read, status: StatusCode) -> Response {
    let tag = etag(read.version);
    let mut response = (status, axum::Json(DocumentView::from(read))).into_response();
    if let Ok(value) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn if_match(headers: &HeaderMap) -> Result<Option<Expected>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(Expected::parse)
        .map(Some)
        .ok_or_else(|| {
            Problem::bad_request("bad-if-match")
                .detail("If-Match must be * or one ETag of this API, like \"3\"")
        })
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn unsupported(expected: &'static str) -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
    )
    .detail(format!("send the body as {expected}"))
}

async fn get_doc(
    state: &SettingsState,
    caller: &Identity,
    key: DocKey,
) -> Result<Response, SettingsError> {
    state.service.authorize(caller, key).await?;
    Ok(with_etag(state.service.read(key).await?, StatusCode::OK))
}

async fn put_doc(
    state: &SettingsState,
    caller: &Identity,
    key: DocKey,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, SettingsError> {
    state.service.authorize(caller, key).await?;
    if media_type(headers) != "application/json" {
        return Err(unsupported("application/json").into());
    }
    let expected = if_match(headers)?;
    let document = Schemas::parse_body(body)?;
    let read = state
        .service
        .write(caller, key, expected, Change::Replace(&document))
        .await?;
    Ok(with_etag(read, StatusCode::OK))
}

async fn patch_doc(
    state: &SettingsState,
    caller: &Identity,
    key: DocKey,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, SettingsError> {
    state.service.authorize(caller, key).await?;
    if media_type(headers) != MERGE_PATCH {
        let mut response = Problem::from(SettingsError::from(unsupported(MERGE_PATCH)));
        response = response.header(
            axum::http::HeaderName::from_static("accept-patch"),
            HeaderValue::from_static(MERGE_PATCH),
        );
        return Err(response.into());
    }
    let expected = if_match(headers)?;
    let patch = Schemas::parse_body(body)?;
    let read = state
        .service
        .write(caller, key, expected, Change::Merge(&patch))
        .await?;
    Ok(with_etag(read, StatusCode::OK))
}

async fn effective_doc(
    state: &SettingsState,
    caller: &Identity,
    key: DocKey,
) -> Result<axum::Json<EffectiveView>, SettingsError> {
    state.service.authorize(caller, key).await?;
    let effective = state.service.effective(key).await?;
    Ok(axum::Json(EffectiveView {
        scope: key.scope.as_str().to_owned(),
        scope_id: key.scope_id,
        namespace: key.namespace.as_str().to_owned(),
        document: effective.value,
        keys: effective
            .keys
            .into_iter()
            .map(|k| EffectiveKeyView {
                key: k.pointer,
                value: k.value,
                source: k.source.as_str().to_owned(),
            })
            .collect(),
    }))
}

fn me(caller: &Identity) -> DocKey {
    DocKey::new(Scope::User, caller.user_id.0)
}

/// The caller's preferences.
#[utoipa::path(get, path = "/api/settings/me", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_me(
    State(state): State<SettingsState>,
    caller: Identity,
) -> Result<Response, SettingsError> {
    get_doc(&state, &caller, me(&caller)).await
}

/// Replaces the caller's preferences.
#[utoipa::path(put, path = "/api/settings/me", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json", description = "The whole document (schema: `GET /api/settings/schema/preferences`)"),
    params(("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`")),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/json", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Breaks the schema, or nests deeper than 8 levels; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn put_me(
    State(state): State<SettingsState>,
    caller: Identity,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    put_doc(&state, &caller, me(&caller), &headers, &body).await
}

/// Merges a JSON Merge Patch (RFC 7396) into the caller's preferences; `null` removes a key.
#[utoipa::path(patch, path = "/api/settings/me", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "An RFC 7396 merge patch"),
    params(("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`")),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/merge-patch+json (`Accept-Patch` says what is)", body = evently_core::problem::ProblemBody),
        (status = 422, description = "The result breaks the schema; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn patch_me(
    State(state): State<SettingsState>,
    caller: Identity,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    patch_doc(&state, &caller, me(&caller), &headers, &body).await
}

/// The caller's effective preferences: each key's value and whether it is the default.
#[utoipa::path(get, path = "/api/settings/me/effective", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, body = EffectiveView),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
    ))]
pub async fn effective_me(
    State(state): State<SettingsState>,
    caller: Identity,
) -> Result<axum::Json<EffectiveView>, SettingsError> {
    effective_doc(&state, &caller, me(&caller)).await
}

/// The platform's booking settings (admins).
#[utoipa::path(get, path = "/api/settings/platform", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Not an admin", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_platform(
    State(state): State<SettingsState>,
    caller: Identity,
) -> Result<Response, SettingsError> {
    get_doc(&state, &caller, DocKey::platform()).await
}

/// Replaces the platform's booking settings (admins). Booking applies them to new holds and
/// purchases within seconds, within its configured hard limits.
#[utoipa::path(put, path = "/api/settings/platform", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json", description = "The whole document (schema: `GET /api/settings/schema/booking`)"),
    params(("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`")),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Not an admin", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/json", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Breaks the schema; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn put_platform(
    State(state): State<SettingsState>,
    caller: Identity,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    put_doc(&state, &caller, DocKey::platform(), &headers, &body).await
}

/// Merges a JSON Merge Patch into the platform's booking settings (admins).
#[utoipa::path(patch, path = "/api/settings/platform", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "An RFC 7396 merge patch"),
    params(("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`")),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Not an admin", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/merge-patch+json", body = evently_core::problem::ProblemBody),
        (status = 422, description = "The result breaks the schema; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn patch_platform(
    State(state): State<SettingsState>,
    caller: Identity,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    patch_doc(&state, &caller, DocKey::platform(), &headers, &body).await
}

/// The platform's effective booking settings (admins): defaults, then the platform's.
#[utoipa::path(get, path = "/api/settings/platform/effective", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, body = EffectiveView),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Not an admin", body = evently_core::problem::ProblemBody),
    ))]
pub async fn effective_platform(
    State(state): State<SettingsState>,
    caller: Identity,
) -> Result<axum::Json<EffectiveView>, SettingsError> {
    effective_doc(&state, &caller, DocKey::platform()).await
}

/// An organizer's booking settings (that organizer, or an admin).
#[utoipa::path(get, path = "/api/settings/organizers/{organizerId}", tag = "settings", security(("bearer" = [])),
    params(("organizerId" = Uuid, Path, description = "The organizer's user id")),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Another organizer's, or not an organizer", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_organizer(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(organizer_id): Path<Uuid>,
) -> Result<Response, SettingsError> {
    get_doc(&state, &caller, DocKey::new(Scope::Organizer, organizer_id)).await
}

/// Replaces an organizer's booking settings (that organizer, or an admin).
#[utoipa::path(put, path = "/api/settings/organizers/{organizerId}", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json", description = "The whole document (schema: `GET /api/settings/schema/booking`)"),
    params(
        ("organizerId" = Uuid, Path, description = "The organizer's user id"),
        ("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`"),
    ),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Another organizer's, or not an organizer", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/json", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Breaks the schema; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn put_organizer(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(organizer_id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    let key = DocKey::new(Scope::Organizer, organizer_id);
    put_doc(&state, &caller, key, &headers, &body).await
}

/// Merges a JSON Merge Patch into an organizer's booking settings (that organizer, or an
/// admin).
#[utoipa::path(patch, path = "/api/settings/organizers/{organizerId}", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "An RFC 7396 merge patch"),
    params(
        ("organizerId" = Uuid, Path, description = "The organizer's user id"),
        ("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`"),
    ),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Another organizer's, or not an organizer", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/merge-patch+json", body = evently_core::problem::ProblemBody),
        (status = 422, description = "The result breaks the schema; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn patch_organizer(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(organizer_id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    let key = DocKey::new(Scope::Organizer, organizer_id);
    patch_doc(&state, &caller, key, &headers, &body).await
}

/// An organizer's effective booking settings: defaults, then the platform's, then the
/// organizer's, each key with its source.
#[utoipa::path(get, path = "/api/settings/organizers/{organizerId}/effective", tag = "settings", security(("bearer" = [])),
    params(("organizerId" = Uuid, Path, description = "The organizer's user id")),
    responses(
        (status = 200, body = EffectiveView),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Another organizer's, or not an organizer", body = evently_core::problem::ProblemBody),
    ))]
pub async fn effective_organizer(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(organizer_id): Path<Uuid>,
) -> Result<axum::Json<EffectiveView>, SettingsError> {
    effective_doc(&state, &caller, DocKey::new(Scope::Organizer, organizer_id)).await
}

/// An event's booking settings (its organizer, or an admin).
#[utoipa::path(get, path = "/api/settings/events/{eventId}", tag = "settings", security(("bearer" = [])),
    params(("eventId" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 404, description = "Unknown event, or not the caller's", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_event(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(event_id): Path<Uuid>,
) -> Result<Response, SettingsError> {
    get_doc(&state, &caller, DocKey::new(Scope::Event, event_id)).await
}

/// Replaces an event's booking settings (its organizer, or an admin).
#[utoipa::path(put, path = "/api/settings/events/{eventId}", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json", description = "The whole document (schema: `GET /api/settings/schema/booking`)"),
    params(
        ("eventId" = Uuid, Path, description = "The event"),
        ("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`"),
    ),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 404, description = "Unknown event, or not the caller's", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/json", body = evently_core::problem::ProblemBody),
        (status = 422, description = "Breaks the schema; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn put_event(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(event_id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    let key = DocKey::new(Scope::Event, event_id);
    put_doc(&state, &caller, key, &headers, &body).await
}

/// Merges a JSON Merge Patch into an event's booking settings (its organizer, or an admin).
#[utoipa::path(patch, path = "/api/settings/events/{eventId}", tag = "settings", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "An RFC 7396 merge patch"),
    params(
        ("eventId" = Uuid, Path, description = "The event"),
        ("If-Match" = String, Header, pattern = r#"^(\*|(W/)?"[0-9]{1,18}")$"#, description = "The ETag read (`\"0\"` if never written), or `*`"),
    ),
    responses(
        (status = 200, body = DocumentView, headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 404, description = "Unknown event, or not the caller's", body = evently_core::problem::ProblemBody),
        (status = 412, description = "The document changed since it was read (`currentVersion`)", body = evently_core::problem::ProblemBody),
        (status = 413, description = "Over 16 KiB", body = evently_core::problem::ProblemBody),
        (status = 415, description = "Not application/merge-patch+json", body = evently_core::problem::ProblemBody),
        (status = 422, description = "The result breaks the schema; `errors[]` point at the fields", body = evently_core::problem::ProblemBody),
        (status = 428, description = "No If-Match", body = evently_core::problem::ProblemBody),
    ))]
pub async fn patch_event(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(event_id): Path<Uuid>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, SettingsError> {
    let key = DocKey::new(Scope::Event, event_id);
    patch_doc(&state, &caller, key, &headers, &body).await
}

/// An event's effective booking settings: defaults, then the platform's, its organizer's and
/// its own, each key with its source.
#[utoipa::path(get, path = "/api/settings/events/{eventId}/effective", tag = "settings", security(("bearer" = [])),
    params(("eventId" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, body = EffectiveView),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 404, description = "Unknown event, or not the caller's", body = evently_core::problem::ProblemBody),
    ))]
pub async fn effective_event(
    State(state): State<SettingsState>,
    caller: Identity,
    Path(event_id): Path<Uuid>,
) -> Result<axum::Json<EffectiveView>, SettingsError> {
    effective_doc(&state, &caller, DocKey::new(Scope::Event, event_id)).await
}

/// The JSON Schema (draft 2020-12) of a namespace, for rendering forms (public).
#[utoipa::path(get, path = "/api/settings/schema/{namespace}", tag = "settings",
    params(("namespace" = String, Path, description = "`preferences` or `booking`")),
    responses(
        (status = 200, description = "The schema", content_type = "application/schema+json", body = Object),
        (status = 404, description = "Unknown namespace", body = evently_core::problem::ProblemBody),
    ))]
pub async fn get_schema(
    State(state): State<SettingsState>,
    Path(namespace): Path<String>,
) -> Result<Response, SettingsError> {
    let namespace = Namespace::parse(&namespace).ok_or(SettingsError::NotFound)?;
    let mut response =
        axum::Json(state.service.schemas().schema(namespace).clone()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/schema+json"),
    );
    Ok(response)
}

/// The audit trail of settings writes, newest first (admins): who changed what, when, and
/// the document before and after.
#[utoipa::path(get, path = "/api/settings/audit", tag = "settings", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody),
        (status = 403, description = "Not an admin", body = evently_core::problem::ProblemBody),
        (status = 422, description = "A bad scope, scope id, `before` or `limit`", body = evently_core::problem::ProblemBody),
    ))]
pub async fn list_audit(
    State(state): State<SettingsState>,
    caller: Identity,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>, SettingsError> {
    let key = match (query.scope.as_deref(), query.scope_id.as_deref()) {
        (None, None) => None,
        (Some(scope), id) => {
            let scope = Scope::parse(scope).ok_or_else(|| {
                Problem::invalid_field("/scope", "one of user, platform, organizer, event")
            })?;
            let scope_id = match (scope, id) {
                (Scope::Platform, None) => Uuid::nil(),
                (_, Some(id)) => Uuid::parse_str(id)
                    .map_err(|_| Problem::invalid_field("/scopeId", "not a UUID"))?,
                (_, None) => {
                    return Err(
                        Problem::invalid_field("/scopeId", "required with this scope").into(),
                    );
                }
            };
            Some(DocKey::new(scope, scope_id))
        }
        (None, Some(_)) => {
            return Err(Problem::invalid_field("/scope", "required with scopeId").into());
        }
    };
    let before = query
        .before
        .as_deref()
        .map(|b| {
            b.parse::<i64>()
                .ok()
                .filter(|b| *b >= 1)
                .ok_or_else(|| Problem::invalid_field("/before", "a positive integer"))
        })
        .transpose()?;
    let limit = match query.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| Problem::invalid_field("/limit", "must be 1 to 100"))?,
    };
    let entries = state.service.audit(&caller, key, before, limit).await?;
    let next_before = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(axum::Json(AuditPage {
        items: entries
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                scope: e.key.scope.as_str().to_owned(),
                scope_id: e.key.scope_id,
                namespace: e.key.namespace.as_str().to_owned(),
                version: e.version,
                actor: e.actor,
                at: rfc3339(e.at),
                previous: e.previous,
                document: e.value,
            })
            .collect(),
        next_before,
    }))
}
