//! One arm of one scenario: launch the fleet, put it behind HAProxy, run the load, inject the
//! fault, emulate the ECS scheduler (replace a task HAProxy marks down or that stops), then tear
//! everything down and reduce the timeline to an [`ArmSummary`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fault::{FaultKind, FaultSpec};
use crate::haproxy::{self, Haproxy, Profile};
use crate::http;
use crate::load::{self, Outcome};
use crate::net;
use crate::prometheus::Prometheus;
use crate::report::{self, ArmSummary, Context, Event, EventKind};
use crate::scenario::{Bounds, Delivery, Scenario};
use crate::sys::unix_now;
use crate::task::{self, APP_PORT, LaunchPlan, SIDECAR_PORT, Sidecar, TaskHandle};
use crate::watch::{self, TaskSample};

const TICK: Duration = Duration::from_millis(250);
const WARM_UP_LIMIT_S: f64 = 60.0;
const READY_LIMIT_S: f64 = 30.0;

/// The three ways the load balancer learns a task's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    /// HAProxy checks the app's own `/health` on the traffic port.
    Baseline,
    /// HAProxy checks the harness's memory-threshold endpoint.
    Threshold,
    /// HAProxy checks vigil's `/health`.
    Vigil,
}

impl Arm {
    pub fn name(self) -> &'static str {
        match self {
            Arm::Baseline => "baseline",
            Arm::Threshold => "threshold",
            Arm::Vigil => "vigil",
        }
    }

    pub fn parse(word: &str) -> Option<Arm> {
        [Arm::Baseline, Arm::Threshold, Arm::Vigil].into_iter().find(|arm| arm.name() == word)
    }

    fn check_port(self) -> u16 {
        match self {
            Arm::Baseline => APP_PORT,
            Arm::Threshold | Arm::Vigil => SIDECAR_PORT,
        }
    }

    fn bounds(self, scenario: &Scenario) -> [&Bounds; 2] {
        let own = match self {
            Arm::Baseline => &scenario.expect.baseline,
            Arm::Threshold => &scenario.expect.threshold,
            Arm::Vigil => &scenario.expect.vigil,
        };
        [&scenario.expect.all, own]
    }
}

/// What every arm of a run shares.
#[derive(Debug, Clone)]
pub struct RunSetup {
    pub harness: PathBuf,
    pub demo_app: PathBuf,
    pub vigil: Option<PathBuf>,
    pub vigil_interval: String,
    pub parents: crate::cgroup::Parents,
    /// `--record`: every vigil appends its model channels to `<dir>/<scenario>-<profile>-tN.csv`.
    pub record: Option<PathBuf>,
}

/// Where a task is in the scheduler's life cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Launched, waiting for its health port.
    Starting { since: f64 },
    /// Registered with HAProxy, waiting for UP.
    Joining { since: f64 },
    /// Taking traffic.
    Serving,
    /// Marked down or stopped; its replacement is starting.
    Replacing { since: f64 },
    /// Deregistered; stopped after the deregistration delay.
    Draining { since: f64 },
    /// Stop requested.
    Stopped,
}

struct Member {
    slot: u32,
    target: bool,
    handle: Option<TaskHandle>,
    events_path: PathBuf,
    phase: Phase,
    /// The slot of the task that replaces this one.
    replaced_by: Option<u32>,
    up: Option<bool>,
    check_ok: Arc<Mutex<Option<bool>>>,
    prober_stop: Arc<AtomicBool>,
}

struct Fleet {
    members: BTreeMap<u32, Member>,
    next_slot: u32,
    events: Arc<Mutex<Vec<Event>>>,
    stopping: Vec<tokio::task::JoinHandle<()>>,
    /// Per-second task samples for the timeline.
    samples: Arc<Mutex<Vec<TaskSample>>>,
    /// Processes the harness started for a fault or for noise (stress-ng, busy loops).
    extra_pids: Vec<u32>,
}

impl Fleet {
    fn log(&self, slot: u32, kind: EventKind, detail: impl Into<String>) {
        log_event(&self.events, slot, kind, detail.into());
    }

