//! The task init: PID 1 of an emulated task's PID namespace, inside the task's network
//! namespace. It starts the containers (the app, and the sidecar under test) in their cgroups
//! with the task's file limit, restarts the app the way an ECS restart policy does, serves the
//! metadata emulator, and logs every lifecycle event as one JSON line for the harness.
//!
//! Endpoints on `0.0.0.0:<tmds port>` of the task's namespace: `/v4/<id>`, `/v4/<id>/task`,
//! `/v4/<id>/stats`, `/v4/<id>/task/stats` (the metadata service), and for the harness
//! `GET /vgf/state`, `POST /vgf/kill` (SIGKILL the app, the FIS `task-kill-process` action) and
//! `POST /vgf/kill-sidecar` (SIGKILL the sidecar under test).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::cgroup::TaskCgroups;
use crate::http::{self, Body};
use crate::restart::{self, Next, RestartPolicy, Role};
use crate::sys::unix_now;
use crate::tmds::{self, ContainerInfo, ContainerReading, HostReading, ServiceIdentity, TaskInfo};

/// One container of the task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// `app` or `sidecar`: also the name of its cgroup.
    pub name: String,
    pub image: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log_path: PathBuf,
}

/// Everything the init needs, written by the harness as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitSpec {
    pub task_id: String,
    /// The cluster, task definition and service every task of the run shares.
    pub service: ServiceIdentity,
    pub availability_zone: String,
    pub address: String,
    pub memory_mib: u64,
    pub cpu_vcpu: f64,
    pub cgroups: TaskCgroups,
    pub nofile: u64,
    pub tmds_port: u16,
    pub tmds_refresh_ms: u64,
    pub restart_policy: bool,
    /// Whether the sidecar has a restart policy too (the same attempt period and delay), as the
    /// shipped task definition gives vigil.
    #[serde(default)]
    pub sidecar_restart_policy: bool,
    pub restart_attempt_period_s: f64,
    pub restart_delay_ms: u64,
    pub stop_timeout_s: f64,
    pub events_path: PathBuf,
    /// The task's ephemeral storage: a folder, and its reservation in MiB.
    #[serde(default)]
    pub disk_dir: Option<PathBuf>,
    #[serde(default)]
    pub ephemeral_mib: u64,
    pub app: ContainerSpec,
    pub sidecar: Option<ContainerSpec>,
}

impl InitSpec {
    /// The Docker id of a container: `<task id>-<digits>`, as on Fargate.
    pub fn docker_id(task_id: &str, container: &str) -> String {
        let digits = if container == "app" { 1001 } else { 1002 };
        format!("{task_id}-{digits}")
    }
}

/// One line of the event log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitEvent {
    /// Unix seconds.
    pub t: f64,
    /// `start`, `exit`, `task_stopped`.
    pub event: String,
    pub container: String,
    #[serde(default)]
    pub pid: Option<u32>,
    /// The exit status as a shell shows it (128 + signal for a killed process).
    #[serde(default)]
    pub code: Option<i32>,
    /// Whether the task's OOM kill count rose with this exit.
    #[serde(default)]
    pub oom: bool,
    #[serde(default)]
    pub restart_count: u32,
}

struct Shared {
    task: TaskInfo,
    app: ContainerInfo,
    sidecar: Option<ContainerInfo>,
    app_pid: Option<u32>,
    sidecar_pid: Option<u32>,
    /// The cached `/task/stats` document, refreshed every `tmds_refresh_ms`.
    stats: Value,
}

type State = Arc<Mutex<Shared>>;

