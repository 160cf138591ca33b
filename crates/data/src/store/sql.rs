//! The data store's one body, for both engines ([`evently_core::sql`]): the statements are
//! the same text on SQLite and PostgreSQL.

use async_trait::async_trait;
use evently_core::db::StoreError;
use evently_core::sql::{Db, Row, query};
use uuid::Uuid;

use super::{DataStore, DoneRow, ExportJob, ExportStatus, ImportJob, JobStatus};

/// The data service's tables on either engine: in one SQLite file, or in the `data` schema
/// of a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct SqlDataStore {
    pub(super) db: Db,
}

const JOB_COLUMNS: &str =
    "id, organizer_id, role, file_name, mode, status, report, created_at, finished_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("corrupt {what} column: {e}"))
}

fn job_from_row(row: &Row) -> Result<ImportJob, StoreError> {
    let mode: String = row.get("mode")?;
    let status: String = row.get("status")?;
    Ok(ImportJob {
        id: row.get("id")?,
        organizer_id: row.get("organizer_id")?,
        role: row.get("role")?,
        file_name: row.get("file_name")?,
        mode: mode.parse().map_err(|e| corrupt("mode", e))?,
        status: status.parse().map_err(|e| corrupt("status", e))?,
        report: row.get("report")?,
        created_at: row.get("created_at")?,
        finished_at: row.get("finished_at")?,
    })
}

const EXPORT_COLUMNS: &str =
    "id, organizer_id, kind, format, status, rows_written, error, created_at, finished_at";

fn export_from_row(row: &Row) -> Result<ExportJob, StoreError> {
    let status: String = row.get("status")?;
    Ok(ExportJob {
        id: row.get("id")?,
        organizer_id: row.get("organizer_id")?,
        kind: row.get("kind")?,
        format: row.get("format")?,
        status: status.parse().map_err(|e| corrupt("status", e))?,
        rows_written: row.get("rows_written")?,
        error: row.get("error")?,
        created_at: row.get("created_at")?,
        finished_at: row.get("finished_at")?,
    })
}

