//! Black-box tests of the auth service over real HTTP, and the store conformance suite.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken set-up"
)]

mod accounts;
mod conformance;
mod health;
mod login;
mod postgres;
mod register;
mod roles;
mod tokens;
