//! An audit of one event's inventory, straight from the store's rows: what a load test or an
//! operator checks after an on-sale.

use serde::Serialize;
use uuid::Uuid;

/// The state of one event's inventory, counted from the store's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    /// Seats (or general-admission places) in all.
    pub capacity: i64,
    /// Seats whose state is sold.
    pub sold_seats: i64,
    /// Valid tickets (of orders that are not cancelled).
    pub tickets: i64,
    /// Orders that are not cancelled.
    pub orders: i64,
    /// Holds still live (neither expired, released nor purchased).
    pub live_holds: i64,
    /// Valid tickets beyond capacity (must be 0).
    pub oversold: i64,
    /// Seats with more than one valid ticket (must be 0).
    pub double_sold: i64,
    /// Sold seats without their order's valid ticket, plus valid tickets whose seat is not
    /// sold to their order (must be 0).
    pub mismatched: i64,
    /// How far the inventory's `held` and `sold` counters are from the seat rows (must be 0).
    pub counters_mismatched: i64,
    /// Paid intents with no order whose hold is neither live nor pending its sweep: money
    /// taken for nothing (must be 0; the expiry sweep refunds them).
    pub unrefunded_payments: i64,
    /// Orders whose payment is not in the state the order's is (a confirmed order's intent
    /// succeeded for its hold, a cancelled one's refunded) (must be 0).
    pub unpaid_orders: i64,
    /// Paid intents refunded without ever becoming an order (their hold ended first).
    pub refunded_payments: i64,
    /// Buyers waiting on the waitlist (entries neither offered seats nor ended).
    pub waiting: i64,
}

impl Audit {
    /// Whether the invariants hold: nothing oversold, double-sold or mismatched, counters
    /// equal to the rows, every order paid and no payment kept without its order.
    pub fn is_sound(&self) -> bool {
        self.oversold == 0
            && self.double_sold == 0
            && self.mismatched == 0
            && self.sold_seats == self.tickets
            && self.counters_mismatched == 0
            && self.unrefunded_payments == 0
            && self.unpaid_orders == 0
    }
}

/// Audits event `event_id` in the booking database at `database_url` (`sqlite:…` or
/// `postgres://…`, the URL the booking service runs on).
///
/// # Errors
/// When the database cannot be opened or read, or booking does not know the event.
pub async fn audit(database_url: &str, event_id: Uuid) -> anyhow::Result<Audit> {
    let config = evently_core::config::Config::default();
    let url = secrecy::SecretString::from(database_url.to_owned());
    let (store, _) = crate::open_store(&url, &config).await?;
    let now = evently_bus::envelope::time_to_ms(time::OffsetDateTime::now_utc());
    store
        .audit(event_id, now)
        .await?
        .ok_or_else(|| anyhow::anyhow!("booking has no inventory for event {event_id}"))
}
