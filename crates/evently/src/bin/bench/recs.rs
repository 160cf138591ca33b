//! `evently-bench recs`: how good and how fast recommendations are.
//!
//! A generated world: events over the coming year (types, tags drawn from their type, cities
//! of uneven size, organizers who each run one type, a hidden quality per event) and users
//! with hidden tastes (one or two favourite types, a few favourite tags, a home city and
//! sometimes a second one). Each user's purchases are drawn from those tastes over the past
//! six months, a few bulk accounts buy at random; each user's last purchase is held out.
//! With `--favourites P`, a share P of the users also name their home cities and favourite
//! types in their preferences. Everything else is loaded into the recommendations service's
//! real store: all but the last [`STREAMED_ORDERS`] orders in one import (the state those
//! domain events would leave, in one transaction), then the rest as the domain events the
//! service consumes (`OrderPlaced`), applied one by one as its consumer does.
//!
//! Quality: for every user, the top 10 of the hybrid ranking and of three baselines
//! (content only, co-purchase only, most popular), all through the same filters and
//! diversity rule: HitRate@10 (the held-out event is in the ten), NDCG@10 (`1/log2(rank+1)`)
//! and catalogue coverage (share of recommendable events recommended to anyone).
//!
//! Speed: a real `evently serve` process on that store; `GET /api/recs` once per user (each
//! a cache miss) and `GET /api/recs/related` for random events, from many clients; p50/p99.

use anyhow::{Context, ensure};
use evently_bus::DomainEvent;
use evently_bus::catalog::{Availability, EventSnapshot, InventoryChange};
use evently_core::clock::SystemClock;
use evently_core::config::{Config, JwtConfig, RecsConfig};
use evently_core::identity::{JwtKeys, Role};
use evently_core::ids::UserId;
use evently_recs::RecsService;
use evently_recs::domain::similarity::Method;
use evently_recs::domain::{DAY_MS, EventFeatures, EventId};
use evently_recs::store::{ImportedOrder, PreferencesChange};
use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::server::{BENCH_JWT_SECRET, percentile, start_server};

/// What to generate and how hard to measure.
pub struct Options {
    /// Users with tastes.
    pub users: usize,
    /// Events over the coming year.
    pub events: usize,
    /// Orders in all (held-out purchases included), spread over the users; about 7.5 per
    /// user when absent.
    pub orders: Option<usize>,
    /// The share of users whose preferences name their home cities and favourite types.
    pub favourites: f64,
    /// Users whose held-out purchase is looked for (the first ones; all when larger).
    pub eval_users: usize,
    /// Concurrent HTTP clients.
    pub clients: usize,
    /// The generator's seed.
    pub seed: u64,
}

const TYPES: [(&str, [&str; 6], [&str; 4]); 8] = [
    (
        "concert",
        ["jazz", "rock", "pop", "techno", "folk", "blues"],
        ["Live", "Sessions", "Quartet", "Band"],
    ),
    (
        "theatre",
        [
            "drama",
            "musical",
            "shakespeare",
            "improv",
            "puppetry",
            "cabaret",
        ],
        ["Play", "Stage", "Company", "Premiere"],
    ),
    (
        "sports",
        [
            "football",
            "basketball",
            "tennis",
            "boxing",
            "cycling",
            "hockey",
        ],
        ["Cup", "Derby", "Open", "Final"],
    ),
    (
        "comedy",
        ["standup", "sketch", "satire", "roast", "clowning", "slam"],
        ["Comedy", "Laughs", "Club", "Special"],
    ),
    (
        "festival",
        ["food", "film", "beer", "lights", "books", "design"],
        ["Festival", "Fair", "Weekend", "Days"],
    ),
    (
        "opera",
        [
            "verdi", "mozart", "wagner", "puccini", "baroque", "operetta",
        ],
        ["Opera", "Gala", "Aria", "Evening"],
    ),
    (
        "dance",
        [
            "ballet",
            "tango",
            "salsa",
            "hiphop",
            "contemporary",
            "flamenco",
        ],
        ["Dance", "Ballet", "Moves", "Ensemble"],
    ),
    (
        "talk",
        ["science", "history", "tech", "travel", "politics", "art"],
        ["Talk", "Lecture", "Forum", "Conversation"],
    ),
];
const CITIES: [&str; 12] = [
    "Berlin", "Paris", "London", "Madrid", "Rome", "Vienna", "Prague", "Lisbon", "Oslo", "Dublin",
    "Zurich", "Warsaw",
];
const ORGANIZERS_PER_TYPE: usize = 10;
/// The latest orders applied as domain events, one transaction each, after the import.
const STREAMED_ORDERS: usize = 2000;
const BULK_ACCOUNTS: usize = 5;

