//! The web client's pages against a stand-in API: rendering, escaping, headers, assets, and
//! problems shown as messages.

#![expect(clippy::unwrap_used, reason = "tests fail loudly")]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use evently_web::assets::{ASSETS, CACHE_FOREVER};
use evently_web::{CSP, WebConfig};
use serde_json::json;
use tower::ServiceExt;

const EVENT: &str = "01a243f4-fa9d-7205-ba86-c25e92233254";
const OTHER_EVENT: &str = "01a243f4-fa9d-7205-ba86-c25e92233255";
const ORGANIZER: &str = "01a243f4-0000-7000-8000-000000000001";
const SOMEONE: &str = "01a243f4-0000-7000-8000-000000000002";
const VENUE: &str = "01a243f4-0000-7000-8000-0000000000aa";

/// A session cookie whose access token names `user` with `role` (unsigned: the stand-in API
/// reads it back the way the pages do).
fn session(user: &str, role: &str) -> String {
    use base64::Engine;
    let claims = json!({"sub": user, "role": role}).to_string();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
    format!("access_token=e30.{payload}.c2ln")
}

fn event_json(id: &str, name: &str, organizer: &str, status: &str) -> serde_json::Value {
    json!({"eventId": id, "eventName": name, "description": "<b>live</b>",
        "eventDate": "2027-01-04T20:00:00Z", "venueId": VENUE, "venueName": "Harbour Hall",
        "city": "Lisbon", "eventType": "concert", "tags": ["jazz", "late"],
        "saleStartTime": "2026-12-01T10:00:00Z", "saleEndTime": null, "basePrice": 4000,
        "currency": "EUR", "sectionPrices": {"B": 2550}, "status": status,
        "organizerId": organizer, "totalSeats": 4, "availableSeats": 2, "version": 3,
        "createdAt": "2026-12-01T09:00:00Z", "updatedAt": "2026-12-01T09:00:00Z"})
}

fn problem(status: StatusCode, slug: &str, detail: &str) -> axum::response::Response {
    let mut response = (
        status,
        axum::Json(
            json!({"type": format!("https://evently.dev/problems/{slug}"),
            "title": slug, "status": status.as_u16(), "detail": detail}),
        ),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/problem+json".parse().unwrap(),
    );
    response
}

