//! How booking's rows are read: the column lists of its tables and the functions that
//! turn a row into a domain value (the store's only place that knows column names).

use evently_core::sql::Row;

use evently_core::db::StoreError;
use uuid::Uuid;

use crate::domain::{
    Hold, HoldId, Inventory, Order, OrderId, PaymentIntent, PaymentIntentId, Ticket, TicketId,
};
use crate::store::{corrupt, seat_list};

pub(super) const INVENTORY_READ: &str = "SELECT event_id, organizer_id, status, deleted, event_date, \
    sale_start, sale_end, currency, base_price, section_prices, reserved, capacity, held, sold, \
    version, sweep_at FROM inventories WHERE event_id = $1";
pub(super) const HOLD_COLUMNS: &str =
    "id, event_id, user_id, seat_ids, kind, status, created_at, expires_at";
pub(super) const ORDER_COLUMNS: &str = "id, event_id, user_id, hold_id, payment_intent_id, \
    seat_ids, amount, currency, status, refunded_amount, cancel_reason, created_at";

pub(super) fn inventory_from(row: &Row) -> Result<Inventory, StoreError> {
    let prices: String = row.get("section_prices")?;
    Ok(Inventory {
        event_id: row.get("event_id")?,
        organizer_id: row.get("organizer_id")?,
        status: row.get("status")?,
        deleted: row.get::<i64>("deleted")? != 0,
        event_date: row.get("event_date")?,
        sale_start: row.get("sale_start")?,
        sale_end: row.get("sale_end")?,
        currency: row.get("currency")?,
        base_price: row.get("base_price")?,
        section_prices: serde_json::from_str(&prices).map_err(|e| corrupt("section_prices", e))?,
        reserved: row.get::<i64>("reserved")? != 0,
        capacity: row.get("capacity")?,
        held: row.get("held")?,
        sold: row.get("sold")?,
        version: row.get("version")?,
        sweep_at: row.get("sweep_at")?,
    })
}

pub(super) fn hold_from(row: &Row) -> Result<Hold, StoreError> {
    let seats: String = row.get("seat_ids")?;
    let kind: String = row.get("kind")?;
    let status: String = row.get("status")?;
    Ok(Hold {
        id: HoldId(row.get("id")?),
        event_id: row.get("event_id")?,
        user_id: row.get("user_id")?,
        seat_ids: seat_list(&seats)?,
        kind: kind.parse().map_err(|e| corrupt("hold kind", e))?,
        status: status.parse().map_err(|e| corrupt("hold status", e))?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
    })
}

pub(super) fn intent_from(row: &Row) -> Result<PaymentIntent, StoreError> {
    intent_named(
        row,
        [
            "id",
            "hold_id",
            "event_id",
            "user_id",
            "amount",
            "currency",
            "status",
            "secret_hash",
        ],
    )
}

/// The payment intent of a purchase's hold-and-intent row, if there was one.
pub(super) fn joined_intent_from(row: &Row) -> Result<Option<PaymentIntent>, StoreError> {
    if row.get::<Option<Uuid>>("intent_id")?.is_none() {
        return Ok(None);
    }
    intent_named(
        row,
        [
            "intent_id",
            "intent_hold_id",
            "intent_event_id",
            "intent_user_id",
            "intent_amount",
            "intent_currency",
            "intent_status",
            "intent_secret_hash",
        ],
    )
    .map(Some)
}

/// A payment intent from the columns `names`: id, hold, event, user, amount, currency,
/// status and secret hash.
pub(super) fn intent_named(row: &Row, names: [&str; 8]) -> Result<PaymentIntent, StoreError> {
    let [
        id,
        hold_id,
        event_id,
        user_id,
        amount,
        currency,
        status,
        secret_hash,
    ] = names;
    let status: String = row.get(status)?;
    Ok(PaymentIntent {
        id: PaymentIntentId(row.get(id)?),
        hold_id: HoldId(row.get(hold_id)?),
        event_id: row.get(event_id)?,
        user_id: row.get(user_id)?,
        amount: row.get(amount)?,
        currency: row.get(currency)?,
        status: status
            .parse()
            .map_err(|e| corrupt("payment intent status", e))?,
        secret_hash: row.get(secret_hash)?,
    })
}

pub(super) fn order_from(row: &Row, tickets: Vec<Ticket>) -> Result<Order, StoreError> {
    let seats: String = row.get("seat_ids")?;
    let status: String = row.get("status")?;
    Ok(Order {
        order_id: OrderId(row.get("id")?),
        event_id: row.get("event_id")?,
        user_id: row.get("user_id")?,
        hold_id: HoldId(row.get("hold_id")?),
        payment_intent_id: PaymentIntentId(row.get("payment_intent_id")?),
        seat_ids: seat_list(&seats)?,
        amount: row.get("amount")?,
        currency: row.get("currency")?,
        status: status.parse().map_err(|e| corrupt("order status", e))?,
        refunded_amount: row.get("refunded_amount")?,
        cancel_reason: row.get("cancel_reason")?,
        created_at: evently_bus::envelope::time_from_ms(row.get("created_at")?),
        tickets,
    })
}

pub(super) fn ticket_from(row: &Row) -> Result<Ticket, StoreError> {
    let status: String = row.get("status")?;
    Ok(Ticket {
        ticket_id: TicketId(row.get("id")?),
        seat_id: row.get("seat_id")?,
        code: row.get("code")?,
        status: status.parse().map_err(|e| corrupt("ticket status", e))?,
    })
}
