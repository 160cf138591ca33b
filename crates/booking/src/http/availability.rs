//! `/api/events/{eventId}/availability`: exact availability of an event, once or as a live
//! stream of Server-Sent Events (public).

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use evently_core::extract::Path;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::BookingState;
use crate::domain::AvailabilityView;
use crate::error::BookingError;
use crate::service::BookingService;

/// The name of every event of the availability stream.
const AVAILABILITY_EVENT: &str = "availability";

/// One Server-Sent Event of the availability stream, as OpenAPI 3.1 describes an event of a
/// `text/event-stream` answer: named `availability`, its data an [`AvailabilityView`] as JSON.
pub struct AvailabilityEvent;

impl utoipa::PartialSchema for AvailabilityEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        evently_core::http::sse_event_schema(AVAILABILITY_EVENT, "AvailabilityView")
    }
}

impl utoipa::ToSchema for AvailabilityEvent {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "AvailabilityView".to_owned(),
            <AvailabilityView as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// Exact availability of an event, from booking (the source of truth).
#[utoipa::path(get, path = "/api/events/{eventId}/availability", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, body = AvailabilityView),
        (status = 404, description = "Unknown event", body = evently_core::problem::ProblemBody),
    ))]
pub async fn availability(
    State(state): State<BookingState>,
    Path(event_id): Path<Uuid>,
) -> Result<axum::Json<AvailabilityView>, BookingError> {
    Ok(axum::Json(state.service.availability(event_id).await?))
}

/// Availability as a live stream (Server-Sent Events, `event: availability`, data as in
/// `GET …/availability`): the current figures first, then each change within a second,
/// coalesced to at most one message per `booking.stream_interval_ms`.
#[utoipa::path(get, path = "/api/events/{eventId}/availability/stream", tag = "booking",
    params(("eventId" = Uuid, Path, description = "The event")),
    responses(
        (status = 200, description = "`text/event-stream`: each event is `availability` with an AvailabilityView as its data", content_type = "text/event-stream", body = AvailabilityEvent),
        (status = 404, description = "Unknown event", body = evently_core::problem::ProblemBody),
    ))]
pub async fn availability_stream(
    State(state): State<BookingState>,
    Path(event_id): Path<Uuid>,
) -> Result<Response, BookingError> {
    let service = state.service.clone();
    let first = service.availability(event_id).await?;
    let changes = service.changes().subscribe(event_id);
    let interval = Duration::from_millis(service.config().stream_interval_ms);
    struct Feed {
        service: Arc<BookingService>,
        changes: tokio::sync::watch::Receiver<u64>,
        last: Option<AvailabilityView>,
        pending: Option<AvailabilityView>,
    }
    let feed = Feed {
        service,
        changes,
        last: None,
        pending: Some(first),
    };
    let stream = futures_util::stream::unfold(feed, move |mut feed| async move {
        loop {
            if let Some(view) = feed.pending.take() {
                let event = SseEvent::default()
                    .event(AVAILABILITY_EVENT)
                    .json_data(&view)
                    .unwrap_or_else(|_| SseEvent::default().comment("unserialisable"));
                feed.last = Some(view);
                return Some((Ok::<_, Infallible>(event), feed));
            }
            // Wake on a change in this process, or each second (changes made by other
            // processes, and holds that expire by time alone).
            tokio::select! {
                changed = feed.changes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            tokio::time::sleep(interval).await;
            feed.changes.mark_unchanged();
            let event_id = feed.last.as_ref().map(|v| v.event_id)?;
            match feed.service.availability(event_id).await {
                Ok(view) if Some(&view) != feed.last.as_ref() => feed.pending = Some(view),
                Ok(_) => {}
                // The event is gone: end the stream.
                Err(BookingError::EventNotFound) => return None,
                Err(e) => tracing::warn!(error = %e, "availability stream read failed"),
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
