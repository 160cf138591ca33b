//! `evently-bench search`: evently's search against PostgreSQL full-text search and SQLite
//! FTS5 on the same generated events.
//!
//! - Data: `--events` events (100,000 by default) generated from fixed word lists with a fixed
//!   seed: names like "Electric Metallica World Tour", 60 cities with one venue each, types,
//!   tags, a templated description.
//! - evently: the events are written to an events database through the events store (each with
//!   its `EventCreated` in the outbox, as the service does); a real `evently serve` then builds
//!   its search index by replaying the stream. Build time is from the server's start until
//!   search counts every event; size is the index directory. Queries go over HTTP through the
//!   gateway, from `--clients` concurrent clients.
//! - PostgreSQL (`--database-url`, skipped without it): a `tsvector` (simple configuration) of
//!   every text field with a GIN index, and `pg_trgm` similarity on name and city with a GIN
//!   trigram index; a row matches the words (the last as a prefix) or is similar enough, ranked
//!   by `ts_rank + similarity` — the best a PostgreSQL-only deployment would do. Queried straight
//!   through a pool of `--clients` connections (no HTTP in between, to its advantage).
//! - SQLite FTS5: one FTS5 table of the text fields, the words quoted and the last as a prefix,
//!   ranked by `bm25`, through a pool of `--clients` read connections.
//! - Queries: a fixed set of typo'd queries (one typo in the headliner, the city as a prefix),
//!   each written for one intended event, and of one-word prefixes. Relevance is the share of
//!   typo'd queries whose intended event is in the top 3.
//! - Freshness (evently): events written to the store while the server runs; the time from the
//!   commit until search finds each one, p50/p99.

use anyhow::Context;
use evently_core::config::Config;
use evently_core::ids::UserId;
use evently_events::domain::{
    Event, EventDraft, EventStatus, EventType, Venue, VenueInput, VenueRef, to_ms,
};
use secrecy::SecretString;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::server::{cpu_seconds, percentile, start_server};

