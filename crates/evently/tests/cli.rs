//! The `evently` binary as a user runs it: `serve` on port 0 with no configuration and no
//! servers, `admin create` reading the password from standard input, `migrate`.

mod support;

use support::{admin_create, evently, temp_dir};

fn serve(dir: &std::path::Path) -> (support::Serve, Vec<String>) {
    let mut command = evently(dir);
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    support::start(command)
}

#[tokio::test]
async fn serve_with_no_configuration_runs_the_whole_auth_flow() {
    let dir = temp_dir();
    let (server, printed) = serve(&dir);
    let base = &server.base;
    let http = reqwest::Client::new();

    let register = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}))
        .send()
        .await
        .unwrap();
    let login: serde_json::Value = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().unwrap();
    let me = http
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let refreshed: serde_json::Value = http
        .post(format!("{base}/api/auth/refresh"))
        .json(&serde_json::json!({"refreshToken": login["refreshToken"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logout = http
        .post(format!("{base}/api/auth/logout"))
        .json(&serde_json::json!({"refreshToken": refreshed["refreshToken"]}))
        .send()
        .await
        .unwrap();

    assert!(
        printed[0].contains("listening on http://127.0.0.1:"),
        "{printed:?}"
    );
    assert!(printed[1].contains("/docs"), "{printed:?}");
    assert_eq!(register.status(), 201);
    assert_eq!(me.status(), 200);
    assert!(refreshed["accessToken"].is_string());
    assert_eq!(logout.status(), 204);
    // Embedded storage and a generated secret, in ./data of the working directory.
    assert!(dir.join("data/auth.db").exists());
    let secret = std::fs::read_to_string(dir.join("data/jwt-secret")).unwrap();
    assert!(secret.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("data/jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret is private to its owner");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn serve_answers_the_web_client_at_root_with_its_csp_and_cached_assets() {
    let dir = temp_dir();
    let (server, _) = serve(&dir);
    let base = &server.base;
    let http = reqwest::Client::new();

    let page = http.get(format!("{base}/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let asset = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    // More asset requests from one address than the default budget (100, bursts of 100)
    // allows: assets are served before the rate limiter.
    let mut statuses = Vec::new();
    let mut cache = String::new();
    for _ in 0..150 {
        let response = http.get(format!("{base}{asset}")).send().await.unwrap();
        statuses.push(response.status().as_u16());
        cache = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
    }

    assert!(html.contains("<h1>Find an event</h1>"), "{html}");
    assert_eq!(csp, evently_web::CSP);
    assert!(asset.starts_with("/assets/htmx-2.0.11."), "{asset}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(cache, "public, max-age=31536000, immutable");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn tokens_survive_a_restart_because_the_secret_is_kept() {
    let dir = temp_dir();
    let http = reqwest::Client::new();
    let token = {
        let (server, _) = serve(&dir);
        http.post(format!("{}/api/auth/register", server.base))
            .json(&serde_json::json!({"email": "r@example.com", "password": "correct horse battery", "name": "R"}))
            .send()
            .await
            .unwrap();
        let login: serde_json::Value = http
            .post(format!("{}/api/auth/login", server.base))
            .json(
                &serde_json::json!({"email": "r@example.com", "password": "correct horse battery"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        login["accessToken"].as_str().unwrap().to_owned()
    };

    let (server, _) = serve(&dir);
    let me = http
        .get(format!("{}/api/auth/me", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(me.status(), 200);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn admin_create_reads_the_password_from_stdin_and_the_admin_can_sign_in() {
    let dir = temp_dir();
    let output = admin_create(
        evently(&dir),
        "Root@Example.com",
        "Root",
        "a long admin password",
    );
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("root@example.com"));

    let (server, _) = serve(&dir);
    let login: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/auth/login", server.base))
        .json(
            &serde_json::json!({"email": "root@example.com", "password": "a long admin password"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(login["user"]["role"], "admin");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn admin_create_refuses_a_weak_password_and_bad_config_is_reported() {
    let dir = temp_dir();
    let weak = admin_create(evently(&dir), "x@example.com", "X", "short");
    let bad_config = evently(&dir)
        .args(["migrate"])
        .env("EVENTLY_JWT__ACCESS_TTL_SECONDS", "999999")
        .output()
        .unwrap();
    let migrate = evently(&dir).args(["migrate"]).output().unwrap();
    let unknown_service = evently(&dir)
        .args(["serve", "--services", "bogus"])
        .output()
        .unwrap();

    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8"));
    assert!(!bad_config.status.success());
    assert!(String::from_utf8_lossy(&bad_config.stderr).contains("access_ttl_seconds"));
    assert!(migrate.status.success());
    assert!(!unknown_service.status.success());
    assert!(String::from_utf8_lossy(&unknown_service.stderr).contains("valid services are: auth"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn health_exits_zero_only_when_the_server_answers() {
    let dir = temp_dir();
    let (server, _) = serve(&dir);
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    // By default it asks the configured listen address; 0.0.0.0 is reached over loopback.
    let own = evently(&dir)
        .args(["health"])
        .env("EVENTLY_LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    // Readiness comes once every store and stream has caught up.
    let ready_url = format!("{}/health/ready", server.base);
    let mut ready = evently(&dir)
        .args(["health", "--url", &ready_url])
        .output()
        .unwrap();
    for _ in 0..100 {
        if ready.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        ready = evently(&dir)
            .args(["health", "--url", &ready_url])
            .output()
            .unwrap();
    }
    let missing = evently(&dir)
        .args([
            "health",
            "--url",
            &format!("{}/health/nothing", server.base),
        ])
        .output()
        .unwrap();
    drop(server);
    let gone = evently(&dir)
        .args(["health"])
        .env("EVENTLY_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();

    assert!(own.status.success(), "{own:?}");
    assert!(String::from_utf8_lossy(&own.stdout).contains("/health/live: 200"));
    assert!(ready.status.success(), "{ready:?}");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).starts_with("unhealthy: "));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    assert!(!gone.status.success());
    let _ = std::fs::remove_dir_all(dir);
}
