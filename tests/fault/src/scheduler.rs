//! The ECS service scheduler emulation as a pure state machine: observations in (time, HAProxy's
//! view of each slot, whether a task stopped, its health port), actions out (register, drain,
//! deregister, stop, replace, log). It never calls HAProxy or reads the clock; the arm carries
//! the actions out.
//!
//! A task's life: `Starting` (launched, waiting for its health port) → `Joining` (registered,
//! waiting for UP) → `Serving` → on DOWN or a stopped task, `Replacing` (drained, a replacement
//! launched; ECS starts the new task before it stops the old one) → once the replacement serves,
//! `Draining` (deregistered) → after the deregistration delay, `Stopped` (SIGTERM, then SIGKILL
//! after the stop timeout, done by the task handle).

use std::collections::BTreeMap;

use crate::report::EventKind;

/// How long a launched or registered task may take to become ready, seconds.
pub const READY_LIMIT_S: f64 = 30.0;

/// Where a task is in the scheduler's life cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Launched, waiting for its health port.
    Starting { since: f64 },
    /// Registered with HAProxy, waiting for UP.
    Joining { since: f64 },
    /// Taking traffic.
    Serving,
    /// Marked down or stopped; its replacement is starting.
    Replacing { since: f64 },
    /// Deregistered; stopped after the deregistration delay.
    Draining { since: f64 },
    /// Stop requested.
    Stopped,
}

/// A server slot's administrative state in HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

impl Admin {
    /// The word of HAProxy's `set server … state`.
    pub fn word(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
}

/// What the arm must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Set the slot's state in HAProxy.
    SetState { slot: u32, state: Admin },
    /// Append an event to the timeline.
    Log { slot: u32, kind: EventKind },
    /// Stop the task: SIGTERM, SIGKILL after `timeout_s`.
    Stop { slot: u32, timeout_s: f64 },
    /// Launch a replacement for `old`, then report it with [`Scheduler::replaced`].
    Replace { old: u32, why: &'static str },
}

/// What the arm saw of one slot this tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observation {
    /// HAProxy's view: `Some(true)` UP, `Some(false)` DOWN, `None` unknown.
    pub up: Option<bool>,
    /// Whether the task init has exited (the task is STOPPED).
    pub exited: bool,
    /// The last answer of the health port: `None` while it has never answered.
    pub check_ok: Option<bool>,
}

/// The scenario's timings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub deregistration_delay_s: f64,
    pub stop_timeout_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    phase: Phase,
    /// HAProxy's last reported view while registered.
    up: Option<bool>,
    /// The slot of the task that replaces this one.
    replaced_by: Option<u32>,
}

/// Every task slot's life cycle.
#[derive(Debug, Clone)]
pub struct Scheduler {
    slots: BTreeMap<u32, Slot>,
    timing: Timing,
}

impl Scheduler {
    pub fn new(timing: Timing) -> Scheduler {
        Scheduler { slots: BTreeMap::new(), timing }
    }

    /// A task was launched in `slot` at `now`.
    pub fn launched(&mut self, slot: u32, now: f64) {
        self.slots.insert(slot, Slot { phase: Phase::Starting { since: now }, up: None, replaced_by: None });
    }

    /// The replacement of `old` was launched in `new`.
    pub fn replaced(&mut self, old: u32, new: u32) {
        if let Some(slot) = self.slots.get_mut(&old) {
            slot.replaced_by = Some(new);
        }
    }

    pub fn phase(&self, slot: u32) -> Option<Phase> {
        self.slots.get(&slot).map(|s| s.phase)
    }

    /// Whether every task is serving (the warm-up gate).
    pub fn all_serving(&self) -> bool {
        self.slots.values().all(|s| s.phase == Phase::Serving)
    }

    /// Marks every task stopped (teardown).
    pub fn stop_all(&mut self) {
        for slot in self.slots.values_mut() {
            slot.phase = Phase::Stopped;
        }
    }

