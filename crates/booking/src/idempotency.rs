//! The idempotency protocol of a request that brings an `Idempotency-Key`, written once
//! ([`run`]) over a store of keys ([`IdempotencyStore`]), so that every idempotent operation
//! keeps the same promise (ARCHITECTURE §4, invariant 2):
//!
//! 1. **Begin**: the request claims its key, scoped to the caller and the route, with the
//!    fingerprint of its body. A key whose answer is stored replays that answer byte for byte
//!    without running anything; a key used with another body is refused (422); a key whose
//!    first request still runs is refused for now (409 with `Retry-After`). What a stored key
//!    means is decided by [`crate::domain::idempotency::decide_key`], in the store's `begin`.
//! 2. **Run** the operation, once.
//! 3. **Finish or abandon**: a success's answer is stored for the key, preferably by the
//!    operation itself in the transaction of its effect ([`Done::Recorded`]), so that no crash
//!    can leave the effect without its answer. A failure's problem is stored as the key's
//!    answer, except 409, 429 and 5xx: those give the key up, and the client may retry with it.
//!
//! This module knows HTTP only as a status and a problem body; reading the header and
//! rendering a replay belong to the handler. It reads no clock: the caller passes `now`.

use async_trait::async_trait;
use evently_core::Problem;
use evently_core::db::StoreError;
use futures_util::future::BoxFuture;
use std::future::Future;

use crate::domain::IdempotencyKey;
use crate::error::BookingError;
use crate::store::{BookingStore, IdempotencyStart};

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
}

#[async_trait]
impl<S: BookingStore + ?Sized> IdempotencyStore for S {
    type Error = BookingError;

    async fn begin(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: i64,
        times: KeyTimes,
    ) -> Result<IdempotencyStart, BookingError> {
        self.idempotency_begin(key, fingerprint, now, times.lock_ms, times.ttl_ms)
            .await
    }

    async fn finish(
        &self,
        key: &IdempotencyKey,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError> {
        self.idempotency_finish(key, status, body).await
    }

    async fn abandon(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.idempotency_abandon(key).await
    }
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
        let (outcome, stored) = match operation.await {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use uuid::Uuid;

    /// A store that answers `begin` as told and records the other calls.
    struct Fake {
        start: Result<IdempotencyStart, BookingError>,
        calls: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(start: Result<IdempotencyStart, BookingError>) -> Self {
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
        type Error = BookingError;

        async fn begin(
            &self,
            _: &IdempotencyKey,
            _: &str,
            _: i64,
            _: KeyTimes,
        ) -> Result<IdempotencyStart, BookingError> {
            self.calls.lock().unwrap().push("begin".into());
            match &self.start {
                Ok(start) => Ok(start.clone()),
                Err(BookingError::KeyReused) => Err(BookingError::KeyReused),
                Err(_) => Err(BookingError::InFlight),
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
        for (refusal, status) in [
            (BookingError::KeyReused, 422),
            (BookingError::InFlight, 409),
        ] {
            let store = Fake::new(Err(refusal));

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
            (BookingError::InFlight.into(), "abandon"),
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
}
