//! Restart patterns: crash loops, restarts after OOM kills, and uptimes that keep shrinking.
//!
//! Restarts are counted from the Task Metadata Service's `RestartCount` (the only reliable
//! restart signal on ECS, present when a container has a restart policy) or, when no container
//! reports one, from the watched processes: a process that lived at least
//! [`LONG_LIVED_MS`] and was replaced by a process of the same name (a new PID or start time)
//! restarted. OOM kills come from the cgroups' `oom_kill` counters. Pure: time comes in with
//! each sample.

use heapless::Deque;

use crate::judge::sample::{Millis, Sample};

/// A process must have been seen this long before its disappearance counts as a restart.
pub const LONG_LIVED_MS: Millis = 5_000;
/// Restarts remembered (older ones also age out of the window).
const REMEMBERED: usize = 16;
/// Processes and containers tracked by name.
const TRACKED: usize = 64;

/// One restart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restart {
    pub at: Millis,
    /// How long the previous run lasted, when known.
    pub uptime_ms: Option<Millis>,
    /// Whether an OOM kill was counted within a few seconds before the restart.
    pub oom: bool,
}

/// What the restart history says now.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RestartFindings {
    /// Restarts within the window.
    pub recent: usize,
    /// Of those, restarts that followed an OOM kill.
    pub recent_oom: usize,
    /// OOM kills within the window (whether or not a restart followed).
    pub recent_oom_kills: u64,
    /// When the uptimes between restarts keep shrinking: seconds until the next crash, if the
    /// trend holds.
    pub next_crash_seconds: Option<f64>,
}

#[derive(Debug, Clone)]
struct Seen {
    name: heapless::String<32>,
    pid: u32,
    start_ticks: u64,
    first_seen: Millis,
    last_seen: Millis,
}

#[derive(Debug, Clone)]
pub struct RestartTracker {
    /// How far back restarts count (three restart-policy periods by default).
    window_ms: Millis,
    restarts: Deque<Restart, REMEMBERED>,
    oom_kills: Deque<(Millis, u64), REMEMBERED>,
    containers: heapless::Vec<(heapless::String<64>, u32, Millis), TRACKED>,
    processes: heapless::Vec<Seen, TRACKED>,
    last_oom_total: Option<u64>,
    /// Once any container reports `RestartCount`, process restarts are not counted twice.
    metadata_counts: bool,
    /// Start of the current run (after the latest restart), for the next-crash estimate.
    run_started: Option<Millis>,
}

impl RestartTracker {
    pub fn new(window_ms: Millis) -> RestartTracker {
        RestartTracker {
            window_ms,
            restarts: Deque::new(),
            oom_kills: Deque::new(),
            containers: heapless::Vec::new(),
            processes: heapless::Vec::new(),
            last_oom_total: None,
            metadata_counts: false,
            run_started: None,
        }
    }

    /// Takes one tick's readings into account and returns what the history says.
    pub fn observe(&mut self, sample: &Sample) -> RestartFindings {
        let at = sample.at;
        self.observe_oom_kills(sample);
        let restarts_before = self.restarts.len();
        self.observe_containers(sample);
        if !self.metadata_counts {
            self.observe_processes(sample);
        }
        if self.restarts.len() != restarts_before || self.restarts.is_full() {
            self.run_started = self.restarts.back().map(|r| r.at);
        }
        self.findings(at)
    }

    fn observe_oom_kills(&mut self, sample: &Sample) {
        let total: Option<u64> = sample.cgroups.iter().filter_map(|c| c.oom_kills).reduce(|a, b| a + b);
        if let (Some(total), Some(last)) = (total, self.last_oom_total)
            && total > last
        {
            push(&mut self.oom_kills, (sample.at, total - last));
        }
        if total.is_some() {
            self.last_oom_total = total;
        }
    }

    fn observe_containers(&mut self, sample: &Sample) {
        let Some(task) = &sample.task else { return };
        let mut restarted: heapless::Vec<(u32, Millis), TRACKED> = heapless::Vec::new();
        for container in &task.containers {
            let Some(count) = container.restart_count else { continue };
            self.metadata_counts = true;
            let name: heapless::String<64> = truncated(&container.name);
            match self.containers.iter_mut().find(|(n, _, _)| *n == name) {
                Some((_, previous, since)) => {
                    if count > *previous {
                        let _ = restarted.push((count - *previous, sample.at.saturating_sub(*since)));
                        *since = sample.at;
                    }
                    *previous = count;
                }
                None => {
                    let _ = self.containers.push((name, count, sample.at));
                }
            }
        }
        for (times, uptime) in restarted {
            for _ in 0..times.min(REMEMBERED as u32) {
                self.record(sample.at, Some(uptime));
            }
        }
    }

