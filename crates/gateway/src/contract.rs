//! The public API contract: the services' OpenAPI paths, completed with what every request
//! can meet on its way through the edge and the shared extractors.
//!
//! A handler documents its success and its own business refusals (a taken seat's 409, an
//! unknown hold's 404). Everything else is the same everywhere and is attached here, from the
//! same route table the edge enforces ([`crate::routes`]), so that the document and the server
//! cannot disagree:
//!
//! | status | on | from |
//! |---|---|---|
//! | 400 | every operation | a malformed body, header, cookie or parameter |
//! | 401 | operations that need a token | the edge's token check (`WWW-Authenticate: Bearer`) |
//! | 403 | those, and every change | a role the operation does not allow, a cookie change from a foreign origin |
//! | 404 | operations with path parameters | an unknown (or not the caller's) object |
//! | 413, 415 | operations with a body | the body limit, a non-JSON content type |
//! | 422 | operations with a body or query | a well-formed request that breaks a rule |
//! | 429 | rate-limited operations | the limiter (`Retry-After`, `RateLimit-*`) |
//! | 502, 503, 504 | every operation | a service that is down, draining or slow |
//!
//! Every error answer is `application/problem+json` with the one [`Problem`] schema
//! (`#/components/schemas/Problem`); a handler's own error responses are rewritten to it.

use std::collections::BTreeMap;

use axum::http::Method;
use evently_core::problem::{FieldError, ProblemBody};
use utoipa::PartialSchema;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

use crate::routes;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The name of the shared problem schema and of the bearer security scheme.
const PROBLEM: &str = "Problem";
const BEARER: &str = "bearer";

/// A shared error response: its component name, status and description, and its headers.
struct Standard {
    name: &'static str,
    status: &'static str,
    description: &'static str,
    headers: &'static [(&'static str, &'static str, HeaderType)],
}

#[derive(Clone, Copy)]
enum HeaderType {
    Text,
    Seconds,
}

const RETRY_AFTER: (&str, &str, HeaderType) = (
    "Retry-After",
    "Seconds to wait before trying again",
    HeaderType::Seconds,
);

const STANDARD: &[Standard] = &[
    Standard {
        name: "BadRequest",
        status: "400",
        description: "Malformed request: a body that is not JSON, or a malformed header, cookie or parameter",
        headers: &[],
    },
    Standard {
        name: "Unauthorized",
        status: "401",
        description: "No access token, or an invalid or expired one",
        headers: &[(
            "WWW-Authenticate",
            "`Bearer`, with the error when a token was sent",
            HeaderType::Text,
        )],
    },
    Standard {
        name: "Forbidden",
        status: "403",
        description: "Signed in but not allowed: the caller's role, someone else's object, or a cookie-authenticated change from an origin that is not allowed",
        headers: &[],
    },
    Standard {
        name: "NotFound",
        status: "404",
        description: "No such object, or one that is not the caller's",
        headers: &[],
    },
    Standard {
        name: "PayloadTooLarge",
        status: "413",
        description: "The body exceeds the size limit",
        headers: &[],
    },
    Standard {
        name: "UnsupportedMediaType",
        status: "415",
        description: "The body is not `application/json`",
        headers: &[],
    },
    Standard {
        name: "ValidationFailed",
        status: "422",
        description: "Well-formed but invalid: `errors[]` names each field (a JSON pointer) or parameter",
        headers: &[],
    },
    Standard {
        name: "TooManyRequests",
        status: "429",
        description: "Rate limited",
        headers: &[
            RETRY_AFTER,
            (
                "RateLimit-Limit",
                "Requests allowed in a burst",
                HeaderType::Seconds,
            ),
            (
                "RateLimit-Remaining",
                "Requests left now",
                HeaderType::Seconds,
            ),
            (
                "RateLimit-Reset",
                "Seconds until the full burst is available again",
                HeaderType::Seconds,
            ),
        ],
    },
    Standard {
        name: "BadGateway",
        status: "502",
        description: "The service behind the gateway could not be reached",
        headers: &[],
    },
    Standard {
        name: "ServiceUnavailable",
        status: "503",
        description: "A dependency is down, a circuit is open, the server is draining or the request took too long",
        headers: &[RETRY_AFTER],
    },
    Standard {
        name: "GatewayTimeout",
        status: "504",
        description: "The service behind the gateway did not answer in time",
        headers: &[],
    },
];

