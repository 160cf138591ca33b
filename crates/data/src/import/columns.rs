//! Which column holds which field of `POST /api/events`: header aliases, matched without
//! regard to case, spaces, dashes or underscores; and turning one row into the JSON body
//! that endpoint takes, so that the events service's own parser and rules judge it.

use evently_core::Problem;
use serde_json::{Map, Value};

use super::parse::column_letter;

/// The external id column: not an event field; it names the event across re-imports.
pub const EXTERNAL_ID: &str = "externalId";
/// The field of a column without a header.
pub const UNNAMED: &str = "-";
/// At most this many characters in an external id.
pub const MAX_EXTERNAL_ID: usize = 100;

/// Each field with the header names it is recognised by (normalised: lower case, letters and
/// digits only).
const ALIASES: &[(&str, &[&str])] = &[
    ("eventName", &["eventname", "name", "title", "event"]),
    (
        "eventDate",
        &["eventdate", "date", "startsat", "start", "when"],
    ),
    ("venueName", &["venuename", "venue", "location"]),
    ("venueId", &["venueid"]),
    ("totalSeats", &["totalseats", "seats", "capacity"]),
    ("status", &["status"]),
    (
        "saleStartTime",
        &["salestarttime", "salestart", "salesstart", "onsale"],
    ),
    ("saleEndTime", &["saleendtime", "saleend", "salesend"]),
    ("description", &["description", "details"]),
    ("eventType", &["eventtype", "type", "category"]),
    ("tags", &["tags"]),
    (
        "basePrice",
        &["baseprice", "price", "priceminor", "pricecents"],
    ),
    ("currency", &["currency"]),
    ("timeZone", &["timezone", "tz", "zone"]),
    (EXTERNAL_ID, &["externalid", "extid", "reference", "ref"]),
];

fn normalise(header: &str) -> String {
    header
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The field each column holds, by column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns(pub Vec<&'static str>);

impl Columns {
    /// Maps `headers` to fields.
    ///
    /// # Errors
    /// 422 on `/file` naming every unknown or repeated column.
    pub fn map(headers: &[String]) -> Result<Self, Problem> {
        let mut fields = Vec::with_capacity(headers.len());
        let mut problem: Option<Problem> = None;
        let mut add = |detail: String| {
            problem = Some(match problem.take() {
                None => Problem::invalid_field("/file", detail),
                Some(p) => p.field("/file", detail),
            });
        };
        for (i, header) in headers.iter().enumerate() {
            let key = normalise(header);
            let found = ALIASES
                .iter()
                .find(|(_, names)| names.contains(&key.as_str()))
                .map(|(field, _)| *field);
            let field = match found {
                Some(field) if fields.contains(&field) => {
                    add(format!(
                        "column {} (`{header}`) repeats the field {field}",
                        column_letter(i)
                    ));
                    ""
                }
                Some(field) => field,
                // A column without a header is left out; a row with a value in it is
                // reported (see `UNNAMED`).
                None if key.is_empty() => UNNAMED,
                None => {
                    add(format!(
                        "column {} (`{header}`) is not a known field; known: {}",
                        column_letter(i),
                        ALIASES
                            .iter()
                            .map(|(f, _)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    ""
                }
            };
            fields.push(field);
        }
        match problem {
            Some(p) => Err(p),
            None => Ok(Self(fields)),
        }
    }

    /// The column (from 0) holding `field`.
    pub fn index_of(&self, field: &str) -> Option<usize> {
        self.0.iter().position(|f| *f == field)
    }
}

/// The text a cell means: a leading `'` before a formula character is taken away (it is
/// what exports put there to keep spreadsheets from evaluating the cell).
fn unguard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// A row as the JSON body of `POST /api/events`, and its external id. Empty cells are
/// absent fields; numbers stay numbers (a fraction is left for the parser to refuse);
/// tags are separated by `|` or `,`; a type is lower-cased, a status upper-cased with `_`
/// for spaces and dashes.
pub fn row_body(columns: &Columns, cells: &[String]) -> (Value, Option<String>) {
    let mut body = Map::new();
    let mut external = None;
    for (field, cell) in columns.0.iter().zip(cells) {
        let cell = unguard(cell);
        let trimmed = cell.trim();
        if field.is_empty() || *field == UNNAMED || trimmed.is_empty() {
            continue;
        }
        let value = match *field {
            EXTERNAL_ID => {
                external = Some(trimmed.to_owned());
                continue;
            }
            "totalSeats" | "basePrice" => {
                if let Ok(i) = trimmed.parse::<i64>() {
                    Value::from(i)
                } else if let Some(n) = trimmed
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(serde_json::Number::from_f64)
                {
                    Value::Number(n)
                } else {
                    Value::from(trimmed)
                }
            }
            "tags" => Value::Array(
                trimmed
                    .split(['|', ','])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Value::from)
                    .collect(),
            ),
            // As the API spells them: types in lower case, statuses in upper case.
            "eventType" => Value::from(trimmed.to_lowercase()),
            "status" => Value::from(trimmed.to_uppercase().replace([' ', '-'], "_")),
            "timeZone" => Value::from(trimmed),
            // Free text keeps its inner spacing; the events service trims and checks it.
            _ => Value::from(cell),
        };
        body.insert((*field).to_owned(), value);
    }
    (Value::Object(body), external)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(h: &[&str]) -> Vec<String> {
        h.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn headers_match_their_aliases_whatever_the_case() {
        let c = Columns::map(&headers(&[
            "Event Name",
            "DATE",
            "venue",
            "Price",
            "external_id",
        ]))
        .unwrap();
        assert_eq!(
            c.0,
            [
                "eventName",
                "eventDate",
                "venueName",
                "basePrice",
                "externalId"
            ]
        );
    }

    #[test]
    fn unknown_and_repeated_headers_are_refused() {
        let p = Columns::map(&headers(&["name", "title", "colour"])).unwrap_err();
        assert_eq!(p.errors().len(), 2);
        assert!(p.errors()[0].detail.contains("column B"));
        assert!(p.errors()[1].detail.contains("`colour`"));
    }

    #[test]
    fn rows_become_request_bodies() {
        let c = Columns::map(&headers(&["name", "seats", "price", "tags", "type", "ref"])).unwrap();
        let cells = headers(&["'=1+2", "100", "12.5", "rock| live ,", "Comedy", "A-1"]);
        let (body, external) = row_body(&c, &cells);
        assert_eq!(
            body,
            serde_json::json!({"eventName": "=1+2", "totalSeats": 100, "basePrice": 12.5,
                "tags": ["rock", "live"], "eventType": "comedy"})
        );
        assert_eq!(external.as_deref(), Some("A-1"));
    }
}
