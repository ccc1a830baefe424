//! One tick of raw readings: the project's own types for everything the sampler reads.
//!
//! Every source is an `Option`: `None` means "could not be read this tick" (the reason is
//! counted by the sampler), never "zero". Nothing here does I/O; the edge modules (`procfs`,
//! `cgroup`, `tmds`, `probe`) convert what they read into these types at their boundary.

/// Milliseconds on the agent's monotonic clock (since the agent started).
pub type Millis = u64;

/// Everything read in one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// When the tick started, on the agent's monotonic clock.
    pub at: Millis,
    /// The wall-clock time of the tick, milliseconds since the Unix epoch: only to place the
    /// metadata service's timestamps on the agent's clock.
    pub wall_ms: i64,
    /// Whether process discovery worked at all (`/proc` readable).
    pub proc_readable: bool,
    /// The watched processes seen this tick (vigil itself is never among them).
    pub processes: Vec<ProcessReading>,
    /// The cgroups of the watched processes, deduplicated by path.
    pub cgroups: Vec<CgroupReading>,
    /// One entry per network namespace of the watched processes.
    pub networks: Vec<NetReading>,
    /// Host- or container-wide pressure stall information, when the kernel offers it.
    pub pressure: Option<Pressure>,
    /// The task as the Task Metadata Service describes it; `None` in local mode or when the
    /// service could not be reached this tick.
    pub task: Option<TaskReading>,
    /// The result of probing the app's own health URL, when one is configured.
    pub probe: Option<ProbeReading>,
    /// When that probe's first request was sent, wall clock (ms since the Unix epoch): the
    /// peers compare it with when theirs answered.
    pub probe_sent_ms: i64,
}

/// One watched process, from `/proc/<pid>/{stat,status,limits,fd,cmdline}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessReading {
    pub pid: u32,
    /// The kernel's short name (`comm`), at most 15 bytes.
    pub name: String,
    /// Start time in clock ticks after boot (field 22 of `stat`): a new value for the same
    /// PID, or a new PID, means the process restarted.
    pub start_ticks: u64,
    /// Scheduler state letter (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    pub rss_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    /// Soft `RLIMIT_NOFILE`; `None` when unlimited or unreadable.
    pub fd_limit: Option<u64>,
    /// Total CPU time (user + system) in clock ticks.
    pub cpu_ticks: Option<u64>,
    /// Index into `Sample::cgroups` of this process's memory cgroup, when found.
    pub cgroup: Option<usize>,
    /// Index into `Sample::networks` of this process's network namespace, when found.
    pub network: Option<usize>,
}

/// Which cgroup hierarchy a reading came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupVersion {
    #[default]
    V1,
    V2,
}

/// The resource accounting of one cgroup, from v1 controllers or the v2 unified hierarchy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupReading {
    /// The cgroup's path relative to its hierarchy root, e.g. `/ecs/abc/def`.
    pub path: String,
    pub version: CgroupVersion,
    pub memory_usage_bytes: Option<u64>,
    /// `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// Inactive file pages (v1 `total_inactive_file`, v2 `inactive_file`).
    pub memory_inactive_file_bytes: Option<u64>,
    /// Kernel OOM kills in this cgroup since it was created.
    pub oom_kills: Option<u64>,
    pub pids_current: Option<u64>,
    /// `None` when unlimited.
    pub pids_max: Option<u64>,
    /// Times fork failed at `pids.max`.
    pub pids_limit_hits: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
    pub cpu_periods: Option<u64>,
    pub cpu_throttled_periods: Option<u64>,
    pub cpu_throttled_usec: Option<u64>,
}

impl CgroupReading {
    /// Usage minus inactive file pages: what the kernel cannot reclaim cheaply, and what
    /// the OOM killer is measured against in practice.
    pub fn memory_working_set_bytes(&self) -> Option<u64> {
        let usage = self.memory_usage_bytes?;
        Some(usage.saturating_sub(self.memory_inactive_file_bytes.unwrap_or(0)))
    }
}

/// The listening sockets and TCP counters of one network namespace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetReading {
    /// The namespace's inode number (from `/proc/<pid>/ns/net`), when readable.
    pub namespace: Option<u64>,
    pub listeners: Vec<Listener>,
    /// `TcpExt: ListenOverflows` (accept queue full).
    pub listen_overflows: Option<u64>,
    /// `TcpExt: ListenDrops`.
    pub listen_drops: Option<u64>,
}

/// One TCP socket in LISTEN state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    /// Connections waiting to be accepted (`idiag_rqueue` over `sock_diag`, `rx_queue` of a
    /// LISTEN row in `/proc/net/tcp{,6}`).
    pub queue: u32,
    /// The accept-queue capacity: the `listen()` backlog, capped by `net.core.somaxconn`
    /// (`idiag_wqueue` over netlink `sock_diag`, for vigil's own network namespace). 0 means
    /// unknown: a listing read from `/proc/net/tcp{,6}` has no backlog (its `tx_queue` column
    /// is `write_seq - snd_una`, 0 for listening sockets).
    pub backlog: u32,
}

/// Pressure stall information (`/proc/pressure/{cpu,memory,io}`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub cpu: Option<PressureLine>,
    pub memory: Option<PressureLine>,
    pub io: Option<PressureLine>,
}

/// The `some` and (where the kernel reports it) `full` lines of one PSI file.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureLine {
    pub some_avg10: f64,
    pub some_total_usec: u64,
    pub full_avg10: Option<f64>,
    pub full_total_usec: Option<u64>,
}

