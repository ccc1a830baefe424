//! The `/status` document: a schema of its own, built from a [`Snapshot`] at the moment it is
//! served. Field names here are public API (README, "The `/status` document"); the core's types
//! can change without changing them, and a golden test pins the whole shape.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::snapshot::{AnomalyStatus, Snapshot, SourceStatus, health};
use crate::judge::features::ResourceForecast;
use crate::judge::sample::{
    CgroupReading, CgroupVersion, ContainerHealth, ContainerReading, ContainerStats, EphemeralStorage,
    Listener, Millis, NetReading, NetworkCounters, Pressure, PressureLine, ProbeReading, ProcessReading,
    Sample, Source, TaskReading,
};
use crate::judge::verdict::Finding;

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    pub version: &'static str,
    /// `local` or `ecs`.
    pub mode: &'static str,
    /// `healthy`, `degraded` or `draining`.
    pub state: &'static str,
    pub state_age_ms: u64,
    /// What `/health` answers right now.
    pub health: HealthDoc,
    pub reasons: Vec<ReasonDoc>,
    /// Whether vigil received a stop signal (then `/health` answers 503).
    pub stopping: bool,
    pub tick: u64,
    pub interval_ms: u64,
    pub last_tick_age_ms: u64,
    pub processes_visible: bool,
    /// By source name: `proc`, `cgroup`, `network`, `pressure`, `tmds`, `probe`.
    pub sources: BTreeMap<&'static str, SourceDoc<'a>>,
    pub forecasts: Vec<ForecastDoc<'a>>,
    pub restarts: RestartsDoc,
    pub anomaly: AnomalyDoc<'a>,
    pub fleet: FleetDoc,
    pub readings: ReadingsDoc<'a>,
}

/// The fleet view: whether it was used on the last tick, and what it showed.
#[derive(Debug, Serialize)]
pub struct FleetDoc {
    /// `VIGIL_FLEET_URL` is set.
    pub enabled: bool,
    /// A fresh view that includes this task, with peers, weighed the last verdict.
    pub used: bool,
    /// Why not, when enabled and not used: then the local rules decide alone.
    pub fallback: Option<&'static str>,
    pub view_age_ms: Option<u64>,
    pub peers: usize,
    pub peers_draining: usize,
    /// Most tasks of the service draining at once.
    pub budget: usize,
    /// This task's claim on the budget: seconds to its predicted failure.
    pub candidate_seconds: Option<f64>,
    /// The draining reasons this task's own rules show, before the fleet's say (what the peers
    /// read).
    pub evidence: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct HealthDoc {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Serialize)]
pub struct ReasonDoc {
    /// The reason code, as in the `reason` label of the metrics.
    pub reason: &'static str,
    pub state: &'static str,
    /// One line of text: the fact and, in hysteresis, how far it has got.
    pub evidence: String,
    pub eta_seconds: Option<f64>,
    /// Why a draining reason serves anyway: `fleet_wide`, `zone_wide`, `fleet_unseen` or
    /// `drain_budget` (the evidence line says more).
    pub held: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct SourceDoc<'a> {
    pub enabled: bool,
    pub up: bool,
    pub errors_total: u64,
    pub last_success_age_ms: Option<u64>,
    pub last_error: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ForecastDoc<'a> {
    /// `memory`, `fds`, `threads` or `storage`.
    pub resource: &'static str,
    pub subject: &'a str,
    pub eta_seconds: f64,
    pub rate_per_second: f64,
    pub confidence: f64,
    pub level: f64,
    pub limit: f64,
    /// The trend that gave the forecast: `20s`, `2m`, `history` or `troughs`.
    pub trend: &'static str,
    /// Whether the growth of the last 20 s keeps its pace: `steady`, `slowing` or `unsettled`.
    pub course: &'static str,
    pub warm: bool,
}

#[derive(Debug, Serialize)]
pub struct RestartsDoc {
    pub recent: usize,
    pub recent_oom: usize,
    pub recent_oom_kills: u64,
    pub next_crash_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AnomalyDoc<'a> {
    pub model: Option<&'a str>,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub calibrated_ticks: u32,
    pub calibration_ticks: u32,
    pub above_ticks: u32,
    pub anomalous: bool,
    pub errors_total: u64,
}

