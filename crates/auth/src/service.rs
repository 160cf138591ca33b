//! The auth service's operations: register, login, refresh, logout, profile, roles.
//!
//! Handlers parse input into domain types and call exactly one of these methods.

use evently_core::clock::SharedClock;
use evently_core::config::AuthConfig;
use evently_core::db::StoreError;
use evently_core::identity::{IssuedToken, JwtKeys, Role};
use evently_core::ids::UserId;
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::domain::{Contact, Email, Name, NewUser, Password, ProfileUpdate, ThrottlePolicy, User};
use crate::error::AuthError;
use crate::hashing::PasswordHasher;
use crate::store::{AuthStore, MAX_LOOKUP, NewRefreshToken, Rotation, UserFilter};

/// A signed-in session: an access token and a refresh token.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access token.
    pub access: IssuedToken,
    /// The opaque refresh token (only its hash is stored).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The user.
    pub user: User,
}

/// The auth service.
pub struct AuthService {
    store: Arc<dyn AuthStore>,
    hasher: PasswordHasher,
    keys: Arc<JwtKeys>,
    clock: SharedClock,
    config: AuthConfig,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn ceil_secs(ms: i64) -> u64 {
    u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1)
}

impl AuthService {
    /// The service over `store`.
    pub fn new(
        store: Arc<dyn AuthStore>,
        hasher: PasswordHasher,
        keys: Arc<JwtKeys>,
        clock: SharedClock,
        config: AuthConfig,
    ) -> Self {
        Self {
            store,
            hasher,
            keys,
            clock,
            config,
        }
    }

    /// The store (for readiness checks).
    pub fn store(&self) -> &Arc<dyn AuthStore> {
        &self.store
    }

