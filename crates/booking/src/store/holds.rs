//! Holds inside the inventory transaction: reading them, deciding a new one (by
//! [`crate::domain::decide_hold`] on the facts read), writing it, and ending one (its seats
//! back on sale, its intents cancelled or refunded).

use evently_core::sql::{On, Sql, Tx, query};

use evently_bus::DomainEvent;
use evently_bus::catalog::{InventoryChange, PaymentRefund};
use evently_core::db::StoreError;
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::domain::{
    Candidate, Hold, HoldFacts, HoldId, HoldKind, HoldStatus, Inventory, Policy, SeatState,
    SeatsAsked, Selection, StatusMachine, best_window, decide_hold, open_for_holds,
    within_ticket_limit,
};
use crate::error::BookingError;
use crate::store::{
    Arg, HOLD_INSERTED, NewHold, Overlay, SEAT_HELD, Writes, corrupt, count, json, wanted_seats,
};

use super::{
    inventory::{Changes, candidates, change},
    rows::{HOLD_COLUMNS, hold_from},
};

pub(super) async fn fetch_hold<'a>(
    on: impl Into<On<'a>>,
    hold_id: HoldId,
) -> Result<Option<Hold>, StoreError> {
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1");
    let row = query(Sql::assert_safe(sql))
        .bind(hold_id.0)
        .fetch_optional(on)
        .await?;
    row.as_ref().map(hold_from).transpose()
}

pub(super) async fn hold_in(tx: &mut Tx, hold_id: HoldId) -> Result<Option<Hold>, StoreError> {
    fetch_hold(&mut *tx, hold_id).await
}

