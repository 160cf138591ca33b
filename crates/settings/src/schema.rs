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
    /// The schema of merge patches ([`openapi_patch`]).
    patch_validator: jsonschema::Validator,
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
            let patch_validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&openapi_patch(*namespace))
                .map_err(|e| {
                    anyhow::anyhow!("the {namespace} patch schema does not compile: {e}")
                })?;
            let defaults = defaults_of(&schema);
            compiled.insert(
                *namespace,
                Compiled {
                    schema,
                    validator,
                    patch_validator,
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
        violations(
            &self.get(namespace).validator,
            document,
            format!(
                "the document does not match the {namespace} schema (GET /api/settings/schema/{namespace})"
            ),
        )
    }

    /// Checks a merge patch of `namespace`'s documents on its own, before it is applied: the
    /// keys it names must be the schema's and each value valid or `null` (published as the
    /// PATCH routes' request body). A patch can be judged without the stored document, so
    /// a bad one is refused (422) before its `If-Match` is compared.
    ///
    /// # Errors
    /// 422 with one `errors[]` entry per violation, each pointing at its field.
    pub fn validate_patch(&self, namespace: Namespace, patch: &Value) -> Result<(), Problem> {
        violations(
            &self.get(namespace).patch_validator,
            patch,
            format!(
                "the patch does not fit the {namespace} schema (GET /api/settings/schema/{namespace}); null removes a key"
            ),
        )
    }
}

/// Adds `error` to `problem` as entries of `errors[]` pointing at the offending fields.
fn point_at(mut problem: Problem, error: &jsonschema::ValidationError<'_>) -> Problem {
    let at = error.instance_path().as_str().to_owned();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for key in unexpected {
                let key = key.replace('~', "~0").replace('/', "~1");
                problem = problem.field(format!("{at}/{key}"), "unknown setting");
            }
            problem
        }
        // A key of a patch is `anyOf: [its schema, null]`: what is wrong is what its schema
        // (the first alternative) says, at the fields inside it.
        ValidationErrorKind::AnyOf { context } => match context.first() {
            Some(inner) if !inner.is_empty() => inner.iter().fold(problem, point_at),
            _ => problem.field(at, "must fit the schema, or be null to remove it"),
        },
        _ => problem.field(at, error.masked().to_string()),
    }
}

/// `Ok` when `validator` accepts `instance`, else a 422 problem with `detail` and one
/// `errors[]` entry per violation: an unknown key points at the key itself.
fn violations(
    validator: &jsonschema::Validator,
    instance: &Value,
    detail: String,
) -> Result<(), Problem> {
    if validator.is_valid(instance) {
        return Ok(());
    }
    let mut problem = Problem::validation().detail(detail);
    for error in validator.iter_errors(instance) {
        problem = point_at(problem, &error);
    }
    Err(problem)
}

/// The name of `namespace`'s document schema among the OpenAPI components.
pub fn document_component(namespace: Namespace) -> String {
    match namespace {
        Namespace::Preferences => "PreferencesDocument".to_owned(),
        Namespace::Booking => "BookingSettingsDocument".to_owned(),
    }
}

/// The name of `namespace`'s merge-patch schema among the OpenAPI components.
pub fn patch_component(namespace: Namespace) -> String {
    format!(
        "{}Patch",
        document_component(namespace).trim_end_matches("Document")
    )
}

/// `namespace`'s schema as an OpenAPI 3.1 component (whose schema dialect is draft
/// 2020-12): the embedded schema without its `$schema` and `$id`.
pub fn openapi_document(namespace: Namespace) -> Value {
    let mut schema: Value = serde_json::from_str(text(namespace)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("$id");
    }
    schema
}

/// The schema of an RFC 7396 merge patch of `namespace`'s documents whose result is
/// valid: every key optional and also `null` (which removes it), an object key a patch of
/// its own, unknown keys refused as in the document.
pub fn openapi_patch(namespace: Namespace) -> Value {
    fn patch_of(schema: &Value) -> Value {
        let mut out = schema.clone();
        let Value::Object(map) = &mut out else {
            return out;
        };
        map.remove("required");
        map.remove("default");
        if let Some(Value::Object(properties)) = map.get_mut("properties") {
            for property in properties.values_mut() {
                let nested = if property.get("properties").is_some() {
                    patch_of(property)
                } else {
                    let mut plain = property.clone();
                    if let Value::Object(plain) = &mut plain {
                        plain.remove("default");
                    }
                    plain
                };
                let description = nested.get("description").cloned();
                let mut either = Map::new();
                if let Some(description) = description {
                    either.insert("description".to_owned(), description);
                }
                either.insert(
                    "anyOf".to_owned(),
                    Value::Array(vec![nested, serde_json::json!({ "type": "null" })]),
                );
                *property = Value::Object(either);
            }
        }
        out
    }
    let mut patch = patch_of(&openapi_document(namespace));
    if let Value::Object(map) = &mut patch {
        map.insert(
            "description".to_owned(),
            Value::String(format!(
                "An RFC 7396 merge patch of a {} document: the keys to change, `null` to \
                 remove one (it takes its default again).",
                namespace.as_str()
            )),
        );
        map.remove("title");
    }
    patch
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
