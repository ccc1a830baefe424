//! The tick loop: stamp the time, read every source, judge, score, publish one immutable
//! snapshot.
//!
//! Data flows one way. The loop owns the sampler, the metadata client, the probe, the judge and
//! the autoencoder's pipeline;
//! the HTTP server only reads [`Shared`]: the latest [`Snapshot`], the liveness stamp and the
//! stopping flag (which `/health` reads directly, so a stop turns it red at once, without
//! waiting for a tick).
//!
//! The autoencoder scores each tick's channels after the judge has derived them from the sample,
//! so its evidence reaches the verdict on the next tick: one interval late, which the several
//! ticks an anomaly must last make immaterial.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::anomaly::{Calibration, Pipeline, Reading};
use crate::config::{Config, ConfigError, ENV_MODEL, ModelSource};
use crate::features::{FeatureConfig, Signals};
use crate::log;
use crate::metrics::{Metrics, SnapshotCell};
use crate::model::{EMBEDDED_NAME, Model};
use crate::probe::AppProbe;
use crate::restarts::RestartFindings;
use crate::sample::{Millis, Sample, Source, SourceError};
use crate::sampler::LocalSampler;
use crate::tmds::TmdsClient;
use crate::vector;
use crate::verdict::{Judge, JudgeConfig, State, Verdict};

/// Where vigil gets its task-level view from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only `/proc` and cgroups: no metadata service configured.
    Local,
    /// `/proc`, cgroups and the Task Metadata Service v4.
    Ecs,
}

/// How one source has fared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    /// Whether vigil reads this source at all (the probe needs a URL, the metadata service ECS).
    pub enabled: bool,
    /// Whether the source gave a reading this tick.
    pub up: bool,
    pub errors_total: u64,
    /// When the source last gave a reading.
    pub last_success_at: Option<Millis>,
    pub last_error: Option<String>,
}

/// What the autoencoder made of the latest tick.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AnomalyStatus {
    /// Which model scores ticks; `None` with `VIGIL_MODEL=off`.
    pub model: Option<String>,
    /// The latest reconstruction error; `None` until the input window is full.
    pub score: Option<f64>,
    /// The calibrated threshold; `None` while calibrating.
    pub threshold: Option<f64>,
    /// Scores counted towards the threshold so far, of `calibration_ticks`.
    pub calibrated_ticks: u32,
    pub calibration_ticks: u32,
    /// Consecutive scores above the threshold.
    pub above_ticks: u32,
    /// Whether the task counts as anomalous (evidence for `degraded`).
    pub anomalous: bool,
    /// Ticks on which the model failed to run.
    pub errors_total: u64,
}

/// Everything the server shows, from one tick. Immutable once published.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub mode: Mode,
    /// Ticks completed; 0 before the first.
    pub tick: u64,
    pub verdict: Verdict,
    /// Whether any watched process was ever visible. False means vigil cannot see the app's
    /// processes (no shared PID namespace): process watching is off and never turns health red.
    pub processes_visible: bool,
    /// Per source, in the order of `Source::ALL`.
    pub sources: [SourceStatus; 6],
    /// Verdict transitions so far, by the state entered (in the order of `State::ALL`).
    pub transitions: [u64; 3],
    /// Forecasts and surge signals of this tick.
    pub signals: Signals,
    pub restarts: RestartFindings,
    pub anomaly: AnomalyStatus,
    pub sample: Sample,
}

impl Snapshot {
    fn empty(mode: Mode) -> Snapshot {
        Snapshot {
            mode,
            tick: 0,
            verdict: Judge::new(JudgeConfig::default(), 0).verdict().clone(),
            processes_visible: false,
            sources: Default::default(),
            transitions: [0; 3],
            signals: Signals::default(),
            restarts: RestartFindings::default(),
            anomaly: AnomalyStatus::default(),
            sample: Sample::default(),
        }
    }

    pub fn source(&self, source: Source) -> &SourceStatus {
        &self.sources[source.index()]
    }
}

/// What the tick loop shares with the server.
pub struct Shared {
    started: Instant,
    interval: Duration,
    snapshot: SnapshotCell,
    /// Milliseconds since start at which the last tick completed; `u64::MAX` before the first.
    last_tick: AtomicU64,
    stopping: AtomicBool,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(mode: Mode, interval: Duration) -> Shared {
        let snapshot: SnapshotCell = Arc::new(RwLock::new(Arc::new(Snapshot::empty(mode))));
        Shared {
            started: Instant::now(),
            interval,
            metrics: Metrics::new(Arc::clone(&snapshot)),
            snapshot,
            last_tick: AtomicU64::new(u64::MAX),
            stopping: AtomicBool::new(false),
        }
    }

