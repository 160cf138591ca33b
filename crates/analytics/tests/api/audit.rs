//! After an on-sale with cancellations, refunds, released and expired holds, every figure of
//! every event equals booking's own audit (and booking's own orders), on SQLite and on
//! PostgreSQL; a projection rebuilt from the streams equals the incremental one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use evently_analytics::AnalyticsService;
use evently_analytics::store::{AnalyticsStore, SqlAnalyticsStore};
use evently_bus::Bus;
use evently_core::clock::ManualClock;
use evently_core::service::ServiceName;
use evently_testkit::{TempDir, TestApp};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::support::{
    buy, cancel, event, eventually, figures, hold, join_waitlist, leave_waitlist, organizer,
    release,
};

/// What booking said it took and gave back, per event: `(currency, gross, refunded)`.
#[derive(Default)]
struct Books(BTreeMap<String, (String, i64, i64)>);

impl Books {
    fn sold(&mut self, order: &Value) {
        let entry = self
            .0
            .entry(order["eventId"].as_str().unwrap().to_owned())
            .or_insert_with(|| (order["currency"].as_str().unwrap().to_owned(), 0, 0));
        entry.1 += order["amount"].as_i64().unwrap();
    }

    fn refunded(&mut self, order: &Value) {
        let entry = self.0.get_mut(order["eventId"].as_str().unwrap()).unwrap();
        entry.2 += order["refundedAmount"].as_i64().unwrap();
    }
}

async fn app(postgres: Option<String>, clock: &ManualClock) -> TestApp {
    let dir = TempDir::new();
    let mut config = evently_testkit::test_config(dir.path());
    if let Some(url) = postgres {
        config.database.url = Some(SecretString::from(url));
    }
    evently_testkit::spawn_config(config, Some(dir), Arc::new(clock.clone())).await
}

/// Replays both streams, from the start, into `store`.
async fn replay(buses: [Arc<dyn Bus>; 2], service: &AnalyticsService) {
    let name = format!("replay-{}", uuid::Uuid::now_v7().simple());
    for bus in buses {
        let mut subscription = bus.subscribe(&name).await.unwrap();
        loop {
            let batch = subscription
                .next_batch(256, Duration::from_millis(200))
                .await
                .unwrap();
            let Some(last) = batch.last() else { break };
            for delivery in &batch {
                service.apply(&delivery.envelope).await.unwrap();
            }
            subscription.ack(last).await.unwrap();
        }
    }
}

/// Moves `clock` up to the wall clock, which the fixtures' sale starts follow: the
/// application's start, on a database with much history, can take longer than the few
/// seconds by which a new event's sale starts in the past.
fn catch_up(clock: &ManualClock) {
    use evently_core::clock::Clock as _;
    let behind = time::OffsetDateTime::now_utc() - clock.now();
    if behind.is_positive() {
        clock.advance(behind);
    }
}

