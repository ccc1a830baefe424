//! Evidence → healthy / degraded / draining, with hysteresis. Pure: time comes in as an argument.
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
//! The evidence itself is gathered by [`crate::judge::evidence`]; this module only decides.
//! Hysteresis: an exhaustion forecast drains after `enter_ticks` consecutive ticks of evidence and
//! stops draining after `exit_ticks` ticks without it; while confirming it shows as `degraded`.
//! Reactive reasons (stopping, gone, unresponsive, restarts) take effect on the tick they are seen.

use std::fmt;

use crate::judge::evidence::{Evidence, Fact, Reason};
use crate::judge::sample::Millis;

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

    /// The position in [`State::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a draining reason is in its hysteresis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Seen on this tick and in force.
    Now,
    /// Seen on `ticks` ticks in a row, of the `of` it needs before it drains.
    Confirming { ticks: u32, of: u32 },
    /// In force but not seen for `ticks` ticks, of the `of` after which it clears.
    Clearing { ticks: u32, of: u32 },
}

/// One active reason with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub reason: Reason,
    /// The state this finding puts the task in: a draining reason still being confirmed shows
    /// as `Degraded`.
    pub state: State,
    /// What shows it: this tick's, or while clearing the last one seen.
    pub fact: Fact,
    pub phase: Phase,
    /// Seconds until the predicted failure, for forecasts.
    pub eta_seconds: Option<f64>,
    /// Why a draining reason serves anyway: the fleet's say ([`crate::judge::fleet`]).
    pub held: Option<Hold>,
}

/// The evidence line: the fact and, for a reason in hysteresis, how far it has got.
impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fact.fmt(f)?;
        match self.phase {
            Phase::Now => Ok(()),
            Phase::Confirming { ticks, of } => write!(f, "; confirming {ticks}/{of}"),
            Phase::Clearing { ticks, of } => write!(f, "; clearing {ticks}/{of}"),
        }?;
        match &self.held {
            Some(hold) => write!(f, "; held, {hold}"),
            None => Ok(()),
        }
    }
}

/// Why a draining reason serves anyway.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The reason shows on `with` of the `of` live peers.
    FleetWide { with: usize, of: usize },
    /// The reason shows on `with` of the `of` peers in this task's zone, and not fleet-wide.
    ZoneWide { zone: String, with: usize, of: usize },
    /// The fleet view does not show this task's evidence yet.
    Unseen,
    /// `draining` tasks drain already, the budget is `budget`, and this task is `place` in the
    /// queue (0-based; it drains when `place < budget`).
    Budget { draining: usize, budget: usize, place: usize },
}

impl Hold {
    /// The stable code in `/status`.
    pub fn code(&self) -> &'static str {
        match self {
            Hold::FleetWide { .. } => "fleet_wide",
            Hold::ZoneWide { .. } => "zone_wide",
            Hold::Unseen => "fleet_unseen",
            Hold::Budget { .. } => "drain_budget",
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::FleetWide { with, of } => write!(f, "fleet-wide: also on {with} of {of} peers"),
            Hold::ZoneWide { zone, with, of } => {
                write!(f, "zone-wide: also on {with} of {of} peers in {zone}")
            }
            Hold::Unseen => f.write_str("waiting for the fleet view to show it"),
            Hold::Budget { draining, budget, place } => {
                write!(
                    f,
                    "drain budget: {draining} of {budget} draining, this task is {} in the queue",
                    place + 1
                )
            }
        }
    }
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
    pub fn initial(at: Millis) -> Verdict {
        Verdict { state: State::Healthy, findings: Vec::new(), since: at }
    }

    /// The one-line body of `/health`: `ok`, or the state and its reasons with evidence.
    pub fn headline(&self) -> String {
        if self.findings.is_empty() {
            return "ok".to_string();
        }
        let mut line = String::from(self.state.name());
        for (i, finding) in self.findings.iter().enumerate() {
            use std::fmt::Write as _;
            line.push_str(if i == 0 { ": " } else { "; " });
            let _ = write!(line, "{} ({finding})", finding.reason.code());
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

/// The hysteresis of forecasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgeConfig {
    /// Consecutive ticks of forecast evidence before draining.
    pub enter_ticks: u32,
    /// Consecutive ticks without forecast evidence before draining stops.
    pub exit_ticks: u32,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig { enter_ticks: 3, exit_ticks: 10 }
    }
}

/// The hysteresis of one draining reason.
#[derive(Debug, Clone, Default)]
struct Hysteresis {
    present: u32,
    absent: u32,
    active: bool,
    /// The evidence last seen, shown while the reason is clearing.
    last: Option<(Fact, Option<f64>)>,
}

/// Turns each tick's evidence into a verdict, remembering the hysteresis across ticks.
#[derive(Debug, Clone)]
pub struct Judge {
    config: JudgeConfig,
    holds: [Hysteresis; Reason::ALL.len()],
    verdict: Verdict,
}

