//! Booking through the gateway over real HTTP: the purchase flow, races, authorization and
//! bad input, the waitlist and the cancellation saga — on SQLite, and on PostgreSQL when
//! `EVENTLY_TEST_POSTGRES_URL` is set.

mod authz;
mod checkout;
mod flow;
mod internal_doc;
mod nats_outage;
mod outage;
mod races;
mod redis_outage;
mod sold_out;
mod support;
mod traffic;
