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
use evently_bus::catalog::InventoryChange;
use evently_bus::consumer::Handler;
use evently_bus::{DomainEvent, Envelope};
use std::collections::BTreeMap;
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

impl AvailabilityHandler {
    /// The inventory change an envelope carries; `None` for other events (and for an
    /// undecodable one, which is skipped rather than retried: it would never decode, and
    /// holding it back would hold back every later figure too. Each figure is complete, so the
    /// event's next inventory change restores its availability).
    fn change_of(envelope: &Envelope) -> Option<InventoryChange> {
        if !INVENTORY_EVENTS.contains(&envelope.event_type.as_str()) {
            return None;
        }
        match DomainEvent::decode(envelope) {
            Ok(
                DomainEvent::SeatsHeld(c)
                | DomainEvent::SeatsReleased(c)
                | DomainEvent::OrderPlaced(c)
                | DomainEvent::OrderCancelled(c)
                | DomainEvent::SoldOut(c)
                | DomainEvent::WaitlistOffered(c),
            ) => Some(c),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(
                    envelope.id = %envelope.id,
                    envelope.event_type = %envelope.event_type,
                    error = %e,
                    "undecodable inventory event skipped"
                );
                None
            }
        }
    }

    async fn apply(&self, change: &InventoryChange) -> anyhow::Result<()> {
        self.service
            .apply_availability(EventId(change.event_id), &change.availability)
            .await
            .with_context(|| format!("applying availability of event {}", change.event_id))?;
        Ok(())
    }
}

#[async_trait]
impl Handler for AvailabilityHandler {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        match Self::change_of(envelope) {
            Some(change) => self.apply(&change).await,
            None => Ok(()),
        }
    }

    /// Applies only each event's newest figure of the batch: a figure is the complete
    /// availability and the newest version wins, so the older ones would change nothing after
    /// it. In an on-sale rush this turns hundreds of figures into one write per event. A
    /// status that flipped and flipped back within one batch is not flipped at all.
    async fn handle_batch(&self, envelopes: &[&Envelope]) -> (usize, Option<anyhow::Error>) {
        let mut newest: BTreeMap<uuid::Uuid, InventoryChange> = BTreeMap::new();
        for envelope in envelopes {
            if let Some(change) = Self::change_of(envelope) {
                match newest.get(&change.event_id) {
                    Some(kept) if kept.availability.version >= change.availability.version => {}
                    _ => {
                        newest.insert(change.event_id, change);
                    }
                }
            }
        }
        for change in newest.values() {
            if let Err(e) = self.apply(change).await {
                // Nothing of the batch is acknowledged; applying is idempotent per version.
                return (0, Some(e));
            }
        }
        (envelopes.len(), None)
    }
}
