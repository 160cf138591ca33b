//! The sold-out board: which events are fully sold, known without a read, so that a hold on
//! one is refused before its buyer is even authenticated (the gateway's [`EarlyAnswer`]).
//!
//! An event is *fully sold* when every seat is sold (`sold = capacity`, hence none held). That
//! is the one "sold out" that holds for every buyer: while any seat is held, the holder's own
//! new hold could take it again, so a refusal that does not know the caller cannot be exact.
//! It is public: availability is.
//!
//! The board may only ever say "fully sold" of an event that is. Entries carry the event's
//! inventory `version`, which every change of its counters raises:
//! - a refused best-available hold's early read (outside the lock) that finds the event fully
//!   sold at version `v` marks it, unless the board already knows of a version `>= v`;
//! - a transaction that starts on a fully sold event and leaves it with a seat free replaces
//!   the entry with "not fully sold at its new version" *before it commits*. A read made
//!   before that commit saw an older version, so its late mark is ignored; a read made after
//!   sees the free seat.
//!
//! So the board is never ahead of the database, only behind it (an event sold out a moment
//! ago is refused the usual way until the next refused hold reads it). A transaction that
//! frees a seat and then fails to commit leaves its entry at "not fully sold" until a later
//! change of the event: refusals take the usual way meanwhile, which is slower, never wrong.
//!
//! Only one process's writes are seen, so the board is used where one process owns the
//! store: booking on embedded SQLite, with the gateway in the same process. With PostgreSQL,
//! another booking process could free a seat unseen; there the board is not kept.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use uuid::Uuid;

#[cfg(doc)]
use evently_core::http::EarlyAnswer;

/// What the board knows of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    version: i64,
    fully_sold: bool,
}

/// The fully sold events of this process's store (see the module docs).
#[derive(Debug, Default)]
pub struct SoldOutBoard {
    events: RwLock<HashMap<Uuid, Entry>>,
    /// How many entries say fully sold: while none do, a lookup takes no lock.
    marked: AtomicUsize,
}

impl SoldOutBoard {
    /// Whether any event is fully sold (one atomic read).
    #[must_use]
    pub fn any(&self) -> bool {
        self.marked.load(Ordering::Acquire) > 0
    }

    /// Whether `event_id` is fully sold.
    #[must_use]
    pub fn is_fully_sold(&self, event_id: Uuid) -> bool {
        self.any()
            && self
                .events
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&event_id)
                .is_some_and(|e| e.fully_sold)
    }

    /// A committed read found `event_id` fully sold at `version`: marks it, unless the board
    /// knows of that version or a later one.
    pub fn mark(&self, event_id: Uuid, version: i64) {
        let mut events = self.events.write().unwrap_or_else(|e| e.into_inner());
        match events.get_mut(&event_id) {
            Some(entry) if entry.version >= version => {}
            Some(entry) => {
                if !entry.fully_sold {
                    self.marked.fetch_add(1, Ordering::AcqRel);
                }
                *entry = Entry {
                    version,
                    fully_sold: true,
                };
            }
            None => {
                events.insert(
                    event_id,
                    Entry {
                        version,
                        fully_sold: true,
                    },
                );
                self.marked.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// A transaction is about to commit `event_id` with a seat free at `version`, having
    /// started on it fully sold: from now on the board does not say fully sold, and ignores
    /// marks from reads of earlier versions.
    pub fn reopen(&self, event_id: Uuid, version: i64) {
        let mut events = self.events.write().unwrap_or_else(|e| e.into_inner());
        let entry = events.entry(event_id).or_insert(Entry {
            version,
            fully_sold: false,
        });
        if entry.fully_sold {
            self.marked.fetch_sub(1, Ordering::AcqRel);
        }
        *entry = Entry {
            version: entry.version.max(version),
            fully_sold: false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::SoldOutBoard;
    use proptest::prelude::*;
    use uuid::Uuid;

    #[test]
    fn a_marked_event_is_fully_sold_until_it_reopens() {
        let board = SoldOutBoard::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(!board.any() && !board.is_fully_sold(a));
        board.mark(a, 7);
        assert!(board.any() && board.is_fully_sold(a) && !board.is_fully_sold(b));
        board.reopen(a, 8);
        assert!(!board.any() && !board.is_fully_sold(a));
        board.mark(a, 9);
        assert!(board.is_fully_sold(a));
    }

    #[test]
    fn a_read_older_than_the_reopening_cannot_mark() {
        let board = SoldOutBoard::default();
        let a = Uuid::new_v4();
        // A read saw version 7 fully sold; before it marks, a cancel reopens at 8.
        board.reopen(a, 8);
        board.mark(a, 7);
        assert!(!board.is_fully_sold(a));
        // The same version as the reopening is not enough either.
        board.mark(a, 8);
        assert!(!board.is_fully_sold(a) && !board.any());
    }

    proptest! {
        /// Whatever the order in which marks (from reads of versions at which the event
        /// was fully sold) and reopenings (of versions at which it was not) arrive, the
        /// board says fully sold only if the latest version it heard of was fully sold, and
        /// its count of fully sold events matches.
        #[test]
        fn the_board_follows_the_latest_version_it_heard_of(
            ops in proptest::collection::vec((0u8..2, 0i64..20, any::<bool>()), 1..60),
        ) {
            let board = SoldOutBoard::default();
            let events = [Uuid::new_v4(), Uuid::new_v4()];
            let mut latest: [Option<(i64, bool)>; 2] = [None, None];
            for (which, version, sold) in ops {
                let i = usize::from(which);
                let before = latest[i];
                if sold {
                    board.mark(events[i], version);
                    if before.is_none_or(|(v, _)| version > v) {
                        latest[i] = Some((version, true));
                    }
                } else {
                    board.reopen(events[i], version);
                    let v = before.map_or(version, |(v, _)| v.max(version));
                    latest[i] = Some((v, false));
                }
                for (event, known) in events.iter().zip(latest) {
                    prop_assert_eq!(board.is_fully_sold(*event), known.is_some_and(|(_, s)| s));
                }
                let marked = latest.iter().filter(|k| k.is_some_and(|(_, s)| s)).count();
                prop_assert_eq!(board.any(), marked > 0);
            }
        }
    }
}
