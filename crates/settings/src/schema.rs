//! The JSON Schemas of the namespaces (draft 2020-12), embedded in the binary and compiled
//! once at start, with `format` validated (2020-12 treats it as an annotation unless asked).
//!
//! Checking a document happens in this order, so the validator never sees a body larger or
//! deeper than the caps: size ([`MAX_DOCUMENT_BYTES`], before parsing), JSON syntax, an object
//! at the top, depth ([`MAX_DEPTH`]), then the schema. Every violation becomes one entry of
//! the 422 problem's `errors[]`, pointing at the field (the instance location, with the
//! offending key appended for an unknown property), never the message text alone.
//! Remote `$ref`s cannot be resolved: jsonschema is built without its HTTP and file
//! retrievers.

use evently_core::Problem;
use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::domain::{MAX_DEPTH, MAX_DOCUMENT_BYTES, Namespace, depth};

/// The schema texts, by namespace.
fn text(namespace: Namespace) -> &'static str {
    match namespace {
        Namespace::Preferences => include_str!("schemas/preferences.json"),
        Namespace::Booking => include_str!("schemas/booking.json"),
    }
}

/// One namespace's compiled schema, its text and the document of its defaults.
struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
    defaults: Value,
}

/// Every namespace's schema, compiled.
pub struct Schemas {
    compiled: BTreeMap<Namespace, Compiled>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas")
            .field("namespaces", &self.compiled.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The defaults a schema declares: each property's `default`, an object property's own
/// properties' defaults merged into it.
fn defaults_of(schema: &Value) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(properties)) = schema.get("properties") {
        for (key, property) in properties {
            let nested = property.get("properties").is_some();
            match (property.get("default"), nested) {
                (_, true) => {
                    let mut value = property.get("default").cloned().unwrap_or(Value::Null);
                    if !value.is_object() {
                        value = Value::Object(Map::new());
                    }
                    crate::domain::merge_patch(&mut value, &defaults_of(property));
                    out.insert(key.clone(), value);
                }
                (Some(default), false) => {
                    out.insert(key.clone(), default.clone());
                }
                (None, false) => {}
            }
        }
    }
    Value::Object(out)
}

