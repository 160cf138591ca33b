//! Purchases and orders inside the inventory transaction: the purchase's checks (by
//! [`crate::domain::check_purchase`] on the facts read) and writes, reading orders with their
//! tickets, and cancelling an order.

use evently_core::sql::{Sql, Tx, query};

use evently_bus::DomainEvent;
use evently_bus::catalog::InventoryChange;
use evently_core::db::StoreError;

use crate::domain::{
    Confirmation, HoldKind, Inventory, Order, OrderId, OrderStatus, Payment, Policy, PurchaseFacts,
    Ticket, TicketId, TicketStatus, check_purchase, checkout_intent, random_token,
    within_ticket_limit,
};
use crate::error::BookingError;
use crate::store::{
    Arg, HOLD_PURCHASED, INTENT_PAID, KEY_COMPLETED, ORDER_INSERTED, Overlay, Purchase, SEATS_SOLD,
    TICKET_INSERTED, Writes, count, json,
};

use super::{
    inventory::{Changes, change},
    rows::{ORDER_COLUMNS, hold_from, joined_intent_from, order_from, ticket_from},
};

/// Cancels one confirmed order inside an inventory transaction.
pub(super) async fn cancel_in(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    order_id: OrderId,
    reason: &str,
    now: i64,
) -> Result<Order, BookingError> {
    let mut order = order_in(tx, order_id)
        .await?
        .ok_or(BookingError::OrderNotFound)?;
    order
        .cancel(reason)
        .map_err(|_| BookingError::OrderCancelled)?;
    let freed = query(
        "UPDATE seats SET state = 0, order_id = NULL WHERE event_id = $1 \
         AND order_id = $2 AND state = 2",
    )
    .bind(inv.event_id)
    .bind(order_id.0)
    .execute(&mut *tx)
    .await?;
    query("UPDATE tickets SET status = 'void' WHERE order_id = $1")
        .bind(order_id.0)
        .execute(&mut *tx)
        .await?;
    query(
        "UPDATE orders SET status = 'cancelled', refunded_amount = amount, \
         cancel_reason = $2, cancelled_at = $3 WHERE id = $1",
    )
    .bind(order_id.0)
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    query("UPDATE payment_intents SET status = 'refunded', updated_at = $2 WHERE id = $1")
        .bind(order.payment_intent_id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    inv.sold -= i64::try_from(freed).unwrap_or(0);
    changes.freed = true;
    changes.push(
        inv,
        now,
        DomainEvent::OrderCancelled,
        InventoryChange {
            user_id: Some(order.user_id),
            order_id: Some(order_id.0),
            seat_ids: order.seat_ids.clone(),
            amount: Some(order.amount),
            currency: Some(order.currency.clone()),
            reason: Some(reason.to_owned()),
            ..change(inv)
        },
    );
    Ok(order)
}

pub(super) async fn tickets_of(tx: &mut Tx, order_id: OrderId) -> Result<Vec<Ticket>, StoreError> {
    let rows =
        query("SELECT id, seat_id, code, status FROM tickets WHERE order_id = $1 ORDER BY seat_id")
            .bind(order_id.0)
            .fetch_all(&mut *tx)
            .await?;
    rows.iter().map(ticket_from).collect()
}

pub(super) async fn order_in(tx: &mut Tx, order_id: OrderId) -> Result<Option<Order>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
    let Some(row) = query(Sql::assert_safe(sql))
        .bind(order_id.0)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let tickets = tickets_of(tx, order_id).await?;
    order_from(&row, tickets).map(Some)
}

/// The columns of a purchase's read: its hold `h`, and the payment intent `i` that
/// [`named_intent`] or [`PAID_INTENT`] joins to it.
pub(super) const PURCHASE_COLUMNS: &str = "h.id, h.event_id, h.user_id, h.seat_ids, h.kind, \
    h.status, h.created_at, h.expires_at, i.id AS intent_id, \
    i.hold_id AS intent_hold_id, i.event_id AS intent_event_id, \
    i.user_id AS intent_user_id, i.amount AS intent_amount, \
    i.currency AS intent_currency, i.status AS intent_status, \
    i.secret_hash AS intent_secret_hash";

