//! evently-bus: the domain-event backbone every service builds on.
//!
//! A service records each change's domain event in its own outbox table, in the same
//! transaction as the change ([`outbox`]). A [`Bus`] then delivers the outbox to durable,
//! named consumers, at least once and in outbox order:
//!
//! - [`in_process::InProcessBus`], the embedded default: consumers read the outbox table
//!   directly and keep their own durable position next to it;
//! - [`nats::NatsBus`] (selected by `bus.nats_url` / `EVENTLY_NATS_URL`): a [`nats::Relay`]
//!   publishes the outbox to a JetStream stream, one row at a time in outbox order, with
//!   `Nats-Msg-Id` set to the event id so that a re-publish after a crash is dropped as a
//!   duplicate, and marks a row published only after JetStream acknowledged it; consumers are
//!   durable JetStream pull consumers.
//!
//! Both behave the same, and [`conformance`] proves it: delivery is at-least-once, so a
//! consumer that crashes before acknowledging sees those events again and must deduplicate by
//! event id ([`consumer::SeenIds`] for in-memory projections; a durable projection records the
//! ids it applied in the same transaction as the effect). A consumer can be reset to replay
//! everything and rebuild its projection.
//!
//! Layout:
//! - [`envelope`]: the wire format of one event; [`catalog`]: the versioned event set;
//! - [`outbox`]: appending in a transaction, reading, positions (SQLite and PostgreSQL);
//! - [`in_process`], [`nats`]: the two buses; [`consumer`]: the consuming loop;
//! - [`wiring`]: how a service opens its own bus and another service's stream from `[bus]`;
//! - [`conformance`]: the tests every bus must pass.

pub mod catalog;
pub mod conformance;
pub mod consumer;
pub mod envelope;
pub mod in_process;
pub mod nats;
pub mod outbox;
pub mod wiring;

use async_trait::async_trait;
use evently_core::db::StoreError;
use std::time::Duration;

pub use catalog::DomainEvent;
pub use envelope::Envelope;
pub use outbox::{Outbox, OutboxRow};

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The outbox's database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker (NATS) is unreachable or refused the request.
    #[error("broker: {0:#}")]
    Broker(anyhow::Error),
    /// A stored or received event could not be decoded.
    #[error("corrupt event: {0}")]
    Corrupt(String),
}

impl BusError {
    pub(crate) fn broker(e: impl Into<anyhow::Error>) -> Self {
        BusError::Broker(e.into())
    }
}

/// One event handed to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event.
    pub envelope: Envelope,
    /// Where it sits in the consumer's sequence (outbox `seq`, or JetStream stream sequence);
    /// increases along a subscription.
    pub position: u64,
}

/// A consumer's open subscription. Deliveries come in outbox order; [`Subscription::ack`]
/// records that everything up to and including a delivery has been processed, durably.
/// Whatever was delivered but not acknowledged is delivered again to the consumer's next
/// subscription, before anything after it; a subscription never hands out an event after one
/// it skipped.
#[async_trait]
pub trait Subscription: Send {
    /// Up to `max` deliveries, waiting up to `wait` for the first one; empty if none came.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Acknowledges `delivery` and every delivery before it.
    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;
}

/// A domain-event bus: named durable consumers over one service's outbox.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// `in-process` or `nats`, for logs and metrics.
    fn kind(&self) -> &'static str;

    /// Opens a subscription for the durable consumer `consumer`, continuing after its last
    /// acknowledged event (from the beginning for a new consumer).
    async fn subscribe(&self, consumer: &str) -> Result<Box<dyn Subscription>, BusError>;

    /// Forgets the position of `consumer`: its next subscription starts from the beginning,
    /// so it can rebuild its projection.
    async fn reset(&self, consumer: &str) -> Result<(), BusError>;

    /// Checks that the bus answers (readiness).
    async fn ping(&self) -> Result<(), BusError>;
}

pub(crate) fn now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}
