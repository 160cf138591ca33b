//! Password hashing: Argon2id for every new hash, bcrypt (the seeds' format) verified only.
//!
//! Hashing is deliberately slow (about 20 ms of CPU at OWASP settings), so it never runs on the
//! async runtime: each hash runs on the blocking pool, and a semaphore bounds how many run at
//! once (one per core by default). A login storm therefore queues on the semaphore — an async
//! wait that costs nothing — while every other request keeps its worker threads. A login that
//! cannot get a slot within `queue_timeout_ms` is answered 503 instead of piling up.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use evently_core::config::PasswordConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Why hashing did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed busy for the whole queue timeout.
    #[error("password hashing is saturated")]
    Busy,
    /// The hashing task failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub matches: bool,
    /// The stored hash is bcrypt or uses weaker Argon2 parameters than configured, and should be
    /// replaced by a fresh hash now that the password is known.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords off the async runtime, a bounded number at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    /// A hash of a random password with the configured parameters. Logins for unknown emails
    /// verify against it, so they cost the same time as logins with a wrong password.
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Hashes `password` with Argon2id and `params`, synchronously (for benchmarks and the CLI).
///
/// # Errors
/// If the parameters are invalid or the OS has no randomness.
pub fn hash_blocking(params: &Params, password: &[u8]) -> Result<String, HashError> {
    argon2(params)
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn verify_blocking(params: &Params, password: &[u8], stored: &str) -> Verification {
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        let matches = bcrypt::verify(password, stored).unwrap_or(false);
        return Verification {
            matches,
            needs_rehash: true,
        };
    }
    let Ok(hash) = PasswordHash::new(stored) else {
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    };
    let matches = argon2(params).verify_password(password, &hash).is_ok();
    let weaker = match Params::try_from(&hash) {
        Ok(stored_params) => {
            hash.algorithm.as_str() != "argon2id"
                || stored_params.m_cost() < params.m_cost()
                || stored_params.t_cost() < params.t_cost()
        }
        Err(_) => true,
    };
    Verification {
        matches,
        needs_rehash: matches && weaker,
    }
}

impl PasswordHasher {
    /// A hasher with `config`'s Argon2id cost and concurrency.
    ///
    /// # Errors
    /// If the parameters are out of Argon2's range.
    pub fn new(config: &PasswordConfig) -> anyhow::Result<Self> {
        let params = Self::params(config)?;
        let dummy_password = evently_core::secret::random_token()?;
        let dummy_hash = hash_blocking(&params, dummy_password.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?;
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(config.slots())),
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// The Argon2 parameters of `config`.
    ///
    /// # Errors
    /// If they are out of Argon2's range.
    pub fn params(config: &PasswordConfig) -> anyhow::Result<Params> {
        Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Params) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .map_err(|_| HashError::Busy)?;
        let params = self.params.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _entered = span.enter();
            work(&params)
        })
        .in_current_span()
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Hashes `password` with Argon2id.
    ///
    /// # Errors
    /// [`HashError::Busy`] when no slot frees up in time.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.run(move |params| hash_blocking(params, password.as_bytes()))
            .await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is no user, so
    /// that both cases take the same time.
    ///
    /// # Errors
    /// [`HashError::Busy`] when no slot frees up in time.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        let password = password.to_owned();
        let known = stored.is_some();
        let stored: Arc<str> = stored.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        let outcome = self
            .run(move |params| verify_blocking(params, password.as_bytes(), &stored))
            .await?;
        Ok(if known {
            outcome
        } else {
            Verification {
                matches: false,
                needs_rehash: false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordConfig {
        PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: 2,
            queue_timeout_ms: 1000,
        }
    }

    #[tokio::test]
    async fn argon2id_round_trip_with_unique_salts() {
        let h = PasswordHasher::new(&cheap()).unwrap();
        let a = h.hash("correct horse battery").await.unwrap();
        let b = h.hash("correct horse battery").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b);
        let ok = h.verify("correct horse battery", Some(&a)).await.unwrap();
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let bad = h.verify("wrong horse battery", Some(&a)).await.unwrap();
        assert!(!bad.matches);
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_ask_for_rehash() {
        let h = PasswordHasher::new(&cheap()).unwrap();
        let legacy = bcrypt::hash("securePassword123", 4).unwrap();
        let v = h.verify("securePassword123", Some(&legacy)).await.unwrap();
        assert_eq!(
            v,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        assert!(
            !h.verify("nope-nope-nope", Some(&legacy))
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn weaker_argon2_hashes_ask_for_rehash() {
        let weak =
            hash_blocking(&PasswordHasher::params(&cheap()).unwrap(), b"pw-pw-pw-pw").unwrap();
        let mut stronger = cheap();
        stronger.memory_kib = 128;
        let h = PasswordHasher::new(&stronger).unwrap();
        let v = h.verify("pw-pw-pw-pw", Some(&weak)).await.unwrap();
        assert_eq!(
            v,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test]
    async fn unknown_user_never_matches() {
        let h = PasswordHasher::new(&cheap()).unwrap();
        assert!(!h.verify("anything-at-all", None).await.unwrap().matches);
    }

    #[tokio::test]
    async fn no_truncation_of_long_passwords() {
        let h = PasswordHasher::new(&cheap()).unwrap();
        let real = format!("{}A", "x".repeat(72));
        let stored = h.hash(&real).await.unwrap();
        let other = format!("{}B", "x".repeat(72));
        assert!(!h.verify(&other, Some(&stored)).await.unwrap().matches);
    }
}
