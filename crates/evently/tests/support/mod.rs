//! Running the real `evently` binary as a child process.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]
#![allow(
    clippy::unwrap_used,
    reason = "test support: a failed call fails the test that made it"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `evently serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `evently` binary in `dir`, with cheap hashing set through the documented variables
/// (never the default) and quiet logs.
pub fn evently(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_evently"));
    command
        .current_dir(dir)
        .env_remove("EVENTLY_DATABASE_URL")
        .env_remove("EVENTLY_REDIS_URL")
        .env("EVENTLY_LOG", "warn")
        .env("EVENTLY_AUTH__PASSWORD__MEMORY_KIB", "256")
        .env("EVENTLY_AUTH__PASSWORD__ITERATIONS", "1");
    command
}

/// Starts `command` (an `evently serve …`) and waits for its "listening on" line. Its
/// standard error is read and dropped, except when it stops before that line: the test then
/// fails with the last of what it wrote there.
pub fn start(mut command: Command) -> (Serve, Vec<String>) {
    command.stderr(Stdio::piped());
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("evently starts");
    let stderr = child.stderr.take().expect("stderr");
    let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let reader = {
        let tail = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut tail = tail.lock().unwrap();
                if tail.len() == 40 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        })
    };
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (first, second) = (lines.next(), lines.next());
    let (Some(Ok(first)), Some(Ok(second))) = (first, second) else {
        let _ = child.wait();
        let _ = reader.join();
        let said: Vec<String> = tail.lock().unwrap().iter().cloned().collect();
        panic!(
            "evently stopped before its first two lines; its standard error:\n{}",
            said.join("\n")
        );
    };
    (serve_at(child, &first), vec![first, second])
}

/// The running `child` at the address its first line names.
fn serve_at(child: Child, first: &str) -> Serve {
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an address")
        .to_owned();
    Serve { child, base }
}

/// [`start`], with standard error wherever `command` already sends it.
pub fn start_with_stderr(mut command: Command) -> (Serve, Vec<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("evently starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("readable");
    let second = lines.next().expect("a second line").expect("readable");
    (serve_at(child, &first), vec![first, second])
}

/// Runs `command` (an `evently` configured for its deployment) as
/// `admin create --email <email> --name <name>`, writing `password` to its standard input.
pub fn admin_create(
    mut command: Command,
    email: &str,
    name: &str,
    password: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .args(["admin", "create", "--email", email, "--name", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evently starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("the password is written");
    child.wait_with_output().expect("evently exits")
}

/// A fresh directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("evently-proc-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The password of every account the flows below create.
pub const PASSWORD: &str = "correct horse battery";

/// What [`sell_two_seats`] bought.
pub struct Sale {
    pub event_id: String,
    pub order_id: String,
    /// The event's organizer's access token.
    pub organizer: String,
}

/// A whole sale through gateways `a` and `b`, alternating between them, as people would make
/// it: an admin (created by running `admin`, an `evently` command configured like the auth
/// service, as `admin create`) makes a registered user an organizer; the organizer creates a
/// venue and an on-sale event ("Harbour Lights Festival", four seats, EUR 40); a buyer holds
/// two seats (retrying while booking has not yet heard of the event), pays and purchases.
pub async fn sell_two_seats(a: &str, b: &str, admin: Command) -> Sale {
    let output = admin_create(admin, "root@example.com", "Root", PASSWORD);
    assert!(output.status.success(), "{output:?}");

    let http = reqwest::Client::new();
    let login = async |base: &str, email: &str| -> String {
        let reply: serde_json::Value = http
            .post(format!("{base}/api/auth/login"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["accessToken"].as_str().expect("a token").to_owned()
    };
    let call = async |request: reqwest::RequestBuilder, status: u16| -> serde_json::Value {
        let reply = request.send().await.unwrap();
        let got = reply.status().as_u16();
        let body: serde_json::Value = reply.json().await.unwrap_or_default();
        assert_eq!(got, status, "{body}");
        body
    };
    let admin = login(a, "root@example.com").await;
    let organizer = call(
        http.post(format!("{b}/api/auth/register"))
            .json(&serde_json::json!(
                {"email": "organizer@example.com", "password": PASSWORD, "name": "Org"}
            )),
        201,
    )
    .await;
    call(
        http.put(format!(
            "{a}/api/users/{}/role",
            organizer["userId"].as_str().unwrap()
        ))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"role": "organizer"})),
        200,
    )
    .await;
    let organizer = login(b, "organizer@example.com").await;
    let venue = call(
        http.post(format!("{a}/api/venues"))
            .bearer_auth(&organizer)
            .json(&serde_json::json!({
                "name": "Harbour Hall", "address": "1 Harbour Road", "city": "Lisbon",
                "layout": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 4}]}]}
            })),
        201,
    )
    .await;
    let now = time::OffsetDateTime::now_utc();
    let at = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let event = call(
        http.post(format!("{b}/api/events"))
            .bearer_auth(&organizer)
            .json(&serde_json::json!({
                "eventName": "Harbour Lights Festival",
                "eventDate": at(now + time::Duration::days(20)),
                "venueId": venue["venueId"],
                "totalSeats": 4,
                "status": "ON_SALE",
                "saleStartTime": at(now),
                "eventType": "festival",
                "basePrice": 4_000,
                "currency": "EUR",
            })),
        201,
    )
    .await;
    let event_id = event["eventId"].as_str().unwrap().to_owned();

    call(
        http.post(format!("{a}/api/auth/register"))
            .json(&serde_json::json!(
                {"email": "buyer@example.com", "password": PASSWORD, "name": "Buyer"}
            )),
        201,
    )
    .await;
    let buyer = login(a, "buyer@example.com").await;
    // Booking learns of the event through NATS.
    let mut hold = serde_json::Value::Null;
    for _ in 0..100 {
        let reply = http
            .post(format!("{a}/api/orders/holds"))
            .bearer_auth(&buyer)
            .json(&serde_json::json!({"eventId": event_id, "quantity": 2}))
            .send()
            .await
            .unwrap();
        if reply.status() == 201 {
            hold = reply.json().await.unwrap();
            break;
        }
        assert_eq!(
            reply.status(),
            404,
            "only an unknown event may refuse the hold"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hold_id = hold["holdId"].as_str().expect("a hold").to_owned();
    let intent = call(
        http.post(format!("{b}/api/orders/payments/intent"))
            .bearer_auth(&buyer)
            .json(&serde_json::json!({"holdId": hold_id})),
        201,
    )
    .await;
    let confirm = call(
        http.post(format!("{a}/api/orders/payments/confirm"))
            .bearer_auth(&buyer)
            .json(&serde_json::json!({
                "paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]
            })),
        200,
    )
    .await;
    assert_eq!(confirm["status"], "succeeded");
    let order = call(
        http.post(format!("{b}/api/orders/purchase"))
            .bearer_auth(&buyer)
            .header("Idempotency-Key", "compose-order-1")
            .json(&serde_json::json!({
                "eventId": event_id, "holdId": hold_id, "seatIds": hold["seatIds"],
                "paymentIntentId": intent["paymentIntentId"],
            })),
        201,
    )
    .await;
    assert_eq!(order["tickets"].as_array().map(Vec::len), Some(2));
    let order_id = order["orderId"].as_str().expect("an order").to_owned();
    call(
        http.get(format!("{a}/api/orders/{order_id}"))
            .bearer_auth(&buyer),
        200,
    )
    .await;

    Sale {
        event_id,
        order_id,
        organizer,
    }
}

/// Creates database `name` next to the one `url` names and returns its URL: processes that
/// share fixed schemas (their outboxes, relays and consumers) need a database of their own per
/// test, or one test's relay publishes another's rows.
pub async fn fresh_database(url: &str, name: &str) -> String {
    let pool = sqlx::PgPool::connect(url).await.expect("PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("a database");
    pool.close().await;
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{name}")
}

/// Drops database `name` (closing its connections).
pub async fn drop_database(url: &str, name: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
    }
}
