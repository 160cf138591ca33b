//! The data service's operations: imports (judge every row, write the valid ones through
//! the events service, report), resuming stopped imports, job reports, and exports.

use evently_core::Problem;
use evently_core::clock::SharedClock;
use evently_core::config::DataConfig;
use evently_core::identity::{Identity, Role};
use evently_core::ids::UserId;
use evently_events::domain::EventFilter;
use evently_events::http::events::EventResponse;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::client::{
    BatchWritten, BookingClient, Buyer, EventsClient, MAX_USER_LOOKUP, UsersClient,
};
use crate::error::DataError;
use crate::export::{self, Cell, Format, Record};
use crate::import::columns::{self, Columns, EXTERNAL_ID, MAX_EXTERNAL_ID, UNNAMED};
use crate::import::parse::{self, Table, column_letter};
use crate::import::{ImportReport, RowError, external_event_id, row_event_id};
use crate::store::{
    DataStore, DoneRow, ExportJob, ExportStatus, ImportJob, ImportMode, JobStatus, RowOutcome,
};

/// At most this many exports run at once per organizer.
pub const MAX_RUNNING_EXPORTS: i64 = 2;

/// What an export job exports.
#[derive(Debug, Clone)]
pub enum ExportSpec {
    /// The events matching a filter (none for `None`).
    Events(Option<EventFilter>),
    /// An event's orders.
    Orders(Uuid),
}

/// An export job as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportJobView {
    /// The job.
    pub job_id: Uuid,
    /// `events` or `orders`.
    pub kind: String,
    /// `csv`, `json` or `xlsx`.
    pub format: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// Rows written so far.
    pub rows_written: i64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the file is downloaded once done (kept 24 hours).
    pub download: String,
}

impl From<ExportJob> for ExportJobView {
    fn from(job: ExportJob) -> Self {
        Self {
            download: format!("/api/data/export/jobs/{}/file", job.id),
            job_id: job.id,
            kind: job.kind,
            format: job.format,
            status: job.status.as_str().into(),
            rows_written: job.rows_written,
            error: job.error,
        }
    }
}

/// An uploaded import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The file's name as uploaded.
    pub file_name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// All or nothing, or the valid rows.
    pub mode: ImportMode,
    /// Judge every row, write nothing.
    pub dry_run: bool,
}

/// An import job as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// The job.
    pub job_id: Uuid,
    /// `running` (or stopped and waiting to be resumed) or `done`.
    pub status: String,
    /// Rows written so far.
    pub rows_written: u32,
    /// The report, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ImportReport>,
}

/// A valid row, ready to be written.
struct Plan {
    row: u32,
    body: serde_json::Value,
    event_id: Uuid,
    external: bool,
}

/// The columns of an events export, in order.
pub const EVENT_HEADERS: &[&str] = &[
    "eventId",
    "eventName",
    "eventDate",
    "venueId",
    "venueName",
    "city",
    "eventType",
    "tags",
    "status",
    "totalSeats",
    "availableSeats",
    "saleStartTime",
    "saleEndTime",
    "basePrice",
    "currency",
    "timeZone",
    "description",
    "organizerId",
    "createdAt",
    "updatedAt",
];

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn opt(s: Option<String>) -> Cell {
    s.map_or(Cell::Empty, Cell::Text)
}

/// An event as an export row.
pub fn event_record(e: EventResponse) -> Result<Record, Problem> {
    let json = serde_json::to_value(&e).map_err(|err| Problem::internal(err.into()))?;
    let cells = vec![
        text(e.event_id.to_string()),
        text(e.event_name),
        text(e.event_date),
        opt(e.venue_id.map(|v| v.to_string())),
        text(e.venue_name),
        opt(e.city),
        opt(e
            .event_type
            .map(|t| json_text(&serde_json::to_value(t).unwrap_or_default()))),
        text(e.tags.join("|")),
        text(e.status.as_str()),
        Cell::Int(e.total_seats),
        Cell::Int(e.available_seats),
        text(e.sale_start_time),
        opt(e.sale_end_time),
        Cell::Int(e.base_price),
        text(e.currency),
        text(e.time_zone),
        opt(e.description),
        text(e.organizer_id.to_string()),
        text(e.created_at),
        text(e.updated_at),
    ];
    Ok(Record {
        cells,
        json: Some(json),
    })
}

