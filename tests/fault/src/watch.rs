//! Watching the tasks from the harness: the health-port prober (when a task turned red), and
//! per-second samples of every live task for the timeline plots — memory working set against
//! the limit (from the task's cgroup, every arm) and, in the vigil arm, what vigil's `/status`
//! says (state, health code, predicted time to exhaustion).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::http;
use crate::net;
use crate::report::{Event, EventKind};
use crate::sys::unix_now;
use crate::task::SIDECAR_PORT;

/// How often the prober polls a health port.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Polls a task's health port every [`PROBE_EVERY`] until `stop`, keeps the last answer in
/// `state` and logs each change to `events`.
pub async fn probe(
    slot: u32,
    port: u16,
    state: Arc<Mutex<Option<bool>>>,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
) {
    let url = format!("http://{}:{port}/health", net::slot_address(slot));
    let mut last: Option<Answer> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = tokio::time::Instant::now();
        let answer = http::get_fresh(&url, Duration::from_millis(800)).await;
        let (now, detail) = match answer {
            Ok(a) if a.status == 200 => (Answer::Ok, String::new()),
            Ok(a) => (
                Answer::Status(a.status),
                format!("{} {}", a.status, String::from_utf8_lossy(&a.body).trim()),
            ),
            Err(e) => (Answer::Failed, e.to_string()),
        };
        state.lock().expect("probe lock").replace(now == Answer::Ok);
        if worth_an_event(last, now) {
            let kind = if now == Answer::Ok { EventKind::HealthGreen } else { EventKind::HealthRed };
            events.lock().expect("events lock").push(Event { t: unix_now(), slot, kind, detail });
        }
        last = Some(now);
        tokio::time::sleep_until(started + PROBE_EVERY).await;
    }
}

/// One answer of a health port, as far as the timeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// Any other HTTP status (503: draining).
    Status(u16),
    /// No answer: refused, reset or timed out.
    Failed,
}

/// Whether an answer goes into the timeline: a turn to green or red, or a red of another kind
/// (503 to no answer, say). A port that has never answered is still starting, not red.
pub fn worth_an_event(last: Option<Answer>, now: Answer) -> bool {
    match last {
        None => now == Answer::Ok,
        Some(last) => last != now,
    }
}

/// Samples each live task `(slot, memory cgroup)` once, in the background, into `samples`;
/// `vigil` also reads vigil's `/status`.
pub fn spawn_samples(
    live: Vec<(u32, PathBuf)>,
    vigil: bool,
    limit_bytes: u64,
    samples: &Arc<Mutex<Vec<TaskSample>>>,
) {
    let now = unix_now();
    for (slot, memory) in live {
        let url = vigil.then(|| format!("http://{}:{SIDECAR_PORT}/status", net::slot_address(slot)));
        let samples = Arc::clone(samples);
        tokio::spawn(async move {
            let sample = sample(now, slot, &memory, limit_bytes, url.as_deref()).await;
            samples.lock().expect("samples lock").push(sample);
        });
    }
}

/// One task at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSample {
    /// Unix seconds.
    pub t: f64,
    pub slot: u32,
    /// Working set: usage − inactive file pages.
    pub memory_bytes: Option<u64>,
    pub limit_bytes: u64,
    /// vigil's state (`healthy`, `degraded`, `draining`).
    pub state: Option<String>,
    /// vigil's `/health` code.
    pub health: Option<u16>,
    /// The shortest predicted time to memory exhaustion, seconds.
    pub eta_memory_s: Option<f64>,
    /// The shortest predicted time to any exhaustion, seconds.
    pub eta_any_s: Option<f64>,
    /// vigil's reason codes, `+`-joined.
    pub reasons: String,
}

