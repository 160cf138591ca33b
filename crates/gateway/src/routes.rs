//! The route table of the edge: which service owns a path, whether it is public, and which
//! rate-limit group it counts against. One place, so that routing, authentication and limits
//! can never disagree about a path.

use axum::http::Method;

use crate::ratelimit::Group;

/// Path prefixes and the service that owns them.
const PREFIXES: &[(&str, &str)] = &[
    ("/api/auth", "auth"),
    ("/api/users", "auth"),
    ("/api/venues", "events"),
    ("/api/events", "events"),
    ("/api/orders", "booking"),
    ("/api/search", "search"),
    ("/api/analytics", "analytics"),
    ("/api/settings", "settings"),
    ("/api/data", "data"),
    ("/api/recs", "recs"),
];

/// The data service's file upload, whose bodies may exceed `server.body_limit_bytes` up to
/// `data.max_import_bytes` and the multipart framing around the file.
pub const IMPORT_PATH: &str = "/api/data/import/events";
/// Room for the multipart framing around an uploaded file.
pub const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Every service name the gateway can route to.
pub fn known_services() -> impl Iterator<Item = &'static str> {
    let mut names: Vec<&str> = PREFIXES.iter().map(|(_, s)| *s).collect();
    names.dedup();
    names.into_iter()
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The service that owns `path`, if any. Availability and the waitlist of an event belong to
/// booking, the source of truth for seats.
pub fn service_for(path: &str) -> Option<&'static str> {
    if let Some(rest) = path.strip_prefix("/api/events/") {
        let mut parts = rest.split('/');
        let _id = parts.next();
        if matches!(parts.next(), Some("availability" | "waitlist")) {
            return Some("booking");
        }
    }
    PREFIXES
        .iter()
        .find(|(prefix, _)| under(path, prefix))
        .map(|(_, service)| *service)
}

/// Whether `method path` may be called without a token. Everything under `/api` that is not
/// listed here needs one.
pub fn is_public(method: &Method, path: &str) -> bool {
    if !path.starts_with("/api/") {
        return true;
    }
    let read = method == Method::GET || method == Method::HEAD;
    // Recommendations are for anyone; a token, when sent, personalises them.
    if read && under(path, "/api/recs") {
        return true;
    }
    // The settings schemas are published so that any client can render forms.
    if read && under(path, "/api/settings/schema") {
        return true;
    }
    // The live WebSocket authenticates itself before the upgrade: a browser cannot set
    // `Authorization` on it and may send its token as a subprotocol the edge does not read.
    if read && path == "/api/analytics/live" {
        return true;
    }
    // Search only reads, for anyone: any method reaches it, which answers 405 for a wrong
    // one rather than the edge 401.
    if under(path, "/api/search") {
        return true;
    }
    // Any method: the service answers 405 for the wrong one, not the edge 401.
    if matches!(
        path,
        "/api/auth/register"
            | "/api/auth/signup"
            | "/api/auth/login"
            | "/api/auth/refresh"
            | "/api/auth/logout"
    ) {
        return true;
    }
    // A waitlist entry is the caller's own.
    let waitlist = path
        .strip_prefix("/api/events/")
        .is_some_and(|rest| rest.split('/').nth(1) == Some("waitlist"));
    read && !waitlist
        && (under(path, "/api/events")
            || under(path, "/api/venues")
            || under(path, "/api/recs/related")
            || under(path, "/api/orders/seats"))
}

/// The rate-limit group of `method path`; `None` for operational routes that are never limited.
pub fn group_for(method: &Method, path: &str) -> Option<Group> {
    if path.starts_with("/health") || path == "/metrics" {
        return None;
    }
    // A password change hashes the current password: it counts (and waits) like a sign-in.
    if method == Method::PUT && path == "/api/users/password" {
        return Some(Group::Auth);
    }
    if method == Method::POST {
        if matches!(
            path,
            "/api/auth/login" | "/api/auth/register" | "/api/auth/signup" | "/api/auth/refresh"
        ) {
            return Some(Group::Auth);
        }
        if path == "/api/orders/purchase"
            || path == "/api/orders/checkout"
            || path == "/api/orders/holds"
            || under(path, "/api/orders/payments")
        {
            return Some(Group::Purchase);
        }
    }
    Some(Group::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_their_owners() {
        assert_eq!(service_for("/api/auth/login"), Some("auth"));
        assert_eq!(service_for("/api/users/profile"), Some("auth"));
        assert_eq!(service_for("/api/events"), Some("events"));
        assert_eq!(service_for("/api/events/42"), Some("events"));
        assert_eq!(service_for("/api/events/42/availability"), Some("booking"));
        assert_eq!(service_for("/api/events/42/waitlist"), Some("booking"));
        assert_eq!(service_for("/api/orders/holds"), Some("booking"));
        assert_eq!(service_for("/api/eventsX"), None);
        assert_eq!(service_for("/internal/users/1"), None);
    }

    #[test]
    fn public_and_protected_routes() {
        assert!(is_public(&Method::GET, "/api/events"));
        assert!(is_public(&Method::GET, "/api/events/1"));
        assert!(!is_public(&Method::POST, "/api/events"));
        assert!(is_public(&Method::POST, "/api/auth/login"));
        assert!(!is_public(&Method::GET, "/api/auth/me"));
        assert!(!is_public(&Method::GET, "/api/orders/orders"));
        assert!(is_public(&Method::GET, "/api/events/1/availability"));
        assert!(!is_public(&Method::GET, "/api/events/1/waitlist"));
        assert!(is_public(&Method::GET, "/health"));
        assert!(is_public(&Method::GET, "/docs/"));
    }

    #[test]
    fn groups() {
        assert_eq!(
            group_for(&Method::POST, "/api/auth/login"),
            Some(Group::Auth)
        );
        assert_eq!(
            group_for(&Method::PUT, "/api/users/password"),
            Some(Group::Auth)
        );
        assert_eq!(
            group_for(&Method::POST, "/api/orders/purchase"),
            Some(Group::Purchase)
        );
        assert_eq!(
            group_for(&Method::POST, "/api/orders/checkout"),
            Some(Group::Purchase)
        );
        assert_eq!(
            group_for(&Method::GET, "/api/auth/me"),
            Some(Group::Default)
        );
        assert_eq!(group_for(&Method::GET, "/health/live"), None);
    }

    #[test]
    fn recommendations_are_public_to_read() {
        assert!(is_public(&Method::GET, "/api/recs"));
        assert!(is_public(&Method::GET, "/api/recs/related"));
        assert!(!is_public(&Method::POST, "/api/recs"));
        assert_eq!(service_for("/api/recs/related"), Some("recs"));
        assert!(is_public(&Method::GET, "/api/settings/schema/booking"));
        assert!(!is_public(&Method::GET, "/api/settings/me"));
        assert!(!is_public(&Method::PUT, "/api/settings/schema/booking"));
        assert_eq!(service_for("/api/settings/platform"), Some("settings"));
        assert!(is_public(&Method::GET, "/api/search/events"));
        assert!(is_public(&Method::POST, "/api/search/events"));
        assert!(is_public(&Method::GET, "/api/analytics/live"));
        assert!(!is_public(&Method::GET, "/api/analytics/live/stream"));
        assert!(!is_public(&Method::GET, "/api/analytics/overview"));
        assert_eq!(service_for("/api/analytics/live"), Some("analytics"));
    }
}
