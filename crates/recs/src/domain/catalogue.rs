//! The in-memory index of every event recommendations know: features, TF-IDF vectors, each
//! event's top content neighbours, and the popularity figures.
//!
//! A [`Catalogue`] is built whole from the store's events ([`Catalogue::build`]), and
//! brought up to date after events change ([`Catalogue::update`]: only the changed events
//! are searched again), in the background, never inside the consumer's transaction, and
//! swapped in at once: a request always sees one consistent catalogue. Content neighbours are found
//! the way MoreLikeThis finds them: candidates are the events that share a tag, the
//! organizer, the type and city, or one of the event's most telling words (posting lists of
//! an inverted index, each capped), and each candidate's content similarity is computed
//! exactly; the best [`NEIGHBOURS`] are kept.

use std::collections::HashMap;

use rayon::prelude::*;

use super::similarity::{ContentParts, Profile, Symbols};
use super::text::{TermVector, Vocabulary};
use super::{EventFeatures, EventId};

/// Content neighbours kept per event.
pub const NEIGHBOURS: usize = 50;
/// Events read from one posting list when looking for candidates; bounds the work per event
/// when a tag or city is very common.
const POSTING_CAP: usize = 1000;
/// Words of an event's text used to find candidates.
const QUERY_TERMS: usize = 5;

/// Maps and sets keyed by event id on the neighbour search's hot path: a fast hash (the
/// ids are the service's own, not chosen by callers).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

#[derive(Clone)]
struct Entry {
    features: EventFeatures,
    profile: Profile,
    vector: TermVector,
}

/// Posting lists of the events that can be recommended, soonest first: the candidates of a
/// content-neighbour search.
#[derive(Clone, Default)]
struct Postings {
    by_tag: HashMap<String, Vec<EventId>>,
    by_organizer: HashMap<uuid::Uuid, Vec<EventId>>,
    by_type_city: HashMap<(String, String), Vec<EventId>>,
    by_term: HashMap<u32, Vec<EventId>>,
}

impl Postings {
    /// The keys of `f` (whose text vector is `v`) in every posting list.
    fn keys(f: &EventFeatures, v: &TermVector) -> Vec<Key> {
        let mut keys: Vec<Key> = f.tags.iter().map(|t| Key::Tag(t.clone())).collect();
        keys.push(Key::Organizer(f.organizer_id));
        if let (Some(t), Some(c)) = (&f.event_type, f.city_key()) {
            keys.push(Key::TypeCity(t.clone(), c));
        }
        keys.extend(v.terms().map(Key::Term));
        keys
    }

    fn list(&mut self, key: Key) -> &mut Vec<EventId> {
        match key {
            Key::Tag(t) => self.by_tag.entry(t).or_default(),
            Key::Organizer(o) => self.by_organizer.entry(o).or_default(),
            Key::TypeCity(t, c) => self.by_type_city.entry((t, c)).or_default(),
            Key::Term(t) => self.by_term.entry(t).or_default(),
        }
    }

    /// Adds `id` to its lists, keeping each in `(date, id)` order (`date_of` gives the
    /// dates of the events already listed).
    fn insert(&mut self, f: &EventFeatures, v: &TermVector, date_of: impl Fn(EventId) -> i64) {
        let at = (f.event_date, f.id);
        for key in Self::keys(f, v) {
            let list = self.list(key);
            let i = list.partition_point(|other| (date_of(*other), *other) < at);
            list.insert(i, f.id);
        }
    }

    /// Removes `f.id` from the lists its features put it in.
    fn remove(&mut self, f: &EventFeatures, v: &TermVector) {
        for key in Self::keys(f, v) {
            self.list(key).retain(|id| *id != f.id);
        }
    }
}

enum Key {
    Tag(String),
    Organizer(uuid::Uuid),
    TypeCity(String, String),
    Term(u32),
}

