//! Holds: their life ([`HoldStatus`]), and the rules for taking one ([`decide_hold`]),
//! extending it ([`refreshed_expiry`]) and releasing it ([`may_release`]).
//!
//! A hold is all or nothing: [`decide_hold`] either names every seat of the new hold or
//! refuses it, on the facts the store read under the event's lock (the inventory, the
//! buyer's tickets, the seats asked for or the free ones, and in a batch the seats taken by
//! the holds decided before it). It writes nothing and reads nothing itself.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use uuid::Uuid;

use super::inventory::{Candidate, Inventory, SeatState, best_window, pick_best};
use super::{HoldId, StatusMachine};

/// Where a hold comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// The buyer took it.
    Buyer,
    /// A waitlist offer made in the buyer's name.
    Waitlist,
}

evently_core::stored_names!(HoldKind, "hold kind", {
    Buyer => "buyer",
    Waitlist => "waitlist",
});

/// Where a hold is in its life: active until it is released, expires, is bought or its event
/// is cancelled; each of those is final.
///
/// ```text
///            ┌──► released
///            ├──► expired
///  active ───┼──► purchased
///            └──► cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldStatus {
    /// Holding its seats (until `expires_at`).
    Active,
    /// Given up by its buyer (or replaced by their next hold).
    Released,
    /// Ran out of time; its seats went back on sale.
    Expired,
    /// Became an order.
    Purchased,
    /// Ended by the event's cancellation.
    Cancelled,
}

impl StatusMachine for HoldStatus {
    fn allowed(self) -> &'static [HoldStatus] {
        match self {
            HoldStatus::Active => &[
                HoldStatus::Released,
                HoldStatus::Expired,
                HoldStatus::Purchased,
                HoldStatus::Cancelled,
            ],
            HoldStatus::Released
            | HoldStatus::Expired
            | HoldStatus::Purchased
            | HoldStatus::Cancelled => &[],
        }
    }
}

impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

evently_core::stored_names!(HoldStatus, "hold status", {
    Active => "active",
    Released => "released",
    Expired => "expired",
    Purchased => "purchased",
    Cancelled => "cancelled",
});

/// A hold as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Its id.
    pub id: HoldId,
    /// The event.
    pub event_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The held seats.
    pub seat_ids: Vec<String>,
    /// Where it comes from.
    pub kind: HoldKind,
    /// Where it is in its life.
    pub status: HoldStatus,
    /// Created (epoch ms).
    pub created_at: i64,
    /// Expires (epoch ms).
    pub expires_at: i64,
}

impl Hold {
    /// Live at `now`: active and not yet expired.
    pub fn is_live(&self, now: i64) -> bool {
        hold_is_live(self.status, self.expires_at, now)
    }

    /// The status to show at `now`: an active hold past its expiry is shown expired before
    /// the sweep records it.
    pub fn status_at(&self, now: i64) -> HoldStatus {
        if self.status == HoldStatus::Active && self.expires_at <= now {
            HoldStatus::Expired
        } else {
            self.status
        }
    }
}

/// Whether a hold of `status` expiring at `expires_at` is live at `now` (read without the rest
/// of the hold).
pub fn hold_is_live(status: HoldStatus, expires_at: i64, now: i64) -> bool {
    status == HoldStatus::Active && expires_at > now
}

/// Why a hold is not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldRefusal {
    /// The event was deleted.
    EventNotFound,
    /// The event does not take holds now (cancelled, or outside its sale window).
    NotOnSale(&'static str),
    /// The buyer would own more tickets for the event than allowed.
    TicketLimit {
        /// The limit.
        limit: i64,
        /// Tickets the buyer already owns.
        owned: i64,
    },
    /// Seats asked for that the event does not have: their place in the request and id.
    UnknownSeats(Vec<(usize, String)>),
    /// Seats asked for that are held or sold, in the order asked.
    SeatsUnavailable(Vec<String>),
    /// Too few free seats for the quantity asked.
    SoldOut {
        /// The free seats found.
        available: i64,
    },
}

