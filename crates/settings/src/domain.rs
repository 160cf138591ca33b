//! The settings model, pure: scopes, namespaces, document keys and versions, JSON Merge Patch
//! (RFC 7396), the size and depth caps, and the effective value of a key with its source.
//! No axum, no sqlx.

use serde_json::{Map, Value};
use std::fmt;
use uuid::Uuid;

/// Largest settings document, in bytes of its JSON text; checked before it is parsed.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024;
/// Deepest nesting of objects and arrays in a document (the top-level object is depth 1);
/// checked before the schema is.
pub const MAX_DEPTH: usize = 8;

/// Whose settings a document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// A user's own preferences (scope id: the user).
    User,
    /// The whole platform (scope id: the nil UUID).
    Platform,
    /// One organizer's events (scope id: the organizer's user id).
    Organizer,
    /// One event (scope id: the event).
    Event,
}

impl Scope {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Platform => "platform",
            Scope::Organizer => "organizer",
            Scope::Event => "event",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user" => Scope::User,
            "platform" => Scope::Platform,
            "organizer" => Scope::Organizer,
            "event" => Scope::Event,
            _ => return None,
        })
    }

    /// The namespace a document of this scope holds: preferences for a user, booking's
    /// operational knobs for the platform, an organizer and an event.
    pub fn namespace(self) -> Namespace {
        match self {
            Scope::User => Namespace::Preferences,
            Scope::Platform | Scope::Organizer | Scope::Event => Namespace::Booking,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of keys with one JSON Schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// A user's preferences: locale, time zone, currency display, notifications, favourites.
    Preferences,
    /// Booking's operational knobs: hold TTL, seat and ticket limits, waitlist offer time,
    /// sale defaults.
    Booking,
}

impl Namespace {
    /// Every namespace.
    pub const ALL: &'static [Namespace] = &[Namespace::Preferences, Namespace::Booking];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Preferences => "preferences",
            Namespace::Booking => "booking",
        }
    }

    /// The namespace named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Namespace::ALL.iter().copied().find(|n| n.as_str() == s)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which document: `(scope, scope id, namespace)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocKey {
    /// Whose.
    pub scope: Scope,
    /// The user, organizer or event; nil for the platform.
    pub scope_id: Uuid,
    /// Which keys.
    pub namespace: Namespace,
}

impl DocKey {
    /// The document of `scope` for `scope_id`, in the scope's namespace.
    pub fn new(scope: Scope, scope_id: Uuid) -> Self {
        Self {
            scope,
            scope_id,
            namespace: scope.namespace(),
        }
    }

    /// The platform's document.
    pub fn platform() -> Self {
        Self::new(Scope::Platform, Uuid::nil())
    }
}

/// What a write expects the document's current version to be (from `If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `If-Match: *`: whatever it is.
    Any,
    /// `If-Match: "<n>"`: exactly `n` (0: the document does not exist yet).
    Version(i64),
}

impl Expected {
    /// Parses an `If-Match` header value: `*`, or one strong entity tag `"<version>"`
    /// (also accepted weak, `W/"<version>"`, since the version is the whole identity).
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        if header == "*" {
            return Some(Expected::Any);
        }
        let tag = header.strip_prefix("W/").unwrap_or(header);
        let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
        if inner.is_empty() || inner.len() > 18 || !inner.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        inner.parse().ok().map(Expected::Version)
    }

    /// Whether a document at `current` (0: absent) satisfies the expectation.
    pub fn admits(self, current: i64) -> bool {
        match self {
            Expected::Any => true,
            Expected::Version(v) => v == current,
        }
    }
}

/// The entity tag of version `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Applies the JSON Merge Patch `patch` to `target` (RFC 7396 §2): an object patch merges
/// key by key, `null` removes a key, anything else replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// How deep `value` nests: 0 for a scalar, 1 for an object or array of scalars, …
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The schema's default.
    Default,
    /// A document of this scope.
    Scope(Scope),
}

impl Source {
    /// `default`, or the scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Scope(s) => s.as_str(),
        }
    }
}

