//! Request extractors whose every rejection is a [`Problem`], never axum's plain text.
//!
//! - [`Json`]: requires `application/json` (415 otherwise), a body within the limit (413),
//!   syntactically valid JSON (400) and a body that fits the DTO (422 with the field's JSON
//!   pointer; DTOs use `deny_unknown_fields`, so mass-assignment fields are refused).
//! - [`OptionalJson`]: the same, but an empty body is `None` (for endpoints that also take
//!   their input from a cookie).
//! - [`Path`] and [`Query`]: 400 naming the parameter.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON body deserialised into `T`, with problem rejections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// An optional JSON body: `None` when the body is empty.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

/// Whether `headers` say the body is JSON (`Content-Type: application/json`, any parameters).
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn bytes_problem(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
        )
        .detail("the request body exceeds the size limit")
    } else {
        Problem::bad_request("unreadable-body").detail("the request body could not be read")
    }
}

/// Turns a JSON deserialisation failure into a 400 (malformed) or 422 (wrong shape) problem.
pub fn json_problem(error: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = error.path().to_string();
    problem_at(&path, &error.into_inner())
}

fn problem_at(path: &str, inner: &serde_json::Error) -> Problem {
    match inner.classify() {
        serde_json::error::Category::Data => {
            let mut pointer = pointer_from_path(path);
            let detail = describe_data_error(inner);
            if let Some(rest) = detail.strip_prefix("missing field `") {
                pointer.push('/');
                pointer.push_str(&escape_pointer(rest.split('`').next().unwrap_or_default()));
            }
            Problem::invalid_field(pointer, detail)
        }
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            Problem::bad_request("malformed-json").detail(format!(
                "the body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ))
        }
        serde_json::error::Category::Io => {
            Problem::bad_request("malformed-json").detail("the body is not valid JSON")
        }
    }
}

/// serde's messages are good but mention Rust-side names in a few cases; keep only the part
/// that describes the input, without internal type names.
fn describe_data_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return format!("unknown field `{field}`");
    }
    message
}

/// serde_path_to_error prints `a.b[3]`; problem pointers are JSON pointers (`/a/b/3`).
fn pointer_from_path(path: &str) -> String {
    if path == "." || path.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for segment in path.split('.') {
        let mut rest = segment;
        if let Some(idx) = rest.find('[') {
            let (name, indices) = rest.split_at(idx);
            if !name.is_empty() {
                out.push('/');
                out.push_str(&escape_pointer(name));
            }
            rest = indices;
            for index in rest.split('[').filter(|s| !s.is_empty()) {
                out.push('/');
                out.push_str(index.trim_end_matches(']'));
            }
        } else {
            out.push('/');
            out.push_str(&escape_pointer(rest));
        }
    }
    out
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Deserialises `bytes` as JSON into `T`, mapping failures to problems. Every request body of
/// evently is a JSON object: an array is refused before serde, which would otherwise fill a
/// struct from it by position (`[null, null]` as a profile update).
///
/// # Errors
/// 400 for malformed JSON, 422 for a body that does not fit `T` or is an array.
pub fn from_json_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            return Err(problem_at("", &syntax));
        }
        return Err(Problem::invalid_field("", "the body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|error| {
        // A shape error can surface before the parser reaches a syntax error later in the
        // body; a body that is not JSON at all is 400 whatever its shape.
        if error.inner().classify() == serde_json::error::Category::Data
            && let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        {
            return problem_at("", &syntax);
        }
        json_problem(error)
    })
}

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .detail("expected `Content-Type: application/json`"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_problem)?;
        from_json_slice(&bytes).map(Json)
    }
}

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_json_type = is_json_content_type(req.headers());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_problem)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !has_json_type {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            )
            .detail("expected `Content-Type: application/json`"));
        }
        // `null` is no body too, as the schema of an optional body allows.
        from_json_slice::<Option<T>>(&bytes).map(OptionalJson)
    }
}

/// Path parameters deserialised into `T`; a parameter that does not parse is 400.
#[derive(Debug, Clone, Copy)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_problem(rejection)),
        }
    }
}

fn path_problem(rejection: PathRejection) -> Problem {
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => {
            Problem::bad_request("invalid-path-parameter").detail(format!(
                "path parameter is invalid: {}",
                e.body_text()
                    .trim_start_matches("Invalid URL: ")
                    .trim_start_matches("Cannot parse ")
            ))
        }
        other => Problem::internal(anyhow::anyhow!("path extraction failed: {other}")),
    }
}

/// Query parameters deserialised into `T`; malformed parameters are 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(Problem::bad_request("invalid-query").detail(
                    e.body_text()
                        .replace("Failed to deserialize query string: ", ""),
                ))
            }
            Err(other) => Err(Problem::bad_request("invalid-query").detail(other.body_text())),
        }
    }
}

/// Whole numbers as JSON Schema counts them: `40` and also `40.0` (a number with a zero
/// fraction is an `integer` to JSON Schema, and some clients write every number so). For
/// `#[serde(deserialize_with = "evently_core::extract::int")]` on an `i64` field.
///
/// # Errors
/// A fraction, a number out of range, or not a number.
pub fn int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("number out of range"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // 2^63 is the first f64 beyond i64.
            if v.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v)
            {
                #[allow(clippy::cast_possible_truncation)]
                Ok(v as i64)
            } else {
                Err(E::custom("expected a whole number"))
            }
        }
    }
    d.deserialize_any(Whole)
}

