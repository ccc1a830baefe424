//! Results: the timeline of one arm reduced to the figures of `summary.json`, the checks of a
//! scenario's `[expect]`, and the Markdown table. Pure: everything comes in as arguments.

use serde::Serialize;

use crate::load::{OVER_CAP, Outcome, TIMED_OUT, TRANSPORT_ERROR};
use crate::prometheus::ScrapeTotals;
use crate::scenario::Bounds;

/// One thing that happened to a task, in Unix seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub t: f64,
    pub slot: u32,
    pub kind: EventKind,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The kinds of [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    TaskLaunched,
    Registered,
    HaproxyUp,
    HaproxyDown,
    HealthRed,
    HealthGreen,
    FaultInjected,
    FaultCleared,
    AppStart,
    AppExit,
    TaskStopped,
    ReplacementStarted,
    Deregistered,
    StopRequested,
}

/// The figures of one arm of one scenario under one HAProxy profile.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ArmSummary {
    pub scenario: String,
    pub arm: String,
    pub profile: String,
    /// `ok`, `skipped` or `error`.
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    pub requests: u64,
    pub client_errors: u64,
    pub success_ratio: f64,
    pub errors_5xx: u64,
    pub errors_other_http: u64,
    pub errors_transport: u64,
    pub errors_timeout: u64,
    pub errors_over_cap: u64,
    /// Seconds from the load's start; `None` when it did not happen.
    pub fault_time_s: Option<f64>,
    pub crash_time_s: Option<f64>,
    pub health_red_time_s: Option<f64>,
    pub haproxy_down_time_s: Option<f64>,
    /// crash − HAProxy down: positive when the task left the balancer before it crashed.
    pub lead_time_s: Option<f64>,
    pub crashes: u64,
    pub oom_kills: u64,
    pub false_drains: u64,
    pub drains: u64,
    pub replacements: u64,
    /// A fault target's second restart (its app's third start) plus [`PATTERN_GRACE_S`]: from
    /// then on the restarts form the crash-loop pattern.
    pub pattern_time_s: Option<f64>,
    /// Client errors sent after `pattern_time_s`.
    pub errors_after_pattern: Option<u64>,
    /// The most tasks whose health port answered 503 at the same moment (the prober's view; in
    /// the vigil arm, vigils draining at once).
    pub draining_at_once: u64,
    pub scrapes: Option<ScrapeTotals>,
    /// The task slots the fault hit (tN folders).
    pub target_slots: Vec<u32>,
    /// The expectation checks that failed (empty when all passed or none applied).
    pub failed_checks: Vec<String>,
}

/// Seconds after a target's second restart from which client errors count as errors after the
/// crash-loop pattern: the restarted app needs a moment before it accepts connections again.
pub const PATTERN_GRACE_S: f64 = 0.5;

/// What the reduction needs to know about the run.
pub struct Context<'a> {
    pub load_start: f64,
    /// Slots whose task the fault hits.
    pub targets: &'a [u32],
    /// True when no task should be drained at all.
    pub benign: bool,
    /// Seconds after a target's app start when an environment-delivered fault takes effect.
    pub env_fault_after: Option<f64>,
    /// The fault acts on the run, not on tasks (`prometheus-stop`): its time is the harness's
    /// own event (slot 0).
    pub run_level_fault: bool,
}

