//! The failed-login throttle rule, as a pure function over one counter.
//!
//! Each counter (one per account, one per client address) counts failures in a window. Once it
//! reaches the threshold, the key is locked; every further failure doubles the lock, up to a
//! ceiling. Locks always end, so an attacker cannot lock a user out for good (ASVS 6.1.1), and a
//! lock refuses even the right password while it lasts, so guessing gains nothing.

use evently_core::config::ThrottleConfig;

/// The thresholds and durations, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures that lock the key.
    pub max_failures: u32,
    /// Window in which failures count.
    pub window_ms: i64,
    /// First lock.
    pub base_lock_ms: i64,
    /// Longest lock.
    pub max_lock_ms: i64,
}

impl ThrottlePolicy {
    /// The account policy of `config`.
    pub fn account(config: &ThrottleConfig) -> Self {
        Self::with_max(config, config.account_max_failures)
    }

    /// The client-address policy of `config`.
    pub fn client(config: &ThrottleConfig) -> Self {
        Self::with_max(config, config.ip_max_failures)
    }

    fn with_max(config: &ThrottleConfig, max_failures: u32) -> Self {
        let ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        Self {
            max_failures,
            window_ms: ms(config.window_seconds),
            base_lock_ms: ms(config.base_lock_seconds),
            max_lock_ms: ms(config.max_lock_seconds),
        }
    }
}

/// One counter's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    /// Failures in the current window.
    pub failures: u32,
    /// When the window started (epoch ms).
    pub window_start: i64,
    /// Locked until this time (epoch ms), if locked.
    pub locked_until: Option<i64>,
}

impl ThrottleState {
    /// The state after one more failure at `now`.
    pub fn after_failure(prev: Option<Self>, now: i64, policy: &ThrottlePolicy) -> Self {
        let fresh = Self {
            failures: 0,
            window_start: now,
            locked_until: None,
        };
        let mut state = match prev {
            // A window that ended with no lock in force starts over.
            Some(p)
                if now - p.window_start <= policy.window_ms
                    || p.locked_until.is_some_and(|until| until > now) =>
            {
                p
            }
            _ => fresh,
        };
        state.failures = state.failures.saturating_add(1);
        if state.failures >= policy.max_failures {
            let doublings = (state.failures - policy.max_failures).min(20);
            let lock = policy
                .base_lock_ms
                .saturating_mul(1i64 << doublings)
                .min(policy.max_lock_ms);
            state.locked_until = Some(now + lock);
        }
        state
    }

    /// Milliseconds left of the lock at `now`, if locked.
    pub fn locked_for(&self, now: i64) -> Option<i64> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures: 3,
            window_ms: 60_000,
            base_lock_ms: 1_000,
            max_lock_ms: 5_000,
        }
    }

    #[test]
    fn locks_at_threshold_and_doubles_up_to_ceiling() {
        let p = policy();
        let mut s = None;
        for _ in 0..2 {
            s = Some(ThrottleState::after_failure(s, 0, &p));
        }
        assert_eq!(s.unwrap().locked_for(0), None);
        let third = ThrottleState::after_failure(s, 0, &p);
        assert_eq!(third.locked_for(0), Some(1_000));
        let fourth = ThrottleState::after_failure(Some(third), 0, &p);
        assert_eq!(fourth.locked_for(0), Some(2_000));
        let mut last = fourth;
        for _ in 0..10 {
            last = ThrottleState::after_failure(Some(last), 0, &p);
        }
        assert_eq!(last.locked_for(0), Some(5_000));
        assert_eq!(last.locked_for(5_000), None, "locks end");
    }

    #[test]
    fn window_expiry_resets_the_count() {
        let p = policy();
        let s = ThrottleState::after_failure(None, 0, &p);
        let s = ThrottleState::after_failure(Some(s), 1, &p);
        let s = ThrottleState::after_failure(Some(s), 70_000, &p);
        assert_eq!(s.failures, 1);
        assert_eq!(s.window_start, 70_000);
    }
}