    /// Milliseconds on the agent's monotonic clock.
    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        self.last_tick.store(self.now(), Ordering::Release);
    }

    /// Marks the agent as stopping: `/health` turns red from the next request on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether the tick loop has advanced within the last three intervals (or, before the
    /// first tick, within three intervals of start-up).
    pub fn live(&self, now: Millis) -> bool {
        let last = match self.last_tick.load(Ordering::Acquire) {
            u64::MAX => 0,
            at => at,
        };
        now.saturating_sub(last) <= 3 * self.interval.as_millis() as u64
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `VIGIL_RECORD` names a file that cannot be opened for appending.
    #[error("invalid VIGIL_RECORD: cannot append to {0}")]
    Record(String),
    /// `VIGIL_MODEL` names a file that cannot be read or is not a usable model.
    #[error("{0}")]
    Model(ConfigError),
    #[error("{0}")]
    Client(String),
}

/// The inputs and memory of the tick loop.
pub struct Agent {
    shared: Arc<Shared>,
    mode: Mode,
    sampler: LocalSampler,
    tmds: Option<TmdsClient>,
    probe: Option<AppProbe>,
    judge: Judge,
    sources: [SourceStatus; 6],
    transitions: [u64; 3],
    error_log: ErrorLog,
    tick: u64,
    recorder: Option<Recorder>,
    /// The autoencoder, unless `VIGIL_MODEL=off`.
    pipeline: Option<Pipeline<Model>>,
    anomaly: AnomalyStatus,
    /// The anomaly evidence of the last scored tick, for the next verdict.
    anomaly_evidence: Option<String>,
    told_capped: bool,
    told_invisible: bool,
}

