//! Purchase traffic during an outage of something off the purchase path (Redis, NATS):
//! buyers loop hold → intent → confirm → purchase, and every answer is recorded with the
//! phase (before, during, after the cut) it was sent in.

#![expect(clippy::unwrap_used, reason = "the outage fixtures fail loudly")]

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::purchase_body;
use evently_testkit::TestApp;

/// What the clients wait before calling a request hung.
const HUNG: Duration = Duration::from_secs(20);

/// The phases of the run, in order.
pub const BEFORE: usize = 0;
pub const DURING: usize = 1;
pub const AFTER: usize = 2;

/// A purchase's answer, with the phase it was sent in.
#[derive(Debug, Clone)]
pub struct Answer {
    pub phase: usize,
    pub step: &'static str,
    pub status: u16,
    pub elapsed: Duration,
}

/// A buyer's hold → intent → confirm → purchase loop until `stop`.
pub async fn buyer(
    app: &TestApp,
    token: &str,
    event: &str,
    phase: &AtomicUsize,
    stop: &AtomicBool,
    seen: &Mutex<Vec<Answer>>,
) {
    let client = reqwest::Client::builder().timeout(HUNG).build().unwrap();
    let post = async |step: &'static str, path: &str, body: Value, key: Option<String>| {
        let now = phase.load(Ordering::SeqCst);
        let sent = Instant::now();
        let mut request = client.post(app.url(path)).bearer_auth(token).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{step} got no answer (a hang or a cut): {e}"));
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        seen.lock().unwrap().push(Answer {
            phase: now,
            step,
            status,
            elapsed: sent.elapsed(),
        });
        (status, body)
    };
    while !stop.load(Ordering::Relaxed) {
        let (status, hold) = post(
            "hold",
            "/api/orders/holds",
            json!({"eventId": event, "quantity": 1}),
            None,
        )
        .await;
        if status != 201 {
            continue;
        }
        let (status, intent) = post(
            "intent",
            "/api/orders/payments/intent",
            json!({"holdId": hold["holdId"]}),
            None,
        )
        .await;
        if status != 201 {
            continue;
        }
        let (status, _) = post(
            "confirm",
            "/api/orders/payments/confirm",
            json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]}),
            None,
        )
        .await;
        if status != 200 {
            continue;
        }
        let body = purchase_body(event, &hold, intent["paymentIntentId"].as_str().unwrap());
        post(
            "purchase",
            "/api/orders/purchase",
            body,
            Some(uuid::Uuid::now_v7().to_string()),
        )
        .await;
    }
}

/// Buyers running [`buyer`] loops on their own tasks, and the phase their answers are
/// recorded under.
pub struct Traffic {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    /// One buyer per token, buying at `event`, from phase [`BEFORE`].
    pub fn start(
        app: &Arc<TestApp>,
        tokens: impl IntoIterator<Item = String>,
        event: &str,
    ) -> Self {
        let phase = Arc::new(AtomicUsize::new(BEFORE));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tasks = tokens
            .into_iter()
            .map(|token| {
                let (app, phase, stop, seen) =
                    (app.clone(), phase.clone(), stop.clone(), seen.clone());
                let event = event.to_owned();
                tokio::spawn(async move { buyer(&app, &token, &event, &phase, &stop, &seen).await })
            })
            .collect();
        Self {
            phase,
            stop,
            seen,
            tasks,
        }
    }

    /// Answers from now on count as sent in `phase`.
    pub fn enter(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Stops the buyers after their current step; every answer they saw.
    pub async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.seen.lock().unwrap().clone()
    }
}
