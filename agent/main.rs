//! The `vigil` command: configuration from the environment, a single-threaded runtime, the
//! tick loop and the server, then a drain on SIGTERM or SIGINT. Two offline commands,
//! `vigil vectors` and `vigil replay`, run recorded files through the model's input path.
//!
//! Exit codes: 0 after a drain, 64 for invalid configuration or usage, 1 when the port cannot
//! be bound; `vigil probe` exits 0 if `/health` answers 200 within 2 s, else 1. The offline
//! commands exit 64 for bad arguments or an unusable `--model`, 65 for an input file they
//! cannot parse, 66 for one they cannot read, 70 if the model fails to run, 73 when the output
//! cannot be created and 74 when writing fails.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use vigil::commands::replay::{self, DataError, ReplayError, Table};
use vigil::config::{self, Config, Mode};
use vigil::judge::model::Model;
use vigil::log;
use vigil::serve::server;
use vigil::serve::shared::Shared;
use vigil::tick::{Agent, StartError};

const EXIT_USAGE: u8 = 64;
const EXIT_DATA: u8 = 65;
const EXIT_NO_INPUT: u8 = 66;
const EXIT_SOFTWARE: u8 = 70;
const EXIT_CANNOT_CREATE: u8 = 73;
const EXIT_IO: u8 = 74;

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
        Some("vectors") => return vectors(&args[1..]),
        Some("replay") => return replay(&args[1..]),
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
    let mode = config.mode();
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

/// An offline command's failure: the message and the exit status.
struct Failure(String, u8);

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure(format!("{}; see vigil --help", message.into()), EXIT_USAGE)
    }
}

fn finish(command: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message, code)) => {
            eprintln!("vigil {command}: {message}");
            ExitCode::from(code)
        }
    }
}

/// Reads and parses an input file of `vigil vectors` or `vigil replay`.
fn read_table(path: &str) -> Result<Table, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| Failure(format!("cannot read {path}: {error}"), EXIT_NO_INPUT))?;
    replay::parse(&text).map_err(|error| data_failure(path, &error))
}

fn data_failure(path: &str, error: &DataError) -> Failure {
    Failure(format!("{path}: {error}"), EXIT_DATA)
}

fn write_failure(error: &std::io::Error) -> Result<(), Failure> {
    // A closed pipe (`vigil vectors file | head`) is the reader's choice, not a failure.
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(());
    }
    Err(Failure(format!("cannot write the output: {error}"), EXIT_IO))
}

/// `vigil vectors <recording.csv>`: the model's input vectors of a recording, on stdout.
fn vectors(args: &[String]) -> ExitCode {
    let result = match args {
        [path] if !path.starts_with('-') => read_table(path).and_then(|table| {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match replay::write_vectors(&table, &mut out).and_then(|_| out.flush()) {
                Ok(()) => Ok(()),
                Err(error) => write_failure(&error),
            }
        }),
        _ => Err(Failure::usage("expected one argument: vigil vectors <recording.csv>")),
    };
    finish("vectors", result)
}

/// The arguments of `vigil replay`.
#[derive(Default)]
struct ReplayArgs {
    input: Option<String>,
    out: Option<String>,
    model: Option<String>,
    windows: Option<String>,
    key: Option<String>,
    calibration: Option<u32>,
}

fn replay_args(args: &[String]) -> Result<ReplayArgs, Failure> {
    let mut parsed = ReplayArgs::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| Failure::usage(format!("{flag} needs a value")))
        };
        match flag {
            "--out" => parsed.out = Some(value()?),
            "--model" => parsed.model = Some(value()?),
            "--windows" => parsed.windows = Some(value()?),
            "--key" => parsed.key = Some(value()?),
            "--calibration" => {
                let text = value()?;
                match text.parse::<u32>() {
                    Ok(n) if n >= 1 => parsed.calibration = Some(n),
                    _ => {
                        return Err(Failure::usage(format!(
                            "--calibration {text:?}: expected a whole number of scores, at least 1"
                        )));
                    }
                }
            }
            other if other.starts_with('-') => {
                return Err(Failure::usage(format!("unknown option {other:?}")));
            }
            _ if parsed.input.is_none() => parsed.input = Some(arg.clone()),
            _ => return Err(Failure::usage(format!("unexpected argument {arg:?}"))),
        }
    }
    if parsed.input.is_none() {
        return Err(Failure::usage("expected an input file: vigil replay <file.csv> [--out FILE]"));
    }
    if parsed.key.is_some() && parsed.windows.is_none() {
        return Err(Failure::usage("--key needs --windows"));
    }
    Ok(parsed)
}

