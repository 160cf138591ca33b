//! A service process called directly, past the gateway (TESTPLAN A-35): the auth service run
//! as its own `evently serve --services auth` checks every token itself and never takes an
//! identity from a header such as `X-User-Id`.

mod support;

use serde_json::{Value, json};
use support::{evently, temp_dir};

#[tokio::test]
async fn a_service_called_directly_trusts_no_identity_header() {
    let dir = temp_dir();
    let mut command = evently(&dir);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--services", "auth"])
        .env("EVENTLY_AUTH__COOKIE_SECURE", "false");
    let (server, printed) = support::start(command);
    assert!(printed[0].contains("services: auth"), "{printed:?}");
    let base = &server.base;
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for email in ["a35-alice@example.com", "a35-bob@example.com"] {
        let registered: Value = http
            .post(format!("{base}/api/auth/register"))
            .json(&json!({"email": email, "password": "correct horse battery", "name": "A35"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(registered["userId"].as_str().unwrap().to_owned());
    }
    let login: Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "a35-alice@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = login["accessToken"].as_str().unwrap();
    let spoof = |request: reqwest::RequestBuilder| {
        request
            .header("X-User-Id", &ids[1])
            .header("X-User-Role", "admin")
            .header("X-Forwarded-User", &ids[1])
    };

    let bare = http
        .get(format!("{base}/api/users/profile"))
        .send()
        .await
        .unwrap();
    let spoofed = spoof(http.get(format!("{base}/api/users/profile")))
        .send()
        .await
        .unwrap();
    let with_token = spoof(http.get(format!("{base}/api/users/profile")))
        .bearer_auth(alice)
        .send()
        .await
        .unwrap();
    let promote = spoof(http.put(format!("{base}/api/users/{}/role", ids[1])))
        .bearer_auth(alice)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    let internal = spoof(http.get(format!("{base}/internal/users/{}", ids[1])))
        .bearer_auth(alice)
        .send()
        .await
        .unwrap();

    assert_eq!(bare.status(), 401);
    assert_eq!(spoofed.status(), 401);
    assert_eq!(
        spoofed.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(with_token.status(), 200);
    let profile: Value = with_token.json().await.unwrap();
    assert_eq!(
        (profile["userId"].as_str(), profile["email"].as_str()),
        (Some(ids[0].as_str()), Some("a35-alice@example.com"))
    );
    assert_eq!(promote.status(), 403);
    assert!(
        matches!(internal.status().as_u16(), 401 | 403 | 404),
        "{}",
        internal.status()
    );
    drop(server);
}
