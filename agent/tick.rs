//! The tick loop: stamp the time, read every source, run the core's pipeline, publish one
//! immutable snapshot.
//!
//! ```text
//! sources (sampler, metadata client, probe) → Sample
//!   → judge::pipeline: features → restarts → anomaly → evidence → verdict
//!   → serve::snapshot::Snapshot (read by /health, /status, /metrics)
//! ```
//!
//! The loop owns the sources and the pipeline and is the only writer of [`Shared`]. It is also
//! where the clock is read and where the pipeline's outcome is logged and recorded.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config::{Config, ConfigError, ENV_MODEL, Mode, ModelSource};
use crate::judge::anomaly::{Calibration, Reading, Scorer, Scoring};
use crate::judge::evidence::RulesConfig;
use crate::judge::features::FeatureConfig;
use crate::judge::fleet::FleetView;
use crate::judge::model::{EMBEDDED_NAME, Model, ModelError};
use crate::judge::pipeline::{Pipeline, PipelineConfig, Step};
use crate::judge::sample::{Millis, Sample, Source, SourceError};
use crate::judge::vector;
use crate::judge::verdict::{Finding, Hold, JudgeConfig, Phase, State};
use crate::log;
use crate::record::Recorder;
use crate::serve::shared::Shared;
use crate::serve::snapshot::{AnomalyStatus, Snapshot, SourceStatus};
use crate::sources::fleet::{self, FleetHandle, FleetPoller, Identity};
use crate::sources::probe::AppProbe;
use crate::sources::sampler::LocalSampler;
use crate::sources::tmds::TmdsClient;

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

/// Source errors and model failures are logged at most once a minute each, with a count.
const ERROR_QUIET_MS: Millis = 60_000;
/// The error log's key for model failures, after the sources' own.
const MODEL_KEY: usize = Source::ALL.len();

/// The model, timed: the inference histogram is the loop's, since the core never reads the clock.
pub struct TimedModel {
    model: Model,
    /// How long the last run took.
    took: Option<std::time::Duration>,
}

impl Scorer for TimedModel {
    type Error = ModelError;

    fn score(&mut self, input: &[f32; vector::INPUT_WIDTH]) -> Result<f32, ModelError> {
        let started = Instant::now();
        let score = self.model.score(input);
        self.took = Some(started.elapsed());
        score
    }
}

