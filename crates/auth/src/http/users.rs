//! `/api/users/*`: the caller's profile, and role changes by admins.

use axum::extract::State;
use evently_core::Problem;
use evently_core::extract::{Json, Path, Query};
use evently_core::identity::{Identity, Role};
use evently_core::ids::UserId;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::AuthState;
use super::auth::UserResponse;
use crate::domain::{Name, Phone, ProfileUpdate, User};
use crate::error::AuthError;
use crate::store::UserFilter;

/// Users per page when `limit` is not given.
const DEFAULT_LIMIT: u32 = 50;
/// Most users per page.
const MAX_LIMIT: u32 = 100;
/// Longest `q`.
const MAX_QUERY: usize = 100;

/// `GET /api/users`: which users, and where the page starts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Only users whose email or name starts with this (case-insensitive), up to 100
    /// characters, no control characters; blank matches everyone.
    #[param(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    pub q: Option<String>,
    /// Only users with this role.
    #[param(value_type = Option<Role>)]
    pub role: Option<String>,
    /// Only users after this id: the previous page's `nextAfter`.
    #[param(value_type = Option<Uuid>)]
    pub after: Option<String>,
    /// Users per page, 1 to 100 (50 by default).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// A user as an admin's listing shows them.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedUser {
    /// Id.
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Whether the account may sign in.
    pub active: bool,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

impl From<User> for ListedUser {
    fn from(user: User) -> Self {
        let active = user.is_active;
        let shown = UserResponse::from(user);
        Self {
            user_id: shown.user_id,
            email: shown.email,
            name: shown.name,
            role: shown.role,
            active,
            created_at: shown.created_at,
        }
    }
}

/// A page of users, by id.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    /// The users.
    pub users: Vec<ListedUser>,
    /// Give this as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub next_after: Option<UserId>,
}

impl ListUsersQuery {
    /// The filter and page size, or 422 naming every bad parameter.
    fn parse(self) -> Result<(UserFilter, u32), Problem> {
        let mut errors: Vec<(&str, String)> = Vec::new();
        if let Some(q) = &self.q {
            if q.chars().count() > MAX_QUERY {
                errors.push(("q", format!("must be at most {MAX_QUERY} characters")));
            } else if q.chars().any(char::is_control) {
                errors.push(("q", "must not contain control characters".into()));
            }
        }
        let prefix = self
            .q
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty());
        let role = match self.role.as_deref() {
            None => None,
            Some(raw) => raw.parse::<Role>().map_or_else(
                |e| {
                    errors.push(("role", e));
                    None
                },
                Some,
            ),
        };
        let after = match self.after.as_deref() {
            None => None,
            Some(raw) => uuid::Uuid::parse_str(raw).map_or_else(
                |_| {
                    errors.push(("after", "must be a user id".into()));
                    None
                },
                |id| Some(UserId(id)),
            ),
        };
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    errors.push(("limit", format!("must be 1 to {MAX_LIMIT}")));
                    DEFAULT_LIMIT
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors
                .into_iter()
                .fold(Problem::validation(), |p, (name, detail)| {
                    p.field(name, detail)
                }));
        }
        Ok((
            UserFilter {
                prefix,
                role,
                after,
            },
            limit,
        ))
    }
}

