//! A run's figures: printed after the sale next to their targets, and returned by name for
//! the medians across runs.
//!
//! Invariants: targets are printed next to the figures and never enforced; the run counts as
//! sold out only when availability after the sale shows every seat sold, and then the answer
//! to the last order is the moment of the sell-out; the figures keep their names and order
//! from run to run, so that their medians line up.

use std::collections::BTreeMap;

use super::Options;
use super::sale::SaleRun;
use super::stats::Step;
use crate::server::percentile;

/// Peak resident memory of `pid` in MiB (`VmHWM`).
pub(super) fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

pub(super) fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// One run's figures, by name, for the medians across runs.
pub(super) type Figures = Vec<(&'static str, f64)>;

/// Prints the sale's figures and returns them.
pub(super) fn report(
    opts: &Options,
    run: &mut SaleRun,
    final_availability: Result<[i64; 4], String>,
    rss: f64,
) -> Figures {
    // Sold out when the server shows every seat sold afterwards: then the last order answered
    // sold the last seat, and its answer is the moment of the sell-out.
    if let Ok([capacity, _, _, sold]) = final_availability
        && capacity > 0
        && sold >= capacity
    {
        run.sold_out_after = Some(run.stats.last_order_s);
    }
    let (stats, sale_secs) = (&mut run.stats, run.secs);
    let (sold, available, held) = match &final_availability {
        Ok([_, available, held, sold]) => (*sold as f64, *available, *held),
        Err(e) => {
            println!("  UNEXPECTED: the final GET availability answered {e}");
            (f64::NAN, -1, -1)
        }
    };
    let (engine, target_secs) = match opts.database_url {
        Some(_) => ("PostgreSQL", 60.0),
        None => ("embedded SQLite", 30.0),
    };
    println!(
        "  sale: {} buyers, {} client tasks, 1..={} tickets each, {sale_secs:.2} s until every buyer finished",
        opts.buyers, opts.concurrency, opts.max_quantity
    );
    println!(
        "  seats sold (server):       {sold} of {} (available {available}, held {held})",
        opts.seats
    );
    println!(
        "  orders placed (201):       {} ({} tickets in the answers)",
        stats.orders, stats.tickets
    );
    println!(
        "  holds/s:                   {:.0}   orders/s: {:.0}   (over the whole sale, {sale_secs:.2} s)",
        stats.holds as f64 / sale_secs,
        stats.orders as f64 / sale_secs
    );
    let sellout_secs = match run.sold_out_after {
        Some(secs) => {
            println!(
                "  time to sell out:          {secs:.2} s (target: all seats to {} buyers in < {target_secs:.0} s on {engine}: {})",
                opts.buyers,
                met(secs < target_secs)
            );
            // No order can complete once every seat is sold, so all of them fell in this time.
            println!(
                "  orders/s until sold out:   {:.0}",
                stats.orders as f64 / secs
            );
            secs
        }
        None => {
            println!(
                "  time to sell out:          not sold out; all buyers finished after {sale_secs:.2} s (target < {target_secs:.0} s on {engine}: MISSED)"
            );
            f64::NAN
        }
    };
    let nothing = (opts.buyers as u64).saturating_sub(stats.orders);
    println!(
        "  buyers who got nothing:    {nothing} (sold out: {}, lost a race: {}, failed: {}); seat-map fallbacks to best available: {}",
        stats.sold_out, stats.lost, stats.failed, stats.fallbacks
    );

    let mut latency: BTreeMap<Step, Vec<f64>> = std::mem::take(&mut stats.ok_ms);
    for v in latency.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    let mut holds: Vec<f64> = [Step::HoldSeats, Step::HoldBest]
        .iter()
        .filter_map(|s| latency.get(s))
        .flatten()
        .copied()
        .collect();
    holds.sort_by(f64::total_cmp);
    let p = |v: Option<&Vec<f64>>, q: f64| v.map_or(f64::NAN, |v| percentile(v, q));
    println!("  latency of 2xx answers (target p99 < 250 ms per step):");
    let line = |name: &str, v: Option<&Vec<f64>>, target: bool| {
        let p99 = p(v, 0.99);
        println!(
            "    {name:<22} p50 {:>8.2} ms   p99 {p99:>8.2} ms   ({} answers){}",
            p(v, 0.5),
            v.map_or(0, Vec::len),
            if target && v.is_some_and(|v| !v.is_empty()) {
                format!("  {}", met(p99 < 250.0))
            } else {
                String::new()
            }
        );
    };
    line("hold (all)", Some(&holds), true);
    // The steps this run took: intent, confirm and purchase, or checkout (`--checkout`).
    for step in Step::ALL {
        if latency.contains_key(&step) {
            line(step.name(), latency.get(&step), step != Step::Release);
        }
    }
    stats.refused_ms.sort_by(f64::total_cmp);
    line("hold refused (409)", Some(&stats.refused_ms), false);

    println!("  answers per step:");
    for step in Step::ALL {
        let answers: Vec<String> = stats
            .counts
            .iter()
            .filter(|((s, _), _)| *s == step)
            .map(|((_, label), n)| {
                let status = label
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse::<u16>().ok());
                let flag = if label == "429 (retried)" || status.is_some_and(|s| step.expects(s)) {
                    ""
                } else {
                    " UNEXPECTED"
                };
                format!("{label} x{n}{flag}")
            })
            .collect();
        if !answers.is_empty() {
            println!("    {:<22} {}", step.name(), answers.join(", "));
        }
    }
    println!(
        "  unexpected answers:        {} (5xx, unexpected statuses, no answer)",
        stats.unexpected
    );
    for sample in &stats.samples {
        println!("    e.g. {sample}");
    }
    let cpu_per_purchase = run.server_cpu * 1000.0 / stats.orders.max(1) as f64;
    println!("  server peak RSS:           {rss:.0} MiB");
    println!(
        "  CPU per completed purchase: {cpu_per_purchase:.2} ms (target < 2 ms; pretix ~85 ms): {} \
         (server CPU {:.1} s during the sale)",
        met(cpu_per_purchase < 2.0),
        run.server_cpu
    );
    if run.per_process.len() > 1 {
        let shares: Vec<String> = run
            .per_process
            .iter()
            .map(|(name, cpu)| format!("{name} {:.3}", cpu * 1000.0 / stats.orders.max(1) as f64))
            .collect();
        println!("  CPU per purchase by process (ms): {}", shares.join(", "));
    }
    let servers: Vec<String> = run
        .servers
        .iter()
        .filter(|(_, cpu)| *cpu > 0.0)
        .map(|(name, cpu)| format!("{name} {:.3}", cpu * 1000.0 / stats.orders.max(1) as f64))
        .collect();
    if !servers.is_empty() {
        println!("  servers' CPU per purchase (ms): {}", servers.join(", "));
    }
    println!(
        "  loadgen CPU:               {:.1} s ({:.2} ms per completed purchase; same machine)",
        run.own_cpu,
        run.own_cpu * 1000.0 / stats.orders.max(1) as f64
    );
    // What else ran: PostgreSQL when the stores are there, otherwise little.
    let others = (run.machine_busy - run.server_cpu - run.own_cpu).max(0.0);
    let stack_per_purchase = (run.server_cpu + others) * 1000.0 / stats.orders.max(1) as f64;
    println!(
        "  other processes' CPU:      {others:.1} s (PostgreSQL when the stores are there); whole \
         stack without the load generator {stack_per_purchase:.2} ms per completed purchase"
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    println!(
        "  machine:                   {:.1} of {:.1} core-seconds busy, {:.1} s stolen by the \
         hypervisor ({:.1} %; a run with much stolen time was slowed by other guests)",
        run.machine_busy,
        cores * run.secs,
        run.machine_stolen,
        100.0 * run.machine_stolen / (cores * run.secs)
    );
    vec![
        ("seats sold", sold),
        ("orders placed", stats.orders as f64),
        ("holds/s", stats.holds as f64 / sale_secs),
        ("orders/s", stats.orders as f64 / sale_secs),
        ("time to sell out s", sellout_secs),
        ("sale s", sale_secs),
        ("buyers who got nothing", nothing as f64),
        ("hold p50 ms", percentile(&holds, 0.5)),
        ("hold p99 ms", percentile(&holds, 0.99)),
        ("intent p50 ms", p(latency.get(&Step::Intent), 0.5)),
        ("intent p99 ms", p(latency.get(&Step::Intent), 0.99)),
        ("confirm p50 ms", p(latency.get(&Step::Confirm), 0.5)),
        ("confirm p99 ms", p(latency.get(&Step::Confirm), 0.99)),
        ("purchase p50 ms", p(latency.get(&Step::Purchase), 0.5)),
        ("purchase p99 ms", p(latency.get(&Step::Purchase), 0.99)),
        ("checkout p50 ms", p(latency.get(&Step::Checkout), 0.5)),
        ("checkout p99 ms", p(latency.get(&Step::Checkout), 0.99)),
        ("unexpected answers", stats.unexpected as f64),
        ("server peak RSS MiB", rss),
        ("CPU per purchase ms", cpu_per_purchase),
        ("loadgen CPU s", run.own_cpu),
        ("stack CPU per purchase ms", stack_per_purchase),
        (
            "stolen CPU %",
            100.0 * run.machine_stolen / (cores * run.secs),
        ),
    ]
}
