//! Orders and tickets: an order's life ([`OrderStatus`]), a ticket's ([`TicketStatus`]), and
//! the rule that turns a paid hold into an order ([`check_purchase`]).
//!
//! A purchase is decided on what the store read under the event's lock: the hold and the
//! payment intent the request names, the event, and in a batch whether the hold was bought
//! earlier in the same transaction. [`check_purchase`] either vouches for the pair (hold,
//! intent) to sell or names the first rule the request breaks; it writes nothing.
//!
//! A purchase travels as one command, [`Purchase`]: built once from the request and its
//! caller, it reaches the store unchanged. It is paid either by an intent the buyer confirmed
//! before (`POST /api/orders/purchase`) or in the purchase itself ([`Payment::AtCheckout`],
//! `POST /api/orders/checkout`): then [`checkout_intent`] makes the intent it pays with, and
//! the intent, the order and its tickets commit together.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;
use uuid::Uuid;

use super::StatusMachine;
use super::hold::{Hold, HoldEnded, HoldStatus};
use super::idempotency::IdempotencyKey;
use super::inventory::Inventory;
use super::payment::{Confirmation, IntentStatus, PaymentIntent, intent_amount};
use super::{HoldId, IllegalTransition, OrderId, PaymentIntentId, TicketId};

/// A purchase to make: the buyer's request to turn their paid hold into an order, exactly
/// once per idempotency key. Nothing in it is trusted yet beyond its types: the store checks
/// it against what it reads under the event's lock ([`check_purchase`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The new order's id (unused when the key's first answer is replayed).
    pub order_id: OrderId,
    /// The buyer: the caller.
    pub user_id: Uuid,
    /// The event named in the request.
    pub event_id: Uuid,
    /// The hold to buy.
    pub hold_id: HoldId,
    /// The seats named in the request (must be the hold's).
    pub seat_ids: Vec<String>,
    /// The payment intent: the confirmed one the request names, or at checkout the id of the
    /// intent made for the purchase.
    pub intent_id: PaymentIntentId,
    /// How the purchase is paid.
    pub payment: Payment,
    /// The idempotency key, completed with the order in the same transaction.
    pub key: IdempotencyKey,
}

/// How a purchase is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payment {
    /// By the succeeded intent [`Purchase::intent_id`], created and confirmed before.
    Confirmed,
    /// In the purchase's own transaction: by the hold's succeeded intent if the hold was paid
    /// already (it is never charged twice), else by a new intent with
    /// [`Purchase::intent_id`] for the hold's price, charged to this test card.
    AtCheckout(Confirmation),
}

/// The intent a checkout pays for `hold` with: `paid`, the hold's succeeded intent, when it
/// has one (`false`: nothing new to store), else a new succeeded intent `intent_id` of
/// `buyer` for the price of the hold's seats in `inv` (`true`). `None` when the price
/// overflows.
pub fn checkout_intent(
    hold: &Hold,
    inv: &Inventory,
    paid: Option<&PaymentIntent>,
    buyer: Uuid,
    intent_id: PaymentIntentId,
) -> Option<(PaymentIntent, bool)> {
    if let Some(paid) = paid {
        return Some((paid.clone(), false));
    }
    let amount = intent_amount(&inv.section_prices, inv.base_price, &hold.seat_ids)?;
    Some((
        PaymentIntent {
            id: intent_id,
            hold_id: hold.id,
            event_id: hold.event_id,
            user_id: buyer,
            amount,
            currency: inv.currency.clone(),
            status: IntentStatus::Succeeded,
            // Nothing confirms it: no secret can match an empty hash.
            secret_hash: String::new(),
        },
        true,
    ))
}

/// Where an order is in its life: confirmed when placed, cancelled (and refunded) once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed and paid; its tickets are valid.
    Confirmed,
    /// Cancelled and refunded; final.
    Cancelled,
}

