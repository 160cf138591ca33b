//! Booking's inventory, as the events service consumes it: each of booking's inventory
//! events (`SeatsHeld`, `SeatsReleased`, `OrderPlaced`, `OrderCancelled`, `SoldOut`,
//! `WaitlistOffered`) carries the event's complete availability after the change, and
//! [`AvailabilityHandler`] stores it and flips ON_SALE ⇄ SOLD_OUT accordingly
//! ([`EventsService::apply_availability`]).
//!
//! Delivery is at-least-once and a figure carries booking's inventory version, so applying is
//! a conditional update on that version: a redelivery or a late duplicate changes nothing,
//! and each flip and its `EventStatusChanged` happen once. Every other event type on the bus
//! is ignored, as are figures for events that no longer exist.

use anyhow::Context;
use async_trait::async_trait;
use evently_bus::consumer::Handler;
use evently_bus::{DomainEvent, Envelope};
use std::sync::Arc;

use crate::domain::EventId;
use crate::service::EventsService;

/// The durable name of the consumer of booking's bus.
pub const AVAILABILITY_CONSUMER: &str = "events-availability";

/// The event types whose payload is an `InventoryChange`.
const INVENTORY_EVENTS: [&str; 6] = [
    "SeatsHeld",
    "SeatsReleased",
    "OrderPlaced",
    "OrderCancelled",
    "SoldOut",
    "WaitlistOffered",
];

/// Applies booking's availability figures to events.
pub struct AvailabilityHandler {
    service: Arc<EventsService>,
}

impl AvailabilityHandler {
    /// A handler applying figures through `service`.
    pub fn new(service: Arc<EventsService>) -> Self {
        Self { service }
    }
}

#[async_trait]
impl Handler for AvailabilityHandler {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        if !INVENTORY_EVENTS.contains(&envelope.event_type.as_str()) {
            return Ok(());
        }
        let change = match DomainEvent::decode(envelope) {
            Ok(
                DomainEvent::SeatsHeld(c)
                | DomainEvent::SeatsReleased(c)
                | DomainEvent::OrderPlaced(c)
                | DomainEvent::OrderCancelled(c)
                | DomainEvent::SoldOut(c)
                | DomainEvent::WaitlistOffered(c),
            ) => c,
            Ok(_) => return Ok(()),
            Err(e) => {
                // Skipped rather than retried: it would never decode, and holding it back
                // would hold back every later figure too. Each figure is complete, so the
                // event's next inventory change restores its availability.
                tracing::error!(
                    envelope.id = %envelope.id,
                    envelope.event_type = %envelope.event_type,
                    error = %e,
                    "undecodable inventory event skipped"
                );
                return Ok(());
            }
        };
        self.service
            .apply_availability(EventId(change.event_id), &change.availability)
            .await
            .with_context(|| format!("applying availability of event {}", change.event_id))?;
        Ok(())
    }
}
