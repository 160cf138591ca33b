//! `evently-bench gateway`: an authenticated `GET /api/auth/me`, measured with `wrk` in one
//! run against (a) the auth service directly (`serve --services auth`), (b) the evently gateway
//! in front of it (JWT check and rate limiting on, proxying over HTTP), (c) nginx `proxy_pass`
//! in front of the same service (when nginx is installed), and (d) the default deployment's
//! shape: one `serve --services gateway,auth` process, the gateway's edge (JWT check, rate
//! limiting) in front of auth mounted in process. Each is measured `runs` times; medians are
//! printed with the CPU time per request (a proxy's split into user space and kernel), then
//! the ratios b/a (latency), b/c (throughput), c/a (what the nginx hop adds), d/a and d/c.

use anyhow::{Context, bail};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::server::{Server, cpu_seconds, cpu_split, percentile, start_services};

struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_ms(value: &str) -> Option<f64> {
    let value = value.trim();
    let (number, unit) = value
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| value.split_at(i))?;
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => return None,
    })
}

fn wrk(url: &str, token: &str, seconds: u64, connections: u32) -> anyhow::Result<Figures> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut figures = Figures {
        rps: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            figures.rps = rest.trim().parse().unwrap_or(f64::NAN);
        } else if let Some(rest) = line.strip_prefix("50%") {
            figures.p50_ms = parse_ms(rest).unwrap_or(f64::NAN);
        } else if let Some(rest) = line.strip_prefix("99%") {
            figures.p99_ms = parse_ms(rest).unwrap_or(f64::NAN);
        } else if line.starts_with("Non-2xx") {
            bail!("wrk saw errors against {url}: {line}");
        }
    }
    Ok(figures)
}

struct Nginx {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not Child::kill's SIGKILL: the master then stops its workers, which a
        // killed master would leave running (and listening).
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_nginx(upstream: &str, port: u16) -> anyhow::Result<Option<Nginx>> {
    let Ok(nginx) = which("nginx") else {
        return Ok(None);
    };
    let dir = std::env::temp_dir().join(format!("evently-bench-nginx-{port}"));
    std::fs::create_dir_all(dir.join("logs"))?;
    let upstream = upstream.trim_start_matches("http://");
    // The fairest nginx for this comparison: as many workers as cores, keep-alive to the
    // upstream, no access log (evently logs at warn in the benchmark too).
    let conf = format!(
        "worker_processes auto;\ndaemon off;\nmaster_process on;\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
           upstream evently {{ server {upstream}; keepalive 128; }}\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://evently;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n",
        dir = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new(nginx)
        .args(["-p"])
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx")?;
    Ok(Some(Nginx { child, dir }))
}

/// CPU seconds (user, kernel) of `pid` and its children; for nginx, the master and its
/// workers.
fn proxy_cpu(pid: u32) -> (f64, f64) {
    let (mut user, mut system) = cpu_split(pid);
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            let (u, s) = cpu_split(child);
            user += u;
            system += s;
        }
    }
    (user, system)
}

fn which(binary: &str) -> anyhow::Result<std::path::PathBuf> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = std::path::Path::new(dir).join(binary);
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("{binary} not found")
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{base} never became ready")
}

async fn sign_in(base: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::new();
    let body = serde_json::json!({"email": "bench-gw@example.com", "password": "benchmark password 1", "name": "Bench"});
    client
        .post(format!("{base}/api/auth/register"))
        .json(&body)
        .send()
        .await?;
    let login: serde_json::Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"email": "bench-gw@example.com", "password": "benchmark password 1"}))
        .send()
        .await?
        .json()
        .await?;
    login["accessToken"]
        .as_str()
        .map(str::to_owned)
        .context("no access token")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

