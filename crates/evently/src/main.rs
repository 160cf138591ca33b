//! The `evently` command: `serve`, `migrate`, `admin create`, `health`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use evently_core::clock::SystemClock;
use evently_core::config::Config;
use evently_core::identity::Role;
use evently_core::service::ServiceName;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the system allocator: request handling allocates many small, short-lived
/// buffers, where glibc's malloc showed up as the largest item of a gateway profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// evently — event ticketing backend.
#[derive(Debug, Parser)]
#[command(name = "evently", version, about)]
struct Cli {
    /// TOML configuration file (also `EVENTLY_CONFIG`).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080; port 0 picks a free port (also `EVENTLY_LISTEN`).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Directory for SQLite files and generated secrets (also `EVENTLY_DATA_DIR`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run services (all of them by default).
    Serve {
        /// Comma-separated services to run in this process, e.g. `auth`.
        #[arg(long, value_delimiter = ',')]
        services: Vec<ServiceName>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// Comma-separated services to migrate (all by default).
        #[arg(long, value_delimiter = ',')]
        services: Vec<ServiceName>,
    },
    /// Ask a running evently whether it is up: exit status 0 when it answers 200 within 3 s.
    /// For container health checks (the image has no shell and no curl).
    Health {
        /// The URL to ask; by default `/health/live` at the configured listen address (on
        /// 127.0.0.1 when it listens on every address).
        #[arg(long)]
        url: Option<String>,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin account; the password is read from standard input.
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The admin's display name.
        #[arg(long)]
        name: String,
    },
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(listen) = cli.listen {
        config.server.listen = listen;
    }
    if let Some(dir) = &cli.data_dir {
        config.server.data_dir.clone_from(dir);
    }
    Ok(config)
}

async fn shutdown_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received; draining");
    token.cancel();
    // A second Ctrl-C does not wait for the drain window and the grace period.
    if tokio::signal::ctrl_c().await.is_ok() {
        tracing::warn!("second interrupt; exiting without draining");
        std::process::exit(130);
    }
}

fn invalid(problem: &evently_core::Problem) -> anyhow::Error {
    let detail = problem
        .errors()
        .first()
        .map_or_else(|| problem.to_string(), |e| e.detail.clone());
    anyhow::anyhow!("{detail}")
}

fn read_password() -> anyhow::Result<String> {
    eprint!("password for the new admin (read from standard input): ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    eprintln!();
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `/health/live` of the process this configuration describes, reached over loopback when it
/// listens on every address.
fn own_health_url(listen: SocketAddr) -> String {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}/health/live")
}

async fn health(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?;
    let status = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("asking {url}"))?
        .status();
    anyhow::ensure!(status == reqwest::StatusCode::OK, "{url} answered {status}");
    println!("{url}: {status}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = load_config(&cli)?;
    if let Command::Health { url } = &cli.command {
        let url = url
            .clone()
            .unwrap_or_else(|| own_health_url(config.server.listen));
        // A short answer for health-check logs, without a backtrace.
        if let Err(e) = health(&url).await {
            eprintln!("unhealthy: {e:#}");
            std::process::exit(1);
        }
        return Ok(());
    }
    // Traces name the process by its services: `evently-booking`, or `evently` for all of them.
    let process = match &cli.command {
        Command::Serve { services } if !services.is_empty() => format!(
            "evently-{}",
            services
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("+")
        ),
        _ => "evently".to_owned(),
    };
    evently_core::telemetry::init_for(&config.log, &process);
    let outcome = command(cli.command, config).await;
    evently_core::telemetry::shutdown();
    outcome
}

async fn command(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Health { .. } => Ok(()),
        Command::Serve { services } => {
            let shutdown = CancellationToken::new();
            tokio::spawn(shutdown_signal(shutdown.clone()));
            evently::run(config, &services, shutdown).await
        }
        Command::Migrate { services } => {
            // Building a service opens its store, which applies its migrations.
            evently::build(&config, &services, Arc::new(SystemClock)).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Create { email, name },
        } => {
            let app = evently::build(&config, &[ServiceName::Auth], Arc::new(SystemClock)).await?;
            let auth = app.auth.context("the auth service is not available")?;
            let password = read_password()?;
            let email = evently_auth::domain::Email::parse(&email).map_err(|p| invalid(&p))?;
            let name = evently_auth::domain::Name::parse(&name).map_err(|p| invalid(&p))?;
            let password =
                evently_auth::domain::Password::parse(&password).map_err(|p| invalid(&p))?;
            let user = auth
                .service
                .register(email, password, name, Role::Admin)
                .await
                .map_err(|e| anyhow::anyhow!("creating the admin: {e}"))?;
            println!("created admin {} ({})", user.id, user.email.as_str());
            Ok(())
        }
    }
}
