//! The behaviour every [`AnalyticsStore`] backend must show. Each function is one test;
//! `evently_testkit::conformance_suite!` at the bottom runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use evently_analytics::domain::{
    Activity, Change, EventInfo, InventoryFact, InventoryKind, MINUTE_MS, Release,
};
use evently_analytics::store::{AnalyticsStore, Scope, SqlAnalyticsStore};
use evently_bus::catalog::Availability;
use evently_core::config::DatabaseConfig;
use secrecy::SecretString;
use uuid::Uuid;

type Subject = Arc<dyn AnalyticsStore>;

async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("analytics.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    Arc::new(SqlAnalyticsStore::sqlite(db).await.unwrap())
}

async fn postgres_store(url: String, schema: String) -> Subject {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    Arc::new(SqlAnalyticsStore::postgres(pool).await.unwrap())
}

const NOW: i64 = 1_900_000_020_000;

fn eid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn organizer(n: u128) -> Uuid {
    Uuid::from_u128(500 + n)
}

fn info(n: u128, org: u128) -> Change {
    Change::Event(
        EventInfo {
            event_id: eid(n),
            organizer_id: organizer(org),
            name: format!("Zoë's 🎟 night {n}"),
            currency: "EUR".into(),
            status: "ON_SALE".into(),
            sale_start: NOW - 3_600_000,
            time_zone: "Europe/Berlin".into(),
        },
        NOW - 7_200_000,
    )
}

/// A running inventory: each fact moves it the way booking would, and carries it.
struct Inventory {
    event: u128,
    capacity: i64,
    held: i64,
    sold: i64,
    version: i64,
}

impl Inventory {
    fn new(event: u128, capacity: i64) -> Self {
        Self {
            event,
            capacity,
            held: 0,
            sold: 0,
            version: 0,
        }
    }

    fn fact(
        &mut self,
        kind: InventoryKind,
        seats: i64,
        amount: i64,
        currency: Option<&str>,
        at: i64,
    ) -> Change {
        match kind {
            InventoryKind::Held | InventoryKind::Offered => self.held += seats,
            InventoryKind::Released(_) => self.held -= seats,
            InventoryKind::Placed => {
                self.held -= seats;
                self.sold += seats;
            }
            InventoryKind::Cancelled => self.sold -= seats,
            InventoryKind::SoldOut => {}
        }
        self.version += 1;
        Change::Inventory(InventoryFact {
            kind,
            event_id: eid(self.event),
            at,
            seats,
            amount,
            currency: currency.map(str::to_owned),
            availability: Availability {
                capacity: self.capacity,
                available: self.capacity - self.held - self.sold,
                held: self.held,
                sold: self.sold,
                version: self.version,
            },
        })
    }
}

async fn apply(store: &Subject, change: &Change) {
    assert!(store.apply(Uuid::now_v7(), change, NOW).await.unwrap());
}

pub async fn a_redelivered_domain_event_changes_nothing(store: Subject) {
    let mut inv = Inventory::new(1, 10);
    let id = Uuid::now_v7();
    let placed = inv.fact(InventoryKind::Placed, 2, 9000, Some("EUR"), NOW);

    assert!(store.apply(id, &placed, NOW).await.unwrap());
    assert!(!store.apply(id, &placed, NOW).await.unwrap());

    let f = store.event(eid(1)).await.unwrap().unwrap();
    assert_eq!((f.orders, f.tickets, f.holds_converted), (1, 2, 1));
    assert_eq!(f.money["EUR"], (9000, 0));
}