impl StatusMachine for OrderStatus {
    fn allowed(self) -> &'static [OrderStatus] {
        match self {
            OrderStatus::Confirmed => &[OrderStatus::Cancelled],
            OrderStatus::Cancelled => &[],
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

evently_core::stored_names!(OrderStatus, "order status", {
    Confirmed => "confirmed",
    Cancelled => "cancelled",
});

/// A ticket's state: valid while its order is confirmed, void once it is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Admits to its seat.
    Valid,
    /// Its order was cancelled.
    Void,
}

evently_core::stored_names!(TicketStatus, "ticket status", {
    Valid => "valid",
    Void => "void",
});

/// One ticket of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    /// Its id.
    #[schema(value_type = Uuid)]
    pub ticket_id: TicketId,
    /// The seat (or general-admission place) it admits to.
    pub seat_id: String,
    /// The unguessable code printed on the ticket.
    pub code: String,
    /// `valid` or `void`.
    #[schema(value_type = String)]
    pub status: TicketStatus,
}

/// An order as stored and answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Its id.
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    /// The event.
    pub event_id: Uuid,
    /// The buyer.
    pub user_id: Uuid,
    /// The hold it was bought from.
    #[schema(value_type = Uuid)]
    pub hold_id: HoldId,
    /// The payment.
    #[schema(value_type = Uuid)]
    pub payment_intent_id: PaymentIntentId,
    /// The seats bought.
    pub seat_ids: Vec<String>,
    /// Minor units paid.
    pub amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// `confirmed` or `cancelled`.
    #[schema(value_type = String)]
    pub status: OrderStatus,
    /// Minor units refunded, once cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_amount: Option<i64>,
    /// Why it was cancelled: `buyer`, `organizer`, `admin` or `event-cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// When it was placed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: time::OffsetDateTime,
    /// The tickets.
    pub tickets: Vec<Ticket>,
}

impl Order {
    /// Cancels the order for `reason`: it is refunded in full and its tickets are void.
    ///
    /// # Errors
    /// [`IllegalTransition`] when it is already cancelled (nothing changes).
    pub fn cancel(&mut self, reason: &str) -> Result<(), IllegalTransition<OrderStatus>> {
        self.status = self.status.transition(OrderStatus::Cancelled)?;
        self.refunded_amount = Some(self.amount);
        self.cancel_reason = Some(reason.to_owned());
        for ticket in &mut self.tickets {
            ticket.status = TicketStatus::Void;
        }
        Ok(())
    }
}

/// Why a purchase is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseRefusal {
    /// No such hold of the buyer's.
    HoldNotFound,
    /// The hold is for another event than the one named.
    AnotherEvent,
    /// No such event (and the hold is the buyer's, for it).
    EventNotFound,
    /// The hold already became an order.
    HoldPurchased,
    /// The hold expired, was released or was cancelled.
    HoldExpired,
    /// The seats named are not exactly the hold's.
    SeatsMismatch,
    /// The event was cancelled or deleted.
    EventCancelled,
    /// No such payment intent of the buyer's.
    IntentNotFound,
    /// The payment intent pays for another hold.
    IntentForAnotherHold,
    /// The payment has not succeeded; the intent's status.
    PaymentIncomplete(IntentStatus),
}

/// What [`check_purchase`] decides on: facts read under the event's lock.
#[derive(Debug, Clone, Copy)]
pub struct PurchaseFacts<'a> {
    /// The buyer.
    pub buyer: Uuid,
    /// The event the purchase runs under (the one its request names).
    pub event_id: Uuid,
    /// That event was cancelled or deleted ([`crate::domain::Inventory::is_cancelled`]).
    pub event_cancelled: bool,
    /// The hold named, if it exists.
    pub hold: Option<&'a Hold>,
    /// The payment intent named, if it exists.
    pub intent: Option<&'a PaymentIntent>,
    /// The seats named.
    pub seat_ids: &'a [String],
    /// The hold was bought earlier in the same transaction (which the hold read does not
    /// show yet).
    pub bought_earlier: bool,
}