fn json_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// The columns of an orders export, in order: one row per ticket, with its order.
pub const ORDER_HEADERS: &[&str] = &[
    "orderId",
    "eventId",
    "buyerId",
    "buyerName",
    "buyerEmail",
    "orderStatus",
    "amount",
    "refundedAmount",
    "currency",
    "orderCreatedAt",
    "cancelReason",
    "ticketId",
    "seatId",
    "ticketCode",
    "ticketStatus",
];

/// An order's rows in an orders export: one per ticket, naming its `buyer` (empty when auth
/// knows no such user, or is not reachable from this process).
pub fn order_records(order: &evently_booking::domain::Order, buyer: Option<&Buyer>) -> Vec<Record> {
    let created = order
        .created_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    order
        .tickets
        .iter()
        .map(|t| {
            let cells = vec![
                text(order.order_id.to_string()),
                text(order.event_id.to_string()),
                text(order.user_id.to_string()),
                opt(buyer.map(|b| b.name.clone())),
                opt(buyer.map(|b| b.email.clone())),
                text(order.status.as_str()),
                Cell::Int(order.amount),
                order.refunded_amount.map_or(Cell::Empty, Cell::Int),
                text(order.currency.clone()),
                text(created.clone()),
                opt(order.cancel_reason.clone()),
                text(t.ticket_id.to_string()),
                text(t.seat_id.clone()),
                text(t.code.clone()),
                text(t.status.as_str()),
            ];
            Record { cells, json: None }
        })
        .collect()
}

/// The errors of `plan`'s row for `problem`.
fn plan_errors(plan: &Plan, problem: &Problem, table: &Table, columns: &Columns) -> Vec<RowError> {
    let cells = table
        .rows
        .iter()
        .find(|(r, _)| *r == plan.row)
        .map(|(_, c)| c.as_slice())
        .unwrap_or_default();
    row_errors(plan.row, problem, columns, cells)
}

/// The buyers of `orders` by id, looked up once for the page (in lookups of at most
/// [`MAX_USER_LOOKUP`] ids); none without `users`.
async fn buyers(
    users: Option<&dyn UsersClient>,
    orders: &[evently_booking::domain::Order],
) -> Result<HashMap<Uuid, Buyer>, Problem> {
    let Some(users) = users else {
        return Ok(HashMap::new());
    };
    let mut ids: Vec<Uuid> = orders.iter().map(|o| o.user_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_USER_LOOKUP) {
        for buyer in users.users(chunk).await? {
            found.insert(buyer.user_id, buyer);
        }
    }
    Ok(found)
}

/// The operations of the data service.
pub struct DataService {
    store: Arc<dyn DataStore>,
    events: Arc<dyn EventsClient>,
    booking: Option<Arc<dyn BookingClient>>,
    users: Option<Arc<dyn UsersClient>>,
    files: std::path::PathBuf,
    clock: SharedClock,
    config: DataConfig,
}

