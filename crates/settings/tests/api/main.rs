//! Black-box tests of settings through the gateway over real HTTP (and their live effect on
//! booking), and the store conformance suite.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken set-up"
)]

mod conformance;
mod settings;
