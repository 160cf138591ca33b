//! Reading an uploaded file into a table of text cells: XLSX (recognised by its content, a
//! zip archive) through calamine, anything else as CSV — UTF-8 with or without a byte-order
//! mark, else Windows-1252 — with its delimiter (`,`, `;` or tab) sniffed from the header
//! line. Rows keep the number a spreadsheet shows them under (the header is row 1).

use evently_core::Problem;
use std::io::{Cursor, Read, Seek};

/// At most this many bytes once an XLSX archive is unpacked (a zip bomb is refused before
/// any of it is read).
pub const MAX_UNPACKED_BYTES: u64 = 64 * 1024 * 1024;
/// At most this many entries in an XLSX archive.
const MAX_ENTRIES: usize = 1000;

/// The cells of an uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `xlsx` or `csv`.
    pub format: &'static str,
    /// `utf-8` or `windows-1252` for CSV; `xlsx` stores text as UTF-8.
    pub encoding: &'static str,
    /// The header cells.
    pub headers: Vec<String>,
    /// Each data row with its number (the header is row 1); rows whose cells are all
    /// empty are left out. A row may have fewer or more cells than the header.
    pub rows: Vec<(u32, Vec<String>)>,
}

fn file_problem(detail: impl Into<String>) -> Problem {
    Problem::invalid_field("/file", detail)
}

/// Reads `bytes`, refusing files with more than `max_rows` data rows.
///
/// # Errors
/// 422 on `/file` for an unreadable file, an empty one, or one beyond the caps.
pub fn read(bytes: &[u8], max_rows: usize) -> Result<Table, Problem> {
    let table = if bytes.starts_with(b"PK\x03\x04") {
        read_xlsx(bytes, max_rows)?
    } else {
        read_csv(bytes, max_rows)?
    };
    if table.headers.iter().all(|h| h.trim().is_empty()) {
        return Err(file_problem("the file has no header row"));
    }
    Ok(table)
}

/// Checks the archive's declared sizes before anything is unpacked.
fn check_archive<R: Read + Seek>(reader: R, max_unpacked: u64) -> Result<(), Problem> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|_| file_problem("not a readable XLSX file (a broken zip archive)"))?;
    if archive.len() > MAX_ENTRIES {
        return Err(file_problem("the XLSX archive has too many parts"));
    }
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|_| file_problem("not a readable XLSX file (a broken zip archive)"))?;
        total = total.saturating_add(entry.size());
    }
    if total > max_unpacked {
        return Err(file_problem(format!(
            "the XLSX file unpacks to more than {} MiB",
            max_unpacked / (1024 * 1024)
        )));
    }
    Ok(())
}

fn read_xlsx(bytes: &[u8], max_rows: usize) -> Result<Table, Problem> {
    use calamine::Reader;
    check_archive(Cursor::new(bytes), MAX_UNPACKED_BYTES)?;
    let mut workbook = calamine::Xlsx::new(Cursor::new(bytes))
        .map_err(|e| file_problem(format!("not a readable XLSX file: {e}")))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| file_problem("the XLSX file has no worksheet"))?
        .map_err(|e| file_problem(format!("the first worksheet cannot be read: {e}")))?;
    let Some((first_row, first_col)) = range.start() else {
        return Err(file_problem("the first worksheet is empty"));
    };
    let mut rows = range.rows();
    // A sheet that starts below row 1 or right of column A keeps the numbers the user sees.
    let mut number = first_row + 1;
    let pad = first_col as usize;
    let mut headers: Vec<String> = vec![String::new(); pad];
    headers.extend(rows.next().unwrap_or_default().iter().map(cell_text));
    let mut out = Vec::new();
    for row in rows {
        number += 1;
        let mut cells: Vec<String> = vec![String::new(); pad];
        cells.extend(row.iter().map(cell_text));
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if out.len() == max_rows {
            return Err(too_many(max_rows));
        }
        out.push((number, cells));
    }
    Ok(Table {
        format: "xlsx",
        encoding: "utf-8",
        headers,
        rows: out,
    })
}

fn too_many(max_rows: usize) -> Problem {
    file_problem(format!("the file has more than {max_rows} rows"))
}

/// The text of a spreadsheet cell: numbers without a needless `.0`, dates and times as
/// RFC 3339 in UTC (a spreadsheet keeps no time zone).
fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => float_text(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
            if ms == 0 {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
            } else {
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
            }
        }
        Data::DateTime(dt) => float_text(dt.as_f64()),
        Data::Error(e) => format!("#{e:?}"),
    }
}

fn float_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

