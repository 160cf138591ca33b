//! The behaviour every [`BookingStore`](evently_booking::BookingStore) backend must show, one
//! module per area. Each `async fn` in an area is one test; the
//! `evently_testkit::conformance_suite!` at the bottom of its module lists them and runs them
//! against SQLite and, when `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a
//! fresh database or schema. A new test is added to that list, next to its function. The store
//! is given with its outbox, which every inventory change must reach in the same transaction.
//!
//! Time is whatever epoch milliseconds a case passes as `now`: expiry is tested by passing a
//! later `now`, never by waiting. Inventories are created as the events service's domain
//! events would create them, through `BookingStore::apply_catalog`.
//!
//! Only the crate's public API is used: the suite proves what any caller of the store can rely
//! on.

#![expect(
    clippy::unwrap_used,
    reason = "store set-up and conformance checks fail loudly"
)]

mod support;

mod catalog;
mod checkout;
mod concurrency;
mod holds;
mod lifecycle;
mod payments;
mod purchase;
mod waitlist;
