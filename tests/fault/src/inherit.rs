//! Shared faults: which fault a replacement task starts with. Pure.
//!
//! A fault declared `shared = true` has its cause outside the tasks — a slow dependency, a bad
//! build — so the tasks ECS starts to replace the failing ones meet it too. The rule:
//!
//! | the scenario's fault | predecessor | replacement started at `t` (load time) | replacement gets |
//! |---|---|---|---|
//! | not shared, or a harness kind | any | any | nothing (a clean task) |
//! | shared | not hit by it | any | nothing |
//! | shared, `deliver = "env"` | hit | any | the same `DEMO_FAULT` (every start of the build has it; `after` counts from its own start) |
//! | shared, `deliver = "admin"` | hit | before the fault ends | the fault in `DEMO_FAULT`, in effect from `max(t, start)` until the fault's end |
//! | shared, `deliver = "admin"` | hit | at or after its end | nothing |
//!
//! For an admin fault, `start` is `at_s` plus the spec's `after`, and the end the earlier of
//! `at_s + for_s` and `start` plus the spec's `for` (neither: the fault never ends). A
//! replacement that gets the fault is one of the fault's targets in the report. With
//! `targets = "all"`, every replacement's predecessor was hit; with a list, the fault follows the
//! listed tasks' line (a canary's build).

use crate::fault::FaultSpec;
use crate::scenario::{Delivery, FaultPlan};

/// The spec a replacement's app gets in `DEMO_FAULT`, or `None` for a clean replacement;
/// `started_s` is the replacement's launch in seconds from the load's start.
pub fn inherited(
    plan: &FaultPlan,
    spec: &FaultSpec,
    predecessor_hit: bool,
    started_s: f64,
) -> Option<FaultSpec> {
    if !plan.shared || !predecessor_hit || spec.kind.is_harness() {
        return None;
    }
    if plan.deliver == Delivery::Env {
        return Some(spec.clone());
    }
    let start = plan.at_s + spec.after_seconds();
    let ends = [plan.for_s.map(|f| plan.at_s + f), spec.for_seconds().map(|f| start + f)];
    let end = ends.into_iter().flatten().reduce(f64::min);
    if end.is_some_and(|end| started_s >= end) {
        return None;
    }
    let after = (start - started_s).max(0.0);
    let remaining = end.map(|end| end - started_s.max(start));
    Some(spec.rescheduled(round_ms(after), remaining.map(round_ms)))
}

/// Seconds rounded to the millisecond, so the spec line stays short.
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Targets;

    fn plan(deliver: Delivery, shared: bool, at_s: f64, for_s: Option<f64>) -> FaultPlan {
        FaultPlan {
            kind: String::new(),
            params: String::new(),
            targets: Targets::All("all".into()),
            at_s,
            for_s,
            deliver,
            shared,
        }
    }

    /// One row: the fault, whether the predecessor was hit, when the replacement starts, and the
    /// `DEMO_FAULT` it must get.
    fn check(row: &str, plan: FaultPlan, spec: &str, hit: bool, started_s: f64, expected: Option<&str>) {
        let spec = FaultSpec::parse(spec).unwrap();
        let got = inherited(&plan, &spec, hit, started_s).map(|s| s.to_string());
        assert_eq!(got.as_deref(), expected, "{row}");
    }

    #[test]
    fn which_fault_a_replacement_gets() {
        use Delivery::{Admin, Env};
        let latency = "latency rate=100000 max=2500 health=1";
        check("not shared: clean", plan(Admin, false, 15.0, Some(20.0)), latency, true, 20.0, None);
        check(
            "not shared, env: clean",
            plan(Env, false, 0.0, None),
            "mem-leak rate=6 after=62",
            true,
            90.0,
            None,
        );
        check("predecessor not hit: clean", plan(Admin, true, 15.0, Some(20.0)), latency, false, 20.0, None);
        check(
            "harness kind: clean",
            plan(Admin, true, 15.0, Some(20.0)),
            "packet-loss percent=5",
            true,
            20.0,
            None,
        );
        check(
            "env: the same build",
            plan(Env, true, 0.0, None),
            "mem-leak rate=6 after=62",
            true,
            90.0,
            Some("mem-leak after=62 rate=6"),
        );
        check(
            "admin, active: the rest of it",
            plan(Admin, true, 15.0, Some(20.0)),
            latency,
            true,
            22.5,
            Some("latency for=12.5 health=1 max=2500 rate=100000"),
        );
        check(
            "admin, before the injection: waits for it",
            plan(Admin, true, 15.0, Some(20.0)),
            latency,
            true,
            10.0,
            Some("latency after=5 for=20 health=1 max=2500 rate=100000"),
        );
        check("admin, at its end: clean", plan(Admin, true, 15.0, Some(20.0)), latency, true, 35.0, None);
        check("admin, after its end: clean", plan(Admin, true, 15.0, Some(20.0)), latency, true, 40.0, None);
        check(
            "admin without an end: for ever",
            plan(Admin, true, 62.0, None),
            "mem-leak rate=6",
            true,
            95.0,
            Some("mem-leak rate=6"),
        );
        check(
            "admin, spec after: starts later",
            plan(Admin, true, 10.0, None),
            "cpu threads=1 after=5",
            true,
            12.0,
            Some("cpu after=3 threads=1"),
        );
        check(
            "admin, spec for ends first",
            plan(Admin, true, 10.0, Some(60.0)),
            "cpu threads=1 for=10",
            true,
            14.0,
            Some("cpu for=6 threads=1"),
        );
        check(
            "admin, spec for over: clean",
            plan(Admin, true, 10.0, None),
            "cpu threads=1 after=2 for=10",
            true,
            22.0,
            None,
        );
    }
}
