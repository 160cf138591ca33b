use evently_testkit::{assert_problem, spawn_app};

#[tokio::test]
async fn live_ready_and_metrics_answer() {
    let app = spawn_app().await;

    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    let _ = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();

    assert_eq!(live.status(), 200);
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["auth-store"]["status"], "up");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("evently_http_requests_total"), "{text}");
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let app = spawn_app().await;

    let given = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    let generated = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let hostile = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "<script>alert(1)</script>")
        .send()
        .await
        .unwrap();

    assert_eq!(given.headers()["x-request-id"], "abc-123");
    assert_eq!(generated.headers()["x-request-id"].len(), 36);
    assert_ne!(
        hostile.headers()["x-request-id"],
        "<script>alert(1)</script>"
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = spawn_app().await;

    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    let wrong_method = app
        .client
        .delete(app.url("/api/auth/login"))
        .send()
        .await
        .unwrap();

    assert_problem(missing, 404).await;
    assert!(wrong_method.headers().contains_key("allow"));
    assert_problem(wrong_method, 405).await;
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;

    for response in [
        app.client
            .get(app.url("/health/live"))
            .send()
            .await
            .unwrap(),
        app.client.get(app.url("/nope")).send().await.unwrap(),
        app.client
            .get(app.url("/api/auth/me"))
            .send()
            .await
            .unwrap(),
    ] {
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert!(h.contains_key("referrer-policy"));
        assert!(!h.contains_key("server"));
    }
}

#[tokio::test]
async fn openapi_lists_every_auth_endpoint_with_schemas() {
    let app = spawn_app().await;

    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/auth/register", "post"),
        ("/api/auth/signup", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/users/profile", "get"),
        ("/api/users/profile", "put"),
        ("/api/users/{userId}/role", "put"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "RegisterRequest",
        "LoginRequest",
        "LoginResponse",
        "RefreshRequest",
        "RefreshResponse",
        "UserResponse",
        "UpdateProfileRequest",
        "SetRoleRequest",
        "Problem",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema} missing");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // The service-to-service routes keep a document of their own, served at
    // /internal/openapi.json by the process that runs auth (never through the gateway).
    assert!(paths.keys().all(|path| !path.starts_with("/internal")));
    let internal =
        serde_json::to_value(<evently_auth::AuthInternalApi as utoipa::OpenApi>::openapi())
            .unwrap();
    assert!(internal["paths"]["/internal/auth/verify"]["post"].is_object());
    assert!(internal["paths"]["/internal/users/{userId}"]["get"].is_object());
    assert!(internal["paths"]["/internal/users/lookup"]["post"]["responses"]["422"].is_object());
}

#[tokio::test]
async fn docs_are_served_from_the_binary() {
    let app = spawn_app().await;

    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger"));
    let bundle = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
}

#[tokio::test]
async fn every_internal_route_is_in_the_served_internal_document() {
    let app = evently_testkit::spawn_services(&[evently_testkit::ServiceName::Auth], |_| {}).await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/internal/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = evently_testkit::internal_routes(include_str!("../../src/http/mod.rs"));
    assert!(routes.contains(&("post".to_owned(), "/internal/users/lookup".to_owned())));
    let own = serde_json::to_value(<evently_auth::AuthInternalApi as utoipa::OpenApi>::openapi())
        .unwrap();
    evently_testkit::assert_internal_doc(&own, &doc, &routes);
}
