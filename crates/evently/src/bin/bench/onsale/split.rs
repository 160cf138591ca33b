//! The topology of `evently-bench onsale --split`: every service in its own process, as
//! `deploy/compose.yaml` runs them, on PostgreSQL and NATS: auth, events, recommendations,
//! search, two booking processes and two gateways sharing their rate-limit budgets in Redis.
//! Gateway `a` sends booking's routes to booking `a`, gateway `b` to booking `b`; buyers
//! alternate between the gateways, so both booking processes sell the same seats at once.

use anyhow::Context;

use crate::server::{Server, start_services};

/// The processes of one run, by name, in start order.
pub(super) struct Topology {
    pub(super) processes: Vec<(&'static str, Server)>,
}

impl Topology {
    /// Starts every process with `env` (the run's settings and database) plus the bus, Redis
    /// and the gateways' upstreams; `tag` keeps the run's streams and keys apart from others'.
    pub(super) fn start(
        env: &[(&'static str, String)],
        nats: &str,
        redis: &str,
        tag: &str,
    ) -> anyhow::Result<Self> {
        let mut shared = env.to_vec();
        shared.push(("EVENTLY_NATS_URL", nats.to_owned()));
        shared.push(("EVENTLY_BUS__STREAM_PREFIX", format!("BENCH_{tag}")));
        let mut processes = Vec::new();
        for (name, service) in [
            ("auth", "auth"),
            ("events", "events"),
            ("booking a", "booking"),
            ("booking b", "booking"),
            ("recs", "recs"),
            ("search", "search"),
        ] {
            let server =
                start_services(&[service], &shared).with_context(|| format!("starting {name}"))?;
            processes.push((name, server));
        }
        let base = |name: &str| {
            processes
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| s.base.clone())
                .unwrap_or_default()
        };
        let mut gateways = Vec::new();
        for (name, booking) in [("gateway a", "booking a"), ("gateway b", "booking b")] {
            let mut env = shared.clone();
            env.extend([
                ("EVENTLY_REDIS_URL", redis.to_owned()),
                ("EVENTLY_REDIS__KEY_PREFIX", format!("bench-{tag}")),
                ("EVENTLY_GATEWAY__SERVICES__AUTH", base("auth")),
                ("EVENTLY_GATEWAY__SERVICES__EVENTS", base("events")),
                ("EVENTLY_GATEWAY__SERVICES__BOOKING", base(booking)),
                ("EVENTLY_GATEWAY__SERVICES__RECS", base("recs")),
                ("EVENTLY_GATEWAY__SERVICES__SEARCH", base("search")),
            ]);
            let server =
                start_services(&["gateway"], &env).with_context(|| format!("starting {name}"))?;
            gateways.push((name, server));
        }
        processes.extend(gateways);
        Ok(Self { processes })
    }

    /// The gateways' addresses: where buyers go.
    pub(super) fn gateways(&self) -> Vec<String> {
        self.processes
            .iter()
            .filter(|(n, _)| n.starts_with("gateway"))
            .map(|(_, s)| s.base.clone())
            .collect()
    }

    /// The first gateway, through which the setup runs.
    pub(super) fn entry(&self) -> &Server {
        self.processes
            .iter()
            .find(|(n, _)| n.starts_with("gateway"))
            .map(|(_, s)| s)
            .unwrap_or(&self.processes[0].1)
    }

    /// Every process's name and pid, for CPU accounting.
    pub(super) fn pids(&self) -> Vec<(&'static str, u32)> {
        self.processes
            .iter()
            .map(|(n, s)| (*n, s.child.id()))
            .collect()
    }
}
