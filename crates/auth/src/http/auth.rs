//! `/api/auth/*`: register, login, refresh, logout, me.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use evently_core::Problem;
use evently_core::extract::{Json, OptionalJson};
use evently_core::http::ClientAddr;
use evently_core::identity::{ACCESS_COOKIE, Identity, Role, cookie};
use evently_core::ids::UserId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AuthState;
use crate::domain::{Email, MAX_PASSWORD_CHARS, Name, Password, User};
use crate::error::AuthError;
use crate::service::Session;

/// The refresh-token cookie; scoped to `/api/auth` so it only travels to refresh and logout.
pub const REFRESH_COOKIE: &str = "refresh_token";
const REFRESH_COOKIE_PATH: &str = "/api/auth";

/// `POST /api/auth/register`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address (case-insensitive, unique).
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 1024 characters, no NUL; common passwords are refused.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 1024,
        pattern = "^[^\\x00]*$"
    )]
    pub password: String,
    /// Display name, 1 to 100 characters, not blank, no control characters.
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserResponse {
    /// Id.
    pub user_id: UserId,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Phone, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// When the account was created (RFC 3339).
    pub created_at: String,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        let created_at = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(user.created_at) * 1_000_000,
        )
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
        Self {
            user_id: user.id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            role: user.role,
            phone: user.phone.map(|p| p.as_str().to_owned()),
            created_at,
        }
    }
}

/// `POST /api/auth/login`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// A signed-in session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// JWT access token; send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque refresh token; rotates on every use.
    pub refresh_token: String,
    /// The signed-in user.
    pub user: UserResponse,
}

/// `POST /api/auth/refresh` (the token may come from the `refresh_token` cookie instead).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token.
    pub refresh_token: String,
}

/// A rotated token pair.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshResponse {
    /// New access token.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// New refresh token; the presented one no longer works.
    pub refresh_token: String,
}

fn set_cookie(state: &AuthState, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={}{secure}",
        state.same_site()
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn session_cookies(state: &AuthState, session: &Session) -> [(header::HeaderName, HeaderValue); 2] {
    [
        (
            header::SET_COOKIE,
            set_cookie(
                state,
                ACCESS_COOKIE,
                &session.access.token,
                "/",
                session.access.expires_in,
            ),
        ),
        (
            header::SET_COOKIE,
            set_cookie(
                state,
                REFRESH_COOKIE,
                &session.refresh_token,
                REFRESH_COOKIE_PATH,
                session.refresh_expires_in,
            ),
        ),
    ]
}

fn with_cookies(
    mut response: Response,
    cookies: [(header::HeaderName, HeaderValue); 2],
) -> Response {
    for (name, value) in cookies {
        response.headers_mut().append(name, value);
    }
    response
}

async fn create_user(state: &AuthState, body: RegisterRequest) -> Result<Response, AuthError> {
    let mut problem = Problem::validation();
    let email = Email::parse(&body.email).map_err(|p| {
        problem = problem
            .clone()
            .field("/email", p.errors()[0].detail.clone());
    });
    let password = Password::parse(&body.password).map_err(|p| {
        problem = problem
            .clone()
            .field("/password", p.errors()[0].detail.clone());
    });
    let name = Name::parse(&body.name).map_err(|p| {
        problem = problem.clone().field("/name", p.errors()[0].detail.clone());
    });
    let (Ok(email), Ok(password), Ok(name)) = (email, password, name) else {
        return Err(AuthError::Invalid(problem));
    };
    let user = state
        .service
        .register(email, password, name, Role::User)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserResponse::from(user))).into_response())
}

/// Register a new account (role `user`).
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserResponse),
        (status = 400, description = "Malformed JSON", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Email already registered", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<AuthState>,
    Json(body): Json<RegisterRequest>,
) -> Result<Response, AuthError> {
    create_user(&state, body).await
}