    /// One tick at `now`: moves every task along its life cycle. A slot without an observation
    /// is seen as unknown to HAProxy, running, and not answering. While `warming_up`, a task
    /// that fails is drained and deregistered without a replacement.
    pub fn tick(&mut self, now: f64, seen: &BTreeMap<u32, Observation>, warming_up: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut stops = Vec::new();
        let mut replaces = Vec::new();
        let slots: Vec<u32> = self.slots.keys().copied().collect();
        for id in slots {
            let seen = seen.get(&id).copied().unwrap_or_default();
            let (up, exited) = (seen.up, seen.exited);
            // A replacement always has a higher slot: its phase is last tick's.
            let settled = {
                let slot = &self.slots[&id];
                match slot.replaced_by.and_then(|by| self.slots.get(&by)) {
                    Some(r) => matches!(r.phase, Phase::Serving | Phase::Stopped),
                    None => true,
                }
            };
            let slot = self.slots.get_mut(&id).expect("slot exists");
            let registered = !matches!(slot.phase, Phase::Starting { .. } | Phase::Stopped);
            let changed = registered && up.is_some() && up != slot.up;
            if changed {
                slot.up = up;
                let kind = if up == Some(true) { EventKind::HaproxyUp } else { EventKind::HaproxyDown };
                actions.push(Action::Log { slot: id, kind });
            }
            match slot.phase {
                Phase::Starting { since } => {
                    if seen.check_ok == Some(true) {
                        actions.push(Action::SetState { slot: id, state: Admin::Ready });
                        slot.phase = Phase::Joining { since: now };
                        actions.push(Action::Log { slot: id, kind: EventKind::Registered });
                    } else if exited || now - since > READY_LIMIT_S {
                        slot.phase = Phase::Stopped;
                        stops.push(id);
                    }
                }
                Phase::Joining { since } => {
                    if up == Some(true) {
                        slot.phase = Phase::Serving;
                    } else if exited || now - since > READY_LIMIT_S {
                        actions.push(Action::SetState { slot: id, state: Admin::Maint });
                        slot.phase = Phase::Stopped;
                        stops.push(id);
                    }
                }
                Phase::Serving => {
                    if exited || (changed && up == Some(false)) {
                        let why = if exited { "task stopped" } else { "marked down" };
                        actions.push(Action::SetState { slot: id, state: Admin::Drain });
                        slot.phase = Phase::Replacing { since: now };
                        if !warming_up {
                            replaces.push(Action::Replace { old: id, why });
                        }
                    }
                }
                Phase::Replacing { since } => {
                    if settled || warming_up || now - since > READY_LIMIT_S * 2.0 {
                        actions.push(Action::SetState { slot: id, state: Admin::Maint });
                        slot.phase = Phase::Draining { since: now };
                        actions.push(Action::Log { slot: id, kind: EventKind::Deregistered });
                    }
                }
                Phase::Draining { since } => {
                    if now - since >= self.timing.deregistration_delay_s {
                        slot.phase = Phase::Stopped;
                        stops.push(id);
                    }
                }
                Phase::Stopped => {}
            }
        }
        let timeout_s = self.timing.stop_timeout_s;
        actions.extend(stops.into_iter().map(|slot| Action::Stop { slot, timeout_s }));
        actions.extend(replaces);
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Log, Replace, SetState, Stop};
    use EventKind::{Deregistered, HaproxyDown, HaproxyUp, Registered};

    const TIMING: Timing = Timing { deregistration_delay_s: 2.0, stop_timeout_s: 5.0 };

    /// One tick of a table row: the time, what each slot looks like, and what must come out.
    struct Step {
        t: f64,
        seen: &'static [(u32, Observation)],
        /// The replacements the arm launches after this tick: (old, new).
        launches: &'static [(u32, u32)],
        actions: Vec<Action>,
        phases: &'static [(u32, Phase)],
    }

    const fn obs(up: Option<bool>, exited: bool, check_ok: Option<bool>) -> Observation {
        Observation { up, exited, check_ok }
    }
    const READY: Observation = obs(None, false, Some(true));
    const UP: Observation = obs(Some(true), false, Some(true));
    const DOWN: Observation = obs(Some(false), false, Some(false));
    const EXITED: Observation = obs(Some(true), true, None);
    const SILENT: Observation = obs(None, false, None);
    const DOWN_BUT_ANSWERING: Observation = obs(Some(false), false, Some(true));
    const GONE: Observation = obs(None, true, None);

    /// Runs a row from slots already serving (`serving`) and launched at t = 0 (`starting`).
    fn run(name: &str, serving: &[u32], starting: &[u32], steps: Vec<Step>) {
        let mut scheduler = Scheduler::new(TIMING);
        for &slot in serving {
            scheduler.launched(slot, -10.0);
            let seen = BTreeMap::from([(slot, READY)]);
            scheduler.tick(-10.0, &seen, true);
            let seen = BTreeMap::from([(slot, UP)]);
            scheduler.tick(-9.0, &seen, true);
            assert_eq!(scheduler.phase(slot), Some(Phase::Serving), "{name}: set-up of t{slot}");
        }
        for &slot in starting {
            scheduler.launched(slot, 0.0);
        }
        for (i, step) in steps.into_iter().enumerate() {
            let seen: BTreeMap<u32, Observation> = step.seen.iter().copied().collect();
            let got = scheduler.tick(step.t, &seen, false);
            assert_eq!(got, step.actions, "{name}: actions of step {i} (t = {})", step.t);
            for &(old, new) in step.launches {
                scheduler.launched(new, step.t);
                scheduler.replaced(old, new);
            }
            for &(slot, phase) in step.phases {
                assert_eq!(scheduler.phase(slot), Some(phase), "{name}: phase of t{slot} after step {i}");
            }
        }
    }

