//! The core, one call a tick: sample → features → restarts → anomaly → evidence → verdict →
//! fleet. Pure: no I/O, no clock. The tick loop reads the sources (and the latest fleet view)
//! before it and publishes after it.
//!
//! Every stage runs on the same tick and passes typed values forward, so the anomaly score of
//! a tick is evidence in that tick's verdict. The judge's verdict is local; the fleet stage
//! weighs it against the peers and gives the verdict that is served.

use crate::judge::anomaly::{Reading, Scorer, Scoring};
use crate::judge::evidence::{Inputs, Rules, RulesConfig};
use crate::judge::features::{FeatureConfig, Features, Signals};
use crate::judge::fleet::{
    self, FleetConfig, FleetOutcome, FleetView, Own, Peer, Reasons, Sightings, Silence,
};
use crate::judge::restarts::{RestartFindings, RestartTracker};
use crate::judge::sample::{Millis, ProbeReading, Sample};
use crate::judge::vector::{self, Raw};
use crate::judge::verdict::{Judge, JudgeConfig, State, Transition, Verdict};

/// How the core is set up.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PipelineConfig {
    pub features: FeatureConfig,
    pub rules: RulesConfig,
    pub judge: JudgeConfig,
    pub fleet: FleetConfig,
}

/// What one tick produced besides the verdict, for the snapshot, the metrics and the recorder.
#[derive(Debug)]
pub struct Step<E> {
    pub signals: Signals,
    pub restarts: RestartFindings,
    /// The model's raw input channels of this tick (what `VIGIL_RECORD` writes).
    pub raw: Raw,
    /// The autoencoder's reading of this tick: `None` without a model or until its input
    /// window is full. A failed run is no evidence.
    pub anomaly: Option<Result<Reading, E>>,
    /// The change of the served state this tick caused, if any.
    pub transition: Option<Transition>,
    /// What the fleet made of this tick.
    pub fleet: FleetOutcome,
    /// The draining reasons this task's own rules show, before the fleet's say: what the peers
    /// read as its evidence.
    pub evidence: Reasons,
}

/// The core's stages and what they remember across ticks.
pub struct Pipeline<S> {
    features: Features,
    restarts: RestartTracker,
    /// The autoencoder, unless it is off.
    scoring: Option<Scoring<S>>,
    rules: Rules,
    judge: Judge,
    fleet: FleetConfig,
    /// The verdict served: the judge's, after the fleet's say.
    served: Verdict,
    /// This task's id and zone, from the last metadata reading.
    identity: (String, String),
    sightings: Sightings,
    silence: Silence,
    /// The shared forecasts the fleet released on the previous tick ([`FleetOutcome::released`]).
    released: Reasons,
}

impl<S: Scorer> Pipeline<S> {
    pub fn new(config: PipelineConfig, scoring: Option<Scoring<S>>, at: Millis) -> Pipeline<S> {
        Pipeline {
            features: Features::new(config.features),
            restarts: RestartTracker::new(config.rules.restart_window_ms),
            scoring,
            rules: Rules::new(config.rules),
            judge: Judge::new(config.judge, at),
            fleet: config.fleet,
            served: Verdict::initial(at),
            identity: Default::default(),
            sightings: Sightings::default(),
            silence: Silence::default(),
            released: Reasons::default(),
        }
    }

