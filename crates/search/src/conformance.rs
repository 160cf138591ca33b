//! The relevance conformance suite every [`EventIndex`] must pass: each check is one fact
//! about what a user finds. Each takes a fresh, empty index.

use evently_bus::catalog::{Availability, EventSnapshot, InventoryChange};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::document::Change;
use crate::query::{SearchRequest, Sort};
use crate::{EventIndex, Stream};

/// "Now" in the suite: 2030-01-01T00:00:00Z.
pub const NOW_MS: i64 = 1_893_456_000_000;
const DAY_MS: i64 = 86_400_000;

/// An event of the suite.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Title.
    pub name: &'static str,
    /// City.
    pub city: &'static str,
    /// Type.
    pub event_type: &'static str,
    /// Status.
    pub status: &'static str,
    /// Days after [`NOW_MS`].
    pub in_days: i64,
    /// Description.
    pub description: &'static str,
    /// Tags.
    pub tags: &'static [&'static str],
}

impl Sample {
    /// A concert in Berlin on sale in 10 days.
    pub fn named(name: &'static str) -> Self {
        Self {
            name,
            city: "Berlin",
            event_type: "concert",
            status: "ON_SALE",
            in_days: 10,
            description: "",
            tags: &[],
        }
    }

    /// The snapshot of this event with `id`.
    pub fn snapshot(&self, id: Uuid) -> EventSnapshot {
        let at = |ms: i64| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        };
        EventSnapshot {
            event_id: id,
            organizer_id: Uuid::nil(),
            event_name: self.name.to_owned(),
            description: (!self.description.is_empty()).then(|| self.description.to_owned()),
            event_date: at(NOW_MS + self.in_days * DAY_MS),
            venue_id: None,
            venue_name: "Main Hall".to_owned(),
            city: Some(self.city.to_owned()),
            event_type: Some(self.event_type.to_owned()),
            tags: self.tags.iter().map(|t| (*t).to_owned()).collect(),
            status: self.status.to_owned(),
            total_seats: 100,
            sale_start_time: at(NOW_MS - DAY_MS),
            sale_end_time: None,
            base_price: 5000,
            currency: "EUR".to_owned(),
            section_prices: BTreeMap::new(),
            layout: None,
            time_zone: None,
        }
    }
}

/// Indexes `samples` (positions from `first`) and returns their ids.
///
/// # Panics
/// When the index fails.
pub async fn index_all(index: &dyn EventIndex, samples: &[Sample]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    let start = index.position(Stream::Events);
    for (i, s) in samples.iter().enumerate() {
        let id = Uuid::now_v7();
        ids.push(id);
        batch.push((
            start + 1 + i as u64,
            Some(Change::Upsert(Box::new(s.snapshot(id)), 1)),
        ));
    }
    index.apply(Stream::Events, batch).await.expect("indexing");
    ids
}

fn names(index: &dyn EventIndex, q: &str) -> Vec<String> {
    index
        .search(&SearchRequest::new(q, NOW_MS))
        .expect("search")
        .hits
        .into_iter()
        .map(|h| h.event_name)
        .collect()
}

fn one(name: &'static str) -> Vec<Sample> {
    vec![Sample::named(name), Sample::named("Opera Night")]
}

/// "metalica" finds "Metallica World Tour" (one typo in an 8-letter word).
pub async fn one_typo_from_five_letters(index: Arc<dyn EventIndex>) {
    index_all(index.as_ref(), &one("Metallica World Tour")).await;
    assert_eq!(names(index.as_ref(), "metalica"), ["Metallica World Tour"]);
}

/// "jazz fetsival" finds "Jazz Festival": a transposition is one typo.
pub async fn transposition_is_one_typo(index: Arc<dyn EventIndex>) {
    index_all(index.as_ref(), &one("Jazz Festival")).await;
    assert_eq!(names(index.as_ref(), "jazz fetsival"), ["Jazz Festival"]);
}

