//! The behaviour every [`RecsStore`] backend must show. Each function is one test;
//! `evently_testkit::conformance_suite!` at the bottom runs them all against SQLite and, when
//! `EVENTLY_TEST_POSTGRES_URL` is set, against PostgreSQL, each on a fresh database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use evently_core::config::DatabaseConfig;
use evently_recs::domain::Favourites;
use evently_recs::domain::rank::CoEdge;
use evently_recs::domain::{DAY_MS, EventFeatures, EventId, EventStatus};
use evently_recs::store::{
    CatalogChange, ImportedOrder, MAX_EVENTS_PER_BUYER, OrderChange, PreferencesChange, RecsStore,
    SqlRecsStore,
};
use secrecy::SecretString;
use uuid::Uuid;

type Subject = Arc<dyn RecsStore>;

async fn sqlite_store(dir: &Path) -> Subject {
    let url = SecretString::from(format!("sqlite://{}", dir.join("recs.db").display()));
    let db = evently_core::db::connect_sqlite(&url).await.unwrap();
    Arc::new(SqlRecsStore::sqlite(db).await.unwrap())
}

async fn postgres_store(url: String, schema: String) -> Subject {
    let pool = evently_core::db::connect_postgres(
        &SecretString::from(url),
        &schema,
        &DatabaseConfig::default(),
    )
    .await
    .unwrap();
    Arc::new(SqlRecsStore::postgres(pool).await.unwrap())
}

const NOW: i64 = 1_900_000_000_000;

fn eid(n: u128) -> EventId {
    EventId(Uuid::from_u128(n))
}

fn user(n: u128) -> Uuid {
    Uuid::from_u128(1_000_000 + n)
}

fn features(n: u128) -> EventFeatures {
    EventFeatures {
        id: eid(n),
        organizer_id: Uuid::from_u128(500),
        name: format!("Zoë's 🎟 night {n}"),
        description: Some("Jazz in the park".into()),
        event_type: Some("concert".into()),
        tags: vec!["jazz".into(), "swing".into()],
        city: Some("Berlin".into()),
        venue_id: Some(Uuid::from_u128(900)),
        base_price: 4500,
        currency: "EUR".into(),
        event_date: NOW + 10 * DAY_MS,
        status: EventStatus::OnSale,
    }
}

fn order(u: u128, e: u128, placed: bool) -> OrderChange {
    OrderChange {
        user_id: user(u),
        event_id: eid(e),
        placed,
        at: NOW,
    }
}

async fn place(store: &Subject, u: u128, e: u128) {
    assert!(
        store
            .apply_order(Uuid::now_v7(), &order(u, e, true), NOW)
            .await
            .unwrap()
    );
}

async fn cancel(store: &Subject, u: u128, e: u128) {
    assert!(
        store
            .apply_order(Uuid::now_v7(), &order(u, e, false), NOW)
            .await
            .unwrap()
    );
}

fn pair(store_pairs: &[(EventId, EventId, i64)], a: u128, b: u128) -> i64 {
    store_pairs
        .iter()
        .find(|(x, y, _)| *x == eid(a) && *y == eid(b))
        .map_or(0, |(_, _, n)| *n)
}

pub async fn catalogue_changes_are_applied_once(store: Subject) {
    let created = Uuid::now_v7();
    let one = features(1);

    assert!(
        store
            .apply_catalog(created, &CatalogChange::Upsert(one.clone()), NOW)
            .await
            .unwrap()
    );
    let mut renamed = one.clone();
    renamed.name = "Renamed".into();
    assert!(
        !store
            .apply_catalog(created, &CatalogChange::Upsert(renamed), NOW)
            .await
            .unwrap(),
        "a redelivery changes nothing"
    );
    assert_eq!(store.events().await.unwrap(), std::slice::from_ref(&one));

    let status = CatalogChange::Status {
        event_id: one.id,
        status: EventStatus::SoldOut,
    };
    store
        .apply_catalog(Uuid::now_v7(), &status, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.events().await.unwrap()[0].status,
        EventStatus::SoldOut
    );

    let unknown = CatalogChange::Deleted { event_id: eid(99) };
    assert!(
        store
            .apply_catalog(Uuid::now_v7(), &unknown, NOW)
            .await
            .unwrap()
    );
    let gone = CatalogChange::Deleted { event_id: one.id };
    store
        .apply_catalog(Uuid::now_v7(), &gone, NOW)
        .await
        .unwrap();
    assert!(store.events().await.unwrap().is_empty());
}

