//! The relevance conformance suite on the tantivy index, in memory and on disk.

use evently_search::conformance as suite;
use evently_search::{EventIndex, TantivyIndex};
use std::sync::Arc;

fn in_memory() -> Arc<dyn EventIndex> {
    Arc::new(TantivyIndex::in_memory(15).expect("index"))
}

macro_rules! facts {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                suite::$name(in_memory()).await;
            }
        )*
    };
}

facts!(
    one_typo_from_five_letters,
    transposition_is_one_typo,
    no_typo_up_to_four_letters,
    first_letter_typo_needs_a_longer_word,
    no_typos_on_numbers,
    last_word_is_a_prefix,
    exact_above_prefix_above_typo,
    all_words_then_drop_from_the_end,
    name_above_description,
    disjunctive_facets,
    highlights_mark_typo_matches,
    cancelled_and_past_hidden,
    availability_newest_wins,
    updates_and_deletions,
    sorting_and_ties,
    exact_totals_and_pages,
    suggestions,
);

#[tokio::test]
async fn on_disk_the_index_and_its_positions_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("evently-search-{}", uuid::Uuid::now_v7()));
    {
        let index = TantivyIndex::open(&dir, 15).expect("open");
        assert!(index.is_fresh());
        suite::index_all(&index, &[suite::Sample::named("Jazz Festival")]).await;
    }
    // Another schema version's directory is removed on opening, this version's kept.
    std::fs::create_dir_all(dir.join("index-v0")).expect("mkdir");
    let index = reopen(&dir).await;
    assert!(!index.is_fresh());
    assert_eq!(index.position(evently_search::Stream::Events), 1);
    let r = index
        .search(&evently_search::SearchRequest::new("jazz", suite::NOW_MS))
        .expect("search");
    assert_eq!(r.total_hits, 1);
    assert!(!dir.join("index-v0").exists());
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens the index in `dir` once the previous writer thread has let go of its lock (when
/// its channel closes).
async fn reopen(dir: &std::path::Path) -> TantivyIndex {
    for _ in 0..50 {
        match TantivyIndex::open(dir, 15) {
            Ok(i) => return i,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    panic!("the index at {} did not reopen", dir.display());
}

#[tokio::test]
async fn on_disk_a_figure_that_came_before_its_event_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("evently-search-{}", uuid::Uuid::now_v7()));
    let early = uuid::Uuid::now_v7();
    {
        let index = TantivyIndex::open(&dir, 15).expect("open");
        // Booking's stream runs ahead: the figure of an event not indexed yet.
        index
            .apply(
                evently_search::Stream::Booking,
                vec![(1, Some(suite::figure(early, 40, 0, 6)))],
            )
            .await
            .expect("apply");
    }
    let index = reopen(&dir).await;
    let snapshot = suite::Sample::named("Harbour Lights Festival").snapshot(early);
    index
        .apply(
            evently_search::Stream::Events,
            vec![(
                1,
                Some(evently_search::document::Change::Upsert(
                    Box::new(snapshot),
                    1,
                )),
            )],
        )
        .await
        .expect("apply");
    let mut request = evently_search::SearchRequest::new("harbour", suite::NOW_MS);
    let r = index.search(&request).expect("search");
    request.filters.has_seats = Some(true);
    let with_seats = index.search(&request).expect("search");

    assert_eq!(index.position(evently_search::Stream::Booking), 1);
    assert_eq!(r.total_hits, 1);
    assert_eq!(
        r.hits[0].available_seats, 0,
        "the figure from before the restart"
    );
    assert_eq!(with_seats.total_hits, 0);
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn figures_waiting_for_their_events_are_bounded_the_oldest_event_giving_way() {
    let index = in_memory();
    // UUIDv7s in creation order: the first is the oldest event.
    let ids: Vec<uuid::Uuid> = (0..4_097).map(|_| uuid::Uuid::now_v7()).collect();
    let figures = ids
        .iter()
        .zip(1..)
        .map(|(id, position)| (position, Some(suite::figure(*id, 40, 0, 2))))
        .collect();
    index
        .apply(evently_search::Stream::Booking, figures)
        .await
        .expect("apply");
    let upsert = |id, name: &'static str| {
        Some(evently_search::document::Change::Upsert(
            Box::new(suite::Sample::named(name).snapshot(id)),
            1,
        ))
    };
    index
        .apply(
            evently_search::Stream::Events,
            vec![
                (1, upsert(ids[0], "Oldest Gala")),
                (2, upsert(ids[4_096], "Newest Gala")),
            ],
        )
        .await
        .expect("apply");
    let seats = |q| {
        index
            .search(&evently_search::SearchRequest::new(q, suite::NOW_MS))
            .expect("search")
            .hits[0]
            .available_seats
    };

    assert_eq!(seats("oldest"), 100, "its figure gave way");
    assert_eq!(seats("newest"), 0, "its figure was kept");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// No text, however odd, makes a search or a suggestion fail: it is only split into words.
    #[test]
    fn any_text_is_searchable(q in "\\PC{0,100}") {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let index = in_memory();
        runtime.block_on(suite::index_all(index.as_ref(), &[suite::Sample::named("Jazz Festival")]));
        let request = evently_search::SearchRequest::new(q.clone(), suite::NOW_MS);
        proptest::prop_assert!(index.search(&request).is_ok());
        proptest::prop_assert!(index.suggest(&q, suite::NOW_MS, 5).is_ok());
    }
}