/// The latest tick's readings.
#[derive(Debug, Serialize)]
pub struct ReadingsDoc<'a> {
    /// The tick's wall-clock time, milliseconds since the Unix epoch.
    pub wall_time_ms: i64,
    pub proc_readable: bool,
    pub processes: Vec<ProcessDoc<'a>>,
    pub cgroups: Vec<CgroupDoc<'a>>,
    pub networks: Vec<NetworkDoc>,
    pub pressure: Option<PressureDoc>,
    pub task: Option<TaskDoc<'a>>,
    pub probe: Option<ProbeDoc>,
}

#[derive(Debug, Serialize)]
pub struct ProcessDoc<'a> {
    pub pid: u32,
    pub name: &'a str,
    pub start_ticks: u64,
    pub state: String,
    pub rss_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub fd_limit: Option<u64>,
    pub cpu_ticks: Option<u64>,
    /// The path of the process's memory cgroup, as in `cgroups`.
    pub cgroup: Option<&'a str>,
    /// The inode of the process's network namespace, as in `networks`.
    pub network_namespace: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CgroupDoc<'a> {
    pub path: &'a str,
    /// `v1` or `v2`.
    pub version: &'static str,
    pub memory_usage_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub memory_inactive_file_bytes: Option<u64>,
    pub memory_working_set_bytes: Option<u64>,
    pub oom_kills: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_max: Option<u64>,
    pub pids_limit_hits: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub cpu_periods: Option<u64>,
    pub cpu_throttled_periods: Option<u64>,
    pub cpu_throttled_usec: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct NetworkDoc {
    pub namespace: Option<u64>,
    pub listeners: Vec<ListenerDoc>,
    pub listen_overflows: Option<u64>,
    pub listen_drops: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ListenerDoc {
    pub port: u16,
    pub queue: u32,
    /// 0 when unknown.
    pub backlog: u32,
}

#[derive(Debug, Serialize)]
pub struct PressureDoc {
    pub cpu: Option<PressureLineDoc>,
    pub memory: Option<PressureLineDoc>,
    pub io: Option<PressureLineDoc>,
}

#[derive(Debug, Serialize)]
pub struct PressureLineDoc {
    pub some_avg10: f64,
    pub some_total_usec: u64,
    pub full_avg10: Option<f64>,
    pub full_total_usec: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct TaskDoc<'a> {
    pub task_arn: &'a str,
    pub cluster: &'a str,
    pub family: &'a str,
    pub revision: &'a str,
    pub launch_type: &'a str,
    pub availability_zone: &'a str,
    /// Empty when the metadata service does not report it.
    pub service_name: &'a str,
    pub known_status: &'a str,
    pub cpu_limit_vcpus: Option<f64>,
    pub memory_limit_bytes: Option<u64>,
    pub containers: Vec<ContainerDoc<'a>>,
    pub network: Option<NetworkCountersDoc>,
    pub ephemeral_storage: Option<StorageDoc>,
    /// The metadata service returned the stats already seen (it caches them).
    pub stats_stale: bool,
}

#[derive(Debug, Serialize)]
pub struct ContainerDoc<'a> {
    pub name: &'a str,
    pub docker_id: &'a str,
    pub image: &'a str,
    pub known_status: &'a str,
    pub restart_count: Option<u32>,
    /// `HEALTHY` or `UNHEALTHY`, when the container has a health check.
    pub health: Option<&'static str>,
    pub exit_code: Option<i32>,
    pub stats: Option<ContainerStatsDoc>,
}

#[derive(Debug, Serialize)]
pub struct ContainerStatsDoc {
    pub read_unix_nanos: i64,
    pub preread_unix_nanos: Option<i64>,
    pub memory_usage_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub memory_working_set_bytes: Option<u64>,
    pub memory_page_cache_bytes: Option<u64>,
    pub cpu_usage_seconds: Option<f64>,
    pub cpu_fraction_of_task: Option<f64>,
    pub pids_current: Option<u64>,
    pub pids_limit: Option<u64>,
    pub network: Option<NetworkCountersDoc>,
}