fn now_ms(clock: &SharedClock) -> i64 {
    i64::try_from(clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn require_organizer(caller: &Identity, what: &str) -> Result<(), DataError> {
    if caller.has_any(&[Role::Organizer, Role::Admin]) {
        Ok(())
    } else {
        Err(Problem::forbidden(format!("only organizers and admins can {what}")).into())
    }
}

/// The row errors `problem` stands for: one per invalid field (with its column and cell),
/// or one for the whole row.
fn row_errors(row: u32, problem: &Problem, columns: &Columns, cells: &[String]) -> Vec<RowError> {
    if problem.errors().is_empty() {
        let body = problem.body();
        let message = body["detail"]
            .as_str()
            .or(body["title"].as_str())
            .unwrap_or_default()
            .to_owned();
        return vec![RowError {
            row,
            column: None,
            field: None,
            value: None,
            code: problem.slug().to_owned(),
            message,
        }];
    }
    problem
        .errors()
        .iter()
        .map(|e| {
            let field = e
                .pointer
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let index = columns.index_of(&field);
            RowError {
                row,
                column: index.map(column_letter),
                value: index.and_then(|i| cells.get(i)).cloned(),
                field: (!field.is_empty()).then_some(field),
                code: "invalid".into(),
                message: e.detail.clone(),
            }
        })
        .collect()
}

impl DataService {
    /// The service over `store`, reaching events through `events`.
    pub fn new(
        store: Arc<dyn DataStore>,
        events: Arc<dyn EventsClient>,
        clock: SharedClock,
        config: DataConfig,
    ) -> Self {
        Self {
            store,
            events,
            booking: None,
            users: None,
            files: std::env::temp_dir().join("evently-data-exports"),
            clock,
            config,
        }
    }

    /// Keeps export files in `dir`.
    #[must_use]
    pub fn with_files(mut self, dir: std::path::PathBuf) -> Self {
        self.files = dir;
        self
    }

    /// Reaches booking through `booking` (orders exports need it).
    #[must_use]
    pub fn with_booking(mut self, booking: Arc<dyn BookingClient>) -> Self {
        self.booking = Some(booking);
        self
    }

    /// Reaches auth through `users` (orders exports name their buyers with it).
    #[must_use]
    pub fn with_users(mut self, users: Arc<dyn UsersClient>) -> Self {
        self.users = Some(users);
        self
    }

    /// The store (readiness checks ping it).
    pub fn store(&self) -> &Arc<dyn DataStore> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &DataConfig {
        &self.config
    }

    /// Imports `request` for `caller` (an organizer or admin): reads the file, judges every
    /// row by the rules of `POST /api/events`, and unless it is a dry run writes the valid
    /// rows (all or none in `atomic` mode).
    ///
    /// # Errors
    /// 403 for users, 422 for an unreadable file, unknown columns or too many rows (nothing
    /// recorded); 5xx when the events service fails mid-way (the job stays running and is
    /// resumed, see [`DataService::resume`]).
    pub async fn import(
        &self,
        caller: &Identity,
        request: ImportRequest,
        job_id: Uuid,
    ) -> Result<ImportReport, DataError> {
        require_organizer(caller, "import events")?;
        let table = parse::read(&request.bytes, self.config.max_import_rows)?;
        let columns = Columns::map(&table.headers)?;
        let job = ImportJob {
            id: job_id,
            organizer_id: caller.user_id.0,
            role: caller.role.as_str().to_owned(),
            file_name: request.file_name,
            mode: request.mode,
            status: JobStatus::Running,
            report: None,
            created_at: now_ms(&self.clock),
            finished_at: None,
        };
        // A dry run writes nothing, so it has nothing to resume: its file is not kept.
        let source: &[u8] = if request.dry_run { &[] } else { &request.bytes };
        self.store.create_job(&job, source).await?;
        self.run(&job, caller, &table, &columns, request.dry_run)
            .await
    }

    /// Resumes job `id` where it stopped: the rows recorded as written are not written
    /// again, and a row written but not yet recorded updates the event it created.
    ///
    /// # Errors
    /// 404 for an unknown or finished job; as [`DataService::import`].
    pub async fn resume(&self, id: Uuid) -> Result<ImportReport, DataError> {
        let job = self.store.job(id).await?.ok_or(DataError::JobNotFound)?;
        if job.status != JobStatus::Running {
            return Err(DataError::JobNotFound);
        }
        let source = self
            .store
            .job_source(id)
            .await?
            .ok_or(DataError::JobNotFound)?;
        let caller = Identity {
            user_id: UserId(job.organizer_id),
            role: job.role.parse().unwrap_or(Role::Organizer),
        };
        let table = parse::read(&source, self.config.max_import_rows)?;
        let columns = Columns::map(&table.headers)?;
        self.run(&job, &caller, &table, &columns, false).await
    }

    /// Resumes every job still running (after a restart); failures are logged.
    pub async fn resume_all(&self) {
        let jobs = match self.store.running_jobs().await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "listing import jobs to resume failed");
                return;
            }
        };
        for id in jobs {
            match self.resume(id).await {
                Ok(report) => tracing::info!(
                    job.id = %id, created = report.created, updated = report.updated,
                    failed = report.failed, "import resumed and finished"
                ),
                Err(e) => tracing::warn!(job.id = %id, error = %e, "resuming an import failed"),
            }
        }
    }

    /// Judges every row: the valid ones' plans, and every failure.
    async fn judge(
        &self,
        job: &ImportJob,
        caller: &Identity,
        table: &Table,
        columns: &Columns,
    ) -> Result<(Vec<Plan>, Vec<RowError>, u32), DataError> {
        let mut plans = Vec::new();
        let mut errors = Vec::new();
        let mut failed_rows = 0u32;
        let mut seen: HashMap<String, u32> = HashMap::new();
        // Each row with its cells, external id and the failures found so far; its body.
        let mut judged = Vec::with_capacity(table.rows.len());
        let mut bodies = Vec::with_capacity(table.rows.len());
        for (row, cells) in &table.rows {
            let row = *row;
            let mut failures = Vec::new();
            for (i, cell) in cells.iter().enumerate() {
                let stray = match columns.0.get(i) {
                    None => Some(("extra-cell", "a value beyond the last column with a header")),
                    Some(&UNNAMED) => {
                        Some(("unnamed-column", "a value in a column without a header"))
                    }
                    Some(_) => None,
                };
                if let Some((code, message)) = stray
                    && !cell.trim().is_empty()
                {
                    failures.push(RowError {
                        row,
                        column: Some(column_letter(i)),
                        field: None,
                        value: Some(cell.clone()),
                        code: code.into(),
                        message: message.into(),
                    });
                }
            }
            let (body, external) = columns::row_body(columns, cells);
            let external_index = columns.index_of(EXTERNAL_ID);
            let external_error = |message: String, code: &str| RowError {
                row,
                column: external_index.map(column_letter),
                field: Some(EXTERNAL_ID.into()),
                value: external.clone(),
                code: code.into(),
                message,
            };
            if let Some(ext) = &external {
                if ext.chars().count() > MAX_EXTERNAL_ID || ext.chars().any(char::is_control) {
                    failures.push(external_error(
                        format!("must be at most {MAX_EXTERNAL_ID} characters, without control characters"),
                        "invalid",
                    ));
                } else if let Some(first) = seen.get(ext) {
                    failures.push(external_error(
                        format!("repeats the externalId of row {first}"),
                        "duplicate",
                    ));
                } else {
                    seen.insert(ext.clone(), row);
                }
            }
            judged.push((row, cells, external, failures));
            bodies.push(body);
        }
        // Every row as `POST /api/events` would judge it, in one call.
        for (index, problem) in self.events.check_all(caller, &bodies).await? {
            if let Some((row, cells, _, failures)) = judged.get_mut(index) {
                failures.extend(row_errors(*row, &problem, columns, cells));
            }
        }
        for ((row, _, external, failures), body) in judged.into_iter().zip(bodies) {
            if failures.is_empty() {
                let (event_id, external) = match &external {
                    Some(ext) => (external_event_id(job.organizer_id, ext), true),
                    None => (row_event_id(job.id, row), false),
                };
                plans.push(Plan {
                    row,
                    body,
                    event_id,
                    external,
                });
            } else {
                failed_rows += 1;
                errors.extend(failures);
            }
        }
        Ok((plans, errors, failed_rows))
    }

    async fn run(
        &self,
        job: &ImportJob,
        caller: &Identity,
        table: &Table,
        columns: &Columns,
        dry_run: bool,
    ) -> Result<ImportReport, DataError> {
        let (plans, mut errors, mut failed) = self.judge(job, caller, table, columns).await?;
        let mut created = 0u32;
        let mut updated = 0u32;
        let write = !dry_run && (job.mode == ImportMode::Partial || errors.is_empty());
        if write {
            let done: BTreeMap<i64, DoneRow> = self
                .store
                .done_rows(job.id)
                .await?
                .into_iter()
                .map(|d| (d.row, d))
                .collect();
            if job.mode == ImportMode::Atomic {
                let outcomes = self
                    .write_all(job, caller, table, columns, &plans, &done, &mut errors)
                    .await?;
                match outcomes {
                    Some(outcomes) => {
                        for outcome in outcomes {
                            match outcome {
                                RowOutcome::Created => created += 1,
                                RowOutcome::Updated => updated += 1,
                            }
                        }
                    }
                    None => {
                        failed = u32::try_from(
                            errors
                                .iter()
                                .map(|e| e.row)
                                .collect::<std::collections::BTreeSet<_>>()
                                .len(),
                        )
                        .unwrap_or(u32::MAX);
                    }
                }
            } else {
                for plan in plans {
                    let outcome = match done.get(&i64::from(plan.row)) {
                        Some(d) => d.outcome,
                        None => match self.events.upsert(caller, plan.event_id, &plan.body).await {
                            Ok(was_created) => {
                                // A row keyed by this job made its event, whether in this run or
                                // in one that stopped before recording it.
                                let outcome = if was_created || !plan.external {
                                    RowOutcome::Created
                                } else {
                                    RowOutcome::Updated
                                };
                                self.store
                                    .record_row(
                                        job.id,
                                        &DoneRow {
                                            row: i64::from(plan.row),
                                            event_id: plan.event_id,
                                            outcome,
                                        },
                                    )
                                    .await?;
                                outcome
                            }
                            Err(problem) if problem.status().is_server_error() => {
                                return Err(problem.into());
                            }
                            Err(problem) => {
                                failed += 1;
                                errors.extend(plan_errors(&plan, &problem, table, columns));
                                continue;
                            }
                        },
                    };
                    match outcome {
                        RowOutcome::Created => created += 1,
                        RowOutcome::Updated => updated += 1,
                    }
                }
            }
            errors.sort_by_key(|e| e.row);
        }
        let report = ImportReport {
            job_id: job.id,
            dry_run,
            mode: job.mode,
            format: table.format.into(),
            encoding: table.encoding.into(),
            rows: u32::try_from(table.rows.len()).unwrap_or(u32::MAX),
            created,
            updated,
            failed,
            errors,
        };
        let json = serde_json::to_string(&report).map_err(|e| Problem::internal(e.into()))?;
        self.store
            .finish_job(job.id, &json, now_ms(&self.clock))
            .await?;
        metrics::counter!("evently_data_import_rows_total", "outcome" => "created")
            .increment(u64::from(created));
        metrics::counter!("evently_data_import_rows_total", "outcome" => "updated")
            .increment(u64::from(updated));
        metrics::counter!("evently_data_import_rows_total", "outcome" => "failed")
            .increment(u64::from(failed));
        tracing::info!(
            job.id = %job.id, dry_run, rows = report.rows, created, updated, failed,
            "import finished"
        );
        Ok(report)
    }

    /// Writes every row of `plans` not yet `done` in one batch (an atomic import): the
    /// outcome of every row of `plans`, or `None` when the events service refused some rows
    /// and wrote nothing (their errors are added to `errors`).
    #[expect(clippy::too_many_arguments)]
    async fn write_all(
        &self,
        job: &ImportJob,
        caller: &Identity,
        table: &Table,
        columns: &Columns,
        plans: &[Plan],
        done: &BTreeMap<i64, DoneRow>,
        errors: &mut Vec<RowError>,
    ) -> Result<Option<Vec<RowOutcome>>, DataError> {
        let pending: Vec<&Plan> = plans
            .iter()
            .filter(|p| !done.contains_key(&i64::from(p.row)))
            .collect();
        let mut written = Vec::with_capacity(pending.len());
        if !pending.is_empty() {
            let rows: Vec<(Uuid, serde_json::Value)> = pending
                .iter()
                .map(|p| (p.event_id, p.body.clone()))
                .collect();
            match self.events.upsert_all(caller, &rows).await {
                Ok(BatchWritten::Written(flags)) => {
                    for (plan, was_created) in pending.iter().zip(flags) {
                        // As for a single row: a row keyed by this job made its event.
                        let outcome = if was_created || !plan.external {
                            RowOutcome::Created
                        } else {
                            RowOutcome::Updated
                        };
                        written.push(DoneRow {
                            row: i64::from(plan.row),
                            event_id: plan.event_id,
                            outcome,
                        });
                    }
                    self.store.record_rows(job.id, &written).await?;
                }
                Ok(BatchWritten::Refused(refused)) => {
                    for (index, problem) in refused {
                        if let Some(plan) = pending.get(index) {
                            errors.extend(plan_errors(plan, &problem, table, columns));
                        }
                    }
                    return Ok(None);
                }
                // The batch refused whole (the events kept changing, or it is beyond the
                // events service's caps): nothing was written, and every row says why.
                Err(problem) if problem.status().is_client_error() => {
                    for plan in &pending {
                        errors.extend(plan_errors(plan, &problem, table, columns));
                    }
                    return Ok(None);
                }
                Err(problem) => return Err(problem.into()),
            }
        }
        let written: BTreeMap<i64, RowOutcome> =
            written.into_iter().map(|d| (d.row, d.outcome)).collect();
        Ok(Some(
            plans
                .iter()
                .filter_map(|p| {
                    let row = i64::from(p.row);
                    done.get(&row)
                        .map(|d| d.outcome)
                        .or_else(|| written.get(&row).copied())
                })
                .collect(),
        ))
    }

    /// Job `id` as `caller` (its owner or an admin) sees it.
    ///
    /// # Errors
    /// 404 for an unknown job or someone else's.
    pub async fn job(&self, caller: &Identity, id: Uuid) -> Result<JobView, DataError> {
        let job = self.store.job(id).await?.ok_or(DataError::JobNotFound)?;
        if job.organizer_id != caller.user_id.0 && caller.role != Role::Admin {
            return Err(DataError::JobNotFound);
        }
        let report = job
            .report
            .as_deref()
            .map(serde_json::from_str::<ImportReport>)
            .transpose()
            .map_err(|e| Problem::internal(e.into()))?;
        let rows_written = match &report {
            Some(r) => r.created + r.updated,
            None => u32::try_from(self.store.done_rows(id).await?.len()).unwrap_or(u32::MAX),
        };
        Ok(JobView {
            job_id: id,
            status: job.status.as_str().into(),
            rows_written,
            report,
        })
    }

    /// Deletes the jobs that finished more than `data.keep_hours` ago.
    ///
    /// # Errors
    /// Store failures.
    pub async fn purge(&self) -> Result<u64, DataError> {
        let keep = i64::try_from(self.config.keep_hours).unwrap_or(24) * 3_600_000;
        let before = now_ms(&self.clock) - keep;
        for id in self.store.purge_exports(before).await? {
            self.remove_files(id);
        }
        Ok(self.store.purge(before).await?)
    }

    /// Resumes stopped jobs once, then purges expired ones every hour until `shutdown`.
    pub async fn run_background(self: Arc<Self>, shutdown: CancellationToken) {
        // Exports that were running when the process stopped cannot be continued.
        match self.store.fail_running_exports(now_ms(&self.clock)).await {
            Ok(ids) => {
                for id in ids {
                    self.remove_files(id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "failing interrupted exports failed"),
        }
        self.resume_all().await;
        loop {
            match self.purge().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "expired import jobs purged"),
                Err(e) => tracing::warn!(error = %e, "purging import jobs failed"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    }

    /// The export of `spec` in `format`, streamed, for `caller`: events (organizers and
    /// admins) or an event's orders (its organizer or an admin; read from booking page by
    /// page by order id, never by offset).
    ///
    /// # Errors
    /// 403 for users exporting events; 404 for an unknown event or one the caller does not
    /// manage; 503 when booking is neither in this process nor reachable.
    pub async fn export(
        &self,
        caller: &Identity,
        spec: ExportSpec,
        format: Format,
    ) -> Result<axum::body::Body, DataError> {
        let (pages, headers) = self.pages(caller, &spec).await?;
        Ok(export::body(format, headers, pages))
    }

    fn file_path(&self, id: Uuid, format: &str, partial: bool) -> std::path::PathBuf {
        let suffix = if partial { ".part" } else { "" };
        self.files.join(format!("{id}.{format}{suffix}"))
    }

    fn remove_files(&self, id: Uuid) {
        for format in [Format::Csv, Format::Json, Format::Xlsx] {
            for partial in [false, true] {
                let _ = std::fs::remove_file(self.file_path(id, format.extension(), partial));
            }
        }
    }

    /// Pages of export rows for `spec`, read in the background.
    async fn pages(
        &self,
        caller: &Identity,
        spec: &ExportSpec,
    ) -> Result<(mpsc::Receiver<export::Page>, &'static [&'static str]), DataError> {
        let (tx, rx) = mpsc::channel(export::PAGES_IN_FLIGHT);
        let size = self.config.export_page_size;
        match spec.clone() {
            ExportSpec::Events(filter) => {
                require_organizer(caller, "export events")?;
                let events = self.events.clone();
                tokio::spawn(async move {
                    let Some(filter) = filter else { return };
                    let mut page = 0;
                    loop {
                        let rows = events.list(&filter, page, size).await.and_then(|rows| {
                            rows.into_iter()
                                .map(event_record)
                                .collect::<Result<Vec<_>, _>>()
                        });
                        let last = rows.as_ref().map_or(true, |r| r.len() < size as usize);
                        if tx.send(rows).await.is_err() || last {
                            break;
                        }
                        page += 1;
                    }
                });
                Ok((rx, EVENT_HEADERS))
            }
            ExportSpec::Orders(event_id) => {
                let booking = self.booking.clone().ok_or_else(|| {
                    Problem::unavailable(
                        "booking neither runs in this process nor has a URL (data.booking_url)",
                        5,
                    )
                })?;
                // The first page is read before answering, so that a refusal is a problem.
                let first = booking.event_orders(caller, event_id, None, size).await?;
                let caller = *caller;
                let users = self.users.clone();
                tokio::spawn(async move {
                    let mut page = Ok(first);
                    loop {
                        let orders = match page {
                            Ok(orders) => orders,
                            Err(problem) => {
                                let _ = tx.send(Err(problem)).await;
                                break;
                            }
                        };
                        let next = (orders.len() >= size as usize)
                            .then(|| orders.last().map(|o| o.order_id.0))
                            .flatten();
                        // The next page is read from booking while this one's buyers are
                        // looked up in auth.
                        let following = async {
                            match next {
                                Some(after) => Some(
                                    booking
                                        .event_orders(&caller, event_id, Some(after), size)
                                        .await,
                                ),
                                None => None,
                            }
                        };
                        let (found, following) =
                            tokio::join!(buyers(users.as_deref(), &orders), following);
                        let rows: export::Page = found.map(|buyers| {
                            orders
                                .iter()
                                .flat_map(|o| order_records(o, buyers.get(&o.user_id)))
                                .collect()
                        });
                        let failed = rows.is_err();
                        if tx.send(rows).await.is_err() || failed {
                            break;
                        }
                        let Some(following) = following else { break };
                        page = following;
                    }
                });
                Ok((rx, ORDER_HEADERS))
            }
        }
    }

    /// Starts an export of `spec` in `format` as a background job for `caller`; its file
    /// is downloaded once done.
    ///
    /// # Errors
    /// As the streamed exports; 409 when the caller already has
    /// [`MAX_RUNNING_EXPORTS`] running.
    pub async fn start_export(
        self: &Arc<Self>,
        caller: &Identity,
        spec: ExportSpec,
        format: Format,
    ) -> Result<ExportJobView, DataError> {
        let (mut pages, headers) = self.pages(caller, &spec).await?;
        let job = ExportJob {
            id: Uuid::now_v7(),
            organizer_id: caller.user_id.0,
            kind: match spec {
                ExportSpec::Events(_) => "events".into(),
                ExportSpec::Orders(_) => "orders".into(),
            },
            format: format.extension().into(),
            status: ExportStatus::Running,
            rows_written: 0,
            error: None,
            created_at: now_ms(&self.clock),
            finished_at: None,
        };
        if !self.store.start_export(&job, MAX_RUNNING_EXPORTS).await? {
            return Err(Problem::conflict("too-many-exports", "Too many exports")
                .detail(format!(
                    "at most {MAX_RUNNING_EXPORTS} exports run at once; wait for one to finish"
                ))
                .into());
        }
        std::fs::create_dir_all(&self.files).map_err(|e| Problem::internal(e.into()))?;
        let partial = self.file_path(job.id, &job.format, true);
        let done = self.file_path(job.id, &job.format, false);
        // Rows pass through a counting stage that records progress once per page.
        let (tx, counted) = mpsc::channel(export::PAGES_IN_FLIGHT);
        let service = self.clone();
        let id = job.id;
        tokio::spawn(async move {
            let mut rows = 0i64;
            while let Some(page) = pages.recv().await {
                if let Ok(records) = &page {
                    rows += i64::try_from(records.len()).unwrap_or(0);
                }
                if tx.send(page).await.is_err() {
                    break;
                }
                let _ = service.store.export_progress(id, rows).await;
            }
        });
        let service = self.clone();
        tokio::spawn(async move {
            let written = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
                let mut file = std::io::BufWriter::new(std::fs::File::create(&partial)?);
                let rows = export::write(format, headers, counted, &mut file)?;
                std::io::Write::flush(&mut file)?;
                drop(file);
                std::fs::rename(&partial, &done)?;
                Ok(rows)
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
            let now = now_ms(&service.clock);
            let result = match written {
                Ok(rows) => {
                    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
                    service
                        .store
                        .finish_export(id, ExportStatus::Done, rows, None, now)
                        .await
                }
                Err(e) => {
                    tracing::warn!(job.id = %id, error = %e, "export failed");
                    service.remove_files(id);
                    service
                        .store
                        .finish_export(id, ExportStatus::Failed, 0, Some("the export failed"), now)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::warn!(job.id = %id, error = %e, "recording an export's end failed");
            }
        });
        Ok(job.into())
    }

    /// Export job `id` as `caller` (its owner or an admin) sees it.
    ///
    /// # Errors
    /// 404 for an unknown job or someone else's.
    pub async fn export_job(&self, caller: &Identity, id: Uuid) -> Result<ExportJob, DataError> {
        let job = self
            .store
            .export_job(id)
            .await?
            .ok_or(DataError::JobNotFound)?;
        if job.organizer_id != caller.user_id.0 && caller.role != Role::Admin {
            return Err(DataError::JobNotFound);
        }
        Ok(job)
    }

    /// The file of export job `id` for `caller`, once done.
    ///
    /// # Errors
    /// 404 for an unknown, someone else's or expired job; 409 while it runs (with its
    /// progress); 410 when it failed.
    pub async fn export_file(
        &self,
        caller: &Identity,
        id: Uuid,
    ) -> Result<(ExportJob, std::path::PathBuf), DataError> {
        let job = self.export_job(caller, id).await?;
        match job.status {
            ExportStatus::Running => Err(Problem::conflict("export-running", "Export running")
                .detail("the file is not ready yet; poll the job")
                .extension("status", "running".into())
                .extension("rowsWritten", job.rows_written.into())
                .into()),
            ExportStatus::Failed => Err(Problem::new(
                axum::http::StatusCode::GONE,
                "export-failed",
                "Export failed",
            )
            .detail(job.error.clone().unwrap_or_default())
            .into()),
            ExportStatus::Done => {
                let path = self.file_path(id, &job.format, false);
                if path.exists() {
                    Ok((job, path))
                } else {
                    Err(DataError::JobNotFound)
                }
            }
        }
    }
}
