//! What the tick loop publishes: one immutable [`Snapshot`] a tick, and the answer `/health`
//! gives from it. The loop writes, everything in `serve` reads; nothing here knows the loop.

use std::sync::{Arc, RwLock};

use crate::config::Mode;
use crate::judge::evidence::Reason;
use crate::judge::features::Signals;
use crate::judge::fleet::{FleetOutcome, FleetView, Reasons};
use crate::judge::restarts::RestartFindings;
use crate::judge::sample::{Millis, Sample, Source};
use crate::judge::verdict::{State, Verdict};

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
#[derive(Debug, Clone, Default, PartialEq)]
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
    pub sources: [SourceStatus; Source::ALL.len()],
    /// Verdict transitions so far, by the state entered (in the order of `State::ALL`).
    pub transitions: [u64; State::ALL.len()],
    /// Forecasts and surge signals of this tick.
    pub signals: Signals,
    pub restarts: RestartFindings,
    pub anomaly: AnomalyStatus,
    /// The draining reasons this task's own rules show, before the fleet's say.
    pub evidence: Reasons,
    /// What the fleet made of this tick, and the view it used (when the fleet view is on).
    pub fleet: FleetOutcome,
    pub fleet_view: Option<Arc<FleetView>>,
    pub sample: Sample,
}

impl Snapshot {
    /// The snapshot before the first tick.
    pub fn empty(mode: Mode) -> Snapshot {
        Snapshot {
            mode,
            tick: 0,
            verdict: Verdict::initial(0),
            processes_visible: false,
            sources: Default::default(),
            transitions: [0; State::ALL.len()],
            signals: Signals::default(),
            restarts: RestartFindings::default(),
            anomaly: AnomalyStatus::default(),
            evidence: Reasons::default(),
            fleet: FleetOutcome::default(),
            fleet_view: None,
            sample: Sample::default(),
        }
    }

    pub fn source(&self, source: Source) -> &SourceStatus {
        &self.sources[source.index()]
    }
}

/// The latest snapshot, shared by the tick loop (writer) and the metrics collector (reader).
pub type SnapshotCell = Arc<RwLock<Arc<Snapshot>>>;

/// The verdict's state as served by `/health`: the status code and the one-line body.
pub fn health(verdict: &Verdict, stopping: bool) -> (u16, String) {
    if stopping && !verdict.has(Reason::Stopping) {
        return (503, "draining: stopping (vigil received a stop signal)".to_string());
    }
    match verdict.state {
        State::Draining => (503, verdict.headline()),
        State::Healthy => (200, verdict.headline()),
        State::Degraded => (200, format!("ok; {}", verdict.headline())),
    }
}
