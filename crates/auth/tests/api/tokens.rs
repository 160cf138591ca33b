use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evently_testkit::{TestApp, assert_problem, json, spawn_app};
use time::OffsetDateTime;

fn claims(app_user: &str, exp_offset: i64) -> serde_json::Value {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "sub": app_user, "role": "user", "iss": "evently", "aud": "evently",
        "exp": now + exp_offset, "iat": now - 600, "nbf": now - 600,
        "jti": uuid::Uuid::new_v4(), "token_use": "access"
    })
}

async fn me_status(app: &TestApp, token: &str) -> reqwest::Response {
    app.get_auth("/api/auth/me", token).await
}

#[tokio::test]
async fn expiry_is_enforced_with_at_most_30_seconds_leeway() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let keys = app.keys();

    let expired = keys.sign(&claims(&user.id, -31)).unwrap();
    let within_leeway = keys.sign(&claims(&user.id, -20)).unwrap();

    let response = me_status(&app, &expired).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"evently\""
    );
    assert_problem(response, 401).await;
    assert_eq!(me_status(&app, &within_leeway).await.status(), 200);
}

#[tokio::test]
async fn forged_and_foreign_tokens_are_refused() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let keys = app.keys();
    let good = claims(&user.id, 600);
    let mut forged = Vec::new();

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let payload = URL_SAFE_NO_PAD.encode(good.to_string());
        forged.push(format!("{header}.{payload}."));
    }
    let mut parts: Vec<String> = user.access_token.split('.').map(str::to_owned).collect();
    let mut admin = claims(&user.id, 600);
    admin["role"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(admin.to_string());
    forged.push(parts.join("."));
    for (field, value) in [
        ("iss", "someone-else"),
        ("aud", "another-service"),
        ("token_use", "refresh"),
    ] {
        let mut c = good.clone();
        c[field] = json!(value);
        forged.push(keys.sign(&c).unwrap());
    }
    for field in ["iss", "aud", "exp", "sub"] {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(field);
        forged.push(keys.sign(&c).unwrap());
    }
    let header = URL_SAFE_NO_PAD.encode(
        r#"{"alg":"HS256","typ":"JWT","kid":"../../dev/null","jku":"http://169.254.169.254/"}"#,
    );
    let body = URL_SAFE_NO_PAD.encode(good.to_string());
    forged.push(format!("{header}.{body}.AAAA"));
    forged.push(user.refresh_token.clone());
    forged.push("a.b".into());
    forged.push("x".repeat(5000));

    for token in forged {
        let response = me_status(&app, &token).await;
        assert_problem(response, 401).await;
    }
    assert_eq!(me_status(&app, &user.access_token).await.status(), 200);
}

#[tokio::test]
async fn token_in_the_query_string_is_not_accepted() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    let response = app
        .client
        .get(app.url(&format!("/api/auth/me?access_token={}", user.access_token)))
        .send()
        .await
        .unwrap();

    assert_problem(response, 401).await;
}