/// One leaf of an effective document: its JSON pointer, value and source.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveKey {
    /// JSON pointer of the key (`/holdTtlSeconds`, `/saleDefaults/currency`).
    pub pointer: String,
    /// Its effective value.
    pub value: Value,
    /// Which layer set it.
    pub source: Source,
}

/// An effective document: the layers merged, and where each leaf came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The merged document.
    pub value: Value,
    /// Every leaf, by pointer.
    pub keys: Vec<EffectiveKey>,
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Records `source` for every leaf of `layer` (an object's keys recursively; an array or a
/// scalar is one leaf), replacing the source of leaves under a replaced key.
fn mark(sources: &mut Vec<(String, Source)>, prefix: &str, layer: &Value, source: Source) {
    let Value::Object(map) = layer else {
        return;
    };
    for (key, value) in map {
        let pointer = format!("{prefix}/{}", escape(key));
        if value.is_object() {
            mark(sources, &pointer, value, source);
        } else {
            let under = format!("{pointer}/");
            sources.retain(|(p, _)| *p != pointer && !p.starts_with(&under));
            sources.push((pointer, source));
        }
    }
}

fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                leaves(&format!("{prefix}/{}", escape(key)), v, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

/// The effective document of `layers` over `defaults`: each layer applied in order as a
/// merge patch (so the later, narrower scope wins key by key), each leaf with the layer that
/// set it last.
pub fn effective(defaults: &Value, layers: &[(Scope, &Value)]) -> Effective {
    let mut value = defaults.clone();
    let mut sources = Vec::new();
    mark(&mut sources, "", defaults, Source::Default);
    for (scope, layer) in layers {
        merge_patch(&mut value, layer);
        mark(&mut sources, "", layer, Source::Scope(*scope));
    }
    let mut flat = Vec::new();
    leaves("", &value, &mut flat);
    let keys = flat
        .into_iter()
        .map(|(pointer, value)| {
            let source = sources
                .iter()
                .rev()
                .find(|(p, _)| *p == pointer)
                .map_or(Source::Default, |(_, s)| *s);
            EffectiveKey {
                pointer,
                value,
                source,
            }
        })
        .collect();
    Effective { value, keys }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396_examples() {
        // RFC 7396 appendix A, a selection.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": [1]})), 2);
        assert_eq!(depth(&json!({"a": {"b": {"c": [[]]}}})), 5);
    }

    #[test]
    fn if_match_parses_strong_weak_and_star() {
        assert_eq!(Expected::parse("\"3\""), Some(Expected::Version(3)));
        assert_eq!(Expected::parse("W/\"0\""), Some(Expected::Version(0)));
        assert_eq!(Expected::parse(" * "), Some(Expected::Any));
        assert_eq!(Expected::parse("3"), None);
        assert_eq!(Expected::parse("\"-1\""), None);
        assert_eq!(Expected::parse("\"a\""), None);
        assert!(Expected::Version(0).admits(0));
        assert!(!Expected::Version(1).admits(2));
    }

    #[test]
    fn effective_value_names_the_narrowest_layer_that_set_each_key() {
        let defaults = json!({"hold": 300, "limit": 10, "sale": {"currency": "USD", "days": 30}});
        let platform = json!({"limit": 6});
        let organizer = json!({"hold": 120, "sale": {"currency": "EUR"}});
        let event = json!({"limit": 2});

        let eff = effective(
            &defaults,
            &[
                (Scope::Platform, &platform),
                (Scope::Organizer, &organizer),
                (Scope::Event, &event),
            ],
        );

        assert_eq!(
            eff.value,
            json!({"hold": 120, "limit": 2, "sale": {"currency": "EUR", "days": 30}})
        );
        let source = |p: &str| eff.keys.iter().find(|k| k.pointer == p).unwrap().source;
        assert_eq!(source("/hold"), Source::Scope(Scope::Organizer));
        assert_eq!(source("/limit"), Source::Scope(Scope::Event));
        assert_eq!(source("/sale/currency"), Source::Scope(Scope::Organizer));
        assert_eq!(source("/sale/days"), Source::Default);
    }
}
