//! An emulated task seen from the harness: launch (namespace, cgroups, the task init in a new
//! PID namespace), readiness, stop, and the init's event log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cgroup::{Limits, Parents, TaskCgroups};
use crate::init::{ContainerSpec, InitEvent, InitSpec};
use crate::net;
use crate::scenario::TaskShape;
use crate::sys::{self, SysError};
use crate::tmds::ServiceIdentity;

/// The port the app serves on inside every task.
pub const APP_PORT: u16 = 8080;
/// The sidecar's health port.
pub const SIDECAR_PORT: u16 = 9797;
/// The metadata emulator's port inside every task.
pub const TMDS_PORT: u16 = 51679;

/// The availability zones tasks are spread over: initial task `i` runs in zone `i mod 3`, and a
/// replacement in its predecessor's zone (ECS spreads a service's tasks by zone).
pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

/// The zone of initial task `index`.
pub fn initial_zone(index: u32) -> usize {
    index as usize % ZONES.len()
}

/// The one service every task of a run belongs to: the same cluster, task definition family and
/// revision (and service) in every task's metadata; only the task ARN and the zone differ.
pub fn service_identity() -> ServiceIdentity {
    ServiceIdentity {
        region: "us-east-1".into(),
        account: "000000000000".into(),
        cluster: "vgf-cluster".into(),
        family: "vgf-demo".into(),
        revision: "1".into(),
        // The emulated tasks are Fargate tasks, whose metadata has no `ServiceName`.
        service_name: None,
    }
}

/// Why a task could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot start the task init: {0}")]
    Spawn(std::io::Error),
}

/// Which program watches the task's health port.
#[derive(Debug, Clone)]
pub enum Sidecar {
    /// No sidecar: the load balancer checks the app itself.
    None,
    /// The harness's memory-threshold endpoint.
    Threshold { harness: PathBuf, ratio: f64 },
    /// The program under test, configured by environment.
    Vigil { binary: PathBuf, env: Vec<(String, String)> },
}

/// What a launch needs besides the slot.
#[derive(Debug, Clone)]
pub struct LaunchPlan {
    pub harness: PathBuf,
    pub demo_app: PathBuf,
    pub parents: Parents,
    pub shape: TaskShape,
    pub seed: u64,
    pub sidecar: Sidecar,
    pub dir: PathBuf,
    /// When set, vigil records its model channels to `<record>-tN.csv`.
    pub record: Option<PathBuf>,
}

/// A running task.
#[derive(Debug)]
pub struct TaskHandle {
    pub slot: u32,
    pub task_id: String,
    pub address: String,
    pub cgroups: TaskCgroups,
    pub events_path: PathBuf,
    /// The task's work folder (logs, init spec, ephemeral storage).
    pub dir: PathBuf,
    child: Child,
    pub exited: bool,
}

/// Launches a task in `slot` in zone [`ZONES`]`[zone]`; `fault_env` goes into the app's
/// `DEMO_FAULT`.
pub fn launch(
    plan: &LaunchPlan,
    slot: u32,
    zone: usize,
    fault_env: Option<&str>,
) -> Result<TaskHandle, TaskError> {
    let name = net::create_task(slot)?;
    let limits = Limits {
        memory_bytes: plan.shape.memory_mib * 1024 * 1024,
        cpu_vcpu: plan.shape.cpu_vcpu,
        pids_max: plan.shape.pids_max,
    };
    let cgroups = TaskCgroups::create(&plan.parents, &name, limits)?;
    let dir = plan.dir.join(format!("t{slot}"));
    std::fs::create_dir_all(&dir).map_err(|source| TaskError::Write { path: dir.clone(), source })?;
    let task_id = task_id(plan.seed, slot);
    let spec = init_spec(plan, slot, &task_id, zone, &cgroups, &dir, fault_env);
    let spec_path = dir.join("init.json");
    let text = serde_json::to_string_pretty(&spec).expect("the init spec serialises");
    std::fs::write(&spec_path, text)
        .map_err(|source| TaskError::Write { path: spec_path.clone(), source })?;
    let log = std::fs::File::create(dir.join("init.log"))
        .map_err(|source| TaskError::Write { path: dir.join("init.log"), source })?;
    let log_err = log.try_clone().map_err(TaskError::Spawn)?;
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{name}"))
        .args(["--", "unshare", "--pid", "--fork", "--mount-proc"])
        .args(["--kill-child=SIGTERM", "--"])
        .arg(&plan.harness)
        .arg("task-init")
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(TaskError::Spawn)?;
    sys::register_pid(child.id());
    Ok(TaskHandle {
        slot,
        task_id,
        address: net::slot_address(slot),
        cgroups,
        events_path: spec.events_path,
        dir,
        child,
        exited: false,
    })
}