/// The seats a hold asks for, with what the store read about them.
#[derive(Debug, Clone, Copy)]
pub enum SeatsAsked<'a> {
    /// These seats, all or nothing, and the state of each of them that exists at the event.
    Named {
        /// The seats, in the order asked.
        wanted: &'a [String],
        /// Their states, by seat id; a seat missing here is not a seat of the event.
        states: &'a BTreeMap<String, SeatState>,
    },
    /// The best `quantity` free seats, among `free`: free seats in layout order, at least
    /// [`best_window`] of them beyond those in `taken` when the event has that many.
    Best {
        /// How many.
        quantity: i64,
        /// Free seats in layout order.
        free: &'a [Candidate],
    },
}

impl SeatsAsked<'_> {
    /// How many seats the hold would take.
    pub fn quantity(&self) -> i64 {
        match self {
            SeatsAsked::Named { wanted, .. } => i64::try_from(wanted.len()).unwrap_or(i64::MAX),
            SeatsAsked::Best { quantity, .. } => *quantity,
        }
    }
}

/// What [`decide_hold`] decides on: facts read under the event's lock.
#[derive(Debug, Clone, Copy)]
pub struct HoldFacts<'a> {
    /// The event's inventory.
    pub event: &'a Inventory,
    /// Now (epoch ms).
    pub now: i64,
    /// Most tickets one buyer may hold and own for one event.
    pub max_tickets: i64,
    /// Tickets the buyer already owns for the event (confirmed orders).
    pub owned: i64,
    /// Seats taken by holds decided earlier in the same transaction, which the states read
    /// do not show yet.
    pub taken: &'a HashSet<String>,
    /// What the hold asks for.
    pub asked: SeatsAsked<'a>,
}

/// The first rule of a hold, decided before anything else is read: the event exists and its
/// sale is open at `now`.
///
/// # Errors
/// [`HoldRefusal::EventNotFound`] for a deleted event, [`HoldRefusal::NotOnSale`] outside the
/// sale window or for a cancelled event.
pub fn open_for_holds(event: &Inventory, now: i64) -> Result<(), HoldRefusal> {
    if event.deleted {
        return Err(HoldRefusal::EventNotFound);
    }
    match event.sale_closed(now) {
        Some(why) => Err(HoldRefusal::NotOnSale(why)),
        None => Ok(()),
    }
}

/// The ticket limit: a buyer owning `owned` tickets may hold `quantity` more while the sum
/// stays within `limit`.
///
/// # Errors
/// [`HoldRefusal::TicketLimit`] beyond it.
pub fn within_ticket_limit(owned: i64, quantity: i64, limit: i64) -> Result<(), HoldRefusal> {
    if owned.saturating_add(quantity) > limit {
        Err(HoldRefusal::TicketLimit { limit, owned })
    } else {
        Ok(())
    }
}

/// Decides a hold: the seats it takes, in order, or why it is refused. The rules, in order:
/// [`open_for_holds`], [`within_ticket_limit`], then for named seats every one must be a seat
/// of the event and available (and not taken earlier in the transaction); for a quantity,
/// [`pick_best`] among the first [`best_window`] free seats not taken must find enough.
///
/// The store checks the first two rules before reading what the others need, so a refused
/// request reads no seats; they are decided again here, which costs nothing.
///
/// # Errors
/// A [`HoldRefusal`] naming the first rule broken.
pub fn decide_hold(facts: &HoldFacts<'_>) -> Result<Vec<String>, HoldRefusal> {
    open_for_holds(facts.event, facts.now)?;
    within_ticket_limit(facts.owned, facts.asked.quantity(), facts.max_tickets)?;
    match facts.asked {
        SeatsAsked::Named { wanted, states } => {
            let unknown: Vec<(usize, String)> = wanted
                .iter()
                .enumerate()
                .filter(|(_, seat)| !states.contains_key(*seat))
                .map(|(i, seat)| (i, seat.clone()))
                .collect();
            if !unknown.is_empty() {
                return Err(HoldRefusal::UnknownSeats(unknown));
            }
            let conflicts: Vec<String> = wanted
                .iter()
                .filter(|s| {
                    states.get(*s) != Some(&SeatState::Available) || facts.taken.contains(*s)
                })
                .cloned()
                .collect();
            if !conflicts.is_empty() {
                return Err(HoldRefusal::SeatsUnavailable(conflicts));
            }
            Ok(wanted.to_vec())
        }
        SeatsAsked::Best { quantity, free } => {
            let window =
                usize::try_from(best_window(facts.event.reserved, quantity)).unwrap_or(usize::MAX);
            let found: Vec<Candidate> = free
                .iter()
                .filter(|seat| !facts.taken.contains(&seat.0))
                .take(window)
                .cloned()
                .collect();
            let wanted = usize::try_from(quantity).unwrap_or(usize::MAX);
            pick_best(&found, wanted).ok_or(HoldRefusal::SoldOut {
                available: i64::try_from(found.len()).unwrap_or(i64::MAX),
            })
        }
    }
}