#[tokio::test]
async fn refresh_rotates_and_replaying_a_rotated_token_revokes_the_family() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    let first = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await;
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();
    let r2 = first["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(r2, user.refresh_token);
    assert_eq!(
        me_status(&app, first["accessToken"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let replay = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await;
    let successor = app
        .post_json("/api/auth/refresh", &json!({"refreshToken": r2}))
        .await;

    assert_problem(replay, 401).await;
    assert_problem(successor, 401).await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_never_yield_two_live_successors() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let requests = (0..20).map(|_| {
        let client = app.client.clone();
        let url = app.url("/api/auth/refresh");
        let body = json!({"refreshToken": user.refresh_token});
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            client.post(url).json(&body).send().await.unwrap()
        }
    });
    let responses = futures_join(requests).await;

    let mut successors = Vec::new();
    for r in responses {
        if r.status() == 200 {
            let body: serde_json::Value = r.json().await.unwrap();
            successors.push(body["refreshToken"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(r.status(), 401);
        }
    }
    assert_eq!(successors.len(), 1, "exactly one refresh wins");
    // The 19 losers were reuse: the family is revoked, successor included (strict policy).
    let after = app
        .post_json("/api/auth/refresh", &json!({"refreshToken": successors[0]}))
        .await;
    assert_problem(after, 401).await;
}

async fn futures_join<F: std::future::Future<Output = reqwest::Response> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<reqwest::Response> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_clears_cookies() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    let logout = app
        .post_json(
            "/api/auth/logout",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await;

    assert_eq!(logout.status(), 204);
    let cleared: Vec<_> = logout
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let refresh = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await;
    assert_problem(refresh, 401).await;
    let again = app
        .client
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 204, "logout is idempotent");
}

#[tokio::test]
async fn refresh_without_a_token_or_with_garbage_is_401() {
    let app = spawn_app().await;

    let none = app
        .client
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .unwrap();
    let garbage = app
        .post_json("/api/auth/refresh", &json!({"refreshToken": "garbage"}))
        .await;
    let wrong_shape = app
        .post_json("/api/auth/refresh", &json!({"refreshToken": 42}))
        .await;

    assert_problem(none, 401).await;
    assert_problem(garbage, 401).await;
    assert_problem(wrong_shape, 422).await;
}

/// HMAC (RFC 2104) over SHA-256 or SHA-512, to sign tokens as an attacker would.
fn hmac<D: sha2::Digest + sha2::digest::core_api::BlockSizeUser>(
    key: &[u8],
    message: &[u8],
) -> Vec<u8> {
    let block = D::block_size();
    let mut key = if key.len() > block {
        D::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    key.resize(block, 0);
    let pad = |byte: u8| key.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = D::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    D::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// A token with `header`, `claims`, signed with HMAC-SHA-256 (or SHA-512) under `key`.
fn signed(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key: &[u8],
    sha512: bool,
) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mac = if sha512 {
        hmac::<sha2::Sha512>(key, input.as_bytes())
    } else {
        hmac::<sha2::Sha256>(key, input.as_bytes())
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// A-02: only HS256 is accepted. The same secret under another HMAC algorithm, or an
/// asymmetric algorithm's name over an HMAC signature (algorithm confusion), is refused;
/// the test's own HS256 signature (same code path) is accepted, so the refusals are the
/// algorithm's.
#[tokio::test]
async fn a_token_signed_with_another_algorithm_is_refused() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let good = claims(&user.id, 600);
    let secret = evently_testkit::TEST_JWT_SECRET.as_bytes();

    let hs256 = signed(&json!({"alg": "HS256", "typ": "JWT"}), &good, secret, false);
    let hs512 = signed(&json!({"alg": "HS512", "typ": "JWT"}), &good, secret, true);
    let hs384_named = signed(&json!({"alg": "HS384", "typ": "JWT"}), &good, secret, false);
    let confused: Vec<String> = ["RS256", "ES256", "EdDSA", "PS256"]
        .iter()
        .map(|alg| signed(&json!({"alg": alg, "typ": "JWT"}), &good, secret, false))
        .collect();

    assert_eq!(me_status(&app, &hs256).await.status(), 200);
    assert_problem(me_status(&app, &hs512).await, 401).await;
    assert_problem(me_status(&app, &hs384_named).await, 401).await;
    for token in confused {
        assert_problem(me_status(&app, &token).await, 401).await;
    }
}

/// A-09, A-10: a `kid` or `jku` header never chooses the key. A token signed — validly — by
/// the attacker's own key, with headers pointing at that key, is refused; the same headers
/// on a token signed by evently's key change nothing.
#[tokio::test]
async fn kid_and_jku_headers_never_choose_the_key() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let mut admin = claims(&user.id, 600);
    admin["role"] = json!("admin");
    let attacker_key = b"the attacker's own key, published at the jku below";
    let headers = [
        json!({"alg": "HS256", "typ": "JWT", "kid": "attacker"}),
        json!({"alg": "HS256", "typ": "JWT", "kid": "../../../../dev/null"}),
        json!({"alg": "HS256", "typ": "JWT", "jku": "https://attacker.example/jwks.json"}),
        json!({"alg": "HS256", "typ": "JWT", "kid": "attacker",
               "jwk": {"kty": "oct", "k": URL_SAFE_NO_PAD.encode(attacker_key)}}),
        json!({"alg": "HS256", "typ": "JWT", "x5u": "https://attacker.example/cert.pem"}),
    ];

    for header in &headers {
        let forged = signed(header, &admin, attacker_key, false);
        // …and the empty key that a `kid` of /dev/null would read.
        let empty = signed(header, &admin, b"", false);

        assert_problem(me_status(&app, &forged).await, 401).await;
        assert_problem(me_status(&app, &empty).await, 401).await;
    }
    let ours = signed(
        &headers[0],
        &claims(&user.id, 600),
        evently_testkit::TEST_JWT_SECRET.as_bytes(),
        false,
    );
    assert_eq!(me_status(&app, &ours).await.status(), 200);
}