#[async_trait]
impl DataStore for SqlDataStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    async fn create_job(&self, job: &ImportJob, source: &[u8]) -> Result<(), StoreError> {
        query(
            "INSERT INTO import_jobs (id, organizer_id, role, file_name, mode, status, source, \
             report, created_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(job.id)
        .bind(job.organizer_id)
        .bind(&job.role)
        .bind(&job.file_name)
        .bind(job.mode.as_str())
        .bind(job.status.as_str())
        .bind(source.to_vec())
        .bind(&job.report)
        .bind(job.created_at)
        .bind(job.finished_at)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn job(&self, id: Uuid) -> Result<Option<ImportJob>, StoreError> {
        query(evently_core::sql::Sql::assert_safe(format!(
            "SELECT {JOB_COLUMNS} FROM import_jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db.reader())
        .await?
        .map(|r| job_from_row(&r))
        .transpose()
    }

    async fn job_source(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        match query("SELECT source FROM import_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.db.reader())
            .await?
        {
            Some(row) => row.get("source"),
            None => Ok(None),
        }
    }

    async fn record_row(&self, job: Uuid, row: &DoneRow) -> Result<(), StoreError> {
        query(
            "INSERT INTO import_rows (job_id, row_number, event_id, outcome) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, row_number) DO NOTHING",
        )
        .bind(job)
        .bind(row.row)
        .bind(row.event_id)
        .bind(row.outcome.as_str())
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn record_rows(&self, job: Uuid, rows: &[DoneRow]) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        for row in rows {
            query(
                "INSERT INTO import_rows (job_id, row_number, event_id, outcome) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (job_id, row_number) DO NOTHING",
            )
            .bind(job)
            .bind(row.row)
            .bind(row.event_id)
            .bind(row.outcome.as_str())
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn done_rows(&self, job: Uuid) -> Result<Vec<DoneRow>, StoreError> {
        query(
            "SELECT row_number, event_id, outcome FROM import_rows WHERE job_id = $1 \
             ORDER BY row_number",
        )
        .bind(job)
        .fetch_all(self.db.reader())
        .await?
        .iter()
        .map(|r| {
            let outcome: String = r.get("outcome")?;
            Ok(DoneRow {
                row: r.get("row_number")?,
                event_id: r.get("event_id")?,
                outcome: outcome.parse().map_err(|e| corrupt("outcome", e))?,
            })
        })
        .collect()
    }

    async fn finish_job(&self, id: Uuid, report: &str, now: i64) -> Result<bool, StoreError> {
        let changed = query(
            "UPDATE import_jobs SET status = $1, report = $2, finished_at = $3, source = NULL \
             WHERE id = $4 AND status = $5",
        )
        .bind(JobStatus::Done.as_str())
        .bind(report)
        .bind(now)
        .bind(id)
        .bind(JobStatus::Running.as_str())
        .execute(self.db.writer())
        .await?;
        Ok(changed == 1)
    }

    async fn running_jobs(&self) -> Result<Vec<Uuid>, StoreError> {
        query("SELECT id FROM import_jobs WHERE status = $1 ORDER BY created_at, id")
            .bind(JobStatus::Running.as_str())
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|r| r.get("id"))
            .collect()
    }

    async fn purge(&self, before: i64) -> Result<u64, StoreError> {
        let mut tx = self.db.begin().await?;
        query(
            "DELETE FROM import_rows WHERE job_id IN (SELECT id FROM import_jobs \
             WHERE status = $1 AND finished_at < $2)",
        )
        .bind(JobStatus::Done.as_str())
        .bind(before)
        .execute(&mut tx)
        .await?;
        let deleted = query("DELETE FROM import_jobs WHERE status = $1 AND finished_at < $2")
            .bind(JobStatus::Done.as_str())
            .bind(before)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn start_export(&self, job: &ExportJob, max_running: i64) -> Result<bool, StoreError> {
        // One statement: the count and the insert see the same rows.
        let inserted = query(
            "INSERT INTO export_jobs (id, organizer_id, kind, format, status, rows_written, \
             error, created_at, finished_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
             WHERE (SELECT COUNT(*) FROM export_jobs WHERE organizer_id = $10 AND status = $11) < $12",
        )
        .bind(job.id)
        .bind(job.organizer_id)
        .bind(&job.kind)
        .bind(&job.format)
        .bind(job.status.as_str())
        .bind(job.rows_written)
        .bind(&job.error)
        .bind(job.created_at)
        .bind(job.finished_at)
        .bind(job.organizer_id)
        .bind(ExportStatus::Running.as_str())
        .bind(max_running)
        .execute(self.db.writer())
        .await?;
        Ok(inserted == 1)
    }

    async fn export_job(&self, id: Uuid) -> Result<Option<ExportJob>, StoreError> {
        query(evently_core::sql::Sql::assert_safe(format!(
            "SELECT {EXPORT_COLUMNS} FROM export_jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.db.reader())
        .await?
        .map(|r| export_from_row(&r))
        .transpose()
    }

    async fn export_progress(&self, id: Uuid, rows: i64) -> Result<(), StoreError> {
        query("UPDATE export_jobs SET rows_written = $1 WHERE id = $2 AND status = $3")
            .bind(rows)
            .bind(id)
            .bind(ExportStatus::Running.as_str())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    async fn finish_export(
        &self,
        id: Uuid,
        status: ExportStatus,
        rows: i64,
        error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE export_jobs SET status = $1, rows_written = $2, error = $3, finished_at = $4 \
             WHERE id = $5 AND status = $6",
        )
        .bind(status.as_str())
        .bind(rows)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(ExportStatus::Running.as_str())
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    async fn fail_running_exports(&self, now: i64) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.db.begin().await?;
        let ids = query("SELECT id FROM export_jobs WHERE status = $1 ORDER BY id")
            .bind(ExportStatus::Running.as_str())
            .fetch_all(&mut tx)
            .await?
            .iter()
            .map(|r| r.get("id"))
            .collect::<Result<Vec<Uuid>, _>>()?;
        query("UPDATE export_jobs SET status = $1, error = $2, finished_at = $3 WHERE status = $4")
            .bind(ExportStatus::Failed.as_str())
            .bind("the export stopped with its process")
            .bind(now)
            .bind(ExportStatus::Running.as_str())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn purge_exports(&self, before: i64) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.db.begin().await?;
        let ids =
            query("SELECT id FROM export_jobs WHERE status <> $1 AND finished_at < $2 ORDER BY id")
                .bind(ExportStatus::Running.as_str())
                .bind(before)
                .fetch_all(&mut tx)
                .await?
                .iter()
                .map(|r| r.get("id"))
                .collect::<Result<Vec<Uuid>, _>>()?;
        query("DELETE FROM export_jobs WHERE status <> $1 AND finished_at < $2")
            .bind(ExportStatus::Running.as_str())
            .bind(before)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(ids)
    }
}
