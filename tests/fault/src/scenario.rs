//! Scenario files: the TOML schema, its defaults and its validation.
//!
//! The README documents every field; keep the two in step.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fault::{FaultKind, FaultSpec};

/// One scenario as written in its file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Defaults to the file name without its extension.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seeds the demo apps' randomness; the same in every arm.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long the load runs, in seconds.
    pub duration_s: f64,
    /// True when no task should be drained (surge, dependency outage, sawtooth...).
    #[serde(default)]
    pub benign: bool,
    #[serde(default)]
    pub tasks: TaskShape,
    #[serde(default)]
    pub load: LoadShape,
    #[serde(default)]
    pub fault: Option<FaultPlan>,
    #[serde(default)]
    pub expect: Expectations,
    /// A CPU hog outside every task (a noisy neighbour on the host).
    #[serde(default)]
    pub noise: Option<Noise>,
    /// Extra configuration of the vigil arm.
    #[serde(default)]
    pub vigil: VigilShape,
}

/// Busy threads in the harness, outside every task's cgroups, from `at_s` for `for_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noise {
    pub at_s: f64,
    pub for_s: f64,
    #[serde(default = "default_noise_threads")]
    pub threads: u32,
}

fn default_noise_threads() -> u32 {
    2
}

/// The vigil arm's configuration: fleet awareness, and extra environment (`VIGIL_*` variables
/// only), e.g. `VIGIL_WARMUP`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VigilShape {
    /// Point every vigil at the suite's Prometheus (`VIGIL_FLEET_URL`, `VIGIL_FLEET_INTERVAL`),
    /// so it can compare its task with its peers.
    pub fleet: bool,
    pub env: std::collections::BTreeMap<String, String>,
}

impl Default for VigilShape {
    fn default() -> VigilShape {
        VigilShape { fleet: true, env: Default::default() }
    }
}

/// The task definition every task of the scenario shares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskShape {
    /// Tasks in the service at the start.
    pub count: u32,
    /// Task memory limit (`Limits.Memory`), MiB.
    pub memory_mib: u64,
    /// Task CPU (`Limits.CPU`), vCPU; becomes a CFS quota.
    pub cpu_vcpu: f64,
    /// The task's pids cgroup limit.
    pub pids_max: u64,
    /// The file descriptor limit (`ulimits nofile`) of every container.
    pub nofile: u64,
    /// Whether the app container has a restart policy (then `RestartCount` is reported).
    pub restart_policy: bool,
    /// A container that exits sooner than this after its start is not restarted: the task
    /// stops. ECS allows 60–1800 s; scenarios may compress time below that.
    pub restart_attempt_period_s: f64,
    /// Pause before a restart.
    pub restart_delay_ms: u64,
    /// SIGTERM to SIGKILL when a task is stopped.
    pub stop_timeout_s: f64,
    /// How long a replaced task stays registered (draining) before it is stopped.
    pub deregistration_delay_s: f64,
    /// How often the metadata emulator refreshes its stats (10000 like Fargate, 1000 like EC2).
    pub tmds_refresh_ms: u64,
    /// Ephemeral storage reserved for the task (`EphemeralStorageMetrics.Reserved`), MiB.
    pub ephemeral_mib: u64,
    /// Tokio worker threads of the demo app.
    pub app_workers: u32,
}

impl Default for TaskShape {
    fn default() -> TaskShape {
        TaskShape {
            count: 3,
            memory_mib: 256,
            cpu_vcpu: 0.5,
            pids_max: 512,
            nofile: 1024,
            restart_policy: true,
            restart_attempt_period_s: 10.0,
            restart_delay_ms: 1000,
            stop_timeout_s: 5.0,
            deregistration_delay_s: 2.0,
            tmds_refresh_ms: 1000,
            ephemeral_mib: 20 * 1024,
            app_workers: 2,
        }
    }
}

/// The client traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadShape {
    /// Requests per second at the start.
    pub rate: f64,
    /// Per-request timeout, ms.
    pub timeout_ms: u64,
    /// Rate changes during the run, in time order.
    pub phases: Vec<LoadPhase>,
    /// The most requests in flight; a request over the cap counts as an error.
    pub max_in_flight: usize,
}

impl Default for LoadShape {
    fn default() -> LoadShape {
        LoadShape { rate: 100.0, timeout_ms: 5000, phases: Vec::new(), max_in_flight: 512 }
    }
}

/// From `at_s` on, the load runs at `rate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadPhase {
    pub at_s: f64,
    pub rate: f64,
}

