//! The in-memory index of every event recommendations know: features, TF-IDF vectors, each
//! event's top content neighbours, and the popularity figures.
//!
//! A [`Catalogue`] is built whole from the store's events ([`Catalogue::build`]) in the
//! background when events change, never inside the consumer's transaction, and swapped in
//! at once: a request always sees one consistent catalogue. Content neighbours are found
//! the way MoreLikeThis finds them: candidates are the events that share a tag, the
//! organizer, the type and city, or one of the event's most telling words (posting lists of
//! an inverted index, each capped), and each candidate's content similarity is computed
//! exactly; the best [`NEIGHBOURS`] are kept.

use std::collections::{HashMap, HashSet};

use super::similarity::ContentParts;
use super::text::{TermVector, Vocabulary};
use super::{EventFeatures, EventId};

/// Content neighbours kept per event.
pub const NEIGHBOURS: usize = 50;
/// Events read from one posting list when looking for candidates; bounds the work per event
/// when a tag or city is very common.
const POSTING_CAP: usize = 1000;
/// Words of an event's text used to find candidates.
const QUERY_TERMS: usize = 5;

struct Entry {
    features: EventFeatures,
    vector: TermVector,
}

/// Every known event, indexed for similarity.
#[derive(Default)]
pub struct Catalogue {
    entries: HashMap<EventId, Entry>,
    neighbours: HashMap<EventId, Vec<(EventId, f64)>>,
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
        let mut events = events;
        // Posting lists in date order, so a capped list keeps the soonest events.
        events.sort_by_key(|e| (e.event_date, e.id));
        let docs: Vec<Vec<String>> = events.iter().map(EventFeatures::text_tokens).collect();
        let vocabulary = Vocabulary::build(docs.iter().map(Vec::as_slice));
        let vectors: Vec<TermVector> = docs.iter().map(|d| vocabulary.vector(d)).collect();

        let mut by_tag: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_organizer: HashMap<uuid::Uuid, Vec<usize>> = HashMap::new();
        let mut by_type_city: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut by_term: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            if !e.recommendable(now) {
                continue;
            }
            for tag in &e.tags {
                by_tag.entry(tag).or_default().push(i);
            }
            by_organizer.entry(e.organizer_id).or_default().push(i);
            if let (Some(t), Some(c)) = (&e.event_type, e.city_key()) {
                by_type_city.entry((t.clone(), c)).or_default().push(i);
            }
            for term in vectors[i].terms() {
                by_term.entry(term).or_default().push(i);
            }
        }

        let mut neighbours = HashMap::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let mut candidates: HashSet<usize> = HashSet::new();
            let mut take = |list: Option<&Vec<usize>>| {
                if let Some(list) = list {
                    candidates.extend(list.iter().take(POSTING_CAP).copied());
                }
            };
            for tag in &e.tags {
                take(by_tag.get(tag.as_str()));
            }
            take(by_organizer.get(&e.organizer_id));
            if let (Some(t), Some(c)) = (&e.event_type, e.city_key()) {
                take(by_type_city.get(&(t.clone(), c)));
            }
            for term in vectors[i].top_terms(QUERY_TERMS) {
                take(by_term.get(&term));
            }
            candidates.remove(&i);
            let mut scored: Vec<(EventId, f64)> = candidates
                .into_iter()
                .map(|j| {
                    let parts = ContentParts::of(e, &vectors[i], &events[j], &vectors[j]);
                    (events[j].id, parts.score())
                })
                .filter(|(_, s)| *s > 0.0)
                .collect();
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            scored.truncate(NEIGHBOURS);
            neighbours.insert(e.id, scored);
        }

        let mut by_city: HashMap<String, Vec<EventId>> = HashMap::new();
        let mut by_type: HashMap<String, Vec<EventId>> = HashMap::new();
        let mut upcoming = Vec::new();
        for e in events.iter().filter(|e| e.recommendable(now)) {
            upcoming.push(e.id);
            if let Some(c) = e.city_key() {
                by_city.entry(c).or_default().push(e.id);
            }
            if let Some(t) = &e.event_type {
                by_type.entry(t.clone()).or_default().push(e.id);
            }
        }
        let entries = events
            .into_iter()
            .zip(vectors)
            .map(|(features, vector)| (features.id, Entry { features, vector }))
            .collect();
        Self {
            entries,
            neighbours,
            by_city,
            by_type,
            upcoming,
        }
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
            &ea.features,
            &ea.vector,
            &eb.features,
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