/// Ends an active hold with `status`: its seats go back on sale, its unconfirmed or
/// paid intents are cancelled or refunded, and a waitlist offer lapses.
pub(super) async fn end_hold(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    hold: &Hold,
    status: HoldStatus,
    now: i64,
) -> Result<(), StoreError> {
    let status = hold
        .status
        .transition(status)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("ending hold {}: {e}", hold.id)))?;
    let freed =
        query("UPDATE seats SET state = 0, hold_id = NULL WHERE hold_id = $1 AND state = 1")
            .bind(hold.id.0)
            .execute(&mut *tx)
            .await?;
    query("UPDATE holds SET status = $2, ended_at = $3 WHERE id = $1")
        .bind(hold.id.0)
        .bind(status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    // A paid intent whose hold ends unpurchased (a crash between confirm and purchase, or a
    // buyer who never came back) is refunded here, in the transaction that ends the hold: the
    // conditional update moves each intent at most once, and its `PaymentRefunded` commits
    // with it. Unconfirmed intents are cancelled first: that locks every row a confirmation
    // racing this transaction could still change, so one that commits before is refunded by
    // the second statement and one that comes after finds its intent cancelled.
    query(
        "UPDATE payment_intents SET status = 'cancelled', updated_at = $2 \
         WHERE hold_id = $1 AND status = 'requires_confirmation'",
    )
    .bind(hold.id.0)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let refunded = query(
        "UPDATE payment_intents SET status = 'refunded', updated_at = $2 \
         WHERE hold_id = $1 AND status = 'succeeded' RETURNING id, amount, currency",
    )
    .bind(hold.id.0)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    if hold.kind == HoldKind::Waitlist {
        query(
            "UPDATE waitlist SET status = 'lapsed', updated_at = $2 \
             WHERE hold_id = $1 AND status = 'offered'",
        )
        .bind(hold.id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    let freed = i64::try_from(freed).unwrap_or(0);
    inv.held -= freed;
    changes.freed = true;
    changes.push(
        inv,
        now,
        DomainEvent::SeatsReleased,
        InventoryChange {
            user_id: Some(hold.user_id),
            hold_id: Some(hold.id.0),
            seat_ids: hold.seat_ids.clone(),
            reason: Some(status.as_str().to_owned()),
            ..change(inv)
        },
    );
    for row in &refunded {
        let refund = PaymentRefund {
            payment_intent_id: row.get("id")?,
            event_id: hold.event_id,
            hold_id: hold.id.0,
            user_id: hold.user_id,
            amount: row.get("amount")?,
            currency: row.get("currency")?,
            reason: status.as_str().to_owned(),
        };
        tracing::warn!(
            payment.id = %refund.payment_intent_id,
            hold.id = %hold.id,
            reason = %refund.reason,
            "paid intent refunded: its hold ended without a purchase"
        );
        // An intent is refunded once in its life: its refund is version 2 of it (created,
        // then refunded).
        changes.envelopes.push(
            DomainEvent::PaymentRefunded(refund)
                .into_envelope(2, evently_bus::envelope::time_from_ms(now)),
        );
    }
    Ok(())
}

/// Writes a new hold row and moves its seats and the counters; the seats (which the
/// reads before saw available under the inventory lock) and the row are written with
/// `writes`.
#[allow(clippy::too_many_arguments)]
pub(super) fn insert_hold(
    writes: &mut Writes,
    inv: &mut Inventory,
    changes: &mut Changes,
    hold_id: HoldId,
    user_id: Uuid,
    seats: Vec<String>,
    kind: HoldKind,
    expires_at: i64,
    now: i64,
) -> Result<Hold, BookingError> {
    for seat in &seats {
        writes.push_row(
            &SEAT_HELD,
            vec![
                Arg::Uuid(inv.event_id),
                Arg::Uuid(hold_id.0),
                Arg::Text(seat.clone()),
            ],
            Some(1),
        );
    }
    writes.push_row(
        &HOLD_INSERTED,
        vec![
            Arg::Uuid(hold_id.0),
            Arg::Uuid(inv.event_id),
            Arg::Uuid(user_id),
            Arg::Text(json(&seats)?),
            Arg::Int(count(seats.len())),
            Arg::Text(kind.as_str().to_owned()),
            Arg::Int(now),
            Arg::Int(expires_at),
        ],
        None,
    );
    inv.held += count(seats.len());
    inv.sweep_at = inv.sweep_at.min(expires_at);
    let make = match kind {
        HoldKind::Buyer => DomainEvent::SeatsHeld,
        HoldKind::Waitlist => DomainEvent::WaitlistOffered,
    };
    changes.push(
        inv,
        now,
        make,
        InventoryChange {
            user_id: Some(user_id),
            hold_id: Some(hold_id.0),
            seat_ids: seats.clone(),
            reason: (kind == HoldKind::Waitlist).then(|| "waitlist-offer".to_owned()),
            ..change(inv)
        },
    );
    Ok(Hold {
        id: hold_id,
        event_id: inv.event_id,
        user_id,
        seat_ids: seats,
        kind,
        status: HoldStatus::Active,
        created_at: now,
        expires_at,
    })
}

/// The states of `wanted` seats of the event that exist.
pub(super) async fn seat_states(
    tx: &mut Tx,
    event_id: Uuid,
    wanted: &[String],
) -> Result<BTreeMap<String, SeatState>, StoreError> {
    let sql = format!(
        "{} SELECT s.seat_id, CAST(s.state AS BIGINT) AS state FROM wanted \
         JOIN seats s ON s.event_id = $1 AND s.seat_id = wanted.seat_id",
        wanted_seats(2, wanted.len())
    );
    let mut query = query(Sql::assert_safe(sql)).bind(event_id);
    for seat in wanted {
        query = query.bind(seat);
    }
    let mut states = BTreeMap::new();
    for row in &query.fetch_all(&mut *tx).await? {
        let state =
            SeatState::try_from(row.get::<i64>("state")?).map_err(|e| corrupt("seat state", e))?;
        states.insert(row.get("seat_id")?, state);
    }
    Ok(states)
}

/// A hold inside the inventory transaction: reads what [`decide_hold`] decides on, and
/// adds the writes of what it decided to `writes`. In a batch (`overlay`), `None` when
/// the request must go alone: it replaces the buyer's live hold, or the buyer already
/// has a hold in the batch.
#[allow(clippy::too_many_arguments)]
pub(super) async fn hold_step(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    writes: &mut Writes,
    overlay: Option<&mut Overlay>,
    new: &NewHold,
    now: i64,
    policy: Policy,
) -> Result<Option<Hold>, BookingError> {
    // The rules that need nothing more than the inventory refuse before any read.
    open_for_holds(inv, now)?;
    // The buyer's own live hold never blocks them: the new hold replaces it. One
    // statement reads those holds and the tickets the buyer already owns. Both are
    // found by the buyer alone (the materialised CTEs keep the event out of those
    // lookups), through `holds_of_user` and `orders_of_user`: by event and buyer, a
    // planner with stale statistics picks the event's index and walks every live hold
    // or every order of the event.
    let owned = match overlay.as_deref() {
        // In a batch, a replacement goes alone: ending the old hold is undone with
        // the new one's transaction if the new one is refused.
        Some(o) if o.live.contains(&new.user_id) || o.holders.contains(&new.user_id) => {
            return Ok(None);
        }
        Some(o) => {
            o.owned.get(&new.user_id).copied().unwrap_or(0)
                + o.bought.get(&new.user_id).copied().unwrap_or(0)
        }
        None => {
            let rows = query(
                "WITH mine AS MATERIALIZED (SELECT id, event_id, user_id, seat_ids, \
                 kind, status, created_at, expires_at FROM holds WHERE user_id = $2 \
                 AND status = 'active'), \
                 bought AS MATERIALIZED (SELECT event_id, quantity FROM orders \
                 WHERE user_id = $2 AND status = 'confirmed') \
                 SELECT (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM bought \
                 WHERE event_id = $1) AS owned, \
                 h.id AS own_hold, h.id, h.event_id, h.user_id, h.seat_ids, h.kind, \
                 h.status, h.created_at, h.expires_at FROM (SELECT 1 AS one) AS one \
                 LEFT JOIN mine h ON h.event_id = $1",
            )
            .bind(new.event_id)
            .bind(new.user_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut owned = 0;
            for row in &rows {
                owned = row.get("owned")?;
                if row.get::<Option<Uuid>>("own_hold")?.is_some() {
                    // Ending the old hold is taken back if the new one is refused.
                    tx.isolate();
                    let hold = hold_from(row)?;
                    end_hold(tx, inv, changes, &hold, HoldStatus::Released, now).await?;
                }
            }
            owned
        }
    };
    within_ticket_limit(owned, new.selection.quantity(), policy.max_tickets_per_user)?;
    let no_seats = std::collections::HashSet::new();
    let taken = overlay.as_deref().map_or(&no_seats, |o| &o.taken);
    let seats = match &new.selection {
        Selection::Seats(wanted) => {
            let states: BTreeMap<String, SeatState> = match overlay.as_deref() {
                Some(o) => wanted
                    .iter()
                    .filter_map(|s| o.states.get(s).map(|state| (s.clone(), *state)))
                    .collect(),
                None => seat_states(tx, new.event_id, wanted).await?,
            };
            decide_hold(&HoldFacts {
                event: inv,
                now,
                max_tickets: policy.max_tickets_per_user,
                owned,
                taken,
                asked: SeatsAsked::Named {
                    wanted,
                    states: &states,
                },
            })?
        }
        Selection::Best { quantity, section } => {
            let read;
            let free: &[Candidate] = match (overlay.as_deref(), section) {
                (Some(o), None) => &o.free,
                (o, section) => {
                    // Enough free seats for the window once those taken earlier in
                    // the batch are left out.
                    let limit = best_window(inv.reserved, *quantity)
                        + o.map_or(0, |o| count(o.taken.len()));
                    read = candidates(tx, new.event_id, section.as_deref(), limit).await?;
                    &read
                }
            };
            decide_hold(&HoldFacts {
                event: inv,
                now,
                max_tickets: policy.max_tickets_per_user,
                owned,
                taken,
                asked: SeatsAsked::Best {
                    quantity: *quantity,
                    free,
                },
            })?
        }
    };
    let hold = insert_hold(
        writes,
        inv,
        changes,
        new.hold_id,
        new.user_id,
        seats,
        HoldKind::Buyer,
        now + new.ttl_ms,
        now,
    )?;
    if let Some(overlay) = overlay {
        overlay.taken.extend(hold.seat_ids.iter().cloned());
        overlay.holders.insert(new.user_id);
    }
    Ok(Some(hold))
}