    fn live_addresses(&self) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.phase != Phase::Stopped)
            .map(|m| format!("{}:{SIDECAR_PORT}", net::slot_address(m.slot)))
            .collect()
    }
}

fn log_event(events: &Mutex<Vec<Event>>, slot: u32, kind: EventKind, detail: String) {
    events.lock().expect("events lock").push(Event { t: unix_now(), slot, kind, detail });
}

/// Runs one arm and returns its summary; never leaves anything running behind it.
pub async fn run(
    setup: &RunSetup,
    scenario: &Scenario,
    arm: Arm,
    profile: Profile,
    dir: &Path,
) -> ArmSummary {
    let label = |status: &str, note: String| ArmSummary {
        scenario: scenario.name.clone(),
        arm: arm.name().into(),
        profile: profile.name().into(),
        status: status.into(),
        note,
        ..ArmSummary::default()
    };
    let sidecar = match sidecar_for(setup, arm, scenario) {
        Ok(sidecar) => sidecar,
        Err(why) => return label("skipped", why),
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return label("error", format!("cannot create {}: {e}", dir.display()));
    }
    let plan = LaunchPlan {
        harness: setup.harness.clone(),
        demo_app: setup.demo_app.clone(),
        parents: setup.parents.clone(),
        shape: scenario.tasks.clone(),
        seed: scenario.seed,
        sidecar,
        dir: dir.join("tasks"),
        record: match (&setup.record, arm) {
            (Some(folder), Arm::Vigil) => Some(folder.join(format!("{}-{}", scenario.name, profile.name()))),
            _ => None,
        },
    };
    let mut summary = match drive(scenario, arm, profile, &plan, dir).await {
        Ok(summary) => summary,
        Err(why) => label("error", why),
    };
    summary.scenario = scenario.name.clone();
    summary.arm = arm.name().into();
    summary.profile = profile.name().into();
    if summary.status == "ok" {
        summary.failed_checks =
            arm.bounds(scenario).iter().flat_map(|bounds| report::check(&summary, bounds)).collect();
    }
    let _ =
        std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(&summary).unwrap_or_default());
    summary
}

