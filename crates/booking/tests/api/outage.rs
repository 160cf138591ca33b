//! PostgreSQL going away under traffic (TESTPLAN F-08, F-09), on a database of the test's
//! own: through a TCP proxy the test cuts (the shared server is never stopped), and by
//! terminating the database's connections with `pg_terminate_backend` mid-purchase.
//!
//! While the database is away every request answers — 503 problem+json with `Retry-After`
//! where it needed the database, never a 500 and never a hang — readiness fails and liveness
//! holds; once it is back the same process serves again, and a purchase retried with its key
//! makes one order.

#![expect(clippy::unwrap_used, reason = "the outage fixtures fail loudly")]

use reqwest::Response;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use evently_testkit::proxy::{TcpProxy, target_of, through};
use evently_testkit::{FreshDatabase, TestApp};

/// The pool's acquire timeout in these tests: a request that needs the database answers
/// 503 once it has waited this long for a connection.
const ACQUIRE_SECONDS: u64 = 2;
/// What the clients wait before calling a request hung: well past the acquire timeout, so
/// only a request that would never answer reaches it.
const HUNG: Duration = Duration::from_secs(20);

/// One answer seen during the outage.
#[derive(Debug, Clone)]
struct Seen {
    what: &'static str,
    status: u16,
    retry_after: bool,
    problem: bool,
    elapsed: Duration,
}

async fn observe(what: &'static str, sent: Instant, response: Response) -> Seen {
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let _ = response.bytes().await;
    Seen {
        what,
        status,
        retry_after,
        problem,
        elapsed: sent.elapsed(),
    }
}

/// A buyer's purchase steps in a loop, every answer recorded, until `stop`.
async fn buyer_traffic(
    app: &TestApp,
    token: &str,
    event: &str,
    stop: &std::sync::atomic::AtomicBool,
    seen: &Mutex<Vec<Seen>>,
) {
    let client = reqwest::Client::builder().timeout(HUNG).build().unwrap();
    let record = |s: Seen| seen.lock().unwrap().push(s);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let sent = Instant::now();
        let hold = client
            .post(app.url("/api/orders/holds"))
            .bearer_auth(token)
            .json(&json!({"eventId": event, "quantity": 1}))
            .send()
            .await
            .expect("the hold request answers (no hang)");
        let hold_status = hold.status().as_u16();
        if hold_status != 201 {
            record(observe("hold", sent, hold).await);
            let sent = Instant::now();
            let seats = client
                .get(app.url(&format!("/api/orders/seats/{event}")))
                .send()
                .await
                .expect("the seat map answers (no hang)");
            record(observe("seat map", sent, seats).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let hold: Value = hold.json().await.unwrap();
        let sent = Instant::now();
        let intent = client
            .post(app.url("/api/orders/payments/intent"))
            .bearer_auth(token)
            .json(&json!({"holdId": hold["holdId"]}))
            .send()
            .await
            .expect("the intent request answers (no hang)");
        if intent.status() != 201 {
            record(observe("intent", sent, intent).await);
            continue;
        }
        let intent: Value = intent.json().await.unwrap();
        let sent = Instant::now();
        let confirm = client
            .post(app.url("/api/orders/payments/confirm"))
            .bearer_auth(token)
            .json(&json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]}))
            .send()
            .await
            .expect("the confirmation answers (no hang)");
        if confirm.status() != 200 {
            record(observe("confirm", sent, confirm).await);
            continue;
        }
        let body = purchase_body(event, &hold, intent["paymentIntentId"].as_str().unwrap());
        let sent = Instant::now();
        let bought = client
            .post(app.url("/api/orders/purchase"))
            .bearer_auth(token)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .json(&body)
            .send()
            .await
            .expect("the purchase answers (no hang)");
        record(observe("purchase", sent, bought).await);
    }
}

