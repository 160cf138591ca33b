//! Idempotency keys of purchases. What a stored key means for a request that brings it again
//! is a rule every service shares ([`decide_key`]), so it lives in
//! [`evently_core::idempotency`]; booking stores the keys (`idempotency_keys`) and decides
//! with it under its write transaction.

pub use evently_core::idempotency::{
    IdempotencyKey, KeyDecision, KeyStatus, StoredKey, decide_key,
};