/// Checks that the buyer's `hold` is for `event_id`.
///
/// # Errors
/// [`PurchaseRefusal::AnotherEvent`] otherwise.
pub fn hold_is_for(hold: &Hold, event_id: Uuid) -> Result<(), PurchaseRefusal> {
    if hold.event_id == event_id {
        Ok(())
    } else {
        Err(PurchaseRefusal::AnotherEvent)
    }
}

/// Decides a purchase: the hold and intent to turn into an order, or why not. The rules, in
/// order: the hold is the buyer's, for the event named, not bought already, active; the
/// seats named are exactly the hold's (in any order); the event is not cancelled; the intent
/// is the buyer's, for this hold, and succeeded.
///
/// # Errors
/// A [`PurchaseRefusal`] naming the first rule broken.
pub fn check_purchase<'a>(
    facts: &PurchaseFacts<'a>,
) -> Result<(&'a Hold, &'a PaymentIntent), PurchaseRefusal> {
    let hold = facts
        .hold
        .filter(|h| h.user_id == facts.buyer)
        .ok_or(PurchaseRefusal::HoldNotFound)?;
    hold_is_for(hold, facts.event_id)?;
    if facts.bought_earlier {
        return Err(PurchaseRefusal::HoldPurchased);
    }
    hold.status
        .transition(HoldStatus::Purchased)
        .map_err(|refused| match HoldEnded::of(refused.from) {
            HoldEnded::Purchased => PurchaseRefusal::HoldPurchased,
            HoldEnded::Expired => PurchaseRefusal::HoldExpired,
        })?;
    let mut named = facts.seat_ids.to_vec();
    named.sort();
    let mut held = hold.seat_ids.clone();
    held.sort();
    if named != held {
        return Err(PurchaseRefusal::SeatsMismatch);
    }
    if facts.event_cancelled {
        return Err(PurchaseRefusal::EventCancelled);
    }
    let intent = facts
        .intent
        .filter(|i| i.user_id == facts.buyer)
        .ok_or(PurchaseRefusal::IntentNotFound)?;
    if intent.hold_id != hold.id {
        return Err(PurchaseRefusal::IntentForAnotherHold);
    }
    if intent.status != IntentStatus::Succeeded {
        return Err(PurchaseRefusal::PaymentIncomplete(intent.status));
    }
    Ok((hold, intent))
}

