//! Data routes: import (multipart upload), job reports, exports; and their handlers.

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, FromRef, Multipart, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use evently_core::Problem;
use evently_core::extract::{Path, Query};
use evently_core::identity::{Identity, JwtKeys};
use evently_events::domain::{EventStatus, EventType};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::DataError;
use crate::export::{Format, disposition};
use crate::import::{ImportReport, report_csv};
use crate::service::{DataService, ExportJobView, ExportSpec, ImportRequest, JobView};
use crate::store::ImportMode;

/// What every data handler can reach.
#[derive(Clone)]
pub struct DataState {
    /// The operations.
    pub service: Arc<DataService>,
    /// Token keys (the `Identity` extractor finds them here).
    pub keys: Arc<JwtKeys>,
}

impl FromRef<DataState> for Arc<JwtKeys> {
    fn from_ref(state: &DataState) -> Self {
        state.keys.clone()
    }
}

/// Room for the multipart framing around the file (the gateway allows the same).
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The data router (`/api/data/*`).
pub fn router(state: DataState) -> Router {
    let limit = state.service.config().max_import_bytes + MULTIPART_OVERHEAD;
    Router::new()
        .route(
            "/api/data/import/events",
            post(import_events).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/api/data/import/jobs/{job_id}", get(import_job))
        .route(
            "/api/data/import/jobs/{job_id}/errors.csv",
            get(import_errors_csv),
        )
        .route("/api/data/export/events", get(export_events))
        .route("/api/data/export/orders", get(export_orders))
        .route("/api/data/export/jobs", post(start_export))
        .route("/api/data/export/jobs/{job_id}", get(export_job))
        .route("/api/data/export/jobs/{job_id}/file", get(export_file))
        .with_state(state)
}

const PROBLEM: &str = "application/problem+json";

/// `POST /api/data/import/events` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Judge every row and report, writing nothing (default `false`).
    pub dry_run: Option<bool>,
    /// `atomic` (default: nothing is written if any row fails) or `partial` (the valid rows
    /// are written).
    pub mode: Option<ImportMode>,
}

/// The multipart form of an import: one part named `file`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ImportForm {
    /// A CSV (UTF-8 with or without BOM, or Windows-1252; `,`, `;` or tab) or XLSX file
    /// with a header row, at most 5 MiB and 10,000 rows by default.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// An XLSX workbook, as binary.
struct XlsxFile;

impl utoipa::PartialSchema for XlsxFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for XlsxFile {}

fn multipart_problem(rejection: &MultipartRejection) -> Problem {
    match rejection {
        MultipartRejection::InvalidBoundary(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail("expected `Content-Type: multipart/form-data` with a boundary"),
        other => Problem::bad_request("malformed-multipart").detail(other.body_text()),
    }
}

fn too_large(max: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Payload too large",
    )
    .detail(format!("the file must be at most {max} bytes"))
}

/// Import events from a CSV or XLSX file (organizers and admins). Every row is judged by
/// the rules of `POST /api/events`; rows are numbered as a spreadsheet shows them (the
/// header is row 1). A row with an `externalId` updates the event imported under that id
/// before instead of making a second one.
#[utoipa::path(post, path = "/api/data/import/events", tag = "data", security(("bearer" = [])),
    params(ImportQuery),
    request_body(content = inline(ImportForm), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The report: rows written (or, for a dry run, judged), and every failure", body = ImportReport),
        (status = 400, description = "Malformed multipart body or parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not an organizer or admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 413, description = "File too large", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 415, description = "Not multipart/form-data", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "No `file` part, an unreadable file, unknown columns or too many rows; or, in atomic mode, invalid rows (the problem's `report` lists them; nothing was written)", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "The events service failed; the job resumes by itself", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn import_events(
    State(state): State<DataState>,
    identity: Identity,
    Query(query): Query<ImportQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, DataError> {
    let mut multipart = multipart.map_err(|r| multipart_problem(&r))?;
    let max = state.service.config().max_import_bytes;
    let mut upload = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_field_problem(&e, max))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("upload").to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_field_problem(&e, max))?
        {
            if bytes.len() + chunk.len() > max {
                return Err(too_large(max).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        upload = Some((name, bytes));
        break;
    }
    let (file_name, bytes) =
        upload.ok_or_else(|| Problem::invalid_field("/file", "a part named `file` is required"))?;
    let request = ImportRequest {
        file_name,
        bytes,
        mode: query.mode.unwrap_or(ImportMode::Atomic),
        dry_run: query.dry_run.unwrap_or(false),
    };
    let atomic = request.mode == ImportMode::Atomic && !request.dry_run;
    // The import runs on a task of its own: a client that goes away (or a request timeout)
    // does not stop it half-way; its job finishes and keeps its report.
    let service = state.service.clone();
    let report =
        tokio::spawn(async move { service.import(&identity, request, Uuid::now_v7()).await })
            .await
            .map_err(|e| Problem::internal(e.into()))??;
    if atomic && report.failed > 0 {
        let mut problem = Problem::validation().detail(format!(
            "{} of {} rows are invalid; nothing was imported",
            report.failed, report.rows
        ));
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&report) {
            for (key, value) in fields {
                problem = problem.extension(&key, value);
            }
        }
        return Ok(problem.into_response());
    }
    Ok(axum::Json(report).into_response())
}

fn multipart_field_problem(e: &axum::extract::multipart::MultipartError, max: usize) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        Problem::bad_request("malformed-multipart").detail(e.body_text())
    }
}

