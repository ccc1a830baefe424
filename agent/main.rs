//! The `vigil` command: configuration from the environment, a single-threaded runtime, the
//! tick loop and the server, then a drain on SIGTERM or SIGINT.
//!
//! Exit codes: 0 after a drain, 64 for invalid configuration or usage, 1 when the port cannot
//! be bound; `vigil probe` exits 0 if `/health` answers 200 within 2 s, else 1.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use vigil::agent::{Agent, Mode, Shared, StartError};
use vigil::config::{self, Config};
use vigil::{log, server};

const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.first().map(String::as_str) {
        None => Command::Run,
        Some("-h" | "--help" | "help") => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("vigil {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("probe") if args.len() == 1 => Command::Probe,
        Some(other) => {
            eprintln!("vigil: unknown argument {other:?}; see vigil --help");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("vigil: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vigil: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Run => runtime.block_on(run(config)),
        Command::Probe => runtime.block_on(probe(&config)),
    }
}

enum Command {
    Run,
    Probe,
}

async fn run(config: Config) -> ExitCode {
    log::init(config.log_level, config.log_format);
    let mode = if config.tmds_url.is_some() { Mode::Ecs } else { Mode::Local };
    log::info(
        "start",
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "mode": mode,
            "detail": match mode {
                Mode::Local => "local mode: no ECS_CONTAINER_METADATA_URI_V4, reading only /proc and cgroups",
                Mode::Ecs => "ecs mode: reading the task metadata service, /proc and cgroups",
            },
            "listen": config.listen.to_string(),
            "interval_ms": config.interval.as_millis() as u64,
            "app_health_url": config.app_health_url,
            "watch": config.watch.as_ref().map(|re| re.as_str()),
            "drain_seconds": config.drain.as_secs(),
        }),
    );

    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            log::error(
                "bind_failed",
                json!({"listen": config.listen.to_string(), "error": error.to_string()}),
            );
            return ExitCode::FAILURE;
        }
    };

    if let Ok(address) = listener.local_addr() {
        log::info("listening", json!({"address": address.to_string()}));
    }

    let shared = Arc::new(Shared::new(mode, config.interval));
    let agent = match Agent::new(&config, Arc::clone(&shared)) {
        Ok(agent) => agent,
        Err(error @ StartError::Record(_)) => {
            eprintln!("vigil: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(error) => {
            log::error("start_failed", json!({"error": error.to_string()}));
            return ExitCode::FAILURE;
        }
    };

    let (mut terminate, mut interrupt) =
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
            (Err(error), _) | (_, Err(error)) => {
                log::error("start_failed", json!({"error": format!("signal handlers: {error}")}));
                return ExitCode::FAILURE;
            }
        };

    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(listener, Arc::clone(&shared), async {
        let _ = server_stopped.await;
    }));
    tokio::spawn(agent.run());

    let signal_name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    // From here on `/health` answers 503 so the load balancer deregisters the task before the
    // app receives its own stop signal and dies.
    shared.stop();
    log::warn("stopping", json!({"signal": signal_name, "drain_seconds": config.drain.as_secs()}));

    let second_signal = tokio::select! {
        _ = tokio::time::sleep(config.drain) => false,
        _ = terminate.recv() => true,
        _ = interrupt.recv() => true,
    };
    let _ = stop_server.send(());
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    log::info("exit", json!({"drained": !second_signal}));
    ExitCode::SUCCESS
}

/// `vigil probe`: the container health check command for images without curl.
async fn probe(config: &Config) -> ExitCode {
    let mut address = config.listen;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{address}/health");
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("vigil probe: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) => {
            let code = response.status();
            let body = response.text().await.unwrap_or_default();
            println!("{} {}", code.as_u16(), body.trim_end());
            if code == reqwest::StatusCode::OK { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            println!("no answer from {url}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    let mut text = format!(
        "vigil {} — takes an ECS task out of its load balancer before it fails\n\n\
         Usage:\n  vigil            run the agent (configured by environment variables)\n  \
         vigil probe      exit 0 if /health answers 200 within 2 s, else 1\n  \
         vigil --version  print the version\n\nEndpoints: /health /live /metrics /status\n\nEnvironment:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in config::VARIABLES {
        text.push_str(&format!("  {name:<32} {meaning} (default: {default})\n"));
    }
    text
}
