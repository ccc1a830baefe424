//! Evidence → healthy / degraded / draining, with reasons. Pure: time comes in with the sample.
//!
//! `draining` is what the load balancer reads as "take this task out" (503), and on ECS it means
//! "replace this task". So only evidence local to this task that a fresh task would fix may
//! drain it. Evidence every task would share (a dependency outage that makes the app answer
//! 5xx fast) and vigil's own missing inputs give `degraded`: visible, never red.
//!
//! Rules (reactive):
//!
//! | reason             | state    | when                                                          |
//! |--------------------|----------|---------------------------------------------------------------|
//! | `stopping`         | draining | SIGTERM or SIGINT received                                    |
//! | `app_unresponsive` | draining | the app health URL did not answer on 3 consecutive ticks      |
//! | `processes_gone`   | draining | watched processes were seen and all of them have vanished     |
//! | `app_errors`       | degraded | the app answered its health URL with a 5xx                    |
//! | `input_missing`    | degraded | `/proc` unreadable, or the metadata service not answering     |

use std::fmt::Write as _;

use crate::sample::{Millis, ProbeReading, Sample};

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
    AppUnresponsive,
    ProcessesGone,
    AppErrors,
    InputMissing,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::Stopping,
        Reason::AppUnresponsive,
        Reason::ProcessesGone,
        Reason::AppErrors,
        Reason::InputMissing,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::Stopping => "stopping",
            Reason::AppUnresponsive => "app_unresponsive",
            Reason::ProcessesGone => "processes_gone",
            Reason::AppErrors => "app_errors",
            Reason::InputMissing => "input_missing",
        }
    }

    /// The state this reason puts the task in on its own.
    pub fn state(self) -> State {
        match self {
            Reason::Stopping | Reason::AppUnresponsive | Reason::ProcessesGone => State::Draining,
            Reason::AppErrors | Reason::InputMissing => State::Degraded,
        }
    }
}

/// One active reason with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reason: Reason,
    /// One line of evidence, e.g. `app health URL did not answer on 3 consecutive ticks (timed out)`.
    pub evidence: String,
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

/// How the judge is set up: which inputs are expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgeConfig {
    /// The metadata service is configured (ECS mode), so its absence is missing input.
    pub tmds_expected: bool,
    /// Consecutive unanswered probes that drain the task.
    pub probe_misses_to_drain: u32,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig { tmds_expected: false, probe_misses_to_drain: 3 }
    }
}

/// Turns each tick's sample into a verdict, remembering what it needs across ticks.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    probe_misses: u32,
    last_miss: Option<ProbeReading>,
    processes_seen: bool,
    verdict: Verdict,
}

impl Judge {
    pub fn new(config: JudgeConfig, at: Millis) -> Judge {
        Judge {
            config,
            probe_misses: 0,
            last_miss: None,
            processes_seen: false,
            verdict: Verdict::initial(at),
        }
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Whether any watched process has ever been visible. When false, vigil cannot see the
    /// app's processes (no shared PID namespace) and process watching is off.
    pub fn processes_seen(&self) -> bool {
        self.processes_seen
    }

    /// Judges one tick. `stopping` is true once SIGTERM or SIGINT arrived.
    pub fn observe(&mut self, sample: &Sample, stopping: bool) -> Option<Transition> {
        let mut findings = Vec::new();

        if stopping {
            findings
                .push(Finding { reason: Reason::Stopping, evidence: "vigil received a stop signal".into() });
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
                    findings.push(Finding {
                        reason: Reason::AppErrors,
                        evidence: format!("app health URL answered {status} in {latency_ms} ms"),
                    });
                }
            }
        }
        if self.probe_misses >= self.config.probe_misses_to_drain {
            let how = match self.last_miss {
                Some(ProbeReading::Refused) => "connection refused",
                _ => "timed out",
            };
            findings.push(Finding {
                reason: Reason::AppUnresponsive,
                evidence: format!(
                    "app health URL did not answer on {} consecutive ticks ({how})",
                    self.probe_misses
                ),
            });
        }

        if sample.proc_readable {
            if !sample.processes.is_empty() {
                self.processes_seen = true;
            } else if self.processes_seen {
                findings.push(Finding {
                    reason: Reason::ProcessesGone,
                    evidence: "every watched process has exited".into(),
                });
            }
        } else {
            findings
                .push(Finding { reason: Reason::InputMissing, evidence: "process table unreadable".into() });
        }

        if self.config.tmds_expected && sample.task.is_none() {
            findings.push(Finding {
                reason: Reason::InputMissing,
                evidence: "task metadata service not answering".into(),
            });
        }

        findings.sort_by_key(|finding| (std::cmp::Reverse(finding.reason.state()), finding.reason));
        let state = findings.iter().map(|finding| finding.reason.state()).max().unwrap_or(State::Healthy);

