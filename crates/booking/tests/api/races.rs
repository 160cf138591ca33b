//! Races through the gateway (TESTPLAN C-01..C-09): many buyers at once for the last seats,
//! overlapping multi-seat holds, multi-seat holds in opposite orders, one idempotency key
//! sent many times at once, and purchases racing their hold's expiry. Each runs on SQLite
//! and, when `EVENTLY_TEST_POSTGRES_URL` is set, on PostgreSQL; the invariants are checked on
//! the final state through the API and booking's audit of its rows.
#![expect(clippy::unwrap_used, reason = "a race that goes wrong fails loudly")]

use evently_testkit::TestApp;
use reqwest::Response;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

use crate::support::*;

/// A small deterministic generator (xorshift64*), so that a failing run can be repeated
/// from the seed it prints.
struct Rng(u64);

impl Rng {
    fn seeded(what: &str) -> Self {
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()) | 1;
        eprintln!("{what}: seed {seed}");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// The body of an `ok` answer, or the problem of a 409; any other answer (a 5xx above all)
/// fails the test.
async fn step(response: Response, ok: u16) -> Result<Value, Value> {
    if response.status().as_u16() == ok {
        Ok(ok_json(response, ok).await)
    } else {
        Err(evently_testkit::assert_problem(response, 409).await)
    }
}

/// Where a buyer's attempt stopped, and the problem it got there.
#[derive(Debug)]
struct Refusal {
    at: &'static str,
    problem: Value,
}

fn refused(at: &'static str) -> impl FnOnce(Value) -> Refusal {
    move |problem| Refusal { at, problem }
}

/// The rest of a buyer's attempt after the hold request: intent, confirmation, purchase.
/// Returns the order.
async fn complete(
    app: &TestApp,
    token: &str,
    event: &str,
    hold: Response,
) -> Result<Value, Refusal> {
    let hold = step(hold, 201).await.map_err(refused("hold"))?;
    complete_hold(app, token, event, &hold).await
}

/// The rest of a buyer's attempt after the hold request, in one checkout. Returns the order.
async fn check_out(
    app: &TestApp,
    token: &str,
    event: &str,
    hold: Response,
) -> Result<Value, Refusal> {
    let hold = step(hold, 201).await.map_err(refused("hold"))?;
    let key = uuid::Uuid::new_v4().to_string();
    let body = json!({"eventId": event, "holdId": hold["holdId"], "seatIds": hold["seatIds"]});
    step(checkout(app, token, &key, &body).await, 201)
        .await
        .map_err(refused("checkout"))
}

/// Intent, confirmation and purchase of `hold`. Returns the order.
async fn complete_hold(
    app: &TestApp,
    token: &str,
    event: &str,
    hold: &Value,
) -> Result<Value, Refusal> {
    let intent = step(
        send(
            app,
            "POST",
            "/api/orders/payments/intent",
            token,
            Some(&json!({"holdId": hold["holdId"]})),
        )
        .await,
        201,
    )
    .await
    .map_err(refused("intent"))?;
    let confirm = json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]});
    step(
        send(
            app,
            "POST",
            "/api/orders/payments/confirm",
            token,
            Some(&confirm),
        )
        .await,
        200,
    )
    .await
    .map_err(refused("confirm"))?;
    let key = uuid::Uuid::new_v4().to_string();
    let body = purchase_body(event, hold, intent["paymentIntentId"].as_str().unwrap());
    step(purchase(app, token, &key, &body).await, 201)
        .await
        .map_err(refused("purchase"))
}

fn is_type(problem: &Value, slug: &str) -> bool {
    problem["type"]
        .as_str()
        .is_some_and(|t| t.ends_with(&format!("/{slug}")))
}