/// Which initial tasks a fault hits.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Targets {
    /// `"all"`.
    All(String),
    /// Initial task indexes, from 0.
    Some(Vec<u32>),
}

/// How a fault reaches the app.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// `POST /admin/fault` at `at_s`, once: a restarted app is healthy again.
    Admin,
    /// In `DEMO_FAULT` from the task's start: every restart of the app repeats it, with `after`
    /// counted from each start. `at_s` is ignored.
    Env,
}

/// The fault of the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    /// A demo app fault kind (`mem-leak`, `crash`, ...).
    pub kind: String,
    /// The kind's parameters as `key=value` words, for example `"rate=8 step=0"`.
    #[serde(default)]
    pub params: String,
    pub targets: Targets,
    /// Seconds after the load starts (admin delivery).
    #[serde(default)]
    pub at_s: f64,
    /// When set, the fault is cleared this many seconds after `at_s` (admin delivery).
    #[serde(default)]
    pub for_s: Option<f64>,
    #[serde(default = "default_delivery")]
    pub deliver: Delivery,
    /// The fault's cause is outside the tasks (a dependency, a bad build): replacements started
    /// while it is active meet it too (see [`crate::inherit`]).
    #[serde(default)]
    pub shared: bool,
}

impl FaultPlan {
    /// The spec line handed to the demo app.
    pub fn spec(&self) -> Result<FaultSpec, ScenarioError> {
        let line = format!("{} {}", self.kind, self.params);
        FaultSpec::parse(&line).map_err(|e| ScenarioError::Invalid(format!("fault: {e}")))
    }

    /// Whether the initial task `index` of `count` is hit.
    pub fn hits(&self, index: u32) -> bool {
        match &self.targets {
            Targets::All(_) => true,
            Targets::Some(list) => list.contains(&index),
        }
    }
}

/// Bounds one arm's results must respect; any field may be missing.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bounds {
    pub client_errors_max: Option<u64>,
    pub client_errors_min: Option<u64>,
    pub false_drains_max: Option<u64>,
    /// HAProxy DOWN transitions of any task, the fault's targets included.
    pub drains_max: Option<u64>,
    /// Client errors after a fault target's second restart (the crash-loop check).
    pub errors_after_pattern_max: Option<u64>,
    /// The most tasks whose health port answered 503 at the same moment.
    pub draining_at_once_max: Option<u64>,
}

/// Expected outcomes per arm; `all` applies to every arm.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expectations {
    pub all: Bounds,
    pub baseline: Bounds,
    pub threshold: Bounds,
    pub vigil: Bounds,
    /// The vigil arm makes fewer client errors than the baseline arm.
    pub vigil_fewer_errors_than_baseline: bool,
    /// The vigil arm makes fewer client errors after the pattern than the baseline arm.
    pub vigil_fewer_errors_after_pattern_than_baseline: bool,
}

/// Why a scenario file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

fn default_seed() -> u64 {
    42
}

fn default_delivery() -> Delivery {
    Delivery::Admin
}

impl Scenario {
    /// Parses and validates scenario text; `stem` names it when the text does not.
    pub fn parse(text: &str, stem: &str) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Invalid(e.to_string()))?;
        if scenario.name.is_empty() {
            scenario.name = stem.to_owned();
        }
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |message: &str| Err(ScenarioError::Invalid(format!("{}: {message}", self.name)));
        if !(1.0..=1800.0).contains(&self.duration_s) {
            return bad("duration_s must be within 1..=1800");
        }
        if !(1..=8).contains(&self.tasks.count) {
            return bad("tasks.count must be within 1..=8");
        }
        if !(0.05..=2.0).contains(&self.tasks.cpu_vcpu) {
            return bad("tasks.cpu_vcpu must be within 0.05..=2");
        }
        if self.tasks.memory_mib < 32 {
            return bad("tasks.memory_mib must be at least 32");
        }
        let rates = std::iter::once(self.load.rate).chain(self.load.phases.iter().map(|p| p.rate));
        for rate in rates {
            if !(0.0..=5000.0).contains(&rate) {
                return bad("load rates must be within 0..=5000 per second");
            }
        }
        if let Some(fault) = &self.fault {
            fault.spec()?;
            if let Targets::All(word) = &fault.targets
                && word != "all"
            {
                return bad("fault.targets must be \"all\" or a list of task indexes");
            }
            if let Targets::Some(list) = &fault.targets
                && list.iter().any(|i| *i >= self.tasks.count)
            {
                return bad("fault.targets names a task beyond tasks.count");
            }
            let kind = fault.spec()?.kind;
            if kind.is_harness() && fault.deliver != Delivery::Admin {
                return bad(
                    "a harness fault (kill, packet-loss, io-stress, prometheus-stop) needs deliver = \"admin\"",
                );
            }
            if fault.shared && kind.is_harness() {
                return bad(
                    "shared = true needs a demo app fault kind (the harness kinds act on given tasks)",
                );
            }
        }
        if let Some(noise) = &self.noise
            && !(1..=8).contains(&noise.threads)
        {
            return bad("noise.threads must be within 1..=8");
        }
        if let Some(key) = self.vigil.env.keys().find(|k| !k.starts_with("VIGIL_")) {
            return bad(&format!("vigil.env may set VIGIL_* variables only, not {key}"));
        }
        Ok(())
    }

    /// The fault spec, if the scenario has a fault.
    pub fn fault_spec(&self) -> Option<FaultSpec> {
        self.fault.as_ref().and_then(|f| f.spec().ok())
    }

    /// Whether the fault (if any) is one the demo app itself applies.
    pub fn fault_kind(&self) -> Option<FaultKind> {
        self.fault_spec().map(|spec| spec.kind)
    }
}