    fn observe_processes(&mut self, sample: &Sample) {
        let at = sample.at;
        // A known name with a new identity: the process restarted.
        for process in &sample.processes {
            let name: heapless::String<32> = truncated(&process.name);
            match self.processes.iter_mut().find(|s| s.name == name) {
                Some(seen) if seen.pid == process.pid && seen.start_ticks == process.start_ticks => {
                    seen.last_seen = at;
                }
                Some(seen) => {
                    let lived = seen.last_seen.saturating_sub(seen.first_seen);
                    let gone = !sample
                        .processes
                        .iter()
                        .any(|p| p.pid == seen.pid && p.start_ticks == seen.start_ticks);
                    if gone && lived >= LONG_LIVED_MS {
                        let uptime = Some(lived);
                        *seen = Seen {
                            name,
                            pid: process.pid,
                            start_ticks: process.start_ticks,
                            first_seen: at,
                            last_seen: at,
                        };
                        self.record(at, uptime);
                    } else if gone {
                        *seen = Seen {
                            name,
                            pid: process.pid,
                            start_ticks: process.start_ticks,
                            first_seen: at,
                            last_seen: at,
                        };
                    }
                    // Otherwise two processes share the name: keep following the first.
                }
                None => {
                    if self.processes.is_full() {
                        // Forget the process seen longest ago.
                        if let Some(oldest) =
                            (0..self.processes.len()).min_by_key(|&i| self.processes[i].last_seen)
                        {
                            self.processes.swap_remove(oldest);
                        }
                    }
                    let _ = self.processes.push(Seen {
                        name,
                        pid: process.pid,
                        start_ticks: process.start_ticks,
                        first_seen: at,
                        last_seen: at,
                    });
                }
            }
        }
    }

    fn record(&mut self, at: Millis, uptime_ms: Option<Millis>) {
        // An OOM kill counted in the last few seconds explains this restart.
        let oom = self.oom_kills.iter().any(|(when, _)| at.saturating_sub(*when) <= 15_000);
        push(&mut self.restarts, Restart { at, uptime_ms, oom });
    }

    fn findings(&self, at: Millis) -> RestartFindings {
        let since = at.saturating_sub(self.window_ms);
        let recent: heapless::Vec<Restart, REMEMBERED> =
            self.restarts.iter().filter(|r| r.at >= since).copied().collect();
        RestartFindings {
            recent: recent.len(),
            recent_oom: recent.iter().filter(|r| r.oom).count(),
            recent_oom_kills: self.oom_kills.iter().filter(|(when, _)| *when >= since).map(|(_, n)| n).sum(),
            next_crash_seconds: self.next_crash(at, &recent),
        }
    }

    /// With the last two uptimes shrinking, the next run is expected to be shorter by the same
    /// ratio; returns the seconds left of it.
    fn next_crash(&self, at: Millis, recent: &[Restart]) -> Option<f64> {
        let uptimes: heapless::Vec<Millis, REMEMBERED> = recent.iter().filter_map(|r| r.uptime_ms).collect();
        let [.., before, last] = uptimes.as_slice() else { return None };
        if last >= before || *last == 0 {
            return None;
        }
        let expected = *last as f64 * (*last as f64 / *before as f64);
        let running = at.saturating_sub(self.run_started?) as f64;
        Some(((expected - running) / 1000.0).max(0.0))
    }
}

fn push<T, const N: usize>(deque: &mut Deque<T, N>, item: T) {
    if deque.is_full() {
        deque.pop_front();
    }
    let _ = deque.push_back(item);
}