fn sidecar_for(setup: &RunSetup, arm: Arm, scenario: &Scenario) -> Result<Sidecar, String> {
    let stop_timeout_s = scenario.tasks.stop_timeout_s;
    match arm {
        Arm::Baseline => Ok(Sidecar::None),
        Arm::Threshold => Ok(Sidecar::Threshold { harness: setup.harness.clone(), ratio: 0.9 }),
        Arm::Vigil => {
            let binary = setup.vigil.clone().ok_or("no vigil binary (build it or pass --vigil)")?;
            if !binary.is_file() {
                return Err(format!("vigil binary {} not found", binary.display()));
            }
            let env = [
                ("VIGIL_LISTEN", format!("0.0.0.0:{SIDECAR_PORT}")),
                ("VIGIL_INTERVAL", setup.vigil_interval.clone()),
                ("VIGIL_APP_HEALTH_URL", format!("http://127.0.0.1:{APP_PORT}/health")),
                ("VIGIL_WATCH", "demo-app".into()),
                ("VIGIL_LOG_FORMAT", "json".into()),
                ("VIGIL_LOG", "info".into()),
                // Finish draining within the task's stop timeout, as a task definition would.
                ("VIGIL_DRAIN_SECONDS", (stop_timeout_s - 1.0).max(0.0).floor().to_string()),
                // The task definition's restartAttemptPeriod, as an operator would set it.
                (
                    "VIGIL_RESTART_PERIOD",
                    format!("{}ms", (scenario.tasks.restart_attempt_period_s * 1000.0).round() as u64),
                ),
            ];
            let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            // The scenario's own settings come last and win.
            env.extend(scenario.vigil.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(Sidecar::Vigil { binary, env })
        }
    }
}

/// The arm proper; an `Err` is a harness failure reported in the summary.
async fn drive(
    scenario: &Scenario,
    arm: Arm,
    profile: Profile,
    plan: &LaunchPlan,
    dir: &Path,
) -> Result<ArmSummary, String> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut fleet = Fleet {
        members: BTreeMap::new(),
        next_slot: 1,
        events: Arc::clone(&events),
        stopping: Vec::new(),
        samples: Arc::new(Mutex::new(Vec::new())),
        extra_pids: Vec::new(),
    };
    let config = haproxy::render(profile, APP_PORT, arm.check_port(), &dir.join("haproxy.sock"));
    let mut balancer = Haproxy::start(dir, &config).map_err(|e| e.to_string())?;
    let mut prometheus = match arm {
        Arm::Baseline => None,
        _ => Some(Prometheus::start(dir).map_err(|e| format!("cannot start prometheus: {e}"))?),
    };
    let outcome = serve(scenario, arm, plan, &mut fleet, &balancer, prometheus.as_ref()).await;
    let totals = match &prometheus {
        Some(p) if outcome.is_ok() => Some(p.totals(scenario.duration_s as u64 + 120).await),
        _ => None,
    };
    teardown(&mut fleet, scenario).await;
    balancer.stop();
    if let Some(p) = prometheus.as_mut() {
        p.stop();
    }
    let (outcomes, load_start) = outcome?;
    let samples = std::mem::take(&mut *fleet.samples.lock().expect("samples lock"));
    let _ = std::fs::write(dir.join("samples.csv"), watch::to_csv(&samples, load_start));
    let mut all_events = std::mem::take(&mut *events.lock().expect("events lock"));
    for member in fleet.members.values() {
        all_events.extend(init_events(member.slot, &member.events_path));
    }
    all_events.sort_by(|a, b| a.t.total_cmp(&b.t));
    write_timeline(dir, &all_events, &outcomes, load_start);
    let targets: Vec<u32> = fleet.members.values().filter(|m| m.target).map(|m| m.slot).collect();
    let env_fault_after = scenario
        .fault
        .as_ref()
        .filter(|f| f.deliver == Delivery::Env)
        .and_then(|_| scenario.fault_spec())
        .map(|spec| spec.after_seconds());
    let context = Context { load_start, targets: &targets, benign: scenario.benign, env_fault_after };
    let mut summary = report::summarise(&all_events, &outcomes, &context);
    summary.scrapes = totals;
    summary.target_slots = targets.clone();
    if let Some(prefix) = &plan.record {
        write_record_index(prefix, scenario, &summary, load_start, &targets, &all_events);
    }
    Ok(summary)
}