    fn step(
        t: f64,
        seen: &'static [(u32, Observation)],
        actions: Vec<Action>,
        phases: &'static [(u32, Phase)],
    ) -> Step {
        Step { t, seen, launches: &[], actions, phases }
    }

    impl Step {
        /// The arm launches these replacements after the tick: (old, new).
        fn then_launch(mut self, launches: &'static [(u32, u32)]) -> Step {
            self.launches = launches;
            self
        }
    }

    #[test]
    fn healthy_tasks_stay_serving() {
        run(
            "healthy",
            &[1, 2],
            &[],
            vec![
                step(1.0, &[(1, UP), (2, UP)], vec![], &[(1, Phase::Serving), (2, Phase::Serving)]),
                step(100.0, &[(1, UP), (2, UP)], vec![], &[(1, Phase::Serving), (2, Phase::Serving)]),
            ],
        );
    }

    #[test]
    fn a_new_task_is_registered_once_its_port_answers_then_serves_on_up() {
        run(
            "join",
            &[],
            &[3],
            vec![
                step(0.25, &[(3, SILENT)], vec![], &[(3, Phase::Starting { since: 0.0 })]),
                step(
                    1.0,
                    &[(3, READY)],
                    vec![SetState { slot: 3, state: Admin::Ready }, Log { slot: 3, kind: Registered }],
                    &[(3, Phase::Joining { since: 1.0 })],
                ),
                step(
                    2.0,
                    &[(3, DOWN_BUT_ANSWERING)],
                    vec![Log { slot: 3, kind: HaproxyDown }],
                    &[(3, Phase::Joining { since: 1.0 })],
                ),
                step(3.0, &[(3, UP)], vec![Log { slot: 3, kind: HaproxyUp }], &[(3, Phase::Serving)]),
            ],
        );
    }

    #[test]
    fn a_task_that_never_gets_ready_is_stopped() {
        run(
            "never ready",
            &[],
            &[1, 2],
            vec![
                step(30.0, &[(1, SILENT), (2, SILENT)], vec![], &[(1, Phase::Starting { since: 0.0 })]),
                step(
                    30.5,
                    &[(1, SILENT), (2, GONE)],
                    vec![Stop { slot: 1, timeout_s: 5.0 }, Stop { slot: 2, timeout_s: 5.0 }],
                    &[(1, Phase::Stopped), (2, Phase::Stopped)],
                ),
            ],
        );
        run(
            "registered, never up",
            &[],
            &[1],
            vec![
                step(
                    1.0,
                    &[(1, READY)],
                    vec![SetState { slot: 1, state: Admin::Ready }, Log { slot: 1, kind: Registered }],
                    &[],
                ),
                step(31.0, &[(1, READY)], vec![], &[(1, Phase::Joining { since: 1.0 })]),
                step(
                    31.5,
                    &[(1, READY)],
                    vec![SetState { slot: 1, state: Admin::Maint }, Stop { slot: 1, timeout_s: 5.0 }],
                    &[(1, Phase::Stopped)],
                ),
            ],
        );
    }

    #[test]
    fn marked_down_drains_replaces_deregisters_and_stops() {
        run(
            "marked down",
            &[1],
            &[],
            vec![
                step(
                    10.0,
                    &[(1, DOWN)],
                    vec![
                        Log { slot: 1, kind: HaproxyDown },
                        SetState { slot: 1, state: Admin::Drain },
                        Replace { old: 1, why: "marked down" },
                    ],
                    &[(1, Phase::Replacing { since: 10.0 })],
                )
                .then_launch(&[(1, 2)]),
                // Still down: no second replacement while the first one starts.
                step(10.25, &[(1, DOWN), (2, SILENT)], vec![], &[(1, Phase::Replacing { since: 10.0 })]),
                step(
                    11.0,
                    &[(1, DOWN), (2, READY)],
                    vec![SetState { slot: 2, state: Admin::Ready }, Log { slot: 2, kind: Registered }],
                    &[(1, Phase::Replacing { since: 10.0 }), (2, Phase::Joining { since: 11.0 })],
                ),
                step(
                    12.0,
                    &[(1, DOWN), (2, UP)],
                    vec![Log { slot: 2, kind: HaproxyUp }],
                    &[(1, Phase::Replacing { since: 10.0 }), (2, Phase::Serving)],
                ),
                // The replacement serves: the old task leaves HAProxy.
                step(
                    12.25,
                    &[(1, DOWN), (2, UP)],
                    vec![SetState { slot: 1, state: Admin::Maint }, Log { slot: 1, kind: Deregistered }],
                    &[(1, Phase::Draining { since: 12.25 })],
                ),
                step(14.0, &[(1, DOWN), (2, UP)], vec![], &[(1, Phase::Draining { since: 12.25 })]),
                // After the deregistration delay: stopped, SIGKILL after the stop timeout.
                step(
                    14.25,
                    &[(1, DOWN), (2, UP)],
                    vec![Stop { slot: 1, timeout_s: 5.0 }],
                    &[(1, Phase::Stopped), (2, Phase::Serving)],
                ),
                step(20.0, &[(1, GONE), (2, UP)], vec![], &[(1, Phase::Stopped)]),
            ],
        );
    }

