//! The data service's store: one trait, one body for both engines ([`sql::SqlDataStore`]),
//! one conformance suite (in the crate's tests, `tests/api/conformance.rs`, run on both
//! engines).
//!
//! It holds only what the data service owns: import jobs, each with its uploaded file and,
//! once finished, its report, and the rows of a job that reached the events service. Events
//! themselves live in the events service and are written through its API.
//!
//! A row is recorded after its event was written, so a job that stopped half-way (a crash,
//! a restart) resumes after the last recorded row; a row written but not yet recorded is
//! written again with the same derived event id, which the events service turns into an
//! update of the same event, never a second one.

use async_trait::async_trait;
use evently_core::db::StoreError;
use uuid::Uuid;

mod postgres;
pub mod sql;
mod sqlite;

pub use sql::SqlDataStore;

/// How an import treats invalid rows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ImportMode {
    /// Nothing is written if any row is invalid.
    Atomic,
    /// Valid rows are written, invalid ones reported.
    Partial,
}

evently_core::stored_names!(ImportMode, "import mode", {
    Atomic => "atomic",
    Partial => "partial",
});

/// Where an import job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Running, or stopped half-way and waiting to be resumed.
    Running,
    /// Finished; its report is stored.
    Done,
}

evently_core::stored_names!(JobStatus, "import job status", {
    Running => "running",
    Done => "done",
});

/// What a row of an import did to the events service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowOutcome {
    /// A new event.
    Created,
    /// An existing event (same external id) changed.
    Updated,
}

evently_core::stored_names!(RowOutcome, "import row outcome", {
    Created => "created",
    Updated => "updated",
});

/// An import job as stored (without its file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportJob {
    /// Its id.
    pub id: Uuid,
    /// Who runs it.
    pub organizer_id: Uuid,
    /// Their role when they started it (`organizer` or `admin`), so a resumed job acts
    /// with the same rights.
    pub role: String,
    /// The uploaded file's name.
    pub file_name: String,
    /// How it treats invalid rows.
    pub mode: ImportMode,
    /// Where it stands.
    pub status: JobStatus,
    /// The report (JSON), once done.
    pub report: Option<String>,
    /// When it started (epoch ms).
    pub created_at: i64,
    /// When it finished (epoch ms).
    pub finished_at: Option<i64>,
}

/// A row of a job that reached the events service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneRow {
    /// The row number as the user sees it (the header is row 1).
    pub row: i64,
    /// The event it wrote.
    pub event_id: Uuid,
    /// What it did.
    pub outcome: RowOutcome,
}

/// Where an export job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportStatus {
    /// Writing its file.
    Running,
    /// Its file is ready.
    Done,
    /// It failed (or its process stopped while it ran).
    Failed,
}

evently_core::stored_names!(ExportStatus, "export job status", {
    Running => "running",
    Done => "done",
    Failed => "failed",
});

/// An export job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    /// Its id (and its file's name).
    pub id: Uuid,
    /// Who asked for it.
    pub organizer_id: Uuid,
    /// `events` or `orders`.
    pub kind: String,
    /// `csv`, `json` or `xlsx`.
    pub format: String,
    /// Where it stands.
    pub status: ExportStatus,
    /// Rows written so far.
    pub rows_written: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started (epoch ms).
    pub created_at: i64,
    /// When it finished (epoch ms).
    pub finished_at: Option<i64>,
}

/// Everything the data service persists.
#[async_trait]
pub trait DataStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new running job with its uploaded file. [`StoreError::Conflict`] if the id
    /// is taken.
    async fn create_job(&self, job: &ImportJob, source: &[u8]) -> Result<(), StoreError>;

    /// The job with this id.
    async fn job(&self, id: Uuid) -> Result<Option<ImportJob>, StoreError>;

    /// The uploaded file of a job, while it is kept.
    async fn job_source(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;

    /// Records that `row` of `job` wrote its event; recording it again changes nothing.
    async fn record_row(&self, job: Uuid, row: &DoneRow) -> Result<(), StoreError>;

    /// Records every row of `rows` as [`DataStore::record_row`] does, in one transaction (an
    /// atomic import's rows, written together).
    async fn record_rows(&self, job: Uuid, rows: &[DoneRow]) -> Result<(), StoreError>;

    /// The rows of `job` recorded so far, by row number.
    async fn done_rows(&self, job: Uuid) -> Result<Vec<DoneRow>, StoreError>;

    /// Marks a running job done at `now` with its report; `false` if it was not running.
    async fn finish_job(&self, id: Uuid, report: &str, now: i64) -> Result<bool, StoreError>;

    /// The ids of the jobs still running (to resume at start), oldest first.
    async fn running_jobs(&self) -> Result<Vec<Uuid>, StoreError>;

    /// Deletes the finished jobs (with their files and rows) that finished before
    /// `before`; returns how many.
    async fn purge(&self, before: i64) -> Result<u64, StoreError>;

    /// Stores a new running export job unless its organizer already has `max_running`
    /// running; `false` when refused.
    async fn start_export(&self, job: &ExportJob, max_running: i64) -> Result<bool, StoreError>;

    /// The export job with this id.
    async fn export_job(&self, id: Uuid) -> Result<Option<ExportJob>, StoreError>;

    /// Records the rows a running export has written so far.
    async fn export_progress(&self, id: Uuid, rows: i64) -> Result<(), StoreError>;

    /// Ends a running export as `status` (done or failed) at `now`.
    async fn finish_export(
        &self,
        id: Uuid,
        status: ExportStatus,
        rows: i64,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Marks every running export failed (their process stopped); returns their ids.
    async fn fail_running_exports(&self, now: i64) -> Result<Vec<Uuid>, StoreError>;

    /// Deletes the finished exports that finished before `before`; returns their ids (so
    /// their files can be removed).
    async fn purge_exports(&self, before: i64) -> Result<Vec<Uuid>, StoreError>;
}