/// A 32-hex-digit task id, like Fargate's, different for every launch.
fn task_id(seed: u64, slot: u32) -> String {
    use crate::demo::splitmix64;
    let now = (sys::unix_now() * 1e6) as u64;
    format!("{:016x}{:016x}", splitmix64(seed ^ u64::from(slot)), splitmix64(now))
}

fn init_spec(
    plan: &LaunchPlan,
    slot: u32,
    task_id: &str,
    zone: usize,
    cgroups: &TaskCgroups,
    dir: &Path,
    fault_env: Option<&str>,
) -> InitSpec {
    let shape = &plan.shape;
    let mut app_env = vec![
        ("DEMO_LISTEN".to_owned(), format!("0.0.0.0:{APP_PORT}")),
        ("DEMO_SEED".to_owned(), (plan.seed + u64::from(slot)).to_string()),
        ("DEMO_WORKERS".to_owned(), shape.app_workers.to_string()),
        ("DEMO_MEMORY_LIMIT_BYTES".to_owned(), (shape.memory_mib * 1024 * 1024).to_string()),
        (
            "DEMO_MEMORY_USAGE_FILE".to_owned(),
            cgroups.memory.join("memory.usage_in_bytes").display().to_string(),
        ),
    ];
    if let Some(fault) = fault_env {
        app_env.push(("DEMO_FAULT".to_owned(), fault.to_owned()));
    }
    let disk_dir = dir.join("disk");
    let _ = std::fs::create_dir_all(&disk_dir);
    let disk_limit = shape.ephemeral_mib.saturating_sub(crate::init::IMAGE_MIB) * 1024 * 1024;
    app_env.push(("DEMO_DISK_DIR".to_owned(), disk_dir.display().to_string()));
    app_env.push(("DEMO_DISK_LIMIT_BYTES".to_owned(), disk_limit.to_string()));
    let app = ContainerSpec {
        name: "app".into(),
        image: "vgf/demo-app:latest".into(),
        argv: vec![plan.demo_app.display().to_string()],
        env: app_env,
        log_path: dir.join("app.log"),
    };
    let tmds_uri = format!("http://127.0.0.1:{TMDS_PORT}/v4/{}", InitSpec::docker_id(task_id, "sidecar"));
    let sidecar = match &plan.sidecar {
        Sidecar::None => None,
        Sidecar::Threshold { harness, ratio } => Some(ContainerSpec {
            name: "sidecar".into(),
            image: "vgf/threshold:latest".into(),
            argv: vec![
                harness.display().to_string(),
                "threshold".into(),
                "--listen".into(),
                format!("0.0.0.0:{SIDECAR_PORT}"),
                "--memory-cgroup".into(),
                cgroups.memory.display().to_string(),
                "--ratio".into(),
                ratio.to_string(),
                "--app-health".into(),
                format!("http://127.0.0.1:{APP_PORT}/health"),
            ],
            env: vec![],
            log_path: dir.join("sidecar.log"),
        }),
        Sidecar::Vigil { binary, env } => {
            let mut env = env.clone();
            env.push(("ECS_CONTAINER_METADATA_URI_V4".into(), tmds_uri));
            if let Some(prefix) = &plan.record {
                env.push(("VIGIL_RECORD".into(), format!("{}-t{slot}.csv", prefix.display())));
            }
            Some(ContainerSpec {
                name: "sidecar".into(),
                image: "vgf/vigil:latest".into(),
                argv: vec![binary.display().to_string()],
                env,
                log_path: dir.join("sidecar.log"),
            })
        }
    };
    InitSpec {
        task_id: task_id.to_owned(),
        service: service_identity(),
        availability_zone: ZONES[zone % ZONES.len()].into(),
        address: net::slot_address(slot),
        memory_mib: shape.memory_mib,
        cpu_vcpu: shape.cpu_vcpu,
        cgroups: cgroups.clone(),
        nofile: shape.nofile,
        tmds_port: TMDS_PORT,
        tmds_refresh_ms: shape.tmds_refresh_ms,
        restart_policy: shape.restart_policy,
        sidecar_restart_policy: true,
        restart_attempt_period_s: shape.restart_attempt_period_s,
        restart_delay_ms: shape.restart_delay_ms,
        stop_timeout_s: shape.stop_timeout_s,
        events_path: dir.join("events.jsonl"),
        disk_dir: Some(disk_dir),
        ephemeral_mib: shape.ephemeral_mib,
        app,
        sidecar,
    }
}

