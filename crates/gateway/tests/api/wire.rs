//! The edge at the HTTP/1.1 wire, driven by a raw TCP client: oversized request heads, clients
//! that trickle their headers or their body, and request smuggling (conflicting framing)
//! through a gateway that proxies to a remote service.

use evently_testkit::{TestApp, spawn_app_with};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proxy::auth_and_gateway;

/// Writes `request` on a fresh connection and reads until the server closes it (or 5 s pass,
/// which the caller sees as a missing `<closed>` marker).
async fn exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream, Duration::from_secs(5)).await
}

async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> String {
    let mut received = Vec::new();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                received.extend_from_slice(b"<closed>");
                break;
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_elapsed) => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Writes `byte` every 100 ms (for at most 4 s) and collects what comes back, until the server
/// closes the connection: what was received, and how long after the first byte it closed.
async fn trickle(stream: &mut TcpStream, byte: u8) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut closed_after = None;
    for _ in 0..40 {
        let mut buf = [0u8; 4096];
        let read = if stream.write_all(&[byte]).await.is_ok() {
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        } else {
            Ok(Ok(0))
        };
        match read {
            Ok(Ok(0) | Err(_)) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_elapsed) => {}
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        closed_after,
    )
}

fn responses(text: &str) -> usize {
    text.matches("HTTP/1.1 ").count()
}

#[tokio::test]
async fn oversized_request_heads_get_431_and_the_connection_is_closed() {
    let app = spawn_app_with(|_| {}).await;
    let big_header = format!(
        "GET /api/events HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(64 * 1024)
    );
    let many_headers = format!(
        "GET /api/events HTTP/1.1\r\nHost: a\r\n{}\r\n",
        (0..1000)
            .map(|i| format!("X-H{i}: 1\r\n"))
            .collect::<String>()
    );
    let within_limit = format!(
        "GET /health/live HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "x".repeat(16 * 1024)
    );

    let big = exchange(&app, big_header.as_bytes()).await;
    let many = exchange(&app, many_headers.as_bytes()).await;
    let fine = exchange(&app, within_limit.as_bytes()).await;

    assert!(big.starts_with("HTTP/1.1 431 "), "{big}");
    assert!(big.ends_with("<closed>"), "{big}");
    assert!(many.starts_with("HTTP/1.1 431 "), "{many}");
    assert!(many.ends_with("<closed>"), "{many}");
    assert!(fine.starts_with("HTTP/1.1 200 "), "{fine}");
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected_and_others_are_served() {
    let app = spawn_app_with(|c| c.server.header_read_timeout_seconds = 1).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();

    // One byte every 100 ms: the head never completes, and the trickle does not reset the clock.
    let (_, closed_after) = trickle(&mut slow, b'a').await;
    let other = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();

    let closed_after = closed_after.expect("the trickling connection is closed");
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(3),
        "{closed_after:?}"
    );
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_read_timeout() {
    let app = spawn_app_with(|c| c.server.header_read_timeout_seconds = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = stream.read(&mut first).await.unwrap();
    let idle_from = Instant::now();

    let rest = read_until_closed(&mut stream, Duration::from_secs(5)).await;

    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200 "));
    assert_eq!(rest, "<closed>");
    assert!(idle_from.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn conflicting_framing_never_smuggles_a_second_request_through_the_proxy() {
    let (_auth, gw) = auth_and_gateway(|_| {}).await;

    // CL.TE: a front end framing by Content-Length would see one request; a back end framing by
    // Transfer-Encoding would see the GET as a second one. The edge frames by
    // Transfer-Encoding alone (RFC 9112 §6.1), answers once and closes the connection.
    let cl_te = exchange(
        &gw,
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
          Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
          GET /api/auth/me HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    // TE.CL: the same with the headers the other way round.
    let te_cl = exchange(
        &gw,
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n\
          GET /api/auth/me HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    let two_lengths = exchange(
        &gw,
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .await;
    let not_chunked = exchange(
        &gw,
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    )
    .await;
    let obfuscated = exchange(
        &gw,
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    )
    .await;

    for text in [&cl_te, &te_cl] {
        assert_eq!(responses(text), 1, "{text}");
        assert!(text.starts_with("HTTP/1.1 4"), "{text}");
        // A status line, not the digits alone: a random request id may contain "401".
        assert!(
            !text.contains("HTTP/1.1 401"),
            "the smuggled GET was answered: {text}"
        );
        assert!(text.ends_with("<closed>"), "{text}");
    }
    for text in [&two_lengths, &not_chunked, &obfuscated] {
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(text.ends_with("<closed>"), "{text}");
    }
}

/// A sign-in whose body arrives one byte every 100 ms (100 bytes would take 10 s) from an
/// allowed cross-site origin: what comes back, and when the connection was closed.
async fn trickled_body(app: &TestApp) -> (String, Option<Duration>) {
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
          Origin: https://app.example\r\nContent-Length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    trickle(&mut slow, b' ').await
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_503_at_the_request_timeout_and_is_disconnected() {
    let app = spawn_app_with(|c| {
        c.server.request_timeout_seconds = 1;
        c.gateway.hsts = true;
        c.gateway.cors_allowed_origins = vec!["https://app.example".into()];
    })
    .await;

    let (received, closed_after) = trickled_body(&app).await;

    assert!(received.starts_with("HTTP/1.1 503 "), "{received}");
    assert!(received.contains("problem+json"), "{received}");
    // The edge's headers too: a cross-site app can read the answer.
    assert!(
        received.contains("access-control-allow-origin: https://app.example"),
        "{received}"
    );
    assert!(
        received.contains("strict-transport-security: "),
        "{received}"
    );
    let closed_after = closed_after.expect("the trickling connection is closed");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
}

#[tokio::test]
async fn a_service_without_the_gateway_times_requests_out_itself() {
    let auth = evently_testkit::spawn_services(&[evently_testkit::ServiceName::Auth], |c| {
        c.server.request_timeout_seconds = 1;
    })
    .await;

    let (received, closed_after) = trickled_body(&auth).await;

    assert!(received.starts_with("HTTP/1.1 503 "), "{received}");
    assert!(received.contains("problem+json"), "{received}");
    let closed_after = closed_after.expect("the trickling connection is closed");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
}