pub async fn pairs_are_read_only_with_three_buyers(store: Subject) {
    for u in 1..=2 {
        place(&store, u, 1).await;
        place(&store, u, 2).await;
    }
    place(&store, 3, 1).await;

    assert!(
        store.co_purchases(&[eid(1)], 10).await.unwrap().is_empty(),
        "two buyers of a pair reveal too much"
    );

    place(&store, 3, 2).await;
    let edges = store.co_purchases(&[eid(1), eid(2)], 10).await.unwrap();

    assert_eq!(
        edges,
        [
            CoEdge {
                anchor: eid(1),
                other: eid(2),
                together: 3,
                anchor_buyers: 3,
                other_buyers: 3
            },
            CoEdge {
                anchor: eid(2),
                other: eid(1),
                together: 3,
                anchor_buyers: 3,
                other_buyers: 3
            },
        ]
    );
}

pub async fn edges_are_ranked_and_capped_per_anchor(store: Subject) {
    // Event 1 with 2 (4 buyers) and with 3 (3 buyers).
    for u in 1..=4 {
        place(&store, u, 1).await;
        place(&store, u, 2).await;
    }
    for u in 1..=3 {
        place(&store, u, 3).await;
    }

    let all = store.co_purchases(&[eid(1)], 10).await.unwrap();
    let top = store.co_purchases(&[eid(1)], 1).await.unwrap();

    let others: Vec<EventId> = all.iter().map(|e| e.other).collect();
    assert_eq!(others, [eid(2), eid(3)]);
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].other, eid(2));
    assert_eq!(top[0].together, 4);
}

pub async fn cancellations_take_back_what_orders_added(store: Subject) {
    place(&store, 1, 1).await;
    place(&store, 1, 2).await;
    // A second order for the same event: still one buyer, one pair.
    place(&store, 1, 2).await;
    let snap = store.snapshot().await.unwrap();
    assert_eq!(pair(&snap.pairs, 1, 2), 1);
    assert_eq!(snap.ownership, [(user(1), eid(1), 1), (user(1), eid(2), 2)]);

    cancel(&store, 1, 2).await;
    let snap = store.snapshot().await.unwrap();
    assert_eq!(pair(&snap.pairs, 1, 2), 1, "one live order remains");

    cancel(&store, 1, 2).await;
    let snap = store.snapshot().await.unwrap();
    assert_eq!(pair(&snap.pairs, 1, 2), 0);
    assert!(snap.pairs.is_empty());
    assert_eq!(snap.buyers, [(eid(1), 1)]);
    assert_eq!(store.purchases(user(1)).await.unwrap().len(), 1);

    // A cancellation never seen placed changes nothing.
    cancel(&store, 7, 1).await;
    assert_eq!(store.snapshot().await.unwrap().buyers, [(eid(1), 1)]);
}

pub async fn redelivered_orders_change_nothing(store: Subject) {
    let id = Uuid::now_v7();
    let change = order(1, 1, true);

    assert!(store.apply_order(id, &change, NOW).await.unwrap());
    assert!(!store.apply_order(id, &change, NOW).await.unwrap());

    let snap = store.snapshot().await.unwrap();
    assert_eq!(snap.ownership, [(user(1), eid(1), 1)]);
    assert_eq!(snap.buyers, [(eid(1), 1)]);
}

