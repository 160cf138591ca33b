//! Seed 001's flow end to end on its paths, the waitlist, expiry, and the cancellation saga.

use serde_json::{Value, json};
use std::time::Duration;

use crate::support::*;

async fn eventually(mut check: impl AsyncFnMut() -> bool, what: &str) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn seed_001_flow_from_seat_map_to_cancellation() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 2, seats: 5 }).await;
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.as_str();
    let event = sale.event_id.as_str();

    let map = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/seats/{event}"),
            token,
            None,
        )
        .await,
        200,
    )
    .await;
    let seats = map["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 20);
    assert_eq!(
        seats[0],
        json!({"seatId": "A-1-1", "section": "A", "row": "1", "number": 1, "priceTier": "A", "price": 5000, "state": "available"})
    );
    assert_eq!(seats[10]["priceTier"], "base");

    let hold = ok_json(
        hold_seats(&app, token, event, &["A-1-1", "A-1-2"]).await,
        201,
    )
    .await;
    let hold_id = hold["holdId"].as_str().unwrap();
    assert_eq!(hold["status"], "active");
    assert!(
        (295..=300).contains(&hold["expiresInSeconds"].as_i64().unwrap()),
        "{hold}"
    );
    let ttl = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/holds/{hold_id}/ttl"),
            token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(ttl["ttl"].as_i64().unwrap() > 290);
    let refreshed = ok_json(
        send(
            &app,
            "POST",
            &format!("/api/orders/holds/{hold_id}/refresh"),
            token,
            Some(&json!({"extendSeconds": 600})),
        )
        .await,
        200,
    )
    .await;
    // Capped by booking.max_extend_seconds (300).
    assert!(refreshed["ttl"].as_i64().unwrap() <= 300, "{refreshed}");
    let map = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/seats/{event}"),
            token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(map["seats"][0]["state"], "held");

    // The client's amount is ignored: two seats of section A at 5000.
    let intent = ok_json(
        send(
            &app,
            "POST",
            "/api/orders/payments/intent",
            token,
            Some(&json!({"holdId": hold_id, "amount": 1, "currency": "EUR"})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(
        (intent["amount"].as_i64(), intent["currency"].as_str()),
        (Some(10_000), Some("USD"))
    );
    assert_eq!(intent["status"], "requires_confirmation");
    let wrong = json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": "pi_wrong"});
    evently_testkit::assert_problem(
        send(
            &app,
            "POST",
            "/api/orders/payments/confirm",
            token,
            Some(&wrong),
        )
        .await,
        422,
    )
    .await;
    let confirm = json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]});
    let confirmed = ok_json(
        send(
            &app,
            "POST",
            "/api/orders/payments/confirm",
            token,
            Some(&confirm),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded");
    // A double click answers the same.
    let again = ok_json(
        send(
            &app,
            "POST",
            "/api/orders/payments/confirm",
            token,
            Some(&confirm),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(again["status"], "succeeded");

    let intent_id = intent["paymentIntentId"].as_str().unwrap();
    let body = purchase_body(event, &hold, intent_id);
    let no_key = send(&app, "POST", "/api/orders/purchase", token, Some(&body)).await;
    evently_testkit::assert_problem(no_key, 400).await;
    let long_key = "k".repeat(256);
    evently_testkit::assert_problem(purchase(&app, token, &long_key, &body).await, 400).await;

    let first = purchase(&app, token, "order-1", &body).await;
    assert_eq!(first.status(), 201);
    let first_text = first.text().await.unwrap();
    let order: Value = serde_json::from_str(&first_text).unwrap();
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["amount"], 10_000);
    let tickets = order["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    assert_ne!(tickets[0]["code"], tickets[1]["code"]);
    assert!(tickets[0]["code"].as_str().unwrap().len() >= 22);

    // Same key and body: the first answer, byte for byte.
    let replay = purchase(&app, token, "order-1", &body).await;
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.text().await.unwrap(), first_text);
    // Same key, another body: 422, nothing changes.
    let mut other = body.clone();
    other["seatIds"] = json!(["A-1-1"]);
    evently_testkit::assert_problem(purchase(&app, token, "order-1", &other).await, 422).await;
    // Another key for the same hold: it is already an order.
    evently_testkit::assert_problem(purchase(&app, token, "order-2", &body).await, 409).await;

    let listed = ok_json(
        send(&app, "GET", "/api/orders/orders", token, None).await,
        200,
    )
    .await;
    assert_eq!(listed["page"]["totalElements"], 1);
    assert_eq!(listed["orders"][0]["orderId"], order["orderId"]);
    let order_id = order["orderId"].as_str().unwrap();
    let fetched = ok_json(
        send(&app, "GET", &format!("/api/orders/{order_id}"), token, None).await,
        200,
    )
    .await;
    assert_eq!(fetched["tickets"], order["tickets"]);
    let counts = availability(&app, event).await;
    assert_eq!(
        (
            counts["sold"].as_i64(),
            counts["held"].as_i64(),
            counts["available"].as_i64()
        ),
        (Some(2), Some(0), Some(18))
    );
    let map = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/seats/{event}"),
            token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(map["seats"][0]["state"], "reserved");

    // The events service follows booking's domain events.
    eventually(
        async || {
            let e = ok_json(
                app.client
                    .get(app.url(&format!("/api/events/{event}")))
                    .send()
                    .await
                    .unwrap(),
                200,
            )
            .await;
            e["availableSeats"] == 18
        },
        "events shows 18 available seats",
    )
    .await;

    let cancelled = ok_json(
        send(
            &app,
            "POST",
            &format!("/api/orders/{order_id}/cancel"),
            token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["refundedAmount"], 10_000);
    assert_eq!(cancelled["tickets"][0]["status"], "void");
    evently_testkit::assert_problem(
        send(
            &app,
            "POST",
            &format!("/api/orders/{order_id}/cancel"),
            token,
            None,
        )
        .await,
        409,
    )
    .await;
    let counts = availability(&app, event).await;
    assert_eq!(
        (counts["sold"].as_i64(), counts["available"].as_i64()),
        (Some(0), Some(20))
    );
    // The seats are on sale again: someone else buys them.
    let other_buyer = app.signed_in_user().await;
    buy(&app, &other_buyer.access_token, event, &["A-1-1", "A-1-2"]).await;
}

#[tokio::test]
async fn holds_expire_on_time_and_return_their_seats() {
    let app = app(false, |c| {
        c.booking.hold_ttl_seconds = 1;
        c.booking.max_hold_lifetime_seconds = 1;
    })
    .await;
    let sale = on_sale(&app, Seating::General { capacity: 3 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let hold = ok_json(
        hold_quantity(&app, &buyer.access_token, event, 3).await,
        201,
    )
    .await;
    assert_eq!(hold["seatIds"], json!(["GA-1", "GA-2", "GA-3"]));
    let counts = availability(&app, event).await;
    assert_eq!(
        (counts["available"].as_i64(), counts["soldOut"].as_bool()),
        (Some(0), Some(true))
    );
    let intent = pay(&app, &buyer.access_token, hold["holdId"].as_str().unwrap()).await;

    // Nobody asks: the expiry task returns the seats by itself.
    let store = app.app_booking.as_ref().unwrap().service.store().clone();
    let id: uuid::Uuid = event.parse().unwrap();
    eventually(
        async || {
            let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000 + 999;
            let inv = store.inventory(id).await.unwrap().unwrap();
            inv.held == 0 && now > 0
        },
        "the expired hold's seats are back",
    )
    .await;
    let counts = availability(&app, event).await;
    assert_eq!(counts["available"], 3);
    // Paying for it now is refused, and the captured payment was refunded.
    let late = purchase(
        &app,
        &buyer.access_token,
        "late",
        &purchase_body(event, &hold, &intent),
    )
    .await;
    let problem = evently_testkit::assert_problem(late, 409).await;
    assert!(
        problem["type"].as_str().unwrap().ends_with("/hold-expired"),
        "{problem}"
    );
    let ttl = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/holds/{}/ttl", hold["holdId"].as_str().unwrap()),
            &buyer.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (ttl["ttl"].as_i64(), ttl["status"].as_str()),
        (Some(0), Some("expired"))
    );
    // The payer reads the refund on the intent.
    let payment = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/payments/{intent}"),
            &buyer.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (
            payment["status"].as_str(),
            payment["refundedAmount"].as_i64(),
            payment["amount"].as_i64(),
            payment.get("orderId")
        ),
        (Some("refunded"), Some(9000), Some(9000), None)
    );
    let audit = crate::support::audit(&app, event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(audit.refunded_payments, 1);
}

/// `GET /api/orders/payments/{id}` shows an intent to its payer and to admins, with the
/// order it paid for and what was refunded; to anyone else it does not exist.
#[tokio::test]
async fn a_payment_reads_back_to_its_payer_with_its_order_and_refund() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::General { capacity: 5 }).await;
    let event = sale.event_id.as_str();
    let (buyer, other) = (app.signed_in_user().await, app.signed_in_user().await);
    let hold = ok_json(
        hold_quantity(&app, &buyer.access_token, event, 2).await,
        201,
    )
    .await;
    let intent = pay(&app, &buyer.access_token, hold["holdId"].as_str().unwrap()).await;
    let path = format!("/api/orders/payments/{intent}");
    let read = |token: String| {
        let (app, path) = (&app, path.clone());
        async move { send(app, "GET", &path, &token, None).await }
    };

    let paid = ok_json(read(buyer.access_token.clone()).await, 200).await;
    // A paid hold gets no second intent: it would be a second charge.
    let second = send(
        &app,
        "POST",
        "/api/orders/payments/intent",
        &buyer.access_token,
        Some(&json!({"holdId": hold["holdId"]})),
    )
    .await;
    assert_problem_type(second, 409, "hold-paid").await;
    let order = ok_json(
        purchase(
            &app,
            &buyer.access_token,
            "k-read",
            &purchase_body(event, &hold, &intent),
        )
        .await,
        201,
    )
    .await;
    let bought = ok_json(read(buyer.access_token.clone()).await, 200).await;
    let by_admin = ok_json(read(sale.admin.access_token.clone()).await, 200).await;
    let cancel = send(
        &app,
        "POST",
        &format!("/api/orders/{}/cancel", order["orderId"].as_str().unwrap()),
        &buyer.access_token,
        None,
    )
    .await;
    assert_eq!(cancel.status(), 200);
    let refunded = ok_json(read(buyer.access_token.clone()).await, 200).await;

    assert_eq!(
        (
            paid["status"].as_str(),
            paid["refundedAmount"].as_i64(),
            paid.get("orderId")
        ),
        (Some("succeeded"), Some(0), None)
    );
    assert_eq!(paid["paymentIntentId"], intent.as_str());
    assert_eq!(
        (paid["holdId"].clone(), paid["eventId"].as_str()),
        (hold["holdId"].clone(), Some(event))
    );
    assert_eq!(
        (paid["amount"].as_i64(), paid["currency"].as_str()),
        (Some(6000), Some("USD"))
    );
    assert!(paid.get("clientSecret").is_none(), "{paid}");
    assert_eq!(bought["orderId"], order["orderId"]);
    assert_eq!(by_admin, bought);
    assert_eq!(
        (
            refunded["status"].as_str(),
            refunded["refundedAmount"].as_i64(),
            refunded["orderId"].clone()
        ),
        (Some("refunded"), Some(6000), order["orderId"].clone())
    );
    evently_testkit::assert_problem(read(other.access_token.clone()).await, 404).await;
    let unknown = format!("/api/orders/payments/{}", uuid::Uuid::now_v7());
    evently_testkit::assert_problem(
        send(&app, "GET", &unknown, &buyer.access_token, None).await,
        404,
    )
    .await;
    evently_testkit::assert_problem(
        send(
            &app,
            "GET",
            "/api/orders/payments/not-an-id",
            &buyer.access_token,
            None,
        )
        .await,
        400,
    )
    .await;
    let anonymous = app.client.get(app.url(&path)).send().await.unwrap();
    evently_testkit::assert_problem(anonymous, 401).await;
}

#[tokio::test]
async fn waitlist_offers_freed_seats_in_order_and_passes_unclaimed_offers_on() {
    let app = app(false, |c| {
        c.booking.waitlist_offer_seconds = 1;
    })
    .await;
    let sale = on_sale(&app, Seating::General { capacity: 2 }).await;
    let event = sale.event_id.as_str();
    let (owner, first, second) = (
        app.signed_in_user().await,
        app.signed_in_user().await,
        app.signed_in_user().await,
    );
    let order = buy(&app, &owner.access_token, event, &["GA-1", "GA-2"]).await;

    // Not sold out: joining is refused while seats can be held.
    let path = format!("/api/events/{event}/waitlist");
    let one = json!({"quantity": 1});
    let joined = ok_json(
        send(&app, "POST", &path, &first.access_token, Some(&one)).await,
        201,
    )
    .await;
    assert_eq!(
        (joined["position"].as_i64(), joined["status"].as_str()),
        (Some(1), Some("waiting"))
    );
    let joined = ok_json(
        send(&app, "POST", &path, &second.access_token, Some(&one)).await,
        201,
    )
    .await;
    assert_eq!(joined["position"], 2);

    // Seats come back: the head of the list is offered one as a hold in their name.
    let order_id = order["orderId"].as_str().unwrap();
    ok_json(
        send(
            &app,
            "POST",
            &format!("/api/orders/{order_id}/cancel"),
            &owner.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    let offered = ok_json(
        send(&app, "GET", &path, &first.access_token, None).await,
        200,
    )
    .await;
    assert_eq!(offered["status"], "offered", "{offered}");
    let second_entry = ok_json(
        send(&app, "GET", &path, &second.access_token, None).await,
        200,
    )
    .await;
    assert_eq!(
        second_entry["status"], "offered",
        "two seats came back: both are offered one"
    );

    // The first claims theirs; the second lets the offer lapse, and it passes on.
    let offer: Value = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/holds/{}", offered["holdId"].as_str().unwrap()),
            &first.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(offer["kind"], "waitlist");
    let intent = pay(&app, &first.access_token, offer["holdId"].as_str().unwrap()).await;
    ok_json(
        purchase(
            &app,
            &first.access_token,
            "claim",
            &purchase_body(event, &offer, &intent),
        )
        .await,
        201,
    )
    .await;
    let claimed = ok_json(
        send(&app, "GET", &path, &first.access_token, None).await,
        200,
    )
    .await;
    assert_eq!(claimed["status"], "claimed");

    eventually(
        async || {
            let e = ok_json(
                send(&app, "GET", &path, &second.access_token, None).await,
                200,
            )
            .await;
            e["status"] == "lapsed"
        },
        "the unclaimed offer lapses",
    )
    .await;
    let counts = availability(&app, event).await;
    assert_eq!(
        (counts["sold"].as_i64(), counts["available"].as_i64()),
        (Some(1), Some(1))
    );
    // Leaving, and the caller who never joined.
    evently_testkit::assert_problem(
        send(&app, "DELETE", &path, &second.access_token, None).await,
        404,
    )
    .await;
    evently_testkit::assert_problem(
        send(&app, "GET", &path, &owner.access_token, None).await,
        404,
    )
    .await;
}

#[tokio::test]
async fn cancelling_an_event_refunds_every_order_and_ends_every_hold() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 10 }).await;
    let event = sale.event_id.as_str();
    let mut orders = Vec::new();
    for seats in [["A-1-1", "A-1-2"], ["A-1-3", "A-1-4"], ["B-1-1", "B-1-2"]] {
        let buyer = app.signed_in_user().await;
        let order = buy(&app, &buyer.access_token, event, &seats).await;
        orders.push((buyer, order));
    }
    let holder = app.signed_in_user().await;
    ok_json(
        hold_seats(&app, &holder.access_token, event, &["B-1-5"]).await,
        201,
    )
    .await;

    let status = json!({"status": "CANCELLED"});
    ok_json(
        send(
            &app,
            "PUT",
            &format!("/api/events/{event}/status"),
            &sale.admin.access_token,
            Some(&status),
        )
        .await,
        200,
    )
    .await;

    for (buyer, order) in &orders {
        let id = order["orderId"].as_str().unwrap();
        eventually(
            async || {
                let o = ok_json(
                    send(
                        &app,
                        "GET",
                        &format!("/api/orders/{id}"),
                        &buyer.access_token,
                        None,
                    )
                    .await,
                    200,
                )
                .await;
                o["status"] == "cancelled"
                    && o["cancelReason"] == "event-cancelled"
                    && o["refundedAmount"] == o["amount"]
            },
            "the order is refunded",
        )
        .await;
    }
    let counts = availability(&app, event).await;
    assert_eq!(
        (
            counts["sold"].as_i64(),
            counts["held"].as_i64(),
            counts["onSale"].as_bool()
        ),
        (Some(0), Some(0), Some(false))
    );
    let refused = hold_seats(&app, &holder.access_token, event, &["A-1-9"]).await;
    let problem = evently_testkit::assert_problem(refused, 409).await;
    assert!(problem["type"].as_str().unwrap().ends_with("/not-on-sale"));
}

/// The reconciliation of the expiry task refunds a paid intent left without an order and
/// without a live hold (here a hold ended by hand, as a failed guard would leave it), once,
/// and the payer reads the refund.
#[tokio::test]
async fn reconciliation_refunds_a_paid_intent_left_without_its_order() {
    let app = app(false, |_| {}).await;
    let sale = on_sale(&app, Seating::General { capacity: 5 }).await;
    let event = sale.event_id.as_str();
    let buyer = app.signed_in_user().await;
    let hold = ok_json(
        hold_quantity(&app, &buyer.access_token, event, 1).await,
        201,
    )
    .await;
    let intent = pay(&app, &buyer.access_token, hold["holdId"].as_str().unwrap()).await;
    let file = app.config.server.data_dir.join("booking.db");
    let mut db = {
        use sqlx::Connection;
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap()
    };
    let hold_id: uuid::Uuid = hold["holdId"].as_str().unwrap().parse().unwrap();
    sqlx::query("UPDATE holds SET status = 'released' WHERE id = ?")
        .bind(hold_id)
        .execute(&mut db)
        .await
        .unwrap();
    let store = app.app_booking.as_ref().unwrap().service.store().clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;

    let refunded = store.reconcile_payments(now).await.unwrap();
    let again = store.reconcile_payments(now + 1).await.unwrap();

    assert_eq!((refunded, again), (1, 0));
    let payment = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/payments/{intent}"),
            &buyer.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (
            payment["status"].as_str(),
            payment["refundedAmount"].as_i64()
        ),
        (Some("refunded"), Some(3000))
    );
    let outbox = app.app_booking.as_ref().unwrap().outbox.clone();
    let rows = outbox.read_after(0, 10_000).await.unwrap();
    let refunds: Vec<_> = rows
        .iter()
        .filter(|r| r.envelope.event_type == "PaymentRefunded")
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        refunds[0].envelope.payload["paymentIntentId"],
        intent.as_str()
    );
}