    /// One tick. `stopping` is true once SIGTERM or SIGINT has arrived; `view` is the latest
    /// fleet view, if vigil has one.
    pub fn step(&mut self, sample: &Sample, stopping: bool, view: Option<&FleetView>) -> Step<S::Error> {
        if let Some(task) = &sample.task {
            let id = task.task_id();
            if self.identity.0 != id || self.identity.1 != task.availability_zone {
                self.identity = (id.to_string(), task.availability_zone.clone());
            }
        }
        let signals = self.features.observe(sample);
        let restarts = self.restarts.observe(sample);
        let raw = vector::raw(sample, &signals);
        let anomaly = self.scoring.as_mut().and_then(|scoring| scoring.push(&raw).transpose());
        let reading = anomaly.as_ref().and_then(|result| result.as_ref().ok());

        let usable = fleet::usable(view, sample.at, &self.fleet).ok();
        let me = Peer {
            task: self.identity.0.clone(),
            zone: self.identity.1.clone(),
            probe_latency_seconds: match sample.probe {
                Some(ProbeReading::Answered { latency_ms, .. }) => Some(latency_ms as f64 / 1000.0),
                _ => None,
            },
            anomaly_ratio: reading.and_then(Reading::ratio),
            ..Peer::default()
        };
        let stand_out = usable.and_then(|view| fleet::outlier(&me, view, &self.fleet));
        let evidence = self.rules.gather(&Inputs {
            sample,
            signals: &signals,
            restarts: &restarts,
            anomaly: reading,
            stopping,
            stand_out: stand_out.as_ref(),
            quick_probe: usable.is_some(),
        });
        self.judge.decide(&evidence, sample.at);

        let local = self.judge.verdict();
        let seen = self.sightings.observe(usable, &self.fleet);
        let own = Own {
            task: &self.identity.0,
            zone: &self.identity.1,
            was_draining: self.served.state == State::Draining,
            was_released: self.released,
            seen,
            claim_seen: self.sightings.claim_seen(&self.fleet),
            unanswered_since_ms: self.silence.observe(sample.probe, sample.probe_sent_ms),
        };
        let (findings, outcome) = fleet::arbitrate(local, own, view, sample.at, &self.fleet);
        self.released = outcome.released;
        let state = findings.first().map_or(State::Healthy, |finding| finding.state);
        let previous = self.served.state;
        self.served.findings = findings;
        let transition = (state != previous).then(|| {
            self.served.state = state;
            self.served.since = sample.at;
            Transition { from: previous, to: state, at: sample.at }
        });
        Step {
            signals,
            restarts,
            raw,
            anomaly,
            transition,
            fleet: outcome,
            evidence: fleet::evidence_of(local),
        }
    }

    /// The verdict served on the last tick.
    pub fn verdict(&self) -> &Verdict {
        &self.served
    }

    /// Whether any watched process has ever been visible.
    pub fn processes_seen(&self) -> bool {
        self.rules.processes_seen()
    }

    /// The autoencoder's stage, unless it is off.
    pub fn scoring(&self) -> Option<&Scoring<S>> {
        self.scoring.as_ref()
    }
}
#[cfg(test)]
mod tests {
    //! Deterministic timelines, one tick a second, with explicit time. Each asserts the
    //! transitions and, for failures, how long before the limit the task was drained.

    use super::*;
    use crate::judge::anomaly::Calibration;
    use crate::judge::evidence::Reason;
    use crate::judge::fleet::{FleetView, Peer, Reasons};
    use crate::judge::sample::{
        CgroupReading, ContainerHealth, ContainerReading, ContainerStats, Listener, NetReading, ProbeReading,
        ProcessReading, TaskReading,
    };
    use crate::judge::verdict::State;

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

    /// No model: the timelines test the rules.
    struct NoModel;
    impl Scorer for NoModel {
        type Error = std::convert::Infallible;
        fn score(&mut self, _: &[f32; crate::judge::vector::INPUT_WIDTH]) -> Result<f32, Self::Error> {
            Ok(0.0)
        }
    }

    fn run(seconds: u64, mut world: impl FnMut(u64, &mut Sample)) -> Outcome {
        run_with(PipelineConfig::default(), seconds, &mut world)
    }

