//! Holds inside the inventory transaction: reading them, deciding a new one, writing it,
//! and ending one (its seats back on sale, its intents cancelled or refunded).

use std::collections::BTreeMap;

use evently_bus::DomainEvent;
use evently_bus::catalog::InventoryChange;
use evently_core::db::StoreError;
use evently_core::sql::{On, Sql, Tx, query};
use uuid::Uuid;

use crate::domain::{Hold, HoldKind, Inventory, Policy, Selection, seat_state};
use crate::error::BookingError;
use crate::store::{NewHold, count, json, wanted_seats};

use super::{
    batch::Overlay,
    inventory::{Changes, candidates, change},
    rows::{HOLD_COLUMNS, hold_from},
    writes::{Arg, HOLD_INSERTED, SEAT_HELD, Writes},
};

pub(super) async fn fetch_hold<'a>(
    on: impl Into<On<'a>>,
    hold_id: Uuid,
) -> Result<Option<Hold>, StoreError> {
    let sql = format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1");
    let row = query(Sql::assert_safe(sql))
        .bind(hold_id)
        .fetch_optional(on)
        .await?;
    row.as_ref().map(hold_from).transpose()
}

pub(super) async fn hold_in(tx: &mut Tx, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
    fetch_hold(&mut *tx, hold_id).await
}

/// Ends an active hold: its seats go back on sale, its unconfirmed or paid intents
/// are cancelled or refunded, and a waitlist offer lapses.
pub(super) async fn end_hold(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    hold: &Hold,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    let freed =
        query("UPDATE seats SET state = 0, hold_id = NULL WHERE hold_id = $1 AND state = 1")
            .bind(hold.id)
            .execute(&mut *tx)
            .await?;
    query("UPDATE holds SET status = $2, ended_at = $3 WHERE id = $1")
        .bind(hold.id)
        .bind(status)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    query(
        "UPDATE payment_intents SET status = CASE WHEN status = 'succeeded' \
         THEN 'refunded' ELSE 'cancelled' END, updated_at = $2 \
         WHERE hold_id = $1 AND status IN ('requires_confirmation', 'succeeded')",
    )
    .bind(hold.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if hold.kind == HoldKind::Waitlist.as_str() {
        query(
            "UPDATE waitlist SET status = 'lapsed', updated_at = $2 \
             WHERE hold_id = $1 AND status = 'offered'",
        )
        .bind(hold.id)
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
            hold_id: Some(hold.id),
            seat_ids: hold.seat_ids.clone(),
            reason: Some(status.to_owned()),
            ..change(inv)
        },
    );
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
    hold_id: Uuid,
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
                Arg::Uuid(hold_id),
                Arg::Text(seat.clone()),
            ],
            Some(1),
        );
    }
    writes.push_row(
        &HOLD_INSERTED,
        vec![
            Arg::Uuid(hold_id),
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
            hold_id: Some(hold_id),
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
        kind: kind.as_str().to_owned(),
        status: "active".into(),
        created_at: now,
        expires_at,
    })
}

/// The states of `wanted` seats of the event that exist.
pub(super) async fn seat_states(
    tx: &mut Tx,
    event_id: Uuid,
    wanted: &[String],
) -> Result<BTreeMap<String, i64>, StoreError> {
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
        states.insert(row.get("seat_id")?, row.get("state")?);
    }
    Ok(states)
}

/// The checks and writes of a hold, inside the inventory transaction (the writes
/// added to `writes`). In a batch (`overlay`), `None` when the request must go alone:
/// it replaces the buyer's live hold, or the buyer already has a hold in the batch.
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
    if inv.deleted {
        return Err(BookingError::EventNotFound);
    }
    if let Some(why) = inv.sale_closed(now) {
        return Err(BookingError::NotOnSale(why));
    }
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
                    let hold = hold_from(row)?;
                    end_hold(tx, inv, changes, &hold, "released", now).await?;
                }
            }
            owned
        }
    };
    let quantity = new.selection.quantity();
    if owned + quantity > policy.max_tickets_per_user {
        return Err(BookingError::TicketLimit {
            limit: policy.max_tickets_per_user,
            owned,
        });
    }
    let seats = match &new.selection {
        Selection::Seats(wanted) => {
            let states: BTreeMap<String, i64> = match overlay.as_deref() {
                Some(o) => wanted
                    .iter()
                    .filter_map(|s| o.states.get(s).map(|state| (s.clone(), *state)))
                    .collect(),
                None => seat_states(tx, new.event_id, wanted).await?,
            };
            let unknown: Vec<&String> =
                wanted.iter().filter(|s| !states.contains_key(*s)).collect();
            if !unknown.is_empty() {
                let mut problem =
                    evently_core::Problem::validation().detail("no such seats at this event");
                for (i, seat) in wanted.iter().enumerate() {
                    if !states.contains_key(seat) {
                        problem = problem.field(
                            format!("/seatIds/{i}"),
                            format!("{seat} is not a seat of this event"),
                        );
                    }
                }
                return Err(BookingError::Invalid(problem));
            }
            let conflicts: Vec<String> = wanted
                .iter()
                .filter(|s| {
                    states.get(*s) != Some(&seat_state::AVAILABLE)
                        || overlay.as_deref().is_some_and(|o| o.taken.contains(*s))
                })
                .cloned()
                .collect();
            if !conflicts.is_empty() {
                return Err(BookingError::SeatsUnavailable(conflicts));
            }
            wanted.clone()
        }
        Selection::Best { quantity, section } => {
            let wanted = usize::try_from(*quantity).unwrap_or(usize::MAX);
            // Adjacent seats are looked for among the first free ones in layout
            // order; one seat is simply the first.
            let window = if inv.reserved && *quantity > 1 {
                (quantity * 20).max(200)
            } else {
                *quantity
            };
            let limit = usize::try_from(window).unwrap_or(usize::MAX);
            let found: Vec<_> = match (overlay.as_deref(), section) {
                (Some(o), None) => o
                    .free
                    .iter()
                    .filter(|seat| !o.taken.contains(&seat.0))
                    .take(limit)
                    .cloned()
                    .collect(),
                (o, section) => {
                    let taken = o.map_or(0, |o| o.taken.len());
                    let mut found =
                        candidates(tx, new.event_id, section.as_deref(), window + count(taken))
                            .await?;
                    if let Some(o) = o {
                        found.retain(|seat| !o.taken.contains(&seat.0));
                    }
                    found.truncate(limit);
                    found
                }
            };
            match crate::domain::pick_best(&found, wanted) {
                Some(seats) => seats,
                None => {
                    return Err(BookingError::SoldOut {
                        available: count(found.len()),
                    });
                }
            }
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
