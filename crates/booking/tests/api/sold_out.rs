//! Holds on a fully sold event, refused by the gateway before it checks the caller (embedded
//! SQLite, where the process sees every seat freed): the answer is the one every buyer gets,
//! anything the refusal is not certain of takes the usual path, and the refusals stop before
//! a freed seat can be seen.
#![expect(clippy::unwrap_used, reason = "a refusal that goes wrong fails loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use evently_testkit::TestApp;
use serde_json::{Value, json};

use crate::support::*;

/// A signed-in buyer's token with its signature changed: a credential, but not a valid one.
fn forged(token: &str) -> String {
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped: String = signature
        .chars()
        .enumerate()
        .map(|(i, c)| match (i, c) {
            (4, 'a') => 'b',
            (4, _) => 'a',
            (_, c) => c,
        })
        .collect();
    format!("{rest}.{flipped}")
}

async fn cancel(app: &TestApp, token: &str, order: &Value) {
    let path = format!("/api/orders/{}/cancel", order["orderId"].as_str().unwrap());
    let cancelled = ok_json(send(app, "POST", &path, token, None).await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fully_sold_event_refuses_holds_before_the_caller_is_checked() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::General { capacity: 2 }).await;
    let event = sale.event_id.as_str();
    let (alice, bob) = (app.signed_in_user().await, app.signed_in_user().await);
    let order = buy_quantity(&app, &alice.access_token, event, 2).await;
    // A buyer's refused hold reads the store and finds the event fully sold.
    let refused = assert_problem_type(
        hold_quantity(&app, &bob.access_token, event, 1).await,
        409,
        "sold-out",
    )
    .await;
    assert_eq!(refused["available"], 0);

    // From now on the answer comes before the token is checked: the same for a forged token,
    // which would otherwise be 401.
    let bad = forged(&bob.access_token);
    let early =
        assert_problem_type(hold_quantity(&app, &bad, event, 1).await, 409, "sold-out").await;
    assert_eq!(early["available"], 0);
    assert_eq!(early["status"], 409);
    let junk = assert_problem_type(
        hold_quantity(&app, "not-a-token", event, 2).await,
        409,
        "sold-out",
    )
    .await;
    assert_eq!(junk["available"], 0);

    // What it is not certain of takes the usual path: no credential, bad input, named seats,
    // an unknown event.
    let anonymous = app
        .client
        .post(app.url("/api/orders/holds"))
        .json(&json!({"eventId": event, "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_problem_type(anonymous, 401, "unauthorized").await;
    assert_problem_type(
        hold_quantity(&app, &bad, event, 0).await,
        401,
        "unauthorized",
    )
    .await;
    let too_many = hold_quantity(&app, &bob.access_token, event, 11).await;
    assert_eq!(too_many.status().as_u16(), 422);
    let named = assert_problem_type(
        hold_seats(&app, &bob.access_token, event, &["GA-1"]).await,
        409,
        "seats-unavailable",
    )
    .await;
    assert_eq!(named["conflicts"], json!(["GA-1"]), "{named}");
    let other = uuid::Uuid::now_v7().to_string();
    assert_problem_type(
        hold_quantity(&app, &bad, &other, 1).await,
        401,
        "unauthorized",
    )
    .await;
    // A body over 1 KiB is not read ahead; neither is one that is not JSON.
    let padded = format!(
        "{{\"eventId\": \"{event}\",{} \"quantity\": 1}}",
        " ".repeat(1100)
    );
    let plain = json!({"eventId": event, "quantity": 1}).to_string();
    for (content_type, body) in [("application/json", padded), ("text/plain", plain)] {
        let response = app
            .client
            .post(app.url("/api/orders/holds"))
            .bearer_auth(&bad)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem_type(response, 401, "unauthorized").await;
    }

    // A cancelled order frees its seats: the next hold gets them.
    cancel(&app, &alice.access_token, &order).await;
    assert_problem_type(
        hold_quantity(&app, &bad, event, 1).await,
        401,
        "unauthorized",
    )
    .await;
    ok_json(hold_quantity(&app, &bob.access_token, event, 2).await, 201).await;
    let audit = audit(&app, event).await;
    assert!(audit.is_sound(), "{audit:?}");
}

/// While buyers' refused holds keep reading the fully sold event (and marking it), and forged
/// tokens keep asking, an order is cancelled: no request sent after the cancellation's answer
/// is refused as sold out (three seats come free for two buyers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_seat_is_never_hidden_by_the_early_refusal() {
    let app = Arc::new(app(false, |_| {}).await);
    let sale = on_sale(&app, Seating::General { capacity: 3 }).await;
    let event = sale.event_id.clone();
    let buyers = buyers(&app, 4).await;
    for round in 0..3 {
        let order = buy_quantity(&app, &buyers[0].access_token, &event, 3).await;
        // The first refusal marks the event fully sold.
        assert_problem_type(
            hold_quantity(&app, &buyers[1].access_token, &event, 1).await,
            409,
            "sold-out",
        )
        .await;
        let cancelled = Arc::new(AtomicBool::new(false));
        let mut askers = Vec::new();
        for (i, buyer) in buyers.iter().enumerate().skip(1) {
            let (app, event, cancelled) = (app.clone(), event.clone(), cancelled.clone());
            // Two buyers go the usual path (their refusals read the store); one sends a
            // forged token, which only the early refusal answers with anything but 401.
            let token = if i == 3 {
                forged(&buyer.access_token)
            } else {
                buyer.access_token.clone()
            };
            askers.push(tokio::spawn(async move {
                let (mut after, mut held) = (0, None);
                while after < 20 {
                    let sent_after = cancelled.load(Ordering::SeqCst);
                    let response = hold_quantity(&app, &token, &event, 1).await;
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if status == 201 {
                        held = body["holdId"].as_str().map(str::to_owned);
                    }
                    if sent_after {
                        after += 1;
                        let sold_out = body["type"]
                            .as_str()
                            .is_some_and(|t| t.ends_with("sold-out"));
                        assert!(
                            !sold_out,
                            "round {round}, buyer {i}: refused as sold out after the \
                             cancellation ({status}): {body}"
                        );
                    }
                }
                (token, held)
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        cancel(&app, &buyers[0].access_token, &order).await;
        cancelled.store(true, Ordering::SeqCst);
        for asker in askers {
            let (token, held) = asker.await.unwrap();
            if let Some(hold) = held {
                let path = format!("/api/orders/holds/{hold}");
                let released = send(&app, "DELETE", &path, &token, None).await;
                assert!(released.status().is_success(), "{}", released.status());
            }
        }
        let audit = audit(&app, &event).await;
        assert!(audit.is_sound(), "{audit:?}");
    }
}
