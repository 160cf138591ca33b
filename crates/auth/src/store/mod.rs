//! The auth store: one trait, one body for both engines ([`sql::SqlAuthStore`]), one
//! conformance suite (in the crate's tests, `tests/api/conformance.rs`, run on both engines).
//! The backend files hold only what differs: migrations and connections.
//!
//! Each method is one atomic unit. Refresh-token rotation is the delicate one: a token is live
//! only while it has not been rotated, has not expired and its family is not revoked, and
//! rotating it marks it rotated and inserts its successor in the same transaction, with the
//! token and family rows locked — so of any number of concurrent rotations of one token exactly
//! one succeeds, and every later presentation of it is a detected reuse that revokes the family.

use async_trait::async_trait;
use evently_core::db::StoreError;
use evently_core::identity::Role;
use evently_core::ids::UserId;
use uuid::Uuid;

use crate::domain::{
    Contact, Email, NewUser, ProfileUpdate, ThrottlePolicy, User, UserCredentials,
};

mod postgres;
pub mod sql;
mod sqlite;

pub use sql::SqlAuthStore;

/// A refresh token to store: only its hash.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// When it stops being accepted (epoch ms).
    pub expires_at: i64,
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now rotated and its successor stored.
    Rotated {
        /// Owner.
        user_id: UserId,
        /// Its family.
        family_id: Uuid,
    },
    /// The token had already been rotated: its whole family is now revoked.
    Reused {
        /// Owner.
        user_id: UserId,
        /// The revoked family.
        family_id: Uuid,
    },
    /// The family was already revoked (logout, earlier reuse).
    Revoked,
    /// The token expired.
    Expired,
    /// No such token.
    Unknown,
}

/// Which users a listing returns ([`AuthStore::list_users`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    /// Only users whose email or name starts with this text (case-insensitive for ASCII).
    pub prefix: Option<String>,
    /// Only users with this role.
    pub role: Option<Role>,
    /// Only users whose id sorts after this one (the previous page's last).
    pub after: Option<UserId>,
}

/// Most ids [`AuthStore::contacts_by_ids`] takes at once (each is a bound parameter).
pub const MAX_LOOKUP: usize = 1_000;

/// Everything auth persists.
#[async_trait]
pub trait AuthStore: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a user. [`StoreError::Conflict`] with `users_email_key` if the email is taken.
    async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError>;

    /// The user with this (normalised) email and their password hash.
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError>;

    /// The user with this id.
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Up to `limit` users matching `filter`, by id.
    async fn list_users(&self, filter: &UserFilter, limit: u32) -> Result<Vec<User>, StoreError>;

    /// The names and emails of the users with these ids, in one query, in no particular
    /// order; ids of no user are left out. At most [`MAX_LOOKUP`] ids
    /// ([`StoreError::Other`] beyond).
    async fn contacts_by_ids(&self, ids: &[UserId]) -> Result<Vec<Contact>, StoreError>;

    /// Applies a profile change; `None` if there is no such user.
    async fn update_profile(
        &self,
        id: UserId,
        update: &ProfileUpdate,
        now: i64,
    ) -> Result<Option<User>, StoreError>;

    /// Sets a user's role; `None` if there is no such user.
    async fn set_role(&self, id: UserId, role: Role, now: i64) -> Result<Option<User>, StoreError>;

    /// Replaces a user's password hash (rehash on login, password change).
    async fn set_password_hash(&self, id: UserId, hash: &str, now: i64) -> Result<(), StoreError>;

    /// Enables or disables an account; `None` if there is no such user.
    async fn set_active(
        &self,
        id: UserId,
        active: bool,
        now: i64,
    ) -> Result<Option<User>, StoreError>;

    /// Starts a refresh-token family for a new login, with its first token.
    async fn start_family(
        &self,
        user: UserId,
        first: &NewRefreshToken,
        now: i64,
    ) -> Result<Uuid, StoreError>;

    /// Presents the token with hash `presented`; rotates it to `successor` if it is live.
    async fn rotate(
        &self,
        presented: &str,
        successor: &NewRefreshToken,
        now: i64,
    ) -> Result<Rotation, StoreError>;

    /// Revokes the family of the token with hash `presented`; false if there is no such token.
    async fn revoke_family_of(
        &self,
        presented: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Revokes every family of `user`; returns how many were live.
    async fn revoke_user_families(
        &self,
        user: UserId,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError>;

    /// Milliseconds until the longest lock among `keys` ends, if any is locked at `now`.
    async fn throttle_lock(&self, keys: &[String], now: i64) -> Result<Option<i64>, StoreError>;

    /// Counts one failed login for `key` under `policy`.
    async fn record_login_failure(
        &self,
        key: &str,
        policy: &ThrottlePolicy,
        now: i64,
    ) -> Result<(), StoreError>;

    /// Forgets the failures of `key` (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;
}

fn parse_role(stored: &str) -> Result<Role, StoreError> {
    stored
        .parse()
        .map_err(|e: String| StoreError::Other(anyhow::anyhow!("corrupt role column: {e}")))
}
