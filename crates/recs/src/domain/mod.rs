//! What recommendations are made of, as pure types and rules: no axum, no SQL.
//!
//! - [`text`]: tokens and TF-IDF vectors of names and descriptions;
//! - [`similarity`]: co-purchase, content and their blend for one pair of events;
//! - [`catalogue`]: the in-memory index of every event's features and content neighbours;
//! - [`rank`]: related events, picks for a user, cold start, filters and diversity.

pub mod catalogue;
pub mod rank;
pub mod similarity;
pub mod text;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

evently_core::id_type!(
    /// An event's id, as the events service issued it.
    EventId
);

/// One day in epoch milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// An event's status, as the events service publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventStatus {
    /// Announced; its sale has not started.
    Upcoming,
    /// On sale.
    OnSale,
    /// No seat left.
    SoldOut,
    /// Called off.
    Cancelled,
}

impl EventStatus {
    /// The status's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Upcoming => "UPCOMING",
            EventStatus::OnSale => "ON_SALE",
            EventStatus::SoldOut => "SOLD_OUT",
            EventStatus::Cancelled => "CANCELLED",
        }
    }

    /// The status named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        [
            EventStatus::Upcoming,
            EventStatus::OnSale,
            EventStatus::SoldOut,
            EventStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether tickets can still be bought (or soon will be).
    pub fn purchasable(self) -> bool {
        matches!(self, EventStatus::Upcoming | EventStatus::OnSale)
    }
}

/// What recommendations know of an event: the parts of the events service's snapshot that
/// make two events alike.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFeatures {
    /// The event.
    pub id: EventId,
    /// Its organizer.
    pub organizer_id: Uuid,
    /// Title.
    pub name: String,
    /// Description, if any.
    pub description: Option<String>,
    /// Event type (`concert`, `sports`, …), lowercase.
    pub event_type: Option<String>,
    /// Tags, lowercase, without duplicates, sorted.
    pub tags: Vec<String>,
    /// The venue's city, as written.
    pub city: Option<String>,
    /// The venue, if it has a record.
    pub venue_id: Option<Uuid>,
    /// Base price in minor units.
    pub base_price: i64,
    /// Its currency.
    pub currency: String,
    /// When it takes place (epoch ms).
    pub event_date: i64,
    /// Its status.
    pub status: EventStatus,
}

impl EventFeatures {
    /// The features of the events service's `snapshot`; `None` for an unknown status.
    pub fn from_snapshot(snapshot: &evently_bus::catalog::EventSnapshot) -> Option<Self> {
        let mut tags: Vec<String> = snapshot
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        tags.sort();
        tags.dedup();
        Some(Self {
            id: EventId(snapshot.event_id),
            organizer_id: snapshot.organizer_id,
            name: snapshot.event_name.clone(),
            description: snapshot.description.clone(),
            event_type: snapshot
                .event_type
                .as_ref()
                .map(|t| t.trim().to_lowercase()),
            tags,
            city: snapshot.city.clone(),
            venue_id: snapshot.venue_id,
            base_price: snapshot.base_price,
            currency: snapshot.currency.clone(),
            event_date: ms(snapshot.event_date),
            status: EventStatus::parse(&snapshot.status)?,
        })
    }

    /// The city as compared: trimmed and lowercase.
    pub fn city_key(&self) -> Option<String> {
        city_key(self.city.as_deref())
    }

    /// A price band: prices between the same two consecutive powers of two share one (free
    /// events have their own).
    pub fn price_band(&self) -> i64 {
        if self.base_price <= 0 {
            return -1;
        }
        i64::from(self.base_price.ilog2())
    }

    /// The tokens of its name and description.
    pub fn text_tokens(&self) -> Vec<String> {
        let mut t = text::tokens(&self.name);
        if let Some(d) = &self.description {
            t.extend(text::tokens(d));
        }
        t
    }

    /// Whether it can be recommended at `now`: still to come and still purchasable.
    pub fn recommendable(&self, now: i64) -> bool {
        self.event_date > now && self.status.purchasable()
    }
}

/// What a user said they like in their preferences: cities and event types, each as
/// compared (cities by [`city_key`], types trimmed and lowercase), without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Favourites {
    /// Favourite cities, as compared.
    pub cities: Vec<String>,
    /// Favourite event types, as compared.
    pub types: Vec<String>,
}

impl Favourites {
    /// The favourites of the cities and types as written.
    pub fn new(cities: &[String], types: &[String]) -> Self {
        let mut out = Self::default();
        for c in cities {
            if let Some(key) = city_key(Some(c))
                && !out.cities.contains(&key)
            {
                out.cities.push(key);
            }
        }
        for t in types {
            let key = t.trim().to_lowercase();
            if !key.is_empty() && !out.types.contains(&key) {
                out.types.push(key);
            }
        }
        out
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.cities.is_empty() && self.types.is_empty()
    }