/// Joins to the hold `h` the payment intent `i` whose id is `named` (an SQL expression): what
/// a purchase paid by a confirmed intent reads.
pub(super) fn named_intent(named: &str) -> String {
    format!("LEFT JOIN payment_intents i ON i.id = {named}")
}

/// Joins to the hold `h` its succeeded payment intent `i`, if the hold was paid before: what a
/// checkout reads.
pub(super) const PAID_INTENT: &str =
    "LEFT JOIN payment_intents i ON i.hold_id = h.id AND i.status = 'succeeded'";

/// A purchase inside the inventory transaction: its checks, and its writes (with the
/// idempotency record's answer) added to `writes`. Returns the order and its answer.
#[expect(
    clippy::too_many_arguments,
    reason = "the transaction's parts, the request and its policy"
)]
pub(super) async fn purchase_step(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    writes: &mut Writes,
    overlay: Option<&mut Overlay>,
    input: &Purchase,
    now: i64,
    policy: Policy,
) -> Result<(Order, String), BookingError> {
    let order = purchase_in(tx, inv, changes, writes, overlay, input, now, policy).await?;
    let body = json(&order)?;
    writes.push_row(
        &KEY_COMPLETED,
        vec![
            Arg::Uuid(input.key.user_id),
            Arg::Text(input.key.route.clone()),
            Arg::Text(input.key.key.clone()),
            Arg::Text(body.clone()),
        ],
        None,
    );
    Ok((order, body))
}

