//! The idempotency protocol of requests that bring an `Idempotency-Key` (ARCHITECTURE §4,
//! invariant 2), written once for every service: what a stored key means for a request that
//! brings it again ([`decide_key`], a pure rule), and the protocol around an operation ([`run`]
//! over a store of keys, [`IdempotencyStore`]):
//!
//! 1. **Begin**: the request claims its key, scoped to the caller and the route, with the
//!    fingerprint of its body. A key whose answer is stored replays that answer byte for byte
//!    without running anything; a key used with another body is refused (422); a key whose
//!    first request still runs is refused for now (409 with `Retry-After`); a key whose
//!    request's lease ran out (its process died) is taken over. A running request renews its
//!    lease every third of [`KeyTimes::lock_ms`], so the lease can be short: a key claimed by
//!    a killed process is free again at most `lock_ms` after the kill, whatever the request
//!    was doing.
//! 2. **Run** the operation, once.
//! 3. **Finish or abandon**: a success's answer is stored for the key, preferably by the
//!    operation itself in the transaction of its effect ([`Done::Recorded`]), so that no crash
//!    can leave the effect without its answer. A failure's problem is stored as the key's
//!    answer, except 409, 429 and 5xx: those give the key up, and the client may retry with it.
//!
//! This module knows HTTP only as a status and a problem body; reading the header and
//! rendering a replay belong to the handler. It reads no clock: the caller passes `now`.

use async_trait::async_trait;
use std::future::Future;
use uuid::Uuid;

use crate::Problem;
use crate::db::StoreError;
use crate::sqlite::BoxFuture;

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

crate::stored_names!(KeyStatus, "idempotency key status", {
    InFlight => "in_flight",
    Complete => "complete",
});

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

/// What beginning a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// First use of the key (or a takeover of a crashed request's): run the request.
    Started,
    /// The key completed: answer this again.
    Replay {
        /// HTTP status.
        status: u16,
        /// Body, byte for byte.
        body: String,
    },
}

/// How long a key is held by its running request, and how long it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    /// After this long (ms) a running request is taken to have crashed, and another request
    /// with the same key and body may take the key over.
    pub lock_ms: i64,
    /// How long (ms) a key and its answer are kept.
    pub ttl_ms: i64,
}

/// Where idempotency keys and their answers are kept. Each method is one atomic step.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Why a claim is refused (the key's reuse with another body, its first request still
    /// running, or the store failing), as a problem.
    type Error: Into<Problem> + Send;

    /// Claims `key` at `now` for a request whose body hashes to `fingerprint`, or finds the
    /// answer stored for it.
    ///
    /// # Errors
    /// When the key was used with another body, its first request still runs, or the store
    /// fails.
    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: i64,
        times: KeyTimes,
    ) -> Result<IdempotencyStart, Self::Error>;

    /// Stores the final answer of a claimed key.
    ///
    /// # Errors
    /// When the store fails.
    async fn finish(&self, key: &IdempotencyKey, status: u16, body: &str)
    -> Result<(), StoreError>;

    /// Gives a claimed key up: its request's answer is not to be replayed.
    ///
    /// # Errors
    /// When the store fails.
    async fn abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// Renews the lease of a key claimed at `locked_at` (or last renewed then) to `now`:
    /// true if it was still this request's, false if it completed, was given up or was
    /// taken over meanwhile.
    ///
    /// # Errors
    /// When the store fails.
    async fn renew(
        &self,
        key: &IdempotencyKey,
        locked_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
}

/// How an operation's success reaches its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done<T> {
    /// The operation stored its answer for the key itself, in the transaction of its effect.
    Recorded(T),
    /// Store this answer for the key now.
    Record {
        /// What the operation returns to its caller.
        value: T,
        /// The answer's HTTP status.
        status: u16,
        /// The answer's body, replayed byte for byte.
        body: String,
    },
}

/// What an idempotent request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// The operation ran now.
    Fresh(T),
    /// The key's first answer, stored before: send it again.
    Replayed {
        /// Its HTTP status.
        status: u16,
        /// Its body, byte for byte.
        body: String,
    },
}