pub async fn buyers_of_more_than_fifty_events_are_left_out_of_pairs(store: Subject) {
    let limit = u128::try_from(MAX_EVENTS_PER_BUYER).unwrap();
    for e in 1..=limit {
        place(&store, 1, e).await;
    }
    let snap = store.snapshot().await.unwrap();
    assert_eq!(
        snap.pairs.len(),
        usize::try_from(limit * (limit - 1)).unwrap()
    );

    place(&store, 1, limit + 1).await;
    let snap = store.snapshot().await.unwrap();
    assert!(
        snap.pairs.is_empty(),
        "a bulk buyer's pairs no longer count"
    );
    assert_eq!(snap.buyers.len(), usize::try_from(limit + 1).unwrap());

    cancel(&store, 1, 1).await;
    let snap = store.snapshot().await.unwrap();
    assert_eq!(
        pair(&snap.pairs, 2, 3),
        1,
        "back to 50 events, pairs count again"
    );
    assert_eq!(pair(&snap.pairs, 1, 2), 0);
    assert_eq!(
        snap.pairs.len(),
        usize::try_from(limit * (limit - 1)).unwrap()
    );
}

pub async fn popularity_counts_buyers_and_recent_ones(store: Subject) {
    let old = OrderChange {
        at: NOW - 30 * DAY_MS,
        ..order(1, 1, true)
    };
    store.apply_order(Uuid::now_v7(), &old, NOW).await.unwrap();
    place(&store, 2, 1).await;
    place(&store, 2, 2).await;

    let figures = store.popularity(NOW - 7 * DAY_MS).await.unwrap();

    assert_eq!(figures, [(eid(1), 2, 1), (eid(2), 1, 1)]);
}

/// The pair counts of `owned` computed from scratch: what replaying the stream into an
/// empty projection must give.
fn pairs_from_scratch(owned: &BTreeMap<u128, BTreeSet<u128>>) -> Vec<(EventId, EventId, i64)> {
    let mut counts: BTreeMap<(EventId, EventId), i64> = BTreeMap::new();
    for events in owned.values() {
        if events.len() > usize::try_from(MAX_EVENTS_PER_BUYER).unwrap() {
            continue;
        }
        for a in events {
            for b in events {
                if a != b {
                    *counts.entry((eid(*a), eid(*b))).or_default() += 1;
                }
            }
        }
    }
    let mut pairs: Vec<_> = counts.into_iter().map(|((a, b), n)| (a, b, n)).collect();
    pairs.sort_by_key(|(a, b, _)| (a.0, b.0));
    pairs
}

pub async fn incremental_state_equals_a_rebuild_from_the_stream(store: Subject) {
    // A deterministic stream of orders and cancellations, with redeliveries.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        u128::from(seed % n)
    };
    let mut owned: BTreeMap<u128, BTreeMap<u128, i64>> = BTreeMap::new();
    let mut delivered: Vec<(Uuid, OrderChange)> = Vec::new();
    for _ in 0..300 {
        let (u, e) = (next(12), next(15));
        let orders = owned.entry(u).or_default().entry(e).or_default();
        let placed = *orders == 0 || next(3) > 0;
        *orders = (*orders + if placed { 1 } else { -1 }).max(0);
        let change = order(u, e, placed);
        let id = Uuid::now_v7();
        store.apply_order(id, &change, NOW).await.unwrap();
        delivered.push((id, change));
        if next(5) == 0 {
            // At-least-once: an earlier event comes again.
            let i = usize::try_from(next(delivered.len() as u64)).unwrap();
            let (id, again) = delivered[i];
            assert!(!store.apply_order(id, &again, NOW).await.unwrap());
        }
    }
    let ownership: BTreeMap<u128, BTreeSet<u128>> = owned
        .iter()
        .map(|(u, events)| {
            (
                *u,
                events
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(e, _)| *e)
                    .collect(),
            )
        })
        .collect();

    let snap = store.snapshot().await.unwrap();

    assert_eq!(snap.pairs, pairs_from_scratch(&ownership));
    let mut expected_owners: Vec<(Uuid, EventId, i64)> = owned
        .iter()
        .flat_map(|(u, events)| {
            events
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(e, n)| (user(*u), eid(*e), *n))
        })
        .collect();
    expected_owners.sort_by_key(|(u, e, _)| (*u, e.0));
    assert_eq!(snap.ownership, expected_owners);
    for (e, buyers) in &snap.buyers {
        let counted = ownership
            .values()
            .filter(|s| s.contains(&e.0.as_u128()))
            .count();
        assert_eq!(*buyers, i64::try_from(counted).unwrap());
    }

    // Replaying every event once more changes nothing.
    for (id, change) in &delivered {
        assert!(!store.apply_order(*id, change, NOW).await.unwrap());
    }
    assert_eq!(store.snapshot().await.unwrap(), snap);
}

