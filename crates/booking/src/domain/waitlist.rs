//! The waitlist of a sold-out event: an entry's states ([`WaitlistStatus`]) and who may join
//! ([`may_join_waitlist`]). Freed seats are offered to the head of the list, in order, as a
//! hold of kind `waitlist` (see [`super::hold::HoldKind`]).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::HoldId;

/// Where a waitlist entry is: `waiting` or `offered` while on the list (open), then
/// `claimed` (the offer was bought), `left`, `lapsed` (the offer ended unbought) or `closed`
/// (the event was cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitlistStatus {
    /// In the queue.
    Waiting,
    /// Offered a hold.
    Offered,
    /// The offer was bought.
    Claimed,
    /// The buyer left the list.
    Left,
    /// The offer ended unbought.
    Lapsed,
    /// The event was cancelled.
    Closed,
}

evently_core::stored_names!(WaitlistStatus, "waitlist status", {
    Waiting => "waiting",
    Offered => "offered",
    Claimed => "claimed",
    Left => "left",
    Lapsed => "lapsed",
    Closed => "closed",
});

/// A waitlist entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitlistEntry {
    /// The event.
    pub event_id: Uuid,
    /// Seats wanted.
    pub quantity: i64,
    /// `waiting` or `offered` while on the list; then `claimed`, `left`, `lapsed` or `closed`.
    #[schema(value_type = String)]
    pub status: WaitlistStatus,
    /// Place in the list (1 = next to be offered), while waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// The hold offered, once offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub hold_id: Option<HoldId>,
    /// When the offer lapses (RFC 3339), once offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer_expires_at: Option<String>,
}

/// Whether a buyer joins the waitlist: one with an open entry keeps it (`false`: nothing to
/// add); anyone else joins (`true`) only when fewer than `quantity` seats are `available`.
///
/// # Errors
/// The seats available, when the buyer could hold them instead of waiting.
pub fn may_join_waitlist(has_open_entry: bool, available: i64, quantity: i64) -> Result<bool, i64> {
    if has_open_entry {
        Ok(false)
    } else if available >= quantity {
        Err(available)
    } else {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_buyers_who_cannot_hold_their_seats_join_the_waitlist() {
        assert_eq!(may_join_waitlist(false, 1, 2), Ok(true));
        assert_eq!(may_join_waitlist(false, 0, 1), Ok(true));
        assert_eq!(may_join_waitlist(false, 2, 2), Err(2));
        assert_eq!(may_join_waitlist(true, 5, 2), Ok(false));
    }

    #[test]
    fn waitlist_statuses_parse_from_their_stored_names() {
        for status in WaitlistStatus::ALL {
            assert_eq!(status.as_str().parse::<WaitlistStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert!("queued".parse::<WaitlistStatus>().is_err());
    }
}