fn read_csv(bytes: &[u8], max_rows: usize) -> Result<Table, Problem> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (text, encoding) = match std::str::from_utf8(bytes) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), "utf-8"),
        Err(_) => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            (text, "windows-1252")
        }
    };
    let delimiter = sniff(&text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut headers = None;
    let mut rows = Vec::new();
    // A spreadsheet shows each line as a row (blank ones too, which the reader skips),
    // except the line breaks inside quoted cells.
    let mut inner_breaks: u64 = 0;
    let raw = text.as_bytes();
    let mut cursor = 0usize;
    let mut breaks: u64 = 0;
    for record in reader.records() {
        let record = record.map_err(|e| file_problem(format!("not a readable CSV file: {e}")))?;
        // The record's first line: past the line breaks the reader has not consumed yet,
        // counting the breaks before it (incrementally, from the previous record).
        let mut start = record
            .position()
            .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX))
            .min(raw.len());
        while start < raw.len() && matches!(raw[start], b'\r' | b'\n') {
            start += 1;
        }
        breaks += raw[cursor..start.max(cursor)]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        cursor = cursor.max(start);
        let line = breaks + 1;
        let number = u32::try_from(line.saturating_sub(inner_breaks)).unwrap_or(u32::MAX);
        let cells: Vec<String> = record.iter().map(str::to_owned).collect();
        inner_breaks += cells
            .iter()
            .map(|c| c.bytes().filter(|b| *b == b'\n').count() as u64)
            .sum::<u64>();
        if headers.is_none() {
            headers = Some(cells);
            continue;
        }
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if rows.len() == max_rows {
            return Err(too_many(max_rows));
        }
        rows.push((number, cells));
    }
    Ok(Table {
        format: "csv",
        encoding,
        headers: headers.ok_or_else(|| file_problem("the file is empty"))?,
        rows,
    })
}

/// The delimiter of the header line: whichever of `,`, `;` and tab occurs most outside
/// quotes (`,` when none does).
fn sniff(text: &str) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '\n' | '\r' if !quoted => break,
            ',' if !quoted => counts[0] += 1,
            ';' if !quoted => counts[1] += 1,
            '\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        [b',', b';', b'\t'][best]
    }
}

/// The spreadsheet letter of column `index` (from 0): `A`, …, `Z`, `AA`, ….
pub fn column_letter(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(char::from(b'A' + u8::try_from(rem).unwrap_or(0)));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_sniffed_from_the_header_line() {
        assert_eq!(sniff("a;b;c\n1,2;3"), b';');
        assert_eq!(sniff("a\tb\n"), b'\t');
        assert_eq!(sniff("\"a;b\",c\n"), b',');
        assert_eq!(sniff("single\n"), b',');
    }

    #[test]
    fn columns_are_lettered_as_spreadsheets_do() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
    }

    #[test]
    fn bom_and_windows_1252_are_read() {
        let t = read(b"\xEF\xBB\xBFname;city\r\nCaf\xC3\xA9;Lyon\r\n", 10).unwrap();
        assert_eq!(t.headers, ["name", "city"]);
        assert_eq!(
            t.rows,
            vec![(2, vec!["Café".to_owned(), "Lyon".to_owned()])]
        );
        assert_eq!(t.encoding, "utf-8");
        let t = read(b"name,city\n\nCaf\xE9,Lyon\n", 10).unwrap();
        assert_eq!(
            t.rows,
            vec![(3, vec!["Café".to_owned(), "Lyon".to_owned()])]
        );
        assert_eq!(t.encoding, "windows-1252");
    }

    #[test]
    fn archives_that_unpack_beyond_the_cap_are_refused_before_unpacking() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("xl/worksheets/sheet1.xml", options).unwrap();
        std::io::Write::write_all(&mut w, &vec![b' '; 3 * 1024 * 1024]).unwrap();
        let bomb = w.finish().unwrap().into_inner();
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let p = check_archive(Cursor::new(&bomb), 2 * 1024 * 1024).unwrap_err();
        assert!(p.errors()[0].detail.contains("unpacks to more than 2 MiB"));
        assert!(check_archive(Cursor::new(&bomb), 4 * 1024 * 1024).is_ok());
    }

    #[test]
    fn row_caps_hold() {
        assert_eq!(read(b"a\n1\n2\n", 2).unwrap().rows.len(), 2);
        assert!(read(b"a\n1\n2\n3\n", 2).is_err());
        assert!(read(b"", 2).is_err());
        assert!(read(b"PK\x03\x04garbage", 2).is_err());
    }
}
