//! The analytics service's operations: applying the domain events, and answering for an
//! event or an overview, with who may see what decided here.

use std::sync::Arc;

use anyhow::Context as _;
use evently_bus::Envelope;
use evently_core::clock::SharedClock;
use evently_core::config::AnalyticsConfig;
use evently_core::identity::{Identity, Role};
use jiff::tz::TimeZone;
use uuid::Uuid;

use crate::domain::{self, Activity, Change, Interval, announced_version, change_of};
use crate::error::AnalyticsError;
use crate::store::{AnalyticsStore, EventFigures, Scope};

/// A series' range and shape, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// Start (epoch ms), included.
    pub from: i64,
    /// End (epoch ms), excluded.
    pub to: i64,
    /// The width of a point.
    pub interval: Interval,
    /// The time zone whose local hours, days and weeks the points follow.
    pub time_zone: TimeZone,
}

/// What the caller asked for, before defaults.
#[derive(Debug, Clone, Default)]
pub struct RangeRequest {
    /// Start (epoch ms).
    pub from: Option<i64>,
    /// End (epoch ms).
    pub to: Option<i64>,
    /// The width of a point; `None` for the span's rule.
    pub interval: Option<Interval>,
    /// The time zone; `None` for the event's own (UTC across events).
    pub time_zone: Option<TimeZone>,
}

/// A series: its range and its zero-filled points.
#[derive(Debug, Clone)]
pub struct Series {
    /// The range.
    pub range: Range,
    /// `(start, activity)` per point.
    pub points: Vec<(i64, Activity)>,
}

/// One event's figures and series.
#[derive(Debug, Clone)]
pub struct EventReport {
    /// The figures.
    pub figures: EventFigures,
    /// The series.
    pub series: Series,
}

/// An overview of several events.
#[derive(Debug, Clone)]
pub struct Overview {
    /// `platform` for an admin, `organizer` for anyone else (their own events).
    pub scope: &'static str,
    /// The events' figures (deleted ones left out).
    pub events: Vec<EventFigures>,
    /// The series over all of them.
    pub series: Series,
}

/// The analytics service.
pub struct AnalyticsService {
    store: Arc<dyn AnalyticsStore>,
    clock: SharedClock,
    config: AnalyticsConfig,
}

impl std::fmt::Debug for AnalyticsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsService").finish_non_exhaustive()
    }
}

