//! Black-box tests of search through the gateway, over real HTTP.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly on broken set-up"
)]

mod follow;
