//! Logging and tracing set-up, once per process, from `[log]` (`EVENTLY_LOG`,
//! `EVENTLY_LOG_FORMAT`, `EVENTLY_OTLP_ENDPOINT`).
//!
//! Log lines never carry passwords, tokens, cookies, payment secrets, emails or request
//! bodies: handlers log ids, and the request span records method, route, request id and, when
//! traces are exported, the trace id.
//!
//! **Traces** are off unless `log.otlp_endpoint` is set. Then every span of evently's crates
//! (debug level included: the stores' spans) goes to the collector over OTLP/HTTP (protobuf),
//! from a background thread with a bounded queue, so a slow or absent collector never holds a
//! request up (spans beyond the queue are dropped). The W3C `traceparent` ties processes into
//! one trace: the HTTP stack continues an incoming one ([`set_parent_from_headers`]), the
//! gateway passes its own on ([`inject_traceparent`]), and a domain event carries the one of the
//! request that caused it through the outbox and the bus to its consumers
//! ([`current_traceparent`], [`set_parent_from_traceparent`]).

use crate::config::{LogConfig, LogFormat};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::sync::OnceLock;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The exporting provider, when traces are on; flushed by [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (and so whether trace context is worth reading and writing).
pub fn tracing_enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Installs the global `tracing` subscriber with logs only. Safe to call more than once (later
/// calls are ignored), which tests rely on.
pub fn init(config: &LogConfig) {
    init_for(config, "evently");
}

/// Installs the global subscriber: logs as configured, and, with `log.otlp_endpoint`, span
/// export under the resource name `service_name` (e.g. `evently-booking`). An exporter that
/// cannot be built is logged and leaves traces off; it never stops the process.
pub fn init_for(config: &LogConfig, service_name: &str) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match config.format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => fmt.compact().with_filter(filter).boxed(),
    };
    let (otel, failure) = match &config.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => match provider(endpoint, config.trace_sample_ratio, service_name) {
            Ok(provider) => {
                let tracer = provider.tracer("evently");
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(span_filter());
                (Some((layer, provider)), None)
            }
            Err(e) => (None, Some(format!("{e:#}"))),
        },
    };
    let (layer, provider) = otel.map_or((None, None), |(l, p)| (Some(l), Some(p)));
    if tracing_subscriber::registry()
        .with(fmt)
        .with(layer)
        .try_init()
        .is_ok()
    {
        if let Some(provider) = provider {
            let _ = PROVIDER.set(provider);
            tracing::info!(
                endpoint = config.otlp_endpoint.as_deref().unwrap_or_default(),
                "exporting traces over OTLP/HTTP"
            );
        }
        if let Some(e) = failure {
            tracing::error!(error = %e, "the OTLP exporter could not be built; traces are off");
        }
    }
}

/// The target of spans that continue a trace from another process by an explicit parent (a
/// domain event's publish and consumption): exported although they start outside any span.
pub const CONTINUED: &str = "evently::trace";

/// The per-layer filter of the exporting layer: see [`starts_trace`] and [`exported_inside`].
fn span_filter<S>() -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::filter::dynamic_filter_fn(
        |meta, cx: &tracing_subscriber::layer::Context<'_, S>| {
            starts_trace(meta)
                || (exported_inside(meta)
                    && cx
                        .lookup_current()
                        .is_some_and(|current| current.scope().any(|s| starts_trace(s.metadata()))))
        },
    )
}

/// The spans a trace starts from, or continues in another process: an HTTP request's, and a
/// domain event's publication and consumption. Everything else is exported only inside one of
/// them ([`exported_inside`]), so that long-lived task spans and background polls (the relay's,
/// the expiry task's) never start traces of their own.
fn starts_trace(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == CONTINUED
        || (meta.name() == "request" && meta.target().starts_with("evently_core::http"))
}

/// Inside a traced span: evently's spans down to debug level (the stores', the outbox's),
/// other crates' from info.
fn exported_inside(meta: &tracing::Metadata<'_>) -> bool {
    if meta.target().starts_with("evently") {
        *meta.level() <= tracing::Level::DEBUG
    } else {
        *meta.level() <= tracing::Level::INFO
    }
}

