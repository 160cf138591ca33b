//! `GET /api/analytics/events/{id}` (one event's figures and series: its organizer or an
//! admin) and `GET /api/analytics/overview` (an admin's platform, anyone else's own events);
//! `?format=csv` gives either's series as CSV.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use evently_core::Problem;
use evently_core::extract::{Path, Query};
use evently_core::identity::Identity;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::AnalyticsState;
use crate::domain::{self, Activity, Interval};
use crate::error::AnalyticsError;
use crate::service::{RangeRequest, Series};
use crate::store::EventFigures;

const PROBLEM: &str = "application/problem+json";

/// Parameters of both routes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start of the series (RFC 3339); by default when the event (or the first of the
    /// events) was created, at most `analytics.max_range_days` before `to`.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End of the series (RFC 3339, excluded); now by default.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `auto` (default: hourly under 7 days, daily under 90, weekly beyond), `hour`, `day`
    /// or `week` (weeks start on Monday).
    #[param(value_type = Option<String>, pattern = "^(auto|hour|day|week)$")]
    pub interval: Option<String>,
    /// The IANA time zone whose local hours, days and weeks the points follow
    /// (`Europe/Berlin`); by default the event's own, UTC for the overview.
    #[param(value_type = Option<String>, min_length = 1, max_length = 64, example = "Europe/Berlin")]
    pub time_zone: Option<String>,
    /// `json` (default) or `csv` (the series only, one column per counter and currency).
    #[param(value_type = Option<String>, pattern = "^(json|csv)$")]
    pub format: Option<String>,
}

/// Money in one currency, minor units.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    /// ISO 4217 currency.
    pub currency: String,
    /// Paid for orders.
    pub gross: i64,
    /// Refunded for cancelled orders.
    pub refunded: i64,
    /// Gross less refunded.
    pub net: i64,
}

pub(crate) fn money(all: &BTreeMap<String, (i64, i64)>) -> Vec<Money> {
    all.iter()
        .map(|(currency, (gross, refunded))| Money {
            currency: currency.clone(),
            gross: *gross,
            refunded: *refunded,
            net: gross - refunded,
        })
        .collect()
}

/// Holds by how they ended.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Holds {
    /// Created (buyer holds and waitlist offers).
    pub created: i64,
    /// Ran out.
    pub expired: i64,
    /// Let go by the buyer.
    pub released: i64,
    /// Ended by the event's cancellation.
    pub cancelled: i64,
    /// Became orders.
    pub converted: i64,
    /// Still live.
    pub live: i64,
    /// Converted / created; `null` before the first hold.
    pub conversion: Option<f64>,
}

/// One point of a series.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Start of the point (RFC 3339, UTC).
    pub start: String,
    /// Holds created.
    pub holds_created: i64,
    /// Orders placed.
    pub orders_placed: i64,
    /// Orders cancelled.
    pub orders_cancelled: i64,
    /// Tickets sold.
    pub tickets_sold: i64,
    /// Tickets cancelled.
    pub tickets_cancelled: i64,
    /// Money per currency (every currency of the series in every point).
    pub revenue: Vec<Money>,
}

/// A zero-filled series.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesBody {
    /// Start (RFC 3339), as asked or defaulted.
    pub from: String,
    /// End (RFC 3339, excluded).
    pub to: String,
    /// `hour`, `day` or `week`.
    pub interval: String,
    /// The IANA time zone whose local hours, days and weeks the points follow.
    pub time_zone: String,
    /// The points, oldest first; the first starts at or before `from`.
    pub points: Vec<Point>,
}