/// Reduces the outcomes and the timeline to the arm's figures.
pub fn summarise(events: &[Event], outcomes: &[Outcome], context: &Context) -> ArmSummary {
    let mut summary = ArmSummary { status: "ok".into(), ..ArmSummary::default() };
    count_outcomes(&mut summary, outcomes);
    let rel = |t: f64| ((t - context.load_start) * 1000.0).round() / 1000.0;
    let is_target = |slot: u32| context.targets.contains(&slot);
    let first = |kind: EventKind, after: f64| {
        events
            .iter()
            .filter(|e| e.kind == kind && is_target(e.slot) && e.t >= after)
            .map(|e| e.t)
            .reduce(f64::min)
    };
    // An environment-delivered fault counts from the app's own start, which the init logs a
    // moment late: look for its effects from the first start on.
    let (fault, window) = match context.env_fault_after {
        Some(after) => {
            let start = first(EventKind::AppStart, f64::MIN);
            (start.map(|t| t + after), start)
        }
        None if context.run_level_fault => {
            let injected = events
                .iter()
                .filter(|e| e.kind == EventKind::FaultInjected && e.slot == 0)
                .map(|e| e.t)
                .reduce(f64::min);
            (injected, injected)
        }
        None => {
            let injected = first(EventKind::FaultInjected, f64::MIN);
            (injected, injected)
        }
    };
    if let Some((fault, window)) = fault.zip(window) {
        let crash = first(EventKind::AppExit, window);
        let red = first(EventKind::HealthRed, window);
        let down = first(EventKind::HaproxyDown, window);
        summary.fault_time_s = Some(rel(fault));
        summary.crash_time_s = crash.map(rel);
        summary.health_red_time_s = red.map(rel);
        summary.haproxy_down_time_s = down.map(rel);
        summary.lead_time_s = crash.zip(down).map(|(c, d)| ((c - d) * 1000.0).round() / 1000.0);
        // The pattern: the earliest second restart (third app start) of any target, plus the
        // moment the restarted app needs to listen again (the tail of the second crash's outage).
        let pattern = context
            .targets
            .iter()
            .filter_map(|slot| {
                events.iter().filter(|e| e.kind == EventKind::AppStart && e.slot == *slot).nth(2).map(|e| e.t)
            })
            .reduce(f64::min)
            .map(|t| t + PATTERN_GRACE_S);
        if let Some(pattern) = pattern {
            let after = outcomes.iter().filter(|o| o.t > pattern && !o.ok()).count();
            summary.pattern_time_s = Some(rel(pattern));
            summary.errors_after_pattern = Some(after as u64);
        }
    }
    let count = |kind: EventKind| events.iter().filter(|e| e.kind == kind).count() as u64;
    summary.crashes = count(EventKind::AppExit);
    summary.oom_kills =
        events.iter().filter(|e| e.kind == EventKind::AppExit && e.detail.contains("oom")).count() as u64;
    summary.drains = count(EventKind::HaproxyDown);
    summary.replacements = count(EventKind::ReplacementStarted);
    summary.false_drains = events
        .iter()
        .filter(|e| e.kind == EventKind::HaproxyDown && (context.benign || !is_target(e.slot)))
        .count() as u64;
    summary.draining_at_once = draining_at_once(events);
    summary
}

/// The most live tasks whose health port answered 503 at the same moment: how much serving
/// capacity the health answers took away at once, which the drain budget bounds. A slot's 503
/// spell opens at a `health_red` event whose answer was 503 and closes at its next
/// `health_green` or `health_red` (another answer), when its app exits, or when its stop is
/// requested or its task stopped. From its app's exit to its next start a slot serves nothing,
/// so its 503 (`processes_gone`) takes nothing away and opens no spell. A spell that closes at
/// the moment another opens does not overlap it.
pub fn draining_at_once(events: &[Event]) -> u64 {
    let is_503 =
        |e: &Event| e.kind == EventKind::HealthRed && e.detail.split_whitespace().next() == Some("503");
    let closes = |e: &Event| {
        matches!(
            e.kind,
            EventKind::HealthGreen
                | EventKind::HealthRed
                | EventKind::StopRequested
                | EventKind::TaskStopped
                | EventKind::AppExit
                | EventKind::AppStart
        )
    };
    let mut order: Vec<&Event> = events.iter().filter(|e| is_503(e) || closes(e)).collect();
    // Closings before openings at the same instant.
    order.sort_by(|a, b| a.t.total_cmp(&b.t).then(is_503(a).cmp(&is_503(b))));
    let mut open = std::collections::BTreeSet::new();
    let mut exited = std::collections::BTreeSet::new();
    let mut most = 0;
    for event in order {
        if is_503(event) {
            if !exited.contains(&event.slot) {
                open.insert(event.slot);
                most = most.max(open.len());
            }
            continue;
        }
        open.remove(&event.slot);
        match event.kind {
            EventKind::AppExit => exited.insert(event.slot),
            EventKind::AppStart => exited.remove(&event.slot),
            _ => false,
        };
    }
    most as u64
}

