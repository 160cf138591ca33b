//! Users as the auth service knows them.

use evently_core::identity::Role;
use evently_core::ids::UserId;

use super::credentials::{Email, Name, Phone};

/// A user, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub name: Name,
    /// Phone, if given.
    pub phone: Option<Phone>,
    /// Role.
    pub role: Role,
    /// Whether the account may sign in.
    pub is_active: bool,
    /// Creation time (epoch ms).
    pub created_at: i64,
    /// Last change (epoch ms).
    pub updated_at: i64,
}

/// How other services name and reach a user (an orders export's buyer): nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// Id.
    pub id: UserId,
    /// Display name.
    pub name: Name,
    /// Normalised email.
    pub email: Email,
}

/// A user with their stored password hash, for login only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    /// The user.
    pub user: User,
    /// PHC string (argon2id) or a legacy bcrypt hash.
    pub password_hash: String,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Id.
    pub id: UserId,
    /// Normalised email.
    pub email: Email,
    /// Display name.
    pub name: Name,
    /// Role.
    pub role: Role,
    /// Hash of the password.
    pub password_hash: String,
    /// Creation time (epoch ms).
    pub now: i64,
}

/// A profile change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// New name.
    pub name: Option<Name>,
    /// New phone; `Some(None)` clears it.
    pub phone: Option<Option<Phone>>,
}
