//! Analytics in a process of its own, behind a gateway in another that proxies to it: the
//! routes keep their contract and the live WebSocket passes the gateway's upgrade tunnel.

use evently_testkit::{ServiceName, assert_problem, spawn_services};
use futures_util::{SinkExt as _, StreamExt as _};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::live::{Auth, connect};

#[tokio::test]
async fn the_live_websocket_passes_a_proxying_gateway() {
    let analytics = spawn_services(&[ServiceName::Analytics], |_| {}).await;
    let base = analytics.base.clone();
    let gateway = spawn_services(&[ServiceName::Auth, ServiceName::Gateway], |c| {
        c.gateway.services.insert("analytics".into(), base);
        c.gateway.cors_allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let user = gateway.signed_in_user().await;
    let keys = gateway.keys();
    let mut claims = keys.verify(&user.access_token).unwrap();
    claims.exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3;
    let short = keys.sign(&claims).unwrap();

    let overview = gateway
        .client
        .get(gateway.url("/api/analytics/overview"))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .unwrap();
    let refused = connect(
        &gateway.base,
        "",
        Auth::Cookie(&user.access_token),
        Some("https://evil.example"),
    )
    .await
    .unwrap_err();
    // A page served by the gateway itself opens the feed through it: its origin is the
    // gateway's, which the service sees as the forwarded host.
    let (same_origin, _) = connect(
        &gateway.base,
        "",
        Auth::Cookie(&user.access_token),
        Some(&gateway.base),
    )
    .await
    .expect("a page of the gateway's own origin opens the feed");
    drop(same_origin);
    let (mut socket, protocol) = connect(&gateway.base, "", Auth::Subprotocol(&short), None)
        .await
        .unwrap();
    socket
        .send(Message::Ping(b"through".to_vec().into()))
        .await
        .unwrap();
    let mut pong = None;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("nothing within 10 s")
        {
            Some(Ok(Message::Pong(data))) => pong = Some(data.to_vec()),
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    };

    assert_eq!(overview.status(), 200);
    match refused {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        other => panic!("not refused over HTTP: {other}"),
    }
    assert_eq!(protocol.as_deref(), Some("evently.v1"));
    assert_eq!(
        pong.as_deref(),
        Some(&b"through"[..]),
        "client to server and back"
    );
    assert_eq!(close.unwrap().code, CloseCode::from(4401));
    let anonymous = gateway
        .client
        .get(gateway.url("/api/analytics/live"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, 401).await;
}