/// The result of one probe of the app's own health URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeReading {
    /// The app answered with this status code after this many milliseconds.
    Answered { status: u16, latency_ms: u64 },
    /// The connection was refused or reset: nothing is listening.
    Refused,
    /// No answer within the probe's timeout.
    TimedOut,
}

impl ProbeReading {
    /// Whether the app answered at all (any status code counts: a fast 5xx is an answer).
    pub fn answered(&self) -> bool {
        matches!(self, ProbeReading::Answered { .. })
    }
}

/// The task as the Task Metadata Service v4 describes it, in the project's own types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskReading {
    pub task_arn: String,
    pub cluster: String,
    pub family: String,
    pub revision: String,
    pub launch_type: String,
    pub availability_zone: String,
    /// The ECS service that started the task; empty when the metadata service does not say.
    pub service_name: String,
    pub known_status: String,
    /// Task-level vCPU limit (`Limits.CPU`); `None` when absent or zero.
    pub cpu_limit_vcpus: Option<f64>,
    /// Task-level memory limit in bytes (`Limits.Memory` is MiB); `None` when absent or zero.
    pub memory_limit_bytes: Option<u64>,
    /// Only containers of `Type == "NORMAL"` (or no type): the pause container is dropped.
    pub containers: Vec<ContainerReading>,
    /// Task-wide network counters (Fargate reports them on the task's interface).
    pub network: Option<NetworkCounters>,
    /// Ephemeral storage of the task, when reported (`EphemeralStorageMetrics`).
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// True when `/task/stats` returned exactly the sample already seen (same `read` stamp for
    /// every container): TMDS caches stats (about 10 s on Fargate), so this is not new data.
    pub stats_stale: bool,
}

impl TaskReading {
    /// The task id: the last part of the task ARN (`arn:aws:ecs:region:account:task/cluster/ID`).
    pub fn task_id(&self) -> &str {
        self.task_arn.rsplit('/').next().unwrap_or(&self.task_arn)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerReading {
    pub name: String,
    pub docker_id: String,
    pub image: String,
    pub known_status: String,
    /// `None` when the container has no restart policy (the field is absent).
    pub restart_count: Option<u32>,
    pub health: Option<ContainerHealth>,
    pub exit_code: Option<i32>,
    /// `None` when the container's stats are `null` or `{}` (stopped, or not yet sampled).
    pub stats: Option<ContainerStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerHealth {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerStats {
    /// `read` as nanoseconds since the Unix epoch.
    pub read_unix_nanos: i64,
    /// `preread` as nanoseconds since the Unix epoch; `None` when zero or missing.
    pub preread_unix_nanos: Option<i64>,
    pub memory_usage_bytes: Option<u64>,
    /// The container's memory limit, or the task's when the container reports "no limit"
    /// (9223372036854771712 or u64::MAX), and never more than the task's; `None` when neither
    /// is known.
    pub memory_limit_bytes: Option<u64>,
    /// Usage minus inactive file pages (v1 `total_inactive_file`, v2 `inactive_file`).
    pub memory_working_set_bytes: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub memory_page_cache_bytes: Option<u64>,
    /// Cumulative CPU time in seconds (`cpu_stats.cpu_usage.total_usage`, nanoseconds).
    pub cpu_usage_seconds: Option<f64>,
    /// CPU used between `preread` and `read`, as a fraction of the task's vCPU limit
    /// (1.0 = the whole task's CPU); when the task has no CPU limit (EC2 without task-level
    /// CPU), a fraction of the CPUs the container may run on (`online_cpus`). `None` when there
    /// is no previous sample.
    pub cpu_fraction_of_task: Option<f64>,
    pub pids_current: Option<u64>,
    pub pids_limit: Option<u64>,
    pub network: Option<NetworkCounters>,
}

/// Summed over interfaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EphemeralStorage {
    pub utilized_bytes: u64,
    pub reserved_bytes: u64,
}

/// The inputs vigil reads, for error accounting and freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `/proc/<pid>/*` of the watched processes.
    Proc,
    /// The cgroup files of the watched processes.
    Cgroup,
    /// Netlink `sock_diag` and `/proc/<pid>/net/{tcp,tcp6,netstat}`.
    Network,
    /// `/proc/pressure/*`.
    Pressure,
    /// The Task Metadata Service v4.
    Tmds,
    /// The app's own health URL.
    Probe,
    /// The service's Prometheus, for the fleet view.
    Fleet,
}

impl Source {
    pub const ALL: [Source; 7] = [
        Source::Proc,
        Source::Cgroup,
        Source::Network,
        Source::Pressure,
        Source::Tmds,
        Source::Probe,
        Source::Fleet,
    ];

    /// The stable name used in metrics labels, logs and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Proc => "proc",
            Source::Cgroup => "cgroup",
            Source::Network => "network",
            Source::Pressure => "pressure",
            Source::Tmds => "tmds",
            Source::Probe => "probe",
            Source::Fleet => "fleet",
        }
    }

    /// Position in `Source::ALL`, for fixed-size per-source tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A source that failed during a tick: counted and logged (rate-limited) by the tick loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub source: Source,
    /// Lower-case, names the cause, e.g. `read /proc/42/limits: no such file or directory`.
    pub detail: String,
}

impl SourceError {
    pub fn new(source: Source, detail: impl Into<String>) -> Self {
        SourceError { source, detail: detail.into() }
    }
}
