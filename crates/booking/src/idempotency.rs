//! Booking's purchases under the `Idempotency-Key` protocol of [`evently_core::idempotency`]:
//! the booking store keeps the keys, so it is the protocol's [`IdempotencyStore`] (claims and
//! answers in `idempotency_keys`; the purchase stores its answer in its own transaction).

use async_trait::async_trait;
use evently_core::db::StoreError;

pub use evently_core::idempotency::{Answer, Done, IdempotencyStore, KeyTimes, run};

use crate::domain::IdempotencyKey;
use crate::error::BookingError;
use crate::store::{BookingStore, IdempotencyStart};

#[async_trait]
impl IdempotencyStore for dyn BookingStore {
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

    async fn renew(
        &self,
        key: &IdempotencyKey,
        locked_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.idempotency_renew(key, locked_at, now).await
    }
}