/// Runs the benchmark.
pub async fn run(seconds: u64, runs: usize, connections: u32) -> anyhow::Result<()> {
    which("wrk").context("wrk is needed: apt-get install wrk")?;
    let cheap = [
        ("EVENTLY_AUTH__PASSWORD__MEMORY_KIB", "256".to_owned()),
        ("EVENTLY_AUTH__PASSWORD__ITERATIONS", "1".to_owned()),
    ];
    let service: Server = start_services(&["auth"], &cheap)?;
    let gateway: Server = start_services(
        &["gateway"],
        &[("EVENTLY_GATEWAY__SERVICES__AUTH", service.base.clone())],
    )?;
    let in_process: Server = start_services(&["gateway", "auth"], &cheap)?;
    wait_ready(&service.base).await?;
    wait_ready(&gateway.base).await?;
    wait_ready(&in_process.base).await?;
    let token = sign_in(&service.base).await?;
    // The in-process deployment has its own user store, so its own account and token.
    let in_process_token = sign_in(&in_process.base).await?;
    let nginx_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let nginx = start_nginx(&service.base, nginx_port)?;
    let nginx_base = format!("http://127.0.0.1:{nginx_port}");
    if nginx.is_some() {
        wait_ready(&nginx_base).await?;
    }

    println!(
        "evently-bench gateway: GET /api/auth/me with a bearer token, wrk -t2 -c{connections} -d{seconds}s, {runs} runs each, medians"
    );
    // (name, URL, token, the process serving auth, the proxy process in front of it)
    let mut targets = vec![
        (
            "direct",
            format!("{}/api/auth/me", service.base),
            &token,
            service.child.id(),
            None,
        ),
        (
            "gateway",
            format!("{}/api/auth/me", gateway.base),
            &token,
            service.child.id(),
            Some(gateway.child.id()),
        ),
    ];
    if let Some(n) = &nginx {
        targets.push((
            "nginx",
            format!("{nginx_base}/api/auth/me"),
            &token,
            service.child.id(),
            Some(n.child.id()),
        ));
    } else {
        println!("nginx not installed: (c) skipped (apt-get install nginx)");
    }
    targets.push((
        "in-proc",
        format!("{}/api/auth/me", in_process.base),
        &in_process_token,
        in_process.child.id(),
        None,
    ));
    // Warm every path (pools, caches) before measuring.
    for (_, url, token, _, _) in &targets {
        wrk(url, token, 1, connections)?;
    }
    let mut results = Vec::new();
    for (name, url, token, service_pid, proxy_pid) in &targets {
        let mut rps = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        let (mut service_cpu, mut requests) = (0.0, 0.0);
        let (mut proxy_user, mut proxy_kernel) = (0.0, 0.0);
        // Each target keeps its own warm connection pools, so its runs go back to back.
        for _ in 0..runs {
            let s0 = cpu_seconds(*service_pid);
            let p0 = proxy_pid.map_or((0.0, 0.0), proxy_cpu);
            let f = wrk(url, token, seconds, connections)?;
            service_cpu += cpu_seconds(*service_pid) - s0;
            let p1 = proxy_pid.map_or((0.0, 0.0), proxy_cpu);
            proxy_user += p1.0 - p0.0;
            proxy_kernel += p1.1 - p0.1;
            requests += f.rps * seconds as f64;
            rps.push(f.rps);
            p50.push(f.p50_ms);
            p99.push(f.p99_ms);
        }
        let (r, a, b) = (median(rps), median(p50), median(p99));
        let per = |cpu: f64| cpu * 1e6 / requests.max(1.0);
        let letter = match *name {
            "direct" => 'a',
            "gateway" => 'b',
            "nginx" => 'c',
            _ => 'd',
        };
        // For (d) the "service" is the one process that runs both the gateway and auth.
        println!(
            "({letter}) {name:<7} {r:>10.0} req/s   p50 {a:>7.3} ms   p99 {b:>7.3} ms   CPU/request: service {:>5.0} us, proxy {:>5.0} us (user {:.0}, kernel {:.0})",
            per(service_cpu),
            per(proxy_user + proxy_kernel),
            per(proxy_user),
            per(proxy_kernel)
        );
        results.push((*name, r, a, b));
    }
    let find = |wanted: &str| results.iter().find(|r| r.0 == wanted).copied();
    let (Some(direct), Some(gw), Some(local)) = (find("direct"), find("gateway"), find("in-proc"))
    else {
        bail!("a measurement is missing");
    };
    let nginx_figures = find("nginx");
    // (throughput, p50, p99) of `x` over `base`.
    let ratio = |x: (&str, f64, f64, f64), base: (&str, f64, f64, f64)| {
        (x.1 / base.1, x.2 / base.2, x.3 / base.3)
    };
    let (rps, p50, p99) = ratio(gw, direct);
    println!(
        "(b) proxying gateway vs direct: latency p50 b/a x{p50:.3}, p99 x{p99:.3} (target: under x1.15); throughput b/a x{rps:.3}"
    );
    if let Some(ng) = nginx_figures {
        let (rps, p50, p99) = ratio(gw, ng);
        println!(
            "(b) proxying gateway vs nginx: throughput b/c = {rps:.3} (target >= 1.0); latency p50 x{p50:.3}, p99 x{p99:.3}"
        );
        // The reference for the latency target: what a hop through nginx adds on this machine.
        let (rps, p50, p99) = ratio(ng, direct);
        println!(
            "(c) nginx vs direct: latency p50 c/a x{p50:.3}, p99 x{p99:.3}; throughput c/a x{rps:.3}"
        );
    }
    let (rps, p50, p99) = ratio(local, direct);
    println!(
        "(d) in-process gateway vs direct: latency p50 d/a x{p50:.3}, p99 x{p99:.3}; throughput d/a x{rps:.3}"
    );
    if let Some(ng) = nginx_figures {
        let (rps, p50, p99) = ratio(local, ng);
        println!(
            "(d) in-process gateway vs nginx: throughput d/c = {rps:.3}; latency p50 x{p50:.3}, p99 x{p99:.3}"
        );
    }
    drop(nginx);
    Ok(())
}