impl AnalyticsService {
    /// A service over `store`.
    pub fn new(
        store: Arc<dyn AnalyticsStore>,
        clock: SharedClock,
        config: AnalyticsConfig,
    ) -> Self {
        Self {
            store,
            clock,
            config,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn AnalyticsStore> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// Now, in epoch ms.
    pub fn now(&self) -> i64 {
        domain::ms(self.clock.now())
    }

    /// Applies one domain event of the events service's or booking's stream (idempotent per
    /// envelope id); returns the event whose figures changed, if any.
    ///
    /// # Errors
    /// When the store fails; the event is then delivered again.
    pub async fn apply(&self, envelope: &Envelope) -> anyhow::Result<Option<Uuid>> {
        let Some(change) = change_of(envelope) else {
            return Ok(None);
        };
        let applied = self
            .store
            .apply(envelope.id, &change, self.now())
            .await
            .with_context(|| format!("applying {}", envelope.event_type))?;
        if applied {
            metrics::counter!("evently_analytics_domain_events_applied_total",
                "type" => envelope.event_type.clone())
            .increment(1);
        }
        Ok(applied.then(|| change.event_id()))
    }

    /// Applies a consumer's delivery (each domain event at most once) in one transaction;
    /// returns, per domain event applied, the event whose figures changed. When the
    /// transaction fails, the events are applied one at a time instead, so that one that
    /// cannot be applied holds back only itself and what follows it: the returned error
    /// names it, with what was applied before it.
    ///
    /// # Errors
    /// The first domain event that could not be applied, with its index in `envelopes`.
    pub async fn apply_batch(
        &self,
        envelopes: &[&Envelope],
    ) -> Result<Vec<(Uuid, i64)>, (Vec<(Uuid, i64)>, usize, anyhow::Error)> {
        let (items, sources): (Vec<(Uuid, Change)>, Vec<&Envelope>) = envelopes
            .iter()
            .filter_map(|e| change_of(e).map(|change| ((e.id, change), *e)))
            .unzip();
        match self.store.apply_batch(&items, self.now()).await {
            Ok(applied) => Ok(items
                .iter()
                .zip(sources)
                .zip(applied)
                .filter(|(_, applied)| *applied)
                .map(|(((_, change), envelope), _)| {
                    metrics::counter!("evently_analytics_domain_events_applied_total",
                        "type" => envelope.event_type.clone())
                    .increment(1);
                    (change.event_id(), announced_version(envelope))
                })
                .collect()),
            Err(e) => {
                tracing::warn!(error = %e, size = envelopes.len(), "a batch of domain events failed; applying them one at a time");
                let mut changed = Vec::new();
                for (i, envelope) in envelopes.iter().enumerate() {
                    match self.apply(envelope).await {
                        Ok(Some(event)) => changed.push((event, announced_version(envelope))),
                        Ok(None) => {}
                        Err(e) => return Err((changed, i, e)),
                    }
                }
                Ok(changed)
            }
        }
    }

    /// Validates `request` against the defaults: `to` now, `from` `default_from` (or a
    /// week before `to`), at most `analytics.max_range_days` apart, in time zone
    /// `default_zone` unless the request names one.
    ///
    /// # Errors
    /// 422 for `from` not before `to`, or a range too long.
    pub fn range(
        &self,
        request: RangeRequest,
        default_from: Option<i64>,
        default_zone: TimeZone,
    ) -> Result<Range, AnalyticsError> {
        let max = i64::from(self.config.max_range_days) * domain::DAY_MS;
        let to = request.to.unwrap_or_else(|| self.now() + 1);
        let from = match request.from {
            Some(from) => from,
            None => default_from
                .filter(|f| *f < to)
                .unwrap_or(to - 7 * domain::DAY_MS)
                .max(to - max),
        };
        if from >= to {
            return Err(evently_core::Problem::invalid_field("from", "must be before `to`").into());
        }
        if to - from > max {
            return Err(evently_core::Problem::invalid_field(
                "to",
                format!(
                    "the range may span at most {} days",
                    self.config.max_range_days
                ),
            )
            .into());
        }
        Ok(Range {
            from,
            to,
            interval: request
                .interval
                .unwrap_or_else(|| Interval::auto(to - from)),
            time_zone: request.time_zone.unwrap_or(default_zone),
        })
    }

    async fn series(&self, scope: Scope, range: Range) -> Result<Series, AnalyticsError> {
        // Whole local points: the first one starts before `from`.
        let start = range.interval.floor(range.from, &range.time_zone);
        let minutes = self.store.minutes(scope, start, range.to).await?;
        let points = domain::roll_up(&minutes, start, range.to, range.interval, &range.time_zone);
        Ok(Series { range, points })
    }

    /// Event `event_id`'s figures and series (in the event's time zone unless the request
    /// names one), for its organizer or an admin; anyone else is told it does not exist.
    ///
    /// # Errors
    /// [`AnalyticsError::EventNotFound`] for an unknown or deleted event, or one the caller
    /// may not see; 422 for a bad range; the store's error.
    pub async fn event(
        &self,
        caller: &Identity,
        event_id: Uuid,
        request: RangeRequest,
    ) -> Result<EventReport, AnalyticsError> {
        let figures = self.visible(caller, event_id).await?;
        // A zone the events service validated; UTC should the database not know it.
        let zone = domain::zone(&figures.time_zone).unwrap_or(TimeZone::UTC);
        let range = self.range(request, figures.created_at, zone)?;
        let series = self.series(Scope::Event(event_id), range).await?;
        Ok(EventReport { figures, series })
    }

    /// Event `event_id`'s figures if `caller` may see them.
    ///
    /// # Errors
    /// [`AnalyticsError::EventNotFound`] for an unknown or deleted event, or one the caller
    /// may not see; the store's error.
    pub async fn visible(
        &self,
        caller: &Identity,
        event_id: Uuid,
    ) -> Result<EventFigures, AnalyticsError> {
        let figures = self
            .store
            .event(event_id)
            .await?
            .ok_or(AnalyticsError::EventNotFound)?;
        if !figures.visible_to(caller) {
            return Err(AnalyticsError::EventNotFound);
        }
        Ok(figures)
    }

    /// The platform's figures for an admin; the caller's own events' for anyone else. The
    /// series is in UTC unless the request names a time zone (the events may be in several).
    ///
    /// # Errors
    /// 422 for a bad range; the store's error.
    pub async fn overview(
        &self,
        caller: &Identity,
        request: RangeRequest,
    ) -> Result<Overview, AnalyticsError> {
        let (scope, name) = if caller.role == Role::Admin {
            (Scope::Platform, "platform")
        } else {
            (Scope::Organizer(caller.user_id.0), "organizer")
        };
        let mut events = self.store.events(scope).await?;
        events.retain(|e| !e.deleted);
        let default_from = events.iter().filter_map(|e| e.created_at).min();
        let range = self.range(request, default_from, TimeZone::UTC)?;
        let series = self.series(scope, range).await?;
        Ok(Overview {
            scope: name,
            events,
            series,
        })
    }
}
