use evently_testkit::{
    ServiceName, TEST_INTERNAL_TOKEN, assert_problem, json, spawn_app, spawn_services,
};

#[tokio::test]
async fn profile_can_be_read_and_partially_updated() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    let put = app
        .client
        .put(app.url("/api/users/profile"))
        .bearer_auth(&user.access_token)
        .json(&json!({"name": "New Name", "phone": "+1 555 010 9999"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let cleared = app
        .client
        .put(app.url("/api/users/profile"))
        .bearer_auth(&user.access_token)
        .json(&json!({"phone": null}))
        .send()
        .await
        .unwrap();
    let profile: serde_json::Value = app
        .get_auth("/api/users/profile", &user.access_token)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(cleared.status(), 200);
    assert_eq!(profile["name"], "New Name");
    assert!(profile.get("phone").is_none());
}

#[tokio::test]
async fn profile_update_cannot_touch_email_or_role() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;

    for body in [
        json!({"role": "admin"}),
        json!({"email": "other@example.com"}),
        json!({"name": "X", "isActive": false}),
        json!({"phone": "not a phone"}),
        json!({"name": ""}),
    ] {
        let response = app
            .client
            .put(app.url("/api/users/profile"))
            .bearer_auth(&user.access_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 422).await;
    }
    let me: serde_json::Value = app
        .get_auth("/api/auth/me", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");
    assert_eq!(me["email"], user.email);
    assert_eq!(me["name"], "Test User");
}

#[tokio::test]
async fn protected_routes_need_a_token() {
    let app = spawn_app().await;

    for (method, path) in [
        ("GET", "/api/auth/me"),
        ("GET", "/api/users/profile"),
        ("PUT", "/api/users/profile"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_problem(response, 401).await;
    }
}

#[tokio::test]
async fn a_user_cannot_change_any_role_including_their_own() {
    let app = spawn_app().await;
    let user = app.signed_in_user().await;
    let other = app.signed_in_user().await;

    for target in [&user.id, &other.id] {
        let response = app
            .client
            .put(app.url(&format!("/api/users/{target}/role")))
            .bearer_auth(&user.access_token)
            .json(&json!({"role": "admin"}))
            .send()
            .await
            .unwrap();
        assert_problem(response, 403).await;
    }
    let me: serde_json::Value = app
        .get_auth("/api/auth/me", &user.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "user");
}

#[tokio::test]
async fn an_admin_changes_roles_and_the_next_refresh_carries_it() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let user = app.signed_in_user().await;

    let promote = app
        .client
        .put(app.url(&format!("/api/users/{}/role", user.id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "organizer"}))
        .send()
        .await
        .unwrap();
    let own = app
        .client
        .put(app.url(&format!("/api/users/{}/role", admin.id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "user"}))
        .send()
        .await
        .unwrap();
    let unknown = app
        .client
        .put(app.url(&format!("/api/users/{}/role", uuid::Uuid::now_v7())))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "organizer"}))
        .send()
        .await
        .unwrap();
    let bad_role = app
        .client
        .put(app.url(&format!("/api/users/{}/role", user.id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "superuser"}))
        .send()
        .await
        .unwrap();
    let bad_id = app
        .client
        .put(app.url("/api/users/not-a-uuid/role"))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "organizer"}))
        .send()
        .await
        .unwrap();

    assert_eq!(promote.status(), 200);
    assert_problem(own, 403).await;
    assert_problem(unknown, 404).await;
    assert_problem(bad_role, 422).await;
    assert_problem(bad_id, 400).await;
    let refreshed: serde_json::Value = app
        .post_json(
            "/api/auth/refresh",
            &json!({"refreshToken": user.refresh_token}),
        )
        .await
        .json()
        .await
        .unwrap();
    let claims = app
        .keys()
        .verify(refreshed["accessToken"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.role, evently_core::identity::Role::Organizer);
}

#[tokio::test]
async fn internal_routes_need_the_service_credential() {
    // The auth service on its own, as another service would call it (the gateway never
    // forwards /internal/*).
    let app = spawn_services(&[ServiceName::Auth], |_| {}).await;
    let user = app.signed_in_user().await;

    let anonymous = app
        .post_json(
            "/internal/auth/verify",
            &json!({"token": user.access_token}),
        )
        .await;
    let wrong = app
        .client
        .get(app.url(&format!("/internal/users/{}", user.id)))
        .header("x-internal-token", "guess")
        .send()
        .await
        .unwrap();
    let verified = app
        .client
        .post(app.url("/internal/auth/verify"))
        .header("x-internal-token", TEST_INTERNAL_TOKEN)
        .json(&json!({"token": user.access_token}))
        .send()
        .await
        .unwrap();
    let looked_up = app
        .client
        .get(app.url(&format!("/internal/users/{}", user.id)))
        .header("x-internal-token", TEST_INTERNAL_TOKEN)
        .send()
        .await
        .unwrap();
    let bad_token = app
        .client
        .post(app.url("/internal/auth/verify"))
        .header("x-internal-token", TEST_INTERNAL_TOKEN)
        .json(&json!({"token": "nope"}))
        .send()
        .await
        .unwrap();

    assert_problem(anonymous, 404).await;
    assert_problem(wrong, 404).await;
    assert_eq!(verified.status(), 200);
    let verified: serde_json::Value = verified.json().await.unwrap();
    assert_eq!(verified["userId"], user.id);
    assert_eq!(verified["role"], "user");
    assert_eq!(looked_up.status(), 200);
    assert_problem(bad_token, 401).await;
}