/// An import job: running (with the rows written so far) or done (with its report). Jobs
/// are kept for 24 hours after they finish.
#[utoipa::path(get, path = "/api/data/import/jobs/{jobId}", tag = "data", security(("bearer" = [])),
    params(("jobId" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Malformed id", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such job, or not the caller's", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn import_job(
    State(state): State<DataState>,
    identity: Identity,
    Path(job_id): Path<Uuid>,
) -> Result<axum::Json<JobView>, DataError> {
    Ok(axum::Json(state.service.job(&identity, job_id).await?))
}

/// An import's failures as CSV (`row,column,field,value,code,message`).
#[utoipa::path(get, path = "/api/data/import/jobs/{jobId}/errors.csv", tag = "data", security(("bearer" = [])),
    params(("jobId" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The failures", content_type = "text/csv", body = String),
        (status = 400, description = "Malformed id", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such job, not the caller's, or still running", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn import_errors_csv(
    State(state): State<DataState>,
    identity: Identity,
    Path(job_id): Path<Uuid>,
) -> Result<Response, DataError> {
    let report = state
        .service
        .job(&identity, job_id)
        .await?
        .report
        .ok_or(DataError::JobNotFound)?;
    let body = report_csv(&report).map_err(Problem::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!(
                    "attachment; filename=\"import-{job_id}-errors.csv\""
                ))
                .map_err(|e| Problem::internal(e.into()))?,
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/data/export/events` parameters: the event list's filters and a format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportEventsQuery {
    /// `csv` (default), `json` (newline-delimited) or `xlsx`.
    pub format: Option<Format>,
    /// Only this status.
    pub status: Option<EventStatus>,
    /// Only events on or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Only events on or before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Only events in this city (case-insensitive).
    pub city: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<EventType>,
}

/// Export the events matching the event list's filters (organizers and admins), streamed:
/// CSV (formula-safe, prices in minor units beside their currency), newline-delimited JSON,
/// or XLSX.
#[utoipa::path(get, path = "/api/data/export/events", tag = "data", security(("bearer" = [])),
    params(ExportEventsQuery),
    responses(
        (status = 200, description = "The file (`Content-Disposition: attachment`), in the asked `format`", content((String = "text/csv"), (String = "application/x-ndjson"), (XlsxFile = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, description = "Malformed parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not an organizer or admin", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Parameter out of bounds", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn export_events(
    State(state): State<DataState>,
    identity: Identity,
    Query(query): Query<ExportEventsQuery>,
) -> Result<Response, DataError> {
    let format = query.format.unwrap_or(Format::Csv);
    let filter = evently_events::http::events::event_filter(
        query.status,
        query.from.as_deref(),
        query.to.as_deref(),
        query.city,
        query.event_type,
    )?;
    let body = state
        .service
        .export(&identity, ExportSpec::Events(filter), format)
        .await?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let disposition = HeaderValue::from_str(&disposition(&format!("events-{stamp}"), format))
        .map_err(|e| Problem::internal(e.into()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `GET /api/data/export/orders` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportOrdersQuery {
    /// The event.
    pub event_id: Uuid,
    /// `csv` (default), `json` (newline-delimited) or `xlsx`.
    pub format: Option<Format>,
}

/// Export an event's orders with their buyers and tickets (its organizer or an admin),
/// streamed, one row per ticket: CSV (formula-safe, amounts in minor units beside their
/// currency), newline-delimited JSON, or XLSX.
#[utoipa::path(get, path = "/api/data/export/orders", tag = "data", security(("bearer" = [])),
    params(ExportOrdersQuery),
    responses(
        (status = 200, description = "The file (`Content-Disposition: attachment`), in the asked `format`", content((String = "text/csv"), (String = "application/x-ndjson"), (XlsxFile = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, description = "Malformed parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event, or not one the caller organizes", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Booking cannot be reached", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn export_orders(
    State(state): State<DataState>,
    identity: Identity,
    Query(query): Query<ExportOrdersQuery>,
) -> Result<Response, DataError> {
    let format = query.format.unwrap_or(Format::Csv);
    let body = state
        .service
        .export(&identity, ExportSpec::Orders(query.event_id), format)
        .await?;
    let disposition =
        HeaderValue::from_str(&disposition(&format!("orders-{}", query.event_id), format))
            .map_err(|e| Problem::internal(e.into()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// `POST /api/data/export/jobs`: what to export. `events` takes the event list's filters;
/// `orders` takes `eventId`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartExportRequest {
    /// `events` or `orders`.
    pub kind: ExportKind,
    /// `csv` (default), `json` (newline-delimited) or `xlsx`.
    #[serde(default)]
    pub format: Option<Format>,
    /// The event (orders).
    #[serde(default)]
    pub event_id: Option<Uuid>,
    /// Only this status (events).
    #[serde(default)]
    pub status: Option<EventStatus>,
    /// Only events on or after this time (RFC 3339).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Only events on or before this time (RFC 3339).
    #[serde(default)]
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// Only events in this city (case-insensitive).
    #[serde(default)]
    pub city: Option<String>,
    /// Only events of this type.
    #[serde(default, rename = "type")]
    pub event_type: Option<EventType>,
}

/// What an export job exports.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    /// Events.
    Events,
    /// An event's orders and tickets.
    Orders,
}

/// Start an export in the background (pretix's contract): 202 with the job; poll it, then
/// download its file (kept 24 hours). At most two run at once per caller.
#[utoipa::path(post, path = "/api/data/export/jobs", tag = "data", security(("bearer" = [])),
    request_body = StartExportRequest,
    responses(
        (status = 202, description = "Started; `Location` names the job", body = ExportJobView),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 403, description = "Not an organizer or admin (events)", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event, or not one the caller organizes (orders)", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 409, description = "Two exports of the caller are running already", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Booking cannot be reached (orders)", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn start_export(
    State(state): State<DataState>,
    identity: Identity,
    evently_core::extract::Json(body): evently_core::extract::Json<StartExportRequest>,
) -> Result<Response, DataError> {
    let spec = match body.kind {
        ExportKind::Events => ExportSpec::Events(evently_events::http::events::event_filter(
            body.status,
            body.from.as_deref(),
            body.to.as_deref(),
            body.city,
            body.event_type,
        )?),
        ExportKind::Orders => ExportSpec::Orders(body.event_id.ok_or_else(|| {
            Problem::invalid_field("/eventId", "an orders export names its event")
        })?),
    };
    let view = state
        .service
        .start_export(&identity, spec, body.format.unwrap_or(Format::Csv))
        .await?;
    let location = HeaderValue::from_str(&format!("/api/data/export/jobs/{}", view.job_id))
        .map_err(|e| Problem::internal(e.into()))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(view),
    )
        .into_response())
}

/// An export job: running (with the rows written so far), done or failed.
#[utoipa::path(get, path = "/api/data/export/jobs/{jobId}", tag = "data", security(("bearer" = [])),
    params(("jobId" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = ExportJobView),
        (status = 400, description = "Malformed id", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such job, not the caller's, or expired", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn export_job(
    State(state): State<DataState>,
    identity: Identity,
    Path(job_id): Path<Uuid>,
) -> Result<axum::Json<ExportJobView>, DataError> {
    Ok(axum::Json(
        state.service.export_job(&identity, job_id).await?.into(),
    ))
}

/// An export job's file.
#[utoipa::path(get, path = "/api/data/export/jobs/{jobId}/file", tag = "data", security(("bearer" = [])),
    params(("jobId" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The file (`Content-Disposition: attachment`), in the asked `format`", content((String = "text/csv"), (String = "application/x-ndjson"), (XlsxFile = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 400, description = "Malformed id", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such job, not the caller's, or expired", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 409, description = "Still running: `status` and `rowsWritten` say how far", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 410, description = "The export failed", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ))]
pub async fn export_file(
    State(state): State<DataState>,
    identity: Identity,
    Path(job_id): Path<Uuid>,
) -> Result<Response, DataError> {
    let (job, path) = state.service.export_file(&identity, job_id).await?;
    let format = match job.format.as_str() {
        "xlsx" => Format::Xlsx,
        "ndjson" => Format::Json,
        _ => Format::Csv,
    };
    let disposition =
        HeaderValue::from_str(&disposition(&format!("{}-{}", job.kind, job.id), format))
            .map_err(|e| Problem::internal(e.into()))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        crate::export::file_body(path),
    )
        .into_response())
}
