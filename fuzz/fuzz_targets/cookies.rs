//! The cookie bridge: `cookie` (the `Cookie` header parser every service and the gateway
//! use), `token_from_headers` (bearer header or, for safe methods, the access cookie) and
//! the gateway's CSRF origin check (`Origin`, else `Referer`, against the allowed origins
//! and its own `Host`). The input is split at `\n` into header values.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, Method, header};
use evently_core::identity::{ACCESS_COOKIE, TokenError, cookie, token_from_headers};
use evently_gateway::origin_allowed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == b'\n');
    let name = parts
        .next()
        .and_then(|n| std::str::from_utf8(n).ok())
        .filter(|n| !n.is_empty())
        .unwrap_or(ACCESS_COOKIE)
        .to_owned();
    let mut headers = HeaderMap::new();
    let targets = [
        header::COOKIE,
        header::COOKIE,
        header::ORIGIN,
        header::REFERER,
        header::HOST,
        header::AUTHORIZATION,
    ];
    for (value, target) in parts.zip(targets) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(target, value);
        }
    }

    for wanted in [name.as_str(), ACCESS_COOKIE, "refresh_token"] {
        if let Some(value) = cookie(&headers, wanted) {
            // A value is non-empty, within one pair, unquoted and inside some header.
            assert!(!value.is_empty());
            assert!(!value.contains(';'));
            assert!(!value.starts_with('"') && !value.ends_with('"'));
            assert!(
                headers
                    .get_all(header::COOKIE)
                    .iter()
                    .any(|h| h.to_str().is_ok_and(|h| h.contains(value)))
            );
        }
    }

    let safe = token_from_headers(&Method::GET, &headers);
    let unsafe_ = token_from_headers(&Method::POST, &headers);
    if headers.contains_key(header::AUTHORIZATION) {
        // With a header, the header alone decides, whatever the method.
        assert_eq!(safe, unsafe_);
    } else {
        assert_eq!(unsafe_, Err(TokenError::Missing));
        assert_eq!(safe.ok(), cookie(&headers, ACCESS_COOKIE));
    }
    if let Ok(token) = safe {
        assert!(!token.is_empty());
        // The gateway turns a cookie token into a bearer header; one it accepted is a token
        // the services accept from that header.
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            let mut bridged = HeaderMap::new();
            bridged.insert(header::AUTHORIZATION, value);
            let again = token_from_headers(&Method::POST, &bridged);
            if token.trim().is_empty() {
                assert_eq!(again, Err(TokenError::Invalid));
            } else {
                assert_eq!(again, Ok(token.trim()));
            }
        }
    }

    let allowed = vec!["https://tickets.example".to_owned(), name.clone()];
    let verdict = origin_allowed(&allowed, &headers);
    if headers.get(header::ORIGIN).is_none() && headers.get(header::REFERER).is_none() {
        assert!(!verdict, "no origin at all was allowed");
    }
    if verdict && headers.get(header::HOST).is_none() {
        assert!(origin_allowed(&allowed, &headers));
    }
    assert!(!origin_allowed(&[], &HeaderMap::new()));
});
