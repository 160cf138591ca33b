//! Black-box tests of the data service over real HTTP (imports and exports through the
//! gateway), the resumption of stopped imports, and the store conformance suite.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken set-up"
)]

mod atomic;
mod conformance;
mod export;
mod import;
mod resume;
mod support;
