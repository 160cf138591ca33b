//! How alike two events are: by who bought them (item-to-item co-purchase, Linden, Smith and
//! York 2003), by what they are (content), and the blend of both.
//!
//! - co-purchase: `c / √(nₐ·n_b)` (the cosine of the two events' buyer sets), shrunk by
//!   `c / (c + 10)` so that a pair seen a few times does not outrank a well-supported one;
//! - content: tag Jaccard, same type, same city, same organizer, same price band and the TF-IDF
//!   cosine of name and description, weighted to a score in `[0, 1]`;
//! - blend: `α·co + (1 − α)·content` with `α = nₑ / (nₑ + 20)`: while an event has few
//!   buyers its neighbours are what it is like; as buyers come, what they bought takes over.

use std::collections::HashMap;

use super::text::TermVector;
use super::{EventFeatures, EventId, Reason};

/// Shrinkage of co-purchase counts: a pair bought together this often counts half.
pub const CO_SHRINK: f64 = 10.0;
/// Buyers at which co-purchase and content weigh the same in the blend.
pub const BLEND_SUPPORT: f64 = 20.0;

/// Item-to-item co-purchase similarity of two events bought together by `together` buyers,
/// out of `buyers_a` and `buyers_b` buyers each.
pub fn co_purchase(together: i64, buyers_a: i64, buyers_b: i64) -> f64 {
    if together <= 0 || buyers_a <= 0 || buyers_b <= 0 {
        return 0.0;
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "buyer counts stay far below 2^52"
    )]
    let (c, a, b) = (together as f64, buyers_a as f64, buyers_b as f64);
    (c / (a * b).sqrt()).min(1.0) * c / (c + CO_SHRINK)
}

/// Jaccard index of two sorted, deduplicated lists (of tags, or of their ids); 0 when both
/// are empty.
pub fn jaccard<T: Ord>(a: &[T], b: &[T]) -> f64 {
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - shared;
    if union == 0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "tag counts are small")]
    let j = shared as f64 / union as f64;
    j
}

/// The tags two sorted lists share, in order.
pub fn shared_tags<'a>(a: &'a [String], b: &'a [String]) -> impl Iterator<Item = &'a String> {
    a.iter().filter(move |t| b.binary_search(t).is_ok())
}

/// What two events have in common, each part in `[0, 1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ContentParts {
    /// Jaccard index of their tags.
    pub tags: f64,
    /// 1 when they have the same type.
    pub same_type: f64,
    /// 1 when they are in the same city.
    pub same_city: f64,
    /// 1 when the same organizer runs both.
    pub same_organizer: f64,
    /// 1 when their prices are within the same band.
    pub same_price_band: f64,
    /// Cosine of the TF-IDF vectors of their names and descriptions.
    pub text: f64,
}

/// Weights of the content parts; they sum to 1.
const W_TAGS: f64 = 0.35;
const W_TYPE: f64 = 0.15;
const W_CITY: f64 = 0.15;
const W_ORGANIZER: f64 = 0.05;
const W_PRICE: f64 = 0.05;
const W_TEXT: f64 = 0.25;

/// What of an event its content similarity compares, as small numbers (this runs for every
/// candidate pair of the neighbour search): tags, type and city as ids of a [`Symbols`] (a
/// city as [`super::city_key`] writes it), tag ids sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    tags: Vec<u32>,
    event_type: Option<u32>,
    city: Option<u32>,
    organizer_id: uuid::Uuid,
    price_band: i64,
}

/// Ids of the tags, types and cities of a catalogue's [`Profile`]s.
#[derive(Debug, Clone, Default)]
pub struct Symbols(HashMap<String, u32>);

impl Symbols {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(id) = self.0.get(text) {
            return *id;
        }
        let id = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0.insert(text.to_owned(), id);
        id
    }

    /// The profile of `f`, naming its tags, type and city with this table's ids (new ones
    /// added).
    pub fn profile(&mut self, f: &EventFeatures) -> Profile {
        let mut tags: Vec<u32> = f.tags.iter().map(|t| self.id(t)).collect();
        tags.sort_unstable();
        tags.dedup();
        Profile {
            tags,
            event_type: f.event_type.as_deref().map(|t| self.id(t)),
            city: f.city_key().map(|c| self.id(&c)),
            organizer_id: f.organizer_id,
            price_band: f.price_band(),
        }
    }
}