impl Agent {
    pub fn new(config: &Config, shared: Arc<Shared>) -> Result<Agent, StartError> {
        let tmds = match &config.tmds_url {
            Some(url) => Some(
                TmdsClient::new(url)
                    .map_err(|error| StartError::Client(format!("metadata client: {error}")))?,
            ),
            None => None,
        };
        let probe = match &config.app_health_url {
            Some(url) => Some(
                AppProbe::new(url, config.app_health_timeout)
                    .map_err(|error| StartError::Client(format!("app probe: {error}")))?,
            ),
            None => None,
        };
        let mode = if tmds.is_some() { Mode::Ecs } else { Mode::Local };
        let loading = Instant::now();
        let (model, model_name) = match load_model(&config.model)? {
            Some((model, name)) => {
                let took_ms = loading.elapsed().as_secs_f64() * 1000.0;
                log::info("model_loaded", json!({"model": name, "load_ms": took_ms}));
                (Some(model), Some(name))
            }
            None => {
                log::info("model_off", json!({"detail": "VIGIL_MODEL=off: no anomaly score"}));
                (None, None)
            }
        };
        let calibration = Calibration { ticks: config.model_calibration, ..Calibration::default() };
        let mut sources: [SourceStatus; 6] = Default::default();
        for source in Source::ALL {
            sources[source.index()].enabled = match source {
                Source::Tmds => tmds.is_some(),
                Source::Probe => probe.is_some(),
                _ => true,
            };
        }
        let judge = Judge::new(
            JudgeConfig {
                tmds_expected: tmds.is_some(),
                horizon_seconds: config.drain_horizon.as_secs_f64(),
                enter_ticks: config.confirm_ticks,
                exit_ticks: config.clear_ticks,
                restart_window_ms: 3 * config.restart_period.as_millis() as u64,
                features: FeatureConfig { warmup_ms: config.warmup.as_millis() as u64 },
                ..JudgeConfig::default()
            },
            shared.now(),
        );
        Ok(Agent {
            sampler: LocalSampler::new(
                config.proc_root.clone(),
                config.cgroup_root.clone(),
                config.watch.clone(),
                std::process::id(),
            ),
            shared,
            mode,
            tmds,
            probe,
            judge,
            sources,
            transitions: [0; 3],
            error_log: ErrorLog::default(),
            tick: 0,
            recorder: match &config.record {
                Some(path) => Some(
                    Recorder::open(path)
                        .map_err(|error| StartError::Record(format!("{}: {error}", path.display())))?,
                ),
                None => None,
            },
            pipeline: model.map(|model| Pipeline::new(model, calibration)),
            anomaly: AnomalyStatus {
                model: model_name,
                calibration_ticks: calibration.ticks,
                ..AnomalyStatus::default()
            },
            anomaly_evidence: None,
            told_capped: false,
            told_invisible: false,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs ticks until the process exits.
    pub async fn run(mut self) {
        let mut interval = tokio::time::interval(self.shared.interval());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.tick().await;
        }
    }

    /// One tick: read, judge, publish.
    pub async fn tick(&mut self) {
        let started = Instant::now();
        let at = self.shared.now();
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut sample = Sample { at, wall_ms, ..Sample::default() };
        let mut errors: Vec<SourceError> = Vec::new();

        self.sampler.sample(&mut sample, &mut errors);
        let tmds = async {
            match self.tmds.as_mut() {
                Some(client) => {
                    let mut tmds_errors = Vec::new();
                    let task = client.poll(at, &mut tmds_errors).await;
                    (task, tmds_errors)
                }
                None => (None, Vec::new()),
            }
        };
        let probe = async {
            match &self.probe {
                Some(probe) => Some(probe.probe().await),
                None => None,
            }
        };
        let ((task, tmds_errors), probe) = tokio::join!(tmds, probe);
        sample.task = task;
        sample.probe = probe;
        errors.extend(tmds_errors);

        self.account(&sample, &errors);
        self.tell_once(&sample);

        let anomaly = self.anomaly_evidence.clone();
        if let Some(transition) = self.judge.observe(&sample, self.shared.stopping(), anomaly) {
            self.transitions[state_index(transition.to)] += 1;
            let verdict = self.judge.verdict();
            log::event(
                if transition.to == State::Draining { log::Level::Warn } else { log::Level::Info },
                "verdict_changed",
                json!({
                    "from": transition.from.name(),
                    "to": transition.to.name(),
                    "reasons": verdict.findings.iter().map(|f| json!({"reason": f.reason.code(), "evidence": f.evidence})).collect::<Vec<_>>(),
                }),
            );
        }

        let raw = vector::raw(&sample, self.judge.signals());
        self.score(&raw);
        if let Some(recorder) = &mut self.recorder
            && let Err(error) = recorder.write(sample.wall_ms, &raw)
        {
            log::error("record_failed", json!({"error": error.to_string(), "detail": "recording stopped"}));
            self.recorder = None;
        }

        self.tick += 1;
        self.shared.publish(Snapshot {
            mode: self.mode,
            tick: self.tick,
            verdict: self.judge.verdict().clone(),
            processes_visible: self.judge.processes_seen(),
            sources: self.sources.clone(),
            transitions: self.transitions,
            signals: self.judge.signals().clone(),
            restarts: *self.judge.restart_findings(),
            anomaly: self.anomaly.clone(),
            sample,
        });
        self.shared.metrics.observe_tick(started.elapsed());
    }

    /// Scores this tick's channels and keeps the evidence for the next verdict.
    fn score(&mut self, raw: &vector::Raw) {
        let Some(pipeline) = &mut self.pipeline else { return };
        let started = Instant::now();
        let pushed = pipeline.push(raw);
        let took = started.elapsed();
        match pushed {
            Ok(None) => {}
            Ok(Some(reading)) => {
                self.shared.metrics.observe_inference(took);
                let threshold = pipeline.detector().threshold();
                let calibrated_now = self.anomaly.threshold.is_none() && threshold.is_some();
                self.anomaly.calibrated_ticks = pipeline.detector().calibrated_ticks();
                self.anomaly.threshold = threshold;
                self.show(&reading);
                if calibrated_now {
                    log::info(
                        "anomaly_calibrated",
                        json!({"threshold": threshold, "ticks": self.anomaly.calibrated_ticks}),
                    );
                }
            }
            Err(error) => {
                // No score is no evidence: a failing model never keeps an old anomaly alive.
                self.anomaly_evidence = None;
                self.anomaly.errors_total += 1;
                if self.anomaly.errors_total == 1 {
                    log::error("model_failed", json!({"error": error.to_string()}));
                }
            }
        }
    }

    fn show(&mut self, reading: &Reading) {
        self.anomaly.score = Some(reading.score);
        self.anomaly.above_ticks = reading.above;
        self.anomaly.anomalous = reading.anomalous;
        self.anomaly_evidence = reading.evidence();
    }

    /// Updates per-source status and logs errors, rate-limited per source.
    fn account(&mut self, sample: &Sample, errors: &[SourceError]) {
        let mut failed = [false; 6];
        for error in errors {
            let status = &mut self.sources[error.source.index()];
            status.errors_total += 1;
            status.last_error = Some(error.detail.clone());
            failed[error.source.index()] = true;
            self.error_log.record(error, sample.at);
        }
        for source in Source::ALL {
            let status = &mut self.sources[source.index()];
            let has_reading = match source {
                Source::Proc => sample.proc_readable,
                Source::Cgroup => !sample.cgroups.is_empty(),
                Source::Network => !sample.networks.is_empty(),
                Source::Pressure => sample.pressure.is_some(),
                Source::Tmds => sample.task.is_some(),
                Source::Probe => sample.probe.is_some_and(|probe| probe.answered()),
            };
            status.up = status.enabled && has_reading && !failed[source.index()];
            if status.enabled && has_reading {
                status.last_success_at = Some(sample.at);
            }
        }
    }

    /// Facts worth one log line each, the first time they become true.
    fn tell_once(&mut self, sample: &Sample) {
        if !self.told_capped && self.sampler.capped() {
            self.told_capped = true;
            log::warn(
                "watch_capped",
                json!({"watched": sample.processes.len(), "hint": "set VIGIL_WATCH to the app's command line"}),
            );
        }
        // After a few ticks with no other process visible, say why process watching is off.
        if !self.told_invisible && self.tick == 3 && !self.judge.processes_seen() && sample.proc_readable {
            self.told_invisible = true;
            log::warn(
                "processes_not_visible",
                json!({"detail": "no other process is visible: process watching is off (share the PID namespace with pidMode \"task\" to enable it)"}),
            );
        }
    }
}

fn state_index(state: State) -> usize {
    State::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

/// Appends each tick's raw model channels to a CSV file: `unix_ms` and one column per channel,
/// empty when a channel had no reading. A write that fails is logged and recording stops.
struct Recorder {
    file: std::io::BufWriter<std::fs::File>,
    line: String,
}

impl Recorder {
    fn open(path: &std::path::Path) -> std::io::Result<Recorder> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let empty = file.metadata()?.len() == 0;
        let mut recorder = Recorder { file: std::io::BufWriter::new(file), line: String::with_capacity(256) };
        if empty {
            let header = format!("unix_ms,{}\n", vector::CHANNELS.join(","));
            recorder.append(&header)?;
        }
        Ok(recorder)
    }

    fn append(&mut self, text: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }

    fn write(&mut self, unix_ms: i64, raw: &vector::Raw) -> std::io::Result<()> {
        use std::fmt::Write as _;
        self.line.clear();
        let _ = write!(self.line, "{unix_ms}");
        for value in raw {
            self.line.push(',');
            if let Some(value) = value {
                let _ = write!(self.line, "{value}");
            }
        }
        self.line.push('\n');
        let line = std::mem::take(&mut self.line);
        let written = self.append(&line);
        self.line = line;
        written
    }
}

/// Logs the first error of each source at once, then at most one line a minute per source,
/// with the number of errors not logged in between.
#[derive(Default)]
struct ErrorLog {
    last_logged: [Option<Millis>; 6],
    suppressed: [u64; 6],
}

impl ErrorLog {
    const QUIET_MS: Millis = 60_000;

    fn record(&mut self, error: &SourceError, at: Millis) {
        let i = error.source.index();
        match self.last_logged[i] {
            Some(last) if at.saturating_sub(last) < Self::QUIET_MS => self.suppressed[i] += 1,
            _ => {
                log::warn(
                    "source_error",
                    json!({"source": error.source.name(), "error": error.detail, "suppressed": self.suppressed[i]}),
                );
                self.last_logged[i] = Some(at);
                self.suppressed[i] = 0;
            }
        }
    }
}

/// Reads and loads the configured model, with the name it goes by; `None` when it is off.
fn load_model(source: &ModelSource) -> Result<Option<(Model, String)>, StartError> {
    let refuse = |value: &str, reason: String| {
        StartError::Model(ConfigError { variable: ENV_MODEL, value: value.to_string(), reason })
    };
    match source {
        ModelSource::Off => Ok(None),
        ModelSource::Embedded => match Model::embedded() {
            Ok(model) => Ok(Some((model, EMBEDDED_NAME.to_string()))),
            Err(error) => Err(refuse("", format!("the embedded model: {error}"))),
        },
        ModelSource::File(path) => {
            let value = path.display().to_string();
            let bytes =
                std::fs::read(path).map_err(|error| refuse(&value, format!("cannot read: {error}")))?;
            let model = Model::load(&bytes).map_err(|error| refuse(&value, error.to_string()))?;
            Ok(Some((model, value)))
        }
    }
}

/// The verdict's state as served by `/health`.
pub fn health(verdict: &Verdict, stopping: bool) -> (u16, String) {
    if stopping && !verdict.has(crate::verdict::Reason::Stopping) {
        return (503, "draining: stopping (vigil received a stop signal)".to_string());
    }
    match verdict.state {
        State::Draining => (503, verdict.headline()),
        State::Healthy => (200, verdict.headline()),
        State::Degraded => (200, format!("ok; {}", verdict.headline())),
    }
}