fn preferences(u: u128, version: i64, cities: &[&str], types: &[&str]) -> PreferencesChange {
    PreferencesChange {
        user_id: user(u),
        version,
        cities: cities.iter().map(|c| (*c).to_owned()).collect(),
        types: types.iter().map(|t| (*t).to_owned()).collect(),
    }
}

pub async fn favourites_are_applied_once_and_the_newest_version_wins(store: Subject) {
    let second = Uuid::now_v7();
    let v2 = preferences(1, 2, &["Berlin", " oslo "], &["concert"]);

    assert!(store.apply_preferences(second, &v2, NOW).await.unwrap());
    assert!(
        !store
            .apply_preferences(second, &preferences(1, 9, &["Rome"], &[]), NOW)
            .await
            .unwrap(),
        "a redelivery changes nothing"
    );
    assert!(
        store
            .apply_preferences(Uuid::now_v7(), &preferences(1, 1, &["Paris"], &[]), NOW)
            .await
            .unwrap(),
        "an older version is recorded as applied"
    );
    assert_eq!(
        store.favourites(user(1)).await.unwrap(),
        Favourites {
            cities: vec!["berlin".into(), "oslo".into()],
            types: vec!["concert".into()],
        },
        "but changes nothing"
    );
    assert_eq!(
        store.favourites(user(2)).await.unwrap(),
        Favourites::default()
    );

    let cleared = preferences(1, 3, &[], &[]);
    store
        .apply_preferences(Uuid::now_v7(), &cleared, NOW)
        .await
        .unwrap();

    assert_eq!(
        store.favourites(user(1)).await.unwrap(),
        Favourites::default()
    );
    assert_eq!(
        store.snapshot().await.unwrap().favourites,
        [(user(1), 3, Vec::new(), Vec::new())]
    );
}

pub async fn favourites_in_any_order_equal_the_newest_documents(store: Subject) {
    // Five versions of each of six users' preferences, delivered shuffled, some twice.
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % n).unwrap()
    };
    let cities = ["Berlin", "Paris", "Oslo", "Rome"];
    let types = ["concert", "sports", "theatre"];
    let mut stream: Vec<(Uuid, PreferencesChange)> = Vec::new();
    for u in 1..=6 {
        for version in 1..=5 {
            let change = preferences(
                u,
                version,
                &cities[..next(cities.len() as u64 + 1)],
                &[types[next(types.len() as u64)]],
            );
            stream.push((Uuid::now_v7(), change));
        }
    }
    let newest: Vec<(Uuid, i64, Vec<String>, Vec<String>)> = stream
        .iter()
        .filter(|(_, c)| c.version == 5)
        .map(|(_, c)| (c.user_id, c.version, c.cities.clone(), c.types.clone()))
        .collect();
    for i in (1..stream.len()).rev() {
        let j = next(i as u64 + 1);
        stream.swap(i, j);
    }

    for (i, (id, change)) in stream.iter().enumerate() {
        assert!(store.apply_preferences(*id, change, NOW).await.unwrap());
        if next(4) == 0 {
            let (again, earlier) = &stream[next(i as u64 + 1)];
            assert!(!store.apply_preferences(*again, earlier, NOW).await.unwrap());
        }
    }
    let snap = store.snapshot().await.unwrap();

    assert_eq!(snap.favourites, newest);
    for (id, change) in &stream {
        assert!(!store.apply_preferences(*id, change, NOW).await.unwrap());
    }
    assert_eq!(store.snapshot().await.unwrap(), snap);
}

