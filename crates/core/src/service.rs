//! The services one `evently` process can run.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A service that `evently serve --services …` can run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    /// Users, password hashes, refresh-token families, login throttling.
    Auth,
    /// Venues, events, event status and the sale scheduler.
    Events,
    /// Seat inventory, holds, payments, orders and tickets, the waitlist, availability.
    Booking,
    /// Recommendations: related events and picks for a user, fed by the domain events.
    Recs,
    /// The full-text event index: typo-tolerant search, facets, suggestions.
    Search,
    /// Preferences and operational settings: schema-checked documents per scope, applied live.
    Settings,
    /// Sales figures per event, organizer and platform, fed by the domain events.
    Analytics,
    /// Imports and exports: CSV/XLSX import of events, streamed CSV/NDJSON/XLSX exports.
    Data,
    /// The edge: routing, authentication, rate limits, circuit breakers.
    Gateway,
}

impl ServiceName {
    /// Every service, in start-up order.
    pub const ALL: &'static [ServiceName] = &[
        ServiceName::Auth,
        ServiceName::Events,
        ServiceName::Booking,
        ServiceName::Recs,
        ServiceName::Search,
        ServiceName::Settings,
        ServiceName::Analytics,
        ServiceName::Data,
        ServiceName::Gateway,
    ];

    /// The lowercase name used on the command line, in config and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Auth => "auth",
            ServiceName::Events => "events",
            ServiceName::Booking => "booking",
            ServiceName::Recs => "recs",
            ServiceName::Search => "search",
            ServiceName::Settings => "settings",
            ServiceName::Analytics => "analytics",
            ServiceName::Data => "data",
            ServiceName::Gateway => "gateway",
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown service name; the message lists the valid ones.
#[derive(Debug, thiserror::Error)]
#[error("unknown service `{0}`; valid services are: {valid}", valid = valid_names())]
pub struct UnknownService(String);

fn valid_names() -> String {
    ServiceName::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for ServiceName {
    type Err = UnknownService;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .iter()
            .copied()
            .find(|name| name.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownService(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_service_error_lists_valid_names() {
        let err = "bogus".parse::<ServiceName>().unwrap_err().to_string();
        assert!(err.contains("auth"), "{err}");
    }

    #[test]
    fn service_names_round_trip() {
        for s in ServiceName::ALL {
            assert_eq!(s.as_str().parse::<ServiceName>().unwrap(), *s);
        }
    }
}
