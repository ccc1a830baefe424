//! Evidence → healthy / degraded / draining, with reasons. Pure: time comes in with the sample.
//!
//! `draining` is what the load balancer reads as "take this task out" (503), and on ECS it means
//! "replace this task". So only evidence local to this task that a fresh task would fix may
//! drain it: a resource heading for its limit, a crash loop, a hung app, an app that is gone.
//! Evidence every task would share — a traffic surge (CPU saturated, accept queues full, the app
//! slow), a dependency outage (the app answers 5xx fast), an anomaly score on its own — and
//! vigil's own missing inputs give `degraded`: visible in `/status` and metrics, never red.
//!
//! | reason               | state    | when                                                                 |
//! |----------------------|----------|----------------------------------------------------------------------|
//! | `stopping`           | draining | SIGTERM or SIGINT received                                           |
//! | `processes_gone`     | draining | watched processes were seen and all of them have exited              |
//! | `app_unresponsive`   | draining | the app health URL did not answer on 3 consecutive ticks: refused, or timed out while CPU is not saturated (a hang) |
//! | `memory_exhaustion`  | draining | memory reaches its limit within the horizon (warm forecast, N ticks)  |
//! | `fd_exhaustion`      | draining | open fds reach the limit within the horizon, or are at it             |
//! | `thread_exhaustion`  | draining | tasks (pids) reach the limit within the horizon, or are at it         |
//! | `storage_exhaustion` | draining | ephemeral storage fills within the horizon                            |
//! | `crash_loop`         | draining | 2 or more restarts within the restart window                          |
//! | `oom_restarts`       | draining | 2 or more restarts within the window, most after OOM kills            |
//! | `restarted`          | degraded | 1 restart within the window                                           |
//! | `app_overloaded`     | degraded | the app health URL timed out while CPU is saturated (a surge)         |
//! | `app_errors`         | degraded | the app answered its health URL with a 5xx (e.g. a dependency is down) |
//! | `cpu_saturated`      | degraded | CPU throttled or at the task's vCPU limit                              |
//! | `accept_queue_full`  | degraded | a listening socket's accept queue is full or overflowing              |
//! | `container_unhealthy`| degraded | the metadata service reports a container's own health check `UNHEALTHY` (ECS acts on essential containers itself) |
//! | `anomaly`            | degraded | the autoencoder's score is above its calibrated threshold             |
//! | `input_missing`      | degraded | `/proc` unreadable, or the metadata service not answering             |
//!
//! Hysteresis: an exhaustion forecast drains after `enter_ticks` consecutive ticks of evidence and
//! stops draining after `exit_ticks` ticks without it; while confirming it shows as `degraded`.
//! Reactive reasons (stopping, gone, unresponsive, restarts) take effect on the tick they are seen.

use std::fmt::Write as _;

use crate::features::{FeatureConfig, Features, Resource, Signals};
use crate::restarts::{RestartFindings, RestartTracker};
use crate::sample::{ContainerHealth, Millis, ProbeReading, Sample};

/// What the load balancer should do with this task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Serve traffic.
    Healthy,
    /// Serve traffic, but something is off: visible in `/status` and metrics only.
    Degraded,
    /// Take the task out of the load balancer (`/health` answers 503).
    Draining,
}

impl State {
    pub const ALL: [State; 3] = [State::Healthy, State::Degraded, State::Draining];

    pub fn name(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Draining => "draining",
        }
    }
}

/// Stable reason codes: they appear in `/health`, `/status`, logs and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    Stopping,
    ProcessesGone,
    AppUnresponsive,
    MemoryExhaustion,
    FdExhaustion,
    ThreadExhaustion,
    StorageExhaustion,
    CrashLoop,
    OomRestarts,
    Restarted,
    AppOverloaded,
    AppErrors,
    CpuSaturated,
    AcceptQueueFull,
    ContainerUnhealthy,
    Anomaly,
    InputMissing,
}