/// [`int`] for an optional field (`null` or absent is `None`; pair with `#[serde(default)]`).
///
/// # Errors
/// As [`int`].
pub fn opt_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "int")] i64);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Dto {
        email: String,
        seats: Vec<u32>,
    }

    #[test]
    fn malformed_json_is_400() {
        for body in [&b"{\"a\":"[..], b"{\"email\":\"x\",}", b"{'email':'x'}"] {
            let p = from_json_slice::<Dto>(body).unwrap_err();
            assert_eq!(p.status(), StatusCode::BAD_REQUEST, "{body:?}");
        }
    }

    #[test]
    fn wrong_type_is_422_with_pointer() {
        let p = from_json_slice::<Dto>(br#"{"email":"x","seats":[1,"2"]}"#).unwrap_err();
        assert_eq!(p.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(p.errors()[0].pointer, "/seats/1");
    }

    #[test]
    fn unknown_field_is_422() {
        let p = from_json_slice::<Dto>(br#"{"email":"x","seats":[],"role":"admin"}"#).unwrap_err();
        assert_eq!(p.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(p.errors()[0].detail.contains("role"));
    }

    #[test]
    fn deep_nesting_is_400_not_a_crash() {
        let body = "[".repeat(10_000);
        let p = from_json_slice::<serde_json::Value>(body.as_bytes()).unwrap_err();
        assert_eq!(p.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn missing_field_is_422() {
        let p = from_json_slice::<Dto>(br#"{"seats":[]}"#).unwrap_err();
        assert_eq!(p.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(p.errors()[0].detail.contains("email"));
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "super::int")]
            n: i64,
            #[serde(default, deserialize_with = "super::opt_int")]
            m: Option<i64>,
        }
        let parse = |json: &str| serde_json::from_str::<Body>(json).map(|b| (b.n, b.m));

        assert_eq!(parse(r#"{"n": 40}"#).unwrap(), (40, None));
        assert_eq!(parse(r#"{"n": 40.0, "m": -3.0}"#).unwrap(), (40, Some(-3)));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap(), (1, None));
        assert!(parse(r#"{"n": 40.5}"#).is_err());
        assert!(parse(r#"{"n": 1e300}"#).is_err());
        assert!(parse(r#"{"n": "40"}"#).is_err());
        assert!(parse(r#"{"n": 18446744073709551615}"#).is_err());
    }

    #[test]
    fn a_body_is_an_object_never_an_array() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Profile {
            name: Option<String>,
            phone: Option<String>,
        }

        let array = super::from_json_slice::<Profile>(b" [null, null]").unwrap_err();
        let broken = super::from_json_slice::<Profile>(b"[null,").unwrap_err();

        assert_eq!(array.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
        assert!(super::from_json_slice::<Profile>(b"{}").is_ok());
    }

    mod parser_properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // A fixed budget, so `cargo test` stays quick; the fuzz targets run longer.
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any bytes as a body are a DTO, a 400 (not JSON) or a 422 (wrong shape, or an
            /// array); never a panic, never another status.
            #[test]
            fn any_body_is_a_dto_or_a_400_or_422(
                bytes in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                if let Err(p) = from_json_slice::<Dto>(&bytes) {
                    prop_assert!(
                        p.status() == StatusCode::BAD_REQUEST
                            || p.status() == StatusCode::UNPROCESSABLE_ENTITY,
                        "{}", p.status()
                    );
                }
            }

            /// JSON-looking text (structural characters and field names) likewise.
            #[test]
            fn json_like_bodies_are_a_dto_or_a_400_or_422(
                body in r#"[\[\]{}:,"0-9 .a-z-]{0,80}|\{"email":"[a-z]{0,5}","seats":\[[0-9,-]{0,10}\]\}"#,
            ) {
                match from_json_slice::<Dto>(body.as_bytes()) {
                    Ok(dto) => prop_assert!(body.contains(&dto.email)),
                    Err(p) => prop_assert!(
                        p.status() == StatusCode::BAD_REQUEST
                            || p.status() == StatusCode::UNPROCESSABLE_ENTITY
                    ),
                }
            }

            /// A well-formed body round-trips; the same content as an array is a 422.
            #[test]
            fn valid_bodies_parse_and_arrays_are_refused(
                email in "[ -~]{0,30}",
                seats in proptest::collection::vec(any::<u32>(), 0..10),
            ) {
                let body = serde_json::json!({"email": email, "seats": seats});
                let dto = from_json_slice::<Dto>(body.to_string().as_bytes()).unwrap();
                prop_assert_eq!(&dto.email, &email);
                prop_assert_eq!(&dto.seats, &seats);
                let array = serde_json::json!([email, seats]).to_string();
                let p = from_json_slice::<Dto>(array.as_bytes()).unwrap_err();
                prop_assert_eq!(p.status(), StatusCode::UNPROCESSABLE_ENTITY);
            }
        }
    }
}
