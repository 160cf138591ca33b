//! Unit enums stored (and sent) by name: a status, a kind. [`stored_names!`](crate::stored_names)
//! gives such an enum its list of values, its name and its parsing from one table, so that the
//! name written and the name read can never disagree.

/// Implements, for a unit-only enum `$ty`, `$ty::ALL` (every value, in the table's order),
/// `as_str` (its stored name) and `FromStr` (which refuses any other name with
/// `"unknown <what> <name>"`), from one table of `Variant => "name"`.
///
/// ```
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// enum Light { Red, Green }
/// evently_core::stored_names!(Light, "light", { Red => "red", Green => "green" });
///
/// assert_eq!(Light::ALL, [Light::Red, Light::Green]);
/// assert_eq!(Light::Green.as_str(), "green");
/// assert_eq!("red".parse::<Light>(), Ok(Light::Red));
/// assert_eq!("blue".parse::<Light>(), Err("unknown light blue".to_owned()));
/// ```
#[macro_export]
macro_rules! stored_names {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {}"), s))
            }
        }
    };
}