#[derive(Debug, Serialize)]
pub struct NetworkCountersDoc {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, Serialize)]
pub struct StorageDoc {
    pub utilized_bytes: u64,
    pub reserved_bytes: u64,
}

/// `{"outcome": "answered", "status": 200, "latency_ms": 3}`, `{"outcome": "refused"}` or
/// `{"outcome": "timed_out"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ProbeDoc {
    Answered { status: u16, latency_ms: u64 },
    Refused,
    TimedOut,
}

impl<'a> Status<'a> {
    /// The document for `snapshot`, served at `now` on the agent's clock.
    pub fn new(snapshot: &'a Snapshot, now: Millis, stopping: bool, interval: Duration) -> Status<'a> {
        let (status, body) = health(&snapshot.verdict, stopping);
        let restarts = &snapshot.restarts;
        Status {
            version: env!("CARGO_PKG_VERSION"),
            mode: snapshot.mode.name(),
            state: snapshot.verdict.state.name(),
            state_age_ms: now.saturating_sub(snapshot.verdict.since),
            health: HealthDoc { status, body },
            reasons: snapshot.verdict.findings.iter().map(ReasonDoc::from).collect(),
            stopping,
            tick: snapshot.tick,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            last_tick_age_ms: now.saturating_sub(snapshot.sample.at),
            processes_visible: snapshot.processes_visible,
            sources: Source::ALL
                .iter()
                .map(|&source| (source.name(), SourceDoc::new(snapshot.source(source), now)))
                .collect(),
            forecasts: snapshot.signals.forecasts.iter().map(ForecastDoc::from).collect(),
            restarts: RestartsDoc {
                recent: restarts.recent,
                recent_oom: restarts.recent_oom,
                recent_oom_kills: restarts.recent_oom_kills,
                next_crash_seconds: restarts.next_crash_seconds,
            },
            anomaly: AnomalyDoc::from(&snapshot.anomaly),
            fleet: FleetDoc {
                enabled: snapshot.source(Source::Fleet).enabled,
                used: snapshot.fleet.used,
                fallback: snapshot.fleet.unused.filter(|_| snapshot.source(Source::Fleet).enabled),
                view_age_ms: snapshot.fleet.age_ms,
                peers: snapshot.fleet.peers,
                peers_draining: snapshot.fleet.peers_draining,
                budget: snapshot.fleet.budget,
                candidate_seconds: snapshot.fleet.candidate_seconds,
                evidence: snapshot.evidence.iter().map(|reason| reason.code()).collect(),
            },
            readings: ReadingsDoc::from(&snapshot.sample),
        }
    }
}

impl From<&Finding> for ReasonDoc {
    fn from(finding: &Finding) -> ReasonDoc {
        ReasonDoc {
            reason: finding.reason.code(),
            state: finding.state.name(),
            evidence: finding.to_string(),
            eta_seconds: finding.eta_seconds,
            held: finding.held.as_ref().map(|hold| hold.code()),
        }
    }
}

impl<'a> SourceDoc<'a> {
    fn new(status: &'a SourceStatus, now: Millis) -> SourceDoc<'a> {
        SourceDoc {
            enabled: status.enabled,
            up: status.up,
            errors_total: status.errors_total,
            last_success_age_ms: status.last_success_at.map(|at| now.saturating_sub(at)),
            last_error: status.last_error.as_deref(),
        }
    }
}

impl<'a> From<&'a ResourceForecast> for ForecastDoc<'a> {
    fn from(f: &'a ResourceForecast) -> ForecastDoc<'a> {
        ForecastDoc {
            resource: f.resource.name(),
            subject: &f.subject,
            eta_seconds: f.forecast.eta_seconds,
            rate_per_second: f.forecast.rate_per_second,
            confidence: f.forecast.confidence,
            level: f.forecast.level,
            limit: f.forecast.limit,
            trend: f.forecast.scale.name(),
            course: f.forecast.course.name(),
            warm: f.warm,
        }
    }
}

impl<'a> From<&'a AnomalyStatus> for AnomalyDoc<'a> {
    fn from(a: &'a AnomalyStatus) -> AnomalyDoc<'a> {
        AnomalyDoc {
            model: a.model.as_deref(),
            score: a.score,
            threshold: a.threshold,
            calibrated_ticks: a.calibrated_ticks,
            calibration_ticks: a.calibration_ticks,
            above_ticks: a.above_ticks,
            anomalous: a.anomalous,
            errors_total: a.errors_total,
        }
    }
}

impl<'a> From<&'a Sample> for ReadingsDoc<'a> {
    fn from(s: &'a Sample) -> ReadingsDoc<'a> {
        ReadingsDoc {
            wall_time_ms: s.wall_ms,
            proc_readable: s.proc_readable,
            processes: s.processes.iter().map(|p| ProcessDoc::new(p, s)).collect(),
            cgroups: s.cgroups.iter().map(CgroupDoc::from).collect(),
            networks: s.networks.iter().map(NetworkDoc::from).collect(),
            pressure: s.pressure.as_ref().map(PressureDoc::from),
            task: s.task.as_ref().map(TaskDoc::from),
            probe: s.probe.map(ProbeDoc::from),
        }
    }
}

impl<'a> ProcessDoc<'a> {
    fn new(p: &'a ProcessReading, sample: &'a Sample) -> ProcessDoc<'a> {
        ProcessDoc {
            pid: p.pid,
            name: &p.name,
            start_ticks: p.start_ticks,
            state: p.state.to_string(),
            rss_bytes: p.rss_bytes,
            threads: p.threads,
            open_fds: p.open_fds,
            fd_limit: p.fd_limit,
            cpu_ticks: p.cpu_ticks,
            cgroup: p.cgroup.and_then(|i| sample.cgroups.get(i)).map(|c| c.path.as_str()),
            network_namespace: p.network.and_then(|i| sample.networks.get(i)).and_then(|n| n.namespace),
        }
    }
}

impl<'a> From<&'a CgroupReading> for CgroupDoc<'a> {
    fn from(c: &'a CgroupReading) -> CgroupDoc<'a> {
        CgroupDoc {
            path: &c.path,
            version: match c.version {
                CgroupVersion::V1 => "v1",
                CgroupVersion::V2 => "v2",
            },
            memory_usage_bytes: c.memory_usage_bytes,
            memory_limit_bytes: c.memory_limit_bytes,
            memory_inactive_file_bytes: c.memory_inactive_file_bytes,
            memory_working_set_bytes: c.memory_working_set_bytes(),
            oom_kills: c.oom_kills,
            pids_current: c.pids_current,
            pids_max: c.pids_max,
            pids_limit_hits: c.pids_limit_hits,
            cpu_usage_usec: c.cpu_usage_usec,
            cpu_periods: c.cpu_periods,
            cpu_throttled_periods: c.cpu_throttled_periods,
            cpu_throttled_usec: c.cpu_throttled_usec,
        }
    }
}

impl From<&NetReading> for NetworkDoc {
    fn from(n: &NetReading) -> NetworkDoc {
        NetworkDoc {
            namespace: n.namespace,
            listeners: n.listeners.iter().map(ListenerDoc::from).collect(),
            listen_overflows: n.listen_overflows,
            listen_drops: n.listen_drops,
        }
    }
}

impl From<&Listener> for ListenerDoc {
    fn from(l: &Listener) -> ListenerDoc {
        ListenerDoc { port: l.port, queue: l.queue, backlog: l.backlog }
    }
}

impl From<&Pressure> for PressureDoc {
    fn from(p: &Pressure) -> PressureDoc {
        let line = |l: &Option<PressureLine>| {
            l.map(|l| PressureLineDoc {
                some_avg10: l.some_avg10,
                some_total_usec: l.some_total_usec,
                full_avg10: l.full_avg10,
                full_total_usec: l.full_total_usec,
            })
        };
        PressureDoc { cpu: line(&p.cpu), memory: line(&p.memory), io: line(&p.io) }
    }
}

impl<'a> From<&'a TaskReading> for TaskDoc<'a> {
    fn from(t: &'a TaskReading) -> TaskDoc<'a> {
        TaskDoc {
            task_arn: &t.task_arn,
            cluster: &t.cluster,
            family: &t.family,
            revision: &t.revision,
            launch_type: &t.launch_type,
            availability_zone: &t.availability_zone,
            service_name: &t.service_name,
            known_status: &t.known_status,
            cpu_limit_vcpus: t.cpu_limit_vcpus,
            memory_limit_bytes: t.memory_limit_bytes,
            containers: t.containers.iter().map(ContainerDoc::from).collect(),
            network: t.network.as_ref().map(NetworkCountersDoc::from),
            ephemeral_storage: t.ephemeral_storage.as_ref().map(StorageDoc::from),
            stats_stale: t.stats_stale,
        }
    }
}

impl<'a> From<&'a ContainerReading> for ContainerDoc<'a> {
    fn from(c: &'a ContainerReading) -> ContainerDoc<'a> {
        ContainerDoc {
            name: &c.name,
            docker_id: &c.docker_id,
            image: &c.image,
            known_status: &c.known_status,
            restart_count: c.restart_count,
            health: c.health.map(|h| match h {
                ContainerHealth::Healthy => "HEALTHY",
                ContainerHealth::Unhealthy => "UNHEALTHY",
            }),
            exit_code: c.exit_code,
            stats: c.stats.as_ref().map(ContainerStatsDoc::from),
        }
    }
}

impl From<&ContainerStats> for ContainerStatsDoc {
    fn from(s: &ContainerStats) -> ContainerStatsDoc {
        ContainerStatsDoc {
            read_unix_nanos: s.read_unix_nanos,
            preread_unix_nanos: s.preread_unix_nanos,
            memory_usage_bytes: s.memory_usage_bytes,
            memory_limit_bytes: s.memory_limit_bytes,
            memory_working_set_bytes: s.memory_working_set_bytes,
            memory_page_cache_bytes: s.memory_page_cache_bytes,
            cpu_usage_seconds: s.cpu_usage_seconds,
            cpu_fraction_of_task: s.cpu_fraction_of_task,
            pids_current: s.pids_current,
            pids_limit: s.pids_limit,
            network: s.network.as_ref().map(NetworkCountersDoc::from),
        }
    }
}

impl From<&NetworkCounters> for NetworkCountersDoc {
    fn from(n: &NetworkCounters) -> NetworkCountersDoc {
        NetworkCountersDoc {
            rx_bytes: n.rx_bytes,
            rx_packets: n.rx_packets,
            rx_errors: n.rx_errors,
            rx_dropped: n.rx_dropped,
            tx_bytes: n.tx_bytes,
            tx_packets: n.tx_packets,
            tx_errors: n.tx_errors,
            tx_dropped: n.tx_dropped,
        }
    }
}

impl From<&EphemeralStorage> for StorageDoc {
    fn from(e: &EphemeralStorage) -> StorageDoc {
        StorageDoc { utilized_bytes: e.utilized_bytes, reserved_bytes: e.reserved_bytes }
    }
}

impl From<ProbeReading> for ProbeDoc {
    fn from(p: ProbeReading) -> ProbeDoc {
        match p {
            ProbeReading::Answered { status, latency_ms } => ProbeDoc::Answered { status, latency_ms },
            ProbeReading::Refused => ProbeDoc::Refused,
            ProbeReading::TimedOut => ProbeDoc::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::judge::evidence::{Fact, Reason};
    use crate::judge::features::{Resource, Saturation};
    use crate::judge::fleet::FleetOutcome;
    use crate::judge::forecast::{Course, Forecast, Scale};
    use crate::judge::verdict::{Hold, Phase, State};

    const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/status/golden.json");

    /// One of everything: every reading present, a forecast being confirmed, a failed source.
    fn snapshot() -> Snapshot {
        let mut snapshot = Snapshot::empty(Mode::Ecs);
        let forecast = ResourceForecast {
            resource: Resource::Memory,
            subject: "cgroup /ecs/abc/app".into(),
            forecast: Forecast {
                eta_seconds: 95.5,
                rate_per_second: 1_048_576.0,
                confidence: 0.9,
                level: 400_000_000.0,
                limit: 512_000_000.0,
                scale: Scale::Medium,
                course: Course::Unsettled,
            },
            warm: true,
        };
        snapshot.tick = 120;
        snapshot.processes_visible = true;
        snapshot.verdict.state = State::Degraded;
        snapshot.verdict.since = 100_000;
        snapshot.verdict.findings = vec![
            Finding {
                reason: Reason::MemoryExhaustion,
                state: State::Degraded,
                fact: Fact::Forecast(forecast.clone()),
                phase: Phase::Confirming { ticks: 2, of: 3 },
                eta_seconds: Some(95.5),
                held: None,
            },
            Finding {
                reason: Reason::FdExhaustion,
                state: State::Degraded,
                fact: Fact::Exhausted(Saturation {
                    resource: Resource::Fds,
                    subject: "pid 7 (java)".into(),
                    used: 1000.0,
                    limit: 1024.0,
                }),
                phase: Phase::Now,
                eta_seconds: None,
                held: Some(Hold::Budget { draining: 1, budget: 1, place: 1 }),
            },
        ];
        snapshot.evidence = [Reason::MemoryExhaustion, Reason::FdExhaustion].into_iter().collect();
        snapshot.sources[Source::Fleet.index()] = SourceStatus {
            enabled: true,
            up: true,
            errors_total: 2,
            last_success_at: Some(118_000),
            last_error: Some("query failed: timed out".into()),
        };
        snapshot.fleet = FleetOutcome {
            used: true,
            unused: None,
            age_ms: Some(1_500),
            peers: 5,
            peers_draining: 1,
            budget: 1,
            candidate_seconds: Some(0.0),
            released: Default::default(),
        };
        snapshot.sources[Source::Proc.index()] = SourceStatus {
            enabled: true,
            up: true,
            errors_total: 0,
            last_success_at: Some(119_000),
            last_error: None,
        };
        snapshot.sources[Source::Tmds.index()] = SourceStatus {
            enabled: true,
            up: false,
            errors_total: 3,
            last_success_at: Some(110_000),
            last_error: Some("GET /task/stats: timed out".into()),
        };
        snapshot.signals.forecasts = vec![forecast];
        snapshot.restarts = crate::judge::restarts::RestartFindings {
            recent: 2,
            recent_oom: 1,
            recent_oom_kills: 1,
            next_crash_seconds: Some(40.0),
        };
        snapshot.anomaly = AnomalyStatus {
            model: Some("embedded".into()),
            score: Some(0.25),
            threshold: Some(0.5),
            calibrated_ticks: 300,
            calibration_ticks: 300,
            above_ticks: 0,
            anomalous: false,
            errors_total: 0,
        };
        let counters = NetworkCounters {
            rx_bytes: 1,
            rx_packets: 2,
            rx_errors: 3,
            rx_dropped: 4,
            tx_bytes: 5,
            tx_packets: 6,
            tx_errors: 7,
            tx_dropped: 8,
        };
        let line = PressureLine {
            some_avg10: 1.5,
            some_total_usec: 10,
            full_avg10: Some(0.5),
            full_total_usec: Some(4),
        };
        snapshot.sample = Sample {
            at: 120_000,
            wall_ms: 1_764_000_000_000,
            proc_readable: true,
            processes: vec![ProcessReading {
                pid: 7,
                name: "java".into(),
                start_ticks: 4242,
                state: 'S',
                rss_bytes: Some(300_000_000),
                threads: Some(40),
                open_fds: Some(1000),
                fd_limit: Some(1024),
                cpu_ticks: Some(900),
                cgroup: Some(0),
                network: Some(0),
            }],
            cgroups: vec![CgroupReading {
                path: "/ecs/abc/app".into(),
                version: CgroupVersion::V2,
                memory_usage_bytes: Some(410_000_000),
                memory_limit_bytes: Some(512_000_000),
                memory_inactive_file_bytes: Some(10_000_000),
                oom_kills: Some(1),
                pids_current: Some(41),
                pids_max: Some(4096),
                pids_limit_hits: Some(0),
                cpu_usage_usec: Some(9_000_000),
                cpu_periods: Some(1200),
                cpu_throttled_periods: Some(12),
                cpu_throttled_usec: Some(60_000),
            }],
            networks: vec![NetReading {
                namespace: Some(4026531840),
                listeners: vec![Listener { port: 8080, queue: 1, backlog: 511 }],
                listen_overflows: Some(0),
                listen_drops: Some(0),
            }],
            pressure: Some(Pressure { cpu: Some(line), memory: Some(line), io: None }),
            task: Some(TaskReading {
                task_arn: "arn:aws:ecs:us-east-1:111122223333:task/prod/abc".into(),
                cluster: "prod".into(),
                family: "web".into(),
                revision: "7".into(),
                launch_type: "FARGATE".into(),
                availability_zone: "us-east-1a".into(),
                service_name: "web-svc".into(),
                known_status: "RUNNING".into(),
                cpu_limit_vcpus: Some(0.5),
                memory_limit_bytes: Some(536_870_912),
                containers: vec![ContainerReading {
                    name: "app".into(),
                    docker_id: "abc-123".into(),
                    image: "example/web:7".into(),
                    known_status: "RUNNING".into(),
                    restart_count: Some(2),
                    health: Some(ContainerHealth::Healthy),
                    exit_code: None,
                    stats: Some(ContainerStats {
                        read_unix_nanos: 1_764_000_000_000_000_000,
                        preread_unix_nanos: Some(1_763_999_990_000_000_000),
                        memory_usage_bytes: Some(410_000_000),
                        memory_limit_bytes: Some(512_000_000),
                        memory_working_set_bytes: Some(400_000_000),
                        memory_page_cache_bytes: Some(10_000_000),
                        cpu_usage_seconds: Some(9.0),
                        cpu_fraction_of_task: Some(0.25),
                        pids_current: Some(41),
                        pids_limit: None,
                        network: Some(counters),
                    }),
                }],
                network: Some(counters),
                ephemeral_storage: Some(EphemeralStorage {
                    utilized_bytes: 1 << 30,
                    reserved_bytes: 20 << 30,
                }),
                stats_stale: false,
            }),
            probe: Some(ProbeReading::Answered { status: 200, latency_ms: 3 }),
            probe_sent_ms: 1_790_000_000_010,
        };
        snapshot
    }

    #[test]
    fn the_document_matches_the_golden_file() {
        let snapshot = snapshot();
        let mut status = Status::new(&snapshot, 125_000, false, Duration::from_secs(1));
        status.version = "golden";
        let text = serde_json::to_string_pretty(&status).unwrap() + "\n";
        if std::env::var_os("VIGIL_BLESS").is_some() {
            std::fs::write(GOLDEN, &text).unwrap();
        }
        let golden = std::fs::read_to_string(GOLDEN).unwrap();
        assert!(
            text == golden,
            "/status changed shape; if intended, update the README and run `VIGIL_BLESS=1 cargo test golden`:\n{text}"
        );
    }

    #[test]
    fn ages_are_counted_from_the_time_served_and_stopping_shows() {
        let snapshot = snapshot();
        let status = Status::new(&snapshot, 130_000, true, Duration::from_millis(500));
        assert_eq!(status.state_age_ms, 30_000);
        assert_eq!(status.last_tick_age_ms, 10_000);
        assert_eq!(status.sources["tmds"].last_success_age_ms, Some(20_000));
        assert_eq!(status.health.status, 503);
        assert!(status.stopping);
        assert_eq!(status.interval_ms, 500);
    }

    #[test]
    fn the_first_tick_document_has_no_readings() {
        let snapshot = Snapshot::empty(Mode::Local);
        let value = serde_json::to_value(Status::new(&snapshot, 0, false, Duration::from_secs(1))).unwrap();
        assert_eq!(value["state"], "healthy");
        assert_eq!(value["health"]["status"], 200);
        assert_eq!(value["readings"]["processes"], serde_json::json!([]));
        assert_eq!(value["readings"]["task"], serde_json::Value::Null);
        assert_eq!(value["sources"].as_object().unwrap().len(), Source::ALL.len());
    }
}
