//! One arm of one scenario, as a sequence: launch the fleet behind HAProxy, warm up, run the load
//! while injecting the fault and carrying out the scheduler's actions each tick, tear everything
//! down, and reduce the timeline to an [`ArmSummary`]. The decisions live in [`crate::scheduler`],
//! the faults in [`crate::injection`], the watching in [`crate::watch`], the files in
//! [`crate::writers`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fault::FaultSpec;
use crate::haproxy::{self, Haproxy, Profile};
use crate::inherit;
use crate::injection;
use crate::load::{self, Outcome};
use crate::net;
use crate::prometheus::{self, Prometheus};
use crate::report::{self, ArmSummary, Context, Event, EventKind};
use crate::scenario::{Bounds, Delivery, FaultPlan, Scenario};
use crate::scheduler::{Action, Observation, Phase, Scheduler, Timing};
use crate::sys::unix_now;
use crate::task::{self, APP_PORT, LaunchPlan, SIDECAR_PORT, Sidecar, TaskHandle};
use crate::watch::{self, TaskSample};
use crate::writers;

/// The scheduler's tick, as often as the prober polls.
const TICK: Duration = watch::PROBE_EVERY;
const WARM_UP_LIMIT_S: f64 = 60.0;
/// How long Prometheus may take to answer `/-/ready` before the tasks are launched.
const PROMETHEUS_READY_LIMIT: Duration = Duration::from_secs(20);
/// How often a fleet-aware vigil queries Prometheus (`VIGIL_FLEET_INTERVAL`).
pub const FLEET_INTERVAL: &str = "2s";

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

struct Member {
    slot: u32,
    /// Hit by the fault: an initial target, or a replacement that inherited a shared fault.
    target: bool,
    /// A replacement that got a shared fault in `DEMO_FAULT` from its start (the injection does
    /// not post it again).
    inherited: bool,
    /// Index into [`task::ZONES`].
    zone: usize,
    handle: Option<TaskHandle>,
    events_path: PathBuf,
    check_ok: Arc<Mutex<Option<bool>>>,
    prober_stop: Arc<AtomicBool>,
}

struct Fleet {
    members: BTreeMap<u32, Member>,
    scheduler: Scheduler,
    next_slot: u32,
    events: Arc<Mutex<Vec<Event>>>,
    stopping: Vec<tokio::task::JoinHandle<()>>,
    /// Per-second task samples for the timeline.
    samples: Arc<Mutex<Vec<TaskSample>>>,
    /// Processes the harness started for a fault or for noise (stress-ng, busy loops).
    extra_pids: Vec<u32>,
    /// The scenario's fault and its spec, for what replacements inherit.
    fault: Option<(FaultPlan, FaultSpec)>,
    /// When the load started (Unix seconds); `None` during the warm-up.
    load_start: Option<f64>,
}

impl Fleet {
    fn log(&self, slot: u32, kind: EventKind, detail: impl Into<String>) {
        self.record(vec![Event { t: unix_now(), slot, kind, detail: detail.into() }]);
    }

    fn record(&self, events: Vec<Event>) {
        self.events.lock().expect("events lock").extend(events);
    }

    fn phase(&self, slot: u32) -> Option<Phase> {
        self.scheduler.phase(slot)
    }

    fn live(&self) -> impl Iterator<Item = &Member> {
        self.members.values().filter(|m| self.phase(m.slot) != Some(Phase::Stopped))
    }

    /// The fault targets still serving.
    fn serving_targets(&self) -> Vec<u32> {
        self.members
            .values()
            .filter(|m| m.target && self.phase(m.slot) == Some(Phase::Serving))
            .map(|m| m.slot)
            .collect()
    }

    /// The serving targets that the injection must reach: those that did not get the fault from
    /// their start.
    fn targets_to_inject(&self) -> Vec<u32> {
        self.serving_targets().into_iter().filter(|slot| !self.members[slot].inherited).collect()
    }