/// Runs `operation` at most once per `key`, for a request whose body hashes to `fingerprint`:
/// begins the key, runs the operation (a future is lazy: it is only polled once the key is
/// claimed, and dropped unpolled on a replay or a refusal), then finishes or abandons the key
/// (see the module docs). A failure to finish or abandon is logged, not returned: the operation's own outcome
/// stands.
///
/// # Errors
/// The refused claim's problem (422 another body, 409 still running), or the operation's
/// problem.
pub fn run<'a, S, T, E, Op>(
    store: &'a S,
    key: &'a IdempotencyKey,
    fingerprint: &'a str,
    now: i64,
    times: KeyTimes,
    operation: Op,
) -> BoxFuture<'a, Result<Answer<T>, Problem>>
where
    S: IdempotencyStore + ?Sized,
    T: Send + 'a,
    E: Into<Problem> + Send + 'a,
    Op: Future<Output = Result<Done<T>, E>> + Send + 'a,
{
    // Boxed as `dyn Future + Send` so that callers' futures (axum handlers must be `Send`)
    // need not prove `Send` through this function's generics, which rustc cannot always do
    // (rust-lang/rust#102211).
    Box::pin(async move {
        let start = store
            .begin(key, fingerprint, now, times)
            .await
            .map_err(Into::into)?;
        if let IdempotencyStart::Replay { status, body } = start {
            return Ok(Answer::Replayed { status, body });
        }
        let result = leased(store, key, now, times, operation).await;
        let (outcome, stored) = match result {
            Ok(Done::Recorded(value)) => (Ok(Answer::Fresh(value)), Ok(())),
            Ok(Done::Record {
                value,
                status,
                body,
            }) => {
                let stored = store.finish(key, status, &body).await;
                (Ok(Answer::Fresh(value)), stored)
            }
            Err(error) => {
                let problem: Problem = error.into();
                let status = problem.status();
                // 409, 429 and 5xx are not stored: the client may retry them with the key.
                let stored =
                    if status.as_u16() == 409 || status.as_u16() == 429 || status.is_server_error()
                    {
                        store.abandon(key).await
                    } else {
                        store
                            .finish(key, status.as_u16(), &problem.body().to_string())
                            .await
                    };
                (Err(problem), stored)
            }
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not record the idempotency outcome");
        }
        outcome
    })
}