    fn run_with(config: PipelineConfig, seconds: u64, world: &mut dyn FnMut(u64, &mut Sample)) -> Outcome {
        let mut judge = Pipeline::<NoModel>::new(config, None, 0);
        let mut outcome = Outcome { transitions: Vec::new(), drained_for: Vec::new(), seen: Vec::new() };
        for t in 0..seconds {
            let mut sample = tick(t);
            world(t, &mut sample);
            if let Some(transition) = judge.step(&sample, false, None).transition {
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

    /// A service of this task and two peers behind a Prometheus that scrapes every second and
    /// answers two seconds late: the view at `t` shows everyone's evidence of `t - 2`. `peers`
    /// says what the peers' rules show at `t`; `prometheus_up` whether a new view arrives.
    fn run_in_fleet(
        seconds: u64,
        world: impl Fn(u64, &mut Sample),
        peers: impl Fn(u64) -> Reasons,
        prometheus_up: impl Fn(u64) -> bool,
    ) -> (Outcome, Vec<(u64, String)>) {
        let mut judge = Pipeline::<NoModel>::new(PipelineConfig::default(), None, 0);
        let mut outcome = Outcome { transitions: Vec::new(), drained_for: Vec::new(), seen: Vec::new() };
        let mut holds = Vec::new();
        let mut published: Vec<(Reasons, Option<f64>)> = Vec::new();
        let mut view: Option<FleetView> = None;
        for t in 0..seconds {
            if prometheus_up(t) && t >= 2 {
                // The peers as scraped two ticks ago: their apps answered a probe sent 50 ms
                // into that tick, unless they show the hang too.
                let evidence = peers(t - 2);
                let answered = !evidence.contains(Reason::AppUnresponsive);
                let peer = |task: &str| Peer {
                    task: task.into(),
                    zone: task.into(),
                    evidence,
                    answered_probe_sent_ms: answered.then(|| tick(t - 2).wall_ms + 50),
                    probe_latency_seconds: answered.then_some(0.004),
                    ..Peer::default()
                };
                view = Some(FleetView {
                    at: t * 1000,
                    own: Some(Peer {
                        task: "me".into(),
                        evidence: published[t as usize - 2].0,
                        candidate_seconds: published[t as usize - 2].1,
                        ..Peer::default()
                    }),
                    peers: vec![peer("b"), peer("c")],
                });
            }
            let mut sample = tick(t);
            sample.probe_sent_ms = sample.wall_ms + 3;
            with_task(&mut sample, None);
            sample.task.as_mut().unwrap().task_arn = "arn:aws:ecs:r:1:task/c/me".into();
            world(t, &mut sample);
            let step = judge.step(&sample, false, view.as_ref());
            published.push((step.evidence, step.fleet.candidate_seconds));
            if let Some(transition) = step.transition {
                outcome.transitions.push((t, transition.to));
                if transition.to == State::Draining && outcome.drained_for.is_empty() {
                    outcome.drained_for = judge.verdict().findings.iter().map(|f| f.reason.code()).collect();
                }
            }
            for finding in &judge.verdict().findings {
                if let Some(hold) = &finding.held
                    && holds.last().is_none_or(|(_, code): &(u64, String)| code != hold.code())
                {
                    holds.push((t, hold.code().to_string()));
                }
            }
        }
        (outcome, holds)
    }

    fn hang_from(start: u64) -> impl Fn(u64, &mut Sample) {
        move |t, s| {
            if t >= start {
                s.probe = Some(ProbeReading::TimedOut);
            }
        }
    }

    #[test]
    fn with_calm_peers_a_hang_drains_once_they_have_answered_since() {
        let (outcome, holds) = run_in_fleet(120, hang_from(100), |_| Reasons::default(), |_| true);
        // One (re-probed) miss is evidence at 100; the view of 102 holds the peers' answers to
        // probes sent 50 ms into tick 100, after this task's went unanswered.
        assert_eq!(outcome.first_drain(), Some(102));
        assert_eq!(outcome.drained_for, ["app_unresponsive"]);
        assert_eq!(holds, [(100, "fleet_unseen".to_string())]);
    }

    #[test]
    fn a_slowdown_every_task_shares_never_drains() {
        let everyone = |t: u64| {
            if t >= 100 { [Reason::AppUnresponsive].into_iter().collect() } else { Reasons::default() }
        };
        let (outcome, holds) = run_in_fleet(160, hang_from(100), everyone, |_| true);
        assert!(outcome.never_drained(), "{:?}", outcome.transitions);
        assert_eq!(outcome.transitions, [(100, State::Degraded)]);
        assert_eq!(holds, [(100, "fleet_unseen".to_string()), (102, "fleet_wide".to_string())]);
    }

    #[test]
    fn without_prometheus_the_local_rules_decide() {
        // The last view arrives at 49 s; from 65 s on it is stale: a hang at 100 s drains
        // after the local rule's three misses.
        let (outcome, holds) = run_in_fleet(120, hang_from(100), |_| Reasons::default(), |t| t < 50);
        assert_eq!(outcome.first_drain(), Some(102));
        assert!(holds.is_empty(), "{holds:?}");
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
        let config = PipelineConfig {
            rules: RulesConfig { tmds_expected: true, ..RulesConfig::default() },
            ..PipelineConfig::default()
        };
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
        let config = PipelineConfig {
            judge: JudgeConfig { enter_ticks: 3, exit_ticks: 5 },
            ..PipelineConfig::default()
        };
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
        let mut judge = Pipeline::<NoModel>::new(PipelineConfig::default(), None, 0);
        let mut sample = tick(0);
        sample.probe = Some(ProbeReading::Answered { status: 503, latency_ms: 2 });
        let transition = judge.step(&sample, true, None).transition.unwrap();
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

    /// Scores channel 0 of the newest row (the task's memory use), so a jump in it shows at once.
    struct MemoryScorer;
    impl Scorer for MemoryScorer {
        type Error = std::convert::Infallible;
        fn score(&mut self, input: &[f32; crate::judge::vector::INPUT_WIDTH]) -> Result<f32, Self::Error> {
            let newest = input.len() - crate::judge::vector::CHANNELS.len();
            Ok(input[newest].abs() + 0.01)
        }
    }

    fn with_model() -> Pipeline<MemoryScorer> {
        let calibration = Calibration { settle: 5, ticks: 20, enter: 1, exit: 3, ..Calibration::default() };
        Pipeline::new(PipelineConfig::default(), Some(Scoring::new(MemoryScorer, calibration)), 0)
    }

    /// The anomaly is evidence on the very tick it is scored: no lag of one interval.
    #[test]
    fn an_anomaly_degrades_the_verdict_of_the_tick_that_scores_it() {
        let mut pipeline = with_model();
        for t in 0..120 {
            let mut sample = tick(t);
            if t >= 100 {
                sample.cgroups[0].memory_usage_bytes = Some(500_000_000);
            }
            let step = pipeline.step(&sample, false, None);
            let reading = step.anomaly.map(|result| result.unwrap());
            let anomalous = reading.is_some_and(|r| r.is_evidence());
            assert_eq!(pipeline.verdict().has(Reason::Anomaly), anomalous, "tick {t}: {reading:?}");
            if t == 100 {
                assert!(anomalous, "the jump at tick 100 is scored as anomalous on tick 100: {reading:?}");
                assert_eq!(step.transition.map(|t| t.to), Some(State::Degraded));
            }
            if t < 100 {
                assert!(!anomalous, "tick {t}: {reading:?}");
            }
        }
    }

    #[test]
    fn anomaly_alone_only_degrades() {
        let mut pipeline = with_model();
        let mut degraded = 0;
        for t in 0..200 {
            let mut sample = tick(t);
            // From tick 100 memory swings up and down each tick: always anomalous, never a trend.
            if t >= 100 {
                sample.cgroups[0].memory_usage_bytes =
                    Some(if t % 2 == 0 { 480_000_000 } else { 20_000_000 });
            }
            pipeline.step(&sample, false, None);
            assert_ne!(pipeline.verdict().state, State::Draining, "tick {t}");
            degraded += usize::from(pipeline.verdict().has(Reason::Anomaly));
        }
        assert!(degraded >= 90, "anomalous on {degraded} ticks");
    }
}
