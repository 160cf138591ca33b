//! Ranking: events related to one event, picks for a user, and the cold start, each
//! filtered (never what the caller owns, past, cancelled or sold-out events) and
//! diversified (at most [`PER_GROUP`] per organizer and per type in a page).
//!
//! For a user, a candidate's score is the sum over their purchases `p` of
//! `recency(p) · like(p, c)` (the blended similarity of [`super::similarity::blend`]; recency
//! halves every [`RECENCY_HALF_LIFE_DAYS`]), plus their affinity for its city and type (the
//! recency-weighted share of their purchases there), plus the favourite cities and types of
//! their preferences, plus a small popularity prior (recent sales). Its reason is the largest
//! of these contributions. Someone who bought nothing gets popular events, those in the city
//! asked for (else in their favourite cities) and of their favourite types first.

use std::collections::{HashMap, HashSet};

use super::catalogue::{Catalogue, PopularityTable};
use super::similarity::{Method, blend, co_purchase};
use super::{DAY_MS, EventFeatures, EventId, Favourites, Reason, Scored, city_key};

/// At most this many events of one organizer, and of one type, in a page.
pub const PER_GROUP: usize = 2;
/// A purchase's weight halves every this many days.
pub const RECENCY_HALF_LIFE_DAYS: f64 = 90.0;
/// Purchases (the most recent) whose neighbours are looked at.
pub const ANCHORS: usize = 20;
/// Weight of the share of the user's purchases in a candidate's city.
const W_CITY: f64 = 0.4;
/// Weight of the share of the user's purchases of a candidate's type.
const W_TYPE: f64 = 0.3;
/// Weight of a candidate in one of the user's favourite cities.
const W_FAVOURITE_CITY: f64 = 0.3;
/// Weight of a candidate of one of the user's favourite types.
const W_FAVOURITE_TYPE: f64 = 0.2;
/// Weight of the popularity prior.
const W_PRIOR: f64 = 0.05;
/// Candidates of each kind (best sellers, soonest in the city, soonest anywhere) for the
/// popular ranking.
const POPULAR_POOL: usize = 500;
/// Popular events added as candidates for a user, beyond their purchases' neighbours.
const POPULAR_CANDIDATES: usize = 200;
/// A user's favourite cities, and types, whose events are added as candidates.
const AFFINITY_GROUPS: usize = 3;
/// Events added as candidates per favourite city or type.
const AFFINITY_CANDIDATES: usize = 100;

/// The `n` largest shares of `shares`, largest first.
fn top(shares: &HashMap<String, f64>, n: usize) -> Vec<(&String, f64)> {
    let mut all: Vec<(&String, f64)> = shares.iter().map(|(k, v)| (k, *v)).collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    all.truncate(n);
    all
}

/// A co-purchase edge: `together` distinct buyers bought both `anchor` and `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoEdge {
    /// The event looked up.
    pub anchor: EventId,
    /// An event bought with it.
    pub other: EventId,
    /// Buyers of both.
    pub together: i64,
    /// Buyers of `anchor`.
    pub anchor_buyers: i64,
    /// Buyers of `other`.
    pub other_buyers: i64,
}

/// One of the user's purchases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase {
    /// The event bought.
    pub event_id: EventId,
    /// When (epoch ms; the latest order for it).
    pub at: i64,
}

/// What a ranking reads: the catalogue, popularity and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Every event's features and content neighbours.
    pub catalogue: &'a Catalogue,
    /// Sales figures.
    pub popularity: &'a PopularityTable,
    /// Now (epoch ms).
    pub now: i64,
    /// The signals to use.
    pub method: Method,
}

/// The weight of a purchase made `age_ms` ago.
pub fn recency(age_ms: i64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "ages in ms fit f64")]
    let days = age_ms.max(0) as f64 / DAY_MS as f64;
    0.5f64.powf(days / RECENCY_HALF_LIFE_DAYS)
}

