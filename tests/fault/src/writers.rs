//! The files an arm leaves behind besides the summary: the timeline (`events.jsonl`,
//! `requests.csv`), the task init logs turned into timeline events, and the record index beside
//! the training recordings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::load::Outcome;
use crate::report::{ArmSummary, Event, EventKind};
use crate::scenario::Scenario;
use crate::task;

/// Converts a task init's log into timeline events.
pub fn init_events(slot: u32, path: &Path) -> Vec<Event> {
    task::read_events(path)
        .into_iter()
        .filter(|e| e.container == "app" || e.event == "task_stopped")
        .map(|e| {
            let kind = match e.event.as_str() {
                "start" => EventKind::AppStart,
                "exit" => EventKind::AppExit,
                _ => EventKind::TaskStopped,
            };
            let mut detail = String::new();
            if let Some(code) = e.code {
                detail = format!("code {code}");
            }
            if e.oom {
                detail.push_str(" oom");
            }
            if e.restart_count > 0 {
                detail.push_str(&format!(" restart {}", e.restart_count));
            }
            Event { t: e.t, slot, kind, detail: detail.trim().to_owned() }
        })
        .collect()
}

/// `events.jsonl`: one event a line, with `t_rel` in seconds from the load's start.
pub fn events_jsonl(events: &[Event], load_start: f64) -> String {
    let mut lines = String::new();
    for event in events {
        let mut value = serde_json::to_value(event).unwrap_or_default();
        value["t_rel"] = serde_json::json!(((event.t - load_start) * 1000.0).round() / 1000.0);
        lines.push_str(&value.to_string());
        lines.push('\n');
    }
    lines
}

/// `requests.csv`: every request, seconds from the load's start.
pub fn requests_csv(outcomes: &[Outcome], load_start: f64) -> String {
    let mut csv = String::from("t_rel_s,latency_ms,status\n");
    for o in outcomes {
        csv.push_str(&format!("{:.4},{:.2},{}\n", o.t - load_start, o.latency_ms, o.status));
    }
    csv
}

/// Writes `events.jsonl` and `requests.csv` in `dir`.
pub fn write_timeline(dir: &Path, events: &[Event], outcomes: &[Outcome], load_start: f64) {
    let _ = std::fs::write(dir.join("events.jsonl"), events_jsonl(events, load_start));
    let _ = std::fs::write(dir.join("requests.csv"), requests_csv(outcomes, load_start));
}

/// The record index: when the load and the fault started (Unix ms), which task slots the fault
/// hit, and each slot's life span, so ticks can be labelled.
pub fn record_index(
    scenario: &Scenario,
    summary: &ArmSummary,
    load_start: f64,
    targets: &[u32],
    events: &[Event],
) -> serde_json::Value {
    let ms = |t: f64| (t * 1000.0).round() as i64;
    let mut slots = BTreeMap::new();
    for event in events {
        let span = slots.entry(event.slot).or_insert((event.t, event.t));
        span.0 = span.0.min(event.t);
        span.1 = span.1.max(event.t);
    }
    serde_json::json!({
        "scenario": scenario.name,
        "description": scenario.description,
        "benign": scenario.benign,
        "fault": scenario.fault.as_ref().map(|f| format!("{} {}", f.kind, f.params).trim().to_owned()),
        "load_start_unix_ms": ms(load_start),
        "fault_start_unix_ms": summary.fault_time_s.map(|t| ms(load_start + t)),
        "fault_end_unix_ms": scenario
            .fault
            .as_ref()
            .and_then(|f| f.for_s.map(|d| ms(load_start + f.at_s + d))),
        "target_slots": targets,
        "slots": slots
            .iter()
            .map(|(slot, (first, last))| serde_json::json!({"slot": slot, "first_unix_ms": ms(*first), "last_unix_ms": ms(*last)}))
            .collect::<Vec<_>>(),
    })
}

/// Writes the record index to `<prefix>.json`, beside the recordings.
pub fn write_record_index(prefix: &Path, index: &serde_json::Value) {
    let path = PathBuf::from(format!("{}.json", prefix.display()));
    let _ = std::fs::write(path, serde_json::to_string_pretty(index).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_times_are_relative_to_the_load_start() {
        let events = [Event { t: 101.2346, slot: 2, kind: EventKind::HaproxyDown, detail: String::new() }];
        assert_eq!(
            events_jsonl(&events, 100.0),
            "{\"kind\":\"haproxy_down\",\"slot\":2,\"t\":101.2346,\"t_rel\":1.235}\n"
        );
        let outcomes = [Outcome { t: 100.5, latency_ms: 3.25, status: 503 }];
        assert_eq!(requests_csv(&outcomes, 100.0), "t_rel_s,latency_ms,status\n0.5000,3.25,503\n");
    }
}