async fn on_sale_figures_equal_bookings_audit(postgres: Option<String>) {
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let app = app(postgres.clone(), &clock).await;
    let owner = organizer(&app).await;
    let mut books = Books::default();
    let mut events = Vec::new();
    for (price, currency) in [(2500, "EUR"), (4000, "USD")] {
        catch_up(&clock);
        let id = event(&app, &owner, 6, price, currency).await;
        let (a, b, c, d, e, f) = (
            app.signed_in_user().await,
            app.signed_in_user().await,
            app.signed_in_user().await,
            app.signed_in_user().await,
            app.signed_in_user().await,
            app.signed_in_user().await,
        );
        books.sold(&buy(&app, &a, &id, 2).await);
        let regretted = buy(&app, &b, &id, 1).await;
        books.sold(&regretted);
        books.refunded(&cancel(&app, &b, &regretted).await);
        let let_go = hold(&app, &c, &id, 1).await;
        release(&app, &c, &let_go).await;
        hold(&app, &d, &id, 2).await;
        // The last two places: the event sells out while d holds two.
        books.sold(&buy(&app, &e, &id, 2).await);
        // Signed in while their tokens are fresh: they join the waitlist at the end.
        let waiting = [
            app.signed_in_user().await,
            app.signed_in_user().await,
            app.signed_in_user().await,
        ];
        events.push((id, d, f, waiting));
    }
    // d's holds run out.
    clock.advance(time::Duration::seconds(
        i64::try_from(app.config.booking.hold_ttl_seconds).unwrap() + 1,
    ));
    for (id, _, _, _) in &events {
        eventually(|| async { figures(&app, &owner, id).await["holds"]["expired"] == 1 }).await;
    }
    // A hold still live when the books are closed, and a waitlist for the last seat: three
    // join for two seats each, one leaves.
    let mut last_holds = Vec::new();
    for (id, _, f, waiting) in &events {
        last_holds.push(hold(&app, f, id, 1).await);
        for w in waiting {
            join_waitlist(&app, w, id, 2).await;
        }
        leave_waitlist(&app, &waiting[1], id).await;
    }

    let booking_url = app
        .config
        .database
        .url_for(ServiceName::Booking, &app.config.server.data_dir);
    for (id, _, _, _) in &events {
        let audit = evently_booking::audit::audit(booking_url.expose_secret(), id.parse().unwrap())
            .await
            .unwrap();
        assert!(audit.is_sound(), "{audit:?}");
        eventually(|| async { figures(&app, &owner, id).await["holds"]["live"] == 1 }).await;
        let got = figures(&app, &owner, id).await;
        let (currency, gross, refunded) = books.0[id].clone();

        assert_eq!(got["capacity"], audit.capacity, "{got}");
        assert_eq!(got["sold"], audit.sold_seats, "{got}");
        assert_eq!(got["tickets"], audit.tickets, "{got}");
        assert_eq!(got["orders"], audit.orders, "{got}");
        assert_eq!(got["holds"]["live"], audit.live_holds, "{got}");
        assert_eq!(
            got["revenue"],
            serde_json::json!([{"currency": currency, "gross": gross, "refunded": refunded, "net": gross - refunded}])
        );
        assert_eq!(
            (audit.sold_seats, audit.orders, audit.live_holds),
            (4, 2, 1)
        );
        assert_eq!(got["held"], 1);
        assert_eq!(got["available"], 1);
        assert_eq!(got["cancellations"], 1);
        assert_eq!(
            got["holds"],
            serde_json::json!({"created": 6, "expired": 1, "released": 1, "cancelled": 0,
                "converted": 3, "live": 1, "conversion": 0.5})
        );
        eventually(|| async { figures(&app, &owner, id).await["waitlistLength"] == 2 }).await;
        assert_eq!(
            figures(&app, &owner, id).await["waitlistLength"],
            audit.waiting
        );
        assert_eq!(audit.waiting, 2);
        assert!(got["soldOutAt"].is_string(), "{got}");
        assert!(got["timeToSellOutSeconds"].as_i64().unwrap() >= 0);
    }

    // The organizer's overview holds both events, money never summed across currencies.
    let overview = crate::support::ok_json(
        crate::support::send(
            &app,
            "GET",
            "/api/analytics/overview",
            &owner.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(overview["scope"], "organizer");
    assert_eq!(
        (overview["events"].as_i64(), overview["orders"].as_i64()),
        (Some(2), Some(4))
    );
    assert_eq!(
        overview["revenue"].as_array().unwrap().len(),
        2,
        "{overview}"
    );

    // The first event's last hold is let go: its seat and the one left make two, offered to
    // the head of the waitlist, which leaves one buyer waiting.
    let (first, _, f, _) = &events[0];
    release(&app, f, &last_holds[0]).await;
    eventually(|| async { figures(&app, &owner, first).await["waitlistOffers"] == 1 }).await;
    let audit = evently_booking::audit::audit(booking_url.expose_secret(), first.parse().unwrap())
        .await
        .unwrap();
    let got = figures(&app, &owner, first).await;
    assert_eq!((audit.waiting, audit.live_holds), (1, 1));
    assert_eq!(got["waitlistLength"], audit.waiting, "{got}");
    assert_eq!(got["holds"]["live"], audit.live_holds, "{got}");

    // A projection rebuilt from the streams equals the incremental one.
    let live = evently_analytics::open_store(
        &app.config
            .database
            .url_for(ServiceName::Analytics, &app.config.server.data_dir),
        &app.config,
    )
    .await
    .unwrap();
    let dir = TempDir::new();
    let fresh: Arc<dyn AnalyticsStore> = match &postgres {
        None => {
            let url = SecretString::from(format!("sqlite://{}", dir.path().join("a.db").display()));
            let db = evently_core::db::connect_sqlite(&url).await.unwrap();
            Arc::new(SqlAnalyticsStore::sqlite(db).await.unwrap())
        }
        Some(url) => {
            let pool = evently_core::db::connect_postgres(
                &SecretString::from(url.clone()),
                &evently_testkit::fresh_schema(),
                &app.config.database,
            )
            .await
            .unwrap();
            Arc::new(SqlAnalyticsStore::postgres(pool).await.unwrap())
        }
    };
    let rebuilt = AnalyticsService::new(
        fresh.clone(),
        Arc::new(clock.clone()),
        app.config.analytics.clone(),
    );
    let buses = [
        app.app_events.as_ref().unwrap().bus.clone(),
        app.app_booking.as_ref().unwrap().bus.clone(),
    ];
    replay(buses, &rebuilt).await;
    let ours: Vec<uuid::Uuid> = events
        .iter()
        .map(|(id, _, _, _)| id.parse().unwrap())
        .collect();
    let pick = |s: evently_analytics::store::AnalyticsSnapshot| {
        (
            s.events
                .into_iter()
                .filter(|e| ours.contains(&e.event_id))
                .collect::<Vec<_>>(),
            s.minutes
                .into_iter()
                .filter(|(e, _, _)| ours.contains(e))
                .collect::<Vec<_>>(),
        )
    };
    let incremental = pick(live.snapshot().await.unwrap());
    let replayed = pick(fresh.snapshot().await.unwrap());
    assert_eq!(incremental.0.len(), 2);
    assert!(!incremental.1.is_empty());
    assert_eq!(replayed, incremental);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sale_figures_equal_bookings_audit_on_sqlite() {
    on_sale_figures_equal_bookings_audit(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sale_figures_equal_bookings_audit_on_postgres() {
    let Some(url) = evently_testkit::postgres_url() else {
        evently_testkit::skip(
            "on_sale_figures_equal_bookings_audit_on_postgres",
            "EVENTLY_TEST_POSTGRES_URL",
        );
        return;
    };
    // The test's own database: the PostgreSQL bus of a shared one holds every other test's
    // domain events, which the consumers and the replay below would walk first.
    let database = evently_testkit::FreshDatabase::create(&url).await;
    on_sale_figures_equal_bookings_audit(Some(database.url.clone())).await;
}