/// One event's figures.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventAnalytics {
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    /// Its title.
    pub event_name: String,
    /// Its status.
    pub status: String,
    /// Seats in all (booking's newest availability).
    pub capacity: i64,
    /// Seats sold.
    pub sold: i64,
    /// Seats in live holds now.
    pub held: i64,
    /// Seats neither sold nor held.
    pub available: i64,
    /// The inventory version these seat figures are of.
    pub inventory_version: i64,
    /// Sold / capacity; `null` without capacity.
    pub sell_through: Option<f64>,
    /// Orders not cancelled.
    pub orders: i64,
    /// Tickets of orders not cancelled.
    pub tickets: i64,
    /// Orders cancelled (and refunded).
    pub cancellations: i64,
    /// Money per currency, never summed across currencies.
    pub revenue: Vec<Money>,
    /// Holds.
    pub holds: Holds,
    /// Waitlist offers made.
    pub waitlist_offers: i64,
    /// Buyers waiting on the waitlist now (an offer takes its entry off the list).
    pub waitlist_length: i64,
    /// When the event first sold out (RFC 3339).
    pub sold_out_at: Option<String>,
    /// Seconds from the sale's start to the first sell-out.
    pub time_to_sell_out_seconds: Option<i64>,
    /// Activity over time.
    pub series: SeriesBody,
}

/// One event in an overview.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopEvent {
    /// The event.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: Uuid,
    /// Its title.
    pub event_name: String,
    /// Tickets of orders not cancelled.
    pub tickets: i64,
    /// Orders not cancelled.
    pub orders: i64,
    /// Sold / capacity.
    pub sell_through: Option<f64>,
    /// Money per currency.
    pub revenue: Vec<Money>,
}

/// Figures across events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewBody {
    /// `platform` (an admin: every event) or `organizer` (the caller's events).
    pub scope: String,
    /// Events counted (deleted ones left out).
    pub events: i64,
    /// Orders not cancelled.
    pub orders: i64,
    /// Tickets of orders not cancelled.
    pub tickets: i64,
    /// Orders cancelled.
    pub cancellations: i64,
    /// Seats in all.
    pub capacity: i64,
    /// Seats sold.
    pub sold: i64,
    /// Seats in live holds.
    pub held: i64,
    /// Sold / capacity over all the events.
    pub sell_through: Option<f64>,
    /// Money per currency, never summed across currencies.
    pub revenue: Vec<Money>,
    /// The best-selling events (by tickets), best first.
    pub top_events: Vec<TopEvent>,
    /// Activity over time (in UTC unless `timeZone`).
    pub series: SeriesBody,
}

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[expect(clippy::cast_precision_loss, reason = "a ratio of seat counts")]
fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| ((part as f64 / whole as f64) * 1e4).round() / 1e4)
}

fn instant(field: &str, raw: Option<&str>) -> Result<Option<i64>, Problem> {
    raw.map(|raw| {
        time::OffsetDateTime::parse(raw.trim(), &Rfc3339)
            .map(domain::ms)
            .map_err(|_| Problem::invalid_field(field, "must be an RFC 3339 date-time"))
    })
    .transpose()
}

/// The range asked for, and whether as CSV.
fn request(query: &RangeQuery) -> Result<(RangeRequest, bool), Problem> {
    let interval = match query.interval.as_deref().map(str::trim) {
        None | Some("auto") => None,
        Some("hour") => Some(Interval::Hour),
        Some("day") => Some(Interval::Day),
        Some("week") => Some(Interval::Week),
        Some(_) => {
            return Err(Problem::invalid_field(
                "interval",
                "must be auto, hour, day or week",
            ));
        }
    };
    let time_zone = match query.time_zone.as_deref() {
        None => None,
        Some(raw) => Some(domain::zone(raw).ok_or_else(|| {
            Problem::invalid_field(
                "timeZone",
                "must be an IANA time zone such as Europe/Berlin",
            )
        })?),
    };
    let csv = match query.format.as_deref().map(str::trim) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(Problem::invalid_field("format", "must be json or csv")),
    };
    Ok((
        RangeRequest {
            from: instant("from", query.from.as_deref())?,
            to: instant("to", query.to.as_deref())?,
            interval,
            time_zone,
        },
        csv,
    ))
}

