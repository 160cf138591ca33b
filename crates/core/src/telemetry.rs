//! Logging set-up, once per process, from `[log]` (`EVENTLY_LOG`, `EVENTLY_LOG_FORMAT`).
//!
//! Log lines never carry passwords, tokens, cookies, payment secrets, emails or request
//! bodies: handlers log ids, and the request span records method, route and request id.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber. Safe to call more than once (later calls are
/// ignored), which tests rely on.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_new(&config.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
