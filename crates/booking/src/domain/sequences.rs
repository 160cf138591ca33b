//! Random sequences of holds, releases, expiries and purchases, run through the domain's rules
//! ([`decide_hold`], [`may_release`], [`HoldStatus::transition`], [`check_purchase`]) the way
//! the store runs them, against a plain model of one event's seats. After every step: no seat
//! is held or sold twice, a seat's state matches the hold that has it, sales stay within
//! capacity, and no buyer's tickets and live hold pass the ticket limit.

use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use uuid::Uuid;

use super::inventory::tests::on_sale;
use super::*;

const SEATS: usize = 8;
const BUYERS: usize = 3;
const LIMIT: i64 = 4;
const NOW: i64 = 5_000;

#[derive(Debug, Clone)]
enum Op {
    HoldSeats {
        buyer: usize,
        seats: Vec<usize>,
    },
    HoldBest {
        buyer: usize,
        quantity: i64,
    },
    Release(prop::sample::Index),
    Expire(prop::sample::Index),
    Purchase {
        hold: prop::sample::Index,
        by_owner: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..BUYERS, proptest::collection::vec(0..SEATS, 1..4))
            .prop_map(|(buyer, seats)| Op::HoldSeats { buyer, seats }),
        2 => (0..BUYERS, 1i64..4).prop_map(|(buyer, quantity)| Op::HoldBest { buyer, quantity }),
        1 => any::<prop::sample::Index>().prop_map(Op::Release),
        1 => any::<prop::sample::Index>().prop_map(Op::Expire),
        2 => (any::<prop::sample::Index>(), proptest::bool::weighted(0.8))
            .prop_map(|(hold, by_owner)| Op::Purchase { hold, by_owner }),
    ]
}

fn seat_id(n: usize) -> String {
    format!("A-1-{}", n + 1)
}

fn buyer_id(b: usize) -> Uuid {
    Uuid::from_u128(100 + b as u128)
}

/// The model: each seat's stored state, every hold taken, and each buyer's tickets.
#[derive(Debug, Clone, Default)]
struct Model {
    states: BTreeMap<String, SeatState>,
    holds: Vec<Hold>,
    owned: BTreeMap<Uuid, i64>,
}

impl Model {
    fn new() -> Self {
        Self {
            states: (0..SEATS)
                .map(|n| (seat_id(n), SeatState::Available))
                .collect(),
            ..Self::default()
        }
    }

    /// Ends hold `i` with `to`, its seats back on sale (as the store's `end_hold`).
    fn end(&mut self, i: usize, to: HoldStatus) -> Result<(), IllegalTransition<HoldStatus>> {
        self.holds[i].status = self.holds[i].status.transition(to)?;
        for seat in &self.holds[i].seat_ids {
            self.states.insert(seat.clone(), SeatState::Available);
        }
        Ok(())
    }

    /// A hold for `buyer`: their live hold is released first, and everything is undone if
    /// the new one is refused (as in the store's transaction).
    fn hold(&mut self, buyer: Uuid, seats: Option<Vec<String>>, quantity: i64) {
        let mut next = self.clone();
        if let Some(own) = next
            .holds
            .iter()
            .position(|h| h.user_id == buyer && h.status == HoldStatus::Active)
        {
            next.end(own, HoldStatus::Released).unwrap();
        }
        let event = on_sale();
        let mut free: Vec<Candidate> = next
            .states
            .iter()
            .filter(|(_, state)| **state == SeatState::Available)
            .map(|(id, _)| {
                let n = id.trim_start_matches("A-1-").parse().unwrap();
                (id.clone(), "A".into(), "1".into(), n)
            })
            .collect();
        free.sort_by_key(|c| c.3);
        let taken = HashSet::new();
        let owned = next.owned.get(&buyer).copied().unwrap_or(0);
        let asked = match &seats {
            Some(wanted) => SeatsAsked::Named {
                wanted,
                states: &next.states,
            },
            None => SeatsAsked::Best {
                quantity,
                free: &free,
            },
        };
        let decided = decide_hold(&HoldFacts {
            event: &event,
            now: NOW,
            max_tickets: LIMIT,
            owned,
            taken: &taken,
            asked,
        });
        let Ok(chosen) = decided else { return };
        for seat in &chosen {
            assert_eq!(
                next.states[seat],
                SeatState::Available,
                "{seat} taken twice"
            );
            next.states.insert(seat.clone(), SeatState::Held);
        }
        next.holds.push(Hold {
            id: HoldId(Uuid::from_u128(1_000 + next.holds.len() as u128)),
            event_id: event.event_id,
            user_id: buyer,
            seat_ids: chosen,
            kind: HoldKind::Buyer,
            status: HoldStatus::Active,
            created_at: NOW,
            expires_at: NOW + 1_000,
        });
        *self = next;
    }

