//! The `Idempotency-Key` header parser of `POST /api/orders/purchase`: accepted exactly when
//! it is one header of 1 to 255 visible ASCII characters (and then byte for byte as sent),
//! otherwise a 400 problem. The input is split at `\n` into one or more header values.
#![no_main]

use axum::http::{HeaderMap, HeaderValue};
use evently_booking::http::orders::idempotency_key;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut sent = Vec::new();
    for value in data.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append("idempotency-key", v);
            sent.push(value);
        }
    }
    let valid = sent.len() == 1
        && !sent[0].is_empty()
        && sent[0].len() <= 255
        && sent[0].iter().all(|b| (0x21..=0x7e).contains(b));
    match idempotency_key(&headers) {
        Ok(key) => {
            assert!(valid, "accepted {sent:?}");
            assert_eq!(key.as_bytes(), sent[0]);
        }
        Err(problem) => {
            assert!(!valid, "refused {sent:?}");
            assert_eq!(problem.status().as_u16(), 400);
        }
    }
});
