//! `/api/users/*`: the caller's profile, and role changes by admins.

use axum::extract::State;
use evently_core::Problem;
use evently_core::extract::{Json, Path};
use evently_core::identity::{Identity, Role};
use evently_core::ids::UserId;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::AuthState;
use super::auth::UserResponse;
use crate::domain::{Name, Phone, ProfileUpdate};
use crate::error::AuthError;

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