/// Reads one scenario file, or every `*.toml` of a folder (sorted by name).
pub fn load(path: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let files = if path.is_dir() {
        let entries =
            std::fs::read_dir(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files.iter().map(|file| load_file(file)).collect()
}

fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Scenario::parse(&text, &stem).map_err(|e| match e {
        ScenarioError::Invalid(message) => ScenarioError::Parse { path: path.into(), message },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_scenario_takes_defaults() {
        let scenario = Scenario::parse("duration_s = 30", "quiet").unwrap();
        assert_eq!(scenario.name, "quiet");
        assert_eq!(scenario.tasks.count, 3);
        assert!(scenario.fault.is_none());
    }

    #[test]
    fn fault_targets_and_spec_are_checked() {
        let text = r#"
            duration_s = 30
            [fault]
            kind = "mem-leak"
            params = "rate=8"
            targets = [0]
            at_s = 5
        "#;
        let scenario = Scenario::parse(text, "leak").unwrap();
        let fault = scenario.fault.as_ref().unwrap();
        assert!(fault.hits(0) && !fault.hits(1));
        assert_eq!(fault.deliver, Delivery::Admin);
        assert_eq!(scenario.fault_kind(), Some(FaultKind::MemLeak));

        let beyond = text.replace("[0]", "[5]");
        assert!(Scenario::parse(&beyond, "leak").is_err());
        let bad_param = text.replace("rate=8", "speed=8");
        assert!(Scenario::parse(&bad_param, "leak").is_err());
        let all = text.replace("[0]", "\"all\"");
        assert!(Scenario::parse(&all, "leak").unwrap().fault.unwrap().hits(2));
    }

    #[test]
    fn shared_faults_and_fleet_awareness_parse() {
        let text = r#"
            duration_s = 30
            [fault]
            kind = "latency"
            params = "rate=100000 max=2500 health=1"
            targets = "all"
            at_s = 5
            for_s = 10
            shared = true
            [expect]
            vigil = { draining_at_once_max = 1 }
        "#;
        let scenario = Scenario::parse(text, "slow").unwrap();
        assert!(scenario.fault.as_ref().unwrap().shared);
        assert!(scenario.vigil.fleet, "fleet awareness is on by default");
        assert_eq!(scenario.expect.vigil.draining_at_once_max, Some(1));
        let off = format!("{text}\n[vigil]\nfleet = false\n");
        assert!(!Scenario::parse(&off, "slow").unwrap().vigil.fleet);
        let harness = text
            .replace("kind = \"latency\"", "kind = \"packet-loss\"")
            .replace("rate=100000 max=2500 health=1", "percent=5");
        assert!(Scenario::parse(&harness, "slow").is_err(), "a shared harness fault is refused");
        let stop = "duration_s = 30\n[fault]\nkind = \"prometheus-stop\"\ntargets = \"all\"\nat_s = 5\n";
        assert_eq!(Scenario::parse(stop, "down").unwrap().fault_kind(), Some(FaultKind::PrometheusStop));
    }

    #[test]
    fn every_shipped_scenario_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for folder in [root.clone(), root.join("ci")] {
            let scenarios = load(&folder).unwrap_or_else(|e| panic!("{e}"));
            assert!(scenarios.len() >= 4, "{}", folder.display());
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(Scenario::parse("duration_s = 30\nspeed = 2", "x").is_err());
    }
}
