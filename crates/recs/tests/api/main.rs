//! Black-box tests of recommendations through the gateway over real HTTP, and the store
//! conformance suite.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken set-up"
)]

mod conformance;
mod recs;
mod split;
mod support;
