//! Booking's projection of the settings service's stream (`SettingsChanged`, namespace
//! `booking`): the operational knobs set for the platform, organizers and events, held in
//! memory so that a hold or a purchase looks them up without any I/O.
//!
//! Why in memory, rebuilt from the stream at start, rather than a table in booking's store:
//! the purchase path must never wait on settings, and a table would either be read on every
//! hold (a query in the hottest transaction) or cached in memory anyway. The stream is small
//! (one event per settings write) and each event carries the whole document with its
//! version, so the projection keeps, per document, the one with the highest version:
//! applying an event twice, or an older one after a newer, changes nothing, and reading the
//! stream from its beginning at every start rebuilds exactly the current documents. No
//! de-duplication record is needed.
//!
//! Booking's configuration stays the hard limit: a setting may tighten a limit, never
//! exceed it ([`Limits::resolve`]). A key no scope sets leaves booking's configuration in
//! force (the schema's defaults equal booking's built-in configuration, but a deployment may
//! configure other limits, and those win over defaults).

use evently_bus::catalog::SettingsDocument;
use evently_core::config::BookingConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::RwLock;
use uuid::Uuid;

use crate::domain::Policy;

/// The knobs one settings document sets; `None` where it sets nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Knobs {
    /// `holdTtlSeconds`.
    pub hold_ttl_seconds: Option<u64>,
    /// `maxSeatsPerOrder`.
    pub max_seats_per_order: Option<u64>,
    /// `maxTicketsPerUser`.
    pub max_tickets_per_user: Option<u64>,
    /// `waitlistOfferSeconds`.
    pub waitlist_offer_seconds: Option<u64>,
}

impl Knobs {
    /// The knobs of `document`; keys that are absent, not positive integers, or unknown to
    /// booking are left out (the settings service checked the document against its schema).
    pub fn of(document: &Value) -> Self {
        let get = |key: &str| document.get(key).and_then(Value::as_u64).filter(|v| *v > 0);
        Self {
            hold_ttl_seconds: get("holdTtlSeconds"),
            max_seats_per_order: get("maxSeatsPerOrder"),
            max_tickets_per_user: get("maxTicketsPerUser"),
            waitlist_offer_seconds: get("waitlistOfferSeconds"),
        }
    }

    /// `self` where set, else `under`.
    fn over(self, under: Knobs) -> Knobs {
        Knobs {
            hold_ttl_seconds: self.hold_ttl_seconds.or(under.hold_ttl_seconds),
            max_seats_per_order: self.max_seats_per_order.or(under.max_seats_per_order),
            max_tickets_per_user: self.max_tickets_per_user.or(under.max_tickets_per_user),
            waitlist_offer_seconds: self.waitlist_offer_seconds.or(under.waitlist_offer_seconds),
        }
    }
}

/// The limits booking applies to one request: its configuration, tightened by the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a new hold lasts (ms).
    pub hold_ttl_ms: i64,
    /// Most seats in one hold or order.
    pub max_seats_per_order: i64,
    /// What the store applies inside its transactions.
    pub policy: Policy,
}

fn ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}