/// A word of 4 letters gets no typo: "jaz" is a prefix of "jazz", "jzaz" finds nothing.
pub async fn no_typo_up_to_four_letters(index: Arc<dyn EventIndex>) {
    index_all(index.as_ref(), &one("Jazz Festival")).await;
    assert_eq!(names(index.as_ref(), "jaz"), ["Jazz Festival"]);
    assert!(names(index.as_ref(), "jzaz").is_empty());
}

/// A typo on the first letter costs two: "netallica" (9 letters, two typos allowed) finds
/// Metallica, "betal" (5 letters, one typo) does not find "Metal".
pub async fn first_letter_typo_needs_a_longer_word(index: Arc<dyn EventIndex>) {
    index_all(
        index.as_ref(),
        &[
            Sample::named("Metallica World Tour"),
            Sample::named("Metal Night"),
        ],
    )
    .await;
    assert_eq!(names(index.as_ref(), "netallica"), ["Metallica World Tour"]);
    assert!(names(index.as_ref(), "betal").is_empty());
    assert!(names(index.as_ref(), "etallica").is_empty());
}

/// No typos on numbers: "2031" does not find "Expo 2030"; "203" is a prefix of it.
pub async fn no_typos_on_numbers(index: Arc<dyn EventIndex>) {
    index_all(index.as_ref(), &one("Expo 2030 Opening")).await;
    assert_eq!(names(index.as_ref(), "expo 2030"), ["Expo 2030 Opening"]);
    assert!(names(index.as_ref(), "2031").is_empty());
    assert_eq!(names(index.as_ref(), "expo 203"), ["Expo 2030 Opening"]);
}

/// The last word is also a prefix: "phil" finds "Berlin Philharmonic"; an earlier word is not.
pub async fn last_word_is_a_prefix(index: Arc<dyn EventIndex>) {
    index_all(index.as_ref(), &one("Berlin Philharmonic")).await;
    assert_eq!(names(index.as_ref(), "phil"), ["Berlin Philharmonic"]);
    assert_eq!(
        names(index.as_ref(), "berlin phil"),
        ["Berlin Philharmonic"]
    );
    // Only the last word is a prefix.
    assert!(names(index.as_ref(), "phil berlin").is_empty());
}

/// An exact match ranks above a prefix match, both above a typo match.
pub async fn exact_above_prefix_above_typo(index: Arc<dyn EventIndex>) {
    index_all(
        index.as_ref(),
        &[
            Sample::named("Medal Ceremony"),
            Sample::named("Metallurgy Days"),
            Sample::named("Metal Night"),
        ],
    )
    .await;
    assert_eq!(
        names(index.as_ref(), "metal"),
        ["Metal Night", "Metallurgy Days", "Medal Ceremony"]
    );
}

/// Every word must match; when nothing matches them all, words are dropped from the end.
pub async fn all_words_then_drop_from_the_end(index: Arc<dyn EventIndex>) {
    index_all(
        index.as_ref(),
        &[Sample::named("Rock Night"), Sample::named("Jazz Night")],
    )
    .await;
    assert_eq!(names(index.as_ref(), "rock night"), ["Rock Night"]);
    let r = index
        .search(&SearchRequest::new("jazz night unicorn", NOW_MS))
        .expect("search");
    assert_eq!(r.matched_words, ["jazz", "night"]);
    assert_eq!(r.total_hits, 1);
}

/// The name weighs more than the description.
pub async fn name_above_description(index: Arc<dyn EventIndex>) {
    let mut in_description = Sample::named("Evening Session");
    in_description.description = "An evening of salsa dancing";
    index_all(
        index.as_ref(),
        &[in_description, Sample::named("Salsa Evening")],
    )
    .await;
    assert_eq!(names(index.as_ref(), "salsa")[0], "Salsa Evening");
}

