//! A SQLite database written before migration 0008 (orders, tickets and payment intents in
//! rowid tables, and `orders_by_event`) keeps every row across the upgrade to WITHOUT ROWID
//! tables, and its guards still hold.

use std::borrow::Cow;

use evently_booking::domain::{OrderId, PaymentIntentId};
use evently_booking::store::{BookingStore, SqlBookingStore};
use evently_testkit::TempDir;
use secrecy::SecretString;
use uuid::Uuid;

#[tokio::test]
async fn orders_tickets_and_intents_written_before_0008_survive_the_upgrade() {
    let dir = TempDir::new();
    let url = SecretString::from(format!(
        "sqlite://{}",
        dir.path().join("booking.db").display()
    ));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = Cow::Owned(
        before
            .migrations
            .iter()
            .filter(|m| m.version < 8)
            .cloned()
            .collect(),
    );
    before.run(&db.writer).await.unwrap();
    let (event, user, hold, intent, order) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    let tickets = [(Uuid::now_v7(), "A-1-1"), (Uuid::now_v7(), "A-1-2")];
    sqlx::query(
        "INSERT INTO payment_intents (id, hold_id, event_id, user_id, amount, currency, \
         secret_hash, status, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 5000, 'EUR', 'h', 'succeeded', 1, 2)",
    )
    .bind(intent)
    .bind(hold)
    .bind(event)
    .bind(user)
    .execute(&db.writer)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO orders (id, event_id, user_id, hold_id, payment_intent_id, seat_ids, \
         quantity, amount, currency, status, created_at) \
         VALUES (?, ?, ?, ?, ?, '[\"A-1-1\",\"A-1-2\"]', 2, 5000, 'EUR', 'confirmed', 3)",
    )
    .bind(order)
    .bind(event)
    .bind(user)
    .bind(hold)
    .bind(intent)
    .execute(&db.writer)
    .await
    .unwrap();
    for (i, (id, seat)) in tickets.iter().enumerate() {
        sqlx::query(
            "INSERT INTO tickets (id, order_id, event_id, seat_id, code, status) \
             VALUES (?, ?, ?, ?, ?, 'valid')",
        )
        .bind(id)
        .bind(order)
        .bind(event)
        .bind(*seat)
        .bind(format!("code-{i}"))
        .execute(&db.writer)
        .await
        .unwrap();
    }

    let writer = db.writer.clone();
    let store = SqlBookingStore::sqlite(db).await.unwrap();
    let read = store
        .order(OrderId(order))
        .await
        .unwrap()
        .expect("the order");
    let (paid, paid_for) = store
        .payment_intent(PaymentIntentId(intent))
        .await
        .unwrap()
        .expect("the intent");
    let of_event = store.orders_of_event(event, None, 10).await.unwrap();
    let without_rowid: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%WITHOUT ROWID' \
         ORDER BY name",
    )
    .fetch_all(&writer)
    .await
    .unwrap();
    // The guards: one valid ticket per seat, one order per hold.
    let second_ticket = sqlx::query(
        "INSERT INTO tickets (id, order_id, event_id, seat_id, code, status) \
         VALUES (?, ?, ?, 'A-1-1', 'code-x', 'valid')",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .bind(event)
    .execute(&writer)
    .await;
    let second_order = sqlx::query(
        "INSERT INTO orders (id, event_id, user_id, hold_id, payment_intent_id, seat_ids, \
         quantity, amount, currency, status, created_at) \
         VALUES (?, ?, ?, ?, ?, '[]', 0, 0, 'EUR', 'confirmed', 4)",
    )
    .bind(Uuid::now_v7())
    .bind(event)
    .bind(user)
    .bind(hold)
    .bind(Uuid::now_v7())
    .execute(&writer)
    .await;

    assert_eq!(read.seat_ids, ["A-1-1", "A-1-2"]);
    assert_eq!(
        (read.amount, read.hold_id.0, read.user_id),
        (5000, hold, user)
    );
    let mut seats: Vec<&str> = read.tickets.iter().map(|t| t.seat_id.as_str()).collect();
    seats.sort_unstable();
    assert_eq!(seats, ["A-1-1", "A-1-2"]);
    assert_eq!((paid.amount, paid_for), (5000, Some(OrderId(order))));
    assert_eq!(of_event.len(), 1);
    assert_eq!(of_event[0].tickets.len(), 2);
    assert_eq!(without_rowid, ["orders", "payment_intents", "tickets"]);
    assert!(second_ticket.is_err(), "a second valid ticket for a seat");
    assert!(second_order.is_err(), "a second order for a hold");
}
