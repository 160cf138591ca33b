//! The live feed over a real WebSocket through the in-process gateway: authentication by
//! cookie and by subprotocol, a refused origin, someone else's event never delivered, events
//! created after the socket opened, the close at token expiry and at shutdown, and the SSE
//! twin.

use std::time::Duration;

use evently_testkit::{TestApp, TestUser, spawn_app};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{buy, event, hold, join_waitlist, organizer};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How a client authenticates.
pub enum Auth<'a> {
    Cookie(&'a str),
    Subprotocol(&'a str),
}

pub async fn connect(
    base: &str,
    query: &str,
    auth: Auth<'_>,
    origin: Option<&str>,
) -> Result<(Socket, Option<String>), tungstenite::Error> {
    let url = format!(
        "{}/api/analytics/live{query}",
        base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    match auth {
        Auth::Cookie(token) => {
            headers.insert(
                "cookie",
                HeaderValue::from_str(&format!("access_token={token}")).unwrap(),
            );
        }
        Auth::Subprotocol(token) => {
            headers.insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(&format!("evently.v1, evently.bearer.{token}")).unwrap(),
            );
        }
    }
    if let Some(origin) = origin {
        headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((socket, protocol))
}

/// The next figures message (pings answered by the client library), up to 10 s.
pub async fn next_figures(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("no message within 10 s")
            .expect("the socket ended")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Reads figures until one satisfies `done`; every one read goes to `seen`.
pub async fn until(socket: &mut Socket, seen: &mut Vec<Value>, done: impl Fn(&Value) -> bool) {
    loop {
        let figures = next_figures(socket).await;
        let stop = done(&figures);
        seen.push(figures);
        if stop {
            return;
        }
    }
}

fn status_of(error: tungstenite::Error) -> u16 {
    match error {
        tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("not an HTTP refusal: {other}"),
    }
}

async fn two_organizers_with_events(app: &TestApp) -> (TestUser, String, TestUser, String) {
    let owner = organizer(app).await;
    let rival = organizer(app).await;
    let mine = event(app, &owner, 10, 1000, "EUR").await;
    let theirs = event(app, &rival, 10, 1000, "EUR").await;
    (owner, mine, rival, theirs)
}

#[tokio::test]
async fn a_cookie_opens_the_feed_of_the_callers_events_and_no_one_elses() {
    let app = spawn_app().await;
    let (owner, mine, _rival, theirs) = two_organizers_with_events(&app).await;
    let buyer = app.signed_in_user().await;

    let (mut socket, protocol) = connect(&app.base, "", Auth::Cookie(&owner.access_token), None)
        .await
        .unwrap();
    let first = next_figures(&mut socket).await;
    buy(&app, &buyer, &theirs, 3).await;
    buy(&app, &buyer, &mine, 2).await;
    let mut seen = vec![first];
    until(&mut socket, &mut seen, |f| f["tickets"] == 2).await;

    assert_eq!(protocol, None, "no subprotocol offered, none selected");
    assert!(
        seen.iter()
            .all(|f| f["eventId"] == mine.as_str() && f["type"] == "figures"),
        "{seen:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(
        (last["orders"].as_i64(), last["sold"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(last["revenue"][0]["gross"], 2000);

    // The waitlist's length reaches the feed: the rest is held, and a buyer waits.
    let (holder, waiter) = (app.signed_in_user().await, app.signed_in_user().await);
    hold(&app, &holder, &mine, 8).await;
    join_waitlist(&app, &waiter, &mine, 1).await;
    until(&mut socket, &mut seen, |f| f["waitlistLength"] == 1).await;
    assert_eq!(seen.last().unwrap()["available"], 0);
}

/// Reads figures for `within`; every one read goes to `seen`.
pub async fn read_for(socket: &mut Socket, seen: &mut Vec<Value>, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        loop {
            seen.push(next_figures(socket).await);
        }
    })
    .await;
}

#[tokio::test]
async fn a_feed_of_every_event_takes_in_the_callers_events_created_after_it_opened() {
    let app = spawn_app().await;
    let (owner, mine, rival, _theirs) = two_organizers_with_events(&app).await;
    let buyer = app.signed_in_user().await;
    let (mut following, _) = connect(&app.base, "", Auth::Cookie(&owner.access_token), None)
        .await
        .unwrap();
    let pinned_query = format!("?eventIds={mine}");
    let (mut pinned, _) = connect(
        &app.base,
        &pinned_query,
        Auth::Cookie(&owner.access_token),
        None,
    )
    .await
    .unwrap();
    let mut seen = vec![next_figures(&mut following).await];
    let mut pinned_seen = vec![next_figures(&mut pinned).await];

    let later = event(&app, &owner, 10, 500, "EUR").await;
    let theirs_later = event(&app, &rival, 10, 500, "EUR").await;
    buy(&app, &buyer, &theirs_later, 1).await;
    buy(&app, &buyer, &later, 2).await;
    until(&mut following, &mut seen, |f| {
        f["eventId"] == later.as_str() && f["tickets"] == 2
    })
    .await;
    read_for(&mut pinned, &mut pinned_seen, Duration::from_millis(1500)).await;

    assert_eq!(seen[0]["eventId"], mine.as_str());
    assert!(
        seen.iter()
            .all(|f| f["eventId"] == mine.as_str() || f["eventId"] == later.as_str()),
        "only the caller's events: {seen:?}"
    );
    assert!(
        pinned_seen.iter().all(|f| f["eventId"] == mine.as_str()),
        "a feed of named events takes in no others: {pinned_seen:?}"
    );
    assert_eq!(seen.last().unwrap()["revenue"][0]["gross"], 1000);
}

#[tokio::test]
async fn a_client_that_reads_slowly_gets_the_latest_figures_not_every_change() {
    let app = spawn_app().await;
    let owner = organizer(&app).await;
    let busy = event(&app, &owner, 30, 100, "EUR").await;
    let mut buyers = Vec::new();
    for _ in 0..12 {
        buyers.push(app.signed_in_user().await);
    }
    let query = format!("?eventIds={busy}");
    let (mut socket, _) = connect(&app.base, &query, Auth::Cookie(&owner.access_token), None)
        .await
        .unwrap();
    let opened = std::time::Instant::now();

    // The client reads nothing while twelve purchases (each a hold and an order: dozens
    // of changes) go through.
    for buyer in &buyers {
        buy(&app, buyer, &busy, 1).await;
    }
    let mut seen = Vec::new();
    until(&mut socket, &mut seen, |f| f["tickets"] == 12).await;
    read_for(&mut socket, &mut seen, Duration::from_millis(1200)).await;
    let seconds = opened.elapsed().as_secs_f64();

    // At most one message per second went out, each with the figures of its moment.
    assert!(
        (seen.len() as f64) <= seconds.ceil() + 1.0,
        "{} messages in {seconds:.1} s: {seen:?}",
        seen.len()
    );
    let tickets: Vec<i64> = seen
        .iter()
        .map(|f| f["tickets"].as_i64().unwrap())
        .collect();
    assert!(tickets.is_sorted(), "{tickets:?}");
    assert_eq!(tickets.last(), Some(&12));
}

#[tokio::test]
async fn a_subprotocol_token_opens_the_feed_and_the_protocol_is_echoed() {
    let app = spawn_app().await;
    let (owner, mine, _rival, theirs) = two_organizers_with_events(&app).await;

    let query = format!("?eventIds={mine}");
    let (mut socket, protocol) = connect(
        &app.base,
        &query,
        Auth::Subprotocol(&owner.access_token),
        None,
    )
    .await
    .unwrap();
    let first = next_figures(&mut socket).await;
    let someone_elses = connect(
        &app.base,
        &format!("?eventIds={mine},{theirs}"),
        Auth::Subprotocol(&owner.access_token),
        None,
    )
    .await
    .unwrap_err();
    let no_token = connect(&app.base, "", Auth::Cookie("not-a-token"), None)
        .await
        .unwrap_err();

    assert_eq!(protocol.as_deref(), Some("evently.v1"));
    assert_eq!(first["eventId"], mine.as_str());
    assert_eq!(status_of(someone_elses), 404);
    assert_eq!(status_of(no_token), 401);
    socket.send(Message::Close(None)).await.unwrap();
}

#[tokio::test]
async fn an_origin_outside_the_allowlist_is_refused_before_the_upgrade() {
    let app = evently_testkit::spawn_app_with(|c| {
        c.gateway.cors_allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let owner = organizer(&app).await;
    let token = Auth::Cookie(&owner.access_token);

    let hijack = connect(&app.base, "", token, Some("https://evil.example"))
        .await
        .unwrap_err();
    let allowed = connect(
        &app.base,
        "",
        Auth::Cookie(&owner.access_token),
        Some("https://app.example.com"),
    )
    .await;

    assert_eq!(status_of(hijack), 403);
    assert!(allowed.is_ok());
}

#[tokio::test]
async fn the_socket_closes_with_4401_when_its_token_expires() {
    let app = spawn_app().await;
    let owner = organizer(&app).await;
    let keys = app.keys();
    let mut claims = keys.verify(&owner.access_token).unwrap();
    claims.exp = time::OffsetDateTime::now_utc().unix_timestamp() + 2;
    let short = keys.sign(&claims).unwrap();

    let (mut socket, _) = connect(&app.base, "", Auth::Subprotocol(&short), None)
        .await
        .unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("not closed within 10 s")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    };

    assert_eq!(close.unwrap().code, CloseCode::from(4401));
}

#[tokio::test]
async fn the_socket_closes_with_1001_on_shutdown() {
    let app = spawn_app().await;
    let owner = organizer(&app).await;
    let (mut socket, _) = connect(&app.base, "", Auth::Cookie(&owner.access_token), None)
        .await
        .unwrap();

    drop(app);
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("not closed within 10 s")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    };

    assert_eq!(close.unwrap().code, CloseCode::Away);
}

#[tokio::test]
async fn a_user_has_a_bounded_number_of_live_connections() {
    let app =
        evently_testkit::spawn_app_with(|c| c.analytics.live_max_connections_per_user = 2).await;
    let owner = organizer(&app).await;
    let open = |_| connect(&app.base, "", Auth::Cookie(&owner.access_token), None);

    let first = open(1).await.unwrap();
    let second = open(2).await.unwrap();
    let third = open(3).await.unwrap_err();
    drop(first);

    assert_eq!(status_of(third), 429);
    // The place of a closed connection is given back.
    crate::support::eventually(|| async { open(4).await.is_ok() }).await;
    drop(second);
}

#[tokio::test]
async fn the_sse_twin_streams_the_same_figures() {
    let app = spawn_app().await;
    let (owner, mine, _rival, _theirs) = two_organizers_with_events(&app).await;
    let buyer = app.signed_in_user().await;

    let mut response = app
        .client
        .get(app.url("/api/analytics/live/stream"))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    buy(&app, &buyer, &mine, 4).await;
    let mut text = String::new();
    while !text.contains("\"tickets\":4") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("no figures within 10 s")
            .unwrap()
            .expect("the stream ended");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }

    assert!(text.contains("event: figures"), "{text}");
    assert!(text.contains(&mine), "{text}");
}
