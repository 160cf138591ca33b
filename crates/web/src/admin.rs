//! The admin's pages: users with their roles and status, and the platform's settings. Like
//! every page they only read (`GET /api/users`); role and status changes and the settings'
//! merge patch are sent by the client module.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::{ApiError, ProblemBody};
use crate::pages::{Layout, WebState, failure, html};
use crate::views::{Me, when};

/// Users per page.
const PAGE: u32 = 50;

/// The caller, when they are an admin; the page to show otherwise.
async fn admin(state: &WebState, parts: &Parts, layout: &Layout) -> Result<Me, Response> {
    let me = state
        .api
        .get::<Me>(parts, "/api/auth/me")
        .await
        .map_err(|error| failure(state, layout.clone(), &error))?;
    if me.role == "admin" {
        return Ok(me);
    }
    let refused = ApiError {
        status: StatusCode::FORBIDDEN,
        problem: ProblemBody {
            detail: Some("These pages are for admins.".to_owned()),
            ..ProblemBody::default()
        },
        retry_after: None,
    };
    Err(failure(state, layout.clone(), &refused))
}

/// `GET /api/users`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserList {
    users: Vec<ListedUser>,
    #[serde(default)]
    next_after: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedUser {
    user_id: Uuid,
    email: String,
    name: String,
    role: String,
    active: bool,
    created_at: String,
}

/// A user as the admin's list shows them.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// The user.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Name.
    pub name: String,
    /// `user | organizer | admin`.
    pub role: String,
    /// Whether they may sign in.
    pub active: bool,
    /// "Since Mon 4 Jan 2027".
    pub since: String,
    /// The admin themself (whose role and status cannot change here).
    pub me: bool,
}

/// The users page.
#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct UsersPage {
    layout: Layout,
    q: String,
    role: String,
    users: Vec<UserRow>,
    error: Option<String>,
    next: Option<String>,
}

/// `GET /admin/users?q=&role=&after=`: users by id, a page at a time.
pub async fn users_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    let me = match admin(&state, &parts, &layout).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let (mut q, mut role, mut after) = (String::new(), String::new(), String::new());
    for (key, value) in form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        let value: String = value.trim().chars().take(100).collect();
        match key.as_ref() {
            "q" => q = value,
            "role" if matches!(value.as_str(), "user" | "organizer" | "admin") => role = value,
            "after" => after = value,
            _ => {}
        }
    }
    let path = {
        let mut api_query = form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            api_query.append_pair("q", &q);
        }
        if !role.is_empty() {
            api_query.append_pair("role", &role);
        }
        if !after.is_empty() {
            api_query.append_pair("after", &after);
        }
        api_query.append_pair("limit", &PAGE.to_string());
        format!("/api/users?{}", api_query.finish())
    };
    let (users, error, next) = match state.api.get::<UserList>(&parts, &path).await {
        Ok(list) => {
            let next = list.next_after.map(|id| {
                let mut page = form_urlencoded::Serializer::new(String::new());
                if !q.is_empty() {
                    page.append_pair("q", &q);
                }
                if !role.is_empty() {
                    page.append_pair("role", &role);
                }
                page.append_pair("after", &id.to_string());
                format!("/admin/users?{}", page.finish())
            });
            let users = list
                .users
                .into_iter()
                .map(|u| UserRow {
                    me: u.user_id == me.user_id,
                    id: u.user_id,
                    email: u.email,
                    name: u.name,
                    role: u.role,
                    active: u.active,
                    since: when(&u.created_at),
                })
                .collect();
            (users, None, next)
        }
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => (
            Vec::new(),
            Some("We could not search for that. Try other words.".to_owned()),
            None,
        ),
        Err(error) => return failure(&state, layout, &error),
    };
    let page = UsersPage {
        layout,
        q,
        role,
        users,
        error,
        next,
    };
    html(&state.config, StatusCode::OK, page.render())
}

/// The platform settings form (filled and saved by the client module, with `If-Match`).
#[derive(Template)]
#[template(path = "admin_settings.html")]
pub struct SettingsPage {
    layout: Layout,
}

/// `GET /admin/settings`.
pub async fn settings_page(State(state): State<WebState>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let layout = Layout::of(&parts);
    if let Err(page) = admin(&state, &parts, &layout).await {
        return page;
    }
    html(
        &state.config,
        StatusCode::OK,
        SettingsPage { layout }.render(),
    )
}