/// A small, fast, seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// A standard normal draw (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// An index drawn with probability proportional to `weights`.
    fn weighted(&mut self, weights: &[f64], total: f64) -> usize {
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            x -= w;
            if x <= 0.0 {
                return i;
            }
        }
        weights.len() - 1
    }
}

struct GenEvent {
    id: Uuid,
    kind: usize,
    tags: Vec<usize>,
    city: usize,
    quality: f64,
    snapshot: EventSnapshot,
}

struct User {
    id: Uuid,
    /// Purchases, oldest first: (event index, when in epoch ms).
    purchases: Vec<(usize, i64)>,
    /// The favourites their preferences name, if they set any: (cities, types).
    favourites: Option<(Vec<String>, Vec<String>)>,
}

fn city_weights() -> Vec<f64> {
    (0..CITIES.len()).map(|i| 1.0 / (i as f64 + 1.0)).collect()
}

fn generate(options: &Options, now: i64) -> (Vec<GenEvent>, Vec<User>) {
    let mut rng = Rng(options.seed.max(1));
    let cities = city_weights();
    let city_total: f64 = cities.iter().sum();
    let organizers: Vec<Vec<Uuid>> = (0..TYPES.len())
        .map(|_| (0..ORGANIZERS_PER_TYPE).map(|_| Uuid::new_v4()).collect())
        .collect();
    let filler = [
        "night", "special", "edition", "grand", "summer", "winter", "late", "open",
    ];
    let events: Vec<GenEvent> = (0..options.events)
        .map(|_| {
            let kind = rng.below(TYPES.len());
            let (type_name, tags, nouns) = TYPES[kind];
            let mut event_tags = vec![rng.below(tags.len())];
            if rng.chance(0.5) {
                let second = rng.below(tags.len());
                if second != event_tags[0] {
                    event_tags.push(second);
                }
            }
            let city = rng.weighted(&cities, city_total);
            let organizer = organizers[kind][rng.below(ORGANIZERS_PER_TYPE)];
            let id = Uuid::now_v7();
            let date = now + DAY_MS + (rng.unit() * 364.0 * DAY_MS as f64) as i64;
            let main_tag = tags[event_tags[0]];
            let name = format!(
                "{}{} {} {}",
                main_tag[..1].to_uppercase(),
                &main_tag[1..],
                nouns[rng.below(nouns.len())],
                filler[rng.below(filler.len())]
            );
            let description = format!(
                "An evening of {} in {}: {} with {}.",
                event_tags
                    .iter()
                    .map(|t| tags[*t])
                    .collect::<Vec<_>>()
                    .join(" and "),
                CITIES[city],
                filler[rng.below(filler.len())],
                filler[rng.below(filler.len())]
            );
            let at = |ms: i64| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            };
            let snapshot = EventSnapshot {
                event_id: id,
                organizer_id: organizer,
                event_name: name,
                description: Some(description),
                event_date: at(date),
                venue_id: None,
                venue_name: format!("{} Hall", CITIES[city]),
                city: Some(CITIES[city].into()),
                event_type: Some(type_name.into()),
                tags: event_tags.iter().map(|t| tags[*t].to_owned()).collect(),
                status: "ON_SALE".into(),
                total_seats: 100_000,
                sale_start_time: at(now - 200 * DAY_MS),
                sale_end_time: None,
                base_price: 1000 * (1 + rng.below(12) as i64),
                currency: "EUR".into(),
                section_prices: Default::default(),
                layout: None,
                time_zone: None,
            };
            GenEvent {
                id,
                kind,
                tags: event_tags,
                city,
                quality: (0.8 * rng.normal()).exp(),
                snapshot,
            }
        })
        .collect();

    // The largest weight any user can give an event: the best quality, a favourite type, two
    // favourite tags and a home city.
    let best = events.iter().map(|e| e.quality).fold(0.0, f64::max);
    // Purchases per user: 3 to 12, else spread evenly around the mean `orders` asks for.
    let per_user = options.orders.map(|orders| {
        let mean = orders as f64 / options.users as f64;
        let low = ((mean * 0.4).round() as usize).max(2);
        let high = ((2.0 * mean).round() as usize).saturating_sub(low).max(low);
        (low, high)
    });
    let bound = best * 4.0 * (1.0 + 3.0 * 2.0) * 6.0;
    let mut users: Vec<User> = (0..options.users)
        .map(|_| {
            let mut kinds = vec![rng.below(TYPES.len())];
            if rng.chance(0.4) {
                kinds.push(rng.below(TYPES.len()));
            }
            let favourite_tags: Vec<(usize, usize)> = (0..2 + rng.below(2))
                .map(|_| {
                    let k = kinds[rng.below(kinds.len())];
                    (k, rng.below(TYPES[k].1.len()))
                })
                .collect();
            let mut homes = vec![rng.weighted(&cities, city_total)];
            if rng.chance(0.3) {
                homes.push(rng.weighted(&cities, city_total));
            }
            let weight = |e: &GenEvent| {
                let kind = if kinds.contains(&e.kind) { 4.0 } else { 0.3 };
                let tags = e
                    .tags
                    .iter()
                    .filter(|t| favourite_tags.contains(&(e.kind, **t)))
                    .count() as f64;
                let city = if homes.contains(&e.city) { 6.0 } else { 0.4 };
                e.quality * kind * (1.0 + 3.0 * tags) * city
            };
            // Purchases are drawn with probability proportional to `weight` by rejection
            // (a uniform proposal kept with probability weight / bound), so the cost does not
            // grow with the number of events.
            let n = match per_user {
                None => 3 + rng.below(10),
                Some((low, high)) => low + rng.below(high - low + 1),
            }
            .min(events.len() / 2);
            let favourites = rng.chance(options.favourites).then(|| {
                (
                    homes.iter().map(|c| CITIES[*c].to_owned()).collect(),
                    kinds.iter().map(|k| TYPES[*k].0.to_owned()).collect(),
                )
            });
            let mut bought: Vec<usize> = Vec::new();
            while bought.len() < n {
                let e = rng.below(events.len());
                if rng.unit() * bound < weight(&events[e]) && !bought.contains(&e) {
                    bought.push(e);
                }
            }
            let mut times: Vec<i64> = (0..n)
                .map(|_| now - DAY_MS - (rng.unit() * 180.0 * DAY_MS as f64) as i64)
                .collect();
            times.sort_unstable();
            User {
                id: Uuid::new_v4(),
                purchases: bought.into_iter().zip(times).collect(),
                favourites,
            }
        })
        .collect();
    // Bulk accounts: many random events each, left out of pair counts by the privacy rule.
    for _ in 0..BULK_ACCOUNTS {
        let mut purchases: Vec<(usize, i64)> = (0..80)
            .map(|_| {
                (
                    rng.below(events.len()),
                    now - DAY_MS - rng.below(100) as i64 * DAY_MS,
                )
            })
            .collect();
        let mut seen = HashSet::new();
        purchases.retain(|p| seen.insert(p.0));
        purchases.sort_by_key(|p| p.1);
        users.push(User {
            id: Uuid::new_v4(),
            purchases,
            favourites: None,
        });
    }
    (events, users)
}