impl Reason {
    pub const ALL: [Reason; 17] = [
        Reason::Stopping,
        Reason::ProcessesGone,
        Reason::AppUnresponsive,
        Reason::MemoryExhaustion,
        Reason::FdExhaustion,
        Reason::ThreadExhaustion,
        Reason::StorageExhaustion,
        Reason::CrashLoop,
        Reason::OomRestarts,
        Reason::Restarted,
        Reason::AppOverloaded,
        Reason::AppErrors,
        Reason::CpuSaturated,
        Reason::AcceptQueueFull,
        Reason::ContainerUnhealthy,
        Reason::Anomaly,
        Reason::InputMissing,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::Stopping => "stopping",
            Reason::ProcessesGone => "processes_gone",
            Reason::AppUnresponsive => "app_unresponsive",
            Reason::MemoryExhaustion => "memory_exhaustion",
            Reason::FdExhaustion => "fd_exhaustion",
            Reason::ThreadExhaustion => "thread_exhaustion",
            Reason::StorageExhaustion => "storage_exhaustion",
            Reason::CrashLoop => "crash_loop",
            Reason::OomRestarts => "oom_restarts",
            Reason::Restarted => "restarted",
            Reason::AppOverloaded => "app_overloaded",
            Reason::AppErrors => "app_errors",
            Reason::CpuSaturated => "cpu_saturated",
            Reason::AcceptQueueFull => "accept_queue_full",
            Reason::ContainerUnhealthy => "container_unhealthy",
            Reason::Anomaly => "anomaly",
            Reason::InputMissing => "input_missing",
        }
    }

    /// Whether this reason can drain the task. The others only ever degrade it.
    pub fn drains(self) -> bool {
        matches!(
            self,
            Reason::Stopping
                | Reason::ProcessesGone
                | Reason::AppUnresponsive
                | Reason::MemoryExhaustion
                | Reason::FdExhaustion
                | Reason::ThreadExhaustion
                | Reason::StorageExhaustion
                | Reason::CrashLoop
                | Reason::OomRestarts
        )
    }

    /// Whether this reason is a forecast, confirmed over several ticks.
    fn forecast(self) -> bool {
        matches!(
            self,
            Reason::MemoryExhaustion
                | Reason::FdExhaustion
                | Reason::ThreadExhaustion
                | Reason::StorageExhaustion
        )
    }

    fn exhaustion(resource: Resource) -> Reason {
        match resource {
            Resource::Memory => Reason::MemoryExhaustion,
            Resource::Fds => Reason::FdExhaustion,
            Resource::Threads => Reason::ThreadExhaustion,
            Resource::Storage => Reason::StorageExhaustion,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One active reason with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reason: Reason,
    /// The state this finding puts the task in: a draining reason still being confirmed shows
    /// as `Degraded`.
    pub state: State,
    /// One line of evidence, e.g. `app health URL did not answer on 3 consecutive ticks (timed out)`.
    pub evidence: String,
    /// Seconds until the predicted failure, for forecasts.
    pub eta_seconds: Option<f64>,
}

/// The decision of one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub state: State,
    /// Active findings, the most severe first.
    pub findings: Vec<Finding>,
    /// When the current state was entered.
    pub since: Millis,
}

impl Verdict {
    fn initial(at: Millis) -> Verdict {
        Verdict { state: State::Healthy, findings: Vec::new(), since: at }
    }

    /// The one-line body of `/health`: `ok`, or the state and its reasons with evidence.
    pub fn headline(&self) -> String {
        if self.findings.is_empty() {
            return "ok".to_string();
        }
        let mut line = String::from(self.state.name());
        for (i, finding) in self.findings.iter().enumerate() {
            line.push_str(if i == 0 { ": " } else { "; " });
            let _ = write!(line, "{} ({})", finding.reason.code(), finding.evidence);
        }
        line
    }

    pub fn has(&self, reason: Reason) -> bool {
        self.findings.iter().any(|finding| finding.reason == reason)
    }
}

/// A change of state, for logs and the transitions counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub at: Millis,
}

/// How the judge is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeConfig {
    /// The metadata service is configured (ECS mode), so its absence is missing input.
    pub tmds_expected: bool,
    /// Consecutive unanswered probes that count as unresponsive.
    pub probe_misses: u32,
    /// A forecast drains when the limit is nearer than this many seconds.
    pub horizon_seconds: f64,
    /// Consecutive ticks of forecast evidence before draining.
    pub enter_ticks: u32,
    /// Consecutive ticks without forecast evidence before draining stops.
    pub exit_ticks: u32,
    /// How far back restarts count.
    pub restart_window_ms: Millis,
    pub features: FeatureConfig,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            tmds_expected: false,
            probe_misses: 3,
            horizon_seconds: 180.0,
            enter_ticks: 3,
            exit_ticks: 10,
            restart_window_ms: 900_000,
            features: FeatureConfig::default(),
        }
    }
}

/// The hysteresis of one draining reason.
#[derive(Debug, Clone, Default)]
struct Hold {
    present: u32,
    absent: u32,
    active: bool,
    /// The evidence last seen, shown while the reason is clearing.
    evidence: String,
    eta_seconds: Option<f64>,
}