/// What the edge and the extractors can answer for one operation, by status.
fn standard_statuses(method: &Method, path: &str, operation: &Operation) -> Vec<&'static str> {
    let params = operation.parameters.as_deref().unwrap_or_default();
    let has_in = |place: ParameterIn| {
        params.iter().any(|p| match p {
            RefOr::T(p) => p.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    let has_body = operation.request_body.is_some();
    let protected = !routes::is_public(method, path);
    let change = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);

    let mut statuses = vec!["400"];
    if protected {
        statuses.push("401");
    }
    if protected || change {
        statuses.push("403");
    }
    if has_in(ParameterIn::Path) {
        statuses.push("404");
    }
    if has_body {
        statuses.extend(["413", "415"]);
    }
    if has_body || has_in(ParameterIn::Query) {
        statuses.push("422");
    }
    if routes::group_for(method, path).is_some() {
        statuses.push("429");
    }
    statuses.extend(["502", "503", "504"]);
    statuses
}

fn header(kind: HeaderType, description: &str) -> Header {
    let schema = match kind {
        HeaderType::Text => ObjectBuilder::new().schema_type(Type::String),
        HeaderType::Seconds => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0)),
    };
    HeaderBuilder::new()
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(PROBLEM)))
        .build()
}

fn standard_response(standard: &Standard) -> Response {
    let mut response = ResponseBuilder::new()
        .description(standard.description)
        .content(PROBLEM_JSON, problem_content());
    for (name, description, kind) in standard.headers {
        response = response.header(*name, header(*kind, description));
    }
    response.build()
}