pub async fn every_counter_has_its_reverse_and_money_stays_per_currency(store: Subject) {
    apply(&store, &info(1, 1)).await;
    let mut inv = Inventory::new(1, 10);
    let script = [
        inv.fact(InventoryKind::Held, 2, 0, None, NOW),
        inv.fact(InventoryKind::Placed, 2, 9000, Some("EUR"), NOW),
        inv.fact(InventoryKind::Held, 1, 0, None, NOW),
        inv.fact(InventoryKind::Released(Release::Expired), 1, 0, None, NOW),
        inv.fact(InventoryKind::Held, 3, 0, None, NOW),
        inv.fact(InventoryKind::Released(Release::Released), 3, 0, None, NOW),
        inv.fact(InventoryKind::Held, 1, 0, None, NOW + MINUTE_MS),
        inv.fact(InventoryKind::Placed, 1, 1500, Some("USD"), NOW + MINUTE_MS),
        inv.fact(InventoryKind::Offered, 1, 0, None, NOW + MINUTE_MS),
        inv.fact(
            InventoryKind::Cancelled,
            2,
            9000,
            Some("EUR"),
            NOW + 2 * MINUTE_MS,
        ),
    ];
    for change in &script {
        apply(&store, change).await;
    }

    let f = store.event(eid(1)).await.unwrap().unwrap();

    assert_eq!(f.organizer_id, Some(organizer(1)));
    assert_eq!((f.capacity, f.sold, f.held, f.available), (10, 1, 1, 8));
    assert_eq!(f.version, 10);
    assert_eq!((f.orders, f.tickets, f.cancellations), (1, 1, 1));
    assert_eq!(
        (
            f.holds_created,
            f.holds_expired,
            f.holds_released,
            f.holds_converted,
            f.waitlist_offers
        ),
        (5, 1, 1, 2, 1)
    );
    assert_eq!(f.live_holds(), 1, "the waitlist offer");
    assert_eq!(
        f.money,
        BTreeMap::from([("EUR".into(), (9000, 9000)), ("USD".into(), (1500, 0))])
    );
    let minutes = store
        .minutes(Scope::Event(eid(1)), NOW - MINUTE_MS, NOW + 3 * MINUTE_MS)
        .await
        .unwrap();
    let minute = |t: i64| t.div_euclid(MINUTE_MS) * MINUTE_MS;
    assert_eq!(
        minutes,
        vec![
            (
                minute(NOW),
                Activity {
                    holds: 3,
                    orders_placed: 1,
                    tickets_sold: 2,
                    money: BTreeMap::from([("EUR".into(), (9000, 0))]),
                    ..Activity::default()
                }
            ),
            (
                minute(NOW + MINUTE_MS),
                Activity {
                    holds: 2,
                    orders_placed: 1,
                    tickets_sold: 1,
                    money: BTreeMap::from([("USD".into(), (1500, 0))]),
                    ..Activity::default()
                }
            ),
            (
                minute(NOW + 2 * MINUTE_MS),
                Activity {
                    orders_cancelled: 1,
                    tickets_cancelled: 2,
                    money: BTreeMap::from([("EUR".into(), (0, 9000))]),
                    ..Activity::default()
                }
            ),
        ]
    );
}

pub async fn seat_figures_are_those_of_the_newest_inventory_version(store: Subject) {
    let mut inv = Inventory::new(1, 10);
    let first = inv.fact(InventoryKind::Held, 2, 0, None, NOW);
    let second = inv.fact(InventoryKind::Held, 3, 0, None, NOW);

    apply(&store, &second).await;
    apply(&store, &first).await;

    let f = store.event(eid(1)).await.unwrap().unwrap();
    assert_eq!((f.held, f.available, f.version), (5, 5, 2));
    assert_eq!(f.holds_created, 2, "both holds counted");
}

pub async fn a_sell_out_is_dated_once(store: Subject) {
    let mut inv = Inventory::new(1, 2);
    apply(&store, &info(1, 1)).await;
    apply(&store, &inv.fact(InventoryKind::Held, 2, 0, None, NOW)).await;
    apply(&store, &inv.fact(InventoryKind::SoldOut, 0, 0, None, NOW)).await;
    apply(
        &store,
        &inv.fact(
            InventoryKind::Released(Release::Expired),
            2,
            0,
            None,
            NOW + 5,
        ),
    )
    .await;
    apply(&store, &inv.fact(InventoryKind::Held, 2, 0, None, NOW + 9)).await;
    apply(
        &store,
        &inv.fact(InventoryKind::SoldOut, 0, 0, None, NOW + 9),
    )
    .await;

    let f = store.event(eid(1)).await.unwrap().unwrap();
    assert_eq!(f.sold_out_at, Some(NOW));
    assert_eq!(f.sale_start, Some(NOW - 3_600_000));
}