pub async fn an_import_leaves_what_the_stream_would_and_orders_continue_from_it(store: Subject) {
    let events: Vec<EventFeatures> = (1..=60).map(features).collect();
    let mut orders: Vec<ImportedOrder> = Vec::new();
    let mut owned: BTreeMap<u128, BTreeSet<u128>> = BTreeMap::new();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        u128::from(seed % n)
    };
    for _ in 0..200 {
        let (u, e) = (next(10), 1 + next(20));
        owned.entry(u).or_default().insert(e);
        orders.push(ImportedOrder {
            user: user(u),
            event: eid(e),
            at: NOW - i64::try_from(next(1000)).unwrap(),
        });
    }
    // A bulk account, left out of pair counts.
    for e in 1..=55 {
        owned.entry(99).or_default().insert(e);
        orders.push(ImportedOrder {
            user: user(99),
            event: eid(e),
            at: NOW,
        });
    }
    let liked = [
        preferences(1, 1, &["Paris"], &[]),
        preferences(1, 2, &["Berlin"], &["concert"]),
    ];

    store.import(&events, &orders, &liked, NOW).await.unwrap();
    let snap = store.snapshot().await.unwrap();

    assert_eq!(snap.events, events);
    assert_eq!(snap.pairs, pairs_from_scratch(&owned));
    let counts = |u: u128, e: u128| {
        orders
            .iter()
            .filter(|o| o.user == user(u) && o.event == eid(e))
            .count()
    };
    let mut expected: Vec<(Uuid, EventId, i64)> = owned
        .iter()
        .flat_map(|(u, events)| {
            events
                .iter()
                .map(move |e| (user(*u), eid(*e), i64::try_from(counts(*u, *e)).unwrap()))
        })
        .collect();
    expected.sort_by_key(|(u, e, _)| (*u, e.0));
    assert_eq!(snap.ownership, expected);
    for (e, buyers) in &snap.buyers {
        let counted = owned
            .values()
            .filter(|s| s.contains(&e.0.as_u128()))
            .count();
        assert_eq!(*buyers, i64::try_from(counted).unwrap());
    }
    assert_eq!(
        snap.favourites,
        [(
            user(1),
            2,
            vec!["Berlin".to_owned()],
            vec!["concert".to_owned()]
        )]
    );
    let latest = store.purchases(user(99)).await.unwrap();
    assert!(latest.iter().all(|p| p.at == NOW));
    assert!(
        store.import(&[], &orders, &[], NOW).await.is_err(),
        "only into a store without orders"
    );

    // Orders and cancellations after the import count on from it.
    place(&store, 3, 40).await;
    owned.entry(3).or_default().insert(40);
    let first = *owned[&4].first().unwrap();
    for _ in 0..counts(4, first) {
        cancel(&store, 4, first).await;
    }
    owned.entry(4).or_default().remove(&first);

    assert_eq!(
        store.snapshot().await.unwrap().pairs,
        pairs_from_scratch(&owned)
    );
}

evently_testkit::conformance_suite!(
    suite: crate::conformance,
    sqlite: super::sqlite_store,
    postgres: super::postgres_store,
    tests: [
        catalogue_changes_are_applied_once,
        pairs_are_read_only_with_three_buyers,
        edges_are_ranked_and_capped_per_anchor,
        cancellations_take_back_what_orders_added,
        redelivered_orders_change_nothing,
        buyers_of_more_than_fifty_events_are_left_out_of_pairs,
        popularity_counts_buyers_and_recent_ones,
        incremental_state_equals_a_rebuild_from_the_stream,
        favourites_are_applied_once_and_the_newest_version_wins,
        favourites_in_any_order_equal_the_newest_documents,
        an_import_leaves_what_the_stream_would_and_orders_continue_from_it,
    ]
);