/// Warm-up, load and scheduling; returns the outcomes and the load's start time.
async fn serve(
    scenario: &Scenario,
    arm: Arm,
    plan: &LaunchPlan,
    fleet: &mut Fleet,
    balancer: &Haproxy,
    prometheus: Option<&Prometheus>,
) -> Result<(Vec<Outcome>, f64), String> {
    let fault_env = scenario
        .fault
        .as_ref()
        .filter(|f| f.deliver == Delivery::Env)
        .and_then(|_| scenario.fault_spec())
        .map(|spec| spec.to_string());
    for index in 0..scenario.tasks.count {
        let target = scenario.fault.as_ref().is_some_and(|f| f.hits(index));
        let env = if target { fault_env.as_deref() } else { None };
        launch_member(fleet, plan, arm, target, env).await?;
    }
    // Warm-up: every initial task must be UP before the load starts.
    let began = unix_now();
    while fleet.members.values().any(|m| m.phase != Phase::Serving) {
        if unix_now() - began > WARM_UP_LIMIT_S {
            return Err(warm_up_failure(fleet));
        }
        step(fleet, plan, arm, balancer, prometheus, true).await;
        tokio::time::sleep(TICK).await;
    }
    let load_start = unix_now();
    let shape = scenario.load.clone();
    let duration = scenario.duration_s;
    let url = format!("http://{}/tx", haproxy::FRONTEND);
    let load = tokio::spawn(async move { load::run(&url, &shape, load_start, duration).await });
    let mut injected = false;
    let mut cleared = false;
    let mut noise: Option<u32> = None;
    let mut ticks = 0u64;
    while !load.is_finished() {
        let elapsed = unix_now() - load_start;
        if let Some(fault) = scenario.fault.as_ref().filter(|f| f.deliver == Delivery::Admin) {
            let spec = scenario.fault_spec().unwrap_or_else(FaultSpec::none);
            if !injected && elapsed >= fault.at_s {
                injected = true;
                if spec.kind.is_harness() {
                    let room = fault.for_s.unwrap_or(scenario.duration_s - fault.at_s);
                    harness_fault(fleet, &spec, room).await;
                } else {
                    inject(fleet, &spec.to_string(), EventKind::FaultInjected).await;
                }
            }
            if let Some(for_s) = fault.for_s
                && !cleared
                && elapsed >= fault.at_s + for_s
            {
                cleared = true;
                if spec.kind.is_harness() {
                    clear_harness_fault(fleet, &spec);
                } else {
                    inject(fleet, "none", EventKind::FaultCleared).await;
                }
            }
        }
        if let Some(plan) = &scenario.noise {
            if noise.is_none() && elapsed >= plan.at_s {
                noise = start_noise(fleet, plan);
            }
            if let Some(pid) = noise.filter(|pid| *pid > 0 && elapsed >= plan.at_s + plan.for_s) {
                crate::sys::stop_child(pid, Duration::from_secs(1));
                fleet.extra_pids.retain(|p| *p != pid);
                noise = Some(0);
                fleet.log(0, EventKind::FaultCleared, "noise stopped");
            }
        }
        if ticks.is_multiple_of(4) {
            spawn_samples(fleet, arm, plan.shape.memory_mib * 1024 * 1024);
        }
        ticks += 1;
        step(fleet, plan, arm, balancer, prometheus, false).await;
        tokio::time::sleep(TICK).await;
    }
    let outcomes = load.await.map_err(|e| format!("the load client failed: {e}"))?;
    Ok((outcomes, load_start))
}

/// Samples every live task once, in the background.
fn spawn_samples(fleet: &Fleet, arm: Arm, limit_bytes: u64) {
    let now = unix_now();
    for member in fleet.members.values().filter(|m| m.phase != Phase::Stopped) {
        let Some(handle) = &member.handle else { continue };
        let (slot, memory) = (member.slot, handle.cgroups.memory.clone());
        let url =
            (arm == Arm::Vigil).then(|| format!("http://{}:{SIDECAR_PORT}/status", net::slot_address(slot)));
        let samples = Arc::clone(&fleet.samples);
        tokio::spawn(async move {
            let sample = watch::sample(now, slot, &memory, limit_bytes, url.as_deref()).await;
            samples.lock().expect("samples lock").push(sample);
        });
    }
}

/// Applies a harness fault (kill, packet loss, I/O stress) to every target task still serving;
/// `room` bounds how long a started stressor may run, seconds.
async fn harness_fault(fleet: &mut Fleet, spec: &FaultSpec, room: f64) {
    let line = spec.to_string();
    let targets: Vec<u32> =
        fleet.members.values().filter(|m| m.target && m.phase == Phase::Serving).map(|m| m.slot).collect();
    for slot in targets {
        // Logged with the moment before the action: a killed app's exit is logged within
        // milliseconds, and must not come before its cause.
        let at = unix_now();
        let detail = match spec.kind {
            FaultKind::Kill => {
                let url = format!("http://{}:{}/vgf/kill", net::slot_address(slot), task::TMDS_PORT);
                match http::call(&http::client(0), "POST", &url, "", Duration::from_secs(2)).await {
                    Ok(answer) => format!("{line}: {}", String::from_utf8_lossy(&answer.body).trim()),
                    Err(e) => format!("{line}: {e}"),
                }
            }
            FaultKind::PacketLoss => {
                let rules = packet_loss_rules(spec.get("percent", 10.0));
                match crate::sys::run_with_input(
                    "ip",
                    &["netns", "exec", &net::slot_netns(slot), "nft", "-f", "-"],
                    &rules,
                ) {
                    Ok(()) => line.clone(),
                    Err(e) => format!("{line}: {e}"),
                }
            }
            FaultKind::IoStress => {
                let member = &fleet.members[&slot];
                let Some(handle) = &member.handle else { continue };
                match task::spawn_in_app_cgroups(handle, spec.get("workers", 2.0) as u32, room) {
                    Ok(pid) => {
                        fleet.extra_pids.push(pid);
                        format!("{line}: stress-ng pid {pid}")
                    }
                    Err(e) => format!("{line}: {e}"),
                }
            }
            _ => continue,
        };
        fleet.events.lock().expect("events lock").push(Event {
            t: at,
            slot,
            kind: EventKind::FaultInjected,
            detail,
        });
    }
}