/// Keeps `ranked` in order but leaves out an event once [`PER_GROUP`] of its organizer or
/// of its type are in; returns at most `limit`.
pub fn diversify(ranked: Vec<Scored>, catalogue: &Catalogue, limit: usize) -> Vec<Scored> {
    let mut organizers: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut types: HashMap<String, usize> = HashMap::new();
    let mut page = Vec::with_capacity(limit.min(64));
    for item in ranked {
        if page.len() == limit {
            break;
        }
        let Some(f) = catalogue.features(item.event_id) else {
            continue;
        };
        let by_organizer = organizers.get(&f.organizer_id).copied().unwrap_or(0);
        let by_type = f
            .event_type
            .as_ref()
            .map_or(0, |t| types.get(t).copied().unwrap_or(0));
        if by_organizer >= PER_GROUP || by_type >= PER_GROUP {
            continue;
        }
        *organizers.entry(f.organizer_id).or_default() += 1;
        if let Some(t) = &f.event_type {
            *types.entry(t.clone()).or_default() += 1;
        }
        page.push(item);
    }
    page
}

/// Whether `f` may be shown to a caller owning `owned` at `now`.
fn eligible(f: &EventFeatures, now: i64, owned: &HashSet<EventId>) -> bool {
    f.recommendable(now) && !owned.contains(&f.id)
}

/// Orders `items` best first: by score, then by popularity, then by id (so that equal
/// answers come in one order). Each item's popularity is looked up once.
fn sort(items: &mut Vec<Scored>, popularity: &PopularityTable) {
    let mut keyed: Vec<(f64, Scored)> = items
        .drain(..)
        .map(|s| (popularity.prior(s.event_id), s))
        .collect();
    keyed.sort_by(|(pa, a), (pb, b)| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| pb.total_cmp(pa))
            .then(a.event_id.cmp(&b.event_id))
    });
    items.extend(keyed.into_iter().map(|(_, s)| s));
}

/// How alike every candidate is to `anchor`: its content neighbours and the events bought
/// with it (`edges` whose anchor is `anchor`), each blended under the method.
fn likeness(
    ctx: &Context<'_>,
    anchor: &EventFeatures,
    edges: &[CoEdge],
) -> HashMap<EventId, (f64, Reason)> {
    let mut out = HashMap::new();
    if ctx.method == super::similarity::Method::MostPopular {
        return out;
    }
    let anchor_buyers = ctx.popularity.of(anchor.id).buyers;
    let mut co: HashMap<EventId, f64> = edges
        .iter()
        .filter(|e| e.anchor == anchor.id)
        .map(|e| {
            (
                e.other,
                co_purchase(e.together, e.anchor_buyers, e.other_buyers),
            )
        })
        .collect();
    // Co-purchase similarities are small next to content ones (a shrunk cosine of buyer
    // sets); scaled so that the anchor's best partner scores 1, both signals blend on one
    // scale and the weight alone decides between them.
    let best = co.values().copied().fold(0.0, f64::max);
    if best > 0.0 {
        co.values_mut().for_each(|c| *c /= best);
    }
    let candidates = ctx
        .catalogue
        .content_neighbours(anchor.id)
        .iter()
        .map(|(id, _)| *id)
        .chain(co.keys().copied());
    for id in candidates {
        if out.contains_key(&id) || id == anchor.id {
            continue;
        }
        let (Some(candidate), Some(parts)) = (
            ctx.catalogue.features(id),
            ctx.catalogue.content_parts(anchor.id, id),
        ) else {
            continue;
        };
        let c = co.get(&id).copied().unwrap_or(0.0);
        let l = blend(anchor, anchor_buyers, candidate, c, &parts, ctx.method);
        if l.score > 0.0 {
            out.insert(id, (l.score, l.reason));
        }
    }
    out
}