/// A purchase inside the inventory transaction: reads the hold and payment intent
/// [`check_purchase`] decides on (and, under [`Policy::limit_purchases`], the tickets the
/// buyer already bought), and adds the writes of the sale to `writes`.
#[expect(
    clippy::too_many_arguments,
    reason = "the transaction's parts, the request and its policy"
)]
pub(super) async fn purchase_in(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    writes: &mut Writes,
    overlay: Option<&mut Overlay>,
    input: &Purchase,
    now: i64,
    policy: Policy,
) -> Result<Order, BookingError> {
    let found = match overlay.as_deref() {
        Some(o) => match input.payment {
            Payment::Confirmed => o.purchases.get(&(input.hold_id, input.intent_id)).cloned(),
            Payment::AtCheckout(_) => o.checkouts.get(&input.hold_id).cloned(),
        },
        None => {
            let join = match input.payment {
                Payment::Confirmed => named_intent("$2"),
                Payment::AtCheckout(_) => PAID_INTENT.to_owned(),
            };
            let sql = format!("SELECT {PURCHASE_COLUMNS} FROM holds h {join} WHERE h.id = $1");
            let mut read = query(Sql::assert_safe(sql)).bind(input.hold_id.0);
            if input.payment == Payment::Confirmed {
                read = read.bind(input.intent_id.0);
            }
            let row = read.fetch_optional(&mut *tx).await?;
            row.as_ref()
                .map(|row| Ok::<_, StoreError>((hold_from(row)?, joined_intent_from(row)?)))
                .transpose()?
        }
    };
    // At checkout, the intent it pays with: the hold's own if it was paid before, else a
    // new one (`true`), stored below once every check has passed.
    let checkout = match (input.payment, &found) {
        (Payment::AtCheckout(_), Some((hold, paid))) => Some(
            checkout_intent(hold, inv, paid.as_ref(), input.user_id, input.intent_id)
                .ok_or_else(|| anyhow::anyhow!("order amount overflows"))?,
        ),
        _ => None,
    };
    let intent = match &checkout {
        Some((intent, _)) => Some(intent),
        None => found.as_ref().and_then(|(_, intent)| intent.as_ref()),
    };
    let (hold, intent) = check_purchase(&PurchaseFacts {
        buyer: input.user_id,
        event_id: inv.event_id,
        event_cancelled: inv.is_cancelled(),
        hold: found.as_ref().map(|(hold, _)| hold),
        intent,
        seat_ids: &input.seat_ids,
        bought_earlier: overlay
            .as_deref()
            .is_some_and(|o| o.purchased.contains(&input.hold_id)),
    })?;
    if policy.limit_purchases {
        // Stored orders, plus those bought earlier in this batch (not stored yet).
        let stored: i64 = query(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS owned FROM orders \
             WHERE user_id = $1 AND event_id = $2 AND status = 'confirmed'",
        )
        .bind(input.user_id)
        .bind(inv.event_id)
        .fetch_one(&mut *tx)
        .await?
        .get("owned")?;
        let earlier = overlay
            .as_deref()
            .and_then(|o| o.bought.get(&input.user_id).copied())
            .unwrap_or(0);
        within_ticket_limit(
            stored + earlier,
            count(hold.seat_ids.len()),
            policy.max_tickets_per_user,
        )?;
    }
    if let (Payment::AtCheckout(card), Some((_, true))) = (input.payment, &checkout) {
        // Every check passed: the simulated processor charges the card; a refusal leaves
        // everything as it was.
        match card {
            Confirmation::Succeed => {}
            Confirmation::Decline => return Err(BookingError::PaymentDeclined),
            Confirmation::Fail => return Err(BookingError::PaymentFailed),
        }
        writes.push_row(
            &INTENT_PAID,
            vec![
                Arg::Uuid(intent.id.0),
                Arg::Uuid(hold.id.0),
                Arg::Uuid(inv.event_id),
                Arg::Uuid(input.user_id),
                Arg::Int(intent.amount),
                Arg::Text(intent.currency.clone()),
                Arg::Int(now),
            ],
            Some(1),
        );
    }
    // Every seat of an active hold is held by it (the hold owns exactly its seats).
    writes.push_row(
        &SEATS_SOLD,
        vec![Arg::Uuid(hold.id.0), Arg::Uuid(input.order_id.0)],
        Some(hold.seat_ids.len() as u64),
    );
    let quantity = count(hold.seat_ids.len());
    writes.push_row(
        &ORDER_INSERTED,
        vec![
            Arg::Uuid(input.order_id.0),
            Arg::Uuid(inv.event_id),
            Arg::Uuid(input.user_id),
            Arg::Uuid(hold.id.0),
            Arg::Uuid(intent.id.0),
            Arg::Text(json(&hold.seat_ids)?),
            Arg::Int(quantity),
            Arg::Int(intent.amount),
            Arg::Text(intent.currency.clone()),
            Arg::Int(now),
        ],
        None,
    );
    let mut tickets = Vec::with_capacity(hold.seat_ids.len());
    for seat in &hold.seat_ids {
        tickets.push(Ticket {
            ticket_id: TicketId::new(),
            seat_id: seat.clone(),
            code: random_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?,
            status: TicketStatus::Valid,
        });
    }
    for t in &tickets {
        writes.push_row(
            &TICKET_INSERTED,
            vec![
                Arg::Uuid(t.ticket_id.0),
                Arg::Uuid(input.order_id.0),
                Arg::Uuid(inv.event_id),
                Arg::Text(t.seat_id.clone()),
                Arg::Text(t.code.clone()),
            ],
            Some(1),
        );
    }
    writes.push_row(
        &HOLD_PURCHASED,
        vec![Arg::Uuid(hold.id.0), Arg::Int(now)],
        Some(1),
    );
    if hold.kind == HoldKind::Waitlist {
        writes.push(
            "UPDATE waitlist SET status = 'claimed', updated_at = $2 WHERE hold_id = $1",
            vec![Arg::Uuid(hold.id.0), Arg::Int(now)],
            None,
        );
    }
    inv.held -= quantity;
    inv.sold += quantity;
    if let Some(overlay) = overlay {
        overlay.purchased.insert(hold.id);
        *overlay.bought.entry(input.user_id).or_default() += quantity;
    }
    changes.push(
        inv,
        now,
        DomainEvent::OrderPlaced,
        InventoryChange {
            user_id: Some(input.user_id),
            hold_id: Some(hold.id.0),
            order_id: Some(input.order_id.0),
            seat_ids: hold.seat_ids.clone(),
            amount: Some(intent.amount),
            currency: Some(intent.currency.clone()),
            ..change(inv)
        },
    );
    tickets.sort_by(|a, b| a.seat_id.cmp(&b.seat_id));
    Ok(Order {
        order_id: input.order_id,
        event_id: inv.event_id,
        user_id: input.user_id,
        hold_id: hold.id,
        payment_intent_id: intent.id,
        seat_ids: hold.seat_ids.clone(),
        amount: intent.amount,
        currency: intent.currency.clone(),
        status: OrderStatus::Confirmed,
        refunded_amount: None,
        cancel_reason: None,
        created_at: evently_bus::envelope::time_from_ms(now),
        tickets,
    })
}
