//! A circuit breaker per upstream.
//!
//! Closed: calls pass; it opens after `consecutive_failures` failures in a row, or when the
//! failure rate over the last `window` calls reaches `failure_rate`. Open: calls fail fast
//! (503 with `Retry-After`) for `open_seconds`. Then half-open: exactly one probe passes; its
//! success closes the breaker, its failure opens it again. A call abandoned before it finished
//! (the client went away) says nothing about the upstream and is not counted; an abandoned
//! probe frees the probe slot, so the next call probes and the breaker can never stay
//! half-open forever.
//!
//! The state sits behind a `std::sync::Mutex` held only for a few field updates, never across
//! an `.await`.

use evently_core::config::BreakerConfig;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The breaker's state, as reported in `/health` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe is allowed.
    HalfOpen,
}

impl BreakerState {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    outcomes: VecDeque<bool>,
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct Breaker {
    name: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission for one call; report its outcome with [`Call::finish`]. Dropping it unfinished
/// counts as nothing, but releases the probe slot of a half-open breaker.
#[derive(Debug)]
pub struct Call {
    breaker: Arc<Breaker>,
    probe: bool,
    finished: bool,
}

impl Call {
    /// Reports the call's outcome.
    pub fn finish(mut self, success: bool) {
        self.finished = true;
        self.breaker.record(self.probe, success, Instant::now());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished && self.probe {
            self.breaker.release_probe();
        }
    }
}

impl Breaker {
    /// A closed breaker for upstream `name`.
    pub fn new(name: &str, config: BreakerConfig) -> Arc<Self> {
        metrics::gauge!("evently_gateway_breaker_state", "upstream" => name.to_owned()).set(0.0);
        Arc::new(Self {
            name: name.to_owned(),
            config,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                outcomes: VecDeque::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.lock().state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call at `now`.
    ///
    /// # Errors
    /// While open (or while a probe is in flight), how long until a call may be tried.
    pub fn try_call(self: &Arc<Self>, now: Instant) -> Result<Call, Duration> {
        let mut inner = self.lock();
        let probe = match inner.state {
            State::Closed => false,
            State::Open { until } if now < until => return Err(until - now),
            State::Open { .. }
            | State::HalfOpen {
                probe_in_flight: false,
            } => {
                inner.state = State::HalfOpen {
                    probe_in_flight: true,
                };
                self.publish(BreakerState::HalfOpen);
                true
            }
            State::HalfOpen {
                probe_in_flight: true,
            } => return Err(Duration::from_secs(1)),
        };
        Ok(Call {
            breaker: self.clone(),
            probe,
            finished: false,
        })
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!("evently_gateway_breaker_state", "upstream" => self.name.clone())
            .set(state.gauge());
        match state {
            BreakerState::Open => {
                tracing::warn!(upstream = %self.name, "circuit breaker opened");
            }
            BreakerState::Closed => {
                tracing::warn!(upstream = %self.name, "circuit breaker closed; upstream recovered");
            }
            BreakerState::HalfOpen => {
                tracing::info!(upstream = %self.name, "circuit breaker half-open; probing");
            }
        }
    }

    fn release_probe(&self) {
        let mut inner = self.lock();
        if let State::HalfOpen {
            probe_in_flight: true,
        } = inner.state
        {
            inner.state = State::HalfOpen {
                probe_in_flight: false,
            };
        }
    }

    fn record(&self, probe: bool, success: bool, now: Instant) {
        let mut inner = self.lock();
        let open_for = Duration::from_secs(self.config.open_seconds);
        if probe {
            inner.consecutive_failures = 0;
            inner.outcomes.clear();
            if success {
                inner.state = State::Closed;
                self.publish(BreakerState::Closed);
            } else {
                inner.state = State::Open {
                    until: now + open_for,
                };
                self.publish(BreakerState::Open);
            }
            return;
        }
        if !matches!(inner.state, State::Closed) {
            // A call admitted before the breaker opened; its outcome no longer matters.
            return;
        }
        inner.consecutive_failures = if success {
            0
        } else {
            inner.consecutive_failures + 1
        };
        inner.outcomes.push_back(success);
        let window = usize::try_from(self.config.window).unwrap_or(usize::MAX);
        while inner.outcomes.len() > window {
            inner.outcomes.pop_front();
        }
        let failures = inner.outcomes.iter().filter(|ok| !**ok).count();
        let rate_tripped = inner.outcomes.len() == window
            && failures as f64 / window as f64 >= self.config.failure_rate;
        if inner.consecutive_failures >= self.config.consecutive_failures || rate_tripped {
            inner.state = State::Open {
                until: now + open_for,
            };
            inner.consecutive_failures = 0;
            inner.outcomes.clear();
            self.publish(BreakerState::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: 10,
            open_seconds: 5,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_then_half_opens_and_closes() {
        let b = Breaker::new("t", config());
        let t0 = Instant::now();
        for _ in 0..3 {
            b.try_call(t0).unwrap().finish(false);
        }
        assert_eq!(b.state(), BreakerState::Open);
        let wait = b.try_call(Instant::now()).unwrap_err();
        assert!(wait <= Duration::from_secs(5) && wait > Duration::from_secs(4));
        let later = Instant::now() + Duration::from_secs(6);
        let probe = b.try_call(later).unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_call(later).is_err(), "one probe at a time");
        probe.finish(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn failed_probe_reopens() {
        let b = Breaker::new("t", config());
        let t0 = Instant::now();
        for _ in 0..3 {
            b.try_call(t0).unwrap().finish(false);
        }
        b.try_call(t0 + Duration::from_secs(6))
            .unwrap()
            .finish(false);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn abandoned_probe_frees_the_slot_for_the_next_probe() {
        let b = Breaker::new("t", config());
        let t0 = Instant::now();
        for _ in 0..3 {
            b.try_call(t0).unwrap().finish(false);
        }
        let later = Instant::now() + Duration::from_secs(6);
        drop(b.try_call(later).unwrap());
        let next = b.try_call(later).expect("never stuck half-open");
        next.finish(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn cancelled_calls_do_not_open_the_breaker() {
        let b = Breaker::new("t", config());
        for _ in 0..50 {
            drop(b.try_call(Instant::now()).unwrap());
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn failure_rate_opens_without_consecutive_failures() {
        let b = Breaker::new("t", config());
        let t0 = Instant::now();
        for i in 0..10 {
            b.try_call(t0).unwrap().finish(i % 2 == 0);
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn successes_keep_it_closed() {
        let b = Breaker::new("t", config());
        let t0 = Instant::now();
        for i in 0..100 {
            b.try_call(t0).unwrap().finish(i % 5 != 0);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn concurrent_use_never_admits_two_probes() {
        let b = Breaker::new("t", config());
        let t0 = Instant::now();
        for _ in 0..3 {
            b.try_call(t0).unwrap().finish(false);
        }
        let later = t0 + Duration::from_secs(6);
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || match b.try_call(later) {
                        Ok(call) => {
                            std::mem::forget(call);
                            1
                        }
                        Err(_) => 0,
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 1);
    }
}