#[tokio::test]
async fn an_admin_lists_users_by_prefix_and_role_a_page_at_a_time() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let stem = format!("zz{}", uuid::Uuid::new_v4().simple());
    let mut mine = Vec::new();
    for i in 0..3 {
        let email = format!("{stem}-{i}@example.com");
        assert_eq!(
            app.register(&email, evently_testkit::PASSWORD)
                .await
                .status(),
            201
        );
        mine.push(email);
    }
    let buyer = app.signed_in_user().await;
    let list = |query: String| {
        let (app, token) = (&app, admin.access_token.clone());
        async move {
            let r = app.get_auth(&format!("/api/users?{query}"), &token).await;
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };

    // Two pages of two by the email prefix (upper case matches too), in id order.
    let first = list(format!("q={}&limit=2", stem.to_uppercase())).await;
    let after = first["nextAfter"].as_str().unwrap().to_owned();
    let second = list(format!("q={stem}&limit=2&after={after}")).await;
    let emails: Vec<&str> = first["users"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["users"].as_array().unwrap())
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "{first} {second}");
    assert!(mine.iter().all(|e| emails.contains(&e.as_str())));
    assert!(second.get("nextAfter").is_none(), "{second}");
    let ids: Vec<&str> = first["users"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["users"].as_array().unwrap())
        .map(|u| u["userId"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(first["users"][0]["active"], true);
    assert_eq!(first["users"][0]["role"], "user");

    // The role filter; a `%` in q is a character, not a wildcard.
    let admins = list("role=admin&limit=100".into()).await;
    assert!(
        admins["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["role"] == "admin")
    );
    assert!(
        admins["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["userId"] == admin.id)
    );
    let wild = list("q=%25".into()).await;
    assert_eq!(wild["users"].as_array().unwrap().len(), 0, "{wild}");

    // Buyers may not list; strangers must sign in; bad parameters are named.
    let refused = app.get_auth("/api/users", &buyer.access_token).await;
    assert_problem(refused, 403).await;
    let anonymous = app.client.get(app.url("/api/users")).send().await.unwrap();
    assert_problem(anonymous, 401).await;
    for (query, field) in [
        ("role=root", "role"),
        ("role=", "role"),
        ("after=nope", "after"),
        ("after=", "after"),
        ("q=a%0Ab", "q"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
    ] {
        let r = app
            .get_auth(&format!("/api/users?{query}"), &admin.access_token)
            .await;
        assert_eq!(r.status(), 422, "{query}");
        let problem = assert_problem(r, 422).await;
        assert_eq!(problem["errors"][0]["pointer"], field, "{query}: {problem}");
    }
}

#[tokio::test]
async fn many_users_are_looked_up_at_once_with_the_service_credential() {
    let app = spawn_services(&[ServiceName::Auth], |_| {}).await;
    let first = app.signed_in_user().await;
    let second = app.signed_in_user().await;
    let lookup = |body: serde_json::Value, token: Option<&'static str>| {
        let mut request = app.client.post(app.url("/internal/users/lookup"));
        if let Some(token) = token {
            request = request.header("x-internal-token", token);
        }
        request.json(&body).send()
    };
    let unknown = uuid::Uuid::now_v7().to_string();

    let found = lookup(
        json!({"ids": [first.id, unknown, second.id, first.id]}),
        Some(TEST_INTERNAL_TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(found.status(), 200);
    let found: serde_json::Value = found.json().await.unwrap();
    let mut users: Vec<(String, String)> = found["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["name"], "Test User");
            // How to name and reach them, nothing more (no role, phone or dates).
            let mut fields: Vec<&String> = u.as_object().unwrap().keys().collect();
            fields.sort();
            assert_eq!(fields, ["email", "name", "userId"]);
            (
                u["userId"].as_str().unwrap().to_owned(),
                u["email"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    users.sort();
    let mut expected = vec![
        (first.id.clone(), first.email.clone()),
        (second.id.clone(), second.email.clone()),
    ];
    expected.sort();
    assert_eq!(users, expected);

    // Without the credential the route is not there; beyond 1,000 ids, or with ids that
    // are not ids, the lookup is refused.
    let ids: Vec<String> = (0..1_000)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    assert_problem(lookup(json!({"ids": [first.id]}), None).await.unwrap(), 404).await;
    assert_problem(
        lookup(json!({"ids": [first.id]}), Some("guess"))
            .await
            .unwrap(),
        404,
    )
    .await;
    let most = lookup(json!({"ids": ids}), Some(TEST_INTERNAL_TOKEN))
        .await
        .unwrap();
    assert_eq!(most.status(), 200);
    let mut too_many = ids.clone();
    too_many.push(first.id.clone());
    assert_problem(
        lookup(json!({"ids": too_many}), Some(TEST_INTERNAL_TOKEN))
            .await
            .unwrap(),
        422,
    )
    .await;
    assert_problem(
        lookup(json!({"ids": ["nope"]}), Some(TEST_INTERNAL_TOKEN))
            .await
            .unwrap(),
        422,
    )
    .await;
}