/// The sources, the pipeline and what the loop remembers between ticks.
pub struct Agent {
    shared: Arc<Shared>,
    mode: Mode,
    sampler: LocalSampler,
    tmds: Option<TmdsClient>,
    probe: Option<AppProbe>,
    /// The fleet poller until `run` starts it, and the feed it fills.
    poller: Option<FleetPoller>,
    fleet: Option<FleetHandle>,
    /// The latest fleet view, as read at the start of this tick.
    view: Option<Arc<FleetView>>,
    fleet_stale_ms: Millis,
    pipeline: Pipeline<TimedModel>,
    sources: [SourceStatus; Source::ALL.len()],
    transitions: [u64; State::ALL.len()],
    /// Source errors by `Source::index`, model failures under [`MODEL_KEY`].
    error_log: log::Quiet<{ Source::ALL.len() + 1 }>,
    tick: u64,
    recorder: Option<Recorder>,
    anomaly: AnomalyStatus,
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
                AppProbe::new(url, config.app_health_timeout, config.fleet_url.is_some())
                    .map_err(|error| StartError::Client(format!("app probe: {error}")))?,
            ),
            None => None,
        };
        let poller = match &config.fleet_url {
            Some(url) => Some(
                FleetPoller::new(url, &config.fleet_selector, config.fleet_interval)
                    .map_err(|error| StartError::Client(format!("fleet client: {error}")))?,
            ),
            None => None,
        };
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
        let mut sources: [SourceStatus; Source::ALL.len()] = Default::default();
        for source in Source::ALL {
            sources[source.index()].enabled = match source {
                Source::Tmds => tmds.is_some(),
                Source::Probe => probe.is_some(),
                Source::Fleet => poller.is_some(),
                _ => true,
            };
        }
        let pipeline = Pipeline::new(
            PipelineConfig {
                features: FeatureConfig { warmup_ms: config.warmup.as_millis() as u64 },
                rules: RulesConfig {
                    tmds_expected: tmds.is_some(),
                    horizon_seconds: config.drain_horizon.as_secs_f64(),
                    restart_window_ms: 3 * config.restart_period.as_millis() as u64,
                    ..RulesConfig::default()
                },
                judge: JudgeConfig { enter_ticks: config.confirm_ticks, exit_ticks: config.clear_ticks },
                fleet: config.fleet,
            },
            model.map(|model| Scoring::new(TimedModel { model, took: None }, calibration)),
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
            mode: config.mode(),
            tmds,
            probe,
            fleet: poller.as_ref().map(FleetPoller::handle),
            poller,
            view: None,
            fleet_stale_ms: config.fleet.stale_ms,
            pipeline,
            sources,
            transitions: [0; State::ALL.len()],
            error_log: log::Quiet::new(ERROR_QUIET_MS),
            tick: 0,
            recorder: match &config.record {
                Some(path) => Some(
                    Recorder::open(path)
                        .map_err(|error| StartError::Record(format!("{}: {error}", path.display())))?,
                ),
                None => None,
            },
            anomaly: AnomalyStatus {
                model: model_name,
                calibration_ticks: calibration.ticks,
                ..AnomalyStatus::default()
            },
            told_capped: false,
            told_invisible: false,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Runs ticks until the process exits.
    pub async fn run(mut self) {
        self.start_fleet();
        let mut interval = tokio::time::interval(self.shared.interval());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.tick().await;
        }
    }

    /// Starts the fleet poller beside the tick loop, if the fleet view is on (once).
    pub fn start_fleet(&mut self) {
        if let Some(poller) = self.poller.take() {
            let shared = Arc::clone(&self.shared);
            tokio::spawn(poller.run(move || shared.now()));
        }
    }

    /// One tick: read, run the pipeline, publish.
    pub async fn tick(&mut self) {
        let started = Instant::now();
        let sample = self.read().await;
        let step = self.pipeline.step(&sample, self.shared.stopping(), self.view.as_deref());
        self.tell(&step, sample.at);
        self.record(&sample, &step);
        // A drain waits for the fleet to see it, and one may be coming while a reason is
        // confirmed: ask for views sooner meanwhile.
        if let Some(handle) = &self.fleet {
            let waiting = |f: &Finding| {
                f.held == Some(Hold::Unseen)
                    || (f.reason.drains() && matches!(f.phase, Phase::Confirming { .. }))
            };
            handle.set_waiting(self.pipeline.verdict().findings.iter().any(waiting));
        }
        self.publish(sample, step);
        self.shared.metrics.observe_tick(started.elapsed());
    }

    /// Reads every source into one sample stamped with this tick's time, and accounts for
    /// each source's errors.
    async fn read(&mut self) -> Sample {
        let at = self.shared.now();
        let mut sample = Sample { at, wall_ms: wall_now_ms(), ..Sample::default() };
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
                // A miss is likely evidence: the view it will be weighed against is asked for
                // while the miss is re-probed.
                Some(probe) => {
                    let ring = || self.fleet.as_ref().map_or((), FleetHandle::ring);
                    Some((wall_now_ms(), probe.probe(ring).await))
                }
                None => None,
            }
        };
        let ((task, tmds_errors), probe) = tokio::join!(tmds, probe);
        sample.task = task;
        if let Some((sent_ms, reading)) = probe {
            sample.probe = Some(reading);
            sample.probe_sent_ms = sent_ms;
        }
        errors.extend(tmds_errors);
        self.read_fleet(&sample, &mut errors);

        self.account(&sample, &errors);
        self.tell_once(&sample);
        sample
    }

    /// Tells the fleet poller who this task is, and takes the latest view and its failures.
    fn read_fleet(&mut self, sample: &Sample, errors: &mut Vec<SourceError>) {
        let Some(handle) = &self.fleet else { return };
        let mut feed = fleet::lock(&handle.feed);
        if let Some(task) = &sample.task {
            let identity = Identity::of(task);
            if feed.identity.as_ref() != Some(&identity) {
                feed.identity = Some(identity);
            }
        }
        for error in feed.errors.drain(..) {
            errors.push(SourceError { source: Source::Fleet, detail: error.to_string() });
        }
        self.view = feed.view.clone();
    }

    /// Logs what changed on this tick: the verdict, the anomaly threshold, a failing model.
    fn tell(&mut self, step: &Step<ModelError>, at: Millis) {
        if let Some(transition) = &step.transition {
            let verdict = self.pipeline.verdict();
            log::event(
                if transition.to == State::Draining { log::Level::Warn } else { log::Level::Info },
                "verdict_changed",
                json!({
                    "from": transition.from.name(),
                    "to": transition.to.name(),
                    "reasons": verdict.findings.iter().map(|f| json!({"reason": f.reason.code(), "evidence": f.to_string()})).collect::<Vec<_>>(),
                }),
            );
        }
        let scoring = self.pipeline.scoring();
        match &step.anomaly {
            None => {}
            Some(Ok(reading)) => {
                if let Some(took) = scoring.and_then(|s| s.scorer().took) {
                    self.shared.metrics.observe_inference(took);
                }
                let threshold = scoring.and_then(|s| s.detector().threshold());
                let calibrated_now = self.anomaly.threshold.is_none() && threshold.is_some();
                self.anomaly.calibrated_ticks = scoring.map_or(0, |s| s.detector().calibrated_ticks());
                self.anomaly.threshold = threshold;
                self.show(reading);
                if calibrated_now {
                    log::info(
                        "anomaly_calibrated",
                        json!({"threshold": threshold, "ticks": self.anomaly.calibrated_ticks}),
                    );
                }
            }
            Some(Err(error)) => {
                self.anomaly.errors_total += 1;
                if let Some(suppressed) = self.error_log.admit(MODEL_KEY, at) {
                    log::error("model_failed", json!({"error": error.to_string(), "suppressed": suppressed}));
                }
            }
        }
    }

    fn show(&mut self, reading: &Reading) {
        self.anomaly.score = Some(reading.score);
        self.anomaly.above_ticks = reading.above;
        self.anomaly.anomalous = reading.anomalous;
    }

    /// Appends this tick's model channels to `VIGIL_RECORD`; a failed write stops recording.
    fn record(&mut self, sample: &Sample, step: &Step<ModelError>) {
        if let Some(recorder) = &mut self.recorder
            && let Err(error) = recorder.write(sample.wall_ms, &step.raw)
        {
            log::error("record_failed", json!({"error": error.to_string(), "detail": "recording stopped"}));
            self.recorder = None;
        }
    }

    fn publish(&mut self, sample: Sample, step: Step<ModelError>) {
        if let Some(transition) = &step.transition {
            self.transitions[transition.to.index()] += 1;
        }
        self.tick += 1;
        self.shared.publish(Snapshot {
            mode: self.mode,
            tick: self.tick,
            verdict: self.pipeline.verdict().clone(),
            processes_visible: self.pipeline.processes_seen(),
            sources: self.sources.clone(),
            transitions: self.transitions,
            signals: step.signals,
            restarts: step.restarts,
            anomaly: self.anomaly.clone(),
            evidence: step.evidence,
            fleet: step.fleet,
            fleet_view: self.view.clone(),
            sample,
        });
    }

    /// Updates per-source status and logs errors, rate-limited per source.
    fn account(&mut self, sample: &Sample, errors: &[SourceError]) {
        let mut failed = [false; Source::ALL.len()];
        for error in errors {
            let status = &mut self.sources[error.source.index()];
            status.errors_total += 1;
            status.last_error = Some(error.detail.clone());
            failed[error.source.index()] = true;
            if let Some(suppressed) = self.error_log.admit(error.source.index(), sample.at) {
                log::warn(
                    "source_error",
                    json!({"source": error.source.name(), "error": error.detail, "suppressed": suppressed}),
                );
            }
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
                Source::Fleet => self
                    .view
                    .as_ref()
                    .is_some_and(|view| sample.at.saturating_sub(view.at) <= self.fleet_stale_ms),
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
        if !self.told_invisible && self.tick == 3 && !self.pipeline.processes_seen() && sample.proc_readable {
            self.told_invisible = true;
            log::warn(
                "processes_not_visible",
                json!({"detail": "no other process is visible: process watching is off (share the PID namespace with pidMode \"task\" to enable it)"}),
            );
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

/// The wall clock, milliseconds since the Unix epoch (0 before it).
fn wall_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
