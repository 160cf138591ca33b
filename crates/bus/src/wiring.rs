//! How a service opens its buses from `[bus]` ([`BusConfig`]), so that every service names
//! its stream, picks in-process or NATS, and reaches another service's stream the same way.
//!
//! Each service's outbox has one stream, named from the service alone: `<prefix>_<SERVICE>`
//! with subjects under `<prefix>.<service>` ([`nats_target`]). The service that owns the
//! outbox opens it with [`open`] and, on NATS, runs the [`relay`] that publishes it; a process
//! that consumes a service running elsewhere reaches its stream with [`remote`]. Because
//! publisher and consumer derive the name from the same function, they cannot disagree on it.
//!
//! Without `bus.nats_url` there is no stream: the in-process bus reads the outbox table, so
//! only services in the same process can consume it, and [`remote`] refuses.

use anyhow::Context;
use evently_core::config::BusConfig;
use evently_core::service::ServiceName;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use crate::in_process::InProcessBus;
use crate::nats::{NatsBus, NatsTarget, Relay};
use crate::{Bus, Outbox};

/// Where `service`'s outbox is published on NATS: the stream `<prefix>_<SERVICE>` (e.g.
/// `EVENTLY_BOOKING`), subjects under `<prefix>.<service>` (e.g. `evently.booking`), with
/// `bus.ack_wait_seconds` before an unacknowledged delivery is sent again.
pub fn nats_target(config: &BusConfig, service: ServiceName) -> NatsTarget {
    NatsTarget {
        stream: format!(
            "{}_{}",
            config.stream_prefix,
            service.as_str().to_uppercase()
        ),
        subject_prefix: format!(
            "{}.{}",
            config.stream_prefix.to_lowercase(),
            service.as_str()
        ),
        ack_wait: Duration::from_secs(config.ack_wait_seconds),
    }
}

/// The bus that carries `service`'s own `outbox`, chosen by `bus.nats_url`: without it the
/// in-process bus (polling every `bus.poll_interval_ms`) and `None`; with it the NATS bus of
/// [`nats_target`], returned a second time so the service can run its [`relay`].
///
/// # Errors
/// When NATS cannot be reached or refuses the stream (an invalid URL, a server that is down).
pub async fn open(
    config: &BusConfig,
    service: ServiceName,
    outbox: Arc<dyn Outbox>,
) -> anyhow::Result<(Arc<dyn Bus>, Option<NatsBus>)> {
    Ok(match &config.nats_url {
        None => (
            Arc::new(InProcessBus::new(
                outbox,
                Duration::from_millis(config.poll_interval_ms),
            )),
            None,
        ),
        Some(url) => {
            let nats = NatsBus::connect(url.expose_secret(), nats_target(config, service))
                .await
                .context("connecting to NATS")?;
            (Arc::new(nats.clone()), Some(nats))
        }
    })
}

/// The NATS bus of `service`'s stream, for consuming the events of a service that runs in
/// another process.
///
/// # Errors
/// When `bus.nats_url` is unset (the events could not travel between processes; the message
/// says so and names the setting), or when NATS cannot be reached or refuses the stream.
pub async fn remote(config: &BusConfig, service: ServiceName) -> anyhow::Result<Arc<dyn Bus>> {
    let url = config.nats_url.as_ref().with_context(|| {
        format!(
            "this process consumes the {service} service's domain events, which runs elsewhere: \
             set bus.nats_url (EVENTLY_NATS_URL) so they travel over NATS"
        )
    })?;
    let bus = NatsBus::connect(url.expose_secret(), nats_target(config, service))
        .await
        .context("connecting to NATS")?;
    Ok(Arc::new(bus))
}

/// The NATS bus of `service`'s stream for one replica's own consumers, which NATS deletes
/// after `inactive` without a subscriber (a replica gone for good leaves nothing behind).
///
/// # Errors
/// As [`remote`].
pub async fn replica(
    config: &BusConfig,
    service: ServiceName,
    inactive: Duration,
) -> anyhow::Result<Arc<dyn Bus>> {
    let url = config.nats_url.as_ref().with_context(|| {
        format!("consuming the {service} service's domain events across processes needs bus.nats_url (EVENTLY_NATS_URL)")
    })?;
    let bus = NatsBus::connect(url.expose_secret(), nats_target(config, service))
        .await
        .context("connecting to NATS")?
        .with_inactive_threshold(inactive);
    Ok(Arc::new(bus))
}

/// The relay that publishes `outbox` to `nats` (the bus [`open`] returned), `bus.relay_batch`
/// rows per round, looking again every `bus.poll_interval_ms` when idle.
pub fn relay(config: &BusConfig, outbox: Arc<dyn Outbox>, nats: NatsBus) -> Relay {
    Relay::new(
        outbox,
        nats,
        config.relay_batch,
        Duration::from_millis(config.poll_interval_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_has_its_own_stream_under_the_prefix() {
        let config = BusConfig {
            stream_prefix: "Acme".into(),
            ack_wait_seconds: 7,
            ..BusConfig::default()
        };

        let events = nats_target(&config, ServiceName::Events);
        let booking = nats_target(&config, ServiceName::Booking);

        assert_eq!(events.stream, "Acme_EVENTS");
        assert_eq!(events.subject_prefix, "acme.events");
        assert_eq!(booking.stream, "Acme_BOOKING");
        assert_eq!(booking.subject_prefix, "acme.booking");
        assert_eq!(events.ack_wait, Duration::from_secs(7));
    }

    #[tokio::test]
    async fn remote_without_nats_url_names_the_setting() {
        let config = BusConfig::default();

        let err = match remote(&config, ServiceName::Events).await {
            Ok(_) => panic!("a remote bus needs a NATS URL"),
            Err(e) => e.to_string(),
        };

        assert!(err.contains("events service's domain events"), "{err}");
        assert!(err.contains("bus.nats_url (EVENTLY_NATS_URL)"), "{err}");
    }
}
