//! Booking routes: path + method → handler, nothing else. The handlers and their request and
//! response types live in one module per resource: [`seats`] (the seat map), [`holds`],
//! [`payments`], [`orders`] (purchase, listing, cancelling), [`availability`] (with its live
//! stream) and [`waitlist`].

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use evently_core::identity::{InternalToken, JwtKeys};
use std::sync::Arc;

use crate::service::BookingService;

pub mod availability;
pub mod holds;
pub mod internal;
pub mod orders;
pub mod payments;
pub mod seats;
pub mod waitlist;

/// What every booking handler can reach.
#[derive(Clone)]
pub struct BookingState {
    /// The operations.
    pub service: Arc<BookingService>,
    /// Token keys (the `Identity` extractor finds them here).
    pub keys: Arc<JwtKeys>,
    /// The credential other services present to `/internal/*`.
    pub internal: InternalToken,
}

impl FromRef<BookingState> for InternalToken {
    fn from_ref(state: &BookingState) -> Self {
        state.internal.clone()
    }
}

impl FromRef<BookingState> for Arc<JwtKeys> {
    fn from_ref(state: &BookingState) -> Self {
        state.keys.clone()
    }
}

/// The booking router.
pub fn router(state: BookingState) -> Router {
    Router::new()
        .route("/api/orders/seats/{event_id}", get(seats::seat_map))
        .route("/api/orders/holds", post(holds::create_hold))
        .route(
            "/api/orders/holds/{hold_id}",
            get(holds::get_hold).delete(holds::release_hold),
        )
        .route("/api/orders/holds/{hold_id}/ttl", get(holds::hold_ttl))
        .route(
            "/api/orders/holds/{hold_id}/refresh",
            post(holds::refresh_hold),
        )
        .route("/api/orders/payments/intent", post(payments::create_intent))
        .route(
            "/api/orders/payments/confirm",
            post(payments::confirm_intent),
        )
        .route(
            "/api/orders/payments/{payment_intent_id}",
            get(payments::get_payment),
        )
        .route("/api/orders/purchase", post(orders::purchase))
        .route("/api/orders/checkout", post(orders::checkout))
        .route("/api/orders/orders", get(orders::list_orders))
        .route("/api/orders/{order_id}", get(orders::get_order))
        .route("/api/orders/{order_id}/cancel", post(orders::cancel_order))
        .route(
            "/api/events/{event_id}/availability",
            get(availability::availability),
        )
        .route(
            "/api/events/{event_id}/availability/stream",
            get(availability::availability_stream),
        )
        .route(
            "/api/events/{event_id}/waitlist",
            post(waitlist::join_waitlist)
                .get(waitlist::waitlist_position)
                .delete(waitlist::leave_waitlist),
        )
        .route(
            "/internal/booking/events/{event_id}/orders",
            get(internal::event_orders),
        )
        .with_state(state)
}
