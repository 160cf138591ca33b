//! evently-web: the web client, served by `evently serve` at `/` next to `/api`.
//!
//! Server-rendered HTML (askama templates compiled into the binary), htmx 2 for the parts of
//! a page that load or reload on their own (search-as-you-type, my orders, recommendations),
//! and one small vanilla JavaScript module (`assets/app.js`) for what needs a script: signing
//! in and out, the profile, the seat map, the hold's countdown, payment and purchase, the
//! waitlist, the live figures of an organizer's sales dashboard, the organizer's venue
//! (with its layout editor) and event forms, and the preferences. There is no node toolchain in the build: htmx is vendored
//! (`assets/htmx.min.js`, 2.0.11 from the npm registry, pinned) and every asset is embedded
//! with `include_bytes!` and served under a content-hashed path ([`assets`]).
//!
//! # Security: one CSRF rule, the API's
//! Pages never change state themselves: every page route is a `GET` that reads. The pages'
//! data comes from the JSON API in two ways, and both go through the gateway's edge, so both
//! meet exactly the rules a JSON client meets:
//! - **server side**, a page handler calls the API *in process* ([`api::Api`]): a `GET`
//!   request is built with the browser's `Cookie` header and client address and dispatched to
//!   the gateway's router (no HTTP hop). The edge turns the `access_token` cookie into a
//!   bearer token, checks it, and counts the call against the caller's rate-limit budget;
//! - **in the browser**, `app.js` calls `/api/...` with `fetch` (same origin, the session
//!   cookies ride along) for every change: sign-in, holds, payments, purchases,
//!   cancellations. The browser sends `Origin` on those writes and the gateway refuses a
//!   cookie-authenticated write whose origin is not allowed (403), the same CSRF rule as for
//!   any client. Pages answer with `Referrer-Policy: same-origin`, under which the browser
//!   still sends `Origin` on same-origin writes (with `no-referrer` it would send `null`).
//!
//! Cookies are `HttpOnly` and `SameSite=Strict` (auth's settings), so a first navigation from
//! an e-mail link arrives without them: public pages (the event list, an event and its seat
//! map, sign-in) render without a session, and the personal part of a page (my orders) is a
//! fragment loaded after the page, by then with cookies.
//!
//! # Headers
//! Every page carries its own Content-Security-Policy ([`CSP`]): scripts only from this
//! origin, no inline scripts or handlers, no inline styles (htmx's indicator styles are off),
//! no frames. Templates escape everything they print; the only unescaped output is the QR
//! code's SVG, which [`qr`] builds from nothing but black and white modules.
//!
//! # Rate limits
//! The pages and assets are mounted outside the gateway's edge, so they never count against a
//! rate limit themselves: assets are immutable and cached by the browser for a year, and a
//! page costs the API calls it makes (one or two), counted per user or per address like any
//! other call.
//!
//! # Roles
//! Which links a page offers (the organizer's pages, the admin's, an event's sales dashboard)
//! follows the role and user id in the session's access token, read without checking its
//! signature ([`pages::Viewer`]): a hint for the page, never a permission. The organizer's and
//! admin's pages ask `GET /api/auth/me` before showing anything, and every API call behind a
//! link or button is authorized by the gateway from the verified token.
//!
//! Layout: [`assets`] (embedded files), [`api`] (in-process API calls), [`pages`] (the buyer's
//! handlers and the dashboard), [`organizer`] (events, venues, import and export), [`admin`]
//! (users, platform settings), [`views`] (what the API answers and how a page shows it),
//! [`seatmap`] (the SVG seat map), [`qr`] (ticket codes).

pub mod admin;
pub mod api;
pub mod assets;
pub mod organizer;
pub mod pages;
pub mod qr;
pub mod seatmap;
pub mod views;

use axum::Router;
use axum::routing::get;

/// The pages' Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// How the web client is set up.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Send `Strict-Transport-Security` with pages (as the gateway does with `gateway.hsts`).
    pub hsts: bool,
}

/// The web client's routes: pages at `/`, `/events/{id}`, `/orders`, `/profile`,
/// `/preferences`, `/dashboard/events/{id}`, the organizer's `/organizer/events` (with
/// `/new` and `/{id}/edit`), `/organizer/venues` and `/organizer/data`, the admin's `/admin/users` and
/// `/admin/settings`, `/signin` and `/signup`, their fragments
/// under `/_/`, and the assets under `/assets/`. `api` is the gateway's router (the edge included), which page
/// handlers call in process.
pub fn router(api: Router, config: WebConfig) -> Router {
    let state = pages::WebState::new(api::Api::new(api), config);
    Router::new()
        .route("/", get(pages::events_page))
        .route("/_/events", get(pages::events_fragment))
        .route("/events/{event_id}", get(pages::event_page))
        .route("/_/recs", get(pages::recs_fragment))
        .route("/_/events/{event_id}/related", get(pages::related_fragment))
        .route("/orders", get(pages::orders_page))
        .route("/_/orders", get(pages::orders_fragment))
        .route("/profile", get(pages::profile_page))
        .route("/preferences", get(pages::preferences_page))
        .route("/dashboard/events/{event_id}", get(pages::dashboard_page))
        .route(
            "/_/dashboard/events/{event_id}/chart",
            get(pages::chart_fragment),
        )
        .route("/organizer/events", get(organizer::my_events_page))
        .route("/organizer/events/new", get(organizer::new_event_page))
        .route(
            "/organizer/events/{event_id}/edit",
            get(organizer::edit_event_page),
        )
        .route("/organizer/venues", get(organizer::venues_page))
        .route("/organizer/data", get(organizer::data_page))
        .route("/admin/users", get(admin::users_page))
        .route("/admin/settings", get(admin::settings_page))
        .route("/signin", get(pages::signin_page))
        .route("/signup", get(pages::signup_page))
        .route("/assets/{file}", get(assets::serve))
        .with_state(state)
}
