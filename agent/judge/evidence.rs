//! This tick's evidence: what the readings, the signals, the restart history and the anomaly
//! score say, as typed facts under stable reason codes. Pure: no I/O, no clock.
//!
//! [`Rules::gather`] gives at most one [`Evidence`] per [`Reason`] and tick; the verdict decides
//! what they add up to. Text is made where it is shown: every [`Fact`] is `Display`.

use std::fmt;

use crate::judge::anomaly::Reading;
use crate::judge::features::{Resource, ResourceForecast, Saturation, Signals};
use crate::judge::restarts::RestartFindings;
use crate::judge::sample::{ContainerHealth, Millis, ProbeReading, Sample};

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
    Outlier,
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
    pub const ALL: [Reason; 18] = [
        Reason::Stopping,
        Reason::ProcessesGone,
        Reason::AppUnresponsive,
        Reason::MemoryExhaustion,
        Reason::FdExhaustion,
        Reason::ThreadExhaustion,
        Reason::StorageExhaustion,
        Reason::CrashLoop,
        Reason::OomRestarts,
        Reason::Outlier,
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
            Reason::Outlier => "outlier",
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
                | Reason::Outlier
        )
    }

    /// Whether this reason is a forecast, confirmed over several ticks.
    pub fn forecast(self) -> bool {
        matches!(
            self,
            Reason::MemoryExhaustion
                | Reason::FdExhaustion
                | Reason::ThreadExhaustion
                | Reason::StorageExhaustion
        )
    }

    /// Whether this reason is confirmed over several ticks before it drains: the forecasts,
    /// and standing out from the peers.
    pub fn confirmed(self) -> bool {
        self.forecast() || self == Reason::Outlier
    }

    fn exhaustion(resource: Resource) -> Reason {
        match resource {
            Resource::Memory => Reason::MemoryExhaustion,
            Resource::Fds => Reason::FdExhaustion,
            Resource::Threads => Reason::ThreadExhaustion,
            Resource::Storage => Reason::StorageExhaustion,
        }
    }

    /// The position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What was seen, with the numbers that show it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// vigil received SIGTERM or SIGINT.
    StopSignal,
    /// Watched processes were seen, and every one of them has exited.
    ProcessesExited,
    /// vigil's own inputs failed: the process table, the metadata service, or both.
    InputsMissing { process_table: bool, metadata: bool },
    /// The app's health URL did not answer on `ticks` consecutive ticks.
    ProbeUnanswered { ticks: u32, refused: bool, cpu_saturated: bool },
    /// The app answered its health URL with a server error.
    ProbeFailed { status: u16, latency_ms: u64 },
    /// A resource at its limit.
    Exhausted(Saturation),
    /// A resource predicted to reach its limit.
    Forecast(ResourceForecast),
    /// Restarts within the restart window.
    Restarts { recent: usize, after_oom: usize, window_ms: Millis, next_crash_seconds: Option<f64> },
    /// CPU is the bottleneck; `ratio` is the throttled or busy share.
    CpuSaturated { ratio: f64 },
    /// A listening socket's accept queue is nearly full or overflowed; `ratio` of its backlog.
    AcceptQueueFull { ratio: f64 },
    /// The metadata service reports these containers' own health checks `UNHEALTHY`.
    ContainersUnhealthy { names: Vec<String> },
    /// The autoencoder's score is above its calibrated threshold (or just back under it).
    Anomaly(Reading),
    /// This task is far outside its calm peers ([`crate::judge::fleet::outlier`]).
    StandsOut(StandOut),
}

impl Fact {
    /// The share of its limit a resource fact shows used.
    pub fn usage(&self) -> Option<f64> {
        let ratio = |used: f64, limit: f64| (limit > 0.0).then(|| used / limit);
        match self {
            Fact::Forecast(f) => ratio(f.forecast.level, f.forecast.limit),
            Fact::Exhausted(s) => ratio(s.used, s.limit),
            _ => None,
        }
    }
}

/// One measure on which a task can stand out from its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    ProbeLatency,
    AnomalyRatio,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Measure::ProbeLatency => "app health latency",
            Measure::AnomalyRatio => "anomaly score / threshold",
        }
    }

    /// The least distance above the median that counts, whatever the spread: 250 ms of latency,
    /// one threshold of anomaly.
    pub(crate) fn floor(self) -> f64 {
        match self {
            Measure::ProbeLatency => 0.25,
            Measure::AnomalyRatio => 1.0,
        }
    }
}