/// Runs the task until its essential container stops for good or SIGTERM arrives; returns the
/// process exit code.
pub async fn run(spec: InitSpec) -> i32 {
    let state = Arc::new(Mutex::new(initial_state(&spec)));
    let mut log = match OpenOptions::new().create(true).append(true).open(&spec.events_path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("task init: cannot open the event log: {e}");
            return 70;
        }
    };
    match tokio::net::TcpListener::bind(("0.0.0.0", spec.tmds_port)).await {
        Ok(listener) => {
            let served = Arc::clone(&state);
            tokio::spawn(http::serve(listener, move |request| handle(Arc::clone(&served), request)));
        }
        Err(e) => {
            eprintln!("task init: cannot serve metadata on port {}: {e}", spec.tmds_port);
            return 71;
        }
    }
    tokio::spawn(refresh_stats(spec.clone(), Arc::clone(&state)));
    supervise(&spec, &state, &mut log).await
}

fn initial_state(spec: &InitSpec) -> Shared {
    let container = |c: &ContainerSpec, restart: bool| ContainerInfo {
        name: c.name.clone(),
        image: c.image.clone(),
        docker_id: InitSpec::docker_id(&spec.task_id, &c.name),
        running: false,
        started_at: None,
        finished_at: None,
        exit_code: None,
        restart_count: restart.then_some(0),
    };
    Shared {
        task: TaskInfo {
            task_id: spec.task_id.clone(),
            service: spec.service.clone(),
            availability_zone: spec.availability_zone.clone(),
            cpu_vcpu: spec.cpu_vcpu,
            memory_mib: spec.memory_mib,
            address: spec.address.clone(),
            created_at: unix_now(),
            storage_utilized_mib: IMAGE_MIB,
            storage_reserved_mib: spec.ephemeral_mib,
        },
        app: container(&spec.app, spec.restart_policy),
        sidecar: spec.sidecar.as_ref().map(|c| container(c, spec.sidecar_restart_policy)),
        app_pid: None,
        sidecar_pid: None,
        stats: json!({}),
    }
}

fn record(log: &mut File, event: &InitEvent) {
    if let Ok(line) = serde_json::to_string(event) {
        let _ = writeln!(log, "{line}");
    }
}

/// Starts, watches and restarts the containers.
async fn supervise(spec: &InitSpec, state: &State, log: &mut File) -> i32 {
    let Ok(mut sigterm) = signal(SignalKind::terminate()) else {
        return 70;
    };
    let mut app = match start(spec, &spec.app, state, log, 0) {
        Some(child) => child,
        None => return 72,
    };
    let mut sidecar = spec.sidecar.as_ref().and_then(|c| start(spec, c, state, log, 0));
    let policy = RestartPolicy {
        enabled: spec.restart_policy,
        attempt_period_s: spec.restart_attempt_period_s,
        delay: Duration::from_millis(spec.restart_delay_ms),
    };
    let sidecar_policy = RestartPolicy { enabled: spec.sidecar_restart_policy, ..policy };
    let mut restarts = 0u32;
    let mut sidecar_restarts = 0u32;
    let mut app_started = unix_now();
    let mut sidecar_started = app_started;
    loop {
        tokio::select! {
            status = app.wait() => {
                let ran = unix_now() - app_started;
                exited(spec, &spec.app, state, log, status, restarts);
                let Next::Restart { delay } = restart::after_exit(Role::App, &policy, ran) else {
                    break;
                };
                tokio::time::sleep(delay).await;
                restarts += 1;
                app_started = unix_now();
                match start(spec, &spec.app, state, log, restarts) {
                    Some(child) => app = child,
                    None => break,
                }
            }
            status = wait_optional(&mut sidecar) => {
                let Some(container) = &spec.sidecar else { continue };
                exited(spec, container, state, log, status, sidecar_restarts);
                sidecar = None;
                match restart::after_exit(Role::Sidecar, &sidecar_policy, unix_now() - sidecar_started) {
                    Next::StopTask => break,
                    Next::Continue => {}
                    Next::Restart { delay } => {
                        tokio::time::sleep(delay).await;
                        sidecar_restarts += 1;
                        sidecar_started = unix_now();
                        sidecar = start(spec, container, state, log, sidecar_restarts);
                    }
                }
            }
            _ = sigterm.recv() => {
                stop(&mut app, spec.stop_timeout_s).await;
                break;
            }
        }
    }
    if let Some(child) = sidecar.as_mut() {
        stop(child, spec.stop_timeout_s).await;
    }
    record(
        log,
        &InitEvent {
            t: unix_now(),
            event: "task_stopped".into(),
            container: String::new(),
            pid: None,
            code: None,
            oom: false,
            restart_count: restarts,
        },
    );
    0
}

