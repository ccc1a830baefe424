//! vigil-fault: the fault suite's command line.
//!
//! `run <scenario file or folder>` runs every scenario in every arm and profile asked for and
//! writes `summary.json` and `summary.md`; `--check` makes unmet expectations fail the command.
//! `cleanup` removes what a killed run left. `task-init` and `threshold` are the programs the
//! harness starts inside each emulated task. Everything but `--help` needs root.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use vigil_fault::arm::{self, Arm, RunSetup};
use vigil_fault::cgroup::Parents;
use vigil_fault::haproxy::Profile;
use vigil_fault::report::{self, ArmSummary, Compared};
use vigil_fault::{haproxy, init, net, scenario, sys, threshold};

const USAGE: &str = "\
usage:
  vigil-fault run <scenario.toml | folder> [--arms baseline,threshold,vigil]
                  [--profiles fast,alb] [--out DIR] [--vigil PATH]
                  [--vigil-interval 1s] [--record DIR] [--check]
  vigil-fault cleanup
needs root: it creates network namespaces, cgroups and veths (all named vgf-*).
";

const LOCK_PATH: &str = "/run/vgf-fault.lock";

/// Options of `run`.
#[derive(Debug)]
struct RunOptions {
    path: PathBuf,
    arms: Vec<Arm>,
    profiles: Vec<Profile>,
    out: PathBuf,
    vigil: Option<PathBuf>,
    vigil_interval: String,
    record: Option<PathBuf>,
    check: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => with_root(|| run(&args[1..])),
        Some("cleanup") => with_root(cleanup),
        Some("task-init") => task_init(&args[1..]),
        Some("threshold") => threshold_sidecar(&args[1..]),
        Some("burn") => burn(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprint!("{USAGE}");
            Ok(ExitCode::from(64))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil-fault: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn with_root(body: impl FnOnce() -> Result<ExitCode>) -> Result<ExitCode> {
    if !sys::is_root() {
        eprintln!(
            "vigil-fault: this command must run as root (it creates network namespaces, \
             cgroups and veths); try: sudo tests/fault/run.sh ..."
        );
        return Ok(ExitCode::from(77));
    }
    body()
}

fn parse_run_options(args: &[String]) -> Result<RunOptions> {
    let mut options = RunOptions {
        path: PathBuf::new(),
        arms: vec![Arm::Baseline, Arm::Threshold, Arm::Vigil],
        profiles: vec![Profile::Fast],
        out: PathBuf::from("results"),
        vigil: None,
        vigil_interval: "1s".into(),
        record: None,
        check: false,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--arms" => {
                options.arms = value()?
                    .split(',')
                    .map(|w| Arm::parse(w).with_context(|| format!("unknown arm {w:?}")))
                    .collect::<Result<_>>()?;
            }
            "--profiles" => {
                options.profiles = value()?
                    .split(',')
                    .map(|w| Profile::parse(w).with_context(|| format!("unknown profile {w:?}")))
                    .collect::<Result<_>>()?;
            }
            "--out" => options.out = PathBuf::from(value()?),
            "--vigil" => options.vigil = Some(PathBuf::from(value()?)),
            "--vigil-interval" => options.vigil_interval = value()?.clone(),
            "--record" => options.record = Some(PathBuf::from(value()?)),
            "--check" => options.check = true,
            path if !path.starts_with('-') && options.path.as_os_str().is_empty() => {
                options.path = PathBuf::from(path);
            }
            other => bail!("unexpected argument {other:?}\n{USAGE}"),
        }
    }
    if options.path.as_os_str().is_empty() {
        bail!("run needs a scenario file or folder\n{USAGE}");
    }
    Ok(options)
}

/// The vigil binary: `--vigil`, else `VIGIL_FAULT_VIGIL`, else `vigil` beside this program.
fn vigil_binary(options: &RunOptions, harness: &Path) -> Option<PathBuf> {
    options
        .vigil
        .clone()
        .or_else(|| std::env::var_os("VIGIL_FAULT_VIGIL").map(PathBuf::from))
        .or_else(|| harness.parent().map(|dir| dir.join("vigil")))
        .filter(|path| path.is_file())
}