/// The early refusal of a hold of named seats, decided before the event's lock on a read
/// that may be stale: of the `wanted` seats, `found` exist at the event and `blocked` are
/// sold or in another buyer's live hold. A stale read can only refuse what a moment earlier
/// would also have been refused; anything it lets through is decided under the lock by
/// [`decide_hold`], which is also where unknown seats are reported (with their fields).
///
/// # Errors
/// [`HoldRefusal::SeatsUnavailable`] naming the blocked seats in the order asked, when every
/// seat exists and some are blocked.
pub fn refuse_named_early(
    wanted: &[String],
    found: usize,
    blocked: &BTreeSet<String>,
) -> Result<(), HoldRefusal> {
    if blocked.is_empty() || found != wanted.len() {
        return Ok(());
    }
    Err(HoldRefusal::SeatsUnavailable(
        wanted
            .iter()
            .filter(|s| blocked.contains(*s))
            .cloned()
            .collect(),
    ))
}

/// The early refusal of a best-available hold of `quantity` seats, decided before the
/// event's lock: `free` seats are neither sold nor in a live hold of another buyer (a stale
/// read, as for [`refuse_named_early`]).
///
/// # Errors
/// [`HoldRefusal::SoldOut`] when fewer than `quantity` are free.
pub fn refuse_best_early(free: i64, quantity: i64) -> Result<(), HoldRefusal> {
    if free < quantity {
        Err(HoldRefusal::SoldOut {
            available: free.max(0),
        })
    } else {
        Ok(())
    }
}

/// Why a hold can no longer be extended, released or paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnded {
    /// It expired, was released or was cancelled.
    Expired,
    /// It became an order.
    Purchased,
}

impl HoldEnded {
    /// Why a hold of `status` (not live) is over.
    pub fn of(status: HoldStatus) -> Self {
        if status == HoldStatus::Purchased {
            HoldEnded::Purchased
        } else {
            HoldEnded::Expired
        }
    }
}

/// The new expiry of `hold` refreshed at `now` by `extend_ms`, capped at its creation plus
/// `max_lifetime_ms`: `None` when that would not extend it (a hold is never shortened).
///
/// # Errors
/// [`HoldEnded`] unless the hold is active.
pub fn refreshed_expiry(
    hold: &Hold,
    now: i64,
    extend_ms: i64,
    max_lifetime_ms: i64,
) -> Result<Option<i64>, HoldEnded> {
    if hold.status != HoldStatus::Active {
        return Err(HoldEnded::of(hold.status));
    }
    let target = now
        .saturating_add(extend_ms)
        .min(hold.created_at.saturating_add(max_lifetime_ms));
    Ok((target > hold.expires_at).then_some(target))
}

/// Whether releasing a hold of `status` ends it: an active one is released; one that already
/// ended otherwise stays as it is (releasing is idempotent).
///
/// # Errors
/// [`HoldEnded::Purchased`] for a hold that became an order: its seats are sold.
pub fn may_release(status: HoldStatus) -> Result<bool, HoldEnded> {
    match status.transition(HoldStatus::Released) {
        Ok(_) => Ok(true),
        Err(refused) if refused.from == HoldStatus::Purchased => Err(HoldEnded::Purchased),
        Err(_) => Ok(false),
    }
}