impl Limits {
    /// `config`'s limits, each lowered to the setting in `knobs` where that is lower.
    pub fn resolve(config: &BookingConfig, knobs: Knobs) -> Self {
        let cap = |configured: u64, setting: Option<u64>| {
            setting.map_or(configured, |s| s.min(configured))
        };
        let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            hold_ttl_ms: ms(cap(config.hold_ttl_seconds, knobs.hold_ttl_seconds)),
            max_seats_per_order: to_i64(cap(
                u64::from(config.max_seats_per_order),
                knobs.max_seats_per_order,
            )),
            policy: Policy {
                max_tickets_per_user: to_i64(cap(
                    u64::from(config.max_tickets_per_user),
                    knobs.max_tickets_per_user,
                )),
                offer_ttl_ms: ms(cap(
                    config.waitlist_offer_seconds,
                    knobs.waitlist_offer_seconds,
                )),
                limit_purchases: knobs
                    .max_tickets_per_user
                    .is_some_and(|s| s < u64::from(config.max_tickets_per_user)),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Layer {
    version: i64,
    knobs: Knobs,
}

#[derive(Debug, Default)]
struct State {
    platform: Option<Layer>,
    organizers: HashMap<Uuid, Layer>,
    events: HashMap<Uuid, Layer>,
}

/// The projection: per scope, the newest booking document's knobs.
#[derive(Debug, Default)]
pub struct LiveSettings {
    // A std lock: held for a map lookup or insert only, never across an await; reads (every
    // hold) vastly outnumber writes (a settings change), hence a read-write lock.
    state: RwLock<State>,
}

/// The scope a settings document applies to, as booking reads it.
enum Target {
    Platform,
    Organizer(Uuid),
    Event(Uuid),
}

impl LiveSettings {
    /// Applies one `SettingsChanged` document; `false` when it changes nothing (another
    /// namespace or scope, or not newer than the one held).
    pub fn apply(&self, doc: &SettingsDocument) -> bool {
        if doc.namespace != "booking" {
            return false;
        }
        let target = match doc.scope.as_str() {
            "platform" => Target::Platform,
            "organizer" => Target::Organizer(doc.scope_id),
            "event" => Target::Event(doc.scope_id),
            _ => return false,
        };
        let layer = Layer {
            version: doc.version,
            knobs: Knobs::of(&doc.document),
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let slot = match target {
            Target::Platform => &mut state.platform,
            Target::Organizer(id) => {
                let held = state.organizers.get(&id).copied();
                if held.is_some_and(|h| h.version >= layer.version) {
                    return false;
                }
                state.organizers.insert(id, layer);
                return true;
            }
            Target::Event(id) => {
                let held = state.events.get(&id).copied();
                if held.is_some_and(|h| h.version >= layer.version) {
                    return false;
                }
                state.events.insert(id, layer);
                return true;
            }
        };
        if slot.is_some_and(|h| h.version >= layer.version) {
            return false;
        }
        *slot = Some(layer);
        true
    }

    /// Whether any organizer has booking settings (only then does a request need its
    /// event's organizer).
    pub fn has_organizer_settings(&self) -> bool {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        !state.organizers.is_empty()
    }

    /// The knobs in force for `event_id` of `organizer`: the event's, else the organizer's,
    /// else the platform's. With no event, the platform's.
    pub fn knobs(&self, event_id: Option<Uuid>, organizer: Option<Uuid>) -> Knobs {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let platform = state.platform.map(|l| l.knobs).unwrap_or_default();
        let organizer = organizer
            .and_then(|o| state.organizers.get(&o))
            .map(|l| l.knobs)
            .unwrap_or_default();
        let event = event_id
            .and_then(|e| state.events.get(&e))
            .map(|l| l.knobs)
            .unwrap_or_default();
        event.over(organizer.over(platform))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(scope: &str, id: Uuid, version: i64, document: Value) -> SettingsDocument {
        SettingsDocument {
            scope: scope.into(),
            scope_id: id,
            namespace: "booking".into(),
            version,
            document,
        }
    }

    #[test]
    fn the_newest_version_wins_whatever_the_order() {
        let live = LiveSettings::default();

        assert!(live.apply(&doc(
            "platform",
            Uuid::nil(),
            2,
            json!({"maxTicketsPerUser": 2})
        )));
        assert!(!live.apply(&doc(
            "platform",
            Uuid::nil(),
            1,
            json!({"maxTicketsPerUser": 8})
        )));
        assert!(!live.apply(&doc(
            "platform",
            Uuid::nil(),
            2,
            json!({"maxTicketsPerUser": 8})
        )));

        assert_eq!(live.knobs(None, None).max_tickets_per_user, Some(2));
    }

    #[test]
    fn event_beats_organizer_beats_platform() {
        let live = LiveSettings::default();
        let (org, event, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        live.apply(&doc(
            "platform",
            Uuid::nil(),
            1,
            json!({"maxTicketsPerUser": 8, "holdTtlSeconds": 120}),
        ));
        live.apply(&doc("organizer", org, 1, json!({"maxTicketsPerUser": 4})));
        live.apply(&doc("event", event, 1, json!({"maxTicketsPerUser": 2})));

        let at_event = live.knobs(Some(event), Some(org));
        let at_other = live.knobs(Some(other), Some(org));

        assert_eq!(at_event.max_tickets_per_user, Some(2));
        assert_eq!(at_event.hold_ttl_seconds, Some(120));
        assert_eq!(at_other.max_tickets_per_user, Some(4));
        assert!(live.has_organizer_settings());
    }

    #[test]
    fn settings_tighten_the_configuration_but_never_exceed_it() {
        let config = BookingConfig::default();
        let looser = Knobs {
            max_tickets_per_user: Some(u64::from(config.max_tickets_per_user) + 50),
            hold_ttl_seconds: Some(config.hold_ttl_seconds * 10),
            ..Knobs::default()
        };
        let tighter = Knobs {
            max_tickets_per_user: Some(1),
            hold_ttl_seconds: Some(30),
            max_seats_per_order: Some(1),
            waitlist_offer_seconds: Some(60),
        };

        let loose = Limits::resolve(&config, looser);
        let tight = Limits::resolve(&config, tighter);

        assert_eq!(loose, Limits::resolve(&config, Knobs::default()));
        assert_eq!(tight.policy.max_tickets_per_user, 1);
        assert_eq!(tight.hold_ttl_ms, 30_000);
        assert_eq!(tight.max_seats_per_order, 1);
        assert_eq!(tight.policy.offer_ttl_ms, 60_000);
        assert!(tight.policy.limit_purchases);
        assert!(!loose.policy.limit_purchases);
    }

    #[test]
    fn other_namespaces_and_scopes_are_ignored() {
        let live = LiveSettings::default();
        let mut prefs = doc("user", Uuid::from_u128(9), 1, json!({"locale": "de"}));
        prefs.namespace = "preferences".into();

        assert!(!live.apply(&prefs));
        assert_eq!(live.knobs(None, None), Knobs::default());
    }
}
