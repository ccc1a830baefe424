//! The demo app's fault switches: the spec language, parsed without I/O.
//!
//! A spec is one line, a kind followed by `key=value` parameters, for example
//! `mem-leak rate=8 step=0 after=5`. The same line is accepted from the `DEMO_FAULT` environment
//! variable (applied at every start of the process) and from `POST /admin/fault` (applied once,
//! from the moment of the request). `after` always counts seconds from the moment the spec was
//! applied.

use std::collections::BTreeMap;
use std::fmt;

/// What the app does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Healthy behaviour.
    None,
    /// Allocate and touch `rate` MB/s, smoothly or every `step` seconds, never freeing.
    MemLeak,
    /// Open `rate` file descriptors per second and keep them.
    FdLeak,
    /// Start `rate` sleeping threads per second; a failed start aborts the process.
    ThreadLeak,
    /// Stop answering every request, `/health` included; the process stays alive.
    Hang,
    /// Add `rate` ms of latency per second of fault, up to `max` ms.
    Latency,
    /// Exit with `code` once `after` has passed.
    Crash,
    /// Answer a share `ratio` of transactions with 503 at once (a dependency outage).
    Errors,
    /// Keep `threads` threads busy.
    Cpu,
    /// Grow by `rate` MB/s up to `peak` MB, free everything, and start again.
    Sawtooth,
    /// Grow by `rate` MB/s until the task's memory reaches `percent` % of its limit, then hold;
    /// with `tau`, approach that level exponentially with this time constant instead.
    Plateau,
    /// Write `rate` MB/s to a file on the task's ephemeral storage; once it is full, answer
    /// transactions with 507 (the app cannot write its journal).
    DiskFill,
    /// Harness: SIGKILL the app once (FIS `aws:ecs:task-kill-process`).
    Kill,
    /// Harness: SIGKILL the sidecar (vigil), not the app; the task init restarts it as the
    /// sidecar's ECS restart policy does.
    KillSidecar,
    /// Harness: drop `percent` % of the packets to the app port inside the task's namespace
    /// (nftables; FIS `aws:ecs:task-network-packet-loss`).
    PacketLoss,
    /// Harness: `workers` stress-ng I/O workers inside the task's cgroups (FIS
    /// `aws:ecs:task-io-stress`).
    IoStress,
    /// Harness, outside every task: stop the suite's Prometheus (the fleet's metrics source);
    /// started again on the same storage when `for_s` runs out.
    PrometheusStop,
}

impl FaultKind {
    /// The spelling used in specs and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::None => "none",
            FaultKind::MemLeak => "mem-leak",
            FaultKind::FdLeak => "fd-leak",
            FaultKind::ThreadLeak => "thread-leak",
            FaultKind::Hang => "hang",
            FaultKind::Latency => "latency",
            FaultKind::Crash => "crash",
            FaultKind::Errors => "errors",
            FaultKind::Cpu => "cpu",
            FaultKind::Sawtooth => "sawtooth",
            FaultKind::Plateau => "plateau",
            FaultKind::DiskFill => "disk-fill",
            FaultKind::Kill => "kill",
            FaultKind::KillSidecar => "kill-sidecar",
            FaultKind::PacketLoss => "packet-loss",
            FaultKind::IoStress => "io-stress",
            FaultKind::PrometheusStop => "prometheus-stop",
        }
    }

    /// Whether the harness applies this kind (the demo app ignores it).
    pub fn is_harness(self) -> bool {
        matches!(
            self,
            FaultKind::Kill
                | FaultKind::KillSidecar
                | FaultKind::PacketLoss
                | FaultKind::IoStress
                | FaultKind::PrometheusStop
        )
    }

    /// Whether the kind acts on the run rather than on tasks (its targets are ignored).
    pub fn is_run_level(self) -> bool {
        self == FaultKind::PrometheusStop
    }

    /// Every kind, for error messages and documentation.
    pub const ALL: [FaultKind; 17] = [
        FaultKind::None,
        FaultKind::MemLeak,
        FaultKind::FdLeak,
        FaultKind::ThreadLeak,
        FaultKind::Hang,
        FaultKind::Latency,
        FaultKind::Crash,
        FaultKind::Errors,
        FaultKind::Cpu,
        FaultKind::Sawtooth,
        FaultKind::Plateau,
        FaultKind::DiskFill,
        FaultKind::Kill,
        FaultKind::KillSidecar,
        FaultKind::PacketLoss,
        FaultKind::IoStress,
        FaultKind::PrometheusStop,
    ];

    fn parse(word: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|kind| kind.name() == word)
    }

    /// The parameters this kind reads besides `after` and `for`; anything else is an error.
    fn keys(self) -> &'static [&'static str] {
        match self {
            FaultKind::None
            | FaultKind::Hang
            | FaultKind::Kill
            | FaultKind::KillSidecar
            | FaultKind::PrometheusStop => &[],
            FaultKind::MemLeak => &["rate", "step"],
            FaultKind::FdLeak | FaultKind::ThreadLeak | FaultKind::DiskFill => &["rate"],
            FaultKind::Latency => &["rate", "max", "health"],
            FaultKind::Crash => &["code"],
            FaultKind::Errors => &["ratio"],
            FaultKind::Cpu => &["threads"],
            FaultKind::Sawtooth => &["rate", "peak"],
            FaultKind::Plateau => &["rate", "percent", "tau"],
            FaultKind::PacketLoss => &["percent"],
            FaultKind::IoStress => &["workers"],
        }
    }
}