const ADJECTIVES: &[&str] = &[
    "Electric", "Golden", "Midnight", "Summer", "Winter", "Royal", "Grand", "Silent", "Wild",
    "Velvet", "Crystal", "Neon", "Cosmic", "Urban", "Acoustic", "Eternal", "Secret", "Brave",
    "Northern", "Southern", "Crimson", "Silver", "Lunar", "Solar", "Hidden", "Broken", "Sacred",
    "Modern", "Classic", "Infinite", "Rising", "Falling", "Burning", "Frozen", "Dancing",
    "Dreaming", "Roaring", "Gentle", "Mighty", "Lucky",
];
const HEADLINERS: &[&str] = &[
    "Metallica",
    "Philharmonic",
    "Radiohead",
    "Coldplay",
    "Beyonce",
    "Nirvana",
    "Madonna",
    "Rihanna",
    "Adele",
    "Shakira",
    "Queen",
    "Genesis",
    "Scorpions",
    "Aerosmith",
    "Springsteen",
    "Sinatra",
    "Mozart",
    "Beethoven",
    "Vivaldi",
    "Chopin",
    "Brahms",
    "Tchaikovsky",
    "Schubert",
    "Gershwin",
    "Ellington",
    "Coltrane",
    "Armstrong",
    "Fitzgerald",
    "Marley",
    "Hendrix",
    "Zeppelin",
    "Floyd",
    "Bowie",
    "Prince",
    "Jackson",
    "Presley",
    "Dylan",
    "Cohen",
    "Mitchell",
    "Morrison",
    "Joplin",
    "Santana",
    "Clapton",
    "Wonder",
    "Franklin",
    "Gaye",
    "Redding",
    "Simone",
    "Holiday",
    "Basie",
    "Gillespie",
    "Parker",
    "Monk",
    "Mingus",
    "Davis",
    "Brubeck",
    "Evans",
    "Hancock",
    "Corea",
    "Metheny",
    "Jarrett",
    "Marsalis",
    "Harlem",
    "Broadway",
    "Shakespeare",
    "Chekhov",
    "Ibsen",
    "Moliere",
    "Brecht",
    "Pinter",
    "Stoppard",
    "Beckett",
    "Lakers",
    "Celtics",
    "Yankees",
    "Dodgers",
    "Arsenal",
    "Chelsea",
    "Barcelona",
    "Juventus",
    "Ajax",
    "Benfica",
    "Galaxy",
    "Warriors",
    "Raptors",
    "Bulls",
    "Knicks",
    "Rangers",
    "Eagles",
    "Patriots",
    "Steelers",
    "Packers",
    "Cowboys",
    "Giants",
    "Jets",
    "Bruins",
    "Canucks",
    "Flames",
    "Oilers",
];
const KINDS: &[&str] = &[
    "World Tour",
    "Live",
    "Unplugged",
    "Festival",
    "Gala",
    "Night",
    "Symphony",
    "Concert",
    "Reunion",
    "Farewell Tour",
    "Jam Session",
    "Showcase",
    "Matinee",
    "Premiere",
    "Revival",
    "Tribute",
    "Marathon",
    "Derby",
    "Final",
    "Classic",
    "Cup",
    "Open",
    "Summit",
    "Expo",
    "Conference",
    "Workshop",
    "Masterclass",
    "Comedy Hour",
    "Cabaret",
    "Opera",
    "Ballet",
    "Recital",
    "Session",
    "Experience",
    "Spectacular",
    "Jubilee",
    "Parade",
    "Carnival",
    "Showdown",
    "Encore",
];
const CITIES: &[&str] = &[
    "Berlin",
    "Paris",
    "London",
    "Madrid",
    "Rome",
    "Vienna",
    "Prague",
    "Warsaw",
    "Budapest",
    "Lisbon",
    "Dublin",
    "Amsterdam",
    "Brussels",
    "Copenhagen",
    "Stockholm",
    "Oslo",
    "Helsinki",
    "Zurich",
    "Geneva",
    "Munich",
    "Hamburg",
    "Cologne",
    "Frankfurt",
    "Milan",
    "Naples",
    "Barcelona",
    "Valencia",
    "Seville",
    "Porto",
    "Lyon",
    "Marseille",
    "Nice",
    "Toulouse",
    "Bordeaux",
    "Edinburgh",
    "Glasgow",
    "Manchester",
    "Liverpool",
    "Birmingham",
    "Leeds",
    "Bristol",
    "Cardiff",
    "Belfast",
    "Krakow",
    "Gdansk",
    "Wroclaw",
    "Riga",
    "Tallinn",
    "Vilnius",
    "Athens",
    "Sofia",
    "Bucharest",
    "Belgrade",
    "Zagreb",
    "Ljubljana",
    "Bratislava",
    "Salzburg",
    "Innsbruck",
    "Antwerp",
    "Rotterdam",
];
const TAGS: &[&str] = &[
    "rock",
    "pop",
    "jazz",
    "classical",
    "metal",
    "indie",
    "folk",
    "blues",
    "soul",
    "hiphop",
    "electronic",
    "opera",
    "theatre",
    "comedy",
    "football",
    "basketball",
    "hockey",
    "tennis",
    "family",
    "outdoor",
    "indoor",
    "vip",
    "acoustic",
    "dance",
    "festival",
    "talk",
    "tech",
    "art",
    "food",
    "charity",
];
const WORDS: &[&str] = &[
    "unforgettable",
    "evening",
    "music",
    "friends",
    "stage",
    "lights",
    "crowd",
    "songs",
    "classics",
    "favourites",
    "energy",
    "performance",
    "artists",
    "guests",
    "surprises",
    "atmosphere",
    "celebration",
    "history",
    "legends",
    "rhythm",
    "melodies",
    "encores",
    "fans",
    "tickets",
    "season",
    "premiere",
    "orchestra",
    "band",
    "players",
    "teams",
    "rivals",
    "match",
    "drama",
    "laughter",
    "stories",
    "voices",
    "dancers",
    "visuals",
    "sound",
    "hall",
];
const TYPES: &[EventType] = &[
    EventType::Concert,
    EventType::Sports,
    EventType::Theatre,
    EventType::Comedy,
    EventType::Conference,
    EventType::Festival,
    EventType::Workshop,
    EventType::Other,
];