/// A task standing out from its peers on one measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StandOut {
    pub measure: Measure,
    pub value: f64,
    pub median: f64,
    /// The bar it passed: see [`crate::judge::fleet::outlier`].
    pub bar: f64,
    pub peers: usize,
}

impl fmt::Display for StandOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:.3} against a median of {:.3} on {} calm peers (bar {:.3})",
            self.measure.name(),
            self.value,
            self.median,
            self.peers,
            self.bar
        )
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::StopSignal => f.write_str("vigil received a stop signal"),
            Fact::ProcessesExited => f.write_str("every watched process has exited"),
            Fact::InputsMissing { process_table, metadata } => {
                let mut sep = "";
                if *process_table {
                    f.write_str("process table unreadable")?;
                    sep = "; ";
                }
                if *metadata {
                    write!(f, "{sep}task metadata service not answering")?;
                }
                Ok(())
            }
            Fact::ProbeUnanswered { ticks, refused, cpu_saturated } => {
                let how = if *refused { "connection refused" } else { "timed out" };
                write!(f, "app health URL did not answer on {ticks} consecutive ticks ({how})")?;
                if *cpu_saturated && !refused {
                    f.write_str(" while CPU is saturated")?;
                }
                Ok(())
            }
            Fact::ProbeFailed { status, latency_ms } => {
                write!(f, "app health URL answered {status} in {latency_ms} ms")
            }
            Fact::Exhausted(s) => {
                write!(f, "{} {} at {:.0} of {:.0}: exhausted", s.subject, s.resource.name(), s.used, s.limit)
            }
            Fact::Forecast(forecast) => forecast.fmt(f),
            Fact::Restarts { recent: 1, after_oom, window_ms, .. } => {
                let after = if *after_oom == 1 { " after an OOM kill" } else { "" };
                write!(f, "1 restart in the last {}{after}", Window(*window_ms))
            }
            Fact::Restarts { recent, after_oom, window_ms, next_crash_seconds } => {
                write!(
                    f,
                    "{recent} restarts in the last {} ({after_oom} after OOM kills)",
                    Window(*window_ms)
                )?;
                if let Some(next) = next_crash_seconds {
                    write!(f, "; uptimes shrinking, next crash expected in {next:.0} s")?;
                }
                Ok(())
            }
            Fact::CpuSaturated { ratio } => write!(f, "CPU throttled or busy {:.0} %", 100.0 * ratio),
            Fact::AcceptQueueFull { ratio } => {
                write!(f, "accept queue {:.0} % full or overflowing", 100.0 * ratio)
            }
            Fact::ContainersUnhealthy { names } => {
                write!(f, "container health check UNHEALTHY: {}", names.join(", "))
            }
            Fact::Anomaly(reading) => reading.fmt(f),
            Fact::StandsOut(out) => out.fmt(f),
        }
    }
}

/// One reason seen on this tick, with what shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub reason: Reason,
    pub fact: Fact,
    /// Seconds until the predicted failure, for forecasts and shrinking uptimes.
    pub eta_seconds: Option<f64>,
}

impl Evidence {
    fn new(reason: Reason, fact: Fact) -> Evidence {
        Evidence { reason, fact, eta_seconds: None }
    }
}

/// This tick's evidence: at most one per reason, in the order of [`Reason::ALL`].
pub type TickEvidence = heapless::Vec<Evidence, { Reason::ALL.len() }>;

/// How the evidence rules are set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RulesConfig {
    /// The metadata service is configured (ECS mode), so its absence is missing input.
    pub tmds_expected: bool,
    /// Consecutive unanswered probes that count as unresponsive.
    pub probe_misses: u32,
    /// A forecast is evidence when the limit is nearer than this many seconds.
    pub horizon_seconds: f64,
    /// How far back restarts count, for the evidence text.
    pub restart_window_ms: Millis,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            tmds_expected: false,
            probe_misses: 3,
            horizon_seconds: 180.0,
            restart_window_ms: 900_000,
        }
    }
}