async fn wait_optional(child: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

/// SIGTERM, then SIGKILL after `timeout_s`, as ECS stops a container.
async fn stop(child: &mut Child, timeout_s: f64) {
    if let Some(pid) = child.id() {
        crate::sys::signal_pid(pid, libc::SIGTERM);
    }
    let waited = tokio::time::timeout(Duration::from_secs_f64(timeout_s), child.wait()).await;
    if waited.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// Starts one container in its cgroups with the task's file limit.
fn start(
    spec: &InitSpec,
    container: &ContainerSpec,
    state: &State,
    log: &mut File,
    restarts: u32,
) -> Option<Child> {
    let (program, args) = container.argv.split_first()?;
    // Opened here, written in the child between fork and exec: only async-signal-safe calls
    // may run there.
    let procs: Vec<File> = spec
        .cgroups
        .procs_files(&container.name)
        .iter()
        .filter_map(|path| OpenOptions::new().write(true).open(path).ok())
        .collect();
    let output = OpenOptions::new().create(true).append(true).open(&container.log_path).ok()?;
    let errors = output.try_clone().ok()?;
    let nofile = spec.nofile;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(container.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors);
    let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure calls only write(2) and setrlimit(2), both async-signal-safe, on
    // descriptors and data prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            for fd in &fds {
                libc::write(*fd, b"0\n".as_ptr().cast(), 2);
            }
            let limit = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("task init: cannot start {}: {e}", container.name);
            return None;
        }
    };
    drop(procs);
    let pid = child.id();
    let now = unix_now();
    {
        let mut shared = state.lock().expect("state lock");
        let info = if container.name == "app" {
            shared.app_pid = pid;
            &mut shared.app
        } else {
            shared.sidecar_pid = pid;
            shared.sidecar.as_mut()?
        };
        info.running = true;
        // Like the ECS agent, keep the first start time across restarts.
        info.started_at.get_or_insert(now);
        if let Some(count) = info.restart_count.as_mut() {
            *count = restarts;
        }
    }
    record(
        log,
        &InitEvent {
            t: now,
            event: "start".into(),
            container: container.name.clone(),
            pid,
            code: None,
            oom: false,
            restart_count: restarts,
        },
    );
    Some(child)
}

/// Records a container's exit.
fn exited(
    spec: &InitSpec,
    container: &ContainerSpec,
    state: &State,
    log: &mut File,
    status: std::io::Result<ExitStatus>,
    restarts: u32,
) {
    let code = status.ok().map(|s| restart::shell_code(s.code(), s.signal()));
    // The counter is read only at a SIGKILL, so each OOM kill is matched to one exit.
    let oom = code == Some(137) && {
        let (before, now) = oom_kills(spec);
        restart::oom_killed(code, before, now)
    };
    let now = unix_now();
    {
        let mut shared = state.lock().expect("state lock");
        if container.name == "app" {
            shared.app_pid = None;
            shared.app.running = false;
            shared.app.exit_code = code;
            shared.app.finished_at = Some(now);
        } else {
            shared.sidecar_pid = None;
        }
        if container.name != "app"
            && let Some(info) = shared.sidecar.as_mut()
        {
            info.running = false;
            info.exit_code = code;
            info.finished_at = Some(now);
        }
    }
    record(
        log,
        &InitEvent {
            t: now,
            event: "exit".into(),
            container: container.name.clone(),
            pid: None,
            code,
            oom,
            restart_count: restarts,
        },
    );
}