fn point(start: i64, a: &Activity) -> Point {
    Point {
        start: rfc3339(start),
        holds_created: a.holds,
        orders_placed: a.orders_placed,
        orders_cancelled: a.orders_cancelled,
        tickets_sold: a.tickets_sold,
        tickets_cancelled: a.tickets_cancelled,
        revenue: money(&a.money),
    }
}

fn series_body(series: &Series) -> SeriesBody {
    SeriesBody {
        from: rfc3339(series.range.from),
        to: rfc3339(series.range.to),
        interval: series.range.interval.as_str().to_owned(),
        time_zone: domain::zone_name(&series.range.time_zone).to_owned(),
        points: series.points.iter().map(|(s, a)| point(*s, a)).collect(),
    }
}

/// The series as CSV: one row per point, one column per counter, then gross, refunded and
/// net per currency.
pub fn csv(series: &Series) -> String {
    let currencies: Vec<&String> = series
        .points
        .first()
        .map(|(_, a)| a.money.keys().collect())
        .unwrap_or_default();
    let mut out = String::from(
        "start,holdsCreated,ordersPlaced,ordersCancelled,ticketsSold,ticketsCancelled",
    );
    for c in &currencies {
        // Currencies are ISO 4217 codes as the events service validated them; anything
        // else is quoted.
        let c = c.replace('"', "\"\"");
        out.push_str(&format!(",\"gross {c}\",\"refunded {c}\",\"net {c}\""));
    }
    out.push('\n');
    for (start, a) in &series.points {
        out.push_str(&format!(
            "{},{},{},{},{},{}",
            rfc3339(*start),
            a.holds,
            a.orders_placed,
            a.orders_cancelled,
            a.tickets_sold,
            a.tickets_cancelled
        ));
        for c in &currencies {
            let (gross, refunded) = a.money.get(*c).copied().unwrap_or_default();
            out.push_str(&format!(",{gross},{refunded},{}", gross - refunded));
        }
        out.push('\n');
    }
    out
}

fn csv_response(series: &Series) -> Response {
    (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        csv(series),
    )
        .into_response()
}

pub(crate) fn holds(f: &EventFigures) -> Holds {
    Holds {
        created: f.holds_created,
        expired: f.holds_expired,
        released: f.holds_released,
        cancelled: f.holds_cancelled,
        converted: f.holds_converted,
        live: f.live_holds(),
        conversion: ratio(f.holds_converted, f.holds_created),
    }
}

fn event_body(f: &EventFigures, series: &Series) -> EventAnalytics {
    EventAnalytics {
        event_id: f.event_id,
        event_name: f.name.clone(),
        status: f.status.clone(),
        capacity: f.capacity,
        sold: f.sold,
        held: f.held,
        available: f.available,
        inventory_version: f.version,
        sell_through: ratio(f.sold, f.capacity),
        orders: f.orders,
        tickets: f.tickets,
        cancellations: f.cancellations,
        revenue: money(&f.money),
        holds: holds(f),
        waitlist_offers: f.waitlist_offers,
        waitlist_length: f.waitlist_length,
        sold_out_at: f.sold_out_at.map(rfc3339),
        time_to_sell_out_seconds: f
            .sold_out_at
            .zip(f.sale_start)
            .map(|(out, start)| (out - start).max(0) / 1000),
        series: series_body(series),
    }
}