/// The working set of a v1 memory cgroup, bytes.
pub fn working_set(memory_cgroup: &Path) -> Option<u64> {
    let usage: u64 =
        std::fs::read_to_string(memory_cgroup.join("memory.usage_in_bytes")).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(memory_cgroup.join("memory.stat")).ok()?;
    let inactive = stat
        .lines()
        .find_map(|line| line.strip_prefix("total_inactive_file "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// Fills the vigil fields of `sample` from a `/status` document.
pub fn apply_status(sample: &mut TaskSample, status: &Value) {
    sample.state = status["state"].as_str().map(str::to_owned);
    sample.health = status["health"]["status"].as_u64().map(|c| c as u16);
    let etas = |memory_only: bool| {
        status["forecasts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| !memory_only || f["resource"].as_str() == Some("memory"))
            .filter_map(|f| f["eta_seconds"].as_f64())
            .filter(|eta| eta.is_finite() && *eta >= 0.0)
            .reduce(f64::min)
    };
    sample.eta_memory_s = etas(true);
    sample.eta_any_s = etas(false);
    sample.reasons = status["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["reason"].as_str())
        .collect::<Vec<_>>()
        .join("+");
}

/// Samples one task; `status_url` is vigil's `/status` (vigil arm only).
pub async fn sample(
    t: f64,
    slot: u32,
    memory_cgroup: &Path,
    limit_bytes: u64,
    status_url: Option<&str>,
) -> TaskSample {
    let mut sample = TaskSample {
        t,
        slot,
        memory_bytes: working_set(memory_cgroup),
        limit_bytes,
        ..TaskSample::default()
    };
    if let Some(url) = status_url
        && let Ok(answer) = http::get_fresh(url, Duration::from_millis(700)).await
        && let Ok(document) = serde_json::from_slice::<Value>(&answer.body)
    {
        apply_status(&mut sample, &document);
    }
    sample
}

/// `samples.csv`: one row per task and second, times relative to the load's start.
pub fn to_csv(samples: &[TaskSample], load_start: f64) -> String {
    let mut csv =
        String::from("t_rel_s,slot,memory_bytes,limit_bytes,state,health,eta_memory_s,eta_any_s,reasons\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
    for s in samples {
        csv.push_str(&format!(
            "{:.3},{},{},{},{},{},{},{},{}\n",
            s.t - load_start,
            s.slot,
            s.memory_bytes.map_or(String::new(), |m| m.to_string()),
            s.limit_bytes,
            s.state.as_deref().unwrap_or(""),
            s.health.map_or(String::new(), |h| h.to_string()),
            opt(s.eta_memory_s),
            opt(s.eta_any_s),
            s.reasons,
        ));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_gets_turns_and_changes_of_red() {
        use Answer::{Failed, Ok, Status};
        let rows = [
            (None, Failed, false),
            (None, Status(503), false),
            (None, Ok, true),
            (Some(Ok), Ok, false),
            (Some(Ok), Status(503), true),
            (Some(Status(503)), Status(503), false),
            (Some(Status(503)), Failed, true),
            (Some(Failed), Failed, false),
            (Some(Failed), Ok, true),
        ];
        for (last, now, expected) in rows {
            assert_eq!(worth_an_event(last, now), expected, "{last:?} then {now:?}");
        }
    }

    #[test]
    fn status_gives_state_health_and_the_shortest_etas() {
        let status: Value = serde_json::json!({
            "state": "draining",
            "health": {"status": 503, "body": "draining: memory_exhaustion"},
            "reasons": [{"reason": "memory_exhaustion"}, {"reason": "cpu_saturated"}],
            "forecasts": [
                {"resource": "memory", "eta_seconds": 42.5},
                {"resource": "memory", "eta_seconds": null},
                {"resource": "fds", "eta_seconds": 12.0},
            ],
        });
        let mut sample = TaskSample::default();
        apply_status(&mut sample, &status);
        assert_eq!(sample.state.as_deref(), Some("draining"));
        assert_eq!(sample.health, Some(503));
        assert_eq!(sample.eta_memory_s, Some(42.5));
        assert_eq!(sample.eta_any_s, Some(12.0));
        assert_eq!(sample.reasons, "memory_exhaustion+cpu_saturated");
        let csv = to_csv(&[TaskSample { t: 101.0, slot: 2, ..sample }], 100.0);
        assert!(csv.lines().nth(1).unwrap().starts_with("1.000,2,,0,draining,503,42.5,12.0,"), "{csv}");
    }
}
