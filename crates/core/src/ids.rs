//! Identifier newtypes. Ids are UUIDs (v7 for new rows, so that they sort by creation time
//! and index well), never bare strings or bare `Uuid`s: [`id_type!`](crate::id_type)
//! declares one, and each service declares its own with it. The user id lives here because
//! every service reads it from access tokens.

/// Declares an id newtype over a UUID: `Copy`, ordered, hashable, shown as the UUID, parsed
/// from one (`FromStr`), serialised as the bare UUID (`serde(transparent)`) and described in
/// OpenAPI as a string of format `uuid`. `new()` (and `Default`) make a time-ordered v7 id.
///
/// The invoking crate depends on `serde`, `utoipa` and `uuid`, which the derives name.
///
/// ```
/// evently_core::id_type!(
///     /// A widget's id.
///     WidgetId
/// );
/// let id = WidgetId::new();
/// assert_eq!(id.to_string().parse::<WidgetId>().unwrap(), id);
/// ```
#[macro_export]
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize,
            ::serde::Deserialize, ::utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub ::uuid::Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(::uuid::Uuid::now_v7())
            }
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::uuid::Error;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                ::uuid::Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A user's id, as issued by the auth service and carried in access tokens (`sub`).
    UserId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_bare_uuids() {
        let id = UserId::new();

        let json = serde_json::to_string(&id).unwrap();

        assert_eq!(json, format!("\"{}\"", id.0));
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }
}