/// A deterministic generator (xorshift64*), so every run sees the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n as u64)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

/// One generated event.
pub(crate) struct Generated {
    id: uuid::Uuid,
    adjective: &'static str,
    headliner: &'static str,
    kind: &'static str,
    city: usize,
    name: String,
    description: String,
    tags: Vec<String>,
    event_type: EventType,
    days: i64,
}

pub(crate) fn generate(n: usize) -> Vec<Generated> {
    let mut rng = Rng(0x5EED_CAFE_F00D_BEEF);
    (0..n)
        .map(|_| {
            let adjective = rng.pick(ADJECTIVES);
            let headliner = rng.pick(HEADLINERS);
            let kind = rng.pick(KINDS);
            let city = rng.below(CITIES.len());
            let description = format!(
                "{adjective} {headliner} {kind} in {}: an {} {} of {} {}, {} and {}.",
                CITIES[city],
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS)
            );
            let tags = (0..1 + rng.below(3))
                .map(|_| rng.pick(TAGS).to_owned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            Generated {
                id: uuid::Uuid::nil(),
                adjective,
                headliner,
                kind,
                city,
                name: format!("{adjective} {headliner} {kind}"),
                description,
                tags,
                event_type: TYPES[rng.below(TYPES.len())],
                days: 2 + i64::try_from(rng.below(700)).unwrap_or(0),
            }
        })
        .collect()
}

/// One typo in `word` (at least 5 letters), never on its first letter and never leaving fewer
/// than 5 letters (a word of 4 gets no typo, by the rules evently follows): a transposition, a
/// deletion, a substitution or a doubled letter.
fn typo(word: &str, rng: &mut Rng) -> String {
    let mut c: Vec<char> = word.to_lowercase().chars().collect();
    let i = 1 + rng.below(c.len() - 2);
    let kinds = if c.len() > 5 { 4 } else { 3 };
    match rng.below(kinds) {
        0 => c.swap(i, i + 1),
        1 => c[i] = if c[i] == 'x' { 'q' } else { 'x' },
        2 => c.insert(i, c[i]),
        _ => {
            c.remove(i);
        }
    }
    c.into_iter().collect()
}

/// A typo'd query and the event it was written for.
struct Query {
    text: String,
    intended: Option<uuid::Uuid>,
}

fn queries(events: &[Generated], typod: usize) -> Vec<Query> {
    let mut rng = Rng(0xC0FF_EE00_1234_5678);
    let mut out = Vec::new();
    while out.len() < typod {
        let e = &events[rng.below(events.len())];
        if e.headliner.chars().count() < 5 {
            continue;
        }
        let city = CITIES[e.city];
        let prefix: String = city.to_lowercase().chars().take(4).collect();
        out.push(Query {
            text: format!(
                "{} {} {} {prefix}",
                e.adjective.to_lowercase(),
                typo(e.headliner, &mut rng),
                e.kind.to_lowercase()
            ),
            intended: Some(e.id),
        });
    }
    for word in [
        "metal", "phil", "jazz", "berl", "symph", "world t", "golden g", "opera",
    ] {
        out.push(Query {
            text: word.to_owned(),
            intended: None,
        });
    }
    out
}