impl ContentParts {
    /// The parts of two events with profiles `a` and `b` (of one [`Symbols`]) and text
    /// vectors `va` and `vb`.
    pub fn of(a: &Profile, va: &TermVector, b: &Profile, vb: &TermVector) -> Self {
        let flag = |same: bool| if same { 1.0 } else { 0.0 };
        Self {
            tags: jaccard(&a.tags, &b.tags),
            same_type: flag(a.event_type.is_some() && a.event_type == b.event_type),
            same_city: flag(a.city.is_some() && a.city == b.city),
            same_organizer: flag(a.organizer_id == b.organizer_id),
            same_price_band: flag(a.price_band == b.price_band),
            text: va.cosine(vb),
        }
    }

    /// The content similarity, in `[0, 1]`.
    pub fn score(&self) -> f64 {
        W_TAGS * self.tags
            + W_TYPE * self.same_type
            + W_CITY * self.same_city
            + W_ORGANIZER * self.same_organizer
            + W_PRICE * self.same_price_band
            + W_TEXT * self.text
    }
}

/// The weight of co-purchase in the blend for an event with `buyers` buyers.
pub fn blend_alpha(buyers: i64) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "buyer counts stay far below 2^52"
    )]
    let n = buyers.max(0) as f64;
    n / (n + BLEND_SUPPORT)
}

/// Which signals a ranking uses: both (the product), or one alone (the baselines the
/// benchmark compares it with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Co-purchase and content, blended by support, with the caller's affinities.
    Hybrid,
    /// Content similarity and affinities only.
    ContentOnly,
    /// Co-purchase similarity only.
    CoPurchaseOnly,
    /// Popularity only.
    MostPopular,
}

/// How alike a candidate is to an anchor event, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Likeness {
    /// The blended similarity.
    pub score: f64,
    /// The reason the larger share of it gives.
    pub reason: Reason,
}

/// The blended similarity of `candidate` to `anchor` (which has `anchor_buyers` buyers),
/// from their co-purchase similarity `co` and content parts, under `method`; its reason
/// names the anchor.
pub fn blend(
    anchor: &EventFeatures,
    anchor_buyers: i64,
    candidate: &EventFeatures,
    co: f64,
    content: &ContentParts,
    method: Method,
) -> Likeness {
    let alpha = match method {
        Method::Hybrid => blend_alpha(anchor_buyers),
        Method::ContentOnly => 0.0,
        Method::CoPurchaseOnly => 1.0,
        Method::MostPopular => {
            return Likeness {
                score: 0.0,
                reason: Reason::Popular,
            };
        }
    };
    let from_co = alpha * co;
    let from_content = (1.0 - alpha) * content.score();
    let id = anchor.id;
    let reason = if from_co > 0.0 && from_co >= from_content {
        Reason::AlsoBought { event_id: id }
    } else {
        content_reason(anchor, candidate, content)
    };
    Likeness {
        score: from_co + from_content,
        reason,
    }
}