/// F-08: the database's connections cut and new ones refused during traffic: clean 503s,
/// readiness down and liveness up; then back without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_the_same_process_recovers_on_postgres() {
    let Some(server) = evently_testkit::postgres_url() else {
        evently_testkit::skip(
            "a_database_outage_answers_503_and_the_same_process_recovers_on_postgres",
            "EVENTLY_TEST_POSTGRES_URL",
        );
        return;
    };
    let database = FreshDatabase::create(&server).await;
    let proxy = TcpProxy::start(target_of(&database.url)).await;
    let proxied = through(&database.url, proxy.addr());
    let app = evently_testkit::spawn_app_with(|c| {
        c.database.url = Some(secrecy::SecretString::from(proxied));
        c.database.acquire_timeout_seconds = ACQUIRE_SECONDS;
    })
    .await;
    let sale = on_sale(&app, Seating::General { capacity: 500 }).await;
    let event = sale.event_id.as_str();
    let users = buyers(&app, 4).await;
    buy_one(&app, &users[0].access_token, event).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Arc::new(app);
    let traffic: Vec<_> = users
        .iter()
        .map(|user| {
            let (app, stop, seen) = (app.clone(), stop.clone(), seen.clone());
            let (token, event) = (user.access_token.clone(), event.to_owned());
            tokio::spawn(async move { buyer_traffic(&app, &token, &event, &stop, &seen).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.cut();
    let cut_at = Instant::now();
    seen.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_secs(ACQUIRE_SECONDS + 2)).await;
    let ready = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    let ready_status = ready.status().as_u16();
    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let live_status = live.status().as_u16();
    let during: Vec<Seen> = seen.lock().unwrap().clone();
    proxy.restore();
    let outage = cut_at.elapsed();

    // The same process serves again, by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = app
            .client
            .get(app.url("/health/ready"))
            .send()
            .await
            .unwrap();
        if ready.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready again after the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in traffic {
        task.await.unwrap();
    }
    buy_one(&app, &users[1].access_token, event).await;

    assert_eq!(ready_status, 503, "readiness during the outage");
    assert_eq!(live_status, 200, "liveness during the outage");
    let unavailable: Vec<&Seen> = during.iter().filter(|s| s.status == 503).collect();
    assert!(
        !unavailable.is_empty(),
        "no request met the outage: {during:?}"
    );
    for s in &during {
        assert!(
            s.status < 500 || s.status == 503,
            "{} answered {} during the outage",
            s.what,
            s.status
        );
        if s.status == 503 {
            assert!(s.retry_after && s.problem, "{s:?}");
        }
    }
    let slowest = during.iter().map(|s| s.elapsed).max().unwrap_or_default();
    eprintln!(
        "outage of {outage:?}: {} answers, {} of them 503; slowest answer {slowest:?} \
         (pool acquire timeout {ACQUIRE_SECONDS} s)",
        during.len(),
        unavailable.len()
    );
    let audit = crate::support::audit(&app, event).await;
    assert!(audit.is_sound(), "{audit:?}");
}

/// Hold, pay and buy one place, retrying each step the database refuses for now (503).
async fn buy_one(app: &TestApp, token: &str, event: &str) -> Value {
    let hold = ok_json(hold_quantity(app, token, event, 1).await, 201).await;
    let intent = pay(app, token, hold["holdId"].as_str().unwrap()).await;
    ok_json(
        purchase(
            app,
            token,
            &uuid::Uuid::now_v7().to_string(),
            &purchase_body(event, &hold, &intent),
        )
        .await,
        201,
    )
    .await
}

/// F-09: every connection of the database terminated while purchases run; each purchase is
/// retried with its key until it answers 201 (never a 500 on the way), and each key made one
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_retried_after_their_connections_are_terminated_make_one_order_each_on_postgres()
{
    let Some(server) = evently_testkit::postgres_url() else {
        evently_testkit::skip(
            "purchases_retried_after_their_connections_are_terminated_make_one_order_each_on_postgres",
            "EVENTLY_TEST_POSTGRES_URL",
        );
        return;
    };
    let database = FreshDatabase::create(&server).await;
    let url = database.url.clone();
    let app = evently_testkit::spawn_app_with(|c| {
        c.database.url = Some(secrecy::SecretString::from(url));
        c.database.acquire_timeout_seconds = ACQUIRE_SECONDS;
    })
    .await;
    let sale = on_sale(&app, Seating::General { capacity: 100 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = '{}' AND pid <> pg_backend_pid()",
        database.name()
    );
    let mut admin = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&server).await.unwrap()
    };
    let mut orders = std::collections::BTreeSet::new();
    let (mut terminated, mut refused) = (0i64, 0);

    for _ in 0..8 {
        let hold = loop {
            let r = hold_quantity(&app, &buyer.access_token, event, 1).await;
            if r.status() == 201 {
                break r.json::<Value>().await.unwrap();
            }
            assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
        };
        let intent = pay(&app, &buyer.access_token, hold["holdId"].as_str().unwrap()).await;
        let body = purchase_body(event, &hold, &intent);
        let key = uuid::Uuid::now_v7().to_string();
        let kill = sqlx::query(sqlx::AssertSqlSafe(terminate.clone()));
        let (first, killed) = tokio::join!(
            purchase(&app, &buyer.access_token, &key, &body),
            kill.fetch_one(&mut admin)
        );
        terminated += sqlx::Row::get::<i64, _>(&killed.unwrap(), "n");
        let mut answer = first;
        let order = loop {
            let status = answer.status().as_u16();
            let text = answer.text().await.unwrap();
            match status {
                201 => break serde_json::from_str::<Value>(&text).unwrap()["orderId"].clone(),
                503 | 409 => {
                    // 503 while the pool reconnects; 409 while the key's lease is held by
                    // the request whose connection was cut.
                    assert!(
                        status == 503 || text.contains("request-in-flight"),
                        "{status} {text}"
                    );
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    answer = purchase(&app, &buyer.access_token, &key, &body).await;
                }
                _ => panic!("a purchase whose connection was terminated answered {status}: {text}"),
            }
        };
        let replay = ok_json(purchase(&app, &buyer.access_token, &key, &body).await, 201).await;
        assert_eq!(replay["orderId"], order);
        assert!(
            orders.insert(order.to_string()),
            "two keys answered one order"
        );
    }

    eprintln!("{terminated} connections terminated, {refused} retried answers");
    assert_eq!(order_count(&app, &buyer.access_token).await, 8);
    let audit = crate::support::audit(&app, event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(audit.orders, 8);
}