/// Figures of one engine.
struct Figures {
    engine: &'static str,
    build: Duration,
    size_bytes: u64,
    qps: f64,
    p50: f64,
    p99: f64,
    relevance: f64,
    /// CPU milliseconds the engine's process spent per query, when it runs in its own.
    cpu_ms: Option<f64>,
    note: &'static str,
}

/// Runs the queries from `clients` concurrent tasks for `seconds`, then each typo'd query
/// once for relevance. `search` answers the top ids of one query.
async fn measure<F, Fut>(
    queries: Arc<Vec<Query>>,
    clients: usize,
    seconds: u64,
    search: F,
) -> anyhow::Result<(f64, f64, f64, f64, usize)>
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Vec<uuid::Uuid>>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (queries, stop, search) = (queries.clone(), stop.clone(), search.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = c * 7;
            while !stop.load(Ordering::Relaxed) {
                let q = &queries[i % queries.len()];
                let t = Instant::now();
                search(q.text.clone()).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                i += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let qps = latencies.len() as f64 / elapsed;
    let count = latencies.len();
    let (mut found, mut asked) = (0u32, 0u32);
    for q in queries.iter() {
        if let Some(intended) = q.intended {
            asked += 1;
            let top = search(q.text.clone()).await?;
            if top.iter().take(3).any(|id| *id == intended) {
                found += 1;
            }
        }
    }
    Ok((
        qps,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        f64::from(found) / f64::from(asked.max(1)),
        count,
    ))
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Writes `events` to the events database at `url` through the store, with one venue per city.
pub(crate) async fn seed(url: &SecretString, events: &mut [Generated]) -> anyhow::Result<()> {
    let (store, _) = evently_events::open_store(url, &Config::default()).await?;
    let now = time::OffsetDateTime::now_utc();
    let organizer = UserId::new();
    let mut venues = Vec::new();
    for city in CITIES {
        let venue = Venue::create(
            VenueInput {
                name: format!("{city} Arena"),
                address: "1 Main Street".into(),
                city: (*city).to_owned(),
                capacity: Some(5000),
                layout: None,
            },
            organizer,
            to_ms(now),
        )
        .map_err(|p| anyhow::anyhow!("invalid bench venue: {p}"))?;
        store.insert_venue(&venue, &venue.created()).await?;
        venues.push(venue);
    }
    for e in events.iter_mut() {
        let event = bench_event(e, &venues[e.city], organizer, now)?;
        e.id = event.id.0;
        store.insert_event(&event, &event.created()).await?;
    }
    Ok(())
}

fn bench_event(
    e: &Generated,
    venue: &Venue,
    organizer: UserId,
    now: time::OffsetDateTime,
) -> anyhow::Result<Event> {
    let draft = EventDraft {
        name: e.name.clone(),
        description: Some(e.description.clone()),
        event_date: to_ms(now + time::Duration::days(e.days)),
        sale_start: to_ms(now - time::Duration::days(1)),
        sale_end: None,
        event_type: Some(e.event_type),
        tags: e.tags.clone(),
        total_seats: Some(5000),
        base_price: 5000,
        currency: "EUR".into(),
        section_prices: Default::default(),
        time_zone: "UTC".into(),
    };
    Event::create(
        &draft,
        &VenueRef::Venue(Box::new(venue.clone())),
        EventStatus::OnSale,
        organizer,
        to_ms(now),
    )
    .map_err(|p| anyhow::anyhow!("invalid bench event: {:?}", p.errors()))
}

fn ids_of(body: &serde_json::Value) -> Vec<uuid::Uuid> {
    body["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["eventId"].as_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn evently(
    events: &mut [Generated],
    queries_of: impl FnOnce(&[Generated]) -> Vec<Query>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<(Figures, Vec<Query>, f64, f64)> {
    let dir = std::env::temp_dir().join(format!(
        "evently-bench-search-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}", dir.join("events.db").display());
    let url = SecretString::from(db.clone());
    let t = Instant::now();
    seed(&url, events).await?;
    println!(
        "  seeded {} events through the events store in {:.1} s",
        events.len(),
        t.elapsed().as_secs_f64()
    );
    let queries = queries_of(events);
    let started = Instant::now();
    let server = start_server(&[
        ("EVENTLY_DATABASE__EVENTS_URL", db.clone()),
        ("EVENTLY_BUS__POLL_INTERVAL_MS", "20".to_owned()),
    ])?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .build()?;
    let base = server.base.clone();
    let total = events.len() as u64;
    loop {
        let r = client
            .get(format!("{base}/api/search/events?size=1"))
            .send()
            .await;
        if let Ok(r) = r
            && r.status() == 200
        {
            let v: serde_json::Value = r.json().await?;
            if v["totalHits"].as_u64() == Some(total) {
                break;
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(1800),
            "the index never caught up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let build = started.elapsed();
    let size_bytes = dir_size(&server.data_dir().join("search"));
    let queries = Arc::new(queries);
    let search = {
        let (client, base) = (client.clone(), base.clone());
        move |q: String| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let r = client
                    .get(format!("{base}/api/search/events?q={}&size=10", encode(&q)))
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 200, "search answered {}", r.status());
                let v: serde_json::Value = r.json().await?;
                Ok(ids_of(&v))
            }
        }
    };
    let pid = server.child.id();
    let cpu_before = cpu_seconds(pid);
    let (qps, p50, p99, relevance, count) =
        measure(queries.clone(), clients, seconds, search).await?;
    // The relevance pass after the timed one runs one query at a time: its share is small.
    let cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000.0
        / (count + queries.iter().filter(|q| q.intended.is_some()).count()) as f64;

    // Freshness: a new event committed to the store, then searched for until found.
    let (store, _) = evently_events::open_store(&url, &Config::default()).await?;
    let venue = Venue::create(
        VenueInput {
            name: "Fresh Hall".into(),
            address: "2 Main Street".into(),
            city: "Freshville".into(),
            capacity: Some(5000),
            layout: None,
        },
        UserId::new(),
        to_ms(time::OffsetDateTime::now_utc()),
    )
    .map_err(|p| anyhow::anyhow!("invalid venue: {p}"))?;
    store.insert_venue(&venue, &venue.created()).await?;
    let mut fresh = Vec::new();
    for i in 0..40 {
        let word = format!("zfresh{i}q{}", uuid::Uuid::new_v4().simple());
        let mut g = generate(1).remove(0);
        g.name = format!("Freshness {word}");
        let event = bench_event(&g, &venue, UserId::new(), time::OffsetDateTime::now_utc())?;
        store.insert_event(&event, &event.created()).await?;
        let committed = Instant::now();
        loop {
            let r = client
                .get(format!("{base}/api/search/events?q={word}&size=1"))
                .send()
                .await?;
            let v: serde_json::Value = r.json().await?;
            if v["totalHits"].as_u64() == Some(1) {
                fresh.push(committed.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            anyhow::ensure!(
                committed.elapsed() < Duration::from_secs(30),
                "never searchable"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    fresh.sort_by(f64::total_cmp);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let queries = Arc::try_unwrap(queries).unwrap_or_default();
    Ok((
        Figures {
            engine: "evently",
            build,
            size_bytes,
            qps,
            p50,
            p99,
            relevance,
            cpu_ms: Some(cpu_ms),
            note: "HTTP through the gateway",
        },
        queries,
        percentile(&fresh, 0.5),
        percentile(&fresh, 0.99),
    ))
}

/// The words of `q` as a prefix-last boolean query in `join`'s syntax.
fn words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

async fn postgres(
    url: &str,
    events: &[Generated],
    queries: Arc<Vec<Query>>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let schema = format!("bench_search_{}", uuid::Uuid::new_v4().simple());
    let setup = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .execute(&setup)
        .await
        .context("pg_trgm")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&setup)
        .await?;
    let table = format!("{schema}.events");
    let started = Instant::now();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id uuid PRIMARY KEY, name text NOT NULL, city text NOT NULL,
         venue text NOT NULL, tags text NOT NULL, description text NOT NULL,
         tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple',
             name || ' ' || city || ' ' || venue || ' ' || tags || ' ' || description)) STORED)"
    )))
    .execute(&setup)
    .await?;
    for chunk in events.chunks(5000) {
        let ids: Vec<uuid::Uuid> = chunk.iter().map(|e| e.id).collect();
        let names: Vec<String> = chunk.iter().map(|e| e.name.clone()).collect();
        let cities: Vec<String> = chunk.iter().map(|e| CITIES[e.city].to_owned()).collect();
        let venues: Vec<String> = chunk
            .iter()
            .map(|e| format!("{} Arena", CITIES[e.city]))
            .collect();
        let tags: Vec<String> = chunk.iter().map(|e| e.tags.join(" ")).collect();
        let descriptions: Vec<String> = chunk.iter().map(|e| e.description.clone()).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (id, name, city, venue, tags, description)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
        )))
        .bind(&ids)
        .bind(&names)
        .bind(&cities)
        .bind(&venues)
        .bind(&tags)
        .bind(&descriptions)
        .execute(&setup)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX ON {table} USING gin (tsv)"
    )))
    .execute(&setup)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE INDEX ON {table} USING gin ((name || ' ' || city) gin_trgm_ops)"
    )))
    .execute(&setup)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
        .execute(&setup)
        .await?;
    let build = started.elapsed();
    let size: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_total_relation_size('{table}')"
    )))
    .fetch_one(&setup)
    .await?
    .try_get(0)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(u32::try_from(clients).unwrap_or(32))
        .connect(url)
        .await?;
    let sql = Arc::new(format!(
        "SELECT id FROM {table}
         WHERE tsv @@ to_tsquery('simple', $1) OR (name || ' ' || city) % $2
         ORDER BY ts_rank(tsv, to_tsquery('simple', $1)) + similarity(name || ' ' || city, $2) DESC
         LIMIT 10"
    ));
    let search = {
        let (pool, sql) = (pool.clone(), sql.clone());
        move |q: String| {
            let (pool, sql) = (pool.clone(), sql.clone());
            async move {
                let w = words(&q);
                let mut ts = w.join(" & ");
                if !ts.is_empty() {
                    ts.push_str(":*");
                }
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(ts)
                    .bind(&q)
                    .fetch_all(&pool)
                    .await?;
                rows.iter()
                    .map(|r| r.try_get::<uuid::Uuid, _>(0).map_err(Into::into))
                    .collect()
            }
        }
    };
    let (qps, p50, p99, relevance, _) = measure(queries, clients, seconds, search).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&setup)
        .await?;
    Ok(Figures {
        engine: "PostgreSQL FTS + pg_trgm",
        build,
        size_bytes: u64::try_from(size).unwrap_or(0),
        qps,
        p50,
        p99,
        relevance,
        cpu_ms: None,
        note: "direct connection pool, no HTTP",
    })
}