impl TaskHandle {
    /// Whether the task init has ended (the task is STOPPED); reaps it.
    pub fn poll_exited(&mut self) -> bool {
        if !self.exited && matches!(self.child.try_wait(), Ok(Some(_))) {
            self.exited = true;
            sys::forget_pid(self.child.id());
        }
        self.exited
    }

    /// Stops the task as ECS does (SIGTERM, SIGKILL after the stop timeout) and removes its
    /// cgroups and namespace. Blocking; bounded by `stop_timeout + 5 s`.
    pub fn stop(&mut self, stop_timeout: Duration) {
        if !self.poll_exited() {
            // unshare ignores SIGTERM while it waits: signal the task init, its only child.
            match self.init_pid() {
                Some(init) => sys::signal_pid(init, libc::SIGTERM),
                None => sys::signal_pid(self.child.id(), libc::SIGTERM),
            }
            let deadline = std::time::Instant::now() + stop_timeout + Duration::from_secs(2);
            while !self.poll_exited() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if !self.poll_exited() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.exited = true;
                sys::forget_pid(self.child.id());
            }
        }
        self.cgroups.remove();
        net::delete_task(self.slot);
        // The disk fill's data is of no later use and may be large.
        let _ = std::fs::remove_dir_all(self.dir.join("disk"));
    }

    /// The task init's PID (in the harness's PID namespace): the child of the `unshare` the
    /// harness started.
    pub fn init_pid(&self) -> Option<u32> {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The init's event log so far.
    pub fn events(&self) -> Vec<InitEvent> {
        read_events(&self.events_path)
    }
}

/// Starts `stress-ng` I/O workers (`--hdd`, 16 MiB each, on the task's ephemeral storage) inside
/// the app container's cgroups, for at most `seconds`; returns its PID (registered for cleanup).
pub fn spawn_in_app_cgroups(handle: &TaskHandle, workers: u32, seconds: f64) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let procs: Vec<std::fs::File> = handle
        .cgroups
        .procs_files("app")
        .iter()
        .filter_map(|path| std::fs::OpenOptions::new().write(true).open(path).ok())
        .collect();
    let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    let disk = handle.dir.join("disk");
    let mut command = Command::new("stress-ng");
    command
        .args(["--hdd", &workers.max(1).to_string(), "--hdd-bytes", "16M", "--temp-path"])
        .arg(&disk)
        .args(["--timeout", &format!("{}s", seconds.ceil().max(1.0) as u64)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure calls only write(2), async-signal-safe, on descriptors opened before
    // the fork.
    unsafe {
        command.pre_exec(move || {
            for fd in &fds {
                libc::write(*fd, b"0\n".as_ptr().cast(), 2);
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(procs);
    let pid = child.id();
    sys::register_pid(pid);
    // Reaped by `sys::stop_child`; the handle itself is not needed.
    std::mem::forget(child);
    Ok(pid)
}

/// Parses an init event log; unreadable lines are skipped.
pub fn read_events(path: &Path) -> Vec<InitEvent> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_tasks_spread_over_three_zones() {
        let zones: Vec<&str> = (0..5).map(|i| ZONES[initial_zone(i)]).collect();
        assert_eq!(zones, ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1a", "us-east-1b"]);
    }
}
