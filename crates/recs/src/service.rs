//! The recommendations service's operations: applying the domain events, keeping the
//! in-memory catalogue and popularity current in the background, and answering requests
//! (with a short per-user cache that the user's own purchases invalidate).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use evently_bus::{DomainEvent, Envelope};
use evently_core::clock::SharedClock;
use evently_core::config::RecsConfig;
use evently_core::ids::UserId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::catalogue::{Catalogue, Popularity, PopularityTable};
use crate::domain::rank::{self, ANCHORS, Context};
use crate::domain::similarity::Method;
use crate::domain::{DAY_MS, EventFeatures, EventId, EventStatus, Favourites, Scored, ms};
use crate::error::RecsError;
use crate::store::{CatalogChange, OrderChange, PreferencesChange, RecsStore};

/// Co-purchase edges read per anchor event.
const EDGES_PER_ANCHOR: usize = 50;
/// The window of "recent" sales in the popularity prior.
const RECENT_SALES_MS: i64 = 7 * DAY_MS;
/// The catalogue is rebuilt whole at least this often, so that new words weigh in and events
/// that have taken place leave the neighbour lists even when nothing changes.
const REBUILD_AT_LEAST_EVERY: Duration = Duration::from_secs(3600);

/// A cached answer for one user.
struct Cached {
    at: Instant,
    /// The catalogue-and-popularity version the answer was ranked on.
    basis: u64,
    limit: usize,
    city: Option<String>,
    items: Arc<Vec<Scored>>,
}

/// Answers per user for a short time. A purchase or cancellation of the user drops their
/// entry; `generation` counts such drops, and an answer computed while one happened is not
/// stored (it may predate the purchase). An answer ranked on an older catalogue or older
/// sales figures than the current ones is not served either.
struct AnswerCache {
    ttl: Duration,
    capacity: usize,
    // A std mutex: held only for a map lookup or insert, never across an await.
    entries: Mutex<HashMap<UserId, Cached>>,
    generation: AtomicU64,
}

impl AnswerCache {
    fn get(
        &self,
        user: UserId,
        basis: u64,
        limit: usize,
        city: Option<&str>,
    ) -> Option<Arc<Vec<Scored>>> {
        let entries = self.entries.lock().ok()?;
        let hit = entries.get(&user)?;
        (hit.at.elapsed() < self.ttl
            && hit.basis == basis
            && hit.limit == limit
            && hit.city.as_deref() == city)
            .then(|| hit.items.clone())
    }

    fn put(&self, user: UserId, generation: u64, entry: Cached) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.at.elapsed() < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(user, entry);
    }

    fn invalidate(&self, user: UserId) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&user);
        }
    }
}

/// The recommendations service.
pub struct RecsService {
    store: Arc<dyn RecsStore>,
    clock: SharedClock,
    config: RecsConfig,
    catalogue: RwLock<Arc<Catalogue>>,
    popularity: RwLock<Arc<PopularityTable>>,
    cache: AnswerCache,
    /// Counts swaps of the catalogue or of the popularity table (cached answers older
    /// than the current swap are not served).
    basis: AtomicU64,
    catalogue_changed: Notify,
}

impl std::fmt::Debug for RecsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecsService").finish_non_exhaustive()
    }
}

/// What a domain event means to recommendations.
enum Effect {
    Catalog(CatalogChange),
    Order(OrderChange),
    Preferences(PreferencesChange),
}