/// Up to `limit` events related to `anchor` (none when it is unknown), for a caller owning
/// `owned`.
pub fn related(
    ctx: &Context<'_>,
    anchor: EventId,
    edges: &[CoEdge],
    owned: &HashSet<EventId>,
    limit: usize,
) -> Vec<Scored> {
    let Some(a) = ctx.catalogue.features(anchor) else {
        return Vec::new();
    };
    let mut items: Vec<Scored> = likeness(ctx, a, edges)
        .into_iter()
        .filter(|(id, _)| {
            ctx.catalogue
                .features(*id)
                .is_some_and(|f| eligible(f, ctx.now, owned))
        })
        .map(|(event_id, (score, reason))| Scored {
            event_id,
            score: score + W_PRIOR * ctx.popularity.prior(event_id),
            reason,
        })
        .collect();
    sort(&mut items, ctx.popularity);
    diversify(items, ctx.catalogue, limit)
}

/// Popular upcoming events, those in `city` first (when given, else those in a favourite
/// city), and among equals those of a favourite type: the answer for an anonymous caller
/// (no favourites) or one who has bought nothing.
pub fn popular(
    ctx: &Context<'_>,
    city: Option<&str>,
    favourites: &Favourites,
    owned: &HashSet<EventId>,
    limit: usize,
) -> Vec<Scored> {
    let asked = city_key(city);
    // The cities first: the one asked for, else the favourite ones.
    let preferred: Vec<String> = match &asked {
        Some(c) => vec![c.clone()],
        None => favourites.cities.clone(),
    };
    let mut seen: HashSet<EventId> = HashSet::new();
    let mut items: Vec<Scored> = Vec::new();
    // The best sellers, the soonest events in the preferred cities and of the favourite
    // types, and the soonest events anywhere (which may not have sold yet): enough to fill a
    // page after filters and diversity, and bounded however large the catalogue.
    let per_group = if asked.is_some() {
        POPULAR_POOL
    } else {
        AFFINITY_CANDIDATES
    };
    let local = preferred
        .iter()
        .flat_map(|c| ctx.catalogue.in_city(c).iter().take(per_group));
    let typed = favourites
        .types
        .iter()
        .flat_map(|t| ctx.catalogue.of_type(t).iter().take(AFFINITY_CANDIDATES));
    let candidates = ctx
        .popularity
        .ranked()
        .iter()
        .take(POPULAR_POOL)
        .chain(local)
        .chain(typed)
        .chain(ctx.catalogue.upcoming().iter().take(POPULAR_POOL))
        .copied();
    for id in candidates {
        let Some(f) = ctx.catalogue.features(id) else {
            continue;
        };
        if !eligible(f, ctx.now, owned) || !seen.insert(id) {
            continue;
        }
        let local = f.city_key().is_some_and(|c| preferred.contains(&c));
        let typed = favourites.type_of(f);
        // A preferred city lifts an event above every other one (whose score is at most
        // 2 + its prior, itself at most 1); a favourite type above those of no favourite.
        let score = ctx.popularity.prior(id)
            + if local { 4.0 } else { 0.0 }
            + if typed { 2.0 } else { 0.0 };
        let reason = match (local, &f.city, &f.event_type) {
            (true, city, _) if asked.is_some() => Reason::PopularInCity {
                city: city.clone().unwrap_or_default(),
            },
            (true, city, _) => Reason::FavouriteCity {
                city: city.clone().unwrap_or_default(),
            },
            (false, _, Some(t)) if typed => Reason::FavouriteType {
                event_type: t.clone(),
            },
            _ => Reason::Popular,
        };
        items.push(Scored {
            event_id: id,
            score,
            reason,
        });
    }
    sort(&mut items, ctx.popularity);
    diversify(items, ctx.catalogue, limit)
}