fn provider(endpoint: &str, ratio: f64, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let endpoint = endpoint.trim_end_matches('/');
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    // The exporter's blocking HTTP client owns a runtime of its own, which may be neither
    // built nor dropped on a runtime thread: build it on a plain one. It then lives on the
    // batch processor's own thread.
    let exporter = std::thread::spawn(move || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(std::time::Duration::from_secs(5))
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP exporter panicked"))??;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}

/// Sends the spans still queued and stops the exporter; called once on the way out. Blocks for
/// at most the exporter's timeout.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let provider = provider.clone();
        // The exporter's blocking client must not be driven from a runtime thread.
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct One(Option<String>);

impl Extractor for One {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent")
            .then_some(self.0.as_deref())
            .flatten()
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

impl Injector for One {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

/// Continues the trace of an incoming request's `traceparent` in `span`, and records the
/// trace id on it (as `trace_id`, so log lines of the request carry it). Does nothing when
/// traces are off.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if !tracing_enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// Makes `span` a child of the span a `traceparent` value names (a domain event's origin).
/// Does nothing when traces are off or the value is not a valid `traceparent`.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: &str) {
    if !tracing_enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&One(Some(traceparent.to_owned())));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    record_trace_id(span);
}

/// Links `span` to the span a `traceparent` names, for work done for several origins at once
/// (a consumer's batch of domain events).
pub fn add_link_to_traceparent(span: &tracing::Span, traceparent: &str) {
    if !tracing_enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&One(Some(traceparent.to_owned())));
    let context = parent.span().span_context().clone();
    if context.is_valid() {
        span.add_link(context);
    }
}

fn record_trace_id(span: &tracing::Span) {
    let context = span.context();
    let trace = context.span().span_context().trace_id();
    if trace != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace));
    }
}

/// The `traceparent` of the current span, for a domain event written on its behalf or a
/// request sent on; `None` when traces are off or nothing is being traced.
pub fn current_traceparent() -> Option<String> {
    if !tracing_enabled() {
        return None;
    }
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut out = One(None);
    TraceContextPropagator::new().inject_context(&context, &mut out);
    out.0
}

/// Sets `traceparent` on an outgoing request's headers to the current span, so the next
/// process continues this trace. Leaves the headers alone when traces are off.
pub fn inject_traceparent(headers: &mut http::HeaderMap) {
    if let Some(value) = current_traceparent()
        && let Ok(value) = http::HeaderValue::from_str(&value)
    {
        headers.insert(http::HeaderName::from_static("traceparent"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::Context;

    #[derive(Clone, Default)]
    struct Names(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Names {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: Context<'_, S>,
        ) {
            self.0
                .lock()
                .expect("not poisoned")
                .push(attrs.metadata().name().to_owned());
        }
    }

    #[test]
    fn only_requests_and_continued_spans_start_traces_and_polls_stay_out() {
        let names = Names::default();
        let subscriber =
            tracing_subscriber::registry().with(names.clone().with_filter(span_filter()));
        tracing::subscriber::with_default(subscriber, || {
            let relay = tracing::info_span!(target: "evently_bus::nats", "outbox_relay");
            relay.in_scope(|| {
                let _poll = tracing::debug_span!(target: "evently_bus::outbox", "unpublished");
            });
            let request = tracing::info_span!(target: "evently_core::http", "request");
            request.in_scope(|| {
                let store = tracing::debug_span!(target: "evently_booking::store", "purchase");
                store.in_scope(|| {
                    let _row = tracing::debug_span!(target: "evently_bus::outbox", "append");
                    let _noise = tracing::debug_span!(target: "sqlx::query", "query");
                });
            });
            let _consume = tracing::debug_span!(target: CONTINUED, "bus.consume");
        });
        assert_eq!(
            *names.0.lock().expect("not poisoned"),
            ["request", "purchase", "append", "bus.consume"]
        );
    }
}
