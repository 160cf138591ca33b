//! evently-booking: seat inventory, holds, payments, orders and tickets, the waitlist and
//! live availability.

pub mod audit;

pub use audit::{Audit, audit};