/// What one tick hands to the rules.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub sample: &'a Sample,
    pub signals: &'a Signals,
    pub restarts: &'a RestartFindings,
    /// The autoencoder's reading of this same tick, when it scored one.
    pub anomaly: Option<&'a Reading>,
    /// SIGTERM or SIGINT has arrived.
    pub stopping: bool,
    /// This task far outside its calm peers, when a fleet view shows it.
    pub stand_out: Option<&'a StandOut>,
    /// A fresh fleet view with peers is at hand, so one unanswered probe (already re-probed by
    /// the probe source) is enough: the fleet tells a hang from a shared slowdown.
    pub quick_probe: bool,
}

/// The evidence rules, with the little they remember across ticks: unanswered probes in a
/// row, and whether any watched process was ever visible.
#[derive(Debug, Clone)]
pub struct Rules {
    config: RulesConfig,
    probe_misses: u32,
    last_miss: Option<ProbeReading>,
    processes_seen: bool,
}

impl Rules {
    pub fn new(config: RulesConfig) -> Rules {
        Rules { config, probe_misses: 0, last_miss: None, processes_seen: false }
    }

    /// Whether any watched process has ever been visible. When false, vigil cannot see the
    /// app's processes (no shared PID namespace) and process watching is off.
    pub fn processes_seen(&self) -> bool {
        self.processes_seen
    }

    /// This tick's evidence.
    pub fn gather(&mut self, inputs: &Inputs<'_>) -> TickEvidence {
        let Inputs { sample, signals, restarts, anomaly, stopping, stand_out, quick_probe } = *inputs;
        let mut evidence = TickEvidence::new();
        // At most one entry per reason, so the capacity of one per reason always suffices.
        let mut push = |item: Evidence| {
            debug_assert!(evidence.iter().all(|e| e.reason != item.reason));
            let _ = evidence.push(item);
        };

        if stopping {
            push(Evidence::new(Reason::Stopping, Fact::StopSignal));
        }

        if sample.proc_readable {
            if !sample.processes.is_empty() {
                self.processes_seen = true;
            } else if self.processes_seen {
                push(Evidence::new(Reason::ProcessesGone, Fact::ProcessesExited));
            }
        }

        match sample.probe {
            None => self.probe_misses = 0,
            Some(reading @ (ProbeReading::Refused | ProbeReading::TimedOut)) => {
                self.probe_misses += 1;
                self.last_miss = Some(reading);
            }
            Some(ProbeReading::Answered { .. }) => self.probe_misses = 0,
        }
        let needed = if quick_probe { 1 } else { self.config.probe_misses };
        if self.probe_misses >= needed {
            let refused = self.last_miss == Some(ProbeReading::Refused);
            let fact = Fact::ProbeUnanswered {
                ticks: self.probe_misses,
                refused,
                cpu_saturated: signals.cpu_saturated,
            };
            // A timeout while CPU is saturated is a surge, which every task shares.
            let reason = if refused || !signals.cpu_saturated {
                Reason::AppUnresponsive
            } else {
                Reason::AppOverloaded
            };
            push(Evidence::new(reason, fact));
        }

        for resource in Resource::ALL {
            let reason = Reason::exhaustion(resource);
            if let Some(saturated) = signals.saturated.iter().find(|s| s.resource == resource) {
                push(Evidence { reason, fact: Fact::Exhausted(saturated.clone()), eta_seconds: Some(0.0) });
                continue;
            }
            // Forecasts are sorted by ETA: the first warm one of this resource is the nearest.
            let nearest = signals.forecasts.iter().find(|f| f.resource == resource && f.warm);
            if let Some(f) = nearest
                && f.forecast.eta_seconds < self.config.horizon_seconds
            {
                push(Evidence {
                    reason,
                    fact: Fact::Forecast(f.clone()),
                    eta_seconds: Some(f.forecast.eta_seconds),
                });
            }
        }

        if restarts.recent >= 1 {
            let reason = match restarts.recent {
                1 => Reason::Restarted,
                n if 2 * restarts.recent_oom >= n => Reason::OomRestarts,
                _ => Reason::CrashLoop,
            };
            let next_crash_seconds = restarts.next_crash_seconds.filter(|_| restarts.recent >= 2);
            push(Evidence {
                reason,
                fact: Fact::Restarts {
                    recent: restarts.recent,
                    after_oom: restarts.recent_oom,
                    window_ms: self.config.restart_window_ms,
                    next_crash_seconds,
                },
                eta_seconds: next_crash_seconds,
            });
        }

        if let Some(ProbeReading::Answered { status, latency_ms }) = sample.probe
            && status >= 500
        {
            push(Evidence::new(Reason::AppErrors, Fact::ProbeFailed { status, latency_ms }));
        }
        if signals.cpu_saturated {
            let ratio = signals.cpu_ratio.unwrap_or(1.0);
            push(Evidence::new(Reason::CpuSaturated, Fact::CpuSaturated { ratio }));
        }
        if signals.accept_queue_full {
            let ratio = signals.accept_queue_ratio.unwrap_or(1.0);
            push(Evidence::new(Reason::AcceptQueueFull, Fact::AcceptQueueFull { ratio }));
        }
        if let Some(task) = &sample.task {
            let names: Vec<String> = task
                .containers
                .iter()
                .filter(|c| c.health == Some(ContainerHealth::Unhealthy))
                .map(|c| c.name.clone())
                .collect();
            if !names.is_empty() {
                push(Evidence::new(Reason::ContainerUnhealthy, Fact::ContainersUnhealthy { names }));
            }
        }
        if let Some(out) = stand_out {
            push(Evidence::new(Reason::Outlier, Fact::StandsOut(*out)));
        }
        if let Some(reading) = anomaly.filter(|reading| reading.is_evidence()) {
            push(Evidence::new(Reason::Anomaly, Fact::Anomaly(*reading)));
        }

        let metadata = self.config.tmds_expected && sample.task.is_none();
        if !sample.proc_readable || metadata {
            let fact = Fact::InputsMissing { process_table: !sample.proc_readable, metadata };
            push(Evidence::new(Reason::InputMissing, fact));
        }
        evidence.sort_unstable_by_key(|e| e.reason);
        evidence
    }
}

