//! `/internal/*`: service-to-service routes behind the internal credential. The gateway never
//! forwards these; without the credential they answer 404.

use axum::extract::State;
use evently_core::extract::{Json, Path};
use evently_core::identity::{InternalCaller, Role};
use evently_core::ids::UserId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AuthState;
use super::auth::UserResponse;
use crate::domain::Contact;
use crate::error::AuthError;

/// `POST /internal/auth/verify`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    /// An access token.
    pub token: String,
}

/// The verified identity in a token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    /// User id.
    pub user_id: UserId,
    /// Role.
    pub role: Role,
    /// Expiry (seconds since the epoch).
    pub expires_at: i64,
}

/// Verify an access token (for services that do not hold the key).
#[utoipa::path(post, path = "/internal/auth/verify", tag = "internal",
    params(("X-Internal-Token" = String, Header, description = "The internal service credential")),
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Valid token", body = VerifyResponse),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No or wrong internal credential", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "No token in the body", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn verify_token(
    State(state): State<AuthState>,
    _caller: InternalCaller,
    Json(body): Json<VerifyRequest>,
) -> Result<axum::Json<VerifyResponse>, evently_core::Problem> {
    let claims = state.keys.verify(&body.token)?;
    Ok(axum::Json(VerifyResponse {
        user_id: UserId(claims.sub),
        role: claims.role,
        expires_at: claims.exp,
    }))
}

/// Look up a user by id.
#[utoipa::path(get, path = "/internal/users/{userId}", tag = "internal",
    params(("userId" = Uuid, Path, description = "The user's id"),
           ("X-Internal-Token" = String, Header, description = "The internal service credential")),
    responses(
        (status = 200, description = "The user", body = UserResponse),
        (status = 400, description = "Malformed user id", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such user, or no internal credential", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(state): State<AuthState>,
    _caller: InternalCaller,
    Path(user_id): Path<UserId>,
) -> Result<axum::Json<UserResponse>, AuthError> {
    Ok(axum::Json(state.service.user(user_id).await?.into()))
}

/// `POST /internal/users/lookup`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LookupRequest {
    /// The users' ids (at most 1,000).
    pub ids: Vec<UserId>,
}

/// How a lookup names and reaches one user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactResponse {
    /// Id.
    pub user_id: UserId,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

impl From<Contact> for ContactResponse {
    fn from(contact: Contact) -> Self {
        Self {
            user_id: contact.id,
            name: contact.name.as_str().to_owned(),
            email: contact.email.as_str().to_owned(),
        }
    }
}

/// The users found by a lookup.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupResponse {
    /// The users found, in no particular order; ids of no user are left out.
    pub users: Vec<ContactResponse>,
}

/// Look up many users by id at once (an orders export's buyers).
#[utoipa::path(post, path = "/internal/users/lookup", tag = "internal",
    params(("X-Internal-Token" = String, Header, description = "The internal service credential")),
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The names and emails of the users found", body = LookupResponse),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No or wrong internal credential", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Not a list of ids, or more than 1,000", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn lookup_users(
    State(state): State<AuthState>,
    _caller: InternalCaller,
    Json(body): Json<LookupRequest>,
) -> Result<axum::Json<LookupResponse>, AuthError> {
    let users = state.service.contacts(&body.ids).await?;
    Ok(axum::Json(LookupResponse {
        users: users.into_iter().map(Into::into).collect(),
    }))
}