/// Runs `operation` while renewing its key's lease (claimed at `claimed_at`) every third of
/// [`KeyTimes::lock_ms`], so that a request that runs long keeps its key, and a key whose
/// process died is free again at most `lock_ms` after its last renewal. The lease moves by
/// the time elapsed since the claim (a monotonic clock), from the `now` the caller passed.
async fn leased<S, Op, R>(
    store: &S,
    key: &IdempotencyKey,
    claimed_at: i64,
    times: KeyTimes,
    operation: Op,
) -> R
where
    S: IdempotencyStore + ?Sized,
    Op: Future<Output = R> + Send,
{
    let period_ms = u64::try_from(times.lock_ms / 3).unwrap_or(0).max(1);
    let period = std::time::Duration::from_millis(period_ms);
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(started + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut locked_at = claimed_at;
    let mut renewing = true;
    let mut operation = std::pin::pin!(operation);
    loop {
        tokio::select! {
            biased;
            result = &mut operation => return result,
            _ = ticks.tick(), if renewing => {
                let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                let to = claimed_at.saturating_add(elapsed).max(locked_at + 1);
                match store.renew(key, locked_at, to).await {
                    Ok(true) => locked_at = to,
                    Ok(false) => {
                        // Completed by the operation's own transaction, or taken over by a
                        // retry that judged this request dead: either way nothing to renew.
                        renewing = false;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not renew an idempotency key's lease"),
                }
            }
        }
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

    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A store that answers `begin` as told and records the other calls.
    struct Fake {
        /// What `begin` answers: the start, or the status of its refusal.
        start: Result<IdempotencyStart, u16>,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(start: Result<IdempotencyStart, u16>) -> Self {
            Self {
                start,
                calls: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl IdempotencyStore for Fake {
        type Error = Problem;

        async fn begin(
            &self,
            _: &IdempotencyKey,
            _: &str,
            _: i64,
            _: KeyTimes,
        ) -> Result<IdempotencyStart, Problem> {
            self.calls.lock().unwrap().push("begin".into());
            match &self.start {
                Ok(start) => Ok(start.clone()),
                Err(422) => Err(Problem::validation()),
                Err(_) => Err(in_flight()),
            }
        }

        async fn finish(&self, _: &IdempotencyKey, status: u16, _: &str) -> Result<(), StoreError> {
            self.calls.lock().unwrap().push(format!("finish {status}"));
            Ok(())
        }

        async fn abandon(&self, _: &IdempotencyKey) -> Result<(), StoreError> {
            self.calls.lock().unwrap().push("abandon".into());
            Ok(())
        }

        async fn renew(&self, _: &IdempotencyKey, _: i64, _: i64) -> Result<bool, StoreError> {
            self.calls.lock().unwrap().push("renew".into());
            Ok(true)
        }
    }

    fn in_flight() -> Problem {
        Problem::conflict("request-in-flight", "Request in flight")
    }

    const TIMES: KeyTimes = KeyTimes {
        lock_ms: 30_000,
        ttl_ms: 86_400_000,
    };

    fn key() -> IdempotencyKey {
        IdempotencyKey {
            user_id: Uuid::nil(),
            route: "POST /test".into(),
            key: "k".into(),
        }
    }

    async fn answer(
        store: &Fake,
        outcome: Result<Done<&'static str>, Problem>,
    ) -> Result<Answer<&'static str>, Problem> {
        run(store, &key(), "fp", 0, TIMES, async { outcome }).await
    }

    #[tokio::test]
    async fn a_stored_answer_is_replayed_without_running_the_operation() {
        let store = Fake::new(Ok(IdempotencyStart::Replay {
            status: 201,
            body: "{}".into(),
        }));

        let ran = AtomicBool::new(false);

        let answer = run(&store, &key(), "fp", 0, TIMES, async {
            ran.store(true, Ordering::Relaxed);
            Ok::<_, Problem>(Done::Recorded("ran"))
        })
        .await;

        assert_eq!(
            answer.unwrap(),
            Answer::Replayed {
                status: 201,
                body: "{}".into()
            }
        );
        assert!(!ran.load(Ordering::Relaxed));
        assert_eq!(store.calls(), ["begin"]);
    }

    #[tokio::test]
    async fn a_refused_claim_is_its_problem_and_runs_nothing() {
        for status in [422, 409] {
            let store = Fake::new(Err(status));

            let answer = answer(&store, Ok(Done::Recorded("ran"))).await;

            assert_eq!(answer.unwrap_err().status().as_u16(), status);
            assert_eq!(store.calls(), ["begin"]);
        }
    }

    #[tokio::test]
    async fn a_success_is_stored_once_by_the_operation_or_by_the_protocol() {
        let store = Fake::new(Ok(IdempotencyStart::Started));
        let recorded = answer(&store, Ok(Done::Recorded("ran"))).await;
        assert_eq!(recorded.unwrap(), Answer::Fresh("ran"));
        assert_eq!(store.calls(), ["begin"]);

        let store = Fake::new(Ok(IdempotencyStart::Started));
        let record = Done::Record {
            value: "ran",
            status: 201,
            body: "{}".into(),
        };
        let stored = answer(&store, Ok(record)).await;
        assert_eq!(stored.unwrap(), Answer::Fresh("ran"));
        assert_eq!(store.calls(), ["begin", "finish 201"]);
    }

    #[tokio::test]
    async fn a_final_failure_is_stored_and_a_retryable_one_gives_the_key_up() {
        let cases = [
            (Problem::validation(), "finish 422"),
            (Problem::bad_request("bad"), "finish 400"),
            (in_flight(), "abandon"),
            (Problem::internal(anyhow::anyhow!("down")), "abandon"),
        ];
        for (problem, step) in cases {
            let status = problem.status();
            let store = Fake::new(Ok(IdempotencyStart::Started));

            let answer = answer(&store, Err(problem)).await;

            assert_eq!(answer.unwrap_err().status(), status);
            assert_eq!(store.calls(), ["begin", step]);
        }
    }

    #[tokio::test]
    async fn a_long_request_renews_its_lease_until_it_ends_and_a_short_one_never() {
        let times = KeyTimes {
            lock_ms: 30,
            ttl_ms: 86_400_000,
        };
        let long = Fake::new(Ok(IdempotencyStart::Started));
        let short = Fake::new(Ok(IdempotencyStart::Started));

        let ran = run(&long, &key(), "f1", 1_000, times, async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            Ok::<_, Problem>(Done::Recorded(1))
        })
        .await;
        let quick = run(&short, &key(), "f1", 1_000, times, async {
            Ok::<_, Problem>(Done::Recorded(2))
        })
        .await;

        assert_eq!(ran.unwrap(), Answer::Fresh(1));
        assert_eq!(quick.unwrap(), Answer::Fresh(2));
        let calls = long.calls();
        assert_eq!(calls.first().map(String::as_str), Some("begin"));
        assert!(
            calls.iter().filter(|c| *c == "renew").count() >= 2,
            "{calls:?}"
        );
        assert_eq!(short.calls(), ["begin"]);
    }
}