/// The nftables table that drops `percent` % of the packets arriving on `eth1` for the app port.
pub fn packet_loss_rules(percent: f64) -> String {
    let percent = percent.clamp(0.0, 100.0).round() as u32;
    format!(
        "table inet vgf_loss {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
         iifname \"eth1\" tcp dport {APP_PORT} numgen random mod 100 < {percent} counter drop\n  }}\n}}\n"
    )
}

/// Ends a harness fault early (its `for_s` ran out).
fn clear_harness_fault(fleet: &mut Fleet, spec: &FaultSpec) {
    match spec.kind {
        FaultKind::PacketLoss => {
            let slots: Vec<u32> =
                fleet.members.values().filter(|m| m.target && m.handle.is_some()).map(|m| m.slot).collect();
            for slot in slots {
                let _ = crate::sys::run(
                    "ip",
                    &["netns", "exec", &net::slot_netns(slot), "nft", "delete", "table", "inet", "vgf_loss"],
                );
                fleet.log(slot, EventKind::FaultCleared, "packet loss removed");
            }
        }
        FaultKind::IoStress => {
            for pid in std::mem::take(&mut fleet.extra_pids) {
                crate::sys::stop_child(pid, Duration::from_secs(2));
            }
            fleet.log(0, EventKind::FaultCleared, "io stress stopped");
        }
        _ => {}
    }
}

/// Starts the noisy neighbour: `vigil-fault burn` outside every task.
fn start_noise(fleet: &mut Fleet, plan: &crate::scenario::Noise) -> Option<u32> {
    let harness = std::env::current_exe().ok()?;
    let child = std::process::Command::new(harness)
        .args(["burn", &plan.threads.to_string(), &format!("{}", plan.for_s.ceil() as u64 + 1)])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(child) => {
            let pid = child.id();
            crate::sys::register_pid(pid);
            fleet.extra_pids.push(pid);
            fleet.log(
                0,
                EventKind::FaultInjected,
                format!("noise: {} busy threads, pid {pid}", plan.threads),
            );
            // Reaped by the stop; the handle itself is not needed.
            std::mem::forget(child);
            Some(pid)
        }
        Err(e) => {
            fleet.log(0, EventKind::FaultInjected, format!("noise failed: {e}"));
            Some(0)
        }
    }
}

fn warm_up_failure(fleet: &Fleet) -> String {
    let stuck: Vec<String> = fleet
        .members
        .values()
        .filter(|m| m.phase != Phase::Serving)
        .map(|m| format!("t{} {:?}", m.slot, m.phase))
        .collect();
    format!("warm-up: tasks never became healthy behind haproxy ({}); see tasks/*/ logs", stuck.join(", "))
}

/// Posts a fault spec to the app of every target task still serving.
async fn inject(fleet: &Fleet, line: &str, kind: EventKind) {
    let client = http::client(0);
    for member in fleet.members.values().filter(|m| m.target && m.phase == Phase::Serving) {
        let url = format!("http://{}:{APP_PORT}/admin/fault", net::slot_address(member.slot));
        let result = http::call(&client, "POST", &url, line, Duration::from_secs(2)).await;
        let detail = match result {
            Ok(answer) if answer.status == 200 => line.to_owned(),
            Ok(answer) => format!("{line}: status {}", answer.status),
            Err(e) => format!("{line}: {e}"),
        };
        fleet.log(member.slot, kind, detail);
    }
}

