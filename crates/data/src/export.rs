//! Streamed exports: rows go from their source to the response body through bounded
//! channels, so memory stays constant whatever the number of rows. CSV and NDJSON are
//! written as the rows arrive; XLSX through rust_xlsxwriter's constant-memory worksheet
//! (rows are flushed to a temporary file as they are written) and streamed out as the
//! archive is assembled.
//!
//! Spreadsheets evaluate a cell that starts with `=`, `+`, `-`, `@`, tab or carriage return
//! as a formula: CSV text cells starting so get a leading `'` ([`guard`]), and XLSX text is
//! always written as a string cell, never as a formula.

use axum::body::Body;
use axum::body::Bytes;
use evently_core::Problem;
use serde::Deserialize;
use std::borrow::Cow;
use std::io::Write;
use tokio::sync::mpsc;
use utoipa::ToSchema;

/// Bytes gathered before a chunk is handed to the response body.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting for the client at most.
const CHUNKS_IN_FLIGHT: usize = 8;
/// Pages of rows waiting for the writer at most.
pub const PAGES_IN_FLIGHT: usize = 2;

/// An export's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values, UTF-8 with a byte-order mark (so spreadsheets read it as
    /// UTF-8), a header row.
    Csv,
    /// Newline-delimited JSON: one object per line.
    Json,
    /// An Excel workbook with one worksheet and a header row.
    Xlsx,
}

impl Format {
    /// The media type of the body.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/x-ndjson",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "ndjson",
            Format::Xlsx => "xlsx",
        }
    }
}

/// One cell of an exported row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text (guarded against formula evaluation).
    Text(String),
    /// A whole number (money is in minor units, with a currency column beside it).
    Int(i64),
    /// Nothing.
    Empty,
}

/// One exported row: its cells (CSV, XLSX) and its JSON object (NDJSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The cells, in header order.
    pub cells: Vec<Cell>,
    /// The object written as one NDJSON line; `None` for the cells named by their headers
    /// (empty cells left out), built only when NDJSON is written.
    pub json: Option<serde_json::Value>,
}

/// A record's cells as a JSON object keyed by `headers`, empty cells left out.
struct Named<'a> {
    headers: &'a [&'a str],
    cells: &'a [Cell],
}

impl serde::Serialize for Named<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (header, cell) in self.headers.iter().zip(self.cells) {
            match cell {
                Cell::Text(t) => map.serialize_entry(header, t)?,
                Cell::Int(i) => map.serialize_entry(header, i)?,
                Cell::Empty => {}
            }
        }
        map.end()
    }
}

/// A page of rows, or why the source failed.
pub type Page = Result<Vec<Record>, Problem>;