/// A parsed fault spec.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    params: BTreeMap<String, f64>,
}

/// Why a spec did not parse.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("empty fault spec")]
    Empty,
    #[error("unknown fault kind {0:?}")]
    UnknownKind(String),
    #[error("parameter {0:?} is not key=value")]
    NotKeyValue(String),
    #[error("parameter {0:?} is not a number")]
    NotNumber(String),
    #[error("fault kind {kind} takes no parameter {key:?}")]
    UnknownKey { kind: &'static str, key: String },
}

impl FaultSpec {
    /// The healthy spec.
    pub fn none() -> FaultSpec {
        FaultSpec { kind: FaultKind::None, params: BTreeMap::new() }
    }

    /// Parses `kind key=value ...`.
    pub fn parse(line: &str) -> Result<FaultSpec, SpecError> {
        let mut words = line.split_whitespace();
        let word = words.next().ok_or(SpecError::Empty)?;
        let kind = FaultKind::parse(word).ok_or_else(|| SpecError::UnknownKind(word.into()))?;
        let mut params = BTreeMap::new();
        for word in words {
            let (key, value) = word.split_once('=').ok_or_else(|| SpecError::NotKeyValue(word.into()))?;
            if !(kind.keys().contains(&key) || key == "after" || key == "for") {
                return Err(SpecError::UnknownKey { kind: kind.name(), key: key.into() });
            }
            let value: f64 = value.parse().map_err(|_| SpecError::NotNumber(word.into()))?;
            params.insert(key.to_owned(), value);
        }
        Ok(FaultSpec { kind, params })
    }

    /// A parameter, or `default` when the spec does not set it.
    pub fn get(&self, key: &str, default: f64) -> f64 {
        self.params.get(key).copied().unwrap_or(default)
    }

    /// Seconds from the moment the spec is applied until it takes effect.
    pub fn after_seconds(&self) -> f64 {
        self.get("after", 0.0).max(0.0)
    }

    /// How long the fault lasts once in effect (`for`); `None` is for ever.
    pub fn for_seconds(&self) -> Option<f64> {
        self.params.get("for").map(|s| s.max(0.0))
    }

