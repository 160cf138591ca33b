//! Black-box tests of analytics through the gateway over real HTTP (figures reconciled with
//! booking's audit, access, series), and the store conformance suite.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken set-up"
)]

mod audit;
mod conformance;
mod live;
mod replica;
mod routes;
mod split;
mod support;
