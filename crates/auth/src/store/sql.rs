//! The auth store's one body, for both engines ([`evently_core::sql`]).
//!
//! Read-then-write sequences (rotation, the throttle update) run in one write transaction
//! whose first read is a locking read ([`Tx::for_update`]): on PostgreSQL the rows it reads
//! stay locked until commit, so a second rotation of the same token waits, then sees it rotated
//! and is treated as reuse; on SQLite the single write connection runs one write transaction
//! at a time, which gives the same order without row locks.
//!
//! Each method runs in a span named after it, carrying the ids it is about (`user.id`,
//! `family.id`), never an email, a token or a throttle key. The methods on the sign-in, refresh
//! and throttle paths, which run on most requests auth serves, span at debug level.

use async_trait::async_trait;
use evently_core::db::StoreError;
use evently_core::identity::Role;
use evently_core::ids::UserId;
use evently_core::sql::{Db, Row, Sql, Tx, query};
use uuid::Uuid;

use super::{AuthStore, MAX_LOOKUP, NewRefreshToken, Rotation, UserFilter, parse_role};
use crate::domain::{
    Contact, Email, Name, NewUser, Phone, ProfileUpdate, ThrottlePolicy, ThrottleState, User,
    UserCredentials,
};

/// Auth's tables on either engine: in one SQLite file, or in the `auth` schema (any schema
/// on the pool's `search_path`) of a PostgreSQL database. Opened by
/// [`SqlAuthStore::sqlite`] or [`SqlAuthStore::postgres`].
#[derive(Debug, Clone)]
pub struct SqlAuthStore {
    pub(super) db: Db,
}

macro_rules! user_columns {
    () => {
        "id, email, name, phone, role, is_active, created_at, updated_at, password_hash"
    };
}