/// The API as the pages see it: a search with one hit named `name`, one event with four
/// seats, and orders for callers with the `access_token` cookie.
fn api(name: &'static str) -> Router {
    Router::new()
        .route(
            "/api/search/events",
            get(move |uri: axum::http::Uri| async move {
                if uri.query().unwrap_or_default().contains("q=slow") {
                    let mut r = problem(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "slow down");
                    r.headers_mut().insert(header::RETRY_AFTER, "7".parse().unwrap());
                    return r;
                }
                axum::Json(json!({
                    "totalHits": 1, "page": 0, "size": 20, "matchedWords": ["sonata"],
                    "hits": [{"eventId": EVENT, "eventName": name, "eventDate": "2027-01-04T20:00:00Z",
                        "venueName": "Harbour Hall", "city": "Lisbon", "eventType": "concert", "tags": [],
                        "status": "ON_SALE", "minPrice": 2500, "currency": "EUR", "availableSeats": 3,
                        "nameHighlight": {"text": name, "html": "", "ranges": [[0, 8]]}}],
                    "facets": {"city": {"Lisbon": 1}, "type": {"concert": 1}, "status": {}, "month": {}}
                }))
                .into_response()
            }),
        )
        .route(
            "/api/events/{id}",
            get(move |axum::extract::Path(id): axum::extract::Path<String>| async move {
                if id != EVENT {
                    return problem(StatusCode::NOT_FOUND, "not-found", "no such event");
                }
                axum::Json(event_json(EVENT, name, ORGANIZER, "ON_SALE")).into_response()
            }),
        )
        .route(
            "/api/events",
            get(move || async move {
                axum::Json(json!({"events": [
                    event_json(EVENT, name, ORGANIZER, "UPCOMING"),
                    event_json(OTHER_EVENT, "Someone else's gig", SOMEONE, "ON_SALE")],
                    "page": {"number": 0, "size": 100, "totalElements": 2, "totalPages": 1}}))
            }),
        )
        .route(
            "/api/venues",
            get(|| async {
                axum::Json(json!({"venues": [{"venueId": VENUE, "name": "Harbour Hall",
                    "address": "1 Quay", "city": "Lisbon", "capacity": 4, "createdAt": "2026-12-01T09:00:00Z",
                    "layout": {"sections": [{"name": "A", "rows": [{"label": "3", "seats": 2}]},
                        {"name": "B", "rows": [{"label": "3", "seats": 2}]}]}}],
                    "page": {"number": 0, "size": 100, "totalElements": 1, "totalPages": 1}}))
            }),
        )
        .route(
            "/api/users",
            get(|uri: axum::http::Uri| async move {
                let query = uri.query().unwrap_or_default().to_owned();
                axum::Json(json!({"users": [
                    {"userId": SOMEONE, "email": "bea@example.com", "name": "Bea <b>Buyer</b>",
                        "role": "user", "active": true, "createdAt": "2026-12-01T09:00:00Z"},
                    {"userId": ORGANIZER, "email": "admin@example.com", "name": "The Admin",
                        "role": "admin", "active": true, "createdAt": "2026-12-01T09:00:00Z"}],
                    "nextAfter": ORGANIZER, "query": query}))
            }),
        )
        .route(
            "/api/auth/me",
            get(|headers: HeaderMap| async move {
                let viewer = evently_web::pages::Viewer::of(
                    evently_core::identity::cookie(&headers, "access_token").unwrap_or_default(),
                );
                match viewer {
                    Some(v) => axum::Json(json!({"userId": v.user_id, "role": v.role,
                        "email": "o@example.com", "name": "O", "createdAt": "2026-12-01T09:00:00Z"}))
                    .into_response(),
                    None => problem(StatusCode::UNAUTHORIZED, "unauthorized", "no token"),
                }
            }),
        )
        .route(
            "/api/orders/seats/{id}",
            get(|| async {
                let seat = |n: i64, section: &str, price: i64, state: &str| {
                    json!({"seatId": format!("{section}-3-{n}"), "section": section, "row": "3",
                        "number": n, "priceTier": "base", "price": price, "state": state})
                };
                axum::Json(json!({"eventId": EVENT, "seats": [
                    seat(12, "A", 4000, "available"), seat(13, "A", 4000, "reserved"),
                    seat(1, "B", 2500, "held"), seat(2, "B", 2500, "available")]}))
            }),
        )
        .route(
            "/api/analytics/events/{id}",
            get(move || async move {
                axum::Json(json!({"eventId": EVENT, "eventName": name, "status": "ON_SALE",
                    "capacity": 4, "sold": 2, "held": 1, "available": 1, "orders": 1,
                    "cancellations": 0, "revenue": [{"currency": "EUR", "gross": 8000, "refunded": 0, "net": 8000}],
                    "holds": {"created": 2, "converted": 1, "conversion": 0.5},
                    "series": {"interval": "hour", "points": [
                        {"start": "2026-12-05T01:00:00Z", "ticketsSold": 0},
                        {"start": "2026-12-05T02:00:00Z", "ticketsSold": 2}]}}))
            }),
        )
        .route(
            "/api/recs",
            get(|| async {
                axum::Json(json!({"items": [
                    {"eventId": EVENT, "eventName": "Jazz <i>Night</i>", "eventDate": "2027-01-04T20:00:00Z",
                        "city": "Lisbon", "reason": {"kind": "alsoBought", "eventId": EVENT}},
                    {"eventId": EVENT, "eventName": "Fado", "eventDate": "2027-01-05T20:00:00Z",
                        "city": null, "reason": {"kind": "popularInCity", "city": "Porto"}},
                    {"eventId": EVENT, "eventName": "Later", "eventDate": "2027-01-06T20:00:00Z",
                        "reason": {"kind": "somethingNew", "extra": 1}}]}))
            }),
        )
        .route(
            "/api/orders/orders",
            get(|headers: HeaderMap| async move {
                let cookie = headers
                    .get(header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if !cookie.contains("access_token=") {
                    return problem(StatusCode::UNAUTHORIZED, "unauthorized", "no token");
                }
                axum::Json(json!({"orders": [{"orderId": "01a243f5-3877-7219-aa3c-59d85010c394",
                    "eventId": EVENT, "amount": 8000, "currency": "EUR", "status": "confirmed",
                    "createdAt": "2026-12-05T02:07:53Z", "tickets": [
                        {"ticketId": "t1", "seatId": "A-3-12", "code": "6ZHVj9_guFr_uZg66XeYsA", "status": "valid"}]}],
                    "page": {"number": 0, "size": 50, "totalElements": 1, "totalPages": 1}}))
                .into_response()
            }),
        )
}

fn web(name: &'static str) -> Router {
    evently_web::router(api(name), WebConfig::default())
}

async fn get_page(
    router: Router,
    uri: &str,
    cookie: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = router
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_event_list_renders_with_its_own_csp() {
    let (status, headers, body) =
        get_page(web("Moonlight Sonata Night"), "/?q=sonatta", None).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
    assert!(CSP.contains("script-src 'self';") && !CSP.contains("unsafe-inline"));
    assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
    assert!(body.contains("<mark>Moonligh</mark>t Sonata Night"));
    assert!(body.contains("value=\"sonatta\""));
    assert!(body.contains("from €25"));
    assert!(body.contains(&format!("src=\"{}\"", ASSETS.htmx)));
    assert!(!body.contains("onclick") && !body.contains("<script>"));
}

#[tokio::test]
async fn an_event_named_script_is_shown_as_text() {
    let name = "<script>alert(1)</script>";

    let (_, _, list) = get_page(web(name), "/", None).await;
    let (_, _, event) = get_page(web(name), &format!("/events/{EVENT}"), None).await;

    for body in [&list, &event] {
        assert!(!body.contains("<script>alert"), "{body}");
        assert!(
            body.contains("&#60;script&#62;") || body.contains("&lt;script&gt;"),
            "{body}"
        );
    }
    assert!(!event.contains("<b>live</b>"));
}

#[tokio::test]
async fn the_seat_map_has_a_named_button_per_seat() {
    let (status, _, body) = get_page(web("Gala"), &format!("/events/{EVENT}"), None).await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("role=\"button\" tabindex=\"0\" aria-pressed=\"false\" aria-label=\"Section A, row 3, seat 12, €40, available\""));
    assert!(
        body.contains("aria-label=\"Section A, row 3, seat 13, €40, sold\" aria-disabled=\"true\"")
    );
    assert!(body.contains("aria-label=\"Section B, row 3, seat 1, €25, held\""));
    assert!(body.contains("<span id=\"available-count\">2</span> of 4 seats available"));
}

#[tokio::test]
async fn an_unknown_event_is_a_404_page() {
    let (status, headers, body) = get_page(
        web("Gala"),
        "/events/01a243f4-0000-7205-ba86-c25e92233254",
        None,
    )
    .await;
    let (bad, _, _) = get_page(web("Gala"), "/events/not-an-id", None).await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(bad, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(body.contains("We could not find that."));
}

#[tokio::test]
async fn a_rate_limited_search_reads_as_a_message_not_json() {
    let (status, _, body) = get_page(web("Gala"), "/_/events?q=slow", None).await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Please try again in 7 seconds."));
    assert!(!body.contains("problems/") && !body.contains("slow down"));
}

#[tokio::test]
async fn the_results_fragment_keeps_the_address_bar_in_step() {
    let (_, headers, body) = get_page(web("Gala"), "/_/events?q=gala&city=Lisbon", None).await;

    assert_eq!(headers["hx-replace-url"], "/?q=gala&city=Lisbon");
    assert!(body.contains("hx-swap-oob"));
    assert!(!body.contains("<html"));
}

#[tokio::test]
async fn my_orders_use_the_session_cookie_and_show_qr_codes() {
    let (_, _, anonymous) = get_page(web("Gala"), "/_/orders", None).await;
    let (_, _, signed_in) = get_page(web("Gala"), "/_/orders", Some("access_token=abc")).await;

    assert!(anonymous.contains("sign in"));
    assert!(signed_in.contains("<svg role=\"img\" aria-label=\"QR code of the ticket\""));
    assert!(signed_in.contains("Section A, row 3, seat 12"));
    assert!(signed_in.contains("data-action=\"cancel-order\""));
}

#[tokio::test]
async fn assets_are_served_under_hashed_paths_and_cached_for_a_year() {
    for path in [&ASSETS.htmx, &ASSETS.app, &ASSETS.css] {
        let (status, headers, body) = get_page(web("Gala"), path, None).await;

        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], CACHE_FOREVER);
        assert!(!body.is_empty());
    }
    let (stale, _, _) = get_page(web("Gala"), "/assets/app.0000000000.js", None).await;
    assert_eq!(stale, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sign_in_page_follows_only_local_paths() {
    let (_, _, body) = get_page(web("Gala"), "/signin?next=https://evil.example", None).await;

    assert!(body.contains("data-next=\"/\""));
    assert!(body.contains("<label for=\"email\">Email</label>"));
}

#[tokio::test]
async fn recommendations_say_why_in_words() {
    let (status, _, body) = get_page(web("Moonlight Sonata Night"), "/_/recs", None).await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("People who bought Moonlight Sonata Night also bought this"));
    assert!(body.contains("Popular in Porto"));
    assert!(
        body.contains("Popular right now"),
        "an unknown reason still reads: {body}"
    );
    assert!(body.contains("Jazz &#60;i&#62;Night") || body.contains("Jazz &lt;i&gt;Night"));
}

#[tokio::test]
async fn the_dashboard_shows_figures_and_a_server_drawn_chart() {
    let (status, _, body) = get_page(
        web("<b>Disco</b>"),
        &format!("/dashboard/events/{EVENT}"),
        None,
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<dd data-figure=\"sold\">2</dd>"));
    assert!(body.contains("<dd data-figure=\"revenue\">€80</dd>"));
    assert!(body.contains("<dd data-figure=\"conversion\">50 %</dd>"));
    assert!(body.contains("aria-label=\"Tickets sold per hour: 2 tickets over 2 hours\""));
    assert!(
        body.contains("height=\"100\""),
        "the busiest hour fills the chart: {body}"
    );
    assert!(!body.contains("<b>Disco</b>"));
}