        let previous = self.verdict.state;
        self.verdict.findings = findings;
        if state == previous {
            return None;
        }
        self.verdict.state = state;
        self.verdict.since = sample.at;
        Some(Transition { from: previous, to: state, at: sample.at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{ProcessReading, TaskReading};

    /// One tick of a scripted timeline.
    #[derive(Clone, Copy)]
    struct Tick {
        probe: Option<ProbeReading>,
        processes: usize,
        proc_readable: bool,
        task: bool,
        stopping: bool,
    }

    const FINE: Tick = Tick { probe: None, processes: 1, proc_readable: true, task: true, stopping: false };
    const ANSWER_200: Option<ProbeReading> = Some(ProbeReading::Answered { status: 200, latency_ms: 3 });
    const ANSWER_503: Option<ProbeReading> = Some(ProbeReading::Answered { status: 503, latency_ms: 2 });

    /// Runs a timeline (one tick a second) and returns the state and reason codes after each.
    fn run(config: JudgeConfig, ticks: &[Tick]) -> Vec<(State, Vec<&'static str>)> {
        let mut judge = Judge::new(config, 0);
        ticks
            .iter()
            .enumerate()
            .map(|(i, tick)| {
                let sample = Sample {
                    at: i as u64 * 1000,
                    proc_readable: tick.proc_readable,
                    processes: vec![ProcessReading::default(); tick.processes],
                    task: tick.task.then(TaskReading::default),
                    probe: tick.probe,
                    ..Sample::default()
                };
                judge.observe(&sample, tick.stopping);
                let verdict = judge.verdict();
                let codes = verdict.findings.iter().map(|f| f.reason.code()).collect();
                (verdict.state, codes)
            })
            .collect()
    }

    fn states(results: &[(State, Vec<&'static str>)]) -> Vec<State> {
        results.iter().map(|(state, _)| *state).collect()
    }

    use State::{Degraded as D, Draining as X, Healthy as H};

    #[test]
    fn probe_must_miss_three_consecutive_ticks() {
        let miss = Tick { probe: Some(ProbeReading::TimedOut), ..FINE };
        let refused = Tick { probe: Some(ProbeReading::Refused), ..FINE };
        let ok = Tick { probe: ANSWER_200, ..FINE };
        let results = run(JudgeConfig::default(), &[ok, miss, miss, ok, miss, refused, miss, miss, ok]);
        assert_eq!(states(&results), [H, H, H, H, H, H, X, X, H]);
        assert_eq!(results[6].1, ["app_unresponsive"]);
    }

    #[test]
    fn fast_5xx_is_degraded_never_draining() {
        let errors = Tick { probe: ANSWER_503, ..FINE };
        let results = run(JudgeConfig::default(), &[errors; 20]);
        assert!(states(&results).iter().all(|state| *state == D));
        assert_eq!(results[19].1, ["app_errors"]);
    }

    #[test]
    fn vanished_processes_drain_only_if_some_were_seen() {
        let none = Tick { processes: 0, ..FINE };
        let never_seen = run(JudgeConfig::default(), &[none; 5]);
        assert!(states(&never_seen).iter().all(|state| *state == H));

        let results = run(JudgeConfig::default(), &[FINE, FINE, none, none, FINE]);
        assert_eq!(states(&results), [H, H, X, X, H]);
        assert_eq!(results[2].1, ["processes_gone"]);
    }

    #[test]
    fn missing_inputs_are_degraded_never_draining() {
        let unreadable = Tick { proc_readable: false, processes: 0, ..FINE };
        let no_task = Tick { task: false, ..FINE };
        let ecs = JudgeConfig { tmds_expected: true, ..JudgeConfig::default() };
        let results = run(ecs, &[FINE, unreadable, unreadable, no_task, FINE]);
        assert_eq!(states(&results), [H, D, D, D, H]);
        assert_eq!(results[1].1, ["input_missing"]);

        let local = run(JudgeConfig::default(), &[no_task; 3]);
        assert!(states(&local).iter().all(|state| *state == H), "no metadata service expected");
    }

    #[test]
    fn stopping_drains_at_once_and_comes_first() {
        let stopping = Tick { stopping: true, probe: ANSWER_503, ..FINE };
        let results = run(JudgeConfig::default(), &[FINE, stopping]);
        assert_eq!(states(&results), [H, X]);
        assert_eq!(results[1].1, ["stopping", "app_errors"]);
    }

    #[test]
    fn transitions_are_reported_once_with_their_time() {
        let mut judge = Judge::new(JudgeConfig::default(), 0);
        let sample = |at| Sample {
            at,
            proc_readable: true,
            processes: vec![ProcessReading::default()],
            ..Sample::default()
        };
        assert_eq!(judge.observe(&sample(0), false), None);
        let to_draining = judge.observe(&sample(1000), true).unwrap();
        assert_eq!((to_draining.from, to_draining.to, to_draining.at), (H, X, 1000));
        assert_eq!(judge.observe(&sample(2000), true), None);
        assert_eq!(judge.verdict().since, 1000);
        assert_eq!(judge.verdict().headline(), "draining: stopping (vigil received a stop signal)");
    }
}