fn truncated<const N: usize>(text: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    for c in text.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::sample::{CgroupReading, ContainerReading, ProcessReading, TaskReading};

    const WINDOW: Millis = 900_000;

    fn with_restart_counts(at: Millis, counts: &[Option<u32>]) -> Sample {
        Sample {
            at,
            task: Some(TaskReading {
                containers: counts
                    .iter()
                    .enumerate()
                    .map(|(i, count)| ContainerReading {
                        name: format!("c{i}"),
                        restart_count: *count,
                        ..ContainerReading::default()
                    })
                    .collect(),
                ..TaskReading::default()
            }),
            ..Sample::default()
        }
    }

    #[test]
    fn restart_count_sequences() {
        // (RestartCount per tick, restarts counted in the window after the last tick)
        let cases: [(&[Option<u32>], usize); 5] = [
            (&[Some(0), Some(0), Some(0)], 0),
            (&[None, None, None], 0),
            (&[Some(0), Some(1), Some(1), Some(2)], 2),
            (&[Some(3), Some(3), Some(4)], 1),
            (&[Some(0), Some(2)], 2),
        ];
        for (counts, expected) in cases {
            let mut tracker = RestartTracker::new(WINDOW);
            let mut last = RestartFindings::default();
            for (i, count) in counts.iter().enumerate() {
                last = tracker.observe(&with_restart_counts(i as u64 * 10_000, &[*count]));
            }
            assert_eq!(last.recent, expected, "{counts:?}");
        }
    }

    #[test]
    fn restarts_age_out_of_the_window() {
        let mut tracker = RestartTracker::new(60_000);
        tracker.observe(&with_restart_counts(0, &[Some(0)]));
        assert_eq!(tracker.observe(&with_restart_counts(10_000, &[Some(2)])).recent, 2);
        assert_eq!(tracker.observe(&with_restart_counts(69_000, &[Some(2)])).recent, 2);
        assert_eq!(tracker.observe(&with_restart_counts(71_000, &[Some(2)])).recent, 0);
    }

    #[test]
    fn shrinking_uptimes_predict_the_next_crash() {
        let mut tracker = RestartTracker::new(WINDOW);
        // Runs of 120 s, then 60 s: the next is expected to last 30 s.
        tracker.observe(&with_restart_counts(0, &[Some(0)]));
        tracker.observe(&with_restart_counts(120_000, &[Some(1)]));
        let findings = tracker.observe(&with_restart_counts(180_000, &[Some(2)]));
        assert_eq!(findings.next_crash_seconds, Some(30.0));
        let findings = tracker.observe(&with_restart_counts(190_000, &[Some(2)]));
        assert_eq!(findings.next_crash_seconds, Some(20.0));
    }

    fn process(pid: u32, start_ticks: u64) -> ProcessReading {
        ProcessReading { pid, name: "app".into(), start_ticks, ..ProcessReading::default() }
    }

    fn local(at: Millis, processes: Vec<ProcessReading>, oom_kills: u64) -> Sample {
        Sample {
            at,
            proc_readable: true,
            processes,
            cgroups: vec![CgroupReading { oom_kills: Some(oom_kills), ..CgroupReading::default() }],
            ..Sample::default()
        }
    }

    #[test]
    fn a_replaced_long_lived_process_is_a_restart_and_oom_kills_are_attributed() {
        let mut tracker = RestartTracker::new(WINDOW);
        for t in 0..10 {
            tracker.observe(&local(t * 1000, vec![process(10, 100)], 0));
        }
        // Killed by the OOM killer; gone for a tick; back with a new PID.
        tracker.observe(&local(10_000, vec![], 1));
        let findings = tracker.observe(&local(11_000, vec![process(11, 1200)], 1));
        assert_eq!((findings.recent, findings.recent_oom, findings.recent_oom_kills), (1, 1, 1));
    }

    #[test]
    fn short_lived_processes_and_metadata_counts_are_not_double_counted() {
        let mut tracker = RestartTracker::new(WINDOW);
        // A helper that lives one tick at a time is not restarting.
        for t in 0..6 {
            let findings = tracker.observe(&local(t * 1000, vec![process(20 + t as u32, t)], 0));
            assert_eq!(findings.recent, 0);
        }
        // Once the metadata service reports RestartCount, process identity is not used.
        let mut tracker = RestartTracker::new(WINDOW);
        let mut sample = with_restart_counts(0, &[Some(0)]);
        sample.processes = vec![process(10, 100)];
        tracker.observe(&sample);
        let mut sample = with_restart_counts(10_000, &[Some(1)]);
        sample.processes = vec![process(11, 900)];
        assert_eq!(tracker.observe(&sample).recent, 1);
    }
}
