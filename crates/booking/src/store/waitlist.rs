//! The waitlist inside the inventory transaction: offering freed seats to waiting buyers,
//! publishing joins and departures, and closing every inventory transaction (its writes,
//! offers, sell-out and events).
//!
//! The waitlist's length is the number of entries still `waiting`: an offer takes the
//! head's entry off the list (it becomes `offered`, and is then claimed, lapses or is left,
//! never waiting again). So `WaitlistJoined` adds one, `WaitlistOffered` takes one away, and
//! `WaitlistLeft` takes one away when the entry was still waiting (`waiting: true`); a
//! projection counting so equals `SELECT COUNT(*) … WHERE status = 'waiting'`.

use evently_core::sql::{Tx, query};

use evently_bus::catalog::WaitlistChange;
use evently_bus::{DomainEvent, Envelope};
use evently_core::db::StoreError;
use uuid::Uuid;

use crate::domain::{
    HoldId, HoldKind, Inventory, Policy, WaitlistEntry, WaitlistStatus, offer_window,
};
use crate::error::BookingError;
use crate::sold_out::SoldOutBoard;
use crate::store::{Arg, Writes, corrupt};

use super::{
    holds::insert_hold,
    inventory::{Changes, candidates, change, flush},
};

/// Offers freed seats to the head of the waitlist, in order, while the head's
/// quantity fits (the list is first come, first served: nobody is skipped).
pub(super) async fn promote(
    tx: &mut Tx,
    inv: &mut Inventory,
    changes: &mut Changes,
    now: i64,
    policy: Policy,
) -> Result<(), BookingError> {
    if inv.sale_closed(now).is_some() {
        return Ok(());
    }
    loop {
        let head = query(
            "SELECT id, user_id, quantity FROM waitlist WHERE event_id = $1 \
             AND status = 'waiting' ORDER BY seq LIMIT 1",
        )
        .bind(inv.event_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(head) = head else { return Ok(()) };
        let entry: Uuid = head.get("id")?;
        let user: Uuid = head.get("user_id")?;
        let quantity: i64 = head.get("quantity")?;
        if quantity > inv.available() {
            return Ok(());
        }
        let found = candidates(tx, inv.event_id, None, offer_window(quantity)).await?;
        let wanted = usize::try_from(quantity).unwrap_or(usize::MAX);
        let Some(seats) = crate::domain::pick_best(&found, wanted) else {
            return Ok(());
        };
        let hold_id = HoldId::new();
        let mut writes = Writes::default();
        insert_hold(
            &mut writes,
            inv,
            changes,
            hold_id,
            user,
            seats,
            HoldKind::Waitlist,
            now + policy.offer_ttl_ms,
            now,
        )?;
        writes.push(
            "UPDATE waitlist SET status = 'offered', hold_id = $2, updated_at = $3 \
             WHERE id = $1",
            vec![Arg::Uuid(entry), Arg::Uuid(hold_id.0), Arg::Int(now)],
            Some(1),
        );
        // The next head's seats are looked for after these are taken.
        flush(tx, &writes, &[]).await?;
    }
}

/// Finishes an inventory transaction: sends its pending `writes`, offers freed seats
/// to waiting buyers, notes a sell-out, saves the counters and appends the domain
/// events (the last of which go with the pending writes when nobody is offered seats).
/// When it frees a seat of a fully sold event, `sold_out` stops saying so before the commit.
pub(super) async fn finish(
    tx: &mut Tx,
    inv: &mut Inventory,
    mut changes: Changes,
    now: i64,
    policy: Policy,
    mut writes: Writes,
    sold_out: Option<&SoldOutBoard>,
) -> Result<(), BookingError> {
    if changes.freed {
        flush(tx, &std::mem::take(&mut writes), &[]).await?;
        promote(tx, inv, &mut changes, now, policy).await?;
    }
    if changes.envelopes.is_empty() && inv.sweep_at == changes.was_sweep_at {
        flush(tx, &writes, &[]).await?;
        return Ok(());
    }
    if changes.was_available > 0 && inv.available() == 0 {
        changes.push(inv, now, DomainEvent::SoldOut, change(inv));
    }
    writes.push(
        "UPDATE inventories SET held = $2, sold = $3, version = $4, updated_at = $5, \
         sweep_at = $6 WHERE event_id = $1",
        vec![
            Arg::Uuid(inv.event_id),
            Arg::Int(inv.held),
            Arg::Int(inv.sold),
            Arg::Int(inv.version),
            Arg::Int(now),
            Arg::Int(inv.sweep_at),
        ],
        Some(1),
    );
    flush(tx, &writes, &changes.envelopes).await?;
    // Before the commit, so that no read of the fully sold event can mark it afterwards
    // (see `crate::sold_out`).
    if let Some(board) = sold_out
        && changes.was_fully_sold
        && !inv.fully_sold()
    {
        board.reopen(inv.event_id, inv.version);
    }
    Ok(())
}

/// An entry that joined or ended: its buyer, quantity and whether it was (or is, for a
/// join) waiting.
pub(super) struct EntryChange {
    pub(super) user_id: Uuid,
    pub(super) quantity: i64,
    pub(super) waiting: bool,
}

/// `WaitlistJoined` (`joined`) or `WaitlistLeft` for each of `entries`, changed by this
/// transaction for `reason`, with the waitlist's length after each (the entries' status
/// already written), for the caller to append to the outbox with the change. The envelopes
/// are the `waitlist` aggregate's, at the inventory's current version (they do not change
/// the inventory).
pub(super) async fn waitlist_changed(
    tx: &mut Tx,
    inv: &Inventory,
    joined: bool,
    entries: &[EntryChange],
    reason: &str,
    now: i64,
) -> Result<Vec<Envelope>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let waiting: i64 =
        query("SELECT COUNT(*) AS n FROM waitlist WHERE event_id = $1 AND status = 'waiting'")
            .bind(inv.event_id)
            .fetch_one(&mut *tx)
            .await?
            .get("n")?;
    let make = if joined {
        DomainEvent::WaitlistJoined
    } else {
        DomainEvent::WaitlistLeft
    };
    // Entries are reported one at a time: the length after each counts the later ones as
    // not yet changed.
    let mut later: i64 = 0;
    let mut envelopes = Vec::with_capacity(entries.len());
    for entry in entries.iter().rev() {
        let length = if joined {
            waiting - later
        } else {
            waiting + later
        };
        if entry.waiting {
            later += 1;
        }
        envelopes.push(
            make(WaitlistChange {
                event_id: inv.event_id,
                user_id: entry.user_id,
                quantity: entry.quantity,
                waiting: entry.waiting,
                reason: reason.to_owned(),
                waitlist_length: length,
            })
            .into_envelope(inv.version, evently_bus::envelope::time_from_ms(now)),
        );
    }
    envelopes.reverse();
    Ok(envelopes)
}

