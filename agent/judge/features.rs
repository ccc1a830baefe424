//! Readings → signals: per-resource histories with their exhaustion forecasts, and the
//! instantaneous signals (CPU saturation, full accept queues) that tell a shared surge from a
//! local failure. Pure: time comes in with each sample.
//!
//! A resource is tracked per subject — a cgroup, a container, the task, a process — because
//! each has its own limit. Metadata-service readings enter a history only when their `read`
//! stamp is new (Fargate refreshes about every 10 s; repeats are not new data), placed on the
//! agent's clock by the difference between the tick's wall-clock time and the stamp.

use std::fmt;

use crate::judge::forecast::{Course, Forecast, forecast};
use crate::judge::sample::{Millis, Sample};
use crate::judge::window::Series;

/// Subjects tracked at once; the one updated longest ago makes room for a new one.
pub const MAX_TRACKED: usize = 32;
/// A subject not seen for this long is forgotten (a process that exited, a stopped container).
const FORGET_AFTER_MS: Millis = 120_000;

/// The finite resources vigil forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Memory,
    Fds,
    Threads,
    Storage,
}

impl Resource {
    pub const ALL: [Resource; 4] = [Resource::Memory, Resource::Fds, Resource::Threads, Resource::Storage];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Fds => "fds",
            Resource::Threads => "threads",
            Resource::Storage => "storage",
        }
    }

    /// How a value of this resource reads in evidence.
    fn format(self, value: f64) -> Amount {
        Amount(self, value)
    }
}

/// A value of a resource as evidence shows it, formatted in place.
struct Amount(Resource, f64);

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Resource::Memory | Resource::Storage => write!(f, "{:.1} MiB", self.1 / 1_048_576.0),
            Resource::Fds | Resource::Threads => write!(f, "{:.0}", self.1),
        }
    }
}

/// A forecast for one subject.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceForecast {
    pub resource: Resource,
    /// What is running out, e.g. `cgroup /ecs/abc/app`, `container app`, `pid 7 (java)`.
    pub subject: String,
    pub forecast: Forecast,
    /// Whether the history is long enough (the warm-up) for the forecast to drain the task.
    pub warm: bool,
}

/// The evidence line of a forecast.
impl fmt::Display for ResourceForecast {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f = &self.forecast;
        let r = self.resource;
        write!(
            out,
            "{} {} at {} of {} ({:.0} %), rising {}/s ({} trend{}, confidence {:.2}): limit in {:.0} s",
            self.subject,
            r.name(),
            r.format(f.level),
            r.format(f.limit),
            100.0 * f.level / f.limit,
            r.format(f.rate_per_second),
            f.scale.name(),
            match f.course {
                Course::Unsettled => "",
                Course::Steady => ", steady",
                Course::Slowing => ", slowing",
            },
            f.confidence,
            f.eta_seconds
        )
    }
}

/// A resource already at its limit: failing now (fds and threads only: memory near its limit
/// can still be reclaimed).
#[derive(Debug, Clone, PartialEq)]
pub struct Saturation {
    pub resource: Resource,
    pub subject: String,
    pub used: f64,
    pub limit: f64,
}

/// What one tick's readings say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub forecasts: Vec<ResourceForecast>,
    pub saturated: Vec<Saturation>,
    /// The highest use/limit ratio per resource (in `Resource::ALL` order), when known.
    pub usage: [Option<f64>; 4],
    /// CPU is the bottleneck: throttled, or using nearly all of the task's vCPU.
    pub cpu_saturated: bool,
    /// The largest share of a CPU quota period spent throttled, or of the task's vCPU used.
    pub cpu_ratio: Option<f64>,
    /// A listening socket's accept queue is nearly full, or overflowed since the last tick.
    pub accept_queue_full: bool,
    /// The fullest accept queue, as a share of its backlog.
    pub accept_queue_ratio: Option<f64>,
}