/// Turns each tick's sample into a verdict, remembering what it needs across ticks.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    features: Features,
    restarts: RestartTracker,
    holds: [Hold; Reason::ALL.len()],
    probe_misses: u32,
    last_miss: Option<ProbeReading>,
    processes_seen: bool,
    signals: Signals,
    restart_findings: RestartFindings,
    verdict: Verdict,
}

impl Judge {
    pub fn new(config: JudgeConfig, at: Millis) -> Judge {
        Judge {
            config,
            features: Features::new(config.features),
            restarts: RestartTracker::new(config.restart_window_ms),
            holds: Default::default(),
            probe_misses: 0,
            last_miss: None,
            processes_seen: false,
            signals: Signals::default(),
            restart_findings: RestartFindings::default(),
            verdict: Verdict::initial(at),
        }
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// The signals of the last tick: forecasts, saturation, usage.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// What the restart history said on the last tick.
    pub fn restart_findings(&self) -> &RestartFindings {
        &self.restart_findings
    }

    /// Whether any watched process has ever been visible. When false, vigil cannot see the
    /// app's processes (no shared PID namespace) and process watching is off.
    pub fn processes_seen(&self) -> bool {
        self.processes_seen
    }

    /// Judges one tick. `stopping` is true once SIGTERM or SIGINT arrived; `anomaly` is the
    /// autoencoder's evidence, when it has any.
    pub fn observe(
        &mut self,
        sample: &Sample,
        stopping: bool,
        anomaly: Option<String>,
    ) -> Option<Transition> {
        self.signals = self.features.observe(sample);
        self.restart_findings = self.restarts.observe(sample);
        let evidence = self.evidence(sample, stopping, anomaly);

        let mut findings = Vec::new();
        for reason in Reason::ALL {
            let seen = evidence.iter().find(|(r, _, _)| *r == reason);
            if !reason.drains() {
                if let Some((_, _, eta)) = seen {
                    let texts: Vec<&str> = evidence
                        .iter()
                        .filter(|(r, _, _)| *r == reason)
                        .map(|(_, text, _)| text.as_str())
                        .collect();
                    findings.push(Finding {
                        reason,
                        state: State::Degraded,
                        evidence: texts.join("; "),
                        eta_seconds: *eta,
                    });
                }
                continue;
            }
            let (enter, exit) =
                if reason.forecast() { (self.config.enter_ticks, self.config.exit_ticks) } else { (1, 1) };
            let hold = &mut self.holds[reason.index()];
            match seen {
                Some((_, text, eta)) => {
                    hold.present += 1;
                    hold.absent = 0;
                    hold.evidence.clone_from(text);
                    hold.eta_seconds = *eta;
                    if hold.present >= enter.max(1) {
                        hold.active = true;
                    }
                }
                None => {
                    hold.present = 0;
                    hold.absent += 1;
                    if hold.absent >= exit.max(1) {
                        hold.active = false;
                    }
                }
            }
            if hold.active {
                let evidence = if hold.absent > 0 {
                    format!("{}; clearing {}/{}", hold.evidence, hold.absent, exit)
                } else {
                    hold.evidence.clone()
                };
                findings.push(Finding {
                    reason,
                    state: State::Draining,
                    evidence,
                    eta_seconds: hold.eta_seconds,
                });
            } else if hold.present > 0 {
                findings.push(Finding {
                    reason,
                    state: State::Degraded,
                    evidence: format!("{}; confirming {}/{}", hold.evidence, hold.present, enter),
                    eta_seconds: hold.eta_seconds,
                });
            }
        }

        findings.sort_by_key(|finding| std::cmp::Reverse(finding.state));
        let state = findings.first().map_or(State::Healthy, |finding| finding.state);
        let previous = self.verdict.state;
        self.verdict.findings = findings;
        if state == previous {
            return None;
        }
        self.verdict.state = state;
        self.verdict.since = sample.at;
        Some(Transition { from: previous, to: state, at: sample.at })
    }

    /// This tick's raw evidence: (reason, one line, ETA).
    fn evidence(
        &mut self,
        sample: &Sample,
        stopping: bool,
        anomaly: Option<String>,
    ) -> Vec<(Reason, String, Option<f64>)> {
        let mut evidence = Vec::new();
        let signals = &self.signals;

        if stopping {
            evidence.push((Reason::Stopping, "vigil received a stop signal".to_string(), None));
        }

        if sample.proc_readable {
            if !sample.processes.is_empty() {
                self.processes_seen = true;
            } else if self.processes_seen {
                evidence.push((Reason::ProcessesGone, "every watched process has exited".to_string(), None));
            }
        } else {
            evidence.push((Reason::InputMissing, "process table unreadable".to_string(), None));
        }
        if self.config.tmds_expected && sample.task.is_none() {
            evidence.push((Reason::InputMissing, "task metadata service not answering".to_string(), None));
        }

        match sample.probe {
            None => self.probe_misses = 0,
            Some(reading @ (ProbeReading::Refused | ProbeReading::TimedOut)) => {
                self.probe_misses += 1;
                self.last_miss = Some(reading);
            }
            Some(ProbeReading::Answered { status, latency_ms }) => {
                self.probe_misses = 0;
                if status >= 500 {
                    evidence.push((
                        Reason::AppErrors,
                        format!("app health URL answered {status} in {latency_ms} ms"),
                        None,
                    ));
                }
            }
        }
        if self.probe_misses >= self.config.probe_misses {
            let refused = self.last_miss == Some(ProbeReading::Refused);
            let how = if refused { "connection refused" } else { "timed out" };
            let text =
                format!("app health URL did not answer on {} consecutive ticks ({how})", self.probe_misses);
            if refused || !signals.cpu_saturated {
                evidence.push((Reason::AppUnresponsive, text, None));
            } else {
                evidence.push((Reason::AppOverloaded, format!("{text} while CPU is saturated"), None));
            }
        }

        for resource in Resource::ALL {
            let reason = Reason::exhaustion(resource);
            if let Some(saturated) = signals.saturated.iter().find(|s| s.resource == resource) {
                let text = format!(
                    "{} {} at {:.0} of {:.0}: exhausted",
                    saturated.subject,
                    resource.name(),
                    saturated.used,
                    saturated.limit
                );
                evidence.push((reason, text, Some(0.0)));
                continue;
            }
            // Forecasts are sorted by ETA: the first warm one of this resource is the nearest.
            let nearest = signals.forecasts.iter().find(|f| f.resource == resource && f.warm);
            if let Some(f) = nearest
                && f.forecast.eta_seconds < self.config.horizon_seconds
            {
                evidence.push((reason, f.evidence(), Some(f.forecast.eta_seconds)));
            }
        }

        let restarts = &self.restart_findings;
        let window = Window(self.config.restart_window_ms);
        if restarts.recent >= 2 {
            let reason = if 2 * restarts.recent_oom >= restarts.recent {
                Reason::OomRestarts
            } else {
                Reason::CrashLoop
            };
            let mut text = format!(
                "{} restarts in the last {window} ({} after OOM kills)",
                restarts.recent, restarts.recent_oom
            );
            if let Some(next) = restarts.next_crash_seconds {
                let _ = write!(text, "; uptimes shrinking, next crash expected in {next:.0} s");
            }
            evidence.push((reason, text, restarts.next_crash_seconds));
        } else if restarts.recent == 1 {
            let after = if restarts.recent_oom == 1 { " after an OOM kill" } else { "" };
            evidence.push((Reason::Restarted, format!("1 restart in the last {window}{after}"), None));
        }

        if signals.cpu_saturated {
            let ratio = signals.cpu_ratio.unwrap_or(1.0);
            evidence.push((
                Reason::CpuSaturated,
                format!("CPU throttled or busy {:.0} %", 100.0 * ratio),
                None,
            ));
        }
        if signals.accept_queue_full {
            let ratio = signals.accept_queue_ratio.unwrap_or(1.0);
            evidence.push((
                Reason::AcceptQueueFull,
                format!("accept queue {:.0} % full or overflowing", 100.0 * ratio),
                None,
            ));
        }
        if let Some(task) = &sample.task {
            let unhealthy: Vec<&str> = task
                .containers
                .iter()
                .filter(|c| c.health == Some(ContainerHealth::Unhealthy))
                .map(|c| c.name.as_str())
                .collect();
            if !unhealthy.is_empty() {
                let text = format!("container health check UNHEALTHY: {}", unhealthy.join(", "));
                evidence.push((Reason::ContainerUnhealthy, text, None));
            }
        }
        if let Some(text) = anomaly {
            evidence.push((Reason::Anomaly, text, None));
        }
        evidence
    }
}

/// A restart window as evidence text shows it: whole minutes as "15 min", anything else in
/// seconds. Formats in place: the evidence is built every tick.
struct Window(Millis);

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        if ms >= 60_000 && ms.is_multiple_of(60_000) {
            write!(f, "{} min", ms / 60_000)
        } else {
            write!(f, "{} s", ms.div_ceil(1000))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Deterministic timelines, one tick a second, with explicit time. Each asserts the
    //! transitions and, for failures, how long before the limit the task was drained.

    use super::*;
    use crate::sample::{
        CgroupReading, ContainerReading, ContainerStats, Listener, NetReading, ProcessReading, TaskReading,
    };

    const MB: f64 = 1_000_000.0;
    const LIMIT: u64 = 512_000_000;

    /// A deterministic noise source (xorshift), in [-1, 1].
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 20_001) as f64 / 10_000.0 - 1.0
        }
    }

    /// One healthy process in one cgroup, answering its health URL.
    fn tick(t: u64) -> Sample {
        Sample {
            at: t * 1000,
            wall_ms: 1_790_000_000_000 + (t * 1000) as i64,
            proc_readable: true,
            processes: vec![ProcessReading {
                pid: 10,
                name: "app".into(),
                start_ticks: 500,
                open_fds: Some(50),
                fd_limit: Some(1024),
                threads: Some(20),
                ..ProcessReading::default()
            }],
            cgroups: vec![CgroupReading {
                path: "/task/app".into(),
                memory_usage_bytes: Some(200_000_000),
                memory_limit_bytes: Some(LIMIT),
                pids_current: Some(20),
                pids_max: Some(512),
                cpu_periods: Some(t * 10),
                cpu_throttled_periods: Some(0),
                ..CgroupReading::default()
            }],
            networks: vec![NetReading {
                namespace: Some(1),
                listeners: vec![Listener { port: 8080, queue: 0, backlog: 128 }],
                listen_overflows: Some(0),
                listen_drops: Some(0),
            }],
            probe: Some(ProbeReading::Answered { status: 200, latency_ms: 3 }),
            ..Sample::default()
        }
    }

    #[derive(Debug)]
    struct Outcome {
        /// (second, state entered)
        transitions: Vec<(u64, State)>,
        /// The reasons when the task first drained.
        drained_for: Vec<&'static str>,
        /// Every reason code seen in any tick.
        seen: Vec<&'static str>,
    }

    impl Outcome {
        fn first_drain(&self) -> Option<u64> {
            self.transitions.iter().find(|(_, s)| *s == State::Draining).map(|(t, _)| *t)
        }
        fn never_drained(&self) -> bool {
            self.first_drain().is_none()
        }
    }

    fn run(seconds: u64, mut world: impl FnMut(u64, &mut Sample)) -> Outcome {
        run_with(JudgeConfig::default(), seconds, &mut world)
    }

    fn run_with(config: JudgeConfig, seconds: u64, world: &mut dyn FnMut(u64, &mut Sample)) -> Outcome {
        let mut judge = Judge::new(config, 0);
        let mut outcome = Outcome { transitions: Vec::new(), drained_for: Vec::new(), seen: Vec::new() };
        for t in 0..seconds {
            let mut sample = tick(t);
            world(t, &mut sample);
            if let Some(transition) = judge.observe(&sample, false, None) {
                outcome.transitions.push((t, transition.to));
                if transition.to == State::Draining && outcome.drained_for.is_empty() {
                    outcome.drained_for = judge.verdict().findings.iter().map(|f| f.reason.code()).collect();
                }
            }
            for finding in &judge.verdict().findings {
                if !outcome.seen.contains(&finding.reason.code()) {
                    outcome.seen.push(finding.reason.code());
                }
            }
        }
        outcome
    }

    fn set_memory(sample: &mut Sample, bytes: f64) {
        sample.cgroups[0].memory_usage_bytes = Some(bytes.max(0.0) as u64);
    }

    #[test]
    fn memory_leaks_at_many_rates_drain_before_the_limit() {
        // (leak MB/s, noise ± MB, least lead time in seconds). Two minutes of steady state, then
        // the leak from 200 MB towards 512 MB.
        let cases = [
            (0.1, 0.5, 150.0),
            (0.5, 2.0, 150.0),
            (1.0, 3.0, 150.0),
            (1.75, 3.0, 100.0), // fills in about 3 minutes
            (5.0, 4.0, 25.0),
            (10.0, 5.0, 10.0),
            (50.0, 5.0, 0.0),
        ];
        for (rate, noise, least_lead) in cases {
            let start = 120;
            let fill_seconds = (LIMIT as f64 - 200.0 * MB) / (rate * MB);
            let oom_at = start as f64 + fill_seconds;
            let mut rng = Noise(42);
            let outcome = run(start + fill_seconds as u64 + 5, |t, s| {
                let leaked = rate * MB * t.saturating_sub(start) as f64;
                set_memory(s, 200.0 * MB + leaked + noise * MB * rng.next());
            });
            let drained = outcome.first_drain().map(|t| t as f64);
            if rate >= 50.0 {
                // Full in about 6 s: faster than any forecast can be confirmed. The kernel's
                // OOM kill and the restart patterns are what catch it.
                continue;
            }
            let drained = drained.unwrap_or_else(|| panic!("{rate} MB/s: never drained: {outcome:?}"));
            let lead = oom_at - drained;
            // Shown with `cargo test -- --nocapture lead`.
            eprintln!(
                "lead time: {rate:>5} MB/s leak, {fill_seconds:>5.0} s to fill: drained {lead:>5.0} s before the limit"
            );
            assert!(
                lead >= least_lead,
                "{rate} MB/s: drained {lead:.0} s before the limit, wanted {least_lead}"
            );
            assert_eq!(outcome.drained_for, ["memory_exhaustion"], "{rate} MB/s");
        }
    }

    #[test]
    fn a_leak_of_three_minutes_drains_at_least_30_seconds_early() {
        // From 200 MB at 1.74 MB/s: the 512 MB limit is reached 180 s after the leak starts.
        let rate = (LIMIT as f64 - 200.0 * MB) / 180.0;
        let mut rng = Noise(9);
        let outcome = run(120 + 185, |t, s| {
            set_memory(s, 200.0 * MB + rate * t.saturating_sub(120) as f64 + 2.0 * MB * rng.next())
        });
        let lead = 300.0 - outcome.first_drain().expect("drained") as f64;
        assert!(lead >= 30.0, "lead {lead} s");
    }

    #[test]
    fn gc_sawtooth_without_growth_never_drains() {
        // 200 MB → 480 MB (94 % of the limit) in 40 s, collected, again, for ten minutes.
        let mut rng = Noise(5);
        let outcome =
            run(600, |t, s| set_memory(s, 200.0 * MB + 7.0 * MB * (t % 40) as f64 + MB * rng.next()));
        assert!(outcome.never_drained(), "{outcome:?}");
        assert!(!outcome.seen.contains(&"memory_exhaustion"), "{outcome:?}");
    }

    #[test]
    fn a_leak_under_a_sawtooth_drains() {
        // The sawtooth's troughs rise 0.5 MB/s: peaks reach 512 MB at about t = 420 s.
        let outcome =
            run(440, |t, s| set_memory(s, 100.0 * MB + 0.5 * MB * t as f64 + 6.0 * MB * (t % 30) as f64));
        let drained = outcome.first_drain().expect("drained");
        assert_eq!(outcome.drained_for, ["memory_exhaustion"]);
        assert!(drained <= 400, "drained at {drained} s");
    }

    #[test]
    fn a_plateau_at_85_percent_stays_healthy() {
        // Warm-up fills a cache to 85 % in the first 40 s, then holds for ten minutes.
        let mut rng = Noise(8);
        let outcome = run(660, |t, s| {
            let level = 100.0 * MB + (435.0 - 100.0) * MB * (t.min(40) as f64 / 40.0);
            set_memory(s, level + MB * rng.next())
        });
        assert!(outcome.transitions.is_empty(), "{outcome:?}");
    }

    #[test]
    fn a_surge_degrades_but_never_drains() {
        // Traffic ×5 from t = 60 s to t = 300 s: CPU throttled, accept queues full and
        // overflowing, the health URL timing out, memory up a little with more requests in flight.
        let mut overflows = 0;
        let outcome = run(400, |t, s| {
            if (60..300).contains(&t) {
                s.cgroups[0].cpu_throttled_periods = Some((t - 60) * 6);
                s.networks[0].listeners[0].queue = 128;
                overflows += 40;
                s.probe = Some(if t % 2 == 0 {
                    ProbeReading::TimedOut
                } else {
                    ProbeReading::Answered { status: 200, latency_ms: 900 }
                });
                set_memory(s, 260.0 * MB);
                if t % 7 == 0 {
                    s.probe = Some(ProbeReading::TimedOut);
                }
            }
            s.networks[0].listen_overflows = Some(overflows);
        });
        assert!(outcome.never_drained(), "{outcome:?}");
        assert!(
            outcome.seen.contains(&"cpu_saturated") && outcome.seen.contains(&"accept_queue_full"),
            "{outcome:?}"
        );
        assert_eq!(outcome.transitions.last().map(|(_, s)| *s), Some(State::Healthy));
    }

    #[test]
    fn a_surge_that_times_out_the_probe_for_long_is_overload_not_a_hang() {
        let outcome = run(200, |t, s| {
            if t >= 60 {
                s.cgroups[0].cpu_throttled_periods = Some((t - 60) * 8);
                s.probe = Some(ProbeReading::TimedOut);
            }
        });
        assert!(outcome.never_drained(), "{outcome:?}");
        assert!(outcome.seen.contains(&"app_overloaded"), "{outcome:?}");
    }

    #[test]
    fn a_dependency_outage_degrades_but_never_drains() {
        let outcome = run(300, |t, s| {
            if t >= 60 {
                s.probe = Some(ProbeReading::Answered { status: 503, latency_ms: 2 });
            }
        });
        assert!(outcome.never_drained());
        assert_eq!(outcome.transitions, [(60, State::Degraded)]);
    }

    #[test]
    fn a_hung_app_drains() {
        // Alive, idle, and not answering from t = 100 s.
        let outcome = run(120, |t, s| {
            if t >= 100 {
                s.probe = Some(ProbeReading::TimedOut);
            }
        });
        assert_eq!(outcome.first_drain(), Some(102));
        assert_eq!(outcome.drained_for, ["app_unresponsive"]);
    }

    #[test]
    fn an_fd_leak_drains_before_emfile() {
        // 4 fds a second from t = 120 s: 1024 is reached at t = 363 s.
        let outcome = run(370, |t, s| {
            s.processes[0].open_fds = Some((50 + 4 * t.saturating_sub(120)).min(1024));
        });
        let drained = outcome.first_drain().expect("drained");
        assert_eq!(outcome.drained_for, ["fd_exhaustion"]);
        assert!(363 - drained >= 60, "drained at {drained} s");
    }

    #[test]
    fn a_thread_leak_drains_before_the_pids_limit() {
        // 2 threads a second from t = 120 s: 512 is reached at t = 366 s.
        let outcome = run(370, |t, s| {
            let pids = (20 + 2 * t.saturating_sub(120)).min(512);
            s.cgroups[0].pids_current = Some(pids);
            s.processes[0].threads = Some(pids);
        });
        let drained = outcome.first_drain().expect("drained");
        assert_eq!(outcome.drained_for, ["thread_exhaustion"]);
        assert!(366 - drained >= 60, "drained at {drained} s");
    }

    fn with_task(s: &mut Sample, restart_count: Option<u32>) {
        s.task = Some(TaskReading {
            containers: vec![ContainerReading {
                name: "app".into(),
                restart_count,
                ..ContainerReading::default()
            }],
            ..TaskReading::default()
        });
    }

    #[test]
    fn an_unhealthy_container_degrades_and_never_drains() {
        let outcome = run(120, |t, sample| {
            let health = if t >= 30 { ContainerHealth::Unhealthy } else { ContainerHealth::Healthy };
            sample.task = Some(TaskReading {
                containers: vec![ContainerReading {
                    name: "app".into(),
                    health: Some(health),
                    ..ContainerReading::default()
                }],
                ..TaskReading::default()
            });
        });
        assert!(outcome.never_drained(), "{outcome:?}");
        assert_eq!(outcome.transitions, [(30, State::Degraded)]);
        assert!(outcome.seen.contains(&"container_unhealthy"));
    }

    #[test]
    fn crash_loops_from_restart_counts() {
        // (RestartCount changes at these seconds, expected first drain)
        let cases: [(&[u64], Option<u64>); 4] = [
            (&[], None),
            (&[100], None),
            (&[100, 200], Some(200)),
            (&[100, 1200], None), // 18 minutes apart: outside the 15 minute window
        ];
        for (restarts_at, expected) in cases {
            let outcome = run(1300, |t, s| {
                let count = restarts_at.iter().filter(|r| **r <= t).count() as u32;
                with_task(s, Some(count));
            });
            assert_eq!(outcome.first_drain(), expected, "{restarts_at:?}: {outcome:?}");
            if expected.is_some() {
                assert_eq!(outcome.drained_for, ["crash_loop"]);
            } else if !restarts_at.is_empty() {
                assert!(outcome.seen.contains(&"restarted"));
            }
        }
    }

    #[test]
    fn oom_kills_followed_by_restarts_are_oom_restarts() {
        let outcome = run(300, |t, s| {
            let ooms = [100, 200].iter().filter(|r| **r <= t).count() as u64;
            s.cgroups[0].oom_kills = Some(ooms);
            if [100, 200].contains(&t) {
                s.processes.clear();
            } else if t > 100 {
                s.processes[0].pid = if t > 200 { 12 } else { 11 };
                s.processes[0].start_ticks = 10_000 + t;
                s.processes[0].start_ticks = if t > 200 { 20_000 } else { 10_000 };
            }
        });
        assert_eq!(outcome.first_drain(), Some(100), "the process was gone: {outcome:?}");
        assert!(outcome.seen.contains(&"oom_restarts"), "{outcome:?}");
    }

    #[test]
    fn stale_fargate_samples_still_drain_a_container_leak_in_time() {
        // Container memory from the metadata service, refreshed every 10 s, polled every second;
        // 1.5 MB/s from t = 120 s reaches the 512 MB limit at t = 328 s.
        let outcome = run(335, |t, s| {
            s.cgroups.clear();
            s.processes.clear();
            s.proc_readable = false;
            let read = t / 10 * 10;
            let used = 200.0 * MB + 1.5 * MB * read.saturating_sub(120) as f64;
            s.task = Some(TaskReading {
                containers: vec![ContainerReading {
                    name: "app".into(),
                    stats: Some(ContainerStats {
                        read_unix_nanos: (1_790_000_000 + read as i64) * 1_000_000_000,
                        memory_working_set_bytes: Some(used as u64),
                        memory_limit_bytes: Some(LIMIT),
                        ..ContainerStats::default()
                    }),
                    ..ContainerReading::default()
                }],
                stats_stale: t % 10 != 0,
                ..TaskReading::default()
            });
        });
        let drained = outcome.first_drain().unwrap_or_else(|| panic!("never drained: {outcome:?}"));
        assert!(outcome.drained_for.contains(&"memory_exhaustion"), "{outcome:?}");
        assert!(328 - drained >= 60, "drained at {drained} s");
    }

    #[test]
    fn missing_inputs_degrade_but_never_drain() {
        let config = JudgeConfig { tmds_expected: true, ..JudgeConfig::default() };
        let outcome = run_with(config, 200, &mut |t, s| {
            if (50..100).contains(&t) {
                s.proc_readable = false;
                s.processes.clear();
                s.cgroups.clear();
            }
            if t < 150 {
                s.task = Some(TaskReading::default());
            }
        });
        assert!(outcome.never_drained(), "{outcome:?}");
        assert_eq!(
            outcome.transitions,
            [(50, State::Degraded), (100, State::Healthy), (150, State::Degraded)]
        );
    }

    #[test]
    fn vanished_processes_drain_only_if_some_were_seen() {
        let never = run(10, |_, s| s.processes.clear());
        assert!(never.never_drained());
        let outcome = run(10, |t, s| {
            if (4..6).contains(&t) {
                s.processes.clear();
            }
        });
        assert_eq!(outcome.transitions, [(4, State::Draining), (6, State::Healthy)]);
    }

    #[test]
    fn forecasts_confirm_over_enter_ticks_and_clear_over_exit_ticks() {
        let config = JudgeConfig { enter_ticks: 3, exit_ticks: 5, ..JudgeConfig::default() };
        // A leak from t = 120 s that stops at t = 200 s, far below the limit but fast enough to
        // forecast the limit within the horizon while it lasts.
        let outcome = run_with(config, 260, &mut |t, s| {
            set_memory(s, 200.0 * MB + 2.0 * MB * (t.clamp(120, 200) - 120) as f64)
        });
        let drained = outcome.first_drain().expect("drained");
        let degraded =
            outcome.transitions.iter().find(|(_, s)| *s == State::Degraded).map(|(t, _)| *t).unwrap();
        assert_eq!(drained - degraded, 2, "degraded while confirming, then draining: {outcome:?}");
        assert_eq!(outcome.transitions.last().map(|(_, s)| *s), Some(State::Healthy));
    }

    #[test]
    fn stopping_drains_at_once_and_comes_first() {
        let mut judge = Judge::new(JudgeConfig::default(), 0);
        let mut sample = tick(0);
        sample.probe = Some(ProbeReading::Answered { status: 503, latency_ms: 2 });
        let transition = judge.observe(&sample, true, None).unwrap();
        assert_eq!((transition.from, transition.to), (State::Healthy, State::Draining));
        let codes: Vec<_> = judge.verdict().findings.iter().map(|f| f.reason.code()).collect();
        assert_eq!(codes, ["stopping", "app_errors"]);
        assert!(
            judge
                .verdict()
                .headline()
                .starts_with("draining: stopping (vigil received a stop signal); app_errors")
        );
    }

    #[test]
    fn anomaly_alone_only_degrades() {
        let mut judge = Judge::new(JudgeConfig::default(), 0);
        for t in 0..100 {
            judge.observe(&tick(t), false, Some("score 0.93 above threshold 0.41".into()));
            assert_eq!(judge.verdict().state, State::Degraded);
        }
    }

    #[test]
    fn restart_windows_read_in_minutes_or_seconds() {
        assert_eq!(Window(900_000).to_string(), "15 min");
        assert_eq!(Window(30_000).to_string(), "30 s");
        assert_eq!(Window(90_000).to_string(), "90 s");
        assert_eq!(Window(1_500).to_string(), "2 s");
    }
}
