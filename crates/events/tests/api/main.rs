//! Black-box tests of the events service over real HTTP, and the store conformance suite.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken set-up"
)]

mod availability;
mod bad_input;
mod conformance;
mod crud;
mod internal;
mod outbox;
mod status;
mod support;