pub async fn scopes_select_an_organizers_events_or_all(store: Subject) {
    apply(&store, &info(1, 1)).await;
    apply(&store, &info(2, 1)).await;
    apply(&store, &info(3, 2)).await;
    for n in [1, 2, 3] {
        let mut inv = Inventory::new(n, 10);
        apply(
            &store,
            &inv.fact(InventoryKind::Placed, 1, 100, Some("EUR"), NOW),
        )
        .await;
    }
    apply(&store, &Change::Deleted { event_id: eid(2) }).await;
    apply(
        &store,
        &Change::Status {
            event_id: eid(3),
            status: "SOLD_OUT".into(),
        },
    )
    .await;

    let mine = store.events(Scope::Organizer(organizer(1))).await.unwrap();
    let all = store.events(Scope::Platform).await.unwrap();
    let minutes = store
        .minutes(
            Scope::Organizer(organizer(1)),
            NOW - MINUTE_MS,
            NOW + MINUTE_MS,
        )
        .await
        .unwrap();
    let platform = store
        .minutes(Scope::Platform, NOW - MINUTE_MS, NOW + MINUTE_MS)
        .await
        .unwrap();
    let outside = store
        .minutes(Scope::Platform, NOW + MINUTE_MS, NOW + 2 * MINUTE_MS)
        .await
        .unwrap();

    assert_eq!(
        mine.iter()
            .map(|e| (e.event_id, e.deleted))
            .collect::<Vec<_>>(),
        vec![(eid(1), false), (eid(2), true)]
    );
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].status, "SOLD_OUT");
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].1.orders_placed, 2);
    assert_eq!(minutes[0].1.money["EUR"], (200, 0));
    assert_eq!(platform[0].1.orders_placed, 3);
    assert!(outside.is_empty());
}

pub async fn sales_before_the_event_is_described_are_kept(store: Subject) {
    let mut inv = Inventory::new(1, 10);
    apply(
        &store,
        &inv.fact(InventoryKind::Placed, 1, 100, Some("EUR"), NOW),
    )
    .await;

    assert_eq!(
        store.events(Scope::Organizer(organizer(1))).await.unwrap(),
        vec![]
    );
    apply(&store, &info(1, 1)).await;

    let f = store.event(eid(1)).await.unwrap().unwrap();
    assert_eq!((f.organizer_id, f.orders), (Some(organizer(1)), 1));
    assert_eq!(
        store
            .events(Scope::Organizer(organizer(1)))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.event(eid(9)).await.unwrap(), None);
}

fn waitlist(n: u128, delta: i64) -> Change {
    Change::Waitlist {
        event_id: eid(n),
        delta,
    }
}

pub async fn the_waitlist_length_follows_joins_departures_and_offers(store: Subject) {
    apply(&store, &info(1, 1)).await;
    let mut inv = Inventory::new(1, 2);
    let join = waitlist(1, 1);
    let joined_once = Uuid::now_v7();
    for change in [&join, &join, &join] {
        apply(&store, change).await;
    }
    assert!(store.apply(joined_once, &join, NOW).await.unwrap());
    // Redelivered: nothing moves.
    assert!(!store.apply(joined_once, &join, NOW).await.unwrap());
    assert_eq!(
        store.event(eid(1)).await.unwrap().unwrap().waitlist_length,
        4
    );

    // The head is offered seats (off the list), then leaves (already off it); a waiting
    // buyer leaves.
    let offered = inv.fact(InventoryKind::Offered, 1, 0, None, NOW);
    apply(&store, &offered).await;
    apply(&store, &waitlist(1, 0)).await;
    apply(&store, &waitlist(1, -1)).await;

    let f = store.event(eid(1)).await.unwrap().unwrap();
    assert_eq!((f.waitlist_length, f.waitlist_offers), (2, 1));
    assert_eq!(f.time_zone, "Europe/Berlin");
    // A waitlist change of an event analytics has not heard of yet is kept.
    apply(&store, &waitlist(2, 1)).await;
    assert_eq!(
        store.event(eid(2)).await.unwrap().unwrap().waitlist_length,
        1
    );

    // A stream from before joins were published: an offer and a departure of entries it
    // never saw join read as nobody waiting, not as a negative length.
    apply(&store, &info(3, 1)).await;
    let mut old = Inventory::new(3, 2);
    apply(&store, &old.fact(InventoryKind::Offered, 1, 0, None, NOW)).await;
    apply(&store, &waitlist(3, -1)).await;
    assert_eq!(
        store.event(eid(3)).await.unwrap().unwrap().waitlist_length,
        0
    );
}

