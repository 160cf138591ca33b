//! Black-box tests of the gateway over real HTTP, and the rate-limiter conformance suite.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

mod contract;
mod edge;
mod limiter;
mod proxy;
mod wire;