    fn live_addresses(&self) -> Vec<String> {
        self.live().map(|m| format!("{}:{SIDECAR_PORT}", net::slot_address(m.slot))).collect()
    }
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
            if scenario.vigil.fleet {
                // Fleet awareness: the suite's Prometheus scrapes every sidecar of the service.
                env.push(("VIGIL_FLEET_URL".into(), prometheus::base_url()));
                env.push(("VIGIL_FLEET_INTERVAL".into(), FLEET_INTERVAL.into()));
            }
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
        scheduler: Scheduler::new(Timing {
            deregistration_delay_s: scenario.tasks.deregistration_delay_s,
            stop_timeout_s: scenario.tasks.stop_timeout_s,
        }),
        next_slot: 1,
        events: Arc::clone(&events),
        stopping: Vec::new(),
        samples: Arc::new(Mutex::new(Vec::new())),
        extra_pids: Vec::new(),
        fault: scenario.fault.clone().zip(scenario.fault_spec()),
        load_start: None,
    };
    let socket = haproxy::socket_path();
    let config = haproxy::render(profile, APP_PORT, arm.check_port(), &socket);
    let mut balancer = Haproxy::start(dir, &config, &socket).map_err(|e| e.to_string())?;
    // Prometheus first and ready, so a fleet-aware vigil finds it from its start.
    let mut prometheus = match arm {
        Arm::Baseline => None,
        _ => match Prometheus::start(dir) {
            Ok(p) => Some(p),
            Err(e) => {
                balancer.stop();
                return Err(format!("cannot start prometheus: {e}"));
            }
        },
    };
    if let Some(p) = prometheus.as_mut()
        && !p.wait_ready(PROMETHEUS_READY_LIMIT).await
    {
        p.stop();
        balancer.stop();
        return Err(format!(
            "prometheus did not answer /-/ready within {} s; see prometheus.log",
            PROMETHEUS_READY_LIMIT.as_secs()
        ));
    }
    let outcome = serve(scenario, arm, plan, &mut fleet, &balancer, &mut prometheus).await;
    let totals = match &prometheus {
        Some(p) if outcome.is_ok() && p.is_running() => {
            Some(p.totals(scenario.duration_s as u64 + 120).await)
        }
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
        all_events.extend(writers::init_events(member.slot, &member.events_path));
    }
    all_events.sort_by(|a, b| a.t.total_cmp(&b.t));
    writers::write_timeline(dir, &all_events, &outcomes, load_start);
    let targets: Vec<u32> = fleet.members.values().filter(|m| m.target).map(|m| m.slot).collect();
    let env_fault_after = scenario
        .fault
        .as_ref()
        .filter(|f| f.deliver == Delivery::Env)
        .and_then(|_| scenario.fault_spec())
        .map(|spec| spec.after_seconds());
    let context = Context {
        load_start,
        targets: &targets,
        benign: scenario.benign,
        env_fault_after,
        run_level_fault: scenario.fault_kind().is_some_and(|kind| kind.is_run_level()),
    };
    let mut summary = report::summarise(&all_events, &outcomes, &context);
    summary.scrapes = totals;
    summary.target_slots = targets.clone();
    if let Some(prefix) = &plan.record {
        let index = writers::record_index(scenario, &summary, load_start, &targets, &all_events);
        writers::write_record_index(prefix, &index);
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
    prometheus: &mut Option<Prometheus>,
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
        launch_member(
            fleet,
            plan,
            arm,
            Launch { target, inherited: false, zone: task::initial_zone(index) },
            env,
        )
        .await?;
    }
    // Warm-up: every initial task must be UP before the load starts.
    let began = unix_now();
    while !fleet.scheduler.all_serving() {
        if unix_now() - began > WARM_UP_LIMIT_S {
            return Err(warm_up_failure(fleet));
        }
        step(fleet, plan, arm, balancer, prometheus.as_ref(), true).await;
        tokio::time::sleep(TICK).await;
    }
    let load_start = unix_now();
    fleet.load_start = Some(load_start);
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
                let targets = fleet.targets_to_inject();
                if spec.kind.is_run_level() {
                    fleet.record(vec![stop_prometheus(prometheus)]);
                } else if spec.kind.is_harness() {
                    let room = fault.for_s.unwrap_or(scenario.duration_s - fault.at_s);
                    let handles: Vec<(u32, Option<&TaskHandle>)> =
                        targets.iter().map(|slot| (*slot, fleet.members[slot].handle.as_ref())).collect();
                    let applied = injection::apply_harness(&spec, &handles, room).await;
                    fleet.extra_pids.extend(applied.pids);
                    fleet.record(applied.events);
                } else {
                    let line = spec.to_string();
                    fleet.record(injection::post_spec(&targets, &line, EventKind::FaultInjected).await);
                }
            }
            if let Some(for_s) = fault.for_s
                && !cleared
                && elapsed >= fault.at_s + for_s
            {
                cleared = true;
                if spec.kind.is_run_level() {
                    fleet.record(vec![restart_prometheus(prometheus).await]);
                } else if spec.kind.is_harness() {
                    let slots: Vec<u32> = fleet
                        .members
                        .values()
                        .filter(|m| m.target && m.handle.is_some())
                        .map(|m| m.slot)
                        .collect();
                    let events = injection::clear_harness(&spec, &slots, &mut fleet.extra_pids);
                    fleet.record(events);
                } else {
                    let targets = fleet.serving_targets();
                    fleet.record(injection::post_spec(&targets, "none", EventKind::FaultCleared).await);
                }
            }
        }
        if let Some(plan) = &scenario.noise {
            if noise.is_none() && elapsed >= plan.at_s {
                noise = injection::start_noise(plan).map(|(pid, event)| {
                    if pid > 0 {
                        fleet.extra_pids.push(pid);
                    }
                    fleet.record(vec![event]);
                    pid
                });
            }
            if let Some(pid) = noise.filter(|pid| *pid > 0 && elapsed >= plan.at_s + plan.for_s) {
                crate::sys::stop_child(pid, Duration::from_secs(1));
                fleet.extra_pids.retain(|p| *p != pid);
                noise = Some(0);
                fleet.log(0, EventKind::FaultCleared, "noise stopped");
            }
        }
        if ticks.is_multiple_of(4) {
            let live = fleet
                .live()
                .filter_map(|m| m.handle.as_ref().map(|h| (m.slot, h.cgroups.memory.clone())))
                .collect();
            watch::spawn_samples(
                live,
                arm == Arm::Vigil,
                plan.shape.memory_mib * 1024 * 1024,
                &fleet.samples,
            );
        }
        ticks += 1;
        step(fleet, plan, arm, balancer, prometheus.as_ref(), false).await;
        tokio::time::sleep(TICK).await;
    }
    let outcomes = load.await.map_err(|e| format!("the load client failed: {e}"))?;
    Ok((outcomes, load_start))
}