pub(super) async fn waitlist_in(
    tx: &mut Tx,
    event_id: Uuid,
    user_id: Uuid,
) -> Result<Option<WaitlistEntry>, StoreError> {
    let row = query(
        "SELECT w.quantity, w.status, w.seq, w.hold_id, h.expires_at FROM waitlist w \
         LEFT JOIN holds h ON h.id = w.hold_id \
         WHERE w.event_id = $1 AND w.user_id = $2 ORDER BY w.seq DESC LIMIT 1",
    )
    .bind(event_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.get("status")?;
    let status: WaitlistStatus = status.parse().map_err(|e| corrupt("waitlist status", e))?;
    let seq: i64 = row.get("seq")?;
    let position = if status == WaitlistStatus::Waiting {
        let ahead: i64 = query(
            "SELECT COUNT(*) AS n FROM waitlist WHERE event_id = $1 \
             AND status = 'waiting' AND seq <= $2",
        )
        .bind(event_id)
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?
        .get("n")?;
        Some(ahead)
    } else {
        None
    };
    let expires: Option<i64> = row.get("expires_at")?;
    Ok(Some(WaitlistEntry {
        event_id,
        quantity: row.get("quantity")?,
        offer_expires_at: if status == WaitlistStatus::Offered {
            expires.map(crate::domain::rfc3339)
        } else {
            None
        },
        hold_id: row.get::<Option<Uuid>>("hold_id")?.map(HoldId),
        status,
        position,
    }))
}