    #[test]
    fn a_task_that_stops_by_itself_is_replaced_once() {
        run(
            "exited",
            &[1],
            &[],
            vec![
                step(
                    5.0,
                    &[(1, EXITED)],
                    vec![SetState { slot: 1, state: Admin::Drain }, Replace { old: 1, why: "task stopped" }],
                    &[(1, Phase::Replacing { since: 5.0 })],
                )
                .then_launch(&[(1, 2)]),
                step(6.0, &[(1, EXITED), (2, SILENT)], vec![], &[(1, Phase::Replacing { since: 5.0 })]),
            ],
        );
    }

    #[test]
    fn a_replacement_that_never_serves_releases_the_old_task() {
        run(
            "replacement stuck",
            &[1],
            &[],
            vec![
                step(
                    0.0,
                    &[(1, DOWN)],
                    vec![
                        Log { slot: 1, kind: HaproxyDown },
                        SetState { slot: 1, state: Admin::Drain },
                        Replace { old: 1, why: "marked down" },
                    ],
                    &[],
                )
                .then_launch(&[(1, 2)]),
                step(25.0, &[(1, DOWN), (2, SILENT)], vec![], &[(1, Phase::Replacing { since: 0.0 })]),
                // The stuck replacement is stopped first; the old task's wait ends with it.
                step(
                    30.5,
                    &[(1, DOWN), (2, SILENT)],
                    vec![Stop { slot: 2, timeout_s: 5.0 }],
                    &[(1, Phase::Replacing { since: 0.0 }), (2, Phase::Stopped)],
                ),
                step(
                    30.75,
                    &[(1, DOWN)],
                    vec![SetState { slot: 1, state: Admin::Maint }, Log { slot: 1, kind: Deregistered }],
                    &[(1, Phase::Draining { since: 30.75 })],
                ),
            ],
        );
    }

    #[test]
    fn slots_move_independently() {
        run(
            "independent",
            &[1, 2, 3],
            &[],
            vec![
                step(
                    10.0,
                    &[(1, UP), (2, DOWN), (3, UP)],
                    vec![
                        Log { slot: 2, kind: HaproxyDown },
                        SetState { slot: 2, state: Admin::Drain },
                        Replace { old: 2, why: "marked down" },
                    ],
                    &[(1, Phase::Serving), (2, Phase::Replacing { since: 10.0 }), (3, Phase::Serving)],
                )
                .then_launch(&[(2, 4)]),
                step(
                    11.0,
                    &[(1, UP), (2, DOWN), (3, EXITED), (4, SILENT)],
                    vec![SetState { slot: 3, state: Admin::Drain }, Replace { old: 3, why: "task stopped" }],
                    &[(1, Phase::Serving), (3, Phase::Replacing { since: 11.0 })],
                ),
            ],
        );
    }

    #[test]
    fn during_warm_up_a_failed_task_is_deregistered_without_a_replacement() {
        let mut scheduler = Scheduler::new(TIMING);
        scheduler.launched(1, 0.0);
        scheduler.tick(0.0, &BTreeMap::from([(1, READY)]), true);
        scheduler.tick(1.0, &BTreeMap::from([(1, UP)]), true);
        let down = scheduler.tick(2.0, &BTreeMap::from([(1, DOWN)]), true);
        assert_eq!(down, vec![Log { slot: 1, kind: HaproxyDown }, SetState { slot: 1, state: Admin::Drain }]);
        let next = scheduler.tick(2.25, &BTreeMap::from([(1, DOWN)]), true);
        assert_eq!(
            next,
            vec![SetState { slot: 1, state: Admin::Maint }, Log { slot: 1, kind: Deregistered }]
        );
        assert!(!scheduler.all_serving());
        scheduler.stop_all();
        assert_eq!(scheduler.phase(1), Some(Phase::Stopped));
        assert_eq!(Admin::Drain.word(), "drain");
    }
}
