//! Idempotency keys of purchases: what a key that is already stored means for a request that
//! brings it again ([`decide_key`]). A key is claimed `in_flight` by its first request, and
//! `complete` once that request's answer is stored; the answer is then replayed byte for byte
//! to every request with the same key and body (ARCHITECTURE §4, invariant 2).

use uuid::Uuid;

/// Who is asking, for idempotency: the caller, the route and the client's key. A key is
/// scoped to both, so two callers (or two routes) never share one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller.
    pub user_id: Uuid,
    /// The route, e.g. `POST /api/orders/purchase`.
    pub route: String,
    /// The client's key.
    pub key: String,
}

/// A stored key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// Its first request is running (or crashed; see [`decide_key`]).
    InFlight,
    /// Its answer is stored.
    Complete,
}

impl KeyStatus {
    /// Every status.
    pub const ALL: [KeyStatus; 2] = [KeyStatus::InFlight, KeyStatus::Complete];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::InFlight => "in_flight",
            KeyStatus::Complete => "complete",
        }
    }
}

impl std::str::FromStr for KeyStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown idempotency key status {s}"))
    }
}

/// A key as stored, as [`decide_key`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// SHA-256 of the body of the request that claimed it.
    pub fingerprint: String,
    /// Its state.
    pub status: KeyStatus,
    /// The stored answer's HTTP status, once complete.
    pub response_status: Option<i64>,
    /// The stored answer's body, once complete.
    pub response_body: Option<String>,
    /// When its running request claimed it (epoch ms).
    pub locked_at: i64,
}

/// What a request bringing a stored key does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDecision {
    /// The key was used with another body: refuse the request.
    Reused,
    /// Answer the stored answer again.
    Replay {
        /// HTTP status.
        status: u16,
        /// Body, byte for byte.
        body: String,
    },
    /// The first request still runs: refuse this one for now.
    Running,
    /// The first request's claim is older than the lock: it is taken to have crashed, and
    /// this request takes the key over, if the claim is still the one made at `locked_at`.
    TakeOver {
        /// The claim to replace.
        locked_at: i64,
    },
}

/// Decides a request bringing `stored` again with a body hashing to `fingerprint`, at `now`,
/// when a running request holds its key for `lock_ms`. A stored answer without a status
/// replays as 500 (it cannot be replayed faithfully).
pub fn decide_key(stored: StoredKey, fingerprint: &str, lock_ms: i64, now: i64) -> KeyDecision {
    if stored.fingerprint != fingerprint {
        return KeyDecision::Reused;
    }
    match stored.status {
        KeyStatus::Complete => KeyDecision::Replay {
            status: stored
                .response_status
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500),
            body: stored.response_body.unwrap_or_default(),
        },
        KeyStatus::InFlight if stored.locked_at.saturating_add(lock_ms) > now => {
            KeyDecision::Running
        }
        KeyStatus::InFlight => KeyDecision::TakeOver {
            locked_at: stored.locked_at,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: KeyStatus) -> StoredKey {
        StoredKey {
            fingerprint: "f1".into(),
            status,
            response_status: Some(201),
            response_body: Some("{}".into()),
            locked_at: 1_000,
        }
    }

    #[test]
    fn another_body_with_the_same_key_is_refused_whatever_the_key_state() {
        for status in KeyStatus::ALL {
            assert_eq!(
                decide_key(stored(status), "f2", 30_000, 1_000),
                KeyDecision::Reused
            );
        }
    }

    #[test]
    fn a_complete_key_replays_its_answer() {
        assert_eq!(
            decide_key(stored(KeyStatus::Complete), "f1", 30_000, 99_000),
            KeyDecision::Replay {
                status: 201,
                body: "{}".into()
            }
        );
        let without_status = StoredKey {
            response_status: None,
            response_body: None,
            ..stored(KeyStatus::Complete)
        };
        assert_eq!(
            decide_key(without_status, "f1", 30_000, 1_000),
            KeyDecision::Replay {
                status: 500,
                body: String::new()
            }
        );
    }

    #[test]
    fn a_running_key_is_taken_over_only_once_its_lock_ran_out() {
        assert_eq!(
            decide_key(stored(KeyStatus::InFlight), "f1", 30_000, 30_999),
            KeyDecision::Running
        );
        assert_eq!(
            decide_key(stored(KeyStatus::InFlight), "f1", 30_000, 31_000),
            KeyDecision::TakeOver { locked_at: 1_000 }
        );
    }

    #[test]
    fn key_statuses_parse_from_their_stored_names() {
        for status in KeyStatus::ALL {
            assert_eq!(status.as_str().parse::<KeyStatus>(), Ok(status));
        }
        assert!("done".parse::<KeyStatus>().is_err());
    }
}
