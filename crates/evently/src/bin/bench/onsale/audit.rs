//! The audit after the sale: the server is stopped (its data directory kept) and
//! `evently_booking::audit` counts the booking store's rows for the event.
//!
//! Invariants: no seat oversold or sold twice, every sold seat with exactly one valid ticket,
//! and no more seats sold than the capacity; a broken invariant, or an audit that cannot run,
//! fails the run (and the benchmark exits with a non-zero status).

use anyhow::{Context, bail};
use std::process::Command;
use std::time::{Duration, Instant};

use super::stats::Stats;
use crate::server::Server;

/// Sends SIGTERM to the server and waits (up to 30 s, then kills it), keeping its data
/// directory for the audit.
async fn stop(server: &mut Server) -> anyhow::Result<()> {
    let pid = server.child.id().to_string();
    let signalled = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|s| s.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while signalled && Instant::now() < deadline {
        if server.child.try_wait()?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  the server did not stop on SIGTERM within 30 s; killing it");
    server.child.kill().context("killing the server")?;
    server.child.wait().context("waiting for the server")?;
    Ok(())
}

/// Stops the servers (keeping their data directories) and audits the event's inventory in the
/// booking store; fails when the audit cannot run or an invariant is broken. Returns the
/// audited seats sold.
pub(super) async fn audit_store(
    servers: Vec<&mut Server>,
    database_url: Option<&str>,
    event_id: &str,
    stats: &Stats,
) -> anyhow::Result<i64> {
    let mut booking_db = None;
    for server in servers {
        stop(server).await?;
        booking_db.get_or_insert_with(|| server.data_dir().join("booking.db"));
    }
    let url = match (database_url, booking_db) {
        (Some(url), _) => url.to_owned(),
        (None, Some(db)) => format!("sqlite://{}", db.display()),
        (None, None) => bail!("no server to audit"),
    };
    let event_id = uuid::Uuid::parse_str(event_id).context("the event id is not a UUID")?;
    let audit = match evently_booking::audit(&url, event_id).await {
        Ok(audit) => audit,
        Err(e) => {
            println!("  audit FAILED: {e:#}");
            bail!("the booking store could not be audited: {e:#}");
        }
    };
    println!(
        "  audit: capacity {}, seats sold {}, tickets {}, orders {}, live holds {}",
        audit.capacity, audit.sold_seats, audit.tickets, audit.orders, audit.live_holds
    );
    println!(
        "  audit: oversold {} (must be 0), double-sold {} (must be 0), mismatched {} (must be 0), \
         sold seats = tickets: {}",
        audit.oversold,
        audit.double_sold,
        audit.mismatched,
        audit.sold_seats == audit.tickets
    );
    if i64::try_from(stats.tickets).ok() != Some(audit.tickets)
        || i64::try_from(stats.orders).ok() != Some(audit.orders)
    {
        println!(
            "  note: the answers counted {} orders and {} tickets; the store holds {} and {}",
            stats.orders, stats.tickets, audit.orders, audit.tickets
        );
    }
    let mut broken = Vec::new();
    if audit.oversold != 0 {
        broken.push(format!("{} tickets oversold", audit.oversold));
    }
    if audit.double_sold != 0 {
        broken.push(format!("{} seats sold twice", audit.double_sold));
    }
    if audit.mismatched != 0 {
        broken.push(format!("{} seats and tickets mismatched", audit.mismatched));
    }
    if audit.sold_seats != audit.tickets {
        broken.push(format!(
            "{} seats sold but {} valid tickets",
            audit.sold_seats, audit.tickets
        ));
    }
    if audit.sold_seats > audit.capacity {
        broken.push(format!(
            "{} seats sold of {}",
            audit.sold_seats, audit.capacity
        ));
    }
    if !broken.is_empty() {
        println!("  audit: INVARIANTS BROKEN");
        bail!("inventory invariants broken: {}", broken.join("; "));
    }
    println!("  zero oversell, no seat sold twice, every sold seat ticketed: met");
    Ok(audit.sold_seats)
}