/// Facet counts are disjunctive: the counts of a selected facet's other values ignore its
/// own filter, and the other facets follow it.
pub async fn disjunctive_facets(index: Arc<dyn EventIndex>) {
    let mut paris = Sample::named("Rock in Paris");
    paris.city = "Paris";
    paris.event_type = "festival";
    let mut berlin2 = Sample::named("Rock Berlin Two");
    berlin2.event_type = "festival";
    index_all(
        index.as_ref(),
        &[Sample::named("Rock Berlin One"), berlin2, paris],
    )
    .await;
    let mut request = SearchRequest::new("rock", NOW_MS);
    request.filters.cities = vec!["berlin".to_owned()];
    let r = index.search(&request).expect("search");
    assert_eq!(r.total_hits, 2);
    assert_eq!(r.facets.city.get("Berlin"), Some(&2));
    assert_eq!(r.facets.city.get("Paris"), Some(&1), "{:?}", r.facets);
    assert_eq!(r.facets.event_type.get("festival"), Some(&1));
    assert_eq!(r.facets.event_type.get("concert"), Some(&1));
    assert_eq!(r.facets.month.values().sum::<u64>(), 2);
}

/// Highlights mark typo and prefix matches, escaped.
pub async fn highlights_mark_typo_matches(index: Arc<dyn EventIndex>) {
    let mut s = Sample::named("Metallica <World> Tour");
    s.description = "Metallica & friends play all night";
    index_all(index.as_ref(), &[s]).await;
    let r = index
        .search(&SearchRequest::new("metalica wor", NOW_MS))
        .expect("search");
    let hit = &r.hits[0];
    assert_eq!(
        hit.name_highlight.html,
        "<mark>Metallica</mark> &lt;<mark>World</mark>&gt; Tour"
    );
    assert_eq!(hit.name_highlight.ranges, vec![[0, 9], [11, 16]]);
    let d = hit.description_highlight.as_ref().expect("description");
    assert_eq!(
        d.html,
        "<mark>Metallica</mark> &amp; friends play all night"
    );
}

/// Cancelled and past events are hidden unless asked for; the date range counts an event
/// that is still going on.
pub async fn cancelled_and_past_hidden(index: Arc<dyn EventIndex>) {
    let mut cancelled = Sample::named("Gala Cancelled");
    cancelled.status = "CANCELLED";
    let mut past = Sample::named("Gala Past");
    past.in_days = -2;
    index_all(
        index.as_ref(),
        &[cancelled, past, Sample::named("Gala Live")],
    )
    .await;
    assert_eq!(names(index.as_ref(), "gala"), ["Gala Live"]);
    let mut request = SearchRequest::new("gala", NOW_MS);
    request.filters.statuses = vec!["CANCELLED".to_owned()];
    assert_eq!(
        index.search(&request).expect("search").hits[0].event_name,
        "Gala Cancelled"
    );
    let mut request = SearchRequest::new("gala", NOW_MS);
    request.filters.from_ms = Some(NOW_MS - 3 * DAY_MS);
    request.filters.to_ms = Some(NOW_MS - DAY_MS);
    assert_eq!(
        index.search(&request).expect("search").hits[0].event_name,
        "Gala Past"
    );
}

/// Booking's figure for `event_id`: `available` of `capacity` seats free, none held, at
/// inventory `version`.
pub fn figure(event_id: Uuid, capacity: i64, available: i64, version: i64) -> Change {
    Change::Availability(InventoryChange::of(
        event_id,
        Availability {
            capacity,
            available,
            held: 0,
            sold: capacity - available,
            version,
        },
    ))
}

/// Availability: the newest figure wins; `hasSeats` filters on it.
pub async fn availability_newest_wins(index: Arc<dyn EventIndex>) {
    let ids = index_all(index.as_ref(), &[Sample::named("Tiny Club Show")]).await;
    let figure = |available, version| Some(figure(ids[0], 100, available, version));
    index
        .apply(Stream::Booking, vec![(1, figure(0, 5)), (2, figure(7, 3))])
        .await
        .expect("apply");
    let mut request = SearchRequest::new("tiny", NOW_MS);
    request.filters.has_seats = Some(true);
    assert_eq!(index.search(&request).expect("search").total_hits, 0);
    request.filters.has_seats = Some(false);
    let r = index.search(&request).expect("search");
    assert_eq!(r.hits[0].available_seats, 0);
    // A redelivery below the recorded position changes nothing.
    index
        .apply(Stream::Booking, vec![(2, figure(50, 9))])
        .await
        .expect("apply");
    assert_eq!(index.search(&request).expect("search").total_hits, 1);
    assert_eq!(index.position(Stream::Booking), 2);
}