/// A restart window as evidence text shows it: whole minutes as "15 min", anything else in
/// seconds.
struct Window(Millis);

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
    use super::*;
    use crate::judge::features::Resource;

    #[test]
    fn restart_windows_read_in_minutes_or_seconds() {
        assert_eq!(Window(900_000).to_string(), "15 min");
        assert_eq!(Window(30_000).to_string(), "30 s");
        assert_eq!(Window(90_000).to_string(), "90 s");
        assert_eq!(Window(1_500).to_string(), "2 s");
    }

    /// Each fact reads as the sentence `/health`, `/status` and the logs show.
    #[test]
    fn facts_read_as_sentences() {
        let check = |fact: Fact, expected: &str| assert_eq!(fact.to_string(), expected);
        check(Fact::StopSignal, "vigil received a stop signal");
        check(
            Fact::InputsMissing { process_table: true, metadata: true },
            "process table unreadable; task metadata service not answering",
        );
        check(
            Fact::InputsMissing { process_table: false, metadata: true },
            "task metadata service not answering",
        );
        check(
            Fact::ProbeUnanswered { ticks: 3, refused: false, cpu_saturated: true },
            "app health URL did not answer on 3 consecutive ticks (timed out) while CPU is saturated",
        );
        check(
            Fact::ProbeUnanswered { ticks: 4, refused: true, cpu_saturated: true },
            "app health URL did not answer on 4 consecutive ticks (connection refused)",
        );
        check(Fact::ProbeFailed { status: 503, latency_ms: 4 }, "app health URL answered 503 in 4 ms");
        check(
            Fact::Exhausted(Saturation {
                resource: Resource::Fds,
                subject: "pid 7 (java)".into(),
                used: 1024.0,
                limit: 1024.0,
            }),
            "pid 7 (java) fds at 1024 of 1024: exhausted",
        );
        check(
            Fact::Restarts { recent: 1, after_oom: 1, window_ms: 900_000, next_crash_seconds: None },
            "1 restart in the last 15 min after an OOM kill",
        );
        check(
            Fact::Restarts { recent: 3, after_oom: 0, window_ms: 30_000, next_crash_seconds: Some(41.6) },
            "3 restarts in the last 30 s (0 after OOM kills); uptimes shrinking, next crash expected in 42 s",
        );
        check(Fact::CpuSaturated { ratio: 0.93 }, "CPU throttled or busy 93 %");
        check(Fact::AcceptQueueFull { ratio: 1.0 }, "accept queue 100 % full or overflowing");
        check(
            Fact::ContainersUnhealthy { names: vec!["app".into(), "db".into()] },
            "container health check UNHEALTHY: app, db",
        );
    }
}
