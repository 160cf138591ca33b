//! A real `evently serve` process for benchmarks, and figures helpers.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `evently serve` child process, killed (and its data directory removed) on drop.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    dir: std::path::PathBuf,
}

impl Server {
    /// The server's data directory (SQLite files, generated secrets); removed on drop.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The secret every benchmark process shares, so tokens from one verify in another.
pub const BENCH_JWT_SECRET: &str = "evently-bench-secret-0123456789abcdefghij";

/// Starts the sibling `evently` binary (`serve`, all services) with extra environment.
pub fn start_server(extra_env: &[(&str, String)]) -> anyhow::Result<Server> {
    start_services(&[], extra_env)
}

/// Starts `evently serve --services <services>` (all when empty) with extra environment.
/// Rate limits are set far above any benchmark's rate: they are checked, never binding.
pub fn start_services(services: &[&str], extra_env: &[(&str, String)]) -> anyhow::Result<Server> {
    let exe = std::env::current_exe()?;
    let binary = exe
        .parent()
        .context("bench binary has no directory")?
        .join("evently");
    if !binary.exists() {
        bail!(
            "{} not found; build it first (cargo build --release --bin evently)",
            binary.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("evently-bench-{}", uuid_like()));
    let mut command = Command::new(&binary);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir);
    if !services.is_empty() {
        command.arg("--services").arg(services.join(","));
    }
    command
        .env("EVENTLY_LOG", "warn")
        .env("EVENTLY_JWT__SECRET", BENCH_JWT_SECRET)
        .env("EVENTLY_INTERNAL__TOKEN", "evently-bench-internal-token")
        .env("EVENTLY_AUTH__THROTTLE__IP_MAX_FAILURES", "1000000")
        .env(
            "EVENTLY_GATEWAY__RATE_LIMITS__DEFAULT__PER_MINUTE",
            "1000000000",
        )
        .env(
            "EVENTLY_GATEWAY__RATE_LIMITS__AUTH__PER_MINUTE",
            "1000000000",
        )
        .env(
            "EVENTLY_GATEWAY__RATE_LIMITS__PURCHASE__PER_MINUTE",
            "1000000000",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().context("starting evently serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut line)?;
    // Keep reading what the server prints later, so it never writes into a closed pipe.
    std::thread::spawn(move || {
        let mut rest = String::new();
        while reader.read_line(&mut rest).is_ok_and(|n| n > 0) {
            rest.clear();
        }
    });
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context("evently did not print its address")?
        .to_owned();
    Ok(Server { child, base, dir })
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// CPU seconds (user + system) used so far by process `pid`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// CPU seconds used so far by process `pid` in user space and in the kernel.
pub fn cpu_split(pid: u32) -> (f64, f64) {
    // utime and stime from /proc/<pid>/stat, in clock ticks (100 per second on Linux).
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (f64::NAN, f64::NAN);
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// The `p` quantile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// The whole machine's CPU time so far, from `/proc/stat`: seconds busy (user, nice, system,
/// irq, softirq) and seconds stolen by the hypervisor, summed over all cores. A run with much
/// stolen time ran on a machine that was not all its own.
pub fn machine_cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (f64::NAN, f64::NAN);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (f64::NAN, f64::NAN);
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0) / 100.0;
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// CPU seconds used so far by every process whose command name (`/proc/<pid>/comm`) is one of
/// `names`, summed per name: the servers evently runs on (`postgres`, `nats-server`,
/// `redis-server`). Processes that started or ended in between make the difference of two
/// readings an estimate.
pub fn named_cpu_seconds(names: &[&'static str]) -> Vec<(&'static str, f64)> {
    let mut totals: Vec<(&'static str, f64)> = names.iter().map(|n| (*n, 0.0)).collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return totals;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if let Some(total) = totals.iter_mut().find(|(n, _)| *n == comm.trim()) {
            let cpu = cpu_seconds(pid);
            if cpu.is_finite() {
                total.1 += cpu;
            }
        }
    }
    totals
}