    /// The same fault with its schedule replaced: in effect `after` seconds from the moment it
    /// is applied, for `for_s` seconds (`None`: for ever).
    pub fn rescheduled(&self, after: f64, for_s: Option<f64>) -> FaultSpec {
        let mut params = self.params.clone();
        params.remove("after");
        params.remove("for");
        if after > 0.0 {
            params.insert("after".into(), after);
        }
        if let Some(seconds) = for_s {
            params.insert("for".into(), seconds.max(0.0));
        }
        FaultSpec { kind: self.kind, params }
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.name())?;
        for (key, value) in &self.params {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// How much memory a leak or sawtooth should hold after `elapsed` seconds of fault, in bytes.
///
/// `step` of 0 means smooth growth; otherwise the amount grows in steps every `step` seconds.
pub fn leak_target_bytes(rate_mb_s: f64, step_s: f64, elapsed_s: f64) -> u64 {
    let elapsed = if step_s > 0.0 { (elapsed_s / step_s).floor() * step_s } else { elapsed_s };
    (rate_mb_s.max(0.0) * elapsed.max(0.0) * 1024.0 * 1024.0) as u64
}

/// The sawtooth's target after `elapsed` seconds: grows at `rate` up to `peak`, then drops to 0.
pub fn sawtooth_target_bytes(rate_mb_s: f64, peak_mb: f64, elapsed_s: f64) -> u64 {
    if rate_mb_s <= 0.0 || peak_mb <= 0.0 {
        return 0;
    }
    let period = peak_mb / rate_mb_s;
    let phase = elapsed_s.max(0.0) % period;
    (rate_mb_s * phase * 1024.0 * 1024.0) as u64
}

/// The plateau's task memory after `elapsed` seconds of fault with time constant `tau_s`: from
/// `start` (the task's memory when the fault took effect) towards `goal`, covering 1 − e^(−t/τ)
/// of the way: fast at first, slower and slower, like a cache warming on real traffic. A `tau_s`
/// of 0 (or less) is the goal at once (the caller then limits the growth by `rate`).
pub fn plateau_target_bytes(start: u64, goal: u64, tau_s: f64, elapsed_s: f64) -> u64 {
    if tau_s <= 0.0 || start >= goal {
        return goal.max(start);
    }
    let covered = 1.0 - (-elapsed_s.max(0.0) / tau_s).exp();
    start + ((goal - start) as f64 * covered) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expected: Result<&str, SpecError>) {
        let got = FaultSpec::parse(line).map(|spec| spec.to_string());
        assert_eq!(got, expected.map(str::to_owned), "spec {line:?}");
    }

    #[test]
    fn specs_parse_and_print() {
        check("none", Ok("none"));
        check("mem-leak rate=8 step=2", Ok("mem-leak rate=8 step=2"));
        check("  crash   code=3 after=20 ", Ok("crash after=20 code=3"));
        check("", Err(SpecError::Empty));
        check("melt", Err(SpecError::UnknownKind("melt".into())));
        check("crash code", Err(SpecError::NotKeyValue("code".into())));
        check("crash code=x", Err(SpecError::NotNumber("code=x".into())));
        check("hang rate=1", Err(SpecError::UnknownKey { kind: "hang", key: "rate".into() }));
        check("cpu threads=2 for=20", Ok("cpu for=20 threads=2"));
        check("packet-loss percent=10", Ok("packet-loss percent=10"));
        check("prometheus-stop", Ok("prometheus-stop"));
        check("plateau rate=4 percent=92 tau=20", Ok("plateau percent=92 rate=4 tau=20"));
        assert_eq!(FaultSpec::parse("cpu for=20").unwrap().for_seconds(), Some(20.0));
        assert_eq!(FaultSpec::parse("cpu").unwrap().for_seconds(), None);
        assert!(FaultKind::Kill.is_harness() && !FaultKind::DiskFill.is_harness());
        assert!(FaultKind::PrometheusStop.is_harness() && FaultKind::PrometheusStop.is_run_level());
        assert!(!FaultKind::PacketLoss.is_run_level());
    }

    #[test]
    fn leak_grows_smoothly_or_in_steps() {
        let mib = 1024 * 1024;
        assert_eq!(leak_target_bytes(8.0, 0.0, 1.5), 12 * mib);
        assert_eq!(leak_target_bytes(8.0, 2.0, 1.5), 0);
        assert_eq!(leak_target_bytes(8.0, 2.0, 2.5), 16 * mib);
        assert_eq!(leak_target_bytes(8.0, 0.0, -1.0), 0);
    }

    #[test]
    fn plateau_approaches_its_level_exponentially() {
        let mib = 1024 * 1024;
        let check = |tau: f64, t: f64, expected_mib: f64| {
            let got = plateau_target_bytes(20 * mib, 220 * mib, tau, t) as f64 / mib as f64;
            assert!((got - expected_mib).abs() < 0.01, "tau {tau} t {t}: {got} MiB, not {expected_mib}");
        };
        check(20.0, 0.0, 20.0);
        check(20.0, 20.0, 20.0 + 200.0 * (1.0 - (-1.0f64).exp()));
        check(20.0, 60.0, 20.0 + 200.0 * (1.0 - (-3.0f64).exp()));
        check(20.0, 1e6, 220.0);
        check(20.0, -5.0, 20.0);
        check(0.0, 1.0, 220.0);
        assert_eq!(plateau_target_bytes(300 * mib, 220 * mib, 20.0, 5.0), 300 * mib);
    }

    #[test]
    fn a_rescheduled_spec_keeps_its_parameters() {
        let spec = FaultSpec::parse("latency rate=100 max=2500 health=1 after=3 for=20").unwrap();
        assert_eq!(
            spec.rescheduled(0.0, Some(7.5)).to_string(),
            "latency for=7.5 health=1 max=2500 rate=100"
        );
        assert_eq!(spec.rescheduled(2.0, None).to_string(), "latency after=2 health=1 max=2500 rate=100");
    }

    #[test]
    fn sawtooth_returns_to_zero() {
        let mib = 1024 * 1024;
        assert_eq!(sawtooth_target_bytes(10.0, 50.0, 2.0), 20 * mib);
        assert_eq!(sawtooth_target_bytes(10.0, 50.0, 5.0), 0);
        assert_eq!(sawtooth_target_bytes(10.0, 50.0, 7.0), 20 * mib);
        assert_eq!(sawtooth_target_bytes(0.0, 50.0, 7.0), 0);
    }
}