/// Whether `hold` may be paid for by `buyer` at `now`.
///
/// # Errors
/// [`PaymentBlocked::NotFound`] for another buyer's hold (it is not shown to them),
/// [`PaymentBlocked::Ended`] when it is not live.
pub fn may_pay_for(hold: &Hold, buyer: Uuid, now: i64) -> Result<(), PaymentBlocked> {
    if hold.user_id != buyer {
        return Err(PaymentBlocked::NotFound);
    }
    if hold.status == HoldStatus::Purchased {
        return Err(PaymentBlocked::Ended(HoldEnded::Purchased));
    }
    if !hold.is_live(now) {
        return Err(PaymentBlocked::Ended(HoldEnded::Expired));
    }
    Ok(())
}

/// Why a payment intent is not created for a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentBlocked {
    /// No such hold of the buyer's.
    NotFound,
    /// The hold is over.
    Ended(HoldEnded),
}

#[cfg(test)]
mod tests {
    use super::super::inventory::tests::on_sale;
    use super::*;
    use proptest::prelude::*;

    fn hold(status: HoldStatus) -> Hold {
        Hold {
            id: HoldId(Uuid::from_u128(3)),
            event_id: Uuid::from_u128(1),
            user_id: Uuid::from_u128(7),
            seat_ids: vec!["A-1-1".into()],
            kind: HoldKind::Buyer,
            status,
            created_at: 1_000,
            expires_at: 2_000,
        }
    }