impl Schemas {
    /// Compiles every embedded schema.
    ///
    /// # Errors
    /// When a schema is not valid JSON or not a valid draft 2020-12 schema (a build defect).
    pub fn compile() -> anyhow::Result<Self> {
        let mut compiled = BTreeMap::new();
        for namespace in Namespace::ALL {
            let schema: Value = serde_json::from_str(text(*namespace))
                .map_err(|e| anyhow::anyhow!("the {namespace} schema is not JSON: {e}"))?;
            let validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| anyhow::anyhow!("the {namespace} schema does not compile: {e}"))?;
            let defaults = defaults_of(&schema);
            compiled.insert(
                *namespace,
                Compiled {
                    schema,
                    validator,
                    defaults,
                },
            );
        }
        Ok(Self { compiled })
    }

    fn get(&self, namespace: Namespace) -> &Compiled {
        // `compile` fills every namespace of `Namespace::ALL` or fails.
        self.compiled
            .get(&namespace)
            .expect("every namespace is compiled at start")
    }

    /// The schema document of `namespace`, as published.
    pub fn schema(&self, namespace: Namespace) -> &Value {
        &self.get(namespace).schema
    }

    /// The defaults of `namespace`.
    pub fn defaults(&self, namespace: Namespace) -> &Value {
        &self.get(namespace).defaults
    }

    /// Parses a request body as a document of `namespace`'s shape before the schema is
    /// applied: within the size cap, JSON, an object, within the depth cap. `what` says
    /// whether it is a document or a patch (for messages).
    ///
    /// # Errors
    /// 413 over the size cap, 400 for malformed JSON, 422 for a non-object or too deep a
    /// document.
    pub fn parse_body(bytes: &[u8]) -> Result<Value, Problem> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(Problem::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
            )
            .detail(format!(
                "a settings document is at most {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Problem::bad_request("malformed-json").detail(format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if !value.is_object() {
            return Err(Problem::invalid_field("", "must be a JSON object"));
        }
        if depth(&value) > MAX_DEPTH {
            return Err(Problem::invalid_field(
                "",
                format!("nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(value)
    }

    /// Checks `document` against `namespace`'s schema (and the size and depth caps, for
    /// documents made by merging a patch).
    ///
    /// # Errors
    /// 422 with one `errors[]` entry per violation, each pointing at its field.
    pub fn validate(&self, namespace: Namespace, document: &Value) -> Result<(), Problem> {
        let size = serde_json::to_vec(document).map_or(usize::MAX, |v| v.len());
        if size > MAX_DOCUMENT_BYTES {
            return Err(Problem::invalid_field(
                "",
                format!("the document would exceed {MAX_DOCUMENT_BYTES} bytes"),
            ));
        }
        if depth(document) > MAX_DEPTH {
            return Err(Problem::invalid_field(
                "",
                format!("nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        let validator = &self.get(namespace).validator;
        if validator.is_valid(document) {
            return Ok(());
        }
        let mut problem = Problem::validation().detail(format!(
            "the document does not match the {namespace} schema (GET /api/settings/schema/{namespace})"
        ));
        for error in validator.iter_errors(document) {
            let at = error.instance_path().as_str().to_owned();
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for key in unexpected {
                        let key = key.replace('~', "~0").replace('/', "~1");
                        problem = problem.field(format!("{at}/{key}"), "unknown setting");
                    }
                }
                _ => problem = problem.field(at, error.masked().to_string()),
            }
        }
        Err(problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(problem: &Problem) -> Vec<&str> {
        problem
            .errors()
            .iter()
            .map(|e| e.pointer.as_str())
            .collect()
    }

    #[test]
    fn every_schema_compiles_and_its_defaults_are_valid() {
        let schemas = Schemas::compile().unwrap();
        for namespace in Namespace::ALL {
            let defaults = schemas.defaults(*namespace);
            assert!(defaults.as_object().is_some_and(|m| !m.is_empty()));
            schemas.validate(*namespace, defaults).unwrap();
            assert_eq!(
                schemas.schema(*namespace)["additionalProperties"],
                json!(false)
            );
        }
        assert_eq!(
            schemas.defaults(Namespace::Booking)["saleDefaults"]["currency"],
            json!("USD")
        );
    }

    #[test]
    fn violations_point_at_their_fields() {
        let schemas = Schemas::compile().unwrap();
        let document = json!({
            "locale": "english please",
            "notifications": {"email": "yes", "sms": true, "digestAddress": "not-an-address"},
            "favouriteCities": ["Oslo", "Oslo"],
            "currencyDisplay": "emoji"
        });

        let problem = schemas
            .validate(Namespace::Preferences, &document)
            .unwrap_err();

        assert_eq!(problem.status().as_u16(), 422);
        let mut found = pointers(&problem);
        found.sort_unstable();
        assert_eq!(
            found,
            [
                "/currencyDisplay",
                "/favouriteCities",
                "/locale",
                "/notifications/digestAddress",
                "/notifications/email",
                "/notifications/sms",
            ]
        );
    }

    #[test]
    fn bounds_are_enforced() {
        let schemas = Schemas::compile().unwrap();
        let problem = schemas
            .validate(
                Namespace::Booking,
                &json!({"holdTtlSeconds": 5, "maxTicketsPerUser": 0}),
            )
            .unwrap_err();
        let mut found = pointers(&problem);
        found.sort_unstable();
        assert_eq!(found, ["/holdTtlSeconds", "/maxTicketsPerUser"]);
    }

    #[test]
    fn size_and_depth_are_capped_before_the_schema() {
        let big = format!("{{\"locale\": \"{}\"}}", "a".repeat(MAX_DOCUMENT_BYTES));
        assert_eq!(
            Schemas::parse_body(big.as_bytes())
                .unwrap_err()
                .status()
                .as_u16(),
            413
        );
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20));
        assert_eq!(
            Schemas::parse_body(deep.as_bytes())
                .unwrap_err()
                .status()
                .as_u16(),
            422
        );
        assert_eq!(
            Schemas::parse_body(b"[1]").unwrap_err().status().as_u16(),
            422
        );
        assert_eq!(
            Schemas::parse_body(b"{").unwrap_err().status().as_u16(),
            400
        );
    }
}
