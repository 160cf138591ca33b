use evently_testkit::{PASSWORD, assert_problem, json, spawn_app, unique_email};

#[tokio::test]
async fn register_creates_a_user_with_role_user() {
    let app = spawn_app().await;
    let email = unique_email();

    let response = app
        .post_json(
            "/api/auth/register",
            &json!({"email": format!("  {}  ", email.to_uppercase()), "password": PASSWORD, "name": "Zoë 🎟 عربى"}),
        )
        .await;

    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["email"], email);
    assert_eq!(body["name"], "Zoë 🎟 عربى");
    assert_eq!(body["role"], "user");
    assert!(body["userId"].is_string());
    assert!(body.get("passwordHash").is_none() && body.get("password").is_none());
}

#[tokio::test]
async fn signup_is_register_under_another_name() {
    let app = spawn_app().await;

    let response = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": unique_email(), "password": PASSWORD, "name": "S"}),
        )
        .await;

    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn duplicate_email_in_any_case_is_conflict() {
    let app = spawn_app().await;
    let email = unique_email();
    assert_eq!(app.register(&email, PASSWORD).await.status(), 201);

    let again = app.register(&email.to_uppercase(), PASSWORD).await;

    let body = assert_problem(again, 409).await;
    assert_eq!(body["type"], "https://evently.dev/problems/email-taken");
}

#[tokio::test]
async fn bad_registrations_are_4xx_and_write_nothing() {
    let app = spawn_app().await;
    let email = unique_email();
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (json!({"password": PASSWORD, "name": "N"}), 422, "/email"),
        (json!({"email": email, "name": "N"}), 422, "/password"),
        (json!({"email": email, "password": PASSWORD}), 422, "/name"),
        (
            json!({"email": "not-an-email", "password": PASSWORD, "name": "N"}),
            422,
            "/email",
        ),
        (
            json!({"email": email, "password": "short", "name": "N"}),
            422,
            "/password",
        ),
        (
            json!({"email": email, "password": "x".repeat(1025), "name": "N"}),
            422,
            "/password",
        ),
        (
            json!({"email": email, "password": "password123", "name": "N"}),
            422,
            "/password",
        ),
        (
            json!({"email": email, "password": PASSWORD, "name": "N", "role": "admin"}),
            422,
            "",
        ),
        (
            json!({"email": email, "password": 12345678, "name": "N"}),
            422,
            "/password",
        ),
        (
            json!({"email": null, "password": PASSWORD, "name": "N"}),
            422,
            "/email",
        ),
        (
            json!({"email": email, "password": PASSWORD, "name": "a\u{0}b"}),
            422,
            "/name",
        ),
        (
            json!({"email": email, "password": PASSWORD, "name": "x".repeat(101)}),
            422,
            "/name",
        ),
        (json!([email]), 422, ""),
    ];
    for (body, status, pointer) in cases {
        let response = app.post_json("/api/auth/register", &body).await;
        let problem = assert_problem(response, status).await;
        if !pointer.is_empty() {
            assert_eq!(problem["errors"][0]["pointer"], pointer, "{body}");
        }
    }
    for raw in [
        &b"{\"email\":"[..],
        b"{\"email\": \"a\",}",
        b"{'email':'x'}",
        &[0xff, 0xfe, b'{'],
    ] {
        let response = app
            .client
            .post(app.url("/api/auth/register"))
            .header("content-type", "application/json")
            .body(raw.to_vec())
            .send()
            .await
            .unwrap();
        assert_problem(response, 400).await;
    }
    let nested = "[".repeat(10_000);
    let response = app
        .client
        .post(app.url("/api/auth/register"))
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = app
            .client
            .post(app.url("/api/auth/register"))
            .header("content-type", content_type)
            .body(json!({"email": email, "password": PASSWORD, "name": "N"}).to_string())
            .send()
            .await
            .unwrap();
        assert_problem(response, 415).await;
    }
    let huge = json!({"email": email, "password": PASSWORD, "name": "x".repeat(10 * 1024 * 1024)});
    let response = app.post_json("/api/auth/register", &huge).await;
    assert_problem(response, 413).await;

    // Nothing above was written: the email is still free.
    assert_eq!(app.register(&email, PASSWORD).await.status(), 201);
}

#[tokio::test]
async fn oversized_chunked_body_is_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();

    let chunk = format!("{:x}\r\n{}\r\n", 4096, " ".repeat(4096));
    for _ in 0..32 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
            if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}") {
                break;
            }
        }
    })
    .await;

    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
}
