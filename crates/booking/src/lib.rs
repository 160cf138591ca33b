//! evently-booking: seat inventory, holds, payments, orders and tickets, the waitlist and
//! live availability.

pub mod audit;
pub mod domain;
pub mod error;
pub mod store;

pub use audit::{Audit, audit};