impl Signals {
    /// The earliest ETA per resource (in `Resource::ALL` order), whether or not it drains.
    pub fn eta_by_resource(&self) -> [Option<f64>; 4] {
        let mut out = [None; 4];
        for f in &self.forecasts {
            let slot = &mut out[f.resource as usize];
            *slot = Some(slot.map_or(f.forecast.eta_seconds, |eta: f64| eta.min(f.forecast.eta_seconds)));
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Tracker {
    resource: Resource,
    subject: String,
    series: Series,
    limit: Option<f64>,
    /// The metadata service's `read` stamp of the last point, to skip repeated samples.
    last_stamp: Option<i64>,
    last_seen: Millis,
}

/// Tunables of the feature extraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureConfig {
    /// History a subject needs before its forecast may drain the task.
    pub warmup_ms: Millis,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig { warmup_ms: 60_000 }
    }
}

/// The memory of the feature extraction across ticks.
#[derive(Debug, Clone)]
pub struct Features {
    config: FeatureConfig,
    trackers: Vec<Tracker>,
    /// Per cgroup path: (cpu periods, throttled periods) at the previous tick.
    cpu_previous: Vec<(String, u64, u64)>,
    /// Per network namespace: ListenOverflows at the previous tick.
    overflows_previous: Vec<(Option<u64>, u64)>,
}

impl Features {
    pub fn new(config: FeatureConfig) -> Features {
        Features { config, trackers: Vec::new(), cpu_previous: Vec::new(), overflows_previous: Vec::new() }
    }

    pub fn observe(&mut self, sample: &Sample) -> Signals {
        let at = sample.at;
        let mut signals = Signals::default();

        for cgroup in &sample.cgroups {
            let subject = format!("cgroup {}", cgroup.path);
            if let (Some(used), Some(limit)) = (cgroup.memory_working_set_bytes(), cgroup.memory_limit_bytes)
            {
                self.track(Resource::Memory, &subject, at, at, None, used as f64, limit as f64, &mut signals);
            }
            if let (Some(used), Some(limit)) = (cgroup.pids_current, cgroup.pids_max) {
                self.track(
                    Resource::Threads,
                    &subject,
                    at,
                    at,
                    None,
                    used as f64,
                    limit as f64,
                    &mut signals,
                );
            }
        }
        for process in &sample.processes {
            if let (Some(used), Some(limit)) = (process.open_fds, process.fd_limit) {
                let subject = format!("pid {} ({})", process.pid, process.name);
                self.track(Resource::Fds, &subject, at, at, None, used as f64, limit as f64, &mut signals);
            }
        }
        if let Some(task) = &sample.task {
            let mut task_memory = 0.0;
            let mut task_stamp = None;
            for container in &task.containers {
                let Some(stats) = &container.stats else { continue };
                let stamp = Some(stats.read_unix_nanos);
                let point_at = self.agent_time(sample, stats.read_unix_nanos);
                let subject = format!("container {}", container.name);
                if let Some(used) = stats.memory_working_set_bytes {
                    task_memory += used as f64;
                    task_stamp = task_stamp.max(stamp);
                    if let Some(limit) = stats.memory_limit_bytes {
                        self.track(
                            Resource::Memory,
                            &subject,
                            at,
                            point_at,
                            stamp,
                            used as f64,
                            limit as f64,
                            &mut signals,
                        );
                    }
                }
                if let (Some(used), Some(limit)) = (stats.pids_current, stats.pids_limit) {
                    self.track(
                        Resource::Threads,
                        &subject,
                        at,
                        point_at,
                        stamp,
                        used as f64,
                        limit as f64,
                        &mut signals,
                    );
                }
                if let Some(fraction) = stats.cpu_fraction_of_task {
                    signals.cpu_ratio = Some(signals.cpu_ratio.map_or(fraction, |r: f64| r.max(fraction)));
                    // Stale repeats say nothing new about CPU either.
                    if fraction >= 0.9 && !task.stats_stale {
                        signals.cpu_saturated = true;
                    }
                }
            }
            if let (Some(limit), Some(stamp)) = (task.memory_limit_bytes, task_stamp)
                && task.containers.len() > 1
            {
                let point_at = self.agent_time(sample, stamp);
                self.track(
                    Resource::Memory,
                    "task",
                    at,
                    point_at,
                    Some(stamp),
                    task_memory,
                    limit as f64,
                    &mut signals,
                );
            }
            if let Some(storage) = task.ephemeral_storage
                && storage.reserved_bytes > 0
            {
                let used = storage.utilized_bytes as f64;
                self.track(
                    Resource::Storage,
                    "task",
                    at,
                    at,
                    None,
                    used,
                    storage.reserved_bytes as f64,
                    &mut signals,
                );
            }
        }

        self.cpu(sample, &mut signals);
        self.accept_queues(sample, &mut signals);

        let now = at;
        self.trackers.retain(|t| now.saturating_sub(t.last_seen) < FORGET_AFTER_MS);
        for tracker in &self.trackers {
            let Some(limit) = tracker.limit else { continue };
            if tracker.last_seen != now {
                continue;
            }
            if let Some(f) = forecast(&tracker.series, limit, now) {
                let span =
                    tracker.series.last().map_or(0, |l| l.at) - tracker.series.first().map_or(0, |f| f.at);
                signals.forecasts.push(ResourceForecast {
                    resource: tracker.resource,
                    subject: tracker.subject.clone(),
                    forecast: f,
                    warm: span >= self.config.warmup_ms,
                });
            }
        }
        signals.forecasts.sort_by(|a, b| a.forecast.eta_seconds.total_cmp(&b.forecast.eta_seconds));
        signals
    }