/// Up to `limit` picks for a user who bought `purchases` and likes `favourites`, with the
/// co-purchase `edges` of those purchases. Falls back to [`popular`] (in `city`, else in
/// their favourite cities) when they bought nothing that is still known.
pub fn for_user(
    ctx: &Context<'_>,
    purchases: &[Purchase],
    favourites: &Favourites,
    edges: &[CoEdge],
    city: Option<&str>,
    limit: usize,
) -> Vec<Scored> {
    let owned: HashSet<EventId> = purchases.iter().map(|p| p.event_id).collect();
    let mut recent: Vec<(&EventFeatures, f64)> = purchases
        .iter()
        .filter_map(|p| {
            ctx.catalogue
                .features(p.event_id)
                .map(|f| (f, recency(ctx.now - p.at)))
        })
        .collect();
    // The baselines that look at neither tastes nor places leave the favourites out too.
    let no_favourites = Favourites::default();
    let favourites = match ctx.method {
        Method::Hybrid | Method::ContentOnly => favourites,
        Method::CoPurchaseOnly | Method::MostPopular => &no_favourites,
    };
    if recent.is_empty() || ctx.method == Method::MostPopular {
        return popular(ctx, city, favourites, &owned, limit);
    }
    recent.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.id.cmp(&b.0.id)));

    // Affinities: the recency-weighted share of purchases per city and per type.
    let total: f64 = recent.iter().map(|(_, w)| w).sum();
    let mut cities: HashMap<String, f64> = HashMap::new();
    let mut types: HashMap<String, f64> = HashMap::new();
    for (f, w) in &recent {
        if let Some(c) = f.city_key() {
            *cities.entry(c).or_default() += w / total;
        }
        if let Some(t) = &f.event_type {
            *types.entry(t.clone()).or_default() += w / total;
        }
    }
    let use_affinity = ctx.method != Method::CoPurchaseOnly;

    // (score, best contribution, its reason)
    let mut scores: HashMap<EventId, (f64, f64, Reason)> = HashMap::new();
    let mut add = |id: EventId, amount: f64, reason: Reason| {
        let entry = scores.entry(id).or_insert((0.0, 0.0, Reason::Popular));
        entry.0 += amount;
        if amount > entry.1 {
            entry.1 = amount;
            entry.2 = reason;
        }
    };
    for (anchor, w) in recent.iter().take(ANCHORS) {
        for (id, (score, reason)) in likeness(ctx, anchor, edges) {
            add(id, w * score, reason);
        }
    }
    if use_affinity {
        for id in ctx.popularity.ranked().iter().take(POPULAR_CANDIDATES) {
            add(*id, 0.0, Reason::Popular);
        }
        // The soonest events in the cities and of the types they buy most.
        for (key, _) in top(&cities, AFFINITY_GROUPS) {
            for id in ctx.catalogue.in_city(key).iter().take(AFFINITY_CANDIDATES) {
                add(*id, 0.0, Reason::Popular);
            }
        }
        for (key, _) in top(&types, AFFINITY_GROUPS) {
            for id in ctx.catalogue.of_type(key).iter().take(AFFINITY_CANDIDATES) {
                add(*id, 0.0, Reason::Popular);
            }
        }
        // And in the cities and of the types they said they like.
        for key in &favourites.cities {
            for id in ctx.catalogue.in_city(key).iter().take(AFFINITY_CANDIDATES) {
                add(*id, 0.0, Reason::Popular);
            }
        }
        for key in &favourites.types {
            for id in ctx.catalogue.of_type(key).iter().take(AFFINITY_CANDIDATES) {
                add(*id, 0.0, Reason::Popular);
            }
        }
    }
    let mut items: Vec<Scored> = Vec::with_capacity(scores.len());
    for (id, (mut score, mut best, mut reason)) in scores {
        let Some(f) = ctx.catalogue.features(id) else {
            continue;
        };
        if !eligible(f, ctx.now, &owned) {
            continue;
        }
        if use_affinity {
            let city_share = f.city_key().and_then(|c| cities.get(&c)).copied();
            if let Some(share) = city_share {
                let amount = W_CITY * share;
                score += amount;
                if amount > best {
                    best = amount;
                    reason = Reason::YourCity {
                        city: f.city.clone().unwrap_or_default(),
                    };
                }
            }
            if let Some(t) = &f.event_type
                && let Some(share) = types.get(t)
            {
                let amount = W_TYPE * share;
                score += amount;
                if amount > best {
                    best = amount;
                    reason = Reason::YourType {
                        event_type: t.clone(),
                    };
                }
            }
            if favourites.city_of(f) {
                score += W_FAVOURITE_CITY;
                if W_FAVOURITE_CITY > best {
                    best = W_FAVOURITE_CITY;
                    reason = Reason::FavouriteCity {
                        city: f.city.clone().unwrap_or_default(),
                    };
                }
            }
            if let Some(t) = &f.event_type
                && favourites.type_of(f)
            {
                score += W_FAVOURITE_TYPE;
                if W_FAVOURITE_TYPE > best {
                    best = W_FAVOURITE_TYPE;
                    reason = Reason::FavouriteType {
                        event_type: t.clone(),
                    };
                }
            }
        }
        let prior = W_PRIOR * ctx.popularity.prior(id);
        score += prior;
        if prior > best {
            reason = Reason::Popular;
        }
        if score > 0.0 {
            items.push(Scored {
                event_id: id,
                score,
                reason,
            });
        }
    }
    sort(&mut items, ctx.popularity);
    let mut page = diversify(items, ctx.catalogue, limit);
    if page.len() < limit {
        // Too few alike events: fill the page with popular ones, still diversified.
        let seen: HashSet<EventId> = page.iter().map(|s| s.event_id).chain(owned).collect();
        let fill = popular(ctx, city, favourites, &seen, usize::MAX);
        let mut merged = page;
        merged.extend(fill);
        page = diversify(merged, ctx.catalogue, limit);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventStatus;
    use crate::domain::catalogue::Popularity;
    use crate::domain::tests::sample;
    use uuid::Uuid;

    const NOW: i64 = 1_000 * DAY_MS;

    fn id(n: u128) -> EventId {
        EventId(Uuid::from_u128(n))
    }

    fn event(n: u128, event_type: &str, tags: &[&str], city: &str) -> EventFeatures {
        EventFeatures {
            id: id(n),
            organizer_id: Uuid::from_u128(10_000 + n),
            name: format!("{} {}", tags.join(" "), event_type),
            event_type: Some(event_type.into()),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            city: Some(city.into()),
            event_date: NOW + 30 * DAY_MS,
            ..sample()
        }
    }

    fn world() -> (Catalogue, PopularityTable) {
        let mut past = event(8, "concert", &["jazz"], "Berlin");
        past.event_date = NOW - DAY_MS;
        let mut sold_out = event(9, "concert", &["jazz"], "Berlin");
        sold_out.status = EventStatus::SoldOut;
        let mut cancelled = event(10, "concert", &["jazz"], "Berlin");
        cancelled.status = EventStatus::Cancelled;
        let events = vec![
            event(1, "concert", &["jazz"], "Berlin"),
            event(2, "concert", &["jazz"], "Berlin"),
            event(3, "concert", &["jazz", "swing"], "Hamburg"),
            event(4, "sports", &["football"], "Munich"),
            event(5, "theatre", &["drama"], "Berlin"),
            event(6, "comedy", &["standup"], "Paris"),
            past,
            sold_out,
            cancelled,
        ];
        let popularity = PopularityTable::new(HashMap::from([
            (
                id(6),
                Popularity {
                    buyers: 500,
                    recent: 90,
                },
            ),
            (
                id(4),
                Popularity {
                    buyers: 300,
                    recent: 50,
                },
            ),
            (
                id(1),
                Popularity {
                    buyers: 5,
                    recent: 1,
                },
            ),
        ]));
        (Catalogue::build(events, NOW), popularity)
    }

    /// The hybrid ranking's context over `catalogue` and `popularity`, at `NOW`.
    fn hybrid<'a>(catalogue: &'a Catalogue, popularity: &'a PopularityTable) -> Context<'a> {
        Context {
            catalogue,
            popularity,
            now: NOW,
            method: Method::Hybrid,
        }
    }

    fn ids(items: &[Scored]) -> Vec<u128> {
        items.iter().map(|s| s.event_id.0.as_u128()).collect()
    }

    #[test]
    fn recency_halves_every_half_life() {
        assert!((recency(0) - 1.0).abs() < 1e-12);
        assert!((recency(90 * DAY_MS) - 0.5).abs() < 1e-12);
        assert!(
            (recency(-DAY_MS) - 1.0).abs() < 1e-12,
            "future purchases count fully"
        );
    }

    #[test]
    fn jazz_in_berlin_brings_jazz_and_berlin_first_never_owned_past_sold_out_or_cancelled() {
        let (catalogue, popularity) = world();
        let ctx = hybrid(&catalogue, &popularity);
        let bought = [Purchase {
            event_id: id(1),
            at: NOW - DAY_MS,
        }];

        let page = for_user(&ctx, &bought, &Favourites::default(), &[], None, 10);

        let got = ids(&page);
        assert_eq!(got[0], 2, "{page:?}");
        assert_eq!(
            page[0].reason,
            Reason::SameArtistTag {
                event_id: id(1),
                tag: "jazz".into()
            }
        );
        assert!(got.iter().position(|&n| n == 3) < got.iter().position(|&n| n == 6));
        for never in [1, 8, 9, 10] {
            assert!(!got.contains(&never), "{never} in {got:?}");
        }
    }

    #[test]
    fn anonymous_gets_popular_events_in_their_city_first() {
        let (catalogue, popularity) = world();
        let ctx = hybrid(&catalogue, &popularity);

        let anywhere = popular(&ctx, None, &Favourites::default(), &HashSet::new(), 3);
        let berlin = popular(
            &ctx,
            Some("berlin"),
            &Favourites::default(),
            &HashSet::new(),
            3,
        );

        assert_eq!(ids(&anywhere)[..2], [6, 4]);
        assert_eq!(anywhere[0].reason, Reason::Popular);
        assert_eq!(ids(&berlin)[0], 1);
        assert_eq!(
            berlin[0].reason,
            Reason::PopularInCity {
                city: "Berlin".into()
            }
        );
    }

    #[test]
    fn favourite_cities_and_types_lift_their_events_and_say_so() {
        let (catalogue, popularity) = world();
        let ctx = hybrid(&catalogue, &popularity);
        let bought = [Purchase {
            event_id: id(1),
            at: NOW - DAY_MS,
        }];
        let none = Favourites::default();
        let paris_comedy = Favourites::new(&[" PARIS ".into()], &["Comedy".into()]);
        let munich = Favourites::new(&["Munich".into()], &[]);
        let rank_of = |page: &[Scored], n: u128| ids(page).iter().position(|&m| m == n);

        let plain = for_user(&ctx, &bought, &none, &[], None, 10);
        let liked = for_user(&ctx, &bought, &paris_comedy, &[], None, 10);
        let cold = for_user(&ctx, &[], &munich, &[], None, 10);
        let cold_asked = for_user(&ctx, &[], &munich, &[], Some("Berlin"), 10);
        let baseline = Context {
            method: Method::MostPopular,
            ..ctx
        };
        let cold_baseline = for_user(&baseline, &[], &munich, &[], None, 10);

        // The comedy in Paris (6) sells best but is unlike the jazz bought: its favourites
        // lift it above the theatre in Berlin (5), below which it ranks without them.
        assert!(rank_of(&plain, 6) > rank_of(&plain, 5), "{plain:?}");
        assert!(rank_of(&liked, 6) < rank_of(&liked, 5), "{liked:?}");
        let six = liked.iter().find(|s| s.event_id == id(6)).unwrap();
        assert_eq!(
            six.reason,
            Reason::FavouriteCity {
                city: "Paris".into()
            }
        );
        let plain_score = plain.iter().find(|s| s.event_id == id(6)).unwrap().score;
        assert!(
            (six.score - plain_score - W_FAVOURITE_CITY - W_FAVOURITE_TYPE).abs() < 1e-9,
            "both favourites add their weights: {} vs {plain_score}",
            six.score
        );
        // Someone who bought nothing: their favourite city first, unless they ask for one.
        assert_eq!(ids(&cold)[0], 4, "{cold:?}");
        assert_eq!(
            cold[0].reason,
            Reason::FavouriteCity {
                city: "Munich".into()
            }
        );
        assert_eq!(ids(&cold_asked)[0], 1, "{cold_asked:?}");
        assert_eq!(
            cold_asked[0].reason,
            Reason::PopularInCity {
                city: "Berlin".into()
            }
        );
        assert_eq!(
            ids(&cold_baseline)[0],
            6,
            "the most-popular baseline ignores favourites"
        );
    }

    #[test]
    fn a_favourite_type_comes_after_a_favourite_city_and_before_the_rest() {
        let (catalogue, popularity) = world();
        let ctx = hybrid(&catalogue, &popularity);
        let favourites = Favourites::new(&["Hamburg".into()], &["theatre".into()]);

        let page = for_user(&ctx, &[], &favourites, &[], None, 10);

        assert_eq!(ids(&page)[..2], [3, 5], "{page:?}");
        assert_eq!(
            page[1].reason,
            Reason::FavouriteType {
                event_type: "theatre".into()
            }
        );
        assert_eq!(page[2].reason, Reason::Popular);
    }

    #[test]
    fn co_purchases_say_also_bought_once_support_is_large() {
        let (catalogue, _) = world();
        let popularity = PopularityTable::new(HashMap::from([
            (
                id(1),
                Popularity {
                    buyers: 400,
                    recent: 0,
                },
            ),
            (
                id(4),
                Popularity {
                    buyers: 400,
                    recent: 0,
                },
            ),
        ]));
        let ctx = hybrid(&catalogue, &popularity);
        let edges = [CoEdge {
            anchor: id(1),
            other: id(4),
            together: 300,
            anchor_buyers: 400,
            other_buyers: 400,
        }];

        let page = related(&ctx, id(1), &edges, &HashSet::new(), 5);

        assert_eq!(ids(&page)[0], 4, "{page:?}");
        assert_eq!(page[0].reason, Reason::AlsoBought { event_id: id(1) });
    }

    #[test]
    fn diversity_keeps_two_per_organizer_and_per_type() {
        let organizer = Uuid::from_u128(77);
        let mut events: Vec<EventFeatures> = (1..=4)
            .map(|n| EventFeatures {
                organizer_id: organizer,
                event_type: Some(format!("type{n}")),
                ..event(n, "x", &["a"], "Berlin")
            })
            .collect();
        events.extend((5..=8).map(|n| event(n, "concert", &["b"], "Berlin")));
        let catalogue = Catalogue::build(events, NOW);
        let ranked: Vec<Scored> = (1..=8)
            .map(|n| Scored {
                event_id: id(n),
                #[expect(clippy::cast_precision_loss, reason = "small test numbers")]
                score: 10.0 - n as f64,
                reason: Reason::Popular,
            })
            .collect();

        let page = diversify(ranked, &catalogue, 10);

        assert_eq!(ids(&page), [1, 2, 5, 6]);
    }

    /// One generated event: (type, organizer, city, tag, days ahead, status).
    fn generated(n: usize, spec: (u8, u8, u8, u8, i64, u8)) -> EventFeatures {
        let (kind, organizer, city, tag, days, status) = spec;
        EventFeatures {
            id: id(n as u128 + 1),
            organizer_id: Uuid::from_u128(u128::from(organizer) + 500),
            name: format!("tag{tag} show"),
            event_type: Some(format!("type{kind}")),
            tags: vec![format!("tag{tag}")],
            city: Some(format!("City{city}")),
            event_date: NOW + days * DAY_MS,
            status: [
                EventStatus::Upcoming,
                EventStatus::OnSale,
                EventStatus::SoldOut,
                EventStatus::Cancelled,
            ][usize::from(status % 4)],
            ..sample()
        }
    }

    fn assert_page(page: &[Scored], catalogue: &Catalogue, owned: &HashSet<EventId>, limit: usize) {
        assert!(page.len() <= limit);
        let mut seen = HashSet::new();
        let (mut organizers, mut types) = (HashMap::new(), HashMap::new());
        for item in page {
            assert!(seen.insert(item.event_id), "{:?} twice", item.event_id);
            assert!(!owned.contains(&item.event_id), "an owned event");
            let f = catalogue.features(item.event_id).unwrap();
            assert!(f.recommendable(NOW), "{f:?} is past, sold out or cancelled");
            *organizers.entry(f.organizer_id).or_insert(0) += 1;
            *types.entry(f.event_type.clone()).or_insert(0) += 1;
        }
        assert!(
            organizers.values().all(|n| *n <= PER_GROUP),
            "{organizers:?}"
        );
        assert!(types.values().all(|n| *n <= PER_GROUP), "{types:?}");
    }

    proptest::proptest! {
        #[test]
        fn pages_never_hold_owned_past_sold_out_or_cancelled_events_nor_too_many_alike(
            specs in proptest::collection::vec((0u8..5, 0u8..6, 0u8..3, 0u8..6, -20i64..300, 0u8..8), 1..60),
            bought in proptest::collection::vec(0usize..60, 0..8),
            pairs in proptest::collection::vec((0usize..60, 0usize..60, 3i64..20), 0..30),
            limit in 1usize..12,
            method in 0usize..4,
        ) {
            let events: Vec<EventFeatures> = specs.iter().enumerate().map(|(n, s)| generated(n, *s)).collect();
            let n = events.len();
            let catalogue = Catalogue::build(events, NOW);
            let popularity = PopularityTable::new(
                pairs.iter().map(|(a, _, c)| (id((a % n) as u128 + 1), Popularity { buyers: *c, recent: c / 2 })).collect(),
            );
            let method = [Method::Hybrid, Method::ContentOnly, Method::CoPurchaseOnly, Method::MostPopular][method];
            let ctx = Context { catalogue: &catalogue, popularity: &popularity, now: NOW, method };
            let purchases: Vec<Purchase> = bought
                .iter()
                .map(|b| Purchase { event_id: id((b % n) as u128 + 1), at: NOW - DAY_MS * (*b as i64) })
                .collect();
            let edges: Vec<CoEdge> = pairs
                .iter()
                .filter(|(a, b, _)| a % n != b % n)
                .map(|(a, b, c)| CoEdge {
                    anchor: id((a % n) as u128 + 1),
                    other: id((b % n) as u128 + 1),
                    together: *c,
                    anchor_buyers: c + 1,
                    other_buyers: c + 2,
                })
                .collect();
            let owned: HashSet<EventId> = purchases.iter().map(|p| p.event_id).collect();

            let favourites = Favourites::new(&["City2".into()], &["type1".into()]);
            let mine = for_user(&ctx, &purchases, &favourites, &edges, Some("city1"), limit);
            let like = related(&ctx, id(1), &edges, &owned, limit);
            let anyone = popular(&ctx, None, &Favourites::default(), &HashSet::new(), limit);

            assert_page(&mine, &catalogue, &owned, limit);
            assert_page(&like, &catalogue, &owned, limit);
            assert!(!like.iter().any(|s| s.event_id == id(1)), "an event is not related to itself");
            assert_page(&anyone, &catalogue, &HashSet::new(), limit);
        }
    }
}