#[tokio::test]
async fn the_sales_dashboard_link_shows_only_to_the_organizer_and_admins() {
    let page = format!("/events/{EVENT}");
    let link = format!("href=\"/dashboard/events/{EVENT}\"");

    let (_, _, anonymous) = get_page(web("Gala"), &page, None).await;
    let (_, _, buyer) = get_page(web("Gala"), &page, Some(&session(SOMEONE, "user"))).await;
    let (_, _, other) = get_page(web("Gala"), &page, Some(&session(SOMEONE, "organizer"))).await;
    let (_, _, owner) = get_page(web("Gala"), &page, Some(&session(ORGANIZER, "organizer"))).await;
    let (_, _, admin) = get_page(web("Gala"), &page, Some(&session(SOMEONE, "admin"))).await;

    assert!(!anonymous.contains(&link) && !buyer.contains(&link) && !other.contains(&link));
    assert!(owner.contains(&link) && admin.contains(&link));
    assert!(!buyer.contains("href=\"/organizer/events\""));
    assert!(owner.contains("href=\"/organizer/events\""));
}

#[tokio::test]
async fn my_events_lists_the_organizers_own_events_with_their_actions() {
    let (status, _, mine) = get_page(
        web("Gala"),
        "/organizer/events",
        Some(&session(ORGANIZER, "organizer")),
    )
    .await;
    let (_, _, all) = get_page(
        web("Gala"),
        "/organizer/events",
        Some(&session(SOMEONE, "admin")),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert!(mine.contains("<h1>My events</h1>"));
    assert!(mine.contains(&format!("href=\"/organizer/events/{EVENT}/edit\"")));
    assert!(!mine.contains("Someone else"), "{mine}");
    assert!(mine.contains("data-status=\"UPCOMING\">Coming soon</strong>"));
    assert!(
        mine.contains("data-action=\"open-sale\"") && mine.contains("data-action=\"ask-cancel\"")
    );
    assert!(mine.contains("2 of 4 seats left"));
    assert!(all.contains("<h1>All events</h1>") && all.contains("Someone else"));
}

#[tokio::test]
async fn the_organizers_pages_refuse_buyers_and_ask_strangers_to_sign_in() {
    for path in [
        "/organizer/events",
        "/organizer/venues",
        "/organizer/events/new",
    ] {
        let (buyer, _, body) = get_page(web("Gala"), path, Some(&session(SOMEONE, "user"))).await;
        let (stranger, _, _) = get_page(web("Gala"), path, None).await;

        assert_eq!(buyer, StatusCode::FORBIDDEN, "{path}");
        assert!(body.contains("These pages are for organizers."), "{path}");
        assert_eq!(stranger, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test]
async fn the_event_form_is_filled_with_the_event_and_its_venues_sections() {
    let (status, _, body) = get_page(
        web("Jazz & <i>Blues</i>"),
        &format!("/organizer/events/{EVENT}/edit"),
        Some(&session(ORGANIZER, "organizer")),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("data-event=\"{EVENT}\"")));
    assert!(
        body.contains("value=\"Jazz &#38; &#60;i&#62;Blues&#60;/i&#62;\"")
            || body.contains("value=\"Jazz &amp; &lt;i&gt;Blues"),
        "{body}"
    );
    assert!(body.contains("type=\"datetime-local\" value=\"2027-01-04T20:00\""));
    assert!(body.contains("value=\"40\""));
    assert!(body.contains("data-section-prices=\"B=25.50\""));
    assert!(body.contains("data-sections=\"A|B\" selected"));
    assert!(body.contains("<option value=\"concert\" selected>Concert</option>"));
    assert!(body.contains("value=\"jazz, late\""));
    assert!(!body.contains("<script>") && !body.contains(" style="));
}

#[tokio::test]
async fn the_venue_page_lists_venues_and_offers_the_layout_editor() {
    let (status, _, body) = get_page(
        web("Gala"),
        "/organizer/venues",
        Some(&session(ORGANIZER, "organizer")),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Harbour Hall") && body.contains("2 sections, 4 seats"));
    assert!(body.contains("id=\"venue-form\"") && body.contains("data-action=\"add-section\""));
    assert!(body.contains("<label for=\"venue-name\">Name</label>"));
}

#[tokio::test]
async fn the_dashboard_chart_is_also_a_fragment_htmx_redraws() {
    let (_, _, page) = get_page(web("Gala"), &format!("/dashboard/events/{EVENT}"), None).await;
    let (status, _, chart) = get_page(
        web("Gala"),
        &format!("/_/dashboard/events/{EVENT}/chart"),
        None,
    )
    .await;

    assert!(page.contains(&format!(
        "hx-get=\"/_/dashboard/events/{EVENT}/chart\" hx-trigger=\"chart-stale\""
    )));
    assert_eq!(status, StatusCode::OK);
    assert!(
        chart.trim_start().starts_with("<svg class=\"chart\""),
        "{chart}"
    );
    assert!(chart.contains("height=\"100\"") && !chart.contains("<html"));
}

#[tokio::test]
async fn the_preferences_page_is_a_labelled_form() {
    let (status, _, body) =
        get_page(web("Gala"), "/preferences", Some(&session(SOMEONE, "user"))).await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"preferences\""));
    for label in [
        "pref-locale",
        "pref-tz",
        "pref-currency",
        "pref-cities",
        "pref-reminder",
    ] {
        assert!(
            body.contains(&format!("<label for=\"{label}\">")),
            "{label}"
        );
    }
}

#[tokio::test]
async fn the_admin_lists_users_with_role_and_status_controls_but_not_for_themself() {
    let (status, _, body) = get_page(
        web("Gala"),
        "/admin/users?q=be&role=user",
        Some(&session(ORGANIZER, "admin")),
    )
    .await;
    let (buyer, _, _) =
        get_page(web("Gala"), "/admin/users", Some(&session(SOMEONE, "user"))).await;
    let (organizer, _, _) = get_page(
        web("Gala"),
        "/admin/settings",
        Some(&session(ORGANIZER, "organizer")),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("aria-label=\"Role of bea@example.com\""));
    assert!(body.contains("aria-label=\"Disable bea@example.com\""));
    assert!(
        !body.contains("Role of admin@example.com"),
        "no controls for oneself"
    );
    assert!(body.contains("Bea &#60;b&#62;Buyer") || body.contains("Bea &lt;b&gt;Buyer"));
    assert!(
        body.contains(&format!(
            "href=\"/admin/users?q=be&amp;role=user&amp;after={ORGANIZER}\""
        )) || body.contains(&format!(
            "href=\"/admin/users?q=be&#38;role=user&#38;after={ORGANIZER}\""
        )),
        "{body}"
    );
    assert!(body.contains("<option value=\"user\" selected>user</option>"));
    assert_eq!(buyer, StatusCode::FORBIDDEN);
    assert_eq!(organizer, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_import_page_offers_an_upload_and_the_organizers_exports() {
    let (status, _, body) = get_page(
        web("Gala"),
        "/organizer/data",
        Some(&session(ORGANIZER, "organizer")),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"import-form\"") && body.contains("type=\"file\""));
    assert!(body.contains("href=\"/api/data/export/events?format=xlsx\""));
    assert!(body.contains(&format!("<option value=\"{EVENT}\">Gala (")));
    assert!(
        !body.contains(OTHER_EVENT),
        "only the organizer's own events"
    );
}
