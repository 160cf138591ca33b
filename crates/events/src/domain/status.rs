//! The event status machine (ARCHITECTURE §3). Every status change in the service goes
//! through [`EventStatus::transition`].
//!
//! ```text
//! UPCOMING ──► ON_SALE ──► SOLD_OUT
//!    │            │  ▲         │
//!    │            │  └─────────┘ (seats came back)
//!    ▼            ▼            ▼
//!  CANCELLED ◄────┴────────────┘
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventStatus {
    /// Announced; the sale has not started.
    Upcoming,
    /// Tickets can be bought.
    OnSale,
    /// No seats left.
    SoldOut,
    /// Called off; final.
    Cancelled,
}

/// A status change the machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event cannot go from {from} to {to}; from {from} it can go to: {allowed}", allowed = allowed_list(*from))]
pub struct IllegalTransition {
    /// The current status.
    pub from: EventStatus,
    /// The refused target.
    pub to: EventStatus,
}

fn allowed_list(from: EventStatus) -> String {
    let allowed = from.allowed();
    if allowed.is_empty() {
        "nothing (it is final)".into()
    } else {
        allowed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl EventStatus {
    /// Every status.
    pub const ALL: [EventStatus; 4] = [
        EventStatus::Upcoming,
        EventStatus::OnSale,
        EventStatus::SoldOut,
        EventStatus::Cancelled,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Upcoming => "UPCOMING",
            EventStatus::OnSale => "ON_SALE",
            EventStatus::SoldOut => "SOLD_OUT",
            EventStatus::Cancelled => "CANCELLED",
        }
    }

    /// The statuses this one may change to.
    pub fn allowed(self) -> &'static [EventStatus] {
        match self {
            EventStatus::Upcoming => &[EventStatus::OnSale, EventStatus::Cancelled],
            EventStatus::OnSale => &[EventStatus::SoldOut, EventStatus::Cancelled],
            EventStatus::SoldOut => &[EventStatus::OnSale, EventStatus::Cancelled],
            EventStatus::Cancelled => &[],
        }
    }

    /// Changes status to `to`.
    ///
    /// # Errors
    /// [`IllegalTransition`] (naming the allowed targets) for any change not in the machine,
    /// including a change to the same status.
    pub fn transition(self, to: EventStatus) -> Result<EventStatus, IllegalTransition> {
        if self.allowed().contains(&to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown status {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn model_allows(from: EventStatus, to: EventStatus) -> bool {
        use EventStatus::*;
        matches!(
            (from, to),
            (Upcoming, OnSale)
                | (OnSale, SoldOut)
                | (Upcoming | OnSale | SoldOut, Cancelled)
                | (SoldOut, OnSale)
        )
    }

    #[test]
    fn illegal_transition_names_the_allowed_ones() {
        let err = EventStatus::Upcoming
            .transition(EventStatus::SoldOut)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ON_SALE, CANCELLED"), "{text}");
        let final_err = EventStatus::Cancelled
            .transition(EventStatus::OnSale)
            .unwrap_err();
        assert!(final_err.to_string().contains("final"));
    }

    proptest! {
        #[test]
        fn transitions_follow_the_model(steps in proptest::collection::vec(0usize..4, 0..40)) {
            let mut state = EventStatus::Upcoming;
            for step in steps {
                let to = EventStatus::ALL[step];
                match state.transition(to) {
                    Ok(next) => {
                        prop_assert!(model_allows(state, to));
                        prop_assert_eq!(next, to);
                        state = next;
                    }
                    Err(e) => {
                        prop_assert!(!model_allows(state, to));
                        prop_assert_eq!(e.from, state);
                    }
                }
            }
        }
    }
}