    /// A metadata-service stamp on the agent's clock (never in the future).
    fn agent_time(&self, sample: &Sample, stamp_unix_nanos: i64) -> Millis {
        let stamp_ms = stamp_unix_nanos.div_euclid(1_000_000);
        let age = (sample.wall_ms - stamp_ms).max(0) as u64;
        sample.at.saturating_sub(age)
    }

    /// Records one reading of a subject. `at` is when it was measured on the agent's clock
    /// (older than `now` for a cached metadata sample); `stamp` its metadata `read` stamp.
    #[allow(clippy::too_many_arguments)]
    fn track(
        &mut self,
        resource: Resource,
        subject: &str,
        now: Millis,
        at: Millis,
        stamp: Option<i64>,
        used: f64,
        limit: f64,
        signals: &mut Signals,
    ) {
        if limit <= 0.0 {
            return;
        }
        let ratio = used / limit;
        let slot = &mut signals.usage[resource as usize];
        *slot = Some(slot.map_or(ratio, |r: f64| r.max(ratio)));
        if matches!(resource, Resource::Fds | Resource::Threads) && ratio >= 0.99 {
            signals.saturated.push(Saturation { resource, subject: subject.to_string(), used, limit });
        }

        let index = match self.trackers.iter().position(|t| t.resource == resource && t.subject == subject) {
            Some(index) => index,
            None => {
                if self.trackers.len() >= MAX_TRACKED
                    && let Some(oldest) = (0..self.trackers.len()).min_by_key(|&i| self.trackers[i].last_seen)
                {
                    self.trackers.swap_remove(oldest);
                }
                self.trackers.push(Tracker {
                    resource,
                    subject: subject.to_string(),
                    series: Series::new(),
                    limit: None,
                    last_stamp: None,
                    last_seen: now,
                });
                self.trackers.len() - 1
            }
        };
        let tracker = &mut self.trackers[index];
        tracker.last_seen = now;
        if tracker.limit.is_some_and(|l| l != limit) {
            // A new limit changes what the history means.
            tracker.series.clear();
        }
        tracker.limit = Some(limit);
        if stamp.is_some() && stamp == tracker.last_stamp {
            return;
        }
        tracker.last_stamp = stamp;
        tracker.series.push(at, used);
    }

    fn cpu(&mut self, sample: &Sample, signals: &mut Signals) {
        let mut previous = Vec::with_capacity(sample.cgroups.len());
        for cgroup in &sample.cgroups {
            let (Some(periods), Some(throttled)) = (cgroup.cpu_periods, cgroup.cpu_throttled_periods) else {
                continue;
            };
            if let Some((_, p, t)) = self.cpu_previous.iter().find(|(path, _, _)| *path == cgroup.path)
                && periods > *p
            {
                let ratio = throttled.saturating_sub(*t) as f64 / (periods - p) as f64;
                signals.cpu_ratio = Some(signals.cpu_ratio.map_or(ratio, |r: f64| r.max(ratio)));
                if ratio >= 0.25 {
                    signals.cpu_saturated = true;
                }
            }
            previous.push((cgroup.path.clone(), periods, throttled));
        }
        self.cpu_previous = previous;
    }