/// `vigil replay <file.csv>`: NAB-format results for a recording or a NAB data file.
fn replay(args: &[String]) -> ExitCode {
    finish("replay", replay_result(args))
}

fn replay_result(args: &[String]) -> Result<(), Failure> {
    let args = replay_args(args)?;
    let input = args.input.as_deref().unwrap_or_default();
    let table = read_table(input)?;
    let model = match &args.model {
        None => Model::embedded(),
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|error| {
                Failure(format!("invalid --model {path:?}: cannot read: {error}"), EXIT_USAGE)
            })?;
            Model::load(&bytes)
        }
    }
    .map_err(|error| {
        Failure(
            format!("invalid --model {:?}: {error}", args.model.as_deref().unwrap_or("embedded")),
            EXIT_USAGE,
        )
    })?;
    let windows = match &args.windows {
        None => Vec::new(),
        Some(path) => {
            let json = std::fs::read_to_string(path)
                .map_err(|error| Failure(format!("cannot read {path}: {error}"), EXIT_NO_INPUT))?;
            let key = args.key.clone().unwrap_or_else(|| default_key(input));
            replay::windows(&json, &key).map_err(|error| data_failure(path, &error))?
        }
    };
    let calibration = replay::calibration_for(&table, args.calibration);
    let mut out: Box<dyn std::io::Write> = match &args.out {
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|error| Failure(format!("cannot create {path}: {error}"), EXIT_CANNOT_CREATE))?,
        )),
    };
    let summary = replay::replay(&table, model, calibration, &windows, &mut out).and_then(|summary| {
        out.flush()?;
        Ok(summary)
    });
    let summary = match summary {
        Ok(summary) => summary,
        Err(ReplayError::Write(error)) => return write_failure(&error),
        Err(ReplayError::Model(message)) => {
            return Err(Failure(format!("the model failed to run: {message}"), EXIT_SOFTWARE));
        }
    };
    let threshold =
        summary.threshold.map_or("none (too few rows to calibrate)".to_string(), |t| format!("{t}"));
    eprintln!(
        "vigil replay: {input}: {} rows, {} scored, threshold {threshold} after {} calibration scores, {} anomalous rows",
        summary.rows, summary.scored, summary.calibration.ticks, summary.anomalous
    );
    Ok(())
}

/// The key of a NAB data file in the windows file: its folder and name, `<category>/<file>`.
fn default_key(path: &str) -> String {
    let path = Path::new(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match path.parent().and_then(Path::file_name) {
        Some(category) => format!("{}/{name}", category.to_string_lossy()),
        None => name,
    }
}

fn usage() -> String {
    let mut text = format!(
        "vigil {} — takes an ECS task out of its load balancer before it fails\n\n\
         Usage:\n  vigil            run the agent (configured by environment variables)\n  \
         vigil probe      exit 0 if /health answers 200 within 2 s, else 1\n  \
         vigil vectors <recording.csv>\n                   \
         print the model's input vectors of a VIGIL_RECORD file (or a NAB file):\n                   \
         a header, then <unix_ms>,v0,...,v63 for each tick once 8 ticks are in the window\n  \
         vigil replay <file.csv> [--out FILE] [--model FILE] [--windows FILE [--key KEY]] [--calibration N]\n                   \
         score a VIGIL_RECORD file or a NAB timestamp,value file offline with the agent's model,\n                   \
         writing timestamp,value,anomaly_score,label (NAB's results format; anomaly_score in [0, 1]);\n                   \
         --model: an .nnef.tgz instead of the embedded model; --windows: NAB's combined_windows.json,\n                   \
         label 1 inside the windows of KEY (default: <folder>/<file> of the input); --calibration:\n                   \
         scores the threshold is calibrated from (default: NAB's probationary period, or 300)\n  \
         vigil --version  print the version\n\nEndpoints: /health /live /metrics /status\n\nEnvironment:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, default, meaning) in config::VARIABLES {
        text.push_str(&format!("  {name:<32} {meaning} (default: {default})\n"));
    }
    text
}