/// Register a new account (the same as `/api/auth/register`, under seed 001's name).
#[utoipa::path(post, path = "/api/auth/signup", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = UserResponse),
        (status = 409, description = "Email already registered", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn signup(
    State(state): State<AuthState>,
    Json(body): Json<RegisterRequest>,
) -> Result<Response, AuthError> {
    create_user(&state, body).await
}

/// Sign in. Returns the tokens in the body and also sets the `access_token` and
/// `refresh_token` HttpOnly cookies.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = LoginResponse),
        (status = 401, description = "Email or password is incorrect", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Sign-in is saturated", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AuthState>,
    client: ClientAddr,
    Json(body): Json<LoginRequest>,
) -> Result<Response, AuthError> {
    // Longer than any accepted password: it cannot match, so spend no hashing on it.
    if body.password.len() > 4 * MAX_PASSWORD_CHARS {
        return Err(AuthError::InvalidCredentials);
    }
    let session = state
        .service
        .login(&body.email, &body.password, &client.to_string())
        .await?;
    let cookies = session_cookies(&state, &session);
    let response = axum::Json(LoginResponse {
        access_token: session.access.token,
        token_type: "bearer",
        expires_in: session.access.expires_in,
        refresh_token: session.refresh_token,
        user: session.user.into(),
    })
    .into_response();
    Ok(with_cookies(response, cookies))
}

/// `PUT /api/users/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The account's password now.
    pub current_password: String,
    /// The new password: the same rules as at registration.
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// Change the caller's password (the current one is required). Every session of the
/// account ends (its refresh families are revoked) except the new one this answer starts,
/// whose tokens are in the body and the cookies as after a sign-in.
#[utoipa::path(put, path = "/api/users/password", tag = "users", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; a new session", body = LoginResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "The account no longer exists or is disabled", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Wrong current password, or a new password the rules refuse", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing is saturated", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AuthState>,
    identity: Identity,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<Response, AuthError> {
    if body.current_password.len() > 4 * MAX_PASSWORD_CHARS {
        return Err(
            Problem::invalid_field("/currentPassword", "is not the account's password").into(),
        );
    }
    let new = Password::parse(&body.new_password).map_err(|p| {
        let detail = p
            .errors()
            .first()
            .map_or_else(|| "is not allowed".to_owned(), |e| e.detail.clone());
        Problem::invalid_field("/newPassword", detail)
    })?;
    let session = state
        .service
        .change_password(identity.user_id, &body.current_password, new)
        .await?;
    let cookies = session_cookies(&state, &session);
    let response = axum::Json(LoginResponse {
        access_token: session.access.token,
        token_type: "bearer",
        expires_in: session.access.expires_in,
        refresh_token: session.refresh_token,
        user: session.user.into(),
    })
    .into_response();
    Ok(with_cookies(response, cookies))
}

/// Rotate the refresh token (from the body or the `refresh_token` cookie). Presenting a token
/// that was already rotated revokes its whole family: every session of that login ends.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body(content = Option<RefreshRequest>),
    responses(
        (status = 200, description = "Rotated", body = RefreshResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AuthState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, AuthError> {
    let presented = body
        .map(|b| b.refresh_token)
        .or_else(|| cookie(&headers, REFRESH_COOKIE).map(str::to_owned))
        .ok_or(AuthError::InvalidRefreshToken)?;
    let session = state.service.refresh(&presented).await?;
    let cookies = session_cookies(&state, &session);
    let response = axum::Json(RefreshResponse {
        access_token: session.access.token,
        token_type: "bearer",
        expires_in: session.access.expires_in,
        refresh_token: session.refresh_token,
    })
    .into_response();
    Ok(with_cookies(response, cookies))
}

/// Sign out: revokes the refresh token's family (from the body or the cookie) and clears the
/// cookies. Always 204. Access tokens already issued stay valid until they expire (15 minutes
/// by default).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body(content = Option<RefreshRequest>),
    responses((status = 204, description = "Signed out")))]
pub async fn logout(
    State(state): State<AuthState>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, AuthError> {
    let presented = body
        .map(|b| b.refresh_token)
        .or_else(|| cookie(&headers, REFRESH_COOKIE).map(str::to_owned));
    state.service.logout(presented.as_deref()).await?;
    let response = StatusCode::NO_CONTENT.into_response();
    Ok(with_cookies(
        response,
        [
            (
                header::SET_COOKIE,
                set_cookie(&state, ACCESS_COOKIE, "", "/", 0),
            ),
            (
                header::SET_COOKIE,
                set_cookie(&state, REFRESH_COOKIE, "", REFRESH_COOKIE_PATH, 0),
            ),
        ],
    ))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, description = "No or invalid token", body = evently_core::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn me(
    State(state): State<AuthState>,
    identity: Identity,
) -> Result<axum::Json<UserResponse>, AuthError> {
    let user = state.service.user(identity.user_id).await?;
    Ok(axum::Json(user.into()))
}

#[cfg(test)]
mod tests {
    use super::RegisterRequest;
    use crate::domain::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

    /// The bounds the schema publishes are the ones the credentials enforce.
    #[test]
    fn the_schema_states_the_credential_rules() {
        let schema =
            serde_json::to_value(<RegisterRequest as utoipa::PartialSchema>::schema()).unwrap();
        let p = &schema["properties"];

        assert_eq!(p["password"]["minLength"], MIN_PASSWORD_CHARS);
        assert_eq!(p["password"]["maxLength"], MAX_PASSWORD_CHARS);
        assert_eq!(p["email"]["maxLength"], 254);
        assert_eq!(p["email"]["format"], "email");
        assert_eq!(p["name"]["maxLength"], 100);
        assert_eq!(schema["additionalProperties"], false);
    }

    mod parser_properties {
        use super::super::{ChangePasswordRequest, LoginRequest, RefreshRequest, RegisterRequest};
        use crate::domain::{Email, Name, Password};
        use crate::http::users::UpdateProfileRequest;
        use evently_core::extract::from_json_slice;
        use proptest::prelude::*;

        fn refused_as_400_or_422<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
            from_json_slice::<T>(bytes)
                .err()
                .is_none_or(|p| matches!(p.status().as_u16(), 400 | 422))
        }

        proptest! {
            // A fixed budget, so `cargo test` stays quick; the fuzz targets run longer.
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any bytes as an auth body are the DTO, a 400 or a 422; never a panic.
            #[test]
            fn any_auth_body_is_a_dto_or_a_400_or_422(
                bytes in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                prop_assert!(refused_as_400_or_422::<RegisterRequest>(&bytes));
                prop_assert!(refused_as_400_or_422::<LoginRequest>(&bytes));
                prop_assert!(refused_as_400_or_422::<ChangePasswordRequest>(&bytes));
                prop_assert!(refused_as_400_or_422::<Option<RefreshRequest>>(&bytes));
                prop_assert!(refused_as_400_or_422::<UpdateProfileRequest>(&bytes));
            }

            /// A registration of any strings parses, and each field is then valid or a 422
            /// naming that field (the handler reports the first error of each).
            #[test]
            fn registration_fields_are_valid_or_name_their_field(
                email in "\\PC{0,40}|[a-z]{1,10}@[a-z]{1,10}\\.[a-z]{2,4}",
                password in "\\PC{0,30}",
                name in "\\PC{0,30}",
            ) {
                let body = serde_json::json!({"email": email, "password": password, "name": name});
                let dto = from_json_slice::<RegisterRequest>(body.to_string().as_bytes()).unwrap();
                prop_assert_eq!(&dto.email, &email);
                for (result, pointer) in [
                    (Email::parse(&dto.email).err(), "/email"),
                    (Password::parse(&dto.password).err(), "/password"),
                    (Name::parse(&dto.name).err(), "/name"),
                ] {
                    if let Some(p) = result {
                        prop_assert_eq!(p.status().as_u16(), 422);
                        prop_assert_eq!(p.errors().first().map(|e| e.pointer.as_str()), Some(pointer));
                    }
                }
            }
        }
    }
}