/// The `prometheus-stop` fault: ends the suite's Prometheus by its PID.
fn stop_prometheus(prometheus: &mut Option<Prometheus>) -> Event {
    let detail = match prometheus.as_mut() {
        Some(p) => {
            p.stop();
            "prometheus stopped".to_owned()
        }
        None => "prometheus-stop: this arm runs no prometheus".to_owned(),
    };
    Event { t: unix_now(), slot: 0, kind: EventKind::FaultInjected, detail }
}

/// The end of the `prometheus-stop` fault: starts Prometheus again on the same storage.
async fn restart_prometheus(prometheus: &mut Option<Prometheus>) -> Event {
    let detail = match prometheus.as_mut() {
        Some(p) => match p.restart() {
            Ok(()) if p.wait_ready(PROMETHEUS_READY_LIMIT).await => "prometheus started again".to_owned(),
            Ok(()) => "prometheus started again, not ready".to_owned(),
            Err(e) => format!("prometheus did not start again: {e}"),
        },
        None => "prometheus-stop ended: this arm runs no prometheus".to_owned(),
    };
    Event { t: unix_now(), slot: 0, kind: EventKind::FaultCleared, detail }
}

fn warm_up_failure(fleet: &Fleet) -> String {
    let stuck: Vec<String> = fleet
        .members
        .values()
        .filter(|m| fleet.phase(m.slot) != Some(Phase::Serving))
        .map(|m| format!("t{} {:?}", m.slot, fleet.phase(m.slot)))
        .collect();
    format!("warm-up: tasks never became healthy behind haproxy ({}); see tasks/*/ logs", stuck.join(", "))
}

/// What the arm knows of a task it launches.
#[derive(Debug, Clone, Copy)]
struct Launch {
    target: bool,
    inherited: bool,
    zone: usize,
}