    fn now_ms(&self) -> i64 {
        let now = self.clock.now();
        i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Creates a user with `role` (`user` for self-registration).
    ///
    /// # Errors
    /// [`AuthError::EmailTaken`]; [`AuthError::Busy`] when hashing is saturated.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        email: Email,
        password: Password,
        name: Name,
        role: Role,
    ) -> Result<User, AuthError> {
        // A cheap look-up first, so that registering a taken email does not cost a hash.
        if self.store.user_by_email(&email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.hasher.hash(password.expose()).await?;
        let new = NewUser {
            id: UserId::new(),
            email,
            name,
            role,
            password_hash,
            now: self.now_ms(),
        };
        match self.store.insert_user(&new).await {
            Ok(user) => {
                tracing::info!(user.id = %user.id, user.role = %user.role, "user registered");
                Ok(user)
            }
            Err(StoreError::Conflict { .. }) => Err(AuthError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Signs in with email and password from `client` (an address, for throttling).
    ///
    /// Unknown email, wrong password and disabled account answer the same, after the same
    /// amount of hashing work. While the account or the client is locked, even the right
    /// password is refused.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`], [`AuthError::Throttled`], [`AuthError::Busy`].
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        raw_email: &str,
        password: &str,
        client: &str,
    ) -> Result<Session, AuthError> {
        let email = Email::parse(raw_email).ok();
        // An address that does not parse names no account; it is still throttled as sent,
        // escaped, since a control character (NUL above all) cannot be stored as text.
        let account_key = match &email {
            Some(e) => format!("acct:{}", e.as_str()),
            None => format!("acct:{}", raw_email.trim().escape_debug()),
        };
        let client_key = format!("ip:{client}");
        let keys = [account_key.clone(), client_key.clone()];
        let now = self.now_ms();
        if let Some(wait_ms) = self.store.throttle_lock(&keys, now).await? {
            return Err(AuthError::Throttled {
                retry_after_secs: ceil_secs(wait_ms),
            });
        }
        let credentials = match &email {
            Some(email) => self.store.user_by_email(email).await?,
            None => None,
        };
        let stored = credentials.as_ref().map(|c| c.password_hash.as_str());
        let verification = self.hasher.verify(password, stored).await?;
        let user = match credentials {
            Some(c) if verification.matches && c.user.is_active => c,
            _ => {
                let policy = &self.config.throttle;
                self.store
                    .record_login_failure(&account_key, &ThrottlePolicy::account(policy), now)
                    .await?;
                self.store
                    .record_login_failure(&client_key, &ThrottlePolicy::client(policy), now)
                    .await?;
                metrics::counter!("evently_auth_login_failures_total").increment(1);
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.store.clear_login_failures(&account_key).await?;
        if verification.needs_rehash {
            let fresh = self.hasher.hash(password).await?;
            self.store
                .set_password_hash(user.user.id, &fresh, now)
                .await?;
            tracing::info!(user.id = %user.user.id, "password hash upgraded to the current argon2id parameters");
        }
        self.start_session(user.user).await
    }

    async fn start_session(&self, user: User) -> Result<Session, AuthError> {
        let now = self.clock.now();
        let access = self.keys.issue_access(user.id, user.role, now)?;
        let refresh_token = evently_core::secret::random_token()?;
        let first = self.new_refresh(&refresh_token);
        self.store
            .start_family(user.id, &first, self.now_ms())
            .await?;
        tracing::info!(user.id = %user.id, "signed in");
        Ok(Session {
            access,
            refresh_token,
            refresh_expires_in: self.config.refresh_ttl_seconds,
            user,
        })
    }

    fn new_refresh(&self, token: &str) -> NewRefreshToken {
        let ttl_ms =
            i64::try_from(self.config.refresh_ttl_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        NewRefreshToken {
            token_hash: hash_refresh_token(token),
            expires_at: self.now_ms().saturating_add(ttl_ms),
        }
    }

    /// Rotates a refresh token: the presented one stops working and a new pair is issued.
    /// Presenting an already-rotated token revokes its whole family (RFC 9700 §4.14.2).
    ///
    /// # Errors
    /// [`AuthError::InvalidRefreshToken`] for an unknown, expired, revoked or reused token, or
    /// a disabled account.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, presented: &str) -> Result<Session, AuthError> {
        let successor = evently_core::secret::random_token()?;
        let next = self.new_refresh(&successor);
        let rotation = self
            .store
            .rotate(&hash_refresh_token(presented), &next, self.now_ms())
            .await?;
        let user_id = match rotation {
            Rotation::Rotated { user_id, .. } => user_id,
            Rotation::Reused { user_id, family_id } => {
                tracing::warn!(
                    security.event = "refresh_reuse",
                    user.id = %user_id,
                    family.id = %family_id,
                    "a rotated refresh token was presented again; its family is revoked"
                );
                metrics::counter!("evently_auth_refresh_reuse_total").increment(1);
                return Err(AuthError::InvalidRefreshToken);
            }
            Rotation::Revoked | Rotation::Expired | Rotation::Unknown => {
                return Err(AuthError::InvalidRefreshToken);
            }
        };
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.is_active)
            .ok_or(AuthError::InvalidRefreshToken)?;
        // The role comes from the store, so a role change takes effect at the next refresh.
        let access = self
            .keys
            .issue_access(user.id, user.role, self.clock.now())?;
        Ok(Session {
            access,
            refresh_token: successor,
            refresh_expires_in: self.config.refresh_ttl_seconds,
            user,
        })
    }

    /// Ends the session of `presented` (revokes its family). Unknown tokens are ignored, so
    /// logout always succeeds.
    ///
    /// # Errors
    /// Only store failures.
    pub async fn logout(&self, presented: Option<&str>) -> Result<(), AuthError> {
        if let Some(token) = presented {
            let revoked = self
                .store
                .revoke_family_of(&hash_refresh_token(token), "logout", self.now_ms())
                .await?;
            if revoked {
                tracing::info!("signed out");
            }
        }
        Ok(())
    }

    /// The user `id`.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`].
    pub async fn user(&self, id: UserId) -> Result<User, AuthError> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// The names and emails of the users with these ids (in one query; ids of no user left
    /// out, in no particular order), for services that show who did something (an orders
    /// export's buyers).
    ///
    /// # Errors
    /// 422 for more than [`MAX_LOOKUP`] ids.
    pub async fn contacts(&self, ids: &[UserId]) -> Result<Vec<Contact>, AuthError> {
        if ids.len() > MAX_LOOKUP {
            return Err(AuthError::Invalid(evently_core::Problem::invalid_field(
                "/ids",
                format!("at most {MAX_LOOKUP} ids per lookup"),
            )));
        }
        Ok(self.store.contacts_by_ids(ids).await?)
    }

    /// Changes the caller's own profile.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`].
    pub async fn update_profile(
        &self,
        id: UserId,
        update: ProfileUpdate,
    ) -> Result<User, AuthError> {
        self.store
            .update_profile(id, &update, self.now_ms())
            .await?
            .ok_or(AuthError::UserNotFound)
    }

    /// Changes the caller's password: the current one must match. Every refresh family of the
    /// account is revoked (every other session ends at its next refresh) and a new session
    /// starts for the caller.
    ///
    /// # Errors
    /// 422 when `current` does not match, [`AuthError::UserNotFound`], [`AuthError::Busy`].
    #[tracing::instrument(skip_all, fields(user.id = %id))]
    pub async fn change_password(
        &self,
        id: UserId,
        current: &str,
        new: Password,
    ) -> Result<Session, AuthError> {
        let user = self.user(id).await?;
        let credentials = self
            .store
            .user_by_email(&user.email)
            .await?
            .filter(|c| c.user.id == id && c.user.is_active)
            .ok_or(AuthError::UserNotFound)?;
        let verification = self
            .hasher
            .verify(current, Some(&credentials.password_hash))
            .await?;
        if !verification.matches {
            return Err(evently_core::Problem::invalid_field(
                "/currentPassword",
                "is not the account's password",
            )
            .into());
        }
        let hash = self.hasher.hash(new.expose()).await?;
        let now = self.now_ms();
        self.store.set_password_hash(id, &hash, now).await?;
        let revoked = self
            .store
            .revoke_user_families(id, "password-changed", now)
            .await?;
        tracing::info!(
            security.event = "password_changed",
            families.revoked = revoked,
            "password changed; every other session ends"
        );
        self.start_session(credentials.user).await
    }

    /// Up to `limit` users matching `filter`, by id; only admins may list users.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`].
    pub async fn list_users(
        &self,
        actor_role: Role,
        filter: &UserFilter,
        limit: u32,
    ) -> Result<Vec<User>, AuthError> {
        if actor_role != Role::Admin {
            return Err(AuthError::Forbidden("only an admin can list users".into()));
        }
        Ok(self.store.list_users(filter, limit).await?)
    }

    /// Enables or disables `target`'s account; only admins, and never their own. Disabling
    /// revokes every refresh family of the account, and sign-in and refresh are refused while
    /// it stays disabled (an access token already issued lives out its short life).
    ///
    /// # Errors
    /// [`AuthError::Forbidden`], [`AuthError::UserNotFound`].
    pub async fn set_active(
        &self,
        actor: UserId,
        actor_role: Role,
        target: UserId,
        active: bool,
    ) -> Result<User, AuthError> {
        if actor_role != Role::Admin {
            return Err(AuthError::Forbidden(
                "only an admin can enable or disable accounts".into(),
            ));
        }
        if actor == target {
            return Err(AuthError::Forbidden(
                "admins cannot disable their own account".into(),
            ));
        }
        let now = self.now_ms();
        let user = self
            .store
            .set_active(target, active, now)
            .await?
            .ok_or(AuthError::UserNotFound)?;
        if !active {
            let revoked = self
                .store
                .revoke_user_families(target, "disabled", now)
                .await?;
            tracing::info!(security.event = "account_disabled", user.id = %target, actor.id = %actor, families.revoked = revoked, "account disabled");
        } else {
            tracing::info!(user.id = %target, actor.id = %actor, "account enabled");
        }
        Ok(user)
    }

    /// Sets `target`'s role; only admins, and never their own (so the last admin cannot
    /// demote themselves by accident).
    ///
    /// # Errors
    /// [`AuthError::Forbidden`], [`AuthError::UserNotFound`].
    pub async fn set_role(
        &self,
        actor: UserId,
        actor_role: Role,
        target: UserId,
        role: Role,
    ) -> Result<User, AuthError> {
        if actor_role != Role::Admin {
            return Err(AuthError::Forbidden(
                "only an admin can change roles".into(),
            ));
        }
        if actor == target {
            return Err(AuthError::Forbidden(
                "admins cannot change their own role".into(),
            ));
        }
        let user = self
            .store
            .set_role(target, role, self.now_ms())
            .await?
            .ok_or(AuthError::UserNotFound)?;
        tracing::info!(user.id = %target, user.role = %role, actor.id = %actor, "role changed");
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_stored_as_sha256() {
        let h = hash_refresh_token("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(1000), 1);
        assert_eq!(ceil_secs(1001), 2);
    }
}