fn count_outcomes(summary: &mut ArmSummary, outcomes: &[Outcome]) {
    summary.requests = outcomes.len() as u64;
    for outcome in outcomes.iter().filter(|o| !o.ok()) {
        summary.client_errors += 1;
        match outcome.status {
            TRANSPORT_ERROR => summary.errors_transport += 1,
            TIMED_OUT => summary.errors_timeout += 1,
            OVER_CAP => summary.errors_over_cap += 1,
            500..=599 => summary.errors_5xx += 1,
            _ => summary.errors_other_http += 1,
        }
    }
    summary.success_ratio = if summary.requests == 0 {
        0.0
    } else {
        let ok = (summary.requests - summary.client_errors) as f64 / summary.requests as f64;
        (ok * 1e5).round() / 1e5
    };
}

/// Checks one arm against its bounds; returns what failed.
pub fn check(summary: &ArmSummary, bounds: &Bounds) -> Vec<String> {
    let mut failed = Vec::new();
    if let Some(max) = bounds.client_errors_max
        && summary.client_errors > max
    {
        failed.push(format!("client_errors {} > {max}", summary.client_errors));
    }
    if let Some(min) = bounds.client_errors_min
        && summary.client_errors < min
    {
        failed.push(format!("client_errors {} < {min}", summary.client_errors));
    }
    if let Some(max) = bounds.false_drains_max
        && summary.false_drains > max
    {
        failed.push(format!("false_drains {} > {max}", summary.false_drains));
    }
    if let Some(max) = bounds.drains_max
        && summary.drains > max
    {
        failed.push(format!("drains {} > {max}", summary.drains));
    }
    if let Some(max) = bounds.draining_at_once_max
        && summary.draining_at_once > max
    {
        failed.push(format!("draining_at_once {} > {max}", summary.draining_at_once));
    }
    if let Some(max) = bounds.errors_after_pattern_max {
        match summary.errors_after_pattern {
            Some(n) if n > max => failed.push(format!("errors_after_pattern {n} > {max}")),
            None => failed.push("no second restart happened".into()),
            _ => {}
        }
    }
    failed
}

/// Which figure [`check_vigil_beats_baseline`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compared {
    ClientErrors,
    ErrorsAfterPattern,
}

impl Compared {
    fn name(self) -> &'static str {
        match self {
            Compared::ClientErrors => "client_errors",
            Compared::ErrorsAfterPattern => "errors_after_pattern",
        }
    }

    fn of(self, summary: &ArmSummary) -> Option<u64> {
        match self {
            Compared::ClientErrors => Some(summary.client_errors),
            Compared::ErrorsAfterPattern => summary.errors_after_pattern,
        }
    }
}

/// Fails the vigil arm of `scenario` wherever its `figure` is not below the baseline arm's under
/// the same profile (or either arm lacks the figure).
pub fn check_vigil_beats_baseline(summaries: &mut [ArmSummary], scenario: &str, figure: Compared) {
    let baselines: Vec<(String, Option<u64>)> = summaries
        .iter()
        .filter(|s| s.scenario == scenario && s.arm == "baseline" && s.status == "ok")
        .map(|s| (s.profile.clone(), figure.of(s)))
        .collect();
    for summary in
        summaries.iter_mut().filter(|s| s.scenario == scenario && s.arm == "vigil" && s.status == "ok")
    {
        let Some((_, baseline)) = baselines.iter().find(|(p, _)| *p == summary.profile) else {
            continue;
        };
        let name = figure.name();
        match (figure.of(summary), baseline) {
            (Some(mine), Some(theirs)) if mine < *theirs => {}
            (Some(mine), Some(theirs)) => {
                summary.failed_checks.push(format!("{name} {mine} not below the baseline's {theirs}"))
            }
            _ => summary.failed_checks.push(format!("{name} missing in the vigil or the baseline arm")),
        }
    }
}

fn cell(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.1}"))
}