impl Judge {
    pub fn new(config: JudgeConfig, at: Millis) -> Judge {
        Judge { config, holds: Default::default(), verdict: Verdict::initial(at) }
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Decides one tick from its evidence (at most one per reason), taken at `at`.
    pub fn decide(&mut self, evidence: &[Evidence], at: Millis) -> Option<Transition> {
        let mut findings = Vec::new();
        for reason in Reason::ALL {
            let seen = evidence.iter().find(|e| e.reason == reason);
            if !reason.drains() {
                if let Some(e) = seen {
                    findings.push(Finding {
                        reason,
                        state: State::Degraded,
                        fact: e.fact.clone(),
                        phase: Phase::Now,
                        eta_seconds: e.eta_seconds,
                        held: None,
                    });
                }
                continue;
            }
            let (enter, exit) = if reason.confirmed() {
                (self.config.enter_ticks.max(1), self.config.exit_ticks.max(1))
            } else {
                (1, 1)
            };
            let hold = &mut self.holds[reason.index()];
            match seen {
                Some(e) => {
                    hold.present += 1;
                    hold.absent = 0;
                    hold.last = Some((e.fact.clone(), e.eta_seconds));
                    if hold.present >= enter {
                        hold.active = true;
                    }
                }
                None => {
                    hold.present = 0;
                    hold.absent += 1;
                    if hold.absent >= exit {
                        hold.active = false;
                    }
                }
            }
            let Some((fact, eta_seconds)) = &hold.last else { continue };
            let (state, phase) = if hold.active && hold.absent > 0 {
                (State::Draining, Phase::Clearing { ticks: hold.absent, of: exit })
            } else if hold.active {
                (State::Draining, Phase::Now)
            } else if hold.present > 0 {
                (State::Degraded, Phase::Confirming { ticks: hold.present, of: enter })
            } else {
                continue;
            };
            findings.push(Finding {
                reason,
                state,
                fact: fact.clone(),
                phase,
                eta_seconds: *eta_seconds,
                held: None,
            });
        }

        findings.sort_by_key(|finding| std::cmp::Reverse(finding.state));
        let state = findings.first().map_or(State::Healthy, |finding| finding.state);
        let previous = self.verdict.state;
        self.verdict.findings = findings;
        if state == previous {
            return None;
        }
        self.verdict.state = state;
        self.verdict.since = at;
        Some(Transition { from: previous, to: state, at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecast_evidence() -> Evidence {
        Evidence {
            reason: Reason::FdExhaustion,
            fact: Fact::CpuSaturated { ratio: 1.0 },
            eta_seconds: Some(42.0),
        }
    }

    /// The states and evidence lines of ticks that see (true) or do not see a forecast.
    fn timeline(seen: &[bool]) -> Vec<(State, String)> {
        let mut judge = Judge::new(JudgeConfig { enter_ticks: 3, exit_ticks: 2 }, 0);
        let mut out = Vec::new();
        for (t, seen) in seen.iter().enumerate() {
            let evidence = if *seen { vec![forecast_evidence()] } else { Vec::new() };
            judge.decide(&evidence, t as Millis * 1000);
            let verdict = judge.verdict();
            let line = verdict.findings.first().map(|f| f.phase).map_or(String::new(), |phase| match phase {
                Phase::Now => "now".into(),
                Phase::Confirming { ticks, of } => format!("confirming {ticks}/{of}"),
                Phase::Clearing { ticks, of } => format!("clearing {ticks}/{of}"),
            });
            out.push((verdict.state, line));
        }
        out
    }

    #[test]
    fn forecasts_confirm_then_drain_then_clear() {
        use State::*;
        let got = timeline(&[true, true, true, false, true, false, false, false]);
        let want = [
            (Degraded, "confirming 1/3"),
            (Degraded, "confirming 2/3"),
            (Draining, "now"),
            (Draining, "clearing 1/2"),
            (Draining, "now"),
            (Draining, "clearing 1/2"),
            (Healthy, ""),
            (Healthy, ""),
        ];
        let got: Vec<(State, &str)> = got.iter().map(|(s, l)| (*s, l.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_confirmation_broken_by_one_tick_starts_again() {
        let got = timeline(&[true, true, false, true]);
        assert_eq!(got[3], (State::Degraded, "confirming 1/3".to_string()));
    }

    #[test]
    fn reactive_reasons_drain_on_the_tick_they_are_seen_and_headline_in_order() {
        let mut judge = Judge::new(JudgeConfig::default(), 0);
        let evidence = [
            Evidence { reason: Reason::Stopping, fact: Fact::StopSignal, eta_seconds: None },
            Evidence {
                reason: Reason::AppErrors,
                fact: Fact::ProbeFailed { status: 503, latency_ms: 2 },
                eta_seconds: None,
            },
        ];
        let transition = judge.decide(&evidence, 5).unwrap();
        assert_eq!((transition.from, transition.to, transition.at), (State::Healthy, State::Draining, 5));
        assert_eq!(
            judge.verdict().headline(),
            "draining: stopping (vigil received a stop signal); app_errors (app health URL answered 503 in 2 ms)"
        );
        assert_eq!(judge.decide(&[], 6).map(|t| t.to), Some(State::Healthy));
        assert_eq!(judge.verdict().headline(), "ok");
    }
}