/// List users (admins only), by id, a page at a time: `q` matches the start of an email or a
/// name, `role` keeps one role, and `after` continues from the previous page's `nextAfter`.
#[utoipa::path(get, path = "/api/users", tag = "users", security(("bearer" = [])),
    params(ListUsersQuery),
    responses(
        (status = 200, description = "A page of users", body = UserList),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(state): State<AuthState>,
    identity: Identity,
    Query(query): Query<ListUsersQuery>,
) -> Result<axum::Json<UserList>, AuthError> {
    if identity.role != Role::Admin {
        return Err(AuthError::Forbidden("only an admin can list users".into()));
    }
    let (filter, limit) = query.parse()?;
    // One more than the page, to know whether another follows.
    let mut users = state
        .service
        .list_users(identity.role, &filter, limit + 1)
        .await?;
    let more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let next_after = if more {
        users.last().map(|u| u.id)
    } else {
        None
    };
    Ok(axum::Json(UserList {
        users: users.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// `PUT /api/users/profile`: only `name` and `phone` can change here; any other field (such as
/// `email` or `role`) is refused with 422.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProfileRequest {
    /// New display name: 1 to 100 characters, not blank, no control characters.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// New phone; `null` clears it, absent leaves it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>,
        pattern = "^\\s*\\+?[ ().-]*(?:[0-9][ ().-]*){6,15}\\s*$")]
    pub phone: Option<Option<String>>,
}

fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PUT /api/users/{userId}/role`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRoleRequest {
    /// The new role.
    pub role: Role,
}

/// `PUT /api/users/{userId}/status`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetStatusRequest {
    /// `false` disables the account (its sessions end, sign-in is refused); `true` enables it.
    pub active: bool,
}

/// An account's status.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// The user.
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    /// Whether the account may sign in.
    pub active: bool,
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/users/profile", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = UserResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_profile(
    State(state): State<AuthState>,
    identity: Identity,
) -> Result<axum::Json<UserResponse>, AuthError> {
    Ok(axum::Json(
        state.service.user(identity.user_id).await?.into(),
    ))
}

/// Change the caller's name or phone.
#[utoipa::path(put, path = "/api/users/profile", tag = "users", security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, description = "Updated profile", body = UserResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update_profile(
    State(state): State<AuthState>,
    identity: Identity,
    Json(body): Json<UpdateProfileRequest>,
) -> Result<axum::Json<UserResponse>, AuthError> {
    let name = body.name.as_deref().map(Name::parse).transpose()?;
    let phone = match body.phone {
        None => None,
        Some(None) => Some(None),
        Some(Some(raw)) => Some(Some(Phone::parse(&raw)?)),
    };
    let user = state
        .service
        .update_profile(identity.user_id, ProfileUpdate { name, phone })
        .await?;
    Ok(axum::Json(user.into()))
}

/// Change a user's role (admins only; not their own).
#[utoipa::path(put, path = "/api/users/{userId}/role", tag = "users", security(("bearer" = [])),
    params(("userId" = Uuid, Path, description = "The user's id")),
    request_body = SetRoleRequest,
    responses(
        (status = 200, description = "Role changed", body = UserResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin, or the caller's own role", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn set_role(
    State(state): State<AuthState>,
    identity: Identity,
    Path(user_id): Path<UserId>,
    Json(body): Json<SetRoleRequest>,
) -> Result<axum::Json<UserResponse>, AuthError> {
    identity
        .require_admin()
        .map_err(|_: Problem| AuthError::Forbidden("only an admin can change roles".into()))?;
    let user = state
        .service
        .set_role(identity.user_id, identity.role, user_id, body.role)
        .await?;
    Ok(axum::Json(user.into()))
}

/// Enable or disable an account (admins only; not their own). Disabling revokes every
/// refresh family of the account and refuses its sign-in and refresh; an access token
/// already issued lives out its remaining minutes.
#[utoipa::path(put, path = "/api/users/{userId}/status", tag = "users", security(("bearer" = [])),
    params(("userId" = Uuid, Path, description = "The user's id")),
    request_body = SetStatusRequest,
    responses(
        (status = 200, description = "Status set", body = StatusResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin, or the caller's own account", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn set_status(
    State(state): State<AuthState>,
    identity: Identity,
    Path(user_id): Path<UserId>,
    Json(body): Json<SetStatusRequest>,
) -> Result<axum::Json<StatusResponse>, AuthError> {
    identity.require_admin().map_err(|_: Problem| {
        AuthError::Forbidden("only an admin can enable or disable accounts".into())
    })?;
    let user = state
        .service
        .set_active(identity.user_id, identity.role, user_id, body.active)
        .await?;
    Ok(axum::Json(StatusResponse {
        user_id: user.id,
        active: user.is_active,
    }))
}