fn run(args: &[String]) -> Result<ExitCode> {
    let options = parse_run_options(args)?;
    let scenarios = scenario::load(&options.path)?;
    let harness = std::env::current_exe().context("cannot find this program's path")?;
    let demo_app = harness.with_file_name("demo-app");
    if !demo_app.is_file() {
        bail!("{} not found: build it with `cargo build -p vigil-fault --release`", demo_app.display());
    }
    let _lock = sys::lock_exclusive(Path::new(LOCK_PATH))?;
    let parents = Parents::discover()?;
    let stale = sys::remove_stale(&parents.all()) + haproxy::remove_stale_sockets(Path::new("/tmp"));
    if stale > 0 {
        eprintln!("vigil-fault: removed {stale} leftovers of an earlier run");
    }
    std::panic::set_hook(Box::new(|info| {
        eprintln!("vigil-fault: panic: {info}; cleaning up");
        sys::cleanup_all();
    }));
    // Absolute: HAProxy, Prometheus and the tasks read these paths from other working directories.
    let root = std::path::absolute(&options.out).context("--out: cannot resolve the path")?;
    let out = root.join(format!("run-{}", sys::unix_now() as u64));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let record = match &options.record {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Some(std::fs::canonicalize(dir)?)
        }
        None => None,
    };
    let setup = RunSetup {
        record,
        vigil: vigil_binary(&options, &harness),
        harness,
        demo_app,
        vigil_interval: options.vigil_interval.clone(),
        parents,
    };
    net::create_harness().context("cannot create the harness namespace")?;
    sys::enter_netns(net::HARNESS_NS)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let summaries = runtime.block_on(async {
        tokio::select! {
            summaries = run_all(&setup, &scenarios, &options, &out) => Some(summaries),
            _ = interrupted() => None,
        }
    });
    sys::cleanup_all();
    let Some(summaries) = summaries else {
        eprintln!("vigil-fault: interrupted; everything the run created was removed");
        return Ok(ExitCode::from(130));
    };
    write_results(&out, &summaries)?;
    let failed: Vec<&ArmSummary> =
        summaries.iter().filter(|s| s.status == "error" || !s.failed_checks.is_empty()).collect();
    if options.check && !failed.is_empty() {
        eprintln!("vigil-fault: {} arm(s) failed their checks", failed.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

async fn run_all(
    setup: &RunSetup,
    scenarios: &[scenario::Scenario],
    options: &RunOptions,
    out: &Path,
) -> Vec<ArmSummary> {
    let mut summaries = Vec::new();
    for scenario in scenarios {
        for profile in &options.profiles {
            for arm in &options.arms {
                let dir = out.join(&scenario.name).join(format!("{}-{}", profile.name(), arm.name()));
                eprintln!("vigil-fault: {} / {} / {} ...", scenario.name, profile.name(), arm.name());
                let summary = arm::run(setup, scenario, *arm, *profile, &dir).await;
                arm::prune(&dir);
                eprintln!(
                    "vigil-fault:   {}: {} requests, {} client errors, {} drains ({} false){}",
                    summary.status,
                    summary.requests,
                    summary.client_errors,
                    summary.drains,
                    summary.false_drains,
                    if summary.note.is_empty() { String::new() } else { format!(" — {}", summary.note) }
                );
                summaries.push(summary);
            }
        }
        for png in vigil_fault::plot::draw_scenario(&out.join(&scenario.name), &scenario.name) {
            eprintln!("vigil-fault:   timeline {}", png.display());
        }
        if scenario.expect.vigil_fewer_errors_than_baseline {
            report::check_vigil_beats_baseline(&mut summaries, &scenario.name, Compared::ClientErrors);
        }
        if scenario.expect.vigil_fewer_errors_after_pattern_than_baseline {
            report::check_vigil_beats_baseline(&mut summaries, &scenario.name, Compared::ErrorsAfterPattern);
        }
        // Keep the results so far, in case the run is interrupted.
        let _ = std::fs::write(
            out.join("summary.json"),
            serde_json::to_string_pretty(&summaries).unwrap_or_default(),
        );
        let _ = std::fs::write(out.join("summary.md"), report::markdown(&summaries));
    }
    summaries
}

fn write_results(out: &Path, summaries: &[ArmSummary]) -> Result<()> {
    let table = report::markdown(summaries);
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(summaries)?)?;
    std::fs::write(out.join("summary.md"), &table)?;
    println!("{table}");
    println!("results: {}", out.display());
    Ok(())
}

fn cleanup() -> Result<ExitCode> {
    let _lock = sys::lock_exclusive(Path::new(LOCK_PATH))?;
    let parents = Parents::discover()?;
    let removed = sys::remove_stale(&parents.all());
    let sockets = haproxy::remove_stale_sockets(Path::new("/tmp"));
    println!("removed {removed} leftovers and {sockets} stale haproxy stats sockets");
    Ok(ExitCode::SUCCESS)
}

fn task_init(args: &[String]) -> Result<ExitCode> {
    let path = args.first().context("task-init needs the spec file")?;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let spec: init::InitSpec = serde_json::from_str(&text).context("bad init spec")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let code = runtime.block_on(init::run(spec));
    Ok(ExitCode::from(code as u8))
}

/// `burn <threads> <seconds>`: the noisy neighbour, busy threads outside every task.
fn burn(args: &[String]) -> Result<ExitCode> {
    let threads: u32 = args.first().context("burn needs a thread count")?.parse()?;
    let seconds: u64 = args.get(1).context("burn needs seconds")?.parse()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds.min(3600));
    let workers: Vec<_> = (0..threads.clamp(1, 8))
        .map(|i| {
            std::thread::spawn(move || {
                let mut x = u64::from(i);
                while std::time::Instant::now() < deadline {
                    for _ in 0..100_000 {
                        x = vigil_fault::demo::splitmix64(x);
                    }
                    std::hint::black_box(x);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(ExitCode::SUCCESS)
}

fn threshold_sidecar(args: &[String]) -> Result<ExitCode> {
    let mut config = threshold::ThresholdConfig {
        listen: "0.0.0.0:9797".into(),
        memory_cgroup: PathBuf::new(),
        ratio: 0.9,
        app_health_url: "http://127.0.0.1:8080/health".into(),
        interval: std::time::Duration::from_millis(500),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = rest.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--listen" => config.listen = value.clone(),
            "--memory-cgroup" => config.memory_cgroup = PathBuf::from(value),
            "--ratio" => config.ratio = value.parse().context("--ratio is not a number")?,
            "--app-health" => config.app_health_url = value.clone(),
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(threshold::run(config))?;
    Ok(ExitCode::SUCCESS)
}