fn seat_set(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn counts(availability: &Value) -> (i64, i64, i64) {
    (
        availability["sold"].as_i64().unwrap(),
        availability["held"].as_i64().unwrap(),
        availability["available"].as_i64().unwrap(),
    )
}

/// C-01/C-02/L-04: 500 buyers start together for the last 50 seats of a reserved event,
/// half asking for a given seat from the seat map (five buyers per seat), half for the
/// best available one; half of each half pays in three steps (intent, confirm, purchase),
/// the other half in one checkout. Exactly 50 buy; everyone else gets a clean 409 at the
/// hold; nothing is sold twice or past capacity.
async fn last_seats_sell_exactly_once(postgres: bool) {
    const BUYERS: usize = 500;
    let app = Arc::new(app(postgres, |_| {}).await);
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 30 }).await;
    let event = sale.event_id.clone();
    let early = app.signed_in_user().await;
    let sold_early: Vec<String> = (1..=10).map(|n| format!("A-1-{n}")).collect();
    let refs: Vec<&str> = sold_early.iter().map(String::as_str).collect();
    buy(&app, &early.access_token, &event, &refs).await;
    let last: Vec<String> = (11..=30)
        .map(|n| format!("A-1-{n}"))
        .chain((1..=30).map(|n| format!("B-1-{n}")))
        .collect();
    assert_eq!(counts(&availability(&app, &event).await), (10, 0, 50));
    let buyers = buyers(&app, BUYERS).await;
    let barrier = Arc::new(Barrier::new(BUYERS));

    let started = Instant::now();
    let tasks: Vec<_> = buyers
        .into_iter()
        .enumerate()
        .map(|(i, buyer)| {
            let (app, barrier, event) = (app.clone(), barrier.clone(), event.clone());
            let seat = last[(i / 2) % last.len()].clone();
            tokio::spawn(async move {
                let token = buyer.access_token.as_str();
                barrier.wait().await;
                let hold = if i % 2 == 0 {
                    hold_seats(&app, token, &event, &[&seat]).await
                } else {
                    hold_quantity(&app, token, &event, 1).await
                };
                let outcome = if i % 4 < 2 {
                    complete(&app, token, &event, hold).await
                } else {
                    check_out(&app, token, &event, hold).await
                };
                (i, seat, outcome)
            })
        })
        .collect();
    let outcomes = futures_util::future::join_all(tasks).await;
    eprintln!(
        "{BUYERS} buyers for the last 50 seats ({}): {:?}",
        if postgres { "postgres" } else { "sqlite" },
        started.elapsed()
    );

    let mut sold = BTreeSet::new();
    let mut refusals = 0;
    for outcome in outcomes {
        let (i, seat, result) = outcome.unwrap();
        match result {
            Ok(order) => {
                let seats = seat_set(&order["seatIds"]);
                assert_eq!(seats.len(), 1, "{order}");
                if i % 2 == 0 {
                    assert!(seats.contains(&seat), "asked for {seat}, got {order}");
                }
                assert_eq!(order["status"], "confirmed");
                assert_eq!(order["tickets"].as_array().unwrap().len(), 1);
                for seat in seats {
                    assert!(last.contains(&seat), "{seat} was not on sale: {order}");
                    assert!(sold.insert(seat.clone()), "{seat} sold twice");
                }
            }
            Err(Refusal { at, problem }) => {
                refusals += 1;
                assert_eq!(
                    at, "hold",
                    "a buyer with a hold was refused later: {problem}"
                );
                if i % 2 == 0 {
                    assert!(is_type(&problem, "seats-unavailable"), "{problem}");
                    assert_eq!(problem["conflicts"], json!([seat]));
                } else {
                    assert!(is_type(&problem, "sold-out"), "{problem}");
                }
            }
        }
    }
    assert_eq!(sold.len(), 50);
    assert_eq!(refusals, BUYERS - 50);
    let audit = audit(&app, &event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(
        (
            audit.capacity,
            audit.sold_seats,
            audit.tickets,
            audit.orders,
            audit.live_holds
        ),
        (60, 60, 60, 51, 0),
        "{audit:?}"
    );
    assert_eq!(
        (audit.oversold, audit.double_sold, audit.mismatched),
        (0, 0, 0)
    );
    let now = availability(&app, &event).await;
    assert_eq!(counts(&now), (60, 0, 0), "{now}");
    assert_eq!(now["soldOut"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_seats_sell_exactly_once_on_sqlite() {
    last_seats_sell_exactly_once(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn last_seats_sell_exactly_once_on_postgres() {
    if postgres_or_skip("last_seats_sell_exactly_once_on_postgres") {
        last_seats_sell_exactly_once(true).await;
    }
}

/// C-04: 200 buyers at once, each holding 2 to 4 seats picked (in random order) from a
/// window of 6 neighbouring seats out of 40, so requests overlap heavily. No seat ends up in
/// two holds, a hold gets all its seats or none, and every refusal names seats that are held.
async fn overlapping_holds_never_share_a_seat(postgres: bool) {
    const BUYERS: usize = 200;
    let app = Arc::new(app(postgres, |_| {}).await);
    let sale = on_sale(&app, Seating::Reserved { rows: 2, seats: 10 }).await;
    let event = sale.event_id.clone();
    let all: Vec<String> = ["A", "B"]
        .iter()
        .flat_map(|s| (1..=2).flat_map(move |r| (1..=10).map(move |n| format!("{s}-{r}-{n}"))))
        .collect();
    let mut rng = Rng::seeded("overlapping holds");
    let wanted: Vec<Vec<String>> = (0..BUYERS)
        .map(|_| {
            let start = rng.below(all.len() - 5);
            let mut window: Vec<String> = all[start..start + 6].to_vec();
            for k in (1..window.len()).rev() {
                window.swap(k, rng.below(k + 1));
            }
            window.truncate(2 + rng.below(3));
            window
        })
        .collect();
    let buyers = buyers(&app, BUYERS).await;
    let barrier = Arc::new(Barrier::new(BUYERS));

    let started = Instant::now();
    let tasks: Vec<_> = buyers
        .into_iter()
        .zip(wanted)
        .map(|(buyer, seats)| {
            let (app, barrier, event) = (app.clone(), barrier.clone(), event.clone());
            tokio::spawn(async move {
                let refs: Vec<&str> = seats.iter().map(String::as_str).collect();
                barrier.wait().await;
                let response = hold_seats(&app, &buyer.access_token, &event, &refs).await;
                (seats, step(response, 201).await)
            })
        })
        .collect();
    let outcomes = futures_util::future::join_all(tasks).await;
    eprintln!(
        "{BUYERS} overlapping holds ({}): {:?}",
        if postgres { "postgres" } else { "sqlite" },
        started.elapsed()
    );

    let mut held = BTreeSet::new();
    let mut holds = 0;
    let mut conflicts = Vec::new();
    for outcome in outcomes {
        let (seats, result) = outcome.unwrap();
        let asked: BTreeSet<String> = seats.iter().cloned().collect();
        match result {
            Ok(hold) => {
                holds += 1;
                assert_eq!(seat_set(&hold["seatIds"]), asked, "all or nothing: {hold}");
                for seat in asked {
                    assert!(held.insert(seat.clone()), "{seat} is in two live holds");
                }
            }
            Err(problem) => {
                assert!(is_type(&problem, "seats-unavailable"), "{problem}");
                let named = seat_set(&problem["conflicts"]);
                assert!(!named.is_empty(), "{problem}");
                assert!(named.is_subset(&asked), "asked {asked:?}: {problem}");
                conflicts.push(named);
            }
        }
    }
    assert!(holds > 0);
    // Nothing is released or bought during the race, so every seat named as a conflict
    // is still held by the hold that took it.
    for named in conflicts {
        assert!(named.is_subset(&held), "{named:?} were never held");
    }
    let now = availability(&app, &event).await;
    assert_eq!(
        counts(&now),
        (0, count_of(&held), 40 - count_of(&held)),
        "{now}"
    );
    let map = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/seats/{event}"),
            &sale.admin.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    let held_on_map: BTreeSet<String> = map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "held")
        .map(|s| s["seatId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(held_on_map, held);
    let audit = audit(&app, &event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.live_holds, audit.sold_seats), (holds, 0));
}

fn count_of<T>(set: &BTreeSet<T>) -> i64 {
    i64::try_from(set.len()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_holds_never_share_a_seat_on_sqlite() {
    overlapping_holds_never_share_a_seat(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_holds_never_share_a_seat_on_postgres() {
    if postgres_or_skip("overlapping_holds_never_share_a_seat_on_postgres") {
        overlapping_holds_never_share_a_seat(true).await;
    }
}

/// C-03: X holds [s1, s2] while Y holds [s2, s1], 50 times. Each time exactly one gets both
/// seats and the other neither (the loser is told both are taken); never a deadlock or 5xx.
async fn opposite_order_holds_do_not_deadlock(postgres: bool) {
    let app = app(postgres, |_| {}).await;
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 2 }).await;
    let event = sale.event_id.as_str();
    let (x, y) = tokio::join!(app.signed_in_user(), app.signed_in_user());
    let (s1, s2) = ("A-1-1", "A-1-2");
    let (forwards, backwards) = ([s1, s2], [s2, s1]);

    for round in 0..50 {
        let (for_x, for_y) = tokio::join!(
            hold_seats(&app, &x.access_token, event, &forwards),
            hold_seats(&app, &y.access_token, event, &backwards),
        );
        let (for_x, for_y) = tokio::join!(step(for_x, 201), step(for_y, 201));

        let (winner, hold, problem) = match (for_x, for_y) {
            (Ok(hold), Err(problem)) => (&x, hold, problem),
            (Err(problem), Ok(hold)) => (&y, hold, problem),
            other => panic!("round {round}: exactly one hold must win: {other:?}"),
        };
        let both: BTreeSet<String> = [s1.to_owned(), s2.to_owned()].into();
        assert_eq!(seat_set(&hold["seatIds"]), both);
        assert!(is_type(&problem, "seats-unavailable"), "{problem}");
        assert_eq!(seat_set(&problem["conflicts"]), both, "{problem}");
        assert_eq!(counts(&availability(&app, event).await), (0, 2, 2));
        let released = send(
            &app,
            "DELETE",
            &format!("/api/orders/holds/{}", hold["holdId"].as_str().unwrap()),
            &winner.access_token,
            None,
        )
        .await;
        assert_eq!(released.status(), 204);
        assert_eq!(counts(&availability(&app, event).await), (0, 0, 4));
    }
    let audit = audit(&app, event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(audit.live_holds, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_order_holds_do_not_deadlock_on_sqlite() {
    opposite_order_holds_do_not_deadlock(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposite_order_holds_do_not_deadlock_on_postgres() {
    if postgres_or_skip("opposite_order_holds_do_not_deadlock_on_postgres") {
        opposite_order_holds_do_not_deadlock(true).await;
    }
}

/// C-06: the same purchase with the same `Idempotency-Key`, 20 times at once. One order is
/// placed; every other answer is its replay (same body, `Idempotent-Replayed: true`) or a
/// 409 with `Retry-After` while the first still runs.
async fn one_key_sent_twenty_times_at_once_places_one_order(postgres: bool) {
    const COPIES: usize = 20;
    let app = Arc::new(app(postgres, |_| {}).await);
    let sale = on_sale(&app, Seating::Reserved { rows: 1, seats: 5 }).await;
    let event = sale.event_id.clone();
    let buyer = app.signed_in_user().await;
    let token = buyer.access_token.clone();
    let hold = ok_json(
        hold_seats(&app, &token, &event, &["A-1-1", "B-1-2"]).await,
        201,
    )
    .await;
    let intent = pay(&app, &token, hold["holdId"].as_str().unwrap()).await;
    let body = Arc::new(purchase_body(&event, &hold, &intent));
    let key = uuid::Uuid::new_v4().to_string();
    let barrier = Arc::new(Barrier::new(COPIES));

    let tasks: Vec<_> = (0..COPIES)
        .map(|_| {
            let (app, barrier, body, token, key) = (
                app.clone(),
                barrier.clone(),
                body.clone(),
                token.clone(),
                key.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let response = purchase(&app, &token, &key, &body).await;
                let status = response.status().as_u16();
                let replayed = response
                    .headers()
                    .get("idempotent-replayed")
                    .map(|v| v.to_str().unwrap().to_owned());
                let retry_after = response.headers().get("retry-after").is_some();
                if status == 201 {
                    (
                        status,
                        replayed,
                        retry_after,
                        response.text().await.unwrap(),
                    )
                } else {
                    let problem = evently_testkit::assert_problem(response, 409).await;
                    (status, replayed, retry_after, problem.to_string())
                }
            })
        })
        .collect();
    let answers = futures_util::future::join_all(tasks).await;

    let mut originals = 0;
    let mut bodies = BTreeSet::new();
    let mut in_flight = 0;
    for answer in answers {
        let (status, replayed, retry_after, text) = answer.unwrap();
        if status == 201 {
            match replayed.as_deref() {
                None => originals += 1,
                Some("true") => {}
                Some(other) => panic!("Idempotent-Replayed: {other}"),
            }
            bodies.insert(text);
        } else {
            in_flight += 1;
            let problem: Value = serde_json::from_str(&text).unwrap();
            assert!(is_type(&problem, "request-in-flight"), "{problem}");
            assert!(
                retry_after,
                "a 409 in flight carries Retry-After: {problem}"
            );
            assert!(replayed.is_none());
        }
    }
    eprintln!(
        "{COPIES} copies of one key: 1 placed, {} replayed, {in_flight} in flight",
        COPIES - 1 - in_flight
    );
    assert_eq!(originals, 1, "exactly one request places the order");
    assert_eq!(bodies.len(), 1, "every 201 is the same answer: {bodies:?}");
    let first = bodies.into_iter().next().unwrap();
    let order: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order_count(&app, &token).await, 1);
    let listed = ok_json(
        send(&app, "GET", "/api/orders/orders", &token, None).await,
        200,
    )
    .await;
    assert_eq!(listed["orders"][0]["orderId"], order["orderId"]);
    // Afterwards the key still replays the one order, byte for byte.
    let again = purchase(&app, &token, &key, &body).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first);
    let audit = audit(&app, &event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!((audit.orders, audit.tickets, audit.sold_seats), (1, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_twenty_times_at_once_places_one_order_on_sqlite() {
    one_key_sent_twenty_times_at_once_places_one_order(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_sent_twenty_times_at_once_places_one_order_on_postgres() {
    if postgres_or_skip("one_key_sent_twenty_times_at_once_places_one_order_on_postgres") {
        one_key_sent_twenty_times_at_once_places_one_order(true).await;
    }
}

/// What became of one buyer's attempt in the expiry race.
#[derive(Debug)]
enum Race {
    /// The hold expired before it could be paid for (a slow machine).
    ExpiredBeforePaying,
    /// The purchase won: the order.
    Bought(Value),
    /// The expiry won: the purchase's problem.
    Expired(Value),
}

/// C-09: holds live 1 s; each buyer holds a place, pays, and buys 0.9 to 1.1 s after asking
/// for the hold, while the expiry task ends holds as they lapse. Each purchase either
/// succeeds (its seat sold) or is refused as expired (no order, the seat back on sale);
/// never both, never a seat sold and released.
async fn purchase_racing_its_hold_expiry_has_one_outcome(postgres: bool) {
    const ROUNDS: usize = 2;
    const PER_ROUND: usize = 10;
    let app = Arc::new(
        app(postgres, |c| {
            c.booking.hold_ttl_seconds = 1;
            c.booking.max_hold_lifetime_seconds = 1;
        })
        .await,
    );
    let sale = on_sale(
        &app,
        Seating::General {
            capacity: i64::try_from(ROUNDS * PER_ROUND).unwrap(),
        },
    )
    .await;
    let event = sale.event_id.clone();
    let mut rng = Rng::seeded("purchase racing expiry");

    let mut results = Vec::new();
    for _ in 0..ROUNDS {
        let buyers = buyers(&app, PER_ROUND).await;
        let barrier = Arc::new(Barrier::new(PER_ROUND));
        let tasks: Vec<_> = buyers
            .into_iter()
            .map(|buyer| {
                let (app, barrier, event) = (app.clone(), barrier.clone(), event.clone());
                let delay = Duration::from_millis(900 + rng.next() % 201);
                tokio::spawn(async move {
                    let token = buyer.access_token.as_str();
                    barrier.wait().await;
                    let asked = Instant::now();
                    let hold = ok_json(hold_quantity(&app, token, &event, 1).await, 201).await;
                    let paid = async {
                        let intent = step(
                            send(
                                &app,
                                "POST",
                                "/api/orders/payments/intent",
                                token,
                                Some(&json!({"holdId": hold["holdId"]})),
                            )
                            .await,
                            201,
                        )
                        .await?;
                        let confirm = json!({"paymentIntentId": intent["paymentIntentId"], "clientSecret": intent["clientSecret"]});
                        step(
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
                        .await
                    }
                    .await;
                    let race = match paid {
                        Err(problem) => {
                            assert!(is_type(&problem, "hold-expired"), "{problem}");
                            Race::ExpiredBeforePaying
                        }
                        Ok(intent) => {
                            tokio::time::sleep_until((asked + delay).into()).await;
                            let body = purchase_body(
                                &event,
                                &hold,
                                intent["paymentIntentId"].as_str().unwrap(),
                            );
                            let key = uuid::Uuid::new_v4().to_string();
                            match step(purchase(&app, token, &key, &body).await, 201).await {
                                Ok(order) => Race::Bought(order),
                                Err(problem) => Race::Expired(problem),
                            }
                        }
                    };
                    (buyer, hold, delay, race)
                })
            })
            .collect();
        for task in futures_util::future::join_all(tasks).await {
            results.push(task.unwrap());
        }
    }

    // Every hold has ended by now; wait for the expiry task to have swept them.
    wait_until_swept(&app, &event).await;
    let mut bought = BTreeSet::new();
    let mut tally: HashMap<&str, usize> = HashMap::new();
    for (buyer, hold, delay, race) in &results {
        let token = buyer.access_token.as_str();
        let hold_id = hold["holdId"].as_str().unwrap();
        let now = ok_json(
            send(
                &app,
                "GET",
                &format!("/api/orders/holds/{hold_id}"),
                token,
                None,
            )
            .await,
            200,
        )
        .await;
        match race {
            Race::Bought(order) => {
                *tally.entry("bought").or_default() += 1;
                assert_eq!(order["seatIds"], hold["seatIds"]);
                assert_eq!(now["status"], "purchased", "{now}");
                let id = order["orderId"].as_str().unwrap();
                let fetched = ok_json(
                    send(&app, "GET", &format!("/api/orders/{id}"), token, None).await,
                    200,
                )
                .await;
                assert_eq!(fetched["status"], "confirmed");
                assert_eq!(order_count(&app, token).await, 1);
                bought.extend(seat_set(&order["seatIds"]));
            }
            Race::Expired(problem) => {
                *tally.entry("expired").or_default() += 1;
                assert!(
                    is_type(problem, "hold-expired"),
                    "after {delay:?}: {problem}"
                );
                assert_eq!(now["status"], "expired", "{now}");
                assert_eq!(order_count(&app, token).await, 0, "no order for {hold_id}");
            }
            Race::ExpiredBeforePaying => {
                *tally.entry("expired before paying").or_default() += 1;
                assert_eq!(order_count(&app, token).await, 0);
            }
        }
    }
    eprintln!("purchase racing expiry: {tally:?}");
    let sold = i64::try_from(bought.len()).unwrap();
    let audit = audit(&app, &event).await;
    assert!(audit.is_sound(), "{audit:?}");
    assert_eq!(
        (
            audit.sold_seats,
            audit.tickets,
            audit.orders,
            audit.live_holds
        ),
        (sold, sold, sold, 0),
        "{audit:?}"
    );
    let capacity = i64::try_from(ROUNDS * PER_ROUND).unwrap();
    assert_eq!(
        counts(&availability(&app, &event).await),
        (sold, 0, capacity - sold)
    );
    let map = ok_json(
        send(
            &app,
            "GET",
            &format!("/api/orders/seats/{event}"),
            &sale.admin.access_token,
            None,
        )
        .await,
        200,
    )
    .await;
    let reserved: BTreeSet<String> = map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "reserved")
        .map(|s| s["seatId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reserved, bought);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchase_racing_its_hold_expiry_has_one_outcome_on_sqlite() {
    purchase_racing_its_hold_expiry_has_one_outcome(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purchase_racing_its_hold_expiry_has_one_outcome_on_postgres() {
    if postgres_or_skip("purchase_racing_its_hold_expiry_has_one_outcome_on_postgres") {
        purchase_racing_its_hold_expiry_has_one_outcome(true).await;
    }
}