pub async fn the_time_zone_follows_the_events_description(store: Subject) {
    apply(&store, &info(1, 1)).await;
    let Change::Event(mut moved, at) = info(1, 1) else {
        unreachable!()
    };
    moved.time_zone = "America/New_York".into();
    apply(&store, &Change::Event(moved, at)).await;

    let f = store.event(eid(1)).await.unwrap().unwrap();
    assert_eq!(f.time_zone, "America/New_York");
    assert_eq!(
        store.events(Scope::Platform).await.unwrap()[0].time_zone,
        "America/New_York"
    );
}

/// The same stream applied in another order, with redeliveries, gives the same state as
/// applied once in order: what a rebuild from the streams relies on.
pub async fn a_rebuild_in_any_order_with_redeliveries_equals_the_incremental_state(store: Subject) {
    let mut inv = Inventory::new(1, 3);
    let mut stream: Vec<(Uuid, Change)> = vec![
        (Uuid::now_v7(), info(1, 1)),
        (
            Uuid::now_v7(),
            inv.fact(InventoryKind::Held, 3, 0, None, NOW),
        ),
        (
            Uuid::now_v7(),
            inv.fact(InventoryKind::Placed, 3, 300, Some("EUR"), NOW),
        ),
        (
            Uuid::now_v7(),
            inv.fact(InventoryKind::SoldOut, 0, 0, None, NOW),
        ),
        (Uuid::now_v7(), waitlist(1, 1)),
        (Uuid::now_v7(), waitlist(1, 1)),
        (Uuid::now_v7(), waitlist(1, 1)),
        (
            Uuid::now_v7(),
            inv.fact(
                InventoryKind::Cancelled,
                1,
                100,
                Some("EUR"),
                NOW + MINUTE_MS,
            ),
        ),
        (
            Uuid::now_v7(),
            inv.fact(InventoryKind::Offered, 1, 0, None, NOW + MINUTE_MS),
        ),
        (Uuid::now_v7(), waitlist(1, -1)),
        (Uuid::now_v7(), waitlist(1, 0)),
    ];
    for (id, change) in &stream {
        assert!(store.apply(*id, change, NOW).await.unwrap());
    }
    let incremental = store.snapshot().await.unwrap();
    assert_eq!(incremental.events[0].waitlist_length, 1);

    // The same stream for event 2, backwards and twice over.
    let other = |change: &Change| match change.clone() {
        Change::Event(mut info, at) => {
            info.event_id = eid(2);
            Change::Event(info, at)
        }
        Change::Inventory(mut fact) => {
            fact.event_id = eid(2);
            Change::Inventory(fact)
        }
        Change::Waitlist { delta, .. } => waitlist(2, delta),
        other => other,
    };
    stream.reverse();
    let again: Vec<(Uuid, Change)> = stream
        .iter()
        .map(|(_, change)| (Uuid::now_v7(), other(change)))
        .collect();
    for (id, change) in again.iter().chain(&again) {
        store.apply(*id, change, NOW).await.unwrap();
    }

    let both = store.snapshot().await.unwrap();
    let mut rebuilt = both.events[1].clone();
    rebuilt.event_id = eid(1);
    assert_eq!(rebuilt, incremental.events[0]);
    let minutes = |e: Uuid| {
        both.minutes
            .iter()
            .filter(|(id, _, _)| *id == e)
            .map(|(_, m, a)| (*m, a.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(minutes(eid(2)), minutes(eid(1)));
}

/// A delivery applied as one batch (with redeliveries inside it and of it) gives the same
/// state as its domain events applied one at a time, and reports which were new.
pub async fn a_batch_applies_like_its_events_one_at_a_time(store: Subject) {
    let stream = |n: u128| {
        let mut inv = Inventory::new(n, 4);
        vec![
            (Uuid::now_v7(), info(n, 1)),
            (
                Uuid::now_v7(),
                inv.fact(InventoryKind::Held, 4, 0, None, NOW),
            ),
            (
                Uuid::now_v7(),
                inv.fact(InventoryKind::Placed, 2, 200, Some("EUR"), NOW),
            ),
            (Uuid::now_v7(), waitlist(n, 1)),
            (
                Uuid::now_v7(),
                inv.fact(InventoryKind::Placed, 2, 300, Some("EUR"), NOW + MINUTE_MS),
            ),
            (
                Uuid::now_v7(),
                inv.fact(InventoryKind::SoldOut, 0, 0, None, NOW + MINUTE_MS),
            ),
            (
                Uuid::now_v7(),
                inv.fact(
                    InventoryKind::Cancelled,
                    1,
                    100,
                    Some("EUR"),
                    NOW + 2 * MINUTE_MS,
                ),
            ),
        ]
    };
    for (id, change) in stream(1) {
        assert!(store.apply(id, &change, NOW).await.unwrap());
    }

    let batched = stream(2);
    let first: Vec<(Uuid, Change)> = batched[..4].iter().chain(&batched[1..2]).cloned().collect();
    assert_eq!(
        store.apply_batch(&first, NOW).await.unwrap(),
        [true, true, true, true, false],
        "a redelivery inside the batch is skipped"
    );
    assert_eq!(
        store.apply_batch(&batched, NOW).await.unwrap(),
        [false, false, false, false, true, true, true],
        "only the domain events not applied before are new"
    );
    assert_eq!(
        store.apply_batch(&batched, NOW).await.unwrap(),
        [false; 7],
        "a whole redelivered batch changes nothing"
    );

    let snapshot = store.snapshot().await.unwrap();
    let mut from_batches = snapshot.events[1].clone();
    from_batches.event_id = eid(1);
    from_batches.name.clone_from(&snapshot.events[0].name);
    assert_eq!(from_batches, snapshot.events[0]);
    let minutes = |e: Uuid| {
        snapshot
            .minutes
            .iter()
            .filter(|(id, _, _)| *id == e)
            .map(|(_, m, a)| (*m, a.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(minutes(eid(2)), minutes(eid(1)));
}

pub async fn a_snapshot_holds_everything_in_order(store: Subject) {
    apply(&store, &info(2, 1)).await;
    let mut a = Inventory::new(1, 10);
    let mut b = Inventory::new(2, 10);
    apply(
        &store,
        &b.fact(InventoryKind::Placed, 1, 100, Some("EUR"), NOW + MINUTE_MS),
    )
    .await;
    apply(
        &store,
        &a.fact(InventoryKind::Placed, 1, 100, Some("EUR"), NOW),
    )
    .await;
    apply(&store, &b.fact(InventoryKind::Held, 1, 0, None, NOW)).await;

    let snapshot = store.snapshot().await.unwrap();

    assert_eq!(
        snapshot
            .events
            .iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>(),
        vec![eid(1), eid(2)]
    );
    let keys: Vec<(Uuid, i64)> = snapshot.minutes.iter().map(|(e, m, _)| (*e, *m)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 3);
}

evently_testkit::conformance_suite!(
    suite: crate::conformance,
    sqlite: crate::conformance::sqlite_store,
    postgres: crate::conformance::postgres_store,
    tests: [
        a_redelivered_domain_event_changes_nothing,
        every_counter_has_its_reverse_and_money_stays_per_currency,
        seat_figures_are_those_of_the_newest_inventory_version,
        a_sell_out_is_dated_once,
        scopes_select_an_organizers_events_or_all,
        sales_before_the_event_is_described_are_kept,
        a_snapshot_holds_everything_in_order,
        the_waitlist_length_follows_joins_departures_and_offers,
        the_time_zone_follows_the_events_description,
        a_rebuild_in_any_order_with_redeliveries_equals_the_incremental_state,
        a_batch_applies_like_its_events_one_at_a_time,
    ]
);