    fn purchase(&mut self, i: usize, buyer: Uuid) {
        let event = on_sale();
        let hold = self.holds[i].clone();
        let intent = PaymentIntent {
            id: PaymentIntentId(Uuid::from_u128(2_000 + i as u128)),
            hold_id: hold.id,
            event_id: event.event_id,
            user_id: hold.user_id,
            amount: 0,
            currency: "EUR".into(),
            status: IntentStatus::Succeeded,
            secret_hash: String::new(),
        };
        let mut named = hold.seat_ids.clone();
        named.reverse();
        let decided = check_purchase(&PurchaseFacts {
            buyer,
            event_id: event.event_id,
            event_cancelled: false,
            hold: Some(&hold),
            intent: Some(&intent),
            seat_ids: &named,
            bought_earlier: false,
        });
        let expected = buyer == hold.user_id && hold.status == HoldStatus::Active;
        assert_eq!(decided.is_ok(), expected, "{decided:?} for {hold:?}");
        if decided.is_ok() {
            self.holds[i].status = hold.status.transition(HoldStatus::Purchased).unwrap();
            for seat in &hold.seat_ids {
                self.states.insert(seat.clone(), SeatState::Sold);
            }
            *self.owned.entry(buyer).or_default() += hold.seat_ids.len() as i64;
        }
    }

    fn check_invariants(&self) {
        let mut claimed: BTreeMap<&String, SeatState> = BTreeMap::new();
        let mut live: BTreeMap<Uuid, i64> = BTreeMap::new();
        for hold in &self.holds {
            let claim = match hold.status {
                HoldStatus::Active => SeatState::Held,
                HoldStatus::Purchased => SeatState::Sold,
                _ => continue,
            };
            if hold.status == HoldStatus::Active {
                *live.entry(hold.user_id).or_default() += hold.seat_ids.len() as i64;
            }
            for seat in &hold.seat_ids {
                assert!(
                    claimed.insert(seat, claim).is_none(),
                    "{seat} held or sold twice"
                );
            }
        }
        for (seat, state) in &self.states {
            let expected = claimed.get(seat).copied().unwrap_or(SeatState::Available);
            assert_eq!(*state, expected, "{seat}");
        }
        let sold = self
            .states
            .values()
            .filter(|s| **s == SeatState::Sold)
            .count();
        assert!(sold <= SEATS);
        for b in 0..BUYERS {
            let buyer = buyer_id(b);
            let total = self.owned.get(&buyer).copied().unwrap_or(0)
                + live.get(&buyer).copied().unwrap_or(0);
            assert!(
                total <= LIMIT,
                "buyer {b} has {total} tickets and held seats"
            );
        }
    }
}

proptest! {
    #[test]
    fn no_sequence_of_changes_holds_or_sells_a_seat_twice(
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut model = Model::new();
        for op in ops {
            match op {
                Op::HoldSeats { buyer, seats } => {
                    let mut wanted: Vec<String> = Vec::new();
                    for n in seats {
                        if !wanted.contains(&seat_id(n)) {
                            wanted.push(seat_id(n));
                        }
                    }
                    let quantity = wanted.len() as i64;
                    model.hold(buyer_id(buyer), Some(wanted), quantity);
                }
                Op::HoldBest { buyer, quantity } => model.hold(buyer_id(buyer), None, quantity),
                Op::Release(i) if !model.holds.is_empty() => {
                    let i = i.index(model.holds.len());
                    let before = model.holds[i].status;
                    match may_release(before) {
                        Ok(true) => model.end(i, HoldStatus::Released).unwrap(),
                        Ok(false) => prop_assert_ne!(before, HoldStatus::Active),
                        Err(_) => prop_assert_eq!(before, HoldStatus::Purchased),
                    }
                }
                Op::Expire(i) if !model.holds.is_empty() => {
                    let i = i.index(model.holds.len());
                    let before = model.clone();
                    if model.end(i, HoldStatus::Expired).is_err() {
                        // Refused: nothing changed.
                        prop_assert_ne!(before.holds[i].status, HoldStatus::Active);
                        prop_assert_eq!(&model.holds[i], &before.holds[i]);
                        prop_assert_eq!(&model.states, &before.states);
                    }
                }
                Op::Purchase { hold, by_owner } if !model.holds.is_empty() => {
                    let i = hold.index(model.holds.len());
                    let owner = model.holds[i].user_id;
                    let buyer = if by_owner { owner } else { Uuid::from_u128(99) };
                    model.purchase(i, buyer);
                }
                Op::Release(_) | Op::Expire(_) | Op::Purchase { .. } => {}
            }
            model.check_invariants();
        }
    }
}
