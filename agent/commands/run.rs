//! `vigil` itself: the start-up log, the listener, the tick loop and the server on one
//! single-threaded runtime, then a drain on SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use super::EXIT_USAGE;
use crate::config::{Config, Mode};
use crate::log;
use crate::serve::shared::Shared;
use crate::serve::{agent_check, server};
use crate::tick::{Agent, StartError};

/// Runs the agent until a stop signal and the drain that follows it.
pub async fn run(config: Config) -> ExitCode {
    log::init(config.log_level, config.log_format);
    let mode = config.mode();
    log::info(
        "start",
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "mode": mode.name(),
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

    let names: Vec<String> = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()).collect();
    for name in crate::config::unknown_variables(names.iter().map(String::as_str)) {
        log::warn(
            "unknown_setting",
            json!({"name": name, "detail": "not a vigil setting: see vigil --help"}),
        );
    }

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
    let agent_check = match config.agent_check_listen {
        None => None,
        Some(address) => match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => {
                let bound = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
                log::info("listening", json!({"address": bound, "protocol": "haproxy agent-check"}));
                Some(listener)
            }
            Err(error) => {
                log::error("bind_failed", json!({"listen": address.to_string(), "error": error.to_string()}));
                return ExitCode::FAILURE;
            }
        },
    };

    let shared = Arc::new(Shared::new(mode, config.interval));
    let agent = match Agent::new(&config, Arc::clone(&shared)) {
        Ok(agent) => agent,
        Err(error @ (StartError::Record(_) | StartError::Model(_))) => {
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
    let (stop_agent_check, agent_check_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(listener) = agent_check {
        tokio::spawn(agent_check::serve(listener, Arc::clone(&shared), async {
            let _ = agent_check_stopped.await;
        }));
    }
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
    let _ = stop_agent_check.send(());
    let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    log::info("exit", json!({"drained": !second_signal}));
    ExitCode::SUCCESS
}