    fn accept_queues(&mut self, sample: &Sample, signals: &mut Signals) {
        let mut previous = Vec::with_capacity(sample.networks.len());
        for net in &sample.networks {
            for listener in &net.listeners {
                if listener.backlog > 0 {
                    let ratio = f64::from(listener.queue) / f64::from(listener.backlog);
                    signals.accept_queue_ratio =
                        Some(signals.accept_queue_ratio.map_or(ratio, |r: f64| r.max(ratio)));
                    if ratio >= 0.9 {
                        signals.accept_queue_full = true;
                    }
                }
            }
            if let Some(overflows) = net.listen_overflows {
                if let Some((_, before)) = self.overflows_previous.iter().find(|(ns, _)| *ns == net.namespace)
                    && overflows > *before
                {
                    signals.accept_queue_full = true;
                }
                previous.push((net.namespace, overflows));
            }
        }
        self.overflows_previous = previous;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::sample::{
        CgroupReading, ContainerReading, ContainerStats, Listener, NetReading, ProcessReading, TaskReading,
    };

    const MB: u64 = 1_000_000;

    fn cgroup_sample(at: Millis, working_set: u64) -> Sample {
        Sample {
            at,
            wall_ms: 1_700_000_000_000 + at as i64,
            cgroups: vec![CgroupReading {
                path: "/app".into(),
                memory_usage_bytes: Some(working_set),
                memory_limit_bytes: Some(512 * MB),
                ..CgroupReading::default()
            }],
            ..Sample::default()
        }
    }

    #[test]
    fn a_cgroup_leak_is_forecast_and_warms_up() {
        let mut features = Features::new(FeatureConfig::default());
        let mut last = Signals::default();
        for t in 0..90 {
            last = features.observe(&cgroup_sample(t * 1000, 100 * MB + 2 * MB * t));
            if t == 30 {
                assert!(
                    !last.forecasts.is_empty() && !last.forecasts[0].warm,
                    "forecast but still warming up"
                );
            }
        }
        let f = &last.forecasts[0];
        assert_eq!((f.resource, f.subject.as_str(), f.warm), (Resource::Memory, "cgroup /app", true));
        // 100 + 2 * 89 = 278 MB; (512 - 278) / 2 = 117 s.
        assert!((f.forecast.eta_seconds - 117.0).abs() < 2.0, "{}", f.forecast.eta_seconds);
        assert!(f.to_string().contains("cgroup /app memory at"), "{}", f.to_string());
        assert_eq!(last.eta_by_resource()[0].map(|e| e.round()), Some(f.forecast.eta_seconds.round()));
    }

    fn container_sample(at: Millis, read_s: i64, working_set: u64) -> Sample {
        Sample {
            at,
            wall_ms: 1_700_000_000_000 + at as i64,
            task: Some(TaskReading {
                containers: vec![ContainerReading {
                    name: "app".into(),
                    stats: Some(ContainerStats {
                        read_unix_nanos: (1_700_000_000 + read_s) * 1_000_000_000,
                        memory_working_set_bytes: Some(working_set),
                        memory_limit_bytes: Some(512 * MB),
                        ..ContainerStats::default()
                    }),
                    ..ContainerReading::default()
                }],
                ..TaskReading::default()
            }),
            ..Sample::default()
        }
    }

    #[test]
    fn stale_metadata_repeats_are_not_new_points() {
        let mut features = Features::new(FeatureConfig::default());
        // Fargate: a new sample every 10 s, polled every second.
        for t in 0..120u64 {
            let read = (t / 10 * 10) as i64;
            features.observe(&container_sample(t * 1000, read, 100 * MB + 2 * MB * (t / 10 * 10)));
        }
        let tracker = features.trackers.iter().find(|t| t.subject == "container app").unwrap();
        assert_eq!(tracker.series.len(), 12);
        // Points sit at the stamps' times on the agent's clock: 0, 10 s, ... 110 s.
        assert_eq!(tracker.series.last().unwrap().at, 110_000);
    }

    #[test]
    fn the_wall_clock_jumping_moves_no_point() {
        // The task's clock and the metadata service's stamps are the host's clock: when it is
        // stepped (1 h forward at 65 s, 2 h back at 125 s, each in the middle of a 10 s cache
        // period), both move. Intervals come from the agent's monotonic clock, so the points and
        // the forecast are the ones the same leak gives on a clock that never jumps.
        let offset = |t: u64| match t {
            0..65 => 0,
            65..125 => 3_600_000,
            _ => -3_600_000,
        };
        let run = |jumps: bool| {
            let mut features = Features::new(FeatureConfig::default());
            let mut last = Signals::default();
            for t in 0..180u64 {
                let read = t / 10 * 10;
                let mut sample = container_sample(t * 1000, read as i64, 100 * MB + 2 * MB * read);
                if jumps {
                    sample.wall_ms += offset(t);
                    let stats = sample.task.as_mut().unwrap().containers[0].stats.as_mut().unwrap();
                    stats.read_unix_nanos += offset(read) * 1_000_000;
                }
                last = features.observe(&sample);
            }
            let tracker = features.trackers.iter().find(|t| t.subject == "container app").unwrap();
            let points: Vec<(Millis, f64)> = tracker.series.iter().map(|p| (p.at, p.value)).collect();
            (points, last.forecasts[0].forecast.eta_seconds)
        };
        let (steady, steady_eta) = run(false);
        let (stepped, stepped_eta) = run(true);
        assert_eq!(steady.len(), 18);
        assert_eq!(stepped, steady);
        assert_eq!(stepped_eta, steady_eta);
    }

    #[test]
    fn saturation_throttling_and_accept_queues() {
        let mut features = Features::new(FeatureConfig::default());
        let sample =
            |at: Millis, fds: u64, periods: u64, throttled: u64, queue: u32, overflows: u64| Sample {
                at,
                processes: vec![ProcessReading {
                    pid: 3,
                    name: "app".into(),
                    open_fds: Some(fds),
                    fd_limit: Some(1024),
                    ..ProcessReading::default()
                }],
                cgroups: vec![CgroupReading {
                    path: "/app".into(),
                    cpu_periods: Some(periods),
                    cpu_throttled_periods: Some(throttled),
                    ..CgroupReading::default()
                }],
                networks: vec![NetReading {
                    namespace: Some(1),
                    listeners: vec![Listener { port: 8080, queue, backlog: 128 }],
                    listen_overflows: Some(overflows),
                    listen_drops: Some(overflows),
                }],
                ..Sample::default()
            };
        let calm = features.observe(&sample(0, 100, 1000, 0, 0, 5));
        assert!(!calm.cpu_saturated && !calm.accept_queue_full && calm.saturated.is_empty());
        let busy = features.observe(&sample(1000, 1024, 1010, 5, 120, 9));
        assert!(busy.cpu_saturated, "half the periods throttled");
        assert_eq!(busy.cpu_ratio, Some(0.5));
        assert!(busy.accept_queue_full);
        assert_eq!(busy.saturated.len(), 1);
        assert_eq!(busy.saturated[0].resource, Resource::Fds);
        assert_eq!(busy.usage[Resource::Fds as usize], Some(1.0));
    }

    #[test]
    fn forgotten_subjects_and_bounded_trackers() {
        let mut features = Features::new(FeatureConfig::default());
        for i in 0..(MAX_TRACKED as u64 + 8) {
            let mut sample = cgroup_sample(i * 1000, 100 * MB);
            sample.cgroups[0].path = format!("/c{i}");
            features.observe(&sample);
        }
        assert_eq!(features.trackers.len(), MAX_TRACKED);
        features.observe(&cgroup_sample(1_000_000, 100 * MB));
        assert_eq!(features.trackers.len(), 1, "the others were not seen for two minutes");
    }
}