fn user_from_row(row: &Row) -> Result<User, StoreError> {
    let role: String = row.get("role")?;
    Ok(User {
        id: UserId(row.get("id")?),
        email: Email::from_trusted(row.get("email")?),
        name: Name::from_trusted(row.get("name")?),
        phone: row.get::<Option<String>>("phone")?.map(Phone::from_trusted),
        role: parse_role(&role)?,
        is_active: row.get("is_active")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// Stores a refresh token of `family`, issued at `now`.
async fn insert_token(
    tx: &mut Tx,
    token: &NewRefreshToken,
    family: Uuid,
    now: i64,
) -> Result<(), StoreError> {
    query(
        "INSERT INTO refresh_tokens (token_hash, family_id, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(&token.token_hash)
    .bind(family)
    .bind(now)
    .bind(token.expires_at)
    .execute(tx)
    .await?;
    Ok(())
}

#[async_trait]
impl AuthStore for SqlAuthStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await
    }

    #[tracing::instrument(skip_all, fields(user.id = %user.id, user.role = %user.role))]
    async fn insert_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let row = query(concat!(
            "INSERT INTO users (id, email, name, phone, role, password_hash, is_active, created_at, updated_at) \
             VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $7) RETURNING ",
            user_columns!()
        ))
        .bind(user.id.0)
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(true)
        .bind(user.now)
        .fetch_one(self.db.writer())
        .await
        .map_err(|e| match e {
            // The email is the only unique column a new user (with a fresh v7 id) can
            // collide on; SQLite names the column, not the index, in its message.
            StoreError::Conflict { .. } => StoreError::Conflict {
                constraint: "users_email_key".into(),
            },
            other => other,
        })?;
        user_from_row(&row)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn user_by_email(&self, email: &Email) -> Result<Option<UserCredentials>, StoreError> {
        let row = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(self.db.reader())
        .await?;
        row.map(|row| {
            Ok(UserCredentials {
                user: user_from_row(&row)?,
                password_hash: row.get("password_hash")?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %id))]
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.0)
        .fetch_optional(self.db.reader())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_users(&self, filter: &UserFilter, limit: u32) -> Result<Vec<User>, StoreError> {
        // Built from constants and placeholders only; every value is bound.
        let mut sql = concat!("SELECT ", user_columns!(), " FROM users WHERE TRUE").to_owned();
        let mut at = 0;
        let mut next = || {
            at += 1;
            at
        };
        let prefix = filter.prefix.as_deref().map(|p| {
            let escaped: String = p
                .to_lowercase()
                .chars()
                .flat_map(|c| match c {
                    '\\' | '%' | '_' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!("{escaped}%")
        });
        if prefix.is_some() {
            let (email, name) = (next(), next());
            sql.push_str(&format!(
                " AND (email LIKE ${email} ESCAPE '\\' OR lower(name) LIKE ${name} ESCAPE '\\')"
            ));
        }
        if filter.role.is_some() {
            sql.push_str(&format!(" AND role = ${}", next()));
        }
        if filter.after.is_some() {
            sql.push_str(&format!(" AND id > ${}", next()));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", next()));
        let mut statement = query(Sql::assert_safe(sql));
        if let Some(prefix) = prefix {
            statement = statement.bind(prefix.clone()).bind(prefix);
        }
        if let Some(role) = filter.role {
            statement = statement.bind(role.as_str());
        }
        if let Some(after) = filter.after {
            statement = statement.bind(after.0);
        }
        let rows = statement
            .bind(i64::from(limit))
            .fetch_all(self.db.reader())
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(users = ids.len()))]
    async fn contacts_by_ids(&self, ids: &[UserId]) -> Result<Vec<Contact>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > MAX_LOOKUP {
            return Err(StoreError::Other(anyhow::anyhow!(
                "at most {MAX_LOOKUP} users are looked up at once, not {}",
                ids.len()
            )));
        }
        // One placeholder per id: the same text on both engines, and no more than either
        // binds in one statement.
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let mut statement = query(Sql::assert_safe(format!(
            "SELECT id, name, email FROM users WHERE id IN ({})",
            placeholders.join(", ")
        )));
        for id in ids {
            statement = statement.bind(id.0);
        }
        statement
            .fetch_all(self.db.reader())
            .await?
            .iter()
            .map(|row| {
                Ok(Contact {
                    id: UserId(row.get("id")?),
                    name: Name::from_trusted(row.get("name")?),
                    email: Email::from_trusted(row.get("email")?),
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(user.id = %id))]
    async fn update_profile(
        &self,
        id: UserId,
        update: &ProfileUpdate,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let clear_phone = matches!(update.phone, Some(None));
        let phone = update
            .phone
            .as_ref()
            .and_then(|p| p.as_ref().map(|p| p.as_str().to_owned()));
        let row = query(concat!(
            "UPDATE users SET name = COALESCE($2, name), \
             phone = CASE WHEN $3 THEN NULL ELSE COALESCE($4, phone) END, updated_at = $5 \
             WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(id.0)
        .bind(update.name.as_ref().map(|n| n.as_str().to_owned()))
        .bind(clear_phone)
        .bind(phone)
        .bind(now)
        .fetch_optional(self.db.writer())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(skip_all, fields(user.id = %id, user.role = %role))]
    async fn set_role(&self, id: UserId, role: Role, now: i64) -> Result<Option<User>, StoreError> {
        let row = query(concat!(
            "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            user_columns!(),
            ""
        ))
        .bind(id.0)
        .bind(role.as_str())
        .bind(now)
        .fetch_optional(self.db.writer())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %id))]
    async fn set_active(
        &self,
        id: UserId,
        active: bool,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let row = query(concat!(
            "UPDATE users SET is_active = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            user_columns!(),
            ""
        ))
        .bind(id.0)
        .bind(active)
        .bind(now)
        .fetch_optional(self.db.writer())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user.id = %id))]
    async fn set_password_hash(&self, id: UserId, hash: &str, now: i64) -> Result<(), StoreError> {
        query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id.0)
            .bind(hash)
            .bind(now)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(user.id = %user, family.id = tracing::field::Empty)
    )]
    async fn start_family(
        &self,
        user: UserId,
        first: &NewRefreshToken,
        now: i64,
    ) -> Result<Uuid, StoreError> {
        let family = Uuid::now_v7();
        tracing::Span::current().record("family.id", tracing::field::display(family));
        let mut tx = self.db.begin().await?;
        query("INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(family)
            .bind(user.0)
            .bind(now)
            .execute(&mut tx)
            .await?;
        insert_token(&mut tx, first, family, now).await?;
        tx.commit().await?;
        Ok(family)
    }

    #[tracing::instrument(
        level = "debug",
        skip_all,
        fields(user.id = tracing::field::Empty, family.id = tracing::field::Empty)
    )]
    async fn rotate(
        &self,
        presented: &str,
        successor: &NewRefreshToken,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.db.begin().await?;
        let read = tx.for_update(
            "SELECT t.family_id, t.expires_at, t.rotated_at, f.revoked_at, f.user_id \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.token_hash = $1",
            " OF t, f",
        );
        let row = query(read).bind(presented).fetch_optional(&mut tx).await?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        let family_id: Uuid = row.get("family_id")?;
        let user_id = UserId(row.get("user_id")?);
        tracing::Span::current()
            .record("user.id", tracing::field::display(user_id))
            .record("family.id", tracing::field::display(family_id));
        let expires_at: i64 = row.get("expires_at")?;
        let rotated_at: Option<i64> = row.get("rotated_at")?;
        let revoked_at: Option<i64> = row.get("revoked_at")?;
        if revoked_at.is_some() {
            return Ok(Rotation::Revoked);
        }
        if rotated_at.is_some() {
            query(
                "UPDATE refresh_families SET revoked_at = $2, revoked_reason = 'reuse' \
                 WHERE id = $1 AND revoked_at IS NULL",
            )
            .bind(family_id)
            .bind(now)
            .execute(&mut tx)
            .await?;
            tx.commit().await?;
            return Ok(Rotation::Reused { user_id, family_id });
        }
        if expires_at <= now {
            return Ok(Rotation::Expired);
        }
        query("UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1")
            .bind(presented)
            .bind(now)
            .execute(&mut tx)
            .await?;
        insert_token(&mut tx, successor, family_id, now).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated { user_id, family_id })
    }

    #[tracing::instrument(skip_all, fields(revoke.reason = reason))]
    async fn revoke_family_of(
        &self,
        presented: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let changed = query(
            "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3 \
             WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) \
             AND revoked_at IS NULL",
        )
        .bind(presented)
        .bind(now)
        .bind(reason)
        .execute(self.db.writer())
        .await?;
        Ok(changed > 0)
    }

    #[tracing::instrument(skip_all, fields(user.id = %user, revoke.reason = reason))]
    async fn revoke_user_families(
        &self,
        user: UserId,
        reason: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let changed = query(
            "UPDATE refresh_families SET revoked_at = $2, revoked_reason = $3 \
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.0)
        .bind(now)
        .bind(reason)
        .execute(self.db.writer())
        .await?;
        Ok(changed)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn throttle_lock(&self, keys: &[String], now: i64) -> Result<Option<i64>, StoreError> {
        let mut longest: Option<i64> = None;
        for key in keys {
            let row = query("SELECT locked_until FROM login_throttle WHERE key = $1")
                .bind(key)
                .fetch_optional(self.db.reader())
                .await?;
            let until = row.map(|row| row.get::<Option<i64>>("locked_until"));
            if let Some(Some(until)) = until.transpose()?
                && until > now
            {
                longest = Some(longest.map_or(until - now, |l| l.max(until - now)));
            }
        }
        Ok(longest)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn record_login_failure(
        &self,
        key: &str,
        policy: &ThrottlePolicy,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        // The row exists before it is locked, so two first failures cannot both insert.
        query(
            "INSERT INTO login_throttle (key, failures, window_start) VALUES ($1, 0, $2) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(now)
        .execute(&mut tx)
        .await?;
        let read = tx.for_update(
            "SELECT failures, window_start, locked_until FROM login_throttle WHERE key = $1",
            "",
        );
        let prev = query(read)
            .bind(key)
            .fetch_optional(&mut tx)
            .await?
            .map(|row| -> Result<ThrottleState, StoreError> {
                Ok(ThrottleState {
                    failures: u32::try_from(row.get::<i64>("failures")?).unwrap_or(u32::MAX),
                    window_start: row.get("window_start")?,
                    locked_until: row.get("locked_until")?,
                })
            })
            .transpose()?;
        let next = ThrottleState::after_failure(prev, now, policy);
        query(
            "INSERT INTO login_throttle (key, failures, window_start, locked_until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE SET \
             failures = excluded.failures, window_start = excluded.window_start, \
             locked_until = excluded.locked_until",
        )
        .bind(key)
        .bind(next.failures)
        .bind(next.window_start)
        .bind(next.locked_until)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(self.db.writer())
            .await?;
        Ok(())
    }
}