/// The strings of `key` in `document` (empty when absent or not a list of strings).
fn strings(document: &serde_json::Value, key: &str) -> Vec<String> {
    document
        .get(key)
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn effect_of(envelope: &Envelope) -> Option<Effect> {
    const TYPES: [&str; 7] = [
        "EventCreated",
        "EventUpdated",
        "EventStatusChanged",
        "EventDeleted",
        "OrderPlaced",
        "OrderCancelled",
        "SettingsChanged",
    ];
    if !TYPES.contains(&envelope.event_type.as_str()) {
        return None;
    }
    let at = ms(envelope.occurred_at);
    match DomainEvent::decode(envelope) {
        Ok(DomainEvent::EventCreated(s) | DomainEvent::EventUpdated(s)) => {
            EventFeatures::from_snapshot(&s).map(|f| Effect::Catalog(CatalogChange::Upsert(f)))
        }
        Ok(DomainEvent::EventStatusChanged { event_id, to, .. }) => {
            EventStatus::parse(&to).map(|status| {
                Effect::Catalog(CatalogChange::Status {
                    event_id: EventId(event_id),
                    status,
                })
            })
        }
        Ok(DomainEvent::EventDeleted { event_id }) => {
            Some(Effect::Catalog(CatalogChange::Deleted {
                event_id: EventId(event_id),
            }))
        }
        Ok(DomainEvent::OrderPlaced(c) | DomainEvent::OrderCancelled(c)) => {
            c.user_id.map(|user_id| {
                Effect::Order(OrderChange {
                    user_id,
                    event_id: EventId(c.event_id),
                    placed: envelope.event_type == "OrderPlaced",
                    at,
                })
            })
        }
        // A user's preferences; other namespaces and scopes say nothing of tastes.
        Ok(DomainEvent::SettingsChanged(doc)) => {
            (doc.namespace == "preferences" && doc.scope == "user").then(|| {
                Effect::Preferences(PreferencesChange {
                    user_id: doc.scope_id,
                    version: doc.version,
                    cities: strings(&doc.document, "favouriteCities"),
                    types: strings(&doc.document, "favouriteEventTypes"),
                })
            })
        }
        Ok(_) => None,
        Err(e) => {
            // Skipped, not retried: it would never decode, and holding it back would hold
            // back every later event of the stream.
            tracing::error!(
                envelope.id = %envelope.id,
                envelope.event_type = %envelope.event_type,
                error = %e,
                "undecodable domain event skipped"
            );
            None
        }
    }
}

impl RecsService {
    /// A service over `store`, with an empty catalogue until [`RecsService::rebuild`] runs.
    pub fn new(store: Arc<dyn RecsStore>, clock: SharedClock, config: RecsConfig) -> Self {
        Self {
            store,
            clock,
            cache: AnswerCache {
                ttl: Duration::from_secs(config.cache_ttl_seconds),
                capacity: config.cache_capacity.max(1),
                entries: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
            },
            config,
            catalogue: RwLock::new(Arc::new(Catalogue::default())),
            popularity: RwLock::new(Arc::new(PopularityTable::default())),
            basis: AtomicU64::new(0),
            catalogue_changed: Notify::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn RecsStore> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &RecsConfig {
        &self.config
    }

    fn now(&self) -> i64 {
        ms(self.clock.now())
    }

    /// Applies one domain event of the events service's, booking's or the settings service's
    /// stream (idempotent per envelope id). A catalogue change wakes the background refresh;
    /// an order change or a change of preferences drops that user's cached answer.
    ///
    /// # Errors
    /// When the store fails; the event is then delivered again.
    pub async fn apply(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let now = self.now();
        let id = envelope.id;
        let (applied, user) = match effect_of(envelope) {
            None => return Ok(()),
            Some(Effect::Catalog(change)) => {
                (self.store.apply_catalog(id, &change, now).await, None)
            }
            Some(Effect::Order(change)) => (
                self.store.apply_order(id, &change, now).await,
                Some(change.user_id),
            ),
            Some(Effect::Preferences(change)) => (
                self.store.apply_preferences(id, &change, now).await,
                Some(change.user_id),
            ),
        };
        let applied = applied.with_context(|| format!("applying {}", envelope.event_type))?;
        if applied {
            metrics::counter!("evently_recs_domain_events_applied_total",
                "type" => envelope.event_type.clone())
            .increment(1);
        }
        match user {
            // A catalogue change wakes the background refresh.
            None if applied => self.catalogue_changed.notify_one(),
            None => {}
            Some(user) => self.cache.invalidate(UserId(user)),
        }
        Ok(())
    }

    /// Rebuilds the catalogue (features and content neighbours) whole from the store, off
    /// the async workers, and swaps it in.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn rebuild(&self) -> anyhow::Result<()> {
        self.refresh_catalogue(true).await
    }

    /// Brings the catalogue up to date with the store: whole when `full` or when it is
    /// empty, else only the events that changed ([`Catalogue::update`]); off the async
    /// workers, then swapped in.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn refresh_catalogue(&self, full: bool) -> anyhow::Result<()> {
        let events = self.store.events().await.context("reading the catalogue")?;
        let now = self.now();
        let started = Instant::now();
        let span = tracing::Span::current();
        let current = self.snapshot().0;
        let full = full || current.is_empty();
        let catalogue = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            if full {
                Catalogue::build(events, now)
            } else {
                current.update(events, now)
            }
        })
        .await
        .context("building the catalogue")?;
        metrics::histogram!("evently_recs_catalogue_refresh_seconds",
            "kind" => if full { "full" } else { "update" })
        .record(started.elapsed().as_secs_f64());
        #[expect(clippy::cast_precision_loss, reason = "a gauge of an event count")]
        metrics::gauge!("evently_recs_catalogue_events").set(catalogue.len() as f64);
        tracing::debug!(
            events = catalogue.len(),
            full,
            duration_ms = started.elapsed().as_millis(),
            "catalogue refreshed"
        );
        if let Ok(mut slot) = self.catalogue.write() {
            *slot = Arc::new(catalogue);
            self.basis.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Reads the sales figures again.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn refresh_popularity(&self) -> anyhow::Result<()> {
        let since = self.now() - RECENT_SALES_MS;
        let figures: HashMap<EventId, Popularity> = self
            .store
            .popularity(since)
            .await
            .context("reading popularity")?
            .into_iter()
            .map(|(id, buyers, recent)| (id, Popularity { buyers, recent }))
            .collect();
        if let Ok(mut slot) = self.popularity.write()
            && slot.figures() != &figures
        {
            *slot = Arc::new(PopularityTable::new(figures));
            self.basis.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Keeps the catalogue and popularity current until `shutdown`: updates the catalogue
    /// when events changed (at most once per `recs.rebuild_interval_ms`), rebuilds it whole
    /// hourly (new words weigh in, past events leave the neighbour lists), and reads
    /// popularity every `recs.popularity_refresh_ms`.
    pub async fn run_background(self: Arc<Self>, shutdown: CancellationToken) {
        let settle = Duration::from_millis(self.config.rebuild_interval_ms);
        let mut popularity =
            tokio::time::interval(Duration::from_millis(self.config.popularity_refresh_ms));
        popularity.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut refresh, mut full) = (true, true);
        let mut due = tokio::time::Instant::now();
        loop {
            if refresh {
                if full {
                    due = tokio::time::Instant::now() + REBUILD_AT_LEAST_EVERY;
                }
                if let Err(e) = self.refresh_catalogue(full).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "catalogue refresh failed; retrying"
                    );
                    self.catalogue_changed.notify_one();
                }
                if let Err(e) = self.refresh_popularity().await {
                    tracing::warn!(error = format!("{e:#}"), "popularity refresh failed");
                }
                (refresh, full) = (false, false);
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.catalogue_changed.notified() => {
                    // Let a burst of changes settle into one refresh.
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(settle) => {}
                    }
                    refresh = true;
                }
                _ = popularity.tick() => {
                    if let Err(e) = self.refresh_popularity().await {
                        tracing::warn!(error = format!("{e:#}"), "popularity refresh failed");
                    }
                }
                () = tokio::time::sleep_until(due) => (refresh, full) = (true, true),
            }
        }
    }

    fn snapshot(&self) -> (Arc<Catalogue>, Arc<PopularityTable>) {
        let catalogue = self.catalogue.read().map(|c| c.clone()).unwrap_or_default();
        let popularity = self
            .popularity
            .read()
            .map(|p| p.clone())
            .unwrap_or_default();
        (catalogue, popularity)
    }

    /// Up to `limit` events related to `event`, leaving out what `caller` owns.
    ///
    /// # Errors
    /// [`RecsError::EventNotFound`] for an event the catalogue does not know; the store's
    /// error.
    pub async fn related(
        &self,
        event: EventId,
        limit: usize,
        caller: Option<UserId>,
    ) -> Result<(Vec<Scored>, Arc<Catalogue>), RecsError> {
        let (catalogue, popularity) = self.snapshot();
        if catalogue.features(event).is_none() {
            return Err(RecsError::EventNotFound);
        }
        let owned: HashSet<EventId> = match caller {
            Some(user) => self
                .store
                .purchases(user.0)
                .await?
                .into_iter()
                .map(|p| p.event_id)
                .collect(),
            None => HashSet::new(),
        };
        let edges = self.store.co_purchases(&[event], EDGES_PER_ANCHOR).await?;
        let ctx = Context {
            catalogue: &catalogue,
            popularity: &popularity,
            now: self.now(),
            method: Method::Hybrid,
        };
        let items = rank::related(&ctx, event, &edges, &owned, limit);
        Ok((items, catalogue))
    }

    /// Up to `limit` picks for `caller` (popular upcoming events, in `city` first, for an
    /// anonymous caller; for one who has bought nothing, in `city` else in their favourite
    /// cities first), ranked by `method`, with their favourite cities and types weighing in.
    ///
    /// # Errors
    /// The store's error.
    pub async fn for_user(
        &self,
        caller: Option<UserId>,
        limit: usize,
        city: Option<&str>,
        method: Method,
    ) -> Result<(Arc<Vec<Scored>>, Arc<Catalogue>), RecsError> {
        // Read before the snapshot: a swap in between only makes the answer look older.
        let basis = self.basis.load(Ordering::SeqCst);
        let (catalogue, popularity) = self.snapshot();
        let ctx = Context {
            catalogue: &catalogue,
            popularity: &popularity,
            now: self.now(),
            method,
        };
        let Some(user) = caller else {
            let items = rank::popular(&ctx, city, &Favourites::default(), &HashSet::new(), limit);
            return Ok((Arc::new(items), catalogue.clone()));
        };
        let cacheable = method == Method::Hybrid;
        if cacheable && let Some(items) = self.cache.get(user, basis, limit, city) {
            metrics::counter!("evently_recs_answer_cache_total", "result" => "hit").increment(1);
            return Ok((items, catalogue.clone()));
        }
        if cacheable {
            metrics::counter!("evently_recs_answer_cache_total", "result" => "miss").increment(1);
        }
        let generation = self.cache.generation.load(Ordering::SeqCst);
        // Two reads on two connections at once.
        let (mut purchases, favourites) =
            tokio::try_join!(self.store.purchases(user.0), self.store.favourites(user.0))?;
        purchases.sort_by(|a, b| b.at.cmp(&a.at).then(a.event_id.cmp(&b.event_id)));
        let anchors: Vec<EventId> = purchases.iter().take(ANCHORS).map(|p| p.event_id).collect();
        let edges = if method == Method::ContentOnly || method == Method::MostPopular {
            Vec::new()
        } else {
            self.store.co_purchases(&anchors, EDGES_PER_ANCHOR).await?
        };
        let items = Arc::new(rank::for_user(
            &ctx,
            &purchases,
            &favourites,
            &edges,
            city,
            limit,
        ));
        if cacheable {
            self.cache.put(
                user,
                generation,
                Cached {
                    at: Instant::now(),
                    basis,
                    limit,
                    city: city.map(str::to_owned),
                    items: items.clone(),
                },
            );
        }
        Ok((items, catalogue.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evently_bus::catalog::{Availability, InventoryChange};
    use uuid::Uuid;

    fn cache() -> AnswerCache {
        AnswerCache {
            ttl: Duration::from_secs(60),
            capacity: 10,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn entry(limit: usize) -> Cached {
        Cached {
            at: Instant::now(),
            basis: 1,
            limit,
            city: None,
            items: Arc::new(Vec::new()),
        }
    }

    #[test]
    fn a_cached_answer_serves_the_same_question_until_its_user_buys_or_the_figures_change() {
        let (cache, user, other) = (cache(), UserId::new(), UserId::new());
        let generation = cache.generation.load(Ordering::SeqCst);
        cache.put(user, generation, entry(10));
        cache.put(other, generation, entry(10));

        assert!(cache.get(user, 1, 10, None).is_some());
        assert!(cache.get(user, 1, 5, None).is_none(), "another limit");
        assert!(
            cache.get(user, 1, 10, Some("Oslo")).is_none(),
            "another city"
        );
        assert!(
            cache.get(user, 2, 10, None).is_none(),
            "new sales figures or a new catalogue"
        );

        cache.invalidate(user);

        assert!(cache.get(user, 1, 10, None).is_none());
        assert!(cache.get(other, 1, 10, None).is_some());
        cache.put(user, generation, entry(10));
        assert!(
            cache.get(user, 1, 10, None).is_none(),
            "an answer computed before the purchase is not stored"
        );
    }

    #[test]
    fn only_catalogue_changes_orders_with_a_buyer_and_user_preferences_have_an_effect() {
        let change = InventoryChange {
            event_id: Uuid::now_v7(),
            user_id: Some(Uuid::now_v7()),
            hold_id: None,
            order_id: Some(Uuid::now_v7()),
            seat_ids: Vec::new(),
            amount: None,
            currency: None,
            reason: None,
            availability: Availability {
                capacity: 1,
                available: 0,
                held: 0,
                sold: 1,
                version: 1,
            },
        };
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let envelope = |e: DomainEvent| e.into_envelope(1, at);

        let placed = effect_of(&envelope(DomainEvent::OrderPlaced(change.clone())));
        let cancelled = effect_of(&envelope(DomainEvent::OrderCancelled(change.clone())));
        let held = effect_of(&envelope(DomainEvent::SeatsHeld(change.clone())));
        let waitlisted = [true, false].map(|joined| {
            let w = evently_bus::catalog::WaitlistChange {
                event_id: change.event_id,
                user_id: Uuid::now_v7(),
                quantity: 1,
                waiting: true,
                reason: "joined".into(),
                waitlist_length: 1,
            };
            effect_of(&envelope(if joined {
                DomainEvent::WaitlistJoined(w)
            } else {
                DomainEvent::WaitlistLeft(w)
            }))
        });
        let anonymous = effect_of(&envelope(DomainEvent::OrderPlaced(InventoryChange {
            user_id: None,
            ..change
        })));
        let status = effect_of(&envelope(DomainEvent::EventStatusChanged {
            event_id: Uuid::now_v7(),
            from: "ON_SALE".into(),
            to: "SOLD_OUT".into(),
        }));

        assert!(matches!(
            placed,
            Some(Effect::Order(OrderChange { placed: true, .. }))
        ));
        assert!(matches!(
            cancelled,
            Some(Effect::Order(OrderChange { placed: false, .. }))
        ));
        let settings = |scope: &str, namespace: &str| {
            effect_of(&envelope(DomainEvent::SettingsChanged(
                evently_bus::catalog::SettingsDocument {
                    scope: scope.into(),
                    scope_id: Uuid::from_u128(7),
                    namespace: namespace.into(),
                    version: 3,
                    document: serde_json::json!({
                        "locale": "de",
                        "favouriteCities": ["Berlin", "Oslo"],
                        "favouriteEventTypes": ["jazz"]
                    }),
                },
            )))
        };
        let Some(Effect::Preferences(preferences)) = settings("user", "preferences") else {
            panic!("a user's preferences have an effect");
        };
        assert_eq!(
            preferences,
            PreferencesChange {
                user_id: Uuid::from_u128(7),
                version: 3,
                cities: vec!["Berlin".into(), "Oslo".into()],
                types: vec!["jazz".into()],
            }
        );
        assert!(settings("platform", "preferences").is_none());
        assert!(settings("user", "booking").is_none());

        assert!(held.is_none() && anonymous.is_none());
        assert!(
            waitlisted.iter().all(Option::is_none),
            "waitlists are no purchases"
        );
        assert!(matches!(
            status,
            Some(Effect::Catalog(CatalogChange::Status {
                status: EventStatus::SoldOut,
                ..
            }))
        ));
    }
}