/// Updates replace, deletions remove, status changes follow.
pub async fn updates_and_deletions(index: Arc<dyn EventIndex>) {
    let ids = index_all(
        index.as_ref(),
        &[Sample::named("Old Name"), Sample::named("Doomed Show")],
    )
    .await;
    let p = index.position(Stream::Events);
    index
        .apply(
            Stream::Events,
            vec![
                (
                    p + 1,
                    Some(Change::Upsert(
                        Box::new(Sample::named("New Name").snapshot(ids[0])),
                        2,
                    )),
                ),
                (p + 2, Some(Change::Delete(ids[1]))),
                (
                    p + 3,
                    Some(Change::Status(ids[0], "SOLD_OUT".to_owned(), 3)),
                ),
            ],
        )
        .await
        .expect("apply");
    assert!(names(index.as_ref(), "old").is_empty());
    assert!(names(index.as_ref(), "doomed").is_empty());
    let r = index
        .search(&SearchRequest::new("new name", NOW_MS))
        .expect("search");
    assert_eq!(r.hits[0].status, "SOLD_OUT");
    assert_eq!(index.len(), 1);
}

/// Sorting by date and price; relevance ties put events on sale first, then sooner ones.
pub async fn sorting_and_ties(index: Arc<dyn EventIndex>) {
    let mut later = Sample::named("Quiz Later");
    later.in_days = 30;
    let mut upcoming = Sample::named("Quiz Upcoming");
    upcoming.status = "UPCOMING";
    upcoming.in_days = 5;
    let mut sooner = Sample::named("Quiz Sooner");
    sooner.in_days = 20;
    index_all(index.as_ref(), &[later, upcoming, sooner]).await;
    assert_eq!(
        names(index.as_ref(), "quiz"),
        ["Quiz Sooner", "Quiz Later", "Quiz Upcoming"]
    );
    let mut request = SearchRequest::new("", NOW_MS);
    request.sort = Sort::DateAsc;
    let r = index.search(&request).expect("search");
    let order: Vec<_> = r.hits.iter().map(|h| h.event_name.as_str()).collect();
    assert_eq!(order, ["Quiz Upcoming", "Quiz Sooner", "Quiz Later"]);
    assert_eq!(r.total_hits, 3);
}

/// Exact totals and pages; equal hits in a stable order.
pub async fn exact_totals_and_pages(index: Arc<dyn EventIndex>) {
    let samples: Vec<Sample> = (0..25).map(|_| Sample::named("Open Mic")).collect();
    let ids = index_all(index.as_ref(), &samples).await;
    let mut request = SearchRequest::new("open mic", NOW_MS);
    request.size = 10;
    let mut seen = Vec::new();
    for page in 0..3 {
        request.page = page;
        let r = index.search(&request).expect("search");
        assert_eq!(r.total_hits, 25);
        seen.extend(r.hits.into_iter().map(|h| h.event_id));
    }
    // Equal hits keep one order, older events first, so pages neither repeat nor skip.
    assert_eq!(seen, ids);
}

/// Suggestions: names and cities by prefix and typo.
pub async fn suggestions(index: Arc<dyn EventIndex>) {
    let mut m = Sample::named("Metallica World Tour");
    m.city = "Melbourne";
    index_all(index.as_ref(), &[m, Sample::named("Opera Night")]).await;
    let s = index.suggest("metalli", NOW_MS, 5).expect("suggest");
    assert_eq!(s.names[0].text, "Metallica World Tour");
    let s = index.suggest("melb", NOW_MS, 5).expect("suggest");
    assert_eq!(s.cities, ["Melbourne"]);
}