    fn seats(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    fn free(row: &str, numbers: &[i64]) -> Vec<Candidate> {
        numbers
            .iter()
            .map(|n| (format!("A-{row}-{n}"), "A".into(), row.into(), *n))
            .collect()
    }

    fn named<'a>(
        event: &'a Inventory,
        wanted: &'a [String],
        states: &'a BTreeMap<String, SeatState>,
        taken: &'a HashSet<String>,
    ) -> HoldFacts<'a> {
        HoldFacts {
            event,
            now: 5_000,
            max_tickets: 6,
            owned: 0,
            taken,
            asked: SeatsAsked::Named { wanted, states },
        }
    }

    #[test]
    fn a_hold_on_a_deleted_or_closed_event_is_refused_first() {
        let (wanted, states, taken) = (seats(&["X-1-1"]), BTreeMap::new(), HashSet::new());
        let deleted = Inventory {
            deleted: true,
            ..on_sale()
        };
        let early = on_sale();

        assert_eq!(
            decide_hold(&named(&deleted, &wanted, &states, &taken)),
            Err(HoldRefusal::EventNotFound)
        );
        assert_eq!(
            decide_hold(&HoldFacts {
                now: 10,
                ..named(&early, &wanted, &states, &taken)
            }),
            Err(HoldRefusal::NotOnSale("the sale has not started"))
        );
    }

    #[test]
    fn a_hold_past_the_ticket_limit_is_refused_with_what_is_owned() {
        let event = on_sale();
        let (wanted, taken) = (seats(&["A-1-1", "A-1-2"]), HashSet::new());
        let states = BTreeMap::from([
            ("A-1-1".into(), SeatState::Available),
            ("A-1-2".into(), SeatState::Available),
        ]);

        let at_limit = HoldFacts {
            owned: 4,
            ..named(&event, &wanted, &states, &taken)
        };
        let over = HoldFacts {
            owned: 5,
            ..named(&event, &wanted, &states, &taken)
        };

        assert!(decide_hold(&at_limit).is_ok());
        assert_eq!(
            decide_hold(&over),
            Err(HoldRefusal::TicketLimit { limit: 6, owned: 5 })
        );
    }

    #[test]
    fn unknown_seats_are_named_with_their_place_in_the_request() {
        let event = on_sale();
        let (wanted, taken) = (seats(&["A-1-1", "Z-9-9", "A-1-2", "Z-9-8"]), HashSet::new());
        let states = BTreeMap::from([
            ("A-1-1".into(), SeatState::Sold),
            ("A-1-2".into(), SeatState::Available),
        ]);

        assert_eq!(
            decide_hold(&named(&event, &wanted, &states, &taken)),
            Err(HoldRefusal::UnknownSeats(vec![
                (1, "Z-9-9".into()),
                (3, "Z-9-8".into())
            ]))
        );
    }

    #[test]
    fn held_sold_or_taken_seats_refuse_the_whole_hold() {
        let event = on_sale();
        let wanted = seats(&["A-1-4", "A-1-1", "A-1-2", "A-1-3"]);
        let states = BTreeMap::from([
            ("A-1-1".into(), SeatState::Held),
            ("A-1-2".into(), SeatState::Available),
            ("A-1-3".into(), SeatState::Sold),
            ("A-1-4".into(), SeatState::Available),
        ]);
        let taken = HashSet::from(["A-1-4".to_owned()]);

        assert_eq!(
            decide_hold(&named(&event, &wanted, &states, &taken)),
            Err(HoldRefusal::SeatsUnavailable(seats(&[
                "A-1-4", "A-1-1", "A-1-3"
            ])))
        );
        let free_only = seats(&["A-1-2"]);
        assert_eq!(
            decide_hold(&named(&event, &free_only, &states, &taken)),
            Ok(free_only.clone())
        );
    }

    #[test]
    fn best_available_skips_taken_seats_and_reports_what_it_found() {
        let event = Inventory {
            reserved: false,
            ..on_sale()
        };
        let free = free("1", &[1, 2, 3, 4]);
        let taken = HashSet::from(["A-1-1".to_owned()]);
        let facts = |quantity| HoldFacts {
            event: &event,
            now: 5_000,
            max_tickets: 6,
            owned: 0,
            taken: &taken,
            asked: SeatsAsked::Best {
                quantity,
                free: &free,
            },
        };

        assert_eq!(decide_hold(&facts(2)), Ok(seats(&["A-1-2", "A-1-3"])));
        assert_eq!(
            decide_hold(&facts(4)),
            Err(HoldRefusal::SoldOut { available: 3 })
        );
    }

    #[test]
    fn early_refusals_refuse_only_what_the_lock_would_refuse_too() {
        let wanted = seats(&["A-1-3", "A-1-1", "A-1-2"]);
        let blocked = BTreeSet::from(["A-1-1".to_owned(), "A-1-2".to_owned()]);

        assert_eq!(
            refuse_named_early(&wanted, 3, &blocked),
            Err(HoldRefusal::SeatsUnavailable(seats(&["A-1-1", "A-1-2"])))
        );
        // An unknown seat is left to the decision under the lock, which names its field.
        assert_eq!(refuse_named_early(&wanted, 2, &blocked), Ok(()));
        assert_eq!(refuse_named_early(&wanted, 3, &BTreeSet::new()), Ok(()));
        assert_eq!(refuse_best_early(2, 2), Ok(()));
        assert_eq!(
            refuse_best_early(1, 2),
            Err(HoldRefusal::SoldOut { available: 1 })
        );
        assert_eq!(
            refuse_best_early(-3, 2),
            Err(HoldRefusal::SoldOut { available: 0 })
        );
    }

    #[test]
    fn refresh_extends_up_to_the_lifetime_and_never_shortens() {
        let active = hold(HoldStatus::Active);

        assert_eq!(
            refreshed_expiry(&active, 1_500, 1_000, 5_000),
            Ok(Some(2_500))
        );
        assert_eq!(refreshed_expiry(&active, 1_500, 100, 5_000), Ok(None));
        assert_eq!(
            refreshed_expiry(&active, 1_500, 9_000, 5_000),
            Ok(Some(6_000))
        );
        assert_eq!(
            refreshed_expiry(&hold(HoldStatus::Purchased), 1_500, 1_000, 5_000),
            Err(HoldEnded::Purchased)
        );
        for ended in [
            HoldStatus::Released,
            HoldStatus::Expired,
            HoldStatus::Cancelled,
        ] {
            assert_eq!(
                refreshed_expiry(&hold(ended), 1_500, 1_000, 5_000),
                Err(HoldEnded::Expired)
            );
        }
    }

    #[test]
    fn release_ends_an_active_hold_and_refuses_a_purchased_one() {
        assert_eq!(may_release(HoldStatus::Active), Ok(true));
        assert_eq!(
            may_release(HoldStatus::Purchased),
            Err(HoldEnded::Purchased)
        );
        assert_eq!(may_release(HoldStatus::Expired), Ok(false));
        assert_eq!(may_release(HoldStatus::Released), Ok(false));
        assert_eq!(may_release(HoldStatus::Cancelled), Ok(false));
    }

    #[test]
    fn only_the_buyers_live_hold_can_be_paid_for() {
        let active = hold(HoldStatus::Active);
        let buyer = active.user_id;

        assert_eq!(may_pay_for(&active, buyer, 1_999), Ok(()));
        assert_eq!(
            may_pay_for(&active, Uuid::from_u128(99), 1_999),
            Err(PaymentBlocked::NotFound)
        );
        assert_eq!(
            may_pay_for(&active, buyer, 2_000),
            Err(PaymentBlocked::Ended(HoldEnded::Expired))
        );
        assert_eq!(
            may_pay_for(&hold(HoldStatus::Purchased), buyer, 1_500),
            Err(PaymentBlocked::Ended(HoldEnded::Purchased))
        );
        assert_eq!(
            may_pay_for(&hold(HoldStatus::Released), buyer, 1_500),
            Err(PaymentBlocked::Ended(HoldEnded::Expired))
        );
    }

    #[test]
    fn an_active_hold_past_its_expiry_shows_as_expired() {
        let active = hold(HoldStatus::Active);

        assert_eq!(active.status_at(1_999), HoldStatus::Active);
        assert_eq!(active.status_at(2_000), HoldStatus::Expired);
        assert_eq!(
            hold(HoldStatus::Purchased).status_at(9_000),
            HoldStatus::Purchased
        );
    }

    #[test]
    fn statuses_and_kinds_parse_from_their_stored_names() {
        for status in HoldStatus::ALL {
            assert_eq!(status.as_str().parse::<HoldStatus>(), Ok(status));
        }
        for kind in HoldKind::ALL {
            assert_eq!(kind.as_str().parse::<HoldKind>(), Ok(kind));
        }
        assert!("ACTIVE".parse::<HoldStatus>().is_err());
        assert!("seller".parse::<HoldKind>().is_err());
    }

    /// The hold machine, written as the table of its edges.
    fn model_allows(from: HoldStatus, to: HoldStatus) -> bool {
        from == HoldStatus::Active && to != HoldStatus::Active
    }

    proptest! {
        #[test]
        fn hold_transitions_follow_the_model(
            start in 0usize..5,
            steps in proptest::collection::vec(0usize..5, 0..20),
        ) {
            crate::domain::walk_follows_model(&HoldStatus::ALL, start, &steps, model_allows)?;
        }
    }

    /// An event's seats for the model: `(state, taken earlier in the transaction)` of seats
    /// `A-1-1`… in one row.
    fn seat_table() -> impl Strategy<Value = Vec<(i64, bool)>> {
        proptest::collection::vec((0i64..3, proptest::bool::weighted(0.15)), 0..12)
    }

    /// What the model expects of a hold of named seats: written from the rules as stated,
    /// seat by seat.
    fn model_named(
        sale_open: bool,
        deleted: bool,
        owned: i64,
        limit: i64,
        table: &[(i64, bool)],
        wanted: &[String],
    ) -> Result<Vec<String>, &'static str> {
        if deleted {
            return Err("gone");
        }
        if !sale_open {
            return Err("closed");
        }
        if owned + wanted.len() as i64 > limit {
            return Err("limit");
        }
        let lookup = |seat: &String| -> Option<(i64, bool)> {
            let n: usize = seat.strip_prefix("A-1-")?.parse().ok()?;
            table.get(n.checked_sub(1)?).copied()
        };
        if wanted.iter().any(|s| lookup(s).is_none()) {
            return Err("unknown");
        }
        if wanted
            .iter()
            .any(|s| lookup(s).is_some_and(|(state, taken)| state != 0 || taken))
        {
            return Err("unavailable");
        }
        Ok(wanted.to_vec())
    }

    proptest! {
        #[test]
        fn named_holds_are_decided_as_the_model_says(
            table in seat_table(),
            picks in proptest::collection::vec(1usize..15, 1..6),
            owned in 0i64..8,
            deleted in proptest::bool::weighted(0.1),
            now in prop_oneof![Just(500i64), Just(5_000i64), Just(15_000i64)],
        ) {
            let event = Inventory { deleted, ..on_sale() };
            let mut wanted: Vec<String> = Vec::new();
            for n in picks {
                let seat = format!("A-1-{n}");
                if !wanted.contains(&seat) {
                    wanted.push(seat);
                }
            }
            let states: BTreeMap<String, SeatState> = table
                .iter()
                .enumerate()
                .map(|(i, (state, _))| (format!("A-1-{}", i + 1), SeatState::try_from(*state).unwrap()))
                .collect();
            let taken: HashSet<String> = table
                .iter()
                .enumerate()
                .filter(|(_, (_, taken))| *taken)
                .map(|(i, _)| format!("A-1-{}", i + 1))
                .collect();
            let facts = HoldFacts {
                event: &event,
                now,
                max_tickets: 6,
                owned,
                taken: &taken,
                asked: SeatsAsked::Named { wanted: &wanted, states: &states },
            };

            let decided = decide_hold(&facts);
            let expected = model_named(now == 5_000, deleted, owned, 6, &table, &wanted);

            match (&decided, &expected) {
                (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
                (Err(HoldRefusal::EventNotFound), Err("gone"))
                | (Err(HoldRefusal::NotOnSale(_)), Err("closed"))
                | (Err(HoldRefusal::TicketLimit { .. }), Err("limit"))
                | (Err(HoldRefusal::UnknownSeats(_)), Err("unknown")) => {}
                (Err(HoldRefusal::SeatsUnavailable(conflicts)), Err("unavailable")) => {
                    // Exactly the wanted seats that are not free, in the order asked.
                    let busy: Vec<String> = wanted
                        .iter()
                        .filter(|s| states[*s] != SeatState::Available || taken.contains(*s))
                        .cloned()
                        .collect();
                    prop_assert_eq!(conflicts, &busy);
                }
                _ => prop_assert!(false, "decided {:?}, the model says {:?}", decided, expected),
            }
        }

        #[test]
        fn best_available_holds_are_decided_as_the_model_says(
            rows in proptest::collection::vec(
                (0u8..3, proptest::collection::vec((1i64..30, proptest::bool::weighted(0.1)), 0..12)),
                0..4,
            ),
            quantity in 1i64..6,
            reserved in proptest::bool::ANY,
        ) {
            let event = Inventory { reserved, ..on_sale() };
            // Free seats in layout order: rows in order, numbers ascending within a row.
            let mut free: Vec<Candidate> = Vec::new();
            let mut taken = HashSet::new();
            for (row, numbers) in &rows {
                let mut numbers = numbers.clone();
                numbers.sort_unstable();
                numbers.dedup_by_key(|(n, _)| *n);
                for (n, is_taken) in numbers {
                    let id = format!("A-{row}-{n}");
                    if free.iter().any(|c| c.0 == id) {
                        continue;
                    }
                    if is_taken {
                        taken.insert(id.clone());
                    }
                    free.push((id, "A".into(), row.to_string(), n));
                }
            }
            let facts = HoldFacts {
                event: &event,
                now: 5_000,
                max_tickets: 6,
                owned: 0,
                taken: &taken,
                asked: SeatsAsked::Best { quantity, free: &free },
            };

            let decided = decide_hold(&facts);

            // The model: the seats looked through are the first free ones not taken, as many
            // as the window; the first run of `quantity` adjacent numbers in one row among
            // them, else the first `quantity` of them.
            let window = if reserved && quantity > 1 { 200 } else { quantity as usize };
            let seen: Vec<&Candidate> =
                free.iter().filter(|c| !taken.contains(&c.0)).take(window).collect();
            let q = quantity as usize;
            if seen.len() < q {
                prop_assert_eq!(decided, Err(HoldRefusal::SoldOut { available: seen.len() as i64 }));
            } else {
                let adjacent = (0..=seen.len() - q).find(|&i| {
                    seen[i..i + q].windows(2).all(|w| {
                        w[0].1 == w[1].1 && w[0].2 == w[1].2 && w[1].3 == w[0].3 + 1
                    })
                });
                let start = adjacent.unwrap_or(0);
                let want: Vec<String> = if adjacent.is_some() {
                    seen[start..start + q].iter().map(|c| c.0.clone()).collect()
                } else {
                    seen[..q].iter().map(|c| c.0.clone()).collect()
                };
                prop_assert_eq!(decided, Ok(want));
            }
        }
    }
}
