//! Importing events from a CSV or XLSX file: read the table ([`parse`]), map its columns
//! ([`columns`]), judge every row by the events service's own rules, then write the valid
//! rows through the events service — all of them or none (`atomic`), or the valid ones
//! (`partial`) — and report every row that failed, numbered as the user sees it.
//!
//! Each row's event id is derived from a key: the job and row number, or the organizer and
//! the row's external id. Writing a row twice therefore updates the same event, so a job
//! that stopped half-way resumes without duplicates, and re-importing a file with external
//! ids updates the events it created before.

pub mod columns;
pub mod parse;

use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::ImportMode;

/// One failed row (or cell) of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowError {
    /// The row as a spreadsheet shows it (the header is row 1).
    pub row: u32,
    /// The column's letter (`A`, `B`, …), when one column is at fault.
    pub column: Option<String>,
    /// The field of `POST /api/events` (or `externalId`), when one is at fault.
    pub field: Option<String>,
    /// The cell's text, when one cell is at fault.
    pub value: Option<String>,
    /// A stable code: `invalid` (a field the events service refused), `duplicate` (an
    /// external id repeated in the file), `extra-cell`, `unnamed-column`, or the slug of the
    /// events service's problem (`forbidden`, `capacity-locked`, …).
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// The job (its report stays downloadable for 24 hours).
    pub job_id: Uuid,
    /// Whether nothing was to be written.
    pub dry_run: bool,
    /// `atomic` or `partial`.
    pub mode: ImportMode,
    /// `csv` or `xlsx`.
    pub format: String,
    /// `utf-8` or `windows-1252`.
    pub encoding: String,
    /// Data rows read (empty rows left out).
    pub rows: u32,
    /// Events created.
    pub created: u32,
    /// Events updated (rows whose external id was imported before).
    pub updated: u32,
    /// Rows that failed.
    pub failed: u32,
    /// Every failure, by row.
    pub errors: Vec<RowError>,
}

/// The id of the event written by `row` of job `job`.
pub fn row_event_id(job: Uuid, row: u32) -> Uuid {
    derive(&[b"evently-import-row", job.as_bytes(), &row.to_be_bytes()])
}

/// The id of the event `organizer` imports under `external_id`.
pub fn external_event_id(organizer: Uuid, external_id: &str) -> Uuid {
    derive(&[
        b"evently-import-external",
        organizer.as_bytes(),
        external_id.as_bytes(),
    ])
}

fn derive(parts: &[&[u8]]) -> Uuid {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The report's errors as CSV (`row,column,field,value,code,message`), every text cell
/// guarded against formula evaluation.
///
/// # Errors
/// Never in practice (writing to memory).
pub fn report_csv(report: &ImportReport) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["row", "column", "field", "value", "code", "message"])?;
    for e in &report.errors {
        writer.write_record([
            e.row.to_string(),
            crate::export::guard(e.column.as_deref().unwrap_or_default()).into_owned(),
            crate::export::guard(e.field.as_deref().unwrap_or_default()).into_owned(),
            crate::export::guard(e.value.as_deref().unwrap_or_default()).into_owned(),
            crate::export::guard(&e.code).into_owned(),
            crate::export::guard(&e.message).into_owned(),
        ])?;
    }
    writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_depend_on_every_part() {
        let job = Uuid::from_u128(1);
        assert_eq!(row_event_id(job, 2), row_event_id(job, 2));
        assert_ne!(row_event_id(job, 2), row_event_id(job, 3));
        assert_ne!(row_event_id(job, 2), row_event_id(Uuid::from_u128(2), 2));
        let org = Uuid::from_u128(7);
        assert_ne!(
            external_event_id(org, "a"),
            external_event_id(Uuid::from_u128(8), "a")
        );
        assert_eq!(external_event_id(org, "a"), external_event_id(org, "a"));
    }
}