/// Rewrites a handler's own error response to the problem media type and schema, keeping its
/// description and adding the standard headers of its status.
fn as_problem(response: &mut Response, status: &str) {
    response.content.clear();
    response
        .content
        .insert(PROBLEM_JSON.to_owned(), RefOr::T(problem_content()));
    if let Some(standard) = STANDARD.iter().find(|s| s.status == status) {
        for (name, description, kind) in standard.headers {
            response
                .headers
                .entry((*name).to_owned())
                .or_insert_with(|| RefOr::T(header(*kind, description)));
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
    .collect()
}

/// A link from an answer to an operation that takes its ids (OpenAPI links), so that a client
/// or a stateful tool can follow register → login, venue → event → hold → intent → confirm →
/// purchase (or hold → checkout), and each created object to the operations on it.
struct LinkSpec {
    /// The operation answering, and its success status.
    from: &'static str,
    status: &'static str,
    /// The link's name and the operation it leads to.
    name: &'static str,
    to: &'static str,
    /// Path parameters of the target, from the answer.
    parameters: &'static [(&'static str, &'static str)],
    /// Fields of the target's body, from the request or the answer (merged into the rest).
    body: &'static [(&'static str, &'static str)],
}

const fn link(
    from: &'static str,
    status: &'static str,
    name: &'static str,
    to: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    body: &'static [(&'static str, &'static str)],
) -> LinkSpec {
    LinkSpec {
        from,
        status,
        name,
        to,
        parameters,
        body,
    }
}

const EVENT_ID: &[(&str, &str)] = &[("eventId", "$response.body#/eventId")];
const HOLD_ID: &[(&str, &str)] = &[("holdId", "$response.body#/holdId")];
const ORDER_ID: &[(&str, &str)] = &[("orderId", "$response.body#/orderId")];
const VENUE_ID: &[(&str, &str)] = &[("venueId", "$response.body#/venueId")];

/// An event reaches booking through the bus, a moment after its creation answered 201, so
/// no link leads from `create_event` to booking's operations on it: a client following one at
/// once may get booking's 404 for an event it has not heard of yet. The way to a hold is from
/// the listing, whose events are published.
const LINKS: &[LinkSpec] = &[
    link(
        "list_events",
        "200",
        "HoldFirst",
        "create_hold",
        &[],
        &[("eventId", "$response.body#/events/0/eventId")],
    ),
    link(
        "list_events",
        "200",
        "AvailabilityOfFirst",
        "availability",
        &[("eventId", "$response.body#/events/0/eventId")],
        &[],
    ),
    link(
        "list_events",
        "200",
        "SeatMapOfFirst",
        "seat_map",
        &[("eventId", "$response.body#/events/0/eventId")],
        &[],
    ),
    link(
        "list_events",
        "200",
        "JoinWaitlistOfFirst",
        "join_waitlist",
        &[("eventId", "$response.body#/events/0/eventId")],
        &[],
    ),
    link(
        "register",
        "201",
        "LogIn",
        "login",
        &[],
        &[
            ("email", "$request.body#/email"),
            ("password", "$request.body#/password"),
        ],
    ),
    link(
        "signup",
        "201",
        "LogIn",
        "login",
        &[],
        &[
            ("email", "$request.body#/email"),
            ("password", "$request.body#/password"),
        ],
    ),
    link(
        "login",
        "200",
        "Refresh",
        "refresh",
        &[],
        &[("refreshToken", "$response.body#/refreshToken")],
    ),
    link(
        "create_venue",
        "201",
        "GetVenue",
        "get_venue",
        VENUE_ID,
        &[],
    ),
    link(
        "create_venue",
        "201",
        "CreateEvent",
        "create_event",
        &[],
        &[("venueId", "$response.body#/venueId")],
    ),
    link(
        "create_event",
        "201",
        "GetEvent",
        "get_event",
        EVENT_ID,
        &[],
    ),
    link(
        "create_event",
        "201",
        "UpdateEvent",
        "update_event",
        EVENT_ID,
        &[],
    ),
    link(
        "create_event",
        "201",
        "ChangeStatus",
        "change_status",
        EVENT_ID,
        &[],
    ),
    link(
        "create_event",
        "201",
        "DeleteEvent",
        "delete_event",
        EVENT_ID,
        &[],
    ),
    link("create_hold", "201", "GetHold", "get_hold", HOLD_ID, &[]),
    link("create_hold", "201", "HoldTtl", "hold_ttl", HOLD_ID, &[]),
    link(
        "get_hold",
        "200",
        "RefreshHold",
        "refresh_hold",
        HOLD_ID,
        &[],
    ),
    link(
        "get_hold",
        "200",
        "ReleaseHold",
        "release_hold",
        HOLD_ID,
        &[],
    ),
    link(
        "create_hold",
        "201",
        "CreateIntent",
        "create_intent",
        &[],
        &[("holdId", "$response.body#/holdId")],
    ),
    link(
        "create_intent",
        "201",
        "Confirm",
        "confirm_intent",
        &[],
        &[
            ("paymentIntentId", "$response.body#/paymentIntentId"),
            ("clientSecret", "$response.body#/clientSecret"),
        ],
    ),
    link(
        "confirm_intent",
        "200",
        "Purchase",
        "purchase",
        &[],
        &[
            ("eventId", "$response.body#/eventId"),
            ("holdId", "$response.body#/holdId"),
            ("seatIds", "$response.body#/seatIds"),
            ("paymentIntentId", "$response.body#/paymentIntentId"),
        ],
    ),
    link(
        "create_hold",
        "201",
        "Checkout",
        "checkout",
        &[],
        &[
            ("eventId", "$response.body#/eventId"),
            ("holdId", "$response.body#/holdId"),
            ("seatIds", "$response.body#/seatIds"),
        ],
    ),
    link(
        "checkout",
        "201",
        "GetCheckoutOrder",
        "get_order",
        ORDER_ID,
        &[],
    ),
    link(
        "checkout",
        "201",
        "CancelCheckoutOrder",
        "cancel_order",
        ORDER_ID,
        &[],
    ),
    link("purchase", "201", "GetOrder", "get_order", ORDER_ID, &[]),
    link(
        "purchase",
        "201",
        "CancelOrder",
        "cancel_order",
        ORDER_ID,
        &[],
    ),
];

/// Links whose body is the whole request: following one sends exactly those fields, nothing
/// generated beside them (`x-schemathesis: {merge_body: false}`, for stateful testing tools).
const WHOLE_BODY: &[&str] = &["Confirm", "Purchase", "Checkout"];

fn add_links(operation: &mut Operation) {
    let Some(id) = operation.operation_id.clone() else {
        return;
    };
    for spec in LINKS.iter().filter(|l| l.from == id) {
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(spec.status) else {
            continue;
        };
        let mut link = LinkBuilder::new().operation_id(spec.to);
        for (name, expression) in spec.parameters {
            link = link.parameter(*name, *expression);
        }
        if !spec.body.is_empty() {
            let body: serde_json::Map<String, serde_json::Value> = spec
                .body
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                .collect();
            link = link.request_body(Some(body));
        }
        if WHOLE_BODY.contains(&spec.name) {
            link = link.extensions(Some(
                ExtensionsBuilder::new()
                    .add("x-schemathesis", serde_json::json!({"merge_body": false}))
                    .build(),
            ));
        }
        response
            .links
            .insert(spec.name.to_owned(), RefOr::T(link.build()));
    }
}

/// Completes `doc` into the public contract: the shared problem schema and responses, the
/// bearer scheme, each operation's standard error responses and security requirement, and
/// every error answer as `application/problem+json`, and the links between operations.
pub fn complete(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.remove("ProblemBody");
    components
        .schemas
        .insert(PROBLEM.to_owned(), ProblemBody::schema());
    components
        .schemas
        .insert("FieldError".to_owned(), FieldError::schema());
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An access token from `POST /api/auth/login`. Browsers may send it as the \
                     `access_token` cookie instead; a cookie-authenticated change must come from \
                     an allowed `Origin`.",
                ))
                .build(),
        ),
    );
    for standard in STANDARD {
        components.responses.insert(
            standard.name.to_owned(),
            RefOr::T(standard_response(standard)),
        );
    }

    for (path, item) in &mut doc.paths.paths {
        for (method, operation) in operations(item) {
            let statuses = standard_statuses(&method, path, operation);
            let responses = &mut operation.responses.responses;
            for (status, response) in responses.iter_mut() {
                if (status.starts_with('4') || status.starts_with('5'))
                    && let RefOr::T(response) = response
                {
                    as_problem(response, status);
                }
            }
            for status in statuses {
                if responses.contains_key(status) {
                    continue;
                }
                let Some(standard) = STANDARD.iter().find(|s| s.status == status) else {
                    continue;
                };
                responses.insert(
                    status.to_owned(),
                    RefOr::Ref(Ref::new(format!(
                        "#/components/responses/{}",
                        standard.name
                    ))),
                );
            }
            add_links(operation);
            if !routes::is_public(&method, path) {
                operation.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
            }
        }
    }
}