/// The content reason of `candidate` being like `anchor`: a shared tag first (the artist or
/// genre a buyer follows), then the organizer, else a general likeness.
pub fn content_reason(
    anchor: &EventFeatures,
    candidate: &EventFeatures,
    content: &ContentParts,
) -> Reason {
    let event_id: EventId = anchor.id;
    if let Some(tag) = shared_tags(&anchor.tags, &candidate.tags).next() {
        Reason::SameArtistTag {
            event_id,
            tag: tag.clone(),
        }
    } else if content.same_organizer > 0.0 {
        Reason::SameOrganizer { event_id }
    } else {
        Reason::SimilarTo { event_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tests::sample;
    use crate::domain::text::Vocabulary;
    use uuid::Uuid;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn co_purchase_is_the_shrunk_cosine_of_buyer_sets() {
        assert_eq!(co_purchase(0, 10, 10), 0.0);
        assert_eq!(co_purchase(3, 0, 10), 0.0);
        // 10 of 10 and 10 buyers: cosine 1, shrunk by half.
        assert!((co_purchase(10, 10, 10) - 0.5).abs() < 1e-12);
        // 100 of 100 and 400: cosine 0.5, shrunk by 100/110.
        assert!((co_purchase(100, 100, 400) - 0.5 * 100.0 / 110.0).abs() < 1e-12);
    }

    #[test]
    fn more_support_at_the_same_cosine_scores_higher() {
        let small = co_purchase(3, 3, 3);
        let large = co_purchase(300, 300, 300);
        assert!(large > small * 4.0, "{small} vs {large}");
    }

    #[test]
    fn jaccard_of_tags() {
        assert_eq!(jaccard::<String>(&[], &[]), 0.0);
        assert!((jaccard(&[1, 4, 9], &[4, 9, 12]) - 0.5).abs() < 1e-12);
        assert_eq!(jaccard(&tags(&["jazz"]), &tags(&["jazz"])), 1.0);
        assert!(
            (jaccard(&tags(&["jazz", "soul"]), &tags(&["jazz", "swing"])) - 1.0 / 3.0).abs()
                < 1e-12
        );
        assert_eq!(jaccard(&tags(&["jazz"]), &tags(&["rock"])), 0.0);
    }

    #[test]
    fn content_parts_compare_type_city_organizer_price_and_text() {
        let a = sample();
        let mut b = sample();
        b.id = EventId(Uuid::from_u128(2));
        b.city = Some(" berlin ".into());
        let docs = [a.text_tokens(), b.text_tokens(), vec!["other".to_owned()]];
        let v = Vocabulary::build(docs.iter().map(Vec::as_slice));
        let (va, vb) = (v.vector(&docs[0]), v.vector(&docs[1]));

        let mut symbols = Symbols::default();
        let pa = symbols.profile(&a);

        let same = ContentParts::of(&pa, &va, &symbols.profile(&b), &vb);

        assert_eq!(
            same.same_city, 1.0,
            "cities compare case- and space-insensitively"
        );
        assert_eq!(
            (same.same_type, same.same_organizer, same.tags),
            (1.0, 1.0, 1.0)
        );
        assert!((same.score() - 1.0).abs() < 1e-6, "{same:?}");

        b.city = Some("Paris".into());
        b.event_type = Some("sports".into());
        b.organizer_id = Uuid::from_u128(7);
        b.base_price = 100_000;
        b.tags = tags(&["football"]);
        let different = ContentParts::of(&pa, &va, &symbols.profile(&b), &TermVector::default());
        assert_eq!(different.score(), 0.0);
    }

    #[test]
    fn blend_moves_to_co_purchase_as_buyers_grow() {
        assert_eq!(blend_alpha(0), 0.0);
        assert!((blend_alpha(20) - 0.5).abs() < 1e-12);
        assert!(blend_alpha(1000) > 0.95);
        let a = sample();
        let mut c = sample();
        c.id = EventId(Uuid::from_u128(9));
        let content = ContentParts {
            tags: 1.0,
            ..ContentParts::default()
        };

        let new = blend(&a, 0, &c, 0.9, &content, Method::Hybrid);
        let known = blend(&a, 2000, &c, 0.9, &content, Method::Hybrid);

        assert_eq!(
            new.reason,
            Reason::SameArtistTag {
                event_id: a.id,
                tag: "jazz".into()
            }
        );
        assert_eq!(known.reason, Reason::AlsoBought { event_id: a.id });
        assert!((new.score - content.score()).abs() < 1e-12);
        assert!(known.score > 0.85);
    }

    #[test]
    fn single_signal_methods_ignore_the_other_signal() {
        let a = sample();
        let c = sample();
        let content = ContentParts {
            tags: 1.0,
            ..ContentParts::default()
        };
        assert_eq!(
            blend(&a, 1000, &c, 0.0, &content, Method::CoPurchaseOnly).score,
            0.0
        );
        assert_eq!(
            blend(
                &a,
                1000,
                &c,
                0.8,
                &ContentParts::default(),
                Method::ContentOnly
            )
            .score,
            0.0
        );
    }
}
