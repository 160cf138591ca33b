//! Access-token verification as every service and the gateway run it: the `Authorization`
//! header (or the `access_token` cookie) through `token_from_headers`, then
//! `JwtKeys::verify` with a fixed test key.
//!
//! The input is used twice: as a raw token (nothing the fuzzer writes carries a valid HS256
//! signature, so it must be refused), and split into a JOSE header and a claims set that are
//! signed with the test key, so that the claim checks behind the signature are fuzzed too. A
//! token is accepted only if its header names HS256 and its claims are an unexpired access
//! token of the configured issuer and audience.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evently_core::config::JwtConfig;
use evently_core::identity::{JwtKeys, TokenError, token_from_headers};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use std::sync::LazyLock;

const SECRET: &str = "0123456789abcdef0123456789abcdef-fuzz";

static KEYS: LazyLock<JwtKeys> =
    LazyLock::new(|| JwtKeys::new(&JwtConfig::default(), &SecretString::from(SECRET)));
static SIGNING: LazyLock<EncodingKey> =
    LazyLock::new(|| EncodingKey::from_secret(SECRET.as_bytes()));

fn signed(header: &[u8], claims: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &SIGNING, Algorithm::HS256)
        .expect("HMAC signing");
    format!("{message}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let keys = &*KEYS;

    // 1. The bytes as a bearer token, as a header and as a cookie.
    let text = String::from_utf8_lossy(data);
    assert!(keys.verify(&text).is_err(), "an unsigned token verified");
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.clone());
        if let Ok(token) = token_from_headers(&Method::GET, &headers) {
            assert!(keys.verify(token).is_err());
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, value);
        match token_from_headers(&Method::GET, &headers) {
            Ok(token) => assert!(keys.verify(token).is_err()),
            Err(e) => assert_eq!(e, TokenError::Missing),
        }
        assert_eq!(
            token_from_headers(&Method::POST, &headers),
            Err(TokenError::Missing)
        );
    }

    // 2. Header and claims signed with the key: `<header>\0<claims>`, or only claims under
    //    an HS256 header.
    let (header_json, claims_json): (&[u8], &[u8]) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (br#"{"alg":"HS256","typ":"JWT"}"#, data),
    };
    let token = signed(header_json, claims_json);
    if let Ok(claims) = keys.verify(&token) {
        let header: serde_json::Value =
            serde_json::from_slice(header_json).expect("an accepted header is JSON");
        assert_eq!(
            header["alg"], "HS256",
            "accepted a header naming another algorithm"
        );
        assert_eq!(claims.token_use, "access");
        assert_eq!(claims.iss, keys.issuer());
        assert_eq!(claims.aud, keys.audience());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(claims.exp >= now - 30, "accepted an expired token");
        // Accepted once, accepted again (the cache answers the same).
        assert_eq!(keys.verify(&token), Ok(claims));
    }
});