/// Ephemeral storage the image layers take before the app writes anything, MiB.
pub const IMAGE_MIB: u64 = 40;

/// Bytes of the regular files directly in `dir`.
fn folder_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

static OOM_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The task's OOM kill count at the previous read and now.
fn oom_kills(spec: &InitSpec) -> (u64, u64) {
    let now = spec.cgroups.oom_kills();
    let before = OOM_SEEN.swap(now, std::sync::atomic::Ordering::SeqCst);
    (before, now)
}

/// Refreshes the cached stats every `tmds_refresh_ms`, like the agent's stats engine.
async fn refresh_stats(spec: InitSpec, state: State) {
    let period = Duration::from_millis(spec.tmds_refresh_ms.max(100));
    let mut previous: Vec<(String, ContainerReading)> = Vec::new();
    let mut previous_host: Option<HostReading> = None;
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let host = tmds::read_host(unix_now());
        let containers: Vec<ContainerInfo> = {
            let shared = state.lock().expect("state lock");
            std::iter::once(shared.app.clone()).chain(shared.sidecar.clone()).collect()
        };
        let mut document = serde_json::Map::new();
        let mut readings = Vec::new();
        for container in &containers {
            if !container.running {
                document.insert(container.docker_id.clone(), Value::Null);
                continue;
            }
            let reading = tmds::read_container(
                &spec.cgroups.memory.join(&container.name),
                &spec.cgroups.cpuacct.join(&container.name),
                &spec.cgroups.cpu,
            );
            let before = previous
                .iter()
                .find(|(name, _)| name == &container.name)
                .map(|(_, r)| r)
                .zip(previous_host.as_ref());
            let stats = tmds::container_stats(container, (&reading, &host), before);
            document.insert(container.docker_id.clone(), stats);
            readings.push((container.name.clone(), reading));
        }
        let utilized = IMAGE_MIB + spec.disk_dir.as_deref().map_or(0, folder_bytes) / (1024 * 1024);
        {
            let mut shared = state.lock().expect("state lock");
            shared.stats = Value::Object(document);
            shared.task.storage_utilized_mib = utilized;
        }
        previous = readings;
        previous_host = Some(host);
    }
}

async fn handle(state: State, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    if (path == "/vgf/kill" || path == "/vgf/kill-sidecar") && request.method() == Method::POST {
        let (pid, name) = {
            let shared = state.lock().expect("state lock");
            if path == "/vgf/kill" { (shared.app_pid, "app") } else { (shared.sidecar_pid, "sidecar") }
        };
        return match pid {
            Some(pid) => {
                crate::sys::signal_pid(pid, libc::SIGKILL);
                http::text(StatusCode::OK, format!("killed {name} {pid}\n"))
            }
            None => http::text(StatusCode::CONFLICT, format!("{name} not running\n")),
        };
    }
    let shared = state.lock().expect("state lock");
    let containers: Vec<ContainerInfo> =
        std::iter::once(shared.app.clone()).chain(shared.sidecar.clone()).collect();
    let own = shared.sidecar.clone().unwrap_or_else(|| shared.app.clone());
    let body = if path == "/vgf/state" {
        json!({ "app_pid": shared.app_pid, "app": tmds::container_document(&shared.task, &shared.app) })
    } else if !path.starts_with("/v4/") {
        return http::text(StatusCode::NOT_FOUND, "not found\n");
    } else if path.ends_with("/task/stats") {
        shared.stats.clone()
    } else if path.ends_with("/task") {
        tmds::task_document(&shared.task, &containers)
    } else if path.ends_with("/stats") {
        shared.stats.get(&own.docker_id).cloned().unwrap_or(Value::Null)
    } else {
        tmds::container_document(&shared.task, &own)
    };
    http::json(StatusCode::OK, body.to_string())
}