/// The refusal of a purchase naming `event_id`, which booking does not know, of `hold` (if
/// it exists): about the hold when it is not the buyer's or is for another event.
pub fn purchase_without_event(hold: Option<&Hold>, buyer: Uuid, event_id: Uuid) -> PurchaseRefusal {
    match hold.filter(|h| h.user_id == buyer) {
        None => PurchaseRefusal::HoldNotFound,
        Some(hold) => hold_is_for(hold, event_id)
            .err()
            .unwrap_or(PurchaseRefusal::EventNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::super::hold::HoldKind;
    use super::super::inventory::tests::on_sale;
    use super::super::inventory::{EVENT_CANCELLED, Inventory};
    use super::*;
    use proptest::prelude::*;

    const BUYER: Uuid = Uuid::from_u128(7);
    const OTHER: Uuid = Uuid::from_u128(8);

    fn hold() -> Hold {
        Hold {
            id: HoldId(Uuid::from_u128(3)),
            event_id: on_sale().event_id,
            user_id: BUYER,
            seat_ids: vec!["A-1-1".into(), "A-1-2".into()],
            kind: HoldKind::Buyer,
            status: HoldStatus::Active,
            created_at: 1_000,
            expires_at: 9_000,
        }
    }

    fn intent() -> PaymentIntent {
        PaymentIntent {
            id: PaymentIntentId(Uuid::from_u128(4)),
            hold_id: hold().id,
            event_id: on_sale().event_id,
            user_id: BUYER,
            amount: 10_000,
            currency: "EUR".into(),
            status: IntentStatus::Succeeded,
            secret_hash: String::new(),
        }
    }

    fn seats(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    fn check(
        event: &Inventory,
        hold: Option<&Hold>,
        intent: Option<&PaymentIntent>,
        seat_ids: &[String],
        bought_earlier: bool,
    ) -> Result<(), PurchaseRefusal> {
        check_purchase(&PurchaseFacts {
            buyer: BUYER,
            event_id: event.event_id,
            event_cancelled: event.is_cancelled(),
            hold,
            intent,
            seat_ids,
            bought_earlier,
        })
        .map(drop)
    }

    #[test]
    fn a_live_paid_hold_is_sold_with_its_seats_named_in_any_order() {
        let (event, hold, intent) = (on_sale(), hold(), intent());
        let named = seats(&["A-1-2", "A-1-1"]);

        let sold = check_purchase(&PurchaseFacts {
            buyer: BUYER,
            event_id: event.event_id,
            event_cancelled: false,
            hold: Some(&hold),
            intent: Some(&intent),
            seat_ids: &named,
            bought_earlier: false,
        });

        assert_eq!(sold, Ok((&hold, &intent)));
    }

    #[test]
    fn each_purchase_rule_refuses_in_turn() {
        let event = on_sale();
        let named = seats(&["A-1-1", "A-1-2"]);
        let others = Hold {
            user_id: OTHER,
            ..hold()
        };
        let elsewhere = Hold {
            event_id: Uuid::from_u128(42),
            ..hold()
        };
        let purchased = Hold {
            status: HoldStatus::Purchased,
            ..hold()
        };
        let cancelled = Inventory {
            status: EVENT_CANCELLED.into(),
            ..on_sale()
        };
        let foreign_intent = PaymentIntent {
            user_id: OTHER,
            ..intent()
        };
        let intent_of_another_hold = PaymentIntent {
            hold_id: HoldId(Uuid::from_u128(5)),
            ..intent()
        };
        let unpaid = PaymentIntent {
            status: IntentStatus::RequiresConfirmation,
            ..intent()
        };
        let h = hold();
        let i = intent();

        assert_eq!(
            check(&event, None, Some(&i), &named, false),
            Err(PurchaseRefusal::HoldNotFound)
        );
        assert_eq!(
            check(&event, Some(&others), Some(&i), &named, false),
            Err(PurchaseRefusal::HoldNotFound)
        );
        assert_eq!(
            check(&event, Some(&elsewhere), Some(&i), &named, false),
            Err(PurchaseRefusal::AnotherEvent)
        );
        assert_eq!(
            check(&event, Some(&h), Some(&i), &named, true),
            Err(PurchaseRefusal::HoldPurchased)
        );
        assert_eq!(
            check(&event, Some(&purchased), Some(&i), &named, false),
            Err(PurchaseRefusal::HoldPurchased)
        );
        for ended in [
            HoldStatus::Released,
            HoldStatus::Expired,
            HoldStatus::Cancelled,
        ] {
            let ended = Hold {
                status: ended,
                ..hold()
            };
            assert_eq!(
                check(&event, Some(&ended), Some(&i), &named, false),
                Err(PurchaseRefusal::HoldExpired)
            );
        }
        for wrong in [
            seats(&["A-1-1"]),
            seats(&["A-1-1", "A-1-2", "A-1-3"]),
            seats(&["A-1-1", "A-1-1"]),
        ] {
            assert_eq!(
                check(&event, Some(&h), Some(&i), &wrong, false),
                Err(PurchaseRefusal::SeatsMismatch)
            );
        }
        assert_eq!(
            check(&cancelled, Some(&h), Some(&i), &named, false),
            Err(PurchaseRefusal::EventCancelled)
        );
        assert_eq!(
            check(&event, Some(&h), None, &named, false),
            Err(PurchaseRefusal::IntentNotFound)
        );
        assert_eq!(
            check(&event, Some(&h), Some(&foreign_intent), &named, false),
            Err(PurchaseRefusal::IntentNotFound)
        );
        assert_eq!(
            check(
                &event,
                Some(&h),
                Some(&intent_of_another_hold),
                &named,
                false
            ),
            Err(PurchaseRefusal::IntentForAnotherHold)
        );
        assert_eq!(
            check(&event, Some(&h), Some(&unpaid), &named, false),
            Err(PurchaseRefusal::PaymentIncomplete(
                IntentStatus::RequiresConfirmation
            ))
        );
    }

    #[test]
    fn a_purchase_for_an_unknown_event_is_answered_about_the_hold() {
        let h = hold();
        let unknown = Uuid::from_u128(77);

        assert_eq!(
            purchase_without_event(None, BUYER, unknown),
            PurchaseRefusal::HoldNotFound
        );
        assert_eq!(
            purchase_without_event(Some(&h), OTHER, unknown),
            PurchaseRefusal::HoldNotFound
        );
        assert_eq!(
            purchase_without_event(Some(&h), BUYER, unknown),
            PurchaseRefusal::AnotherEvent
        );
        assert_eq!(
            purchase_without_event(Some(&h), BUYER, h.event_id),
            PurchaseRefusal::EventNotFound
        );
    }

    #[test]
    fn cancelling_refunds_the_order_and_voids_its_tickets_once() {
        let mut order = Order {
            order_id: OrderId(Uuid::from_u128(9)),
            event_id: on_sale().event_id,
            user_id: BUYER,
            hold_id: hold().id,
            payment_intent_id: intent().id,
            seat_ids: seats(&["A-1-1"]),
            amount: 5000,
            currency: "EUR".into(),
            status: OrderStatus::Confirmed,
            refunded_amount: None,
            cancel_reason: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            tickets: vec![Ticket {
                ticket_id: TicketId(Uuid::from_u128(10)),
                seat_id: "A-1-1".into(),
                code: "c".into(),
                status: TicketStatus::Valid,
            }],
        };

        order.cancel("buyer").unwrap();
        let again = order.clone().cancel("admin");

        assert_eq!(order.status, OrderStatus::Cancelled);
        assert_eq!(order.refunded_amount, Some(5000));
        assert_eq!(order.cancel_reason.as_deref(), Some("buyer"));
        assert_eq!(order.tickets[0].status, TicketStatus::Void);
        assert_eq!(
            again.map_err(|e| (e.from, e.to)),
            Err((OrderStatus::Cancelled, OrderStatus::Cancelled))
        );
    }

    #[test]
    fn orders_serialise_their_statuses_by_their_stored_names() {
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse::<OrderStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        for status in TicketStatus::ALL {
            assert_eq!(status.as_str().parse::<TicketStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
    }

    #[test]
    fn a_checkout_pays_with_the_holds_intent_if_it_has_one_else_a_new_one_at_its_price() {
        let inv = on_sale();
        let hold = Hold {
            seat_ids: seats(&["A-1-1", "B-2-3"]),
            ..hold()
        };
        let id = PaymentIntentId(Uuid::from_u128(9));
        let (new, fresh) = checkout_intent(&hold, &inv, None, BUYER, id).unwrap();
        assert!(fresh);
        assert_eq!(new.id, id);
        assert_eq!(
            (new.hold_id, new.event_id, new.user_id),
            (hold.id, hold.event_id, BUYER)
        );
        // Section A's price plus the base price, in the event's currency.
        assert_eq!((new.amount, new.currency.as_str()), (5000 + 3000, "EUR"));
        assert_eq!(new.status, IntentStatus::Succeeded);
        assert!(new.secret_hash.is_empty());

        let paid = intent();
        let (used, fresh) = checkout_intent(&hold, &inv, Some(&paid), BUYER, id).unwrap();
        assert!(!fresh);
        assert_eq!(used, paid);

        let dear = Inventory {
            base_price: i64::MAX,
            ..on_sale()
        };
        assert!(checkout_intent(&hold, &dear, None, BUYER, id).is_none());
    }

    /// The order machine, written as the list of its edges.
    fn model_allows(from: OrderStatus, to: OrderStatus) -> bool {
        matches!((from, to), (OrderStatus::Confirmed, OrderStatus::Cancelled))
    }

    proptest! {
        #[test]
        fn order_transitions_follow_the_model(
            start in 0usize..2,
            steps in proptest::collection::vec(0usize..2, 0..10),
        ) {
            crate::domain::walk_follows_model(&OrderStatus::ALL, start, &steps, model_allows)?;
        }

        /// Purchases of generated holds, intents and requests against a model that checks
        /// each rule on its own and takes the first that fails.
        #[test]
        fn purchases_are_decided_as_the_model_says(
            hold_exists in proptest::bool::weighted(0.9),
            hold_mine in proptest::bool::weighted(0.85),
            hold_here in proptest::bool::weighted(0.85),
            hold_status in 0usize..5,
            bought_earlier in proptest::bool::weighted(0.1),
            held in proptest::collection::btree_set(1i64..6, 1..4),
            named in proptest::collection::vec(1i64..6, 0..4),
            cancelled in proptest::bool::weighted(0.1),
            deleted in proptest::bool::weighted(0.05),
            intent_exists in proptest::bool::weighted(0.9),
            intent_mine in proptest::bool::weighted(0.85),
            intent_for_hold in proptest::bool::weighted(0.85),
            intent_status in 0usize..5,
        ) {
            let seat = |n: &i64| format!("A-1-{n}");
            let event = Inventory {
                deleted,
                status: if cancelled { EVENT_CANCELLED.into() } else { "ON_SALE".into() },
                ..on_sale()
            };
            let hold = Hold {
                user_id: if hold_mine { BUYER } else { OTHER },
                event_id: if hold_here { event.event_id } else { Uuid::from_u128(42) },
                status: HoldStatus::ALL[hold_status],
                seat_ids: held.iter().map(seat).collect(),
                ..hold()
            };
            let intent = PaymentIntent {
                user_id: if intent_mine { BUYER } else { OTHER },
                hold_id: if intent_for_hold { hold.id } else { HoldId(Uuid::from_u128(5)) },
                status: IntentStatus::ALL[intent_status],
                ..intent()
            };
            let named: Vec<String> = named.iter().map(seat).collect();

            let decided = check_purchase(&PurchaseFacts {
                buyer: BUYER,
                event_id: event.event_id,
                event_cancelled: event.is_cancelled(),
                hold: hold_exists.then_some(&hold),
                intent: intent_exists.then_some(&intent),
                seat_ids: &named,
                bought_earlier,
            });

            let same_seats = {
                let mut counted = std::collections::BTreeMap::<&String, i32>::new();
                for s in &named {
                    *counted.entry(s).or_default() += 1;
                }
                for s in &hold.seat_ids {
                    *counted.entry(s).or_default() -= 1;
                }
                counted.values().all(|c| *c == 0)
            };
            let expected = if !(hold_exists && hold_mine) {
                Err(PurchaseRefusal::HoldNotFound)
            } else if !hold_here {
                Err(PurchaseRefusal::AnotherEvent)
            } else if bought_earlier || hold.status == HoldStatus::Purchased {
                Err(PurchaseRefusal::HoldPurchased)
            } else if hold.status != HoldStatus::Active {
                Err(PurchaseRefusal::HoldExpired)
            } else if !same_seats {
                Err(PurchaseRefusal::SeatsMismatch)
            } else if cancelled || deleted {
                Err(PurchaseRefusal::EventCancelled)
            } else if !(intent_exists && intent_mine) {
                Err(PurchaseRefusal::IntentNotFound)
            } else if !intent_for_hold {
                Err(PurchaseRefusal::IntentForAnotherHold)
            } else if intent.status != IntentStatus::Succeeded {
                Err(PurchaseRefusal::PaymentIncomplete(intent.status))
            } else {
                Ok(())
            };
            prop_assert_eq!(decided.map(drop), expected);
        }
    }
}
