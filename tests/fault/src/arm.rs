//! One arm of one scenario: launch the fleet, put it behind HAProxy, run the load, inject the
//! fault, emulate the ECS scheduler (replace a task HAProxy marks down or that stops), then tear
//! everything down and reduce the timeline to an [`ArmSummary`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::haproxy::{self, Haproxy, Profile};
use crate::http;
use crate::load::{self, Outcome};
use crate::net;
use crate::prometheus::Prometheus;
use crate::report::{self, ArmSummary, Context, Event, EventKind};
use crate::scenario::{Bounds, Delivery, Scenario};
use crate::sys::unix_now;
use crate::task::{self, APP_PORT, LaunchPlan, SIDECAR_PORT, Sidecar, TaskHandle};

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
    let sidecar = match sidecar_for(setup, arm, scenario.tasks.stop_timeout_s) {
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

fn sidecar_for(setup: &RunSetup, arm: Arm, stop_timeout_s: f64) -> Result<Sidecar, String> {
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
            ];
            Ok(Sidecar::Vigil { binary, env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() })
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
    let mut fleet =
        Fleet { members: BTreeMap::new(), next_slot: 1, events: Arc::clone(&events), stopping: Vec::new() };
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
    while !load.is_finished() {
        let elapsed = unix_now() - load_start;
        if let Some(fault) = scenario.fault.as_ref().filter(|f| f.deliver == Delivery::Admin) {
            if !injected && elapsed >= fault.at_s {
                injected = true;
                let line = scenario.fault_spec().map(|s| s.to_string()).unwrap_or_default();
                inject(fleet, &line, EventKind::FaultInjected).await;
            }
            if let Some(for_s) = fault.for_s
                && !cleared
                && elapsed >= fault.at_s + for_s
            {
                cleared = true;
                inject(fleet, "none", EventKind::FaultCleared).await;
            }
        }
        step(fleet, plan, arm, balancer, prometheus, false).await;
        tokio::time::sleep(TICK).await;
    }
    let outcomes = load.await.map_err(|e| format!("the load client failed: {e}"))?;
    Ok((outcomes, load_start))
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

/// Removes the per-arm work files that are large and of no later use.
pub fn prune(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("tsdb"));
}