async fn sqlite(
    events: &[Generated],
    queries: Arc<Vec<Query>>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let dir = std::env::temp_dir().join(format!(
        "evently-bench-fts5-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("fts.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let started = Instant::now();
    let setup = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    sqlx::query(
        "CREATE VIRTUAL TABLE events USING fts5(id UNINDEXED, name, city, venue, tags, description)",
    )
    .execute(&setup)
    .await?;
    let mut tx = setup.begin().await?;
    for e in events {
        sqlx::query(
            "INSERT INTO events (id, name, city, venue, tags, description) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(e.id.to_string())
        .bind(&e.name)
        .bind(CITIES[e.city])
        .bind(format!("{} Arena", CITIES[e.city]))
        .bind(e.tags.join(" "))
        .bind(&e.description)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    sqlx::query("INSERT INTO events(events) VALUES ('optimize')")
        .execute(&setup)
        .await?;
    let build = started.elapsed();
    setup.close().await;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(u32::try_from(clients).unwrap_or(32))
        .connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await?;
    let search = {
        let pool = pool.clone();
        move |q: String| {
            let pool = pool.clone();
            async move {
                let w = words(&q);
                if w.is_empty() {
                    return Ok(Vec::new());
                }
                let mut m: Vec<String> = w.iter().map(|x| format!("\"{x}\"")).collect();
                if let Some(last) = m.last_mut() {
                    last.push('*');
                }
                let rows = sqlx::query(
                    "SELECT id FROM events WHERE events MATCH ? ORDER BY bm25(events, 0, 3, 2, 2, 2, 1) LIMIT 10",
                )
                .bind(m.join(" "))
                .fetch_all(&pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let id: String = r.try_get(0)?;
                        Ok(id.parse()?)
                    })
                    .collect()
            }
        }
    };
    let (qps, p50, p99, relevance, _) = measure(queries, clients, seconds, search).await?;
    pool.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures {
        engine: "SQLite FTS5",
        build,
        size_bytes: size,
        qps,
        p50,
        p99,
        relevance,
        cpu_ms: None,
        note: "direct connection pool, no HTTP",
    })
}

/// Runs the benchmark (see the module documentation).
pub async fn run(
    events: usize,
    clients: usize,
    seconds: u64,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    println!(
        "search: {events} generated events, {clients} concurrent clients, {seconds} s per engine"
    );
    let mut generated = generate(events);
    let (ours, queries, fresh_p50, fresh_p99) =
        evently(&mut generated, |e| queries(e, 200), clients, seconds).await?;
    let queries = Arc::new(queries);
    let mut figures = vec![ours];
    match &database_url {
        Some(url) => {
            figures.push(postgres(url, &generated, queries.clone(), clients, seconds).await?);
        }
        None => println!("  PostgreSQL skipped: pass --database-url postgres://…"),
    }
    figures.push(sqlite(&generated, queries.clone(), clients, seconds).await?);
    println!(
        "  {} queries ({} typo'd, each for one intended event; the rest one-word prefixes), e.g. {:?}",
        queries.len(),
        queries.iter().filter(|q| q.intended.is_some()).count(),
        queries.first().map(|q| q.text.as_str()).unwrap_or_default()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>12}  note",
        "engine", "q/s", "p50 ms", "p99 ms", "build s", "size MB", "top-3 rel", "CPU ms/query"
    );
    for f in &figures {
        println!(
            "{:<26} {:>9.0} {:>9.2} {:>9.2} {:>10.1} {:>10.1} {:>10.3} {:>12}  {}",
            f.engine,
            f.qps,
            f.p50,
            f.p99,
            f.build.as_secs_f64(),
            f.size_bytes as f64 / 1_000_000.0,
            f.relevance,
            f.cpu_ms
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            f.note
        );
    }
    println!(
        "evently freshness (store commit → searchable): p50 {fresh_p50:.0} ms, p99 {fresh_p99:.0} ms"
    );
    let ours = &figures[0];
    let pg = figures.iter().find(|f| f.engine.starts_with("PostgreSQL"));
    println!(
        "targets: p99 < 10 ms: {}; q/s ≥ 2× PostgreSQL: {}; relevance ≥ 0.95: {}; freshness p99 < 1 s: {}",
        if ours.p99 < 10.0 { "met" } else { "MISSED" },
        pg.map_or("not measured", |pg| if ours.qps >= 2.0 * pg.qps {
            "met"
        } else {
            "MISSED"
        }),
        if ours.relevance >= 0.95 {
            "met"
        } else {
            "MISSED"
        },
        if fresh_p99 < 1000.0 { "met" } else { "MISSED" },
    );
    Ok(())
}