/// Launches a task in the next free slot and starts probing its health port.
async fn launch_member(
    fleet: &mut Fleet,
    plan: &LaunchPlan,
    arm: Arm,
    target: bool,
    fault_env: Option<&str>,
) -> Result<u32, String> {
    let slot = fleet.next_slot;
    if slot > net::MAX_SLOTS {
        return Err("no task slot left".into());
    }
    fleet.next_slot += 1;
    let (plan_copy, env) = (plan.clone(), fault_env.map(str::to_owned));
    let handle = tokio::task::spawn_blocking(move || task::launch(&plan_copy, slot, env.as_deref()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot launch task {slot}: {e}"))?;
    fleet.log(slot, EventKind::TaskLaunched, handle.task_id.clone());
    let check_ok = Arc::new(Mutex::new(None));
    let prober_stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(probe(
        slot,
        arm.check_port(),
        Arc::clone(&check_ok),
        Arc::clone(&prober_stop),
        Arc::clone(&fleet.events),
    ));
    fleet.members.insert(
        slot,
        Member {
            slot,
            target,
            events_path: handle.events_path.clone(),
            handle: Some(handle),
            phase: Phase::Starting { since: unix_now() },
            replaced_by: None,
            up: None,
            check_ok,
            prober_stop,
        },
    );
    Ok(slot)
}

/// Polls a task's health port every tick and logs each change.
async fn probe(
    slot: u32,
    port: u16,
    state: Arc<Mutex<Option<bool>>>,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
) {
    let url = format!("http://{}:{port}/health", net::slot_address(slot));
    while !stop.load(Ordering::Relaxed) {
        let started = tokio::time::Instant::now();
        let answer = http::get_fresh(&url, Duration::from_millis(800)).await;
        let (ok, detail) = match answer {
            Ok(a) if a.status == 200 => (true, String::new()),
            Ok(a) => (false, format!("{} {}", a.status, String::from_utf8_lossy(&a.body).trim())),
            Err(e) => (false, e.to_string()),
        };
        let previous = state.lock().expect("probe lock").replace(ok);
        // A port that has never answered is still starting, not red.
        if previous.is_some_and(|p| p != ok) || (previous.is_none() && ok) {
            let kind = if ok { EventKind::HealthGreen } else { EventKind::HealthRed };
            log_event(&events, slot, kind, detail);
        }
        tokio::time::sleep_until(started + TICK).await;
    }
}

/// One scheduler tick: read HAProxy, move every task along its life cycle.
async fn step(
    fleet: &mut Fleet,
    plan: &LaunchPlan,
    arm: Arm,
    balancer: &Haproxy,
    prometheus: Option<&Prometheus>,
    warming_up: bool,
) {
    let states = haproxy::servers(&balancer.socket).await.unwrap_or_default();
    let now = unix_now();
    let mut replace = Vec::new();
    let mut stop = Vec::new();
    let slots: Vec<u32> = fleet.members.keys().copied().collect();
    for slot in slots {
        let up = states.iter().find(|s| s.slot == slot).map(|s| s.is_up());
        let member = fleet.members.get_mut(&slot).expect("member exists");
        let exited = member.handle.as_mut().is_some_and(|h| h.poll_exited());
        let check_ok = *member.check_ok.lock().expect("probe lock");
        let registered = !matches!(member.phase, Phase::Starting { .. } | Phase::Stopped);
        let changed = registered && up.is_some() && up != member.up;
        if changed {
            member.up = up;
        }
        let phase = member.phase;
        if changed {
            let kind = if up == Some(true) { EventKind::HaproxyUp } else { EventKind::HaproxyDown };
            fleet.log(slot, kind, "");
        }
        let member = fleet.members.get_mut(&slot).expect("member exists");
        match phase {
            Phase::Starting { since } => {
                if check_ok == Some(true) {
                    let _ = haproxy::set_state(&balancer.socket, slot, "ready").await;
                    member.phase = Phase::Joining { since: now };
                    fleet.log(slot, EventKind::Registered, "");
                } else if exited || now - since > READY_LIMIT_S {
                    member.phase = Phase::Stopped;
                    stop.push(slot);
                }
            }
            Phase::Joining { since } => {
                if up == Some(true) {
                    member.phase = Phase::Serving;
                } else if exited || now - since > READY_LIMIT_S {
                    let _ = haproxy::set_state(&balancer.socket, slot, "maint").await;
                    member.phase = Phase::Stopped;
                    stop.push(slot);
                }
            }
            Phase::Serving => {
                if exited || (changed && up == Some(false)) {
                    let why = if exited { "task stopped" } else { "marked down" };
                    let _ = haproxy::set_state(&balancer.socket, slot, "drain").await;
                    member.phase = Phase::Replacing { since: now };
                    if !warming_up {
                        replace.push((slot, why));
                    }
                }
            }
            Phase::Replacing { since } => {
                let replacement = member.replaced_by.and_then(|by| fleet.members.get(&by));
                let settled = match replacement {
                    Some(r) => matches!(r.phase, Phase::Serving | Phase::Stopped),
                    None => true,
                };
                if settled || warming_up || now - since > READY_LIMIT_S * 2.0 {
                    let member = fleet.members.get_mut(&slot).expect("member exists");
                    let _ = haproxy::set_state(&balancer.socket, slot, "maint").await;
                    member.phase = Phase::Draining { since: now };
                    fleet.log(slot, EventKind::Deregistered, "");
                }
            }
            Phase::Draining { since } => {
                if now - since >= plan.shape.deregistration_delay_s {
                    member.phase = Phase::Stopped;
                    stop.push(slot);
                }
            }
            Phase::Stopped => {}
        }
    }
    for slot in stop {
        stop_member(fleet, slot, plan.shape.stop_timeout_s);
    }
    for (old, why) in replace {
        match launch_member(fleet, plan, arm, false, None).await {
            Ok(new) => {
                if let Some(member) = fleet.members.get_mut(&old) {
                    member.replaced_by = Some(new);
                }
                fleet.log(old, EventKind::ReplacementStarted, format!("t{new}: {why}"));
            }
            Err(e) => fleet.log(old, EventKind::ReplacementStarted, format!("failed: {e}")),
        }
    }
    if let Some(prometheus) = prometheus {
        prometheus.set_targets(&fleet.live_addresses());
    }
}

/// Stops a task in the background (SIGTERM, stop timeout, SIGKILL, cleanup).
fn stop_member(fleet: &mut Fleet, slot: u32, stop_timeout_s: f64) {
    let Some(member) = fleet.members.get_mut(&slot) else {
        return;
    };
    member.prober_stop.store(true, Ordering::Relaxed);
    if let Some(mut handle) = member.handle.take() {
        fleet.log(slot, EventKind::StopRequested, "");
        let timeout = Duration::from_secs_f64(stop_timeout_s);
        fleet.stopping.push(tokio::task::spawn_blocking(move || handle.stop(timeout)));
    }
}

/// Stops every task and waits for all stops to finish.
async fn teardown(fleet: &mut Fleet, scenario: &Scenario) {
    for pid in std::mem::take(&mut fleet.extra_pids) {
        crate::sys::stop_child(pid, Duration::from_secs(2));
    }
    let slots: Vec<u32> = fleet.members.keys().copied().collect();
    for slot in slots {
        if let Some(member) = fleet.members.get_mut(&slot) {
            member.phase = Phase::Stopped;
        }
        stop_member(fleet, slot, scenario.tasks.stop_timeout_s);
    }
    for handle in std::mem::take(&mut fleet.stopping) {
        let _ = handle.await;
    }
}

/// Converts a task init's log into timeline events.
fn init_events(slot: u32, path: &Path) -> Vec<Event> {
    task::read_events(path)
        .into_iter()
        .filter(|e| e.container == "app" || e.event == "task_stopped")
        .map(|e| {
            let kind = match e.event.as_str() {
                "start" => EventKind::AppStart,
                "exit" => EventKind::AppExit,
                _ => EventKind::TaskStopped,
            };
            let mut detail = String::new();
            if let Some(code) = e.code {
                detail = format!("code {code}");
            }
            if e.oom {
                detail.push_str(" oom");
            }
            if e.restart_count > 0 {
                detail.push_str(&format!(" restart {}", e.restart_count));
            }
            Event { t: e.t, slot, kind, detail: detail.trim().to_owned() }
        })
        .collect()
}

/// Writes `events.jsonl` and `requests.csv` (seconds from the load's start).
fn write_timeline(dir: &Path, events: &[Event], outcomes: &[Outcome], load_start: f64) {
    let mut lines = String::new();
    for event in events {
        let mut value = serde_json::to_value(event).unwrap_or_default();
        value["t_rel"] = serde_json::json!(((event.t - load_start) * 1000.0).round() / 1000.0);
        lines.push_str(&value.to_string());
        lines.push('\n');
    }
    let _ = std::fs::write(dir.join("events.jsonl"), lines);
    let mut csv = String::from("t_rel_s,latency_ms,status\n");
    for o in outcomes {
        csv.push_str(&format!("{:.4},{:.2},{}\n", o.t - load_start, o.latency_ms, o.status));
    }
    let _ = std::fs::write(dir.join("requests.csv"), csv);
}

/// Writes `<prefix>.json` beside the recordings: when the load and the fault started (Unix ms),
/// which task slots the fault hit, and each slot's life span, so ticks can be labelled.
fn write_record_index(
    prefix: &Path,
    scenario: &Scenario,
    summary: &ArmSummary,
    load_start: f64,
    targets: &[u32],
    events: &[Event],
) {
    let ms = |t: f64| (t * 1000.0).round() as i64;
    let mut slots = BTreeMap::new();
    for event in events {
        let span = slots.entry(event.slot).or_insert((event.t, event.t));
        span.0 = span.0.min(event.t);
        span.1 = span.1.max(event.t);
    }
    let index = serde_json::json!({
        "scenario": scenario.name,
        "description": scenario.description,
        "benign": scenario.benign,
        "fault": scenario.fault.as_ref().map(|f| format!("{} {}", f.kind, f.params).trim().to_owned()),
        "load_start_unix_ms": ms(load_start),
        "fault_start_unix_ms": summary.fault_time_s.map(|t| ms(load_start + t)),
        "fault_end_unix_ms": scenario
            .fault
            .as_ref()
            .and_then(|f| f.for_s.map(|d| ms(load_start + f.at_s + d))),
        "target_slots": targets,
        "slots": slots
            .iter()
            .map(|(slot, (first, last))| serde_json::json!({"slot": slot, "first_unix_ms": ms(*first), "last_unix_ms": ms(*last)}))
            .collect::<Vec<_>>(),
    });
    let path = PathBuf::from(format!("{}.json", prefix.display()));
    let _ = std::fs::write(path, serde_json::to_string_pretty(&index).unwrap_or_default());
}

/// Removes the per-arm work files that are large and of no later use.
pub fn prune(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("tsdb"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_loss_drops_a_share_of_the_app_port_on_eth1_only() {
        let rules = packet_loss_rules(20.0);
        assert!(rules.starts_with("table inet vgf_loss {\n  chain input {\n"), "{rules}");
        assert!(
            rules.contains("    iifname \"eth1\" tcp dport 8080 numgen random mod 100 < 20 counter drop\n")
        );
        assert!(packet_loss_rules(250.0).contains("< 100 counter"));
    }

    #[test]
    fn arms_parse_and_check_their_ports() {
        assert_eq!(Arm::parse("vigil"), Some(Arm::Vigil));
        assert_eq!(Arm::parse("other"), None);
        assert_eq!(Arm::Baseline.check_port(), APP_PORT);
        assert_eq!(Arm::Threshold.check_port(), SIDECAR_PORT);
    }
}
