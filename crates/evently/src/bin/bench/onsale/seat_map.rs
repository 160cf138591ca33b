//! The seat map the client tasks share, and the random choices of the buyers who click on it.
//!
//! Invariants: a seat is marked taken only from an answer that showed it held or sold (or the
//! conflicts of a 409), and free again only after its hold was released; a pick is a run of
//! adjacent seats of one row, all shown free at the moment of the pick. The map is a view,
//! never the truth: the store decides, and buyers still collide on seats picked while free.

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

use super::layout::RowSpec;

/// A small SplitMix64 generator: buyers' choices need to be spread, not unpredictable.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// The seat map as the buyers see it: every seat of the layout, marked taken once an answer
/// showed it held or sold (a 201 hold, or the conflicts of a 409). All client tasks share it,
/// as every buyer's page shares one live seat map; it lags the store by the requests in
/// flight, so buyers still collide on seats that were free when they looked.
pub(super) struct SeatMap {
    /// Seat ids in layout order, row after row.
    ids: Vec<String>,
    /// Index of each seat id in `ids`.
    index: std::collections::HashMap<String, usize>,
    /// First index of each row in `ids`, and its length.
    rows: Vec<(usize, usize)>,
    taken: Vec<AtomicBool>,
}

impl SeatMap {
    pub(super) fn new(rows: &[RowSpec]) -> Self {
        let mut ids = Vec::new();
        let mut spans = Vec::with_capacity(rows.len());
        for row in rows {
            spans.push((ids.len(), row.seats as usize));
            ids.extend((1..=row.seats).map(|n| format!("{}-{}-{n}", row.section, row.label)));
        }
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let taken = ids.iter().map(|_| AtomicBool::new(false)).collect();
        Self {
            ids,
            index,
            rows: spans,
            taken,
        }
    }

    /// Marks the seats of an answer taken (`true`) or free again (`false`).
    pub(super) fn mark<'a>(&self, seats: impl IntoIterator<Item = &'a Value>, taken: bool) {
        for seat in seats {
            if let Some(&i) = seat.as_str().and_then(|id| self.index.get(id)) {
                self.taken[i].store(taken, Ordering::Relaxed);
            }
        }
    }

    /// `q` adjacent seats shown free, as a click on the seat map picks them: from a random
    /// place in a random row, the first free run of `q` in that row; other random rows when
    /// it has none. `None` when a few rows tried show no such run (the buyer then asks for
    /// best available).
    pub(super) fn pick(&self, q: u32, rng: &mut Rng) -> Option<Vec<String>> {
        let q = q as usize;
        for _ in 0..8 {
            let (first, len) =
                self.rows[usize::try_from(rng.below(self.rows.len() as u64)).ok()?];
            if len < q {
                continue;
            }
            let starts = len - q + 1;
            let offset = usize::try_from(rng.below(starts as u64)).ok()?;
            for k in 0..starts {
                let start = first + (offset + k) % starts;
                if (start..start + q).all(|i| !self.taken[i].load(Ordering::Relaxed)) {
                    return Some(self.ids[start..start + q].to_vec());
                }
            }
        }
        None
    }
}