/// The Markdown table of every arm.
pub fn markdown(summaries: &[ArmSummary]) -> String {
    let mut table = String::from(
        "| scenario | profile | arm | status | requests | client errors | success | fault s | crash s | red s | down s | lead s | crashes | drains | false drains | draining at once | errors after pattern | checks |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for s in summaries {
        let checks = if s.status != "ok" {
            s.note.clone()
        } else if s.failed_checks.is_empty() {
            "pass".into()
        } else {
            format!("FAIL: {}", s.failed_checks.join("; "))
        };
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.scenario,
            s.profile,
            s.arm,
            s.status,
            s.requests,
            s.client_errors,
            s.success_ratio,
            cell(s.fault_time_s),
            cell(s.crash_time_s),
            cell(s.health_red_time_s),
            cell(s.haproxy_down_time_s),
            cell(s.lead_time_s),
            s.crashes,
            s.drains,
            s.false_drains,
            s.draining_at_once,
            s.errors_after_pattern.map_or("–".into(), |n| n.to_string()),
            checks,
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t: f64, slot: u32, kind: EventKind) -> Event {
        Event { t, slot, kind, detail: String::new() }
    }

    fn outcome(t: f64, status: u16) -> Outcome {
        Outcome { t, latency_ms: 1.0, status }
    }

    #[test]
    fn a_task_removed_before_its_crash_has_positive_lead() {
        let events = vec![
            event(100.0, 1, EventKind::AppStart),
            event(110.0, 1, EventKind::FaultInjected),
            event(130.0, 1, EventKind::HealthRed),
            event(131.5, 1, EventKind::HaproxyDown),
            event(140.0, 1, EventKind::AppExit),
            event(150.0, 2, EventKind::HaproxyDown),
        ];
        let outcomes = vec![outcome(101.0, 200), outcome(102.0, 502), outcome(103.0, TIMED_OUT)];
        let context = Context {
            load_start: 100.0,
            targets: &[1],
            benign: false,
            env_fault_after: None,
            run_level_fault: false,
        };
        let s = summarise(&events, &outcomes, &context);
        assert_eq!((s.requests, s.client_errors), (3, 2));
        assert_eq!((s.errors_5xx, s.errors_timeout), (1, 1));
        assert_eq!(s.fault_time_s, Some(10.0));
        assert_eq!(s.crash_time_s, Some(40.0));
        assert_eq!(s.haproxy_down_time_s, Some(31.5));
        assert_eq!(s.lead_time_s, Some(8.5));
        assert_eq!((s.drains, s.false_drains), (2, 1));
        assert_eq!(s.errors_after_pattern, None);
    }

    #[test]
    fn env_faults_count_from_the_first_start_and_benign_drains_are_false() {
        let events = vec![
            event(95.0, 1, EventKind::AppStart),
            event(115.0, 1, EventKind::AppExit),
            event(116.0, 1, EventKind::AppStart),
            event(130.0, 1, EventKind::AppExit),
            event(131.0, 1, EventKind::AppStart),
            event(131.0, 1, EventKind::HaproxyDown),
        ];
        let outcomes = vec![
            outcome(120.0, 502),
            outcome(130.5, 502),
            outcome(131.2, 502),
            outcome(132.0, 502),
            outcome(140.0, 200),
        ];
        let context = Context {
            load_start: 100.0,
            targets: &[1],
            benign: true,
            env_fault_after: Some(20.0),
            run_level_fault: false,
        };
        let s = summarise(&events, &outcomes, &context);
        assert_eq!(s.fault_time_s, Some(15.0));
        assert_eq!(s.crash_time_s, Some(15.0));
        assert_eq!(s.pattern_time_s, Some(31.5));
        assert_eq!(s.errors_after_pattern, Some(1));
        assert_eq!(s.false_drains, 1);
        let bounds =
            Bounds { errors_after_pattern_max: Some(0), false_drains_max: Some(0), ..Bounds::default() };
        assert_eq!(check(&s, &bounds).len(), 2);
    }

    fn red(t: f64, slot: u32, detail: &str) -> Event {
        Event { t, slot, kind: EventKind::HealthRed, detail: detail.into() }
    }

    #[test]
    fn draining_at_once_counts_overlapping_503_spells() {
        use EventKind::{AppExit, AppStart, HealthGreen, StopRequested, TaskStopped};
        let rows: Vec<(&str, Vec<Event>, u64)> = vec![
            ("nothing red", vec![event(1.0, 1, HealthGreen)], 0),
            ("one spell", vec![red(1.0, 1, "503 draining: memory"), event(5.0, 1, HealthGreen)], 1),
            (
                "no answer is not draining",
                vec![red(1.0, 1, "connection refused"), red(1.5, 2, "timed out"), red(2.0, 3, "503 x")],
                1,
            ),
            (
                "three at once",
                vec![
                    red(1.0, 1, "503 a"),
                    red(2.0, 2, "503 b"),
                    red(3.0, 3, "503 c"),
                    event(4.0, 1, HealthGreen),
                ],
                3,
            ),
            (
                "one after the other",
                vec![
                    red(1.0, 1, "503 a"),
                    event(3.0, 1, StopRequested),
                    red(3.0, 2, "503 b"),
                    event(5.0, 2, TaskStopped),
                    red(6.0, 3, "503 c"),
                ],
                1,
            ),
            (
                "503 then no answer ends the spell",
                vec![red(1.0, 1, "503 a"), red(2.0, 1, "connection refused"), red(3.0, 2, "503 b")],
                1,
            ),
            ("a repeated 503 of one slot counts once", vec![red(1.0, 1, "503 a"), red(2.0, 1, "503 b")], 1),
            (
                "a slot whose app has exited takes nothing away",
                vec![
                    red(1.0, 1, "503 a"),
                    event(2.0, 2, AppExit),
                    red(2.5, 2, "503 processes_gone"),
                    event(3.0, 3, AppExit),
                    red(3.5, 3, "503 processes_gone"),
                    event(4.0, 1, AppExit),
                    red(4.5, 1, "503 processes_gone"),
                ],
                1,
            ),
            (
                "an exit ends the spell and a restart makes the slot count again",
                vec![
                    red(1.0, 1, "503 a"),
                    event(2.0, 1, AppExit),
                    red(2.0, 2, "503 b"),
                    event(3.0, 1, AppStart),
                    red(4.0, 1, "503 c"),
                ],
                2,
            ),
            (
                "out of order input",
                vec![event(9.0, 1, HealthGreen), red(2.0, 2, "503 b"), red(1.0, 1, "503 a")],
                2,
            ),
        ];
        for (row, events, expected) in rows {
            assert_eq!(draining_at_once(&events), expected, "{row}");
        }
        let summary = ArmSummary { draining_at_once: 3, ..ArmSummary::default() };
        let bounds = Bounds { draining_at_once_max: Some(1), ..Bounds::default() };
        assert_eq!(check(&summary, &bounds), ["draining_at_once 3 > 1"]);
        let summary = ArmSummary { drains: 1, ..ArmSummary::default() };
        let bounds = Bounds { drains_max: Some(0), ..Bounds::default() };
        assert_eq!(check(&summary, &bounds), ["drains 1 > 0"]);
    }

    #[test]
    fn a_run_level_fault_is_timed_by_the_harness_event() {
        let events = vec![Event { t: 130.0, slot: 0, kind: EventKind::FaultInjected, detail: String::new() }];
        let context = Context {
            load_start: 100.0,
            targets: &[],
            benign: true,
            env_fault_after: None,
            run_level_fault: true,
        };
        assert_eq!(summarise(&events, &[], &context).fault_time_s, Some(30.0));
        let tasks = Context { run_level_fault: false, ..context };
        assert_eq!(summarise(&events, &[], &tasks).fault_time_s, None);
    }

    #[test]
    fn vigil_must_beat_the_baseline_on_the_compared_figure() {
        let arm = |arm: &str, errors: u64, after: Option<u64>| ArmSummary {
            scenario: "loop".into(),
            arm: arm.into(),
            profile: "fast".into(),
            status: "ok".into(),
            client_errors: errors,
            errors_after_pattern: after,
            ..ArmSummary::default()
        };
        let mut summaries = vec![arm("baseline", 50, Some(20)), arm("vigil", 10, Some(20))];
        check_vigil_beats_baseline(&mut summaries, "loop", Compared::ClientErrors);
        assert!(summaries[1].failed_checks.is_empty());
        check_vigil_beats_baseline(&mut summaries, "loop", Compared::ErrorsAfterPattern);
        assert_eq!(summaries[1].failed_checks.len(), 1);
        let mut missing = vec![arm("baseline", 50, None), arm("vigil", 10, Some(0))];
        check_vigil_beats_baseline(&mut missing, "loop", Compared::ErrorsAfterPattern);
        assert_eq!(missing[1].failed_checks.len(), 1);
    }
}