    /// Whether `f` is in a favourite city.
    pub fn city_of(&self, f: &EventFeatures) -> bool {
        f.city_key().is_some_and(|c| self.cities.contains(&c))
    }

    /// Whether `f` is of a favourite type.
    pub fn type_of(&self, f: &EventFeatures) -> bool {
        f.event_type
            .as_ref()
            .is_some_and(|t| self.types.contains(t))
    }
}

/// A city as compared: trimmed and lowercase; `None` when empty.
pub fn city_key(city: Option<&str>) -> Option<String> {
    city.map(|c| c.trim().to_lowercase())
        .filter(|c| !c.is_empty())
}

/// Epoch milliseconds of `at`.
pub fn ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Why an event is recommended, so that a client can say it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reason {
    /// People who bought `eventId` also bought this one.
    #[serde(rename_all = "camelCase")]
    AlsoBought {
        /// The event they bought.
        #[schema(value_type = String, format = Uuid)]
        event_id: EventId,
    },
    /// It shares a tag (an artist, a genre) with `eventId`.
    #[serde(rename_all = "camelCase")]
    SameArtistTag {
        /// The event it is like.
        #[schema(value_type = String, format = Uuid)]
        event_id: EventId,
        /// The shared tag.
        tag: String,
    },
    /// The same organizer runs `eventId`.
    #[serde(rename_all = "camelCase")]
    SameOrganizer {
        /// The event it is like.
        #[schema(value_type = String, format = Uuid)]
        event_id: EventId,
    },
    /// Its name and description read like those of `eventId`, or it is the same kind of
    /// event in the same city.
    #[serde(rename_all = "camelCase")]
    SimilarTo {
        /// The event it is like.
        #[schema(value_type = String, format = Uuid)]
        event_id: EventId,
    },
    /// It is of a type the caller buys.
    #[serde(rename_all = "camelCase")]
    YourType {
        /// The type.
        event_type: String,
    },
    /// It is in a city the caller buys in.
    #[serde(rename_all = "camelCase")]
    YourCity {
        /// The city.
        city: String,
    },
    /// It is in one of the caller's favourite cities (their preferences).
    #[serde(rename_all = "camelCase")]
    FavouriteCity {
        /// The city.
        city: String,
    },
    /// It is of one of the caller's favourite event types (their preferences).
    #[serde(rename_all = "camelCase")]
    FavouriteType {
        /// The type.
        event_type: String,
    },
    /// It sells well in this city.
    #[serde(rename_all = "camelCase")]
    PopularInCity {
        /// The city.
        city: String,
    },
    /// It sells well.
    Popular,
}

/// One recommended event, with its score and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The event.
    pub event_id: EventId,
    /// Higher is better; comparable only within one answer.
    pub score: f64,
    /// Why.
    pub reason: Reason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_upcoming_or_on_sale_are_purchasable() {
        for s in [
            EventStatus::Upcoming,
            EventStatus::OnSale,
            EventStatus::SoldOut,
            EventStatus::Cancelled,
        ] {
            assert_eq!(EventStatus::parse(s.as_str()), Some(s));
        }
        assert!(EventStatus::parse("DRAFT").is_none());
        assert!(EventStatus::OnSale.purchasable() && EventStatus::Upcoming.purchasable());
        assert!(!EventStatus::SoldOut.purchasable() && !EventStatus::Cancelled.purchasable());
    }

    #[test]
    fn reasons_say_their_kind_in_camel_case() {
        let id = EventId(Uuid::from_u128(1));
        assert_eq!(
            serde_json::to_value(Reason::AlsoBought { event_id: id }).unwrap(),
            serde_json::json!({"kind": "alsoBought", "eventId": id.0})
        );
        assert_eq!(
            serde_json::to_value(Reason::PopularInCity {
                city: "Berlin".into()
            })
            .unwrap(),
            serde_json::json!({"kind": "popularInCity", "city": "Berlin"})
        );
        assert_eq!(
            serde_json::to_value(Reason::Popular).unwrap(),
            serde_json::json!({"kind": "popular"})
        );
    }

    #[test]
    fn price_bands_double() {
        let band = |p| {
            let mut f = sample();
            f.base_price = p;
            f.price_band()
        };
        assert_eq!(band(0), -1);
        assert_eq!(band(3000), band(4000));
        assert_ne!(band(4000), band(9000));
    }

    pub(crate) fn sample() -> EventFeatures {
        EventFeatures {
            id: EventId(Uuid::from_u128(1)),
            organizer_id: Uuid::from_u128(100),
            name: "Jazz".into(),
            description: None,
            event_type: Some("concert".into()),
            tags: vec!["jazz".into()],
            city: Some("Berlin".into()),
            venue_id: None,
            base_price: 5000,
            currency: "EUR".into(),
            event_date: 10 * DAY_MS,
            status: EventStatus::OnSale,
        }
    }
}