/// `text` as a CSV cell that no spreadsheet evaluates: a leading `'` before `=`, `+`, `-`,
/// `@`, tab or carriage return.
pub fn guard(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// A `Write` that hands the bytes to the response body in chunks, waiting while the client
/// is behind (on a blocking thread).
struct ChannelWriter {
    buffer: Vec<u8>,
    out: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.out
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The response body of an export in `format` with `headers`, its rows read from `pages`.
/// The writing runs on a blocking thread; a failure of the source or the writer ends the
/// body with an error (the client sees a cut-off transfer, never a file that looks whole).
pub fn body(format: Format, headers: &'static [&'static str], pages: mpsc::Receiver<Page>) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            buffer: Vec::with_capacity(CHUNK),
            out: tx,
        };
        if let Err(e) = write(format, headers, pages, &mut out) {
            tracing::warn!(error = %e, "export stopped");
            let _ = errors.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

/// Writes an export in `format` with `headers` to `out`, its rows read from `pages` (on a
/// blocking thread: it waits for pages). Returns the number of rows.
///
/// # Errors
/// When the source fails or `out` cannot be written.
pub fn write<W: Write + Send>(
    format: Format,
    headers: &[&str],
    pages: mpsc::Receiver<Page>,
    out: &mut W,
) -> anyhow::Result<u64> {
    match format {
        Format::Csv => write_csv(headers, pages, out),
        Format::Json => write_ndjson(headers, pages, out),
        Format::Xlsx => write_xlsx(headers, pages, out),
    }
}

/// The response body of the file at `path`, read on a blocking thread in chunks.
pub fn file_body(path: std::path::PathBuf) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            buffer: Vec::with_capacity(CHUNK),
            out: tx,
        };
        let copied = std::fs::File::open(&path)
            .and_then(|mut file| std::io::copy(&mut file, &mut out))
            .and_then(|_| out.flush());
        if let Err(e) = copied {
            let _ = errors.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

fn next_page(pages: &mut mpsc::Receiver<Page>) -> anyhow::Result<Option<Vec<Record>>> {
    match pages.blocking_recv() {
        None => Ok(None),
        Some(Ok(rows)) => Ok(Some(rows)),
        Some(Err(problem)) => Err(anyhow::anyhow!(
            "reading the rows failed: {}",
            problem.slug()
        )),
    }
}

fn write_csv<W: Write>(
    headers: &[&str],
    mut pages: mpsc::Receiver<Page>,
    out: &mut W,
) -> anyhow::Result<u64> {
    let mut count = 0u64;
    out.write_all(b"\xEF\xBB\xBF")?;
    let mut writer = csv::WriterBuilder::new()
        .buffer_capacity(CHUNK)
        .from_writer(out);
    writer.write_record(headers)?;
    while let Some(rows) = next_page(&mut pages)? {
        let mut line: Vec<Cow<'_, str>> = Vec::with_capacity(headers.len());
        for record in &rows {
            line.clear();
            line.extend(record.cells.iter().map(|cell| match cell {
                Cell::Text(t) => guard(t),
                Cell::Int(i) => Cow::Owned(i.to_string()),
                Cell::Empty => Cow::Borrowed(""),
            }));
            writer.write_record(line.iter().map(|c| c.as_bytes()))?;
        }
        count += rows.len() as u64;
    }
    writer.flush()?;
    drop(writer);
    Ok(count)
}

fn write_ndjson<W: Write>(
    headers: &[&str],
    mut pages: mpsc::Receiver<Page>,
    out: &mut W,
) -> anyhow::Result<u64> {
    let mut count = 0u64;
    let mut out = std::io::BufWriter::with_capacity(CHUNK, out);
    while let Some(rows) = next_page(&mut pages)? {
        for record in &rows {
            match &record.json {
                Some(json) => serde_json::to_writer(&mut out, json)?,
                None => serde_json::to_writer(
                    &mut out,
                    &Named {
                        headers,
                        cells: &record.cells,
                    },
                )?,
            }
            out.write_all(b"\n")?;
        }
        count += rows.len() as u64;
    }
    out.flush()?;
    Ok(count)
}

fn write_xlsx<W: Write + Send>(
    headers: &[&str],
    mut pages: mpsc::Receiver<Page>,
    out: &mut W,
) -> anyhow::Result<u64> {
    /// Excel's last row (from 0).
    const MAX_ROW: u32 = 1_048_575;
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory()?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (col, header) in headers.iter().enumerate() {
        sheet.write_string_with_format(0, u16::try_from(col)?, *header, &bold)?;
    }
    let mut row: u32 = 0;
    while let Some(rows) = next_page(&mut pages)? {
        for record in &rows {
            row += 1;
            if row > MAX_ROW {
                anyhow::bail!("more rows than a worksheet holds; export as CSV");
            }
            for (col, cell) in record.cells.iter().enumerate() {
                let col = u16::try_from(col)?;
                match cell {
                    // Always a string cell: text is never evaluated as a formula. A
                    // spreadsheet has no empty text cell.
                    Cell::Text(t) if t.is_empty() => {}
                    Cell::Text(t) => {
                        sheet.write_string(row, col, t)?;
                    }
                    #[allow(clippy::cast_precision_loss)]
                    Cell::Int(i) => {
                        sheet.write_number(row, col, *i as f64)?;
                    }
                    Cell::Empty => {}
                }
            }
        }
    }
    workbook.save_to_writer(&mut *out)?;
    out.flush()?;
    Ok(u64::from(row))
}

/// `Content-Disposition` for a download named `stem` + the format's extension.
pub fn disposition(stem: &str, format: Format) -> String {
    format!("attachment; filename=\"{stem}.{}\"", format.extension())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_guarded() {
        for t in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(guard(t), format!("'{t}"));
        }
        for t in ["plain", "1-2", "", "'=already"] {
            assert_eq!(guard(t), t);
        }
    }

    #[test]
    fn ndjson_names_the_cells_by_their_headers_unless_a_record_brings_its_own_object() {
        let (tx, rx) = mpsc::channel(2);
        let page = vec![
            Record {
                cells: vec![Cell::Text("=x".into()), Cell::Int(3), Cell::Empty],
                json: None,
            },
            Record {
                cells: vec![Cell::Empty, Cell::Empty, Cell::Empty],
                json: Some(serde_json::json!({"tags": ["a", "b"]})),
            },
        ];
        tx.try_send(Ok(page)).unwrap();
        drop(tx);
        let mut out = Vec::new();

        let rows = write(Format::Json, &["name", "count", "note"], rx, &mut out).unwrap();

        assert_eq!(rows, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"name\":\"=x\",\"count\":3}\n{\"tags\":[\"a\",\"b\"]}\n"
        );
    }
}