/// Every known event, indexed for similarity.
#[derive(Clone, Default)]
pub struct Catalogue {
    entries: FastMap<EventId, Entry>,
    neighbours: FastMap<EventId, Vec<(EventId, f64)>>,
    vocabulary: Vocabulary,
    symbols: Symbols,
    postings: Postings,
    by_city: HashMap<String, Vec<EventId>>,
    by_type: HashMap<String, Vec<EventId>>,
    upcoming: Vec<EventId>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("events", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Catalogue {
    /// Indexes `events` and finds each one's content neighbours among the events that can
    /// still be recommended at `now`.
    pub fn build(events: Vec<EventFeatures>, now: i64) -> Self {
        let docs: Vec<Vec<String>> = events.iter().map(EventFeatures::text_tokens).collect();
        let vocabulary = Vocabulary::build(docs.iter().map(Vec::as_slice));
        let mut catalogue = Catalogue {
            vocabulary,
            ..Catalogue::default()
        };
        for (features, doc) in events.into_iter().zip(docs) {
            let vector = catalogue.vocabulary.vector(&doc);
            let profile = catalogue.symbols.profile(&features);
            catalogue.entries.insert(
                features.id,
                Entry {
                    features,
                    profile,
                    vector,
                },
            );
        }
        let mut listed: Vec<&Entry> = catalogue
            .entries
            .values()
            .filter(|e| e.features.recommendable(now))
            .collect();
        // Posting lists in date order, so a capped list keeps the soonest events.
        listed.sort_by_key(|e| (e.features.event_date, e.features.id));
        let mut postings = Postings::default();
        for e in listed {
            for key in Postings::keys(&e.features, &e.vector) {
                postings.list(key).push(e.features.id);
            }
        }
        catalogue.postings = postings;
        // Every event's search reads the catalogue only: on every core.
        let ids: Vec<EventId> = catalogue.entries.keys().copied().collect();
        let found: Vec<(EventId, Vec<(EventId, f64)>)> = ids
            .into_par_iter()
            .map(|id| (id, catalogue.find_neighbours(id)))
            .collect();
        catalogue.neighbours.extend(found);
        catalogue.index_groups(now);
        catalogue
    }

    /// The catalogue after the store's events became `events`: only the events that
    /// changed, appeared or went are indexed again, their own neighbours found anew and
    /// offered to the lists of the events they are like; an event that changed or went
    /// leaves every list. Words are weighed with this catalogue's vocabulary (a new word
    /// counts only after the next [`Catalogue::build`]), and a list that lost an event stays
    /// shorter until then.
    pub fn update(&self, events: Vec<EventFeatures>, now: i64) -> Self {
        let mut next = self.clone();
        let incoming: FastMap<EventId, EventFeatures> =
            events.into_iter().map(|f| (f.id, f)).collect();
        let gone: Vec<EventId> = self
            .entries
            .keys()
            .filter(|id| !incoming.contains_key(id))
            .copied()
            .collect();
        let changed: Vec<EventFeatures> = incoming
            .into_values()
            .filter(|f| self.features(f.id) != Some(f))
            .collect();
        if gone.is_empty() && changed.is_empty() {
            return next;
        }
        let touched: FastSet<EventId> = gone
            .iter()
            .copied()
            .chain(changed.iter().map(|f| f.id))
            .collect();
        for id in &touched {
            if let Some(old) = self.entries.get(id) {
                next.postings.remove(&old.features, &old.vector);
            }
            next.entries.remove(id);
            next.neighbours.remove(id);
        }
        for list in next.neighbours.values_mut() {
            list.retain(|(id, _)| !touched.contains(id));
        }
        for features in changed.iter().cloned() {
            let vector = next.vocabulary.vector(&features.text_tokens());
            if features.recommendable(now) {
                let entries = &next.entries;
                next.postings.insert(&features, &vector, |id| {
                    entries.get(&id).map_or(i64::MIN, |e| e.features.event_date)
                });
            }
            let profile = next.symbols.profile(&features);
            next.entries.insert(
                features.id,
                Entry {
                    features,
                    profile,
                    vector,
                },
            );
        }
        for f in &changed {
            let list = next.find_neighbours(f.id);
            next.neighbours.insert(f.id, list);
        }
        for f in changed.iter().filter(|f| f.recommendable(now)) {
            for other in next.candidates(f.id) {
                let Some(score) = next.content_parts(other, f.id).map(|p| p.score()) else {
                    continue;
                };
                if score <= 0.0 {
                    continue;
                }
                let list = next.neighbours.entry(other).or_default();
                list.push((f.id, score));
                list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                list.truncate(NEIGHBOURS);
            }
        }
        next.index_groups(now);
        next
    }

    /// The events that share a tag, the organizer, the type and city, or one of the most
    /// telling words with `id` (each posting list read up to its cap), `id` left out.
    fn candidates(&self, id: EventId) -> FastSet<EventId> {
        let mut out = FastSet::default();
        let Some(e) = self.entries.get(&id) else {
            return out;
        };
        let p = &self.postings;
        let mut take = |list: Option<&Vec<EventId>>| {
            if let Some(list) = list {
                out.extend(list.iter().take(POSTING_CAP).copied());
            }
        };
        for tag in &e.features.tags {
            take(p.by_tag.get(tag));
        }
        take(p.by_organizer.get(&e.features.organizer_id));
        if let (Some(t), Some(c)) = (&e.features.event_type, e.features.city_key()) {
            take(p.by_type_city.get(&(t.clone(), c)));
        }
        for term in e.vector.top_terms(QUERY_TERMS) {
            take(p.by_term.get(&term));
        }
        out.remove(&id);
        out
    }

    /// The best [`NEIGHBOURS`] candidates of `id` by content similarity.
    fn find_neighbours(&self, id: EventId) -> Vec<(EventId, f64)> {
        let Some(e) = self.entries.get(&id) else {
            return Vec::new();
        };
        let mut scored: Vec<(EventId, f64)> = self
            .candidates(id)
            .into_iter()
            .filter_map(|other| {
                let o = self.entries.get(&other)?;
                let parts = ContentParts::of(&e.profile, &e.vector, &o.profile, &o.vector);
                Some((other, parts.score()))
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        // The best NEIGHBOURS in order, without sorting every candidate; then a list of its
        // own size: a truncated vector keeps the capacity of all the candidates (up to
        // thousands per event, gigabytes over a large catalogue).
        let best = |a: &(EventId, f64), b: &(EventId, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > NEIGHBOURS {
            scored.select_nth_unstable_by(NEIGHBOURS, best);
            scored.truncate(NEIGHBOURS);
        }
        scored.sort_by(best);
        scored.shrink_to_fit();
        scored
    }

    /// The events by city and by type, and all, that can be recommended at `now`, soonest
    /// first.
    fn index_groups(&mut self, now: i64) {
        let mut listed: Vec<&EventFeatures> = self
            .entries
            .values()
            .map(|e| &e.features)
            .filter(|f| f.recommendable(now))
            .collect();
        listed.sort_by_key(|f| (f.event_date, f.id));
        let (mut by_city, mut by_type): (HashMap<String, Vec<EventId>>, HashMap<_, Vec<_>>) =
            (HashMap::new(), HashMap::new());
        for f in &listed {
            if let Some(c) = f.city_key() {
                by_city.entry(c).or_default().push(f.id);
            }
            if let Some(t) = &f.event_type {
                by_type.entry(t.clone()).or_default().push(f.id);
            }
        }
        self.upcoming = listed.iter().map(|f| f.id).collect();
        self.by_city = by_city;
        self.by_type = by_type;
    }

    /// The events that could be recommended when the catalogue was built, soonest first.
    pub fn upcoming(&self) -> &[EventId] {
        &self.upcoming
    }

    /// The events in city `key` (see [`super::city_key`]) that could be recommended when
    /// the catalogue was built, soonest first.
    pub fn in_city(&self, key: &str) -> &[EventId] {
        self.by_city.get(key).map_or(&[], Vec::as_slice)
    }

    /// The events of type `event_type` that could be recommended when the catalogue was
    /// built, soonest first.
    pub fn of_type(&self, event_type: &str) -> &[EventId] {
        self.by_type.get(event_type).map_or(&[], Vec::as_slice)
    }

    /// How many events it knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it knows no event.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The features of event `id`.
    pub fn features(&self, id: EventId) -> Option<&EventFeatures> {
        self.entries.get(&id).map(|e| &e.features)
    }

    /// Every known event's features.
    pub fn events(&self) -> impl Iterator<Item = &EventFeatures> {
        self.entries.values().map(|e| &e.features)
    }

    /// The content neighbours of `id`, most alike first, with their content similarity.
    pub fn content_neighbours(&self, id: EventId) -> &[(EventId, f64)] {
        self.neighbours.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The content parts of `a` and `b`, when both are known.
    pub fn content_parts(&self, a: EventId, b: EventId) -> Option<ContentParts> {
        let (ea, eb) = (self.entries.get(&a)?, self.entries.get(&b)?);
        Some(ContentParts::of(
            &ea.profile,
            &ea.vector,
            &eb.profile,
            &eb.vector,
        ))
    }
}

/// How well one event sells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Popularity {
    /// Distinct buyers in all.
    pub buyers: i64,
    /// Buyers in the recent window (the last 7 days).
    pub recent: i64,
}

impl Popularity {
    fn weight(self) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "buyer counts stay far below 2^52"
        )]
        let w = self.recent as f64 + 0.1 * self.buyers as f64;
        w
    }
}

/// Popularity of every event that has sold, ranked.
#[derive(Debug, Clone, Default)]
pub struct PopularityTable {
    by_event: HashMap<EventId, Popularity>,
    ranked: Vec<EventId>,
    top: f64,
}

impl PopularityTable {
    /// The table of `figures`.
    pub fn new(figures: HashMap<EventId, Popularity>) -> Self {
        let mut ranked: Vec<EventId> = figures.keys().copied().collect();
        ranked.sort_by(|a, b| {
            figures[b]
                .weight()
                .total_cmp(&figures[a].weight())
                .then(a.cmp(b))
        });
        let top = ranked.first().map_or(0.0, |id| figures[id].weight());
        Self {
            by_event: figures,
            ranked,
            top,
        }
    }

    /// The figures of every event that has sold.
    pub fn figures(&self) -> &HashMap<EventId, Popularity> {
        &self.by_event
    }

    /// The figures of `id` (zero when it never sold).
    pub fn of(&self, id: EventId) -> Popularity {
        self.by_event.get(&id).copied().unwrap_or_default()
    }

    /// Its popularity relative to the best seller, in `[0, 1]`.
    pub fn prior(&self, id: EventId) -> f64 {
        if self.top <= 0.0 {
            return 0.0;
        }
        self.of(id).weight() / self.top
    }

    /// Events that sold, best sellers first.
    pub fn ranked(&self) -> &[EventId] {
        &self.ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tests::sample;
    use crate::domain::{DAY_MS, EventStatus};
    use uuid::Uuid;

    fn event(n: u128, tags: &[&str], city: &str, name: &str) -> EventFeatures {
        EventFeatures {
            id: EventId(Uuid::from_u128(n)),
            organizer_id: Uuid::from_u128(1000 + n),
            name: name.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            city: Some(city.into()),
            ..sample()
        }
    }

    #[test]
    fn neighbours_are_the_most_alike_recommendable_events() {
        let mut cancelled = event(4, &["jazz"], "Berlin", "Jazz Quartet");
        cancelled.status = EventStatus::Cancelled;
        let mut past = event(5, &["jazz"], "Berlin", "Jazz Quartet");
        past.event_date = -DAY_MS;
        let events = vec![
            event(1, &["jazz"], "Berlin", "Jazz Quartet"),
            event(2, &["jazz"], "Berlin", "Jazz Trio"),
            event(3, &["metal"], "Oslo", "Doom Metal"),
            cancelled,
            past,
        ];

        let catalogue = Catalogue::build(events, 0);

        let n = catalogue.content_neighbours(EventId(Uuid::from_u128(1)));
        let ids: Vec<u128> = n.iter().map(|(id, _)| id.0.as_u128()).collect();
        assert_eq!(ids[0], 2, "{n:?}");
        assert!(!ids.contains(&4) && !ids.contains(&5), "{ids:?}");
        assert!(!ids.contains(&1), "an event is not its own neighbour");
        assert_eq!(catalogue.len(), 5);
    }

    #[test]
    fn an_update_searches_again_only_what_changed_and_agrees_with_a_full_build() {
        let events = vec![
            event(1, &["jazz"], "Berlin", "Jazz Quartet"),
            event(2, &["jazz"], "Berlin", "Jazz Trio"),
            event(3, &["metal"], "Oslo", "Doom Metal"),
            event(4, &["jazz"], "Hamburg", "Harbour Jazz"),
        ];
        let before = Catalogue::build(events.clone(), 0);
        let mut after = events;
        after[1].status = EventStatus::Cancelled;
        after.remove(2);
        after.push(event(5, &["metal"], "Oslo", "Doom Metal Night"));
        after.push(event(6, &["jazz"], "Berlin", "Jazz Quartet Encore"));

        let updated = before.update(after.clone(), 0);
        let full = Catalogue::build(after, 0);

        let ids = |c: &Catalogue, n: u128| -> Vec<u128> {
            c.content_neighbours(EventId(Uuid::from_u128(n)))
                .iter()
                .map(|(id, _)| id.0.as_u128())
                .collect()
        };
        for n in [1, 4, 5, 6] {
            assert!(
                !ids(&updated, n).contains(&2),
                "a cancelled event leaves every list"
            );
            assert!(
                !ids(&updated, n).contains(&3),
                "a deleted event leaves every list"
            );
        }
        assert_eq!(ids(&updated, 6), ids(&full, 6));
        assert_eq!(
            ids(&updated, 1)[0],
            6,
            "a new event joins the lists of events like it"
        );
        assert_eq!(ids(&updated, 1), ids(&full, 1));
        assert!(
            updated
                .content_neighbours(EventId(Uuid::from_u128(3)))
                .is_empty()
        );
        assert_eq!(updated.len(), 5);
        assert_eq!(updated.upcoming().len(), 4);
        let same = updated.update(updated.events().cloned().collect(), 0);
        assert_eq!(ids(&same, 1), ids(&updated, 1));
    }

    #[test]
    fn popularity_prior_is_relative_to_the_best_seller() {
        let (a, b) = (EventId(Uuid::from_u128(1)), EventId(Uuid::from_u128(2)));
        let table = PopularityTable::new(HashMap::from([
            (
                a,
                Popularity {
                    buyers: 10,
                    recent: 10,
                },
            ),
            (
                b,
                Popularity {
                    buyers: 10,
                    recent: 0,
                },
            ),
        ]));

        assert_eq!(table.ranked(), [a, b]);
        assert!((table.prior(a) - 1.0).abs() < 1e-12);
        assert!((table.prior(b) - 1.0 / 11.0).abs() < 1e-12);
        assert_eq!(table.prior(EventId(Uuid::from_u128(3))), 0.0);
    }
}
