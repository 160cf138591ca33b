//! What the client tasks count: the steps of a purchase and, per client task, the answers,
//! latencies and outcomes it saw, merged into one [`Stats`] after the sale.
//!
//! Invariants: every answer is counted once, under its step and its status (with the problem
//! slug for 4xx); an answer that is not normal at its step is counted unexpected and a few of
//! them are kept as samples; latencies are kept for 2xx answers, and for holds refused with
//! 409 on their own.

use std::collections::BTreeMap;

/// The steps of a purchase, each counted and timed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    HoldSeats,
    HoldBest,
    Intent,
    Confirm,
    Purchase,
    /// Intent, confirm and purchase in one request (`--checkout`).
    Checkout,
    Release,
}

impl Step {
    pub(super) const ALL: [Step; 7] = [
        Step::HoldSeats,
        Step::HoldBest,
        Step::Intent,
        Step::Confirm,
        Step::Purchase,
        Step::Checkout,
        Step::Release,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Step::HoldSeats => "hold (seat map)",
            Step::HoldBest => "hold (best available)",
            Step::Intent => "payment intent",
            Step::Confirm => "payment confirm",
            Step::Purchase => "purchase",
            Step::Checkout => "checkout",
            Step::Release => "release hold",
        }
    }

    /// Whether `status` is a normal answer at this step (a 409 on a hold is a lost race).
    pub(super) fn expects(self, status: u16) -> bool {
        match self {
            Step::HoldSeats | Step::HoldBest => matches!(status, 201 | 409),
            Step::Intent => matches!(status, 200 | 201),
            Step::Confirm => status == 200,
            Step::Purchase | Step::Checkout => status == 201,
            Step::Release => matches!(status, 200 | 204),
        }
    }
}

/// What one client task saw.
#[derive(Default)]
pub(super) struct Stats {
    /// Latency of 2xx answers per step, in ms.
    pub(super) ok_ms: BTreeMap<Step, Vec<f64>>,
    /// Latency of holds refused with 409, in ms.
    pub(super) refused_ms: Vec<f64>,
    /// Answers per step and status (with the problem slug for 4xx).
    pub(super) counts: BTreeMap<(Step, String), u64>,
    pub(super) unexpected: u64,
    pub(super) samples: Vec<String>,
    pub(super) holds: u64,
    pub(super) orders: u64,
    pub(super) tickets: u64,
    pub(super) fallbacks: u64,
    pub(super) sold_out: u64,
    pub(super) lost: u64,
    pub(super) failed: u64,
    /// When the latest order was answered, in seconds from the start of the sale.
    pub(super) last_order_s: f64,
}

impl Stats {
    pub(super) fn merge(&mut self, other: Stats) {
        for (step, v) in other.ok_ms {
            self.ok_ms.entry(step).or_default().extend(v);
        }
        self.refused_ms.extend(other.refused_ms);
        for (k, v) in other.counts {
            *self.counts.entry(k).or_default() += v;
        }
        self.unexpected += other.unexpected;
        for s in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s);
            }
        }
        self.holds += other.holds;
        self.orders += other.orders;
        self.tickets += other.tickets;
        self.fallbacks += other.fallbacks;
        self.sold_out += other.sold_out;
        self.lost += other.lost;
        self.failed += other.failed;
        self.last_order_s = self.last_order_s.max(other.last_order_s);
    }

    pub(super) fn record_unexpected(&mut self, step: Step, label: String, detail: String) {
        *self.counts.entry((step, label)).or_default() += 1;
        self.unexpected += 1;
        if self.samples.len() < 5 {
            self.samples.push(format!("{}: {detail}", step.name()));
        }
    }
}