fn order_placed(event: Uuid, user: Uuid, at: i64) -> evently_bus::Envelope {
    let change = InventoryChange {
        event_id: event,
        user_id: Some(user),
        hold_id: None,
        order_id: Some(Uuid::now_v7()),
        seat_ids: Vec::new(),
        amount: Some(5000),
        currency: Some("EUR".into()),
        reason: Some("purchased".into()),
        availability: Availability {
            capacity: 100_000,
            available: 99_999,
            held: 0,
            sold: 1,
            version: 1,
        },
    };
    let when = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    DomainEvent::OrderPlaced(change).into_envelope(1, when)
}

#[derive(Default)]
struct Quality {
    /// In-process answer times in ms (store reads and ranking, no HTTP).
    times: Vec<f64>,
    users: usize,
    hits: usize,
    ndcg: f64,
    shown: HashSet<EventId>,
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: Options) -> anyhow::Result<()> {
    ensure!(
        options.users > 0 && options.events > 20,
        "need users and at least 21 events"
    );
    let now = evently_recs::domain::ms(OffsetDateTime::now_utc());
    let started = Instant::now();
    let (events, users) = generate(&options, now);
    let held_out: usize = users.len() - BULK_ACCOUNTS;
    // Users with tastes have their last purchase held out; the bulk accounts (the last ones,
    // 80 random purchases) are fed whole and never evaluated.
    let fed_of = |i: usize, u: &User| {
        if i >= held_out {
            u.purchases.len()
        } else {
            u.purchases.len() - 1
        }
    };
    let train_orders: usize = users.iter().enumerate().map(|(i, u)| fed_of(i, u)).sum();
    println!(
        "world: {} events over a year, {} users with tastes and {BULK_ACCOUNTS} bulk accounts, \
         {train_orders} orders fed, {held_out} last purchases held out (generated in {:.1} s)",
        events.len(),
        options.users,
        started.elapsed().as_secs_f64()
    );

    let dir = std::env::temp_dir().join(format!("evently-bench-recs-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).context("creating a temp directory")?;
    let url = format!("sqlite://{}", dir.join("recs.db").display());
    let store =
        evently_recs::open_store(&SecretString::from(url.clone()), &Config::default()).await?;
    let config = RecsConfig {
        cache_ttl_seconds: 0,
        ..RecsConfig::default()
    };
    let service = Arc::new(RecsService::new(store, Arc::new(SystemClock), config));

    let mut stream: Vec<(i64, Uuid, Uuid)> = users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| {
            u.purchases[..fed_of(i, u)]
                .iter()
                .map(|(e, at)| (*at, u.id, events[*e].id))
        })
        .collect();
    stream.sort();
    let loading = Instant::now();
    let features: Vec<EventFeatures> = events
        .iter()
        .filter_map(|e| EventFeatures::from_snapshot(&e.snapshot))
        .collect();
    let streamed = stream.len().min(STREAMED_ORDERS);
    let imported: Vec<ImportedOrder> = stream[..stream.len() - streamed]
        .iter()
        .map(|(at, user, event)| ImportedOrder {
            user: *user,
            event: EventId(*event),
            at: *at,
        })
        .collect();
    let favourites: Vec<PreferencesChange> = users
        .iter()
        .filter_map(|u| {
            u.favourites
                .as_ref()
                .map(|(cities, types)| PreferencesChange {
                    user_id: u.id,
                    version: 1,
                    cities: cities.clone(),
                    types: types.clone(),
                })
        })
        .collect();
    service
        .store()
        .import(&features, &imported, &favourites, now)
        .await?;
    println!(
        "imported {} events, {} orders and {} users' favourites in one transaction in {:.1} s",
        features.len(),
        imported.len(),
        favourites.len(),
        loading.elapsed().as_secs_f64()
    );
    let feeding = Instant::now();
    for (at, user, event) in &stream[stream.len() - streamed..] {
        service.apply(&order_placed(*event, *user, *at)).await?;
    }
    let fed = feeding.elapsed().as_secs_f64();
    println!(
        "then applied the latest {streamed} orders as domain events in {fed:.1} s ({:.0} per second)",
        streamed as f64 / fed
    );
    let building = Instant::now();
    service.rebuild().await?;
    let built = building.elapsed();
    service.refresh_popularity().await?;
    println!(
        "catalogue (content neighbours of every event) built in {:.2} s",
        built.as_secs_f64()
    );

    let methods = [
        ("hybrid", Method::Hybrid),
        ("content-only", Method::ContentOnly),
        ("co-purchase-only", Method::CoPurchaseOnly),
        ("most-popular", Method::MostPopular),
    ];
    let mut results: Vec<(&str, Quality)> = Vec::new();
    for (name, method) in methods {
        let mut q = Quality::default();
        for user in users.iter().take(options.users.min(options.eval_users)) {
            let Some(&(target, _)) = user.purchases.last() else {
                continue;
            };
            let target = EventId(events[target].id);
            let t = Instant::now();
            let (items, _) = service
                .for_user(Some(UserId(user.id)), 10, None, method)
                .await?;
            q.times.push(t.elapsed().as_secs_f64() * 1000.0);
            q.users += 1;
            if let Some(rank) = items.iter().position(|s| s.event_id == target) {
                q.hits += 1;
                q.ndcg += 1.0 / ((rank + 2) as f64).log2();
            }
            q.shown.extend(items.iter().map(|s| s.event_id));
        }
        results.push((name, q));
    }
    println!(
        "\nleave-last-out over {} users, top 10 (at most 2 per organizer and per type):",
        results[0].1.users
    );
    println!(
        "{:<18} {:>10} {:>9} {:>9}",
        "method", "HitRate@10", "NDCG@10", "coverage"
    );
    let mut rates = HashMap::new();
    for (name, q) in &results {
        let rate = q.hits as f64 / q.users.max(1) as f64;
        rates.insert(*name, rate);
        println!(
            "{name:<18} {rate:>10.3} {:>9.3} {:>8.1}%",
            q.ndcg / q.users.max(1) as f64,
            100.0 * q.shown.len() as f64 / events.len() as f64
        );
    }
    let mut times = results[0].1.times.clone();
    times.sort_by(f64::total_cmp);
    println!(
        "hybrid answer in process (store reads and ranking, no HTTP): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    let hybrid = rates["hybrid"];
    println!(
        "hybrid / most-popular = {:.2}x (target >= 1.5x); above content-only: {}; above co-purchase-only: {}",
        hybrid / rates["most-popular"].max(1e-9),
        hybrid > rates["content-only"],
        hybrid > rates["co-purchase-only"]
    );
    // One event changes (as an organizer's edit would): the background refresh updates the
    // catalogue instead of building it again.
    let mut edited = events[0].snapshot.clone();
    edited.tags.push("encore".into());
    edited.event_name.push_str(" Encore");
    service
        .apply(&DomainEvent::EventUpdated(edited).into_envelope(2, OffsetDateTime::now_utc()))
        .await?;
    let updating = Instant::now();
    service.refresh_catalogue(false).await?;
    println!(
        "one event edited: catalogue brought up to date in {:.1} ms (the whole build: {:.2} s)",
        updating.elapsed().as_secs_f64() * 1000.0,
        built.as_secs_f64()
    );
    drop(service);

    latency(&options, &url, &users, &events).await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `GET /api/recs` once per user and `GET /api/recs/related` for random events against a
/// real server on the store just built.
async fn latency(
    options: &Options,
    url: &str,
    users: &[User],
    events: &[GenEvent],
) -> anyhow::Result<()> {
    let server = start_server(&[("EVENTLY_DATABASE__RECS_URL", url.to_owned())])?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients * 2)
        .build()?;
    // The server builds its catalogue from the store in the background.
    let probe = format!("{}/api/recs/related?eventId={}", server.base, events[0].id);
    let ready = Instant::now();
    loop {
        if client.get(&probe).send().await?.status() == 200 {
            break;
        }
        // A large catalogue takes minutes to build at start.
        ensure!(
            ready.elapsed().as_secs() < 1800,
            "the server never built its catalogue"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let keys = JwtKeys::new(&JwtConfig::default(), &SecretString::from(BENCH_JWT_SECRET));
    let now = OffsetDateTime::now_utc();
    let mut personal = Vec::new();
    // As many requests of each kind as users evaluated (bulk accounts included when all are).
    let sample = users.len().min(options.eval_users);
    for user in users.iter().take(sample) {
        let token = keys.issue_access(UserId(user.id), Role::User, now)?.token;
        personal.push((format!("{}/api/recs?limit=10", server.base), Some(token)));
    }
    let related: Vec<(String, Option<String>)> = (0..sample)
        .map(|i| {
            let e = &events[(i * 7919) % events.len()];
            (
                format!("{}/api/recs/related?eventId={}&limit=10", server.base, e.id),
                None,
            )
        })
        .collect();
    for (label, requests) in [
        (
            "GET /api/recs (signed in, each user once: cache misses)",
            personal,
        ),
        ("GET /api/recs/related", related),
    ] {
        let (mut latencies, failed) = load(&client, requests, options.clients).await;
        latencies.sort_by(f64::total_cmp);
        println!(
            "{label}: {} requests, {} clients, p50 {:.2} ms, p99 {:.2} ms, {failed} failed",
            latencies.len(),
            options.clients,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    Ok(())
}

/// Sends `requests` from `clients` concurrent clients; returns the latencies in ms of the
/// 200 answers and how many were not 200.
async fn load(
    client: &reqwest::Client,
    requests: Vec<(String, Option<String>)>,
    clients: usize,
) -> (Vec<f64>, usize) {
    let queue = Arc::new(std::sync::Mutex::new(requests));
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, queue) = (client.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0usize);
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((url, token)) = next else { break };
                let mut request = client.get(&url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let t = Instant::now();
                match request.send().await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let (mut all, mut failed) = (Vec::new(), 0);
    for task in tasks {
        if let Ok((l, f)) = task.await {
            all.extend(l);
            failed += f;
        }
    }
    (all, failed)
}