/// Launches a task in the next free slot and starts probing its health port.
async fn launch_member(
    fleet: &mut Fleet,
    plan: &LaunchPlan,
    arm: Arm,
    launch: Launch,
    fault_env: Option<&str>,
) -> Result<u32, String> {
    let slot = fleet.next_slot;
    if slot > net::MAX_SLOTS {
        return Err("no task slot left".into());
    }
    fleet.next_slot += 1;
    let (plan_copy, env) = (plan.clone(), fault_env.map(str::to_owned));
    let zone = launch.zone;
    let handle = tokio::task::spawn_blocking(move || task::launch(&plan_copy, slot, zone, env.as_deref()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot launch task {slot}: {e}"))?;
    let detail = format!("{} in {}", handle.task_id, task::ZONES[zone % task::ZONES.len()]);
    fleet.log(slot, EventKind::TaskLaunched, detail);
    let check_ok = Arc::new(Mutex::new(None));
    let prober_stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch::probe(
        slot,
        arm.check_port(),
        Arc::clone(&check_ok),
        Arc::clone(&prober_stop),
        Arc::clone(&fleet.events),
    ));
    fleet.scheduler.launched(slot, unix_now());
    fleet.members.insert(
        slot,
        Member {
            slot,
            target: launch.target,
            inherited: launch.inherited,
            zone,
            events_path: handle.events_path.clone(),
            handle: Some(handle),
            check_ok,
            prober_stop,
        },
    );
    Ok(slot)
}

/// One scheduler tick: read HAProxy and the tasks, then carry out what the scheduler decides.
async fn step(
    fleet: &mut Fleet,
    plan: &LaunchPlan,
    arm: Arm,
    balancer: &Haproxy,
    prometheus: Option<&Prometheus>,
    warming_up: bool,
) {
    let states = haproxy::servers(&balancer.socket).await.unwrap_or_default();
    let mut seen = BTreeMap::new();
    for member in fleet.members.values_mut() {
        let observation = Observation {
            up: states.iter().find(|s| s.slot == member.slot).map(|s| s.is_up()),
            exited: member.handle.as_mut().is_some_and(|h| h.poll_exited()),
            check_ok: *member.check_ok.lock().expect("probe lock"),
        };
        seen.insert(member.slot, observation);
    }
    for action in fleet.scheduler.tick(unix_now(), &seen, warming_up) {
        match action {
            Action::SetState { slot, state } => {
                let _ = haproxy::set_state(&balancer.socket, slot, state.word()).await;
            }
            Action::Log { slot, kind } => fleet.log(slot, kind, ""),
            Action::Stop { slot, timeout_s } => stop_member(fleet, slot, timeout_s),
            Action::Replace { old, why } => {
                let (launch, fault_env) = replacement(fleet, old);
                match launch_member(fleet, plan, arm, launch, fault_env.as_deref()).await {
                    Ok(new) => {
                        fleet.scheduler.replaced(old, new);
                        let inherited =
                            fault_env.map(|line| format!(", inherits {line}")).unwrap_or_default();
                        fleet.log(old, EventKind::ReplacementStarted, format!("t{new}: {why}{inherited}"));
                    }
                    Err(e) => fleet.log(old, EventKind::ReplacementStarted, format!("failed: {e}")),
                }
            }
        }
    }
    if let Some(prometheus) = prometheus {
        prometheus.set_targets(&fleet.live_addresses());
    }
}

/// The replacement of `old`: its predecessor's zone, and the shared fault it inherits (the
/// `DEMO_FAULT` line) by [`inherit::inherited`].
fn replacement(fleet: &Fleet, old: u32) -> (Launch, Option<String>) {
    let predecessor = fleet.members.get(&old);
    let zone = predecessor.map_or(0, |m| m.zone);
    let hit = predecessor.is_some_and(|m| m.target);
    let started_s = fleet.load_start.map_or(0.0, |start| unix_now() - start);
    let spec = fleet.fault.as_ref().and_then(|(plan, spec)| inherit::inherited(plan, spec, hit, started_s));
    let launch = Launch { target: spec.is_some(), inherited: spec.is_some(), zone };
    (launch, spec.map(|spec| spec.to_string()))
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
    fleet.scheduler.stop_all();
    let slots: Vec<u32> = fleet.members.keys().copied().collect();
    for slot in slots {
        stop_member(fleet, slot, scenario.tasks.stop_timeout_s);
    }
    for handle in std::mem::take(&mut fleet.stopping) {
        let _ = handle.await;
    }
}

/// Removes the per-arm work files that are large and of no later use.
pub fn prune(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("tsdb"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_parse_and_check_their_ports() {
        assert_eq!(Arm::parse("vigil"), Some(Arm::Vigil));
        assert_eq!(Arm::parse("other"), None);
        assert_eq!(Arm::Baseline.check_port(), APP_PORT);
        assert_eq!(Arm::Threshold.check_port(), SIDECAR_PORT);
    }
}