/// The statuses an operation documents, for the coverage test.
pub fn documented(doc: &OpenApi) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for (path, item) in &doc.paths.paths {
        let mut item = item.clone();
        for (method, operation) in operations(&mut item) {
            out.insert(
                (method.to_string(), path.clone()),
                operation.responses.responses.keys().cloned().collect(),
            );
        }
    }
    out
}

/// The bounds a deployment configures, which the server enforces as configured.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `booking.max_seats_per_order`: seats in one hold, one purchase, one waitlist entry.
    pub seats_per_order: u32,
    /// `events.max_page_size`: the largest page of events and venues.
    pub page_size: u32,
    /// `recs.max_limit`: the most recommendations in one answer.
    pub recommendations: u32,
}

/// Publishes `limits` in `doc`, in place of the defaults the schemas were written with, so
/// that a deployment with other limits documents the ones it enforces.
pub fn publish_limits(doc: &mut OpenApi, limits: Limits) {
    let seats = limits.seats_per_order;
    for (schema, property) in [
        ("HoldRequest", "quantity"),
        ("HoldRequest", "seatIds"),
        ("PurchaseRequest", "seatIds"),
        ("WaitlistRequest", "quantity"),
    ] {
        if let Some(components) = doc.components.as_mut()
            && let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema)
            && let Some(RefOr::T(property)) = object.properties.get_mut(property)
        {
            bound(property, seats);
        }
    }
    for (path, name, limit) in [
        ("/api/events", "size", limits.page_size),
        ("/api/venues", "size", limits.page_size),
        ("/api/recs", "limit", limits.recommendations),
        ("/api/recs/related", "limit", limits.recommendations),
    ] {
        let parameters = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.get.as_mut())
            .and_then(|op| op.parameters.as_mut());
        for parameter in parameters.into_iter().flatten() {
            if let RefOr::T(parameter) = parameter
                && parameter.name == name
                && let Some(RefOr::T(schema)) = parameter.schema.as_mut()
            {
                bound(schema, limit);
            }
        }
    }
}

/// Sets the upper bound of a number (`maximum`) or of an array (`maxItems`).
fn bound(schema: &mut Schema, limit: u32) {
    match schema {
        Schema::Object(object) => object.maximum = Some(utoipa::Number::UInt(limit as usize)),
        Schema::Array(array) => array.max_items = Some(limit as usize),
        _ => {}
    }
}