/// One event's figures (its organizer or an admin; 404 to anyone else): seats sold, held
/// and available from booking's newest inventory version, live orders and tickets,
/// cancellations, revenue per currency (gross, refunded, net), holds by outcome and their
/// conversion, waitlist offers and length, time to sell out, and a zero-filled series of
/// per-minute activity rolled up to hours, days or weeks of the event's time zone (or the
/// one asked for).
#[utoipa::path(get, path = "/api/analytics/events/{id}", tag = "analytics",
    params(("id" = String, Path, format = Uuid, description = "The event"), RangeQuery),
    responses(
        (status = 200, description = "The event's figures (JSON), or its series (`format=csv`)", body = EventAnalytics,
            content(
                (EventAnalytics = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "Malformed id or query string, or an unknown parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "Missing or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 404, description = "No such event, or not the caller's", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "A bad `from`, `to`, `interval`, `timeZone` or `format`", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 429, description = "Rate limited", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ),
    security(("bearer" = [])))]
pub async fn event(
    State(state): State<AnalyticsState>,
    identity: Identity,
    Path(id): Path<Uuid>,
    Query(query): Query<RangeQuery>,
) -> Result<Response, AnalyticsError> {
    let (range, as_csv) = request(&query)?;
    let report = state.service.event(&identity, id, range).await?;
    if as_csv {
        return Ok(csv_response(&report.series));
    }
    Ok(axum::Json(event_body(&report.figures, &report.series)).into_response())
}

/// Figures across events: every event's for an admin (`scope: platform`), the caller's
/// own events' for anyone else (`scope: organizer`; none for a buyer). Orders, tickets,
/// cancellations, revenue per currency, sell-through, the best-selling events and a
/// zero-filled series.
#[utoipa::path(get, path = "/api/analytics/overview", tag = "analytics",
    params(RangeQuery),
    responses(
        (status = 200, description = "The overview (JSON), or its series (`format=csv`)", body = OverviewBody,
            content(
                (OverviewBody = "application/json"),
                (String = "text/csv"),
            )),
        (status = 400, description = "Malformed query string or an unknown parameter", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 401, description = "Missing or invalid token", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 422, description = "A bad `from`, `to`, `interval`, `timeZone` or `format`", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 429, description = "Rate limited", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
        (status = 503, description = "Store unavailable", body = evently_core::problem::ProblemBody, content_type = PROBLEM),
    ),
    security(("bearer" = [])))]
pub async fn overview(
    State(state): State<AnalyticsState>,
    identity: Identity,
    Query(query): Query<RangeQuery>,
) -> Result<Response, AnalyticsError> {
    let (range, as_csv) = request(&query)?;
    let overview = state.service.overview(&identity, range).await?;
    if as_csv {
        return Ok(csv_response(&overview.series));
    }
    let events = &overview.events;
    let mut revenue: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for e in events {
        for (currency, (gross, refunded)) in &e.money {
            let slot = revenue.entry(currency.clone()).or_default();
            slot.0 += gross;
            slot.1 += refunded;
        }
    }
    let sum = |f: fn(&EventFigures) -> i64| events.iter().map(f).sum::<i64>();
    let (capacity, sold) = (sum(|e| e.capacity), sum(|e| e.sold));
    let mut top: Vec<&EventFigures> = events.iter().filter(|e| e.tickets > 0).collect();
    top.sort_by(|a, b| b.tickets.cmp(&a.tickets).then(a.event_id.cmp(&b.event_id)));
    top.truncate(state.service.config().top_events as usize);
    let body = OverviewBody {
        scope: overview.scope.to_owned(),
        events: i64::try_from(events.len()).unwrap_or(i64::MAX),
        orders: sum(|e| e.orders),
        tickets: sum(|e| e.tickets),
        cancellations: sum(|e| e.cancellations),
        capacity,
        sold,
        held: sum(|e| e.held),
        sell_through: ratio(sold, capacity),
        revenue: money(&revenue),
        top_events: top
            .into_iter()
            .map(|e| TopEvent {
                event_id: e.event_id,
                event_name: e.name.clone(),
                tickets: e.tickets,
                orders: e.orders,
                sell_through: ratio(e.sold, e.capacity),
                revenue: money(&e.money),
            })
            .collect(),
        series: series_body(&overview.series),
    };
    Ok(axum::Json(body).into_response())
}
