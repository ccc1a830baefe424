//! The Task Metadata Service v4 client and its JSON types: reads `${URI}/task` and
//! `${URI}/task/stats` and turns them into a [`TaskReading`].
//!
//! The module has four layers, each testable alone:
//!
//! - **JSON types** (private): every field optional, unknown fields ignored, numbers accepted as
//!   integers or floats, a value of the wrong type read as absent. TMDS formats stop here.
//! - **Pure conversion**: [`parse_task`], [`parse_stats`] and [`to_reading`] turn response bodies
//!   into the project's own types; [`crate::time::parse_rfc3339_nanos`] reads the stats' timestamps. No I/O,
//!   no clock.
//! - **The schedule** (private, pure): the rate limit and the back-off, with time as an argument.
//! - **The client**: [`TmdsClient::poll`] fetches both documents (at most once a second, with
//!   timeouts, a body cap and back-off on 429 and 5xx) and reports failures as [`SourceError`]s
//!   instead of failing the tick.
//!
//! Conversion rules, all taken from the fixtures in `tests/fixtures/tmds/`:
//!
//! - Only containers with `Type == "NORMAL"` (or no `Type`) are kept: the EC2 awsvpc pause
//!   container (`CNI_PAUSE`) is dropped.
//! - Stats of `null` (Fargate) or `{}` (EC2) mean "no stats". So does a sample without a usable
//!   `read` stamp, such as Go's zero time `0001-01-01T00:00:00Z`.
//! - Memory working set is usage minus inactive file pages (cgroup v1 `total_inactive_file`,
//!   v2 `inactive_file`); page cache is v1 `cache` or v2 `file`.
//! - A container memory limit of 2^62 or more (9223372036854771712 on cgroup v1, u64::MAX on
//!   v2) means "no limit": the task's `Limits.Memory` applies instead. A real container limit
//!   larger than the task's is capped at the task's, since the task cgroup stops it first.
//! - CPU use is computed from the sample's own `read`/`preread` stamps, never from poll times.
//! - A poll that returns the same `read` stamp for every container is marked `stats_stale`:
//!   TMDS caches stats (about 10 s on Fargate, about 1 s on EC2).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::judge::sample::{
    ContainerHealth, ContainerReading, ContainerStats, EphemeralStorage, Millis, NetworkCounters, Source,
    SourceError, TaskReading,
};
use crate::sources::http::{self, ClientOptions};
use crate::time::parse_rfc3339_nanos;

/// The task document, relative to the base URL.
pub const TASK_PATH: &str = "/task";
/// The per-container stats of the task, relative to the base URL.
pub const STATS_PATH: &str = "/task/stats";
/// The largest response body read; a larger one is abandoned mid-transfer.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The shortest time between two polls. TMDS has a rate limit (40 requests a second steady on
/// EC2, unpublished on Fargate) and refreshes stats no faster than this anyway.
pub const MIN_POLL_INTERVAL_MS: Millis = 1_000;
/// The longest back-off after 429 or 5xx answers, whatever `Retry-After` asks for.
pub const MAX_BACKOFF_MS: Millis = 30_000;
/// How long the last good reading may stand in for a poll skipped by the rate limit or back-off.
pub const MAX_CACHED_AGE_MS: Millis = 30_000;
/// Default time allowed to open a connection to TMDS (a link-local address).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default time allowed for a whole request, body included. The two requests of a poll run
/// concurrently, so a poll never takes longer than this.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_millis(800);

/// A tick that fires a few milliseconds early still counts as a second after the last poll.
const POLL_SLACK_MS: Millis = 50;
/// Memory and pids limits at or above this value mean "no limit".
const NO_LIMIT: u64 = 1 << 62;
const BYTES_PER_MIB: f64 = 1_048_576.0;

/// Why TMDS could not be read or understood. Messages are lower-case and name the cause.
#[derive(Debug, thiserror::Error)]
pub enum TmdsError {
    #[error("invalid base url {url:?}: {reason}")]
    InvalidBaseUrl { url: String, reason: String },
    #[error("build http client: {0}")]
    Client(String),
    #[error("get {path}: timed out after {after_ms} ms")]
    Timeout { path: &'static str, after_ms: u128 },
    #[error("get {path}: {cause}")]
    Transport { path: &'static str, cause: String },
    #[error("get {path}: http status {status}")]
    Status {
        path: &'static str,
        status: u16,
        /// The `Retry-After` header in seconds, when the answer carried one.
        retry_after_secs: Option<u64>,
    },
    #[error("get {path}: body larger than {limit} bytes")]
    TooLarge { path: &'static str, limit: usize },
    #[error("parse {path}: {source}")]
    Json {
        path: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("parse {path}: expected a json object")]
    NotAnObject { path: &'static str },
}

impl TmdsError {
    /// Whether TMDS asked us to slow down (429) or is struggling (5xx): the client backs off.
    pub fn is_throttle(&self) -> bool {
        matches!(self, TmdsError::Status { status, .. } if *status == 429 || (500..600).contains(status))
    }
}

impl From<TmdsError> for SourceError {
    fn from(err: TmdsError) -> Self {
        SourceError::new(Source::Tmds, err.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// JSON types. Private: nothing outside this module sees a TMDS field name.
// ---------------------------------------------------------------------------------------------

/// A JSON number as TMDS sent it; anything that is not a number reads as `Absent`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Num {
    #[default]
    Absent,
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Num {
    /// The value as a count. Negative or non-finite values are absent; floats are truncated.
    fn as_u64(self) -> Option<u64> {
        match self {
            Num::Unsigned(v) => Some(v),
            Num::Signed(v) => u64::try_from(v).ok(),
            Num::Float(v) if v.is_finite() && v >= 0.0 => Some(v as u64),
            _ => None,
        }
    }

    /// The value as a signed integer; floats count only when they hold a whole number in range.
    fn as_i64(self) -> Option<i64> {
        match self {
            Num::Unsigned(v) => i64::try_from(v).ok(),
            Num::Signed(v) => Some(v),
            Num::Float(v) if v.fract() == 0.0 && v >= i64::MIN as f64 && v < i64::MAX as f64 => {
                Some(v as i64)
            }
            _ => None,
        }
    }

    fn as_f64(self) -> Option<f64> {
        match self {
            Num::Unsigned(v) => Some(v as f64),
            Num::Signed(v) => Some(v as f64),
            Num::Float(v) if v.is_finite() => Some(v),
            _ => None,
        }
    }
}

/// A JSON string as TMDS sent it; integers are kept as their decimal text, anything else is
/// absent.
#[derive(Debug, Clone, Default, PartialEq)]
struct Text(Option<String>);

impl Text {
    fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn to_owned_or_empty(&self) -> String {
        self.0.clone().unwrap_or_default()
    }
}

/// What a leaf field turned out to hold: the one visitor behind both [`Num`] and [`Text`].
enum Leaf {
    Num(Num),
    Text(String),
    Other,
}

struct LeafVisitor;

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Leaf;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_u64<E>(self, v: u64) -> Result<Leaf, E> {
        Ok(Leaf::Num(Num::Unsigned(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Leaf, E> {
        Ok(Leaf::Num(Num::Signed(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Leaf, E> {
        Ok(Leaf::Num(Num::Float(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Leaf, E> {
        Ok(Leaf::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Leaf, E> {
        Ok(Leaf::Text(v))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Leaf, E> {
        Ok(Leaf::Other)
    }

    fn visit_unit<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Other)
    }

    fn visit_none<E>(self) -> Result<Leaf, E> {
        Ok(Leaf::Other)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Leaf, D::Error> {
        d.deserialize_any(LeafVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Leaf, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Leaf, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match d.deserialize_any(LeafVisitor)? {
            Leaf::Num(n) => n,
            Leaf::Text(_) | Leaf::Other => Num::Absent,
        })
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Text(match d.deserialize_any(LeafVisitor)? {
            Leaf::Text(s) => Some(s),
            Leaf::Num(Num::Unsigned(v)) => Some(v.to_string()),
            Leaf::Num(Num::Signed(v)) => Some(v.to_string()),
            Leaf::Num(_) | Leaf::Other => None,
        }))
    }
}

/// An object-valued field that reads as `None` when it is `null` or has the wrong shape, so
/// one odd field never costs the whole document.
#[derive(Debug)]
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Lenient(T::deserialize(value).ok()))
    }
}

impl<T> Lenient<T> {
    fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawTask {
    cluster: Text,
    #[serde(rename = "TaskARN")]
    task_arn: Text,
    family: Text,
    revision: Text,
    known_status: Text,
    launch_type: Text,
    availability_zone: Text,
    limits: Lenient<RawLimits>,
    containers: Lenient<Vec<Lenient<RawContainer>>>,
    ephemeral_storage_metrics: Lenient<RawEphemeralStorage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLimits {
    /// vCPUs on the task; CPU units (1024 per vCPU) on a container.
    #[serde(rename = "CPU")]
    cpu: Num,
    /// MiB.
    #[serde(rename = "Memory")]
    memory: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawContainer {
    docker_id: Text,
    name: Text,
    image: Text,
    known_status: Text,
    #[serde(rename = "Type")]
    kind: Text,
    restart_count: Num,
    exit_code: Num,
    health: Lenient<RawHealth>,
    networks: Lenient<Vec<Lenient<RawContainerNetwork>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawHealth {
    status: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawContainerNetwork {
    network_mode: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawEphemeralStorage {
    /// MiB.
    utilized: Num,
    /// MiB.
    reserved: Num,
}

/// One container's value in `/task/stats` (Docker's stats format).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawStats {
    read: Text,
    preread: Text,
    cpu_stats: Lenient<RawCpu>,
    precpu_stats: Lenient<RawCpu>,
    memory_stats: Lenient<RawMemory>,
    pids_stats: Lenient<RawPids>,
    networks: Lenient<BTreeMap<String, Lenient<RawInterface>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCpu {
    cpu_usage: Lenient<RawCpuUsage>,
    online_cpus: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCpuUsage {
    /// Nanoseconds.
    total_usage: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMemory {
    usage: Num,
    limit: Num,
    stats: Lenient<RawMemoryDetail>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMemoryDetail {
    /// cgroup v1 page cache.
    cache: Num,
    /// cgroup v2 page cache.
    file: Num,
    /// cgroup v1 (this cgroup only) and v2.
    inactive_file: Num,
    /// cgroup v1, hierarchical: preferred when present.
    total_inactive_file: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPids {
    current: Num,
    limit: Num,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawInterface {
    rx_bytes: Num,
    rx_packets: Num,
    rx_errors: Num,
    rx_dropped: Num,
    tx_bytes: Num,
    tx_packets: Num,
    tx_errors: Num,
    tx_dropped: Num,
}

// ---------------------------------------------------------------------------------------------
// Pure conversion.
// ---------------------------------------------------------------------------------------------

/// A parsed `/task` document. Opaque: read it through [`to_reading`].
#[derive(Debug)]
pub struct TaskMeta(RawTask);

/// A parsed `/task/stats` document, keyed by `DockerId`. Opaque: read it through [`to_reading`].
#[derive(Debug, Default)]
pub struct StatsMap(HashMap<String, Lenient<RawStats>>);

/// Parses a `/task` body. Fails only when the body is not a JSON object.
pub fn parse_task(body: &[u8]) -> Result<TaskMeta, TmdsError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|source| TmdsError::Json { path: TASK_PATH, source })?;
    if !value.is_object() {
        return Err(TmdsError::NotAnObject { path: TASK_PATH });
    }
    let raw = RawTask::deserialize(value).map_err(|source| TmdsError::Json { path: TASK_PATH, source })?;
    Ok(TaskMeta(raw))
}

/// Parses a `/task/stats` body. A body of `null` is an empty map; a container whose value is
/// `null`, `{}` or malformed is kept with no stats.
pub fn parse_stats(body: &[u8]) -> Result<StatsMap, TmdsError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|source| TmdsError::Json { path: STATS_PATH, source })?;
    match value {
        serde_json::Value::Null => Ok(StatsMap::default()),
        serde_json::Value::Object(_) => {
            let map = HashMap::<String, Lenient<RawStats>>::deserialize(value)
                .map_err(|source| TmdsError::Json { path: STATS_PATH, source })?;
            Ok(StatsMap(map))
        }
        _ => Err(TmdsError::NotAnObject { path: STATS_PATH }),
    }
}

/// What a container's stats need to know about its task.
#[derive(Debug, Clone, Copy, Default)]
struct TaskLimits {
    /// `Limits.CPU` when positive.
    vcpus: Option<f64>,
    /// `Limits.Memory` in bytes when positive.
    memory_bytes: Option<u64>,
}

/// Converts one poll into a [`TaskReading`]. `stats` is `None` when `/task/stats` could not be
/// read: the task is still described, with every container's `stats` set to `None`. `previous`
/// is the last reading returned, used only to recognise a repeated stats sample.
pub fn to_reading(task: &TaskMeta, stats: Option<&StatsMap>, previous: Option<&TaskReading>) -> TaskReading {
    let raw = &task.0;
    let task_limits = raw.limits.get();
    let limits = TaskLimits {
        vcpus: task_limits.and_then(|l| l.cpu.as_f64()).filter(|v| *v > 0.0),
        memory_bytes: task_limits
            .and_then(|l| l.memory.as_f64())
            .filter(|v| *v > 0.0)
            .map(|mib| (mib * BYTES_PER_MIB).round() as u64),
    };

    let kept: Vec<&RawContainer> = raw
        .containers
        .get()
        .into_iter()
        .flatten()
        .filter_map(Lenient::get)
        .filter(|c| matches!(c.kind.as_str(), None | Some("NORMAL")))
        .collect();

    let containers: Vec<ContainerReading> = kept
        .iter()
        .map(|c| {
            let raw_stats = c.docker_id.as_str().and_then(|id| stats?.0.get(id)).and_then(Lenient::get);
            container_reading(c, raw_stats, limits)
        })
        .collect();

    // In bridge mode every container has its own network namespace, so the task's traffic is
    // the sum of its containers'. In awsvpc mode (always on Fargate) and host mode they share
    // one, and each container reports the same task-wide counters: take the freshest sample.
    let bridge = kept.iter().any(|c| {
        c.networks
            .get()
            .into_iter()
            .flatten()
            .filter_map(Lenient::get)
            .any(|n| n.network_mode.as_str() == Some("bridge"))
    });
    let sampled = containers.iter().filter_map(|c| c.stats.as_ref());
    let network = if bridge {
        sampled.filter_map(|s| s.network).reduce(|a, b| add_counters(&a, &b))
    } else {
        sampled.filter(|s| s.network.is_some()).max_by_key(|s| s.read_unix_nanos).and_then(|s| s.network)
    };

    let ephemeral_storage = raw.ephemeral_storage_metrics.get().and_then(|e| {
        Some(EphemeralStorage {
            utilized_bytes: mib_to_bytes(e.utilized)?,
            reserved_bytes: mib_to_bytes(e.reserved)?,
        })
    });

    let stats_stale = previous.is_some_and(|prev| same_sample(&containers, prev));

    TaskReading {
        task_arn: raw.task_arn.to_owned_or_empty(),
        cluster: raw.cluster.to_owned_or_empty(),
        family: raw.family.to_owned_or_empty(),
        revision: raw.revision.to_owned_or_empty(),
        launch_type: raw.launch_type.to_owned_or_empty(),
        availability_zone: raw.availability_zone.to_owned_or_empty(),
        known_status: raw.known_status.to_owned_or_empty(),
        cpu_limit_vcpus: limits.vcpus,
        memory_limit_bytes: limits.memory_bytes,
        containers,
        network,
        ephemeral_storage,
        stats_stale,
    }
}

/// True when at least one container has stats and every container with stats shows the same
/// `read` stamp as in `previous`: TMDS served its cached sample again.
fn same_sample(containers: &[ContainerReading], previous: &TaskReading) -> bool {
    let mut any = false;
    for container in containers {
        let Some(stats) = &container.stats else {
            continue;
        };
        any = true;
        let before = previous
            .containers
            .iter()
            .find(|p| p.docker_id == container.docker_id)
            .and_then(|p| p.stats.as_ref());
        if before.map(|b| b.read_unix_nanos) != Some(stats.read_unix_nanos) {
            return false;
        }
    }
    any
}

fn container_reading(raw: &RawContainer, stats: Option<&RawStats>, limits: TaskLimits) -> ContainerReading {
    ContainerReading {
        name: raw.name.to_owned_or_empty(),
        docker_id: raw.docker_id.to_owned_or_empty(),
        image: raw.image.to_owned_or_empty(),
        known_status: raw.known_status.to_owned_or_empty(),
        restart_count: raw.restart_count.as_u64().and_then(|v| u32::try_from(v).ok()),
        health: raw.health.get().and_then(|h| match h.status.as_str() {
            Some("HEALTHY") => Some(ContainerHealth::Healthy),
            Some("UNHEALTHY") => Some(ContainerHealth::Unhealthy),
            _ => None,
        }),
        exit_code: raw.exit_code.as_i64().and_then(|v| i32::try_from(v).ok()),
        stats: stats.and_then(|s| container_stats(s, limits)),
    }
}

/// Converts one container's stats; `None` when the sample has no usable `read` stamp, which
/// is how `{}` and never-sampled containers look.
fn container_stats(raw: &RawStats, limits: TaskLimits) -> Option<ContainerStats> {
    let read = parse_rfc3339_nanos(raw.read.as_str()?)?;
    let preread = raw.preread.as_str().and_then(parse_rfc3339_nanos);

    let memory = raw.memory_stats.get();
    let detail = memory.and_then(|m| m.stats.get());
    let usage = memory.and_then(|m| m.usage.as_u64());
    let inactive_file =
        detail.and_then(|d| d.total_inactive_file.as_u64().or_else(|| d.inactive_file.as_u64()));
    let container_limit = memory.and_then(|m| m.limit.as_u64()).filter(|l| *l > 0 && *l < NO_LIMIT);
    let memory_limit_bytes = match (container_limit, limits.memory_bytes) {
        (Some(own), Some(task)) => Some(own.min(task)),
        (own, task) => own.or(task),
    };

    let cpu = raw.cpu_stats.get();
    let total_usage = cpu.and_then(|c| c.cpu_usage.get()).and_then(|u| u.total_usage.as_u64());
    let previous_usage =
        raw.precpu_stats.get().and_then(|c| c.cpu_usage.get()).and_then(|u| u.total_usage.as_u64());
    // Normalise by the task's vCPU limit. A task without one (EC2 without task-level CPU, or
    // `"CPU": 0` on managed instances) has no CPU ceiling but the host's: its containers may
    // use every CPU they can run on, which is what `online_cpus` counts. Container CPU units
    // are only a relative share under contention, not a ceiling, so they are not used. On
    // Fargate `online_cpus` overstates the task (2 for 0.25 vCPU), but Fargate always sets
    // `Limits.CPU`.
    let vcpus = limits.vcpus.or_else(|| cpu.and_then(|c| c.online_cpus.as_f64()).filter(|v| *v > 0.0));
    let cpu_fraction_of_task = cpu_fraction(total_usage, previous_usage, read, preread, vcpus);

    let pids = raw.pids_stats.get();

    let network = raw.networks.get().and_then(|interfaces| {
        interfaces
            .values()
            .filter_map(Lenient::get)
            .map(interface_counters)
            .reduce(|a, b| add_counters(&a, &b))
    });

    Some(ContainerStats {
        read_unix_nanos: read,
        preread_unix_nanos: preread,
        memory_usage_bytes: usage,
        memory_limit_bytes,
        memory_working_set_bytes: usage.zip(inactive_file).map(|(u, i)| u.saturating_sub(i)),
        memory_page_cache_bytes: detail.and_then(|d| d.cache.as_u64().or_else(|| d.file.as_u64())),
        cpu_usage_seconds: total_usage.map(|ns| ns as f64 / 1e9),
        cpu_fraction_of_task,
        pids_current: pids.and_then(|p| p.current.as_u64()),
        // Docker reports 0 for "no pids limit".
        pids_limit: pids.and_then(|p| p.limit.as_u64()).filter(|l| *l > 0 && *l < NO_LIMIT),
        network,
    })
}

/// CPU used between `preread` and `read` as a fraction of `vcpus`. `None` without a previous
/// sample (no `preread`, or a zero previous usage, which TMDS sends for "none yet"), when the
/// counter went backwards, or when no CPU count is known.
fn cpu_fraction(
    total_usage_ns: Option<u64>,
    previous_usage_ns: Option<u64>,
    read_ns: i64,
    preread_ns: Option<i64>,
    vcpus: Option<f64>,
) -> Option<f64> {
    let previous = previous_usage_ns.filter(|v| *v > 0)?;
    let used_ns = total_usage_ns?.checked_sub(previous)?;
    let elapsed_ns = read_ns.checked_sub(preread_ns?).filter(|e| *e > 0)?;
    Some(used_ns as f64 / (elapsed_ns as f64 * vcpus?))
}

fn interface_counters(raw: &RawInterface) -> NetworkCounters {
    let count = |n: Num| n.as_u64().unwrap_or(0);
    NetworkCounters {
        rx_bytes: count(raw.rx_bytes),
        rx_packets: count(raw.rx_packets),
        rx_errors: count(raw.rx_errors),
        rx_dropped: count(raw.rx_dropped),
        tx_bytes: count(raw.tx_bytes),
        tx_packets: count(raw.tx_packets),
        tx_errors: count(raw.tx_errors),
        tx_dropped: count(raw.tx_dropped),
    }
}

fn add_counters(a: &NetworkCounters, b: &NetworkCounters) -> NetworkCounters {
    NetworkCounters {
        rx_bytes: a.rx_bytes.saturating_add(b.rx_bytes),
        rx_packets: a.rx_packets.saturating_add(b.rx_packets),
        rx_errors: a.rx_errors.saturating_add(b.rx_errors),
        rx_dropped: a.rx_dropped.saturating_add(b.rx_dropped),
        tx_bytes: a.tx_bytes.saturating_add(b.tx_bytes),
        tx_packets: a.tx_packets.saturating_add(b.tx_packets),
        tx_errors: a.tx_errors.saturating_add(b.tx_errors),
        tx_dropped: a.tx_dropped.saturating_add(b.tx_dropped),
    }
}

fn mib_to_bytes(mib: Num) -> Option<u64> {
    mib.as_f64().filter(|v| *v >= 0.0).map(|v| (v * BYTES_PER_MIB).round() as u64)
}

// ---------------------------------------------------------------------------------------------
// When to poll: pure, time comes in as an argument.
// ---------------------------------------------------------------------------------------------

/// The rate limit and the back-off after 429 and 5xx answers.
#[derive(Debug, Clone, Default)]
struct Schedule {
    last_attempt: Option<Millis>,
    /// No attempt before this instant (back-off).
    not_before: Millis,
    /// Throttled polls in a row.
    throttled: u32,
}

impl Schedule {
    fn due(&self, now: Millis) -> bool {
        now >= self.not_before
            && self
                .last_attempt
                .is_none_or(|last| now.saturating_sub(last) + POLL_SLACK_MS >= MIN_POLL_INTERVAL_MS)
    }

    fn attempted(&mut self, now: Millis) {
        self.last_attempt = Some(now);
    }

    /// Backs off for `Retry-After` when TMDS sent one, else for 2, 4, 8, 16, then 30 seconds;
    /// never longer than [`MAX_BACKOFF_MS`], never shorter than the rate limit.
    fn throttle(&mut self, now: Millis, retry_after_secs: Option<u64>) {
        self.throttled = self.throttled.saturating_add(1);
        let delay = match retry_after_secs {
            Some(secs) => secs.saturating_mul(1000),
            None => 1000u64 << self.throttled.min(5),
        };
        self.not_before = now.saturating_add(delay.clamp(MIN_POLL_INTERVAL_MS, MAX_BACKOFF_MS));
    }

    fn succeeded(&mut self) {
        self.throttled = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// The client: the only part that does I/O.
// ---------------------------------------------------------------------------------------------

/// Polls TMDS v4 over plain HTTP. One per agent; call [`TmdsClient::poll`] once per tick.
#[derive(Debug)]
pub struct TmdsClient {
    http: reqwest::Client,
    task_url: String,
    stats_url: String,
    connect_timeout: Duration,
    total_timeout: Duration,
    schedule: Schedule,
    /// The last reading returned from a completed poll, and when it was fetched.
    last: Option<(Millis, TaskReading)>,
}

impl TmdsClient {
    /// A client for the base URL found in `ECS_CONTAINER_METADATA_URI_V4`, with the default
    /// timeouts.
    pub fn new(base_url: &str) -> Result<Self, TmdsError> {
        Self::with_timeouts(base_url, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TOTAL_TIMEOUT)
    }

    /// A client with explicit timeouts: `connect` for opening a connection, `total` for a
    /// whole request including its body.
    pub fn with_timeouts(base_url: &str, connect: Duration, total: Duration) -> Result<Self, TmdsError> {
        // The base URL is opaque: only check that it is an absolute plain-HTTP URL, then append
        // the documented paths to it.
        let invalid = |reason: String| TmdsError::InvalidBaseUrl { url: base_url.to_owned(), reason };
        let parsed = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(invalid("only plain http is supported".to_owned()));
        }
        let base = base_url.trim_end_matches('/');

        let options = ClientOptions { connect_timeout: connect, timeout: total, idle_per_host: 2 };
        let http = http::client(options).map_err(|e| TmdsError::Client(error_cause(&e)))?;

        Ok(TmdsClient {
            http,
            task_url: format!("{base}{TASK_PATH}"),
            stats_url: format!("{base}{STATS_PATH}"),
            connect_timeout: connect,
            total_timeout: total,
            schedule: Schedule::default(),
            last: None,
        })
    }

    /// Reads the task once, if the rate limit and back-off allow it at `now`.
    ///
    /// - A poll that ran and read `/task` returns a fresh reading. If `/task/stats` failed, the
    ///   reading has every container's `stats` set to `None`.
    /// - A poll that ran and could not read `/task` returns `None`.
    /// - A poll skipped by the rate limit or back-off returns the last reading marked
    ///   `stats_stale`, while it is at most [`MAX_CACHED_AGE_MS`] old; else `None`.
    ///
    /// Every failure is pushed to `errors` as a [`Source::Tmds`] error; none is returned.
    pub async fn poll(&mut self, now: Millis, errors: &mut Vec<SourceError>) -> Option<TaskReading> {
        if !self.schedule.due(now) {
            return self.cached(now);
        }
        self.schedule.attempted(now);

        let (task, stats) =
            tokio::join!(self.get(&self.task_url, TASK_PATH), self.get(&self.stats_url, STATS_PATH));
        let task = task.and_then(|body| parse_task(&body));
        let stats = stats.and_then(|body| parse_stats(&body));

        let failures = [task.as_ref().err(), stats.as_ref().err()];
        let mut throttled = false;
        let mut retry_after = None;
        for err in failures.into_iter().flatten().filter(|e| e.is_throttle()) {
            throttled = true;
            if let TmdsError::Status { retry_after_secs: Some(secs), .. } = err {
                retry_after = retry_after.max(Some(*secs));
            }
        }
        if throttled {
            self.schedule.throttle(now, retry_after);
        } else {
            self.schedule.succeeded();
        }

        let task = match task {
            Ok(task) => Some(task),
            Err(err) => {
                errors.push(err.into());
                None
            }
        };
        let stats = match stats {
            Ok(stats) => Some(stats),
            Err(err) => {
                errors.push(err.into());
                None
            }
        };
        let task = task?;
        let reading = to_reading(&task, stats.as_ref(), self.last.as_ref().map(|(_, r)| r));
        self.last = Some((now, reading.clone()));
        Some(reading)
    }

    fn cached(&self, now: Millis) -> Option<TaskReading> {
        let (fetched_at, reading) = self.last.as_ref()?;
        if now.saturating_sub(*fetched_at) > MAX_CACHED_AGE_MS {
            return None;
        }
        let mut reading = reading.clone();
        reading.stats_stale = true;
        Some(reading)
    }

    /// One GET, with the body read chunk by chunk and abandoned past [`MAX_BODY_BYTES`].
    async fn get(&self, url: &str, path: &'static str) -> Result<Vec<u8>, TmdsError> {
        let mut response = self.http.get(url).send().await.map_err(|e| self.transport_error(path, &e))?;

        let status = response.status();
        if !status.is_success() {
            let retry_after_secs = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            return Err(TmdsError::Status { path, status: status.as_u16(), retry_after_secs });
        }

        let too_large = TmdsError::TooLarge { path, limit: MAX_BODY_BYTES };
        let announced = response.content_length().unwrap_or(0);
        if announced > MAX_BODY_BYTES as u64 {
            return Err(too_large);
        }
        let mut body = Vec::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(path, &e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, path: &'static str, err: &reqwest::Error) -> TmdsError {
        if err.is_timeout() {
            let limit = if err.is_connect() { self.connect_timeout } else { self.total_timeout };
            return TmdsError::Timeout { path, after_ms: limit.as_millis() };
        }
        TmdsError::Transport { path, cause: error_cause(err) }
    }
}

/// The innermost cause of an error, lower-cased at the start (`connection refused (os error
/// 111)`): the outer layers of an HTTP client error only repeat the URL.
fn error_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in `tests/fixtures/tmds/` and the parser that reads it. The test
    /// `every_fixture_is_listed_and_parses` fails when a file is added without a line here.
    const FIXTURES: &[(&str, Shape)] = &[
        ("datadog-fixture-task-with-tags-health.json", Shape::Task),
        ("ec2-awsvpc-task-real-2025-04.json", Shape::Task),
        ("ec2-awsvpc-task-stats-real-2025-04.json", Shape::TaskStats),
        ("ec2-bridge-task-real-2025-02.json", Shape::Task),
        ("ec2-bridge-task-stats-real-2025-02.json", Shape::TaskStats),
        ("ec2-container-awsvpc-docs.json", Shape::Container),
        ("ec2-container-stats-bridge-docs.json", Shape::ContainerStats),
        ("ec2-task-awsvpc-docs.json", Shape::Task),
        ("ec2-task-stats-docs.json", Shape::TaskStats),
        ("ec2-task-with-tags-docs.json", Shape::Task),
        ("ec2-task-with-tags-errors-docs.json", Shape::Task),
        ("ecs-agent-unittest-container-stats-zero-values.json", Shape::ContainerStats),
        ("ecs-agent-unittest-container.json", Shape::Container),
        ("fargate-container-docs-2020-09.json", Shape::Container),
        ("fargate-container-docs.json", Shape::Container),
        ("fargate-task-docs-2020-09.json", Shape::Task),
        ("fargate-task-docs-2021.json", Shape::Task),
        ("fargate-task-docs.json", Shape::Task),
        ("fargate-task-real-2025-02.json", Shape::Task),
        ("fargate-task-real-2025-04.json", Shape::Task),
        ("fargate-task-stats-docs-2020-09.json", Shape::TaskStats),
        ("fargate-task-stats-docs.json", Shape::TaskStats),
        ("fargate-task-stats-real-2025-02.json", Shape::TaskStats),
        ("fargate-task-stats-real-2025-04.json", Shape::TaskStats),
        ("managed-instances-task-real-2026-09.json", Shape::Task),
        ("managed-instances-task-stats-real-2026-09.json", Shape::TaskStats),
        ("synthetic-task-restart-count.json", Shape::Task),
        ("synthetic-task-stats-restart-count.json", Shape::TaskStats),
    ];

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Shape {
        /// `${URI}/task`.
        Task,
        /// `${URI}/task/stats`.
        TaskStats,
        /// `${URI}`: one container, the same shape as an element of `Containers`.
        Container,
        /// `${URI}/stats`: one value of the `/task/stats` map.
        ContainerStats,
    }

    const MIB: u64 = 1_048_576;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/tmds/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("read fixture {name}: {e}"))
    }

    fn reading(task: &str, stats: Option<&str>) -> TaskReading {
        let task = parse_task(&fixture(task)).expect("task fixture parses");
        let stats = stats.map(|s| parse_stats(&fixture(s)).expect("stats fixture parses"));
        to_reading(&task, stats.as_ref(), None)
    }

    fn container<'a>(reading: &'a TaskReading, name: &str) -> &'a ContainerReading {
        reading.containers.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no container {name}"))
    }

    fn stats<'a>(reading: &'a TaskReading, name: &str) -> &'a ContainerStats {
        container(reading, name).stats.as_ref().unwrap_or_else(|| panic!("no stats for {name}"))
    }

    fn names(reading: &TaskReading) -> Vec<&str> {
        reading.containers.iter().map(|c| c.name.as_str()).collect()
    }

    /// Converts one entry of a stats fixture on its own, for the documentation examples whose
    /// stats keys do not match the `DockerId`s of the task example next to them.
    fn entry_stats(file: &str, docker_id: &str, limits: TaskLimits) -> Option<ContainerStats> {
        let map = parse_stats(&fixture(file)).expect("stats fixture parses");
        let raw = map.0.get(docker_id).expect("docker id in fixture");
        container_stats(raw.get()?, limits)
    }

    fn single_stats(file: &str) -> RawStats {
        serde_json::from_slice(&fixture(file)).expect("container stats fixture parses")
    }

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a value");
        assert!((actual - expected).abs() <= expected.abs() * 1e-12, "{actual} != {expected}");
    }

    fn fargate_limits() -> TaskLimits {
        TaskLimits { vcpus: Some(0.25), memory_bytes: Some(512 * MIB) }
    }

    #[test]
    fn every_fixture_is_listed_and_parses() {
        let dir = format!("{}/tests/fixtures/tmds", env!("CARGO_MANIFEST_DIR"));
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("fixture folder")
            .map(|e| e.expect("dir entry").file_name().into_string().expect("utf-8 name"))
            .filter(|n| n.ends_with(".json"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);

        for (name, shape) in FIXTURES {
            let body = fixture(name);
            match shape {
                Shape::Task => {
                    let reading = to_reading(&parse_task(&body).expect(name), None, None);
                    assert!(!reading.task_arn.is_empty(), "{name}");
                    assert!(!reading.containers.is_empty(), "{name}");
                }
                Shape::TaskStats => {
                    assert!(!parse_stats(&body).expect(name).0.is_empty(), "{name}");
                }
                Shape::Container => {
                    let raw: RawContainer = serde_json::from_slice(&body).expect(name);
                    assert!(raw.docker_id.as_str().is_some(), "{name}");
                }
                Shape::ContainerStats => {
                    let raw: RawStats = serde_json::from_slice(&body).expect(name);
                    assert!(raw.read.as_str().is_some(), "{name}");
                }
            }
        }
    }

    #[test]
    fn fargate_real_2025_02() {
        let r = reading("fargate-task-real-2025-02.json", Some("fargate-task-stats-real-2025-02.json"));
        assert_eq!(
            r.task_arn,
            "arn:aws:ecs:us-east-1:829490980523:task/prom-ecs-exporter-sandbox/bae32def0ab64f06818e8862e58f8d6d"
        );
        assert_eq!(r.cluster, "arn:aws:ecs:us-east-1:829490980523:cluster/prom-ecs-exporter-sandbox");
        assert_eq!(r.family, "prom-ecs-exporter-sandbox-main-fargate");
        assert_eq!(r.revision, "9");
        assert_eq!(r.launch_type, "FARGATE");
        assert_eq!(r.availability_zone, "us-east-1a");
        assert_eq!(r.known_status, "RUNNING");
        assert_eq!(r.cpu_limit_vcpus, Some(0.25));
        assert_eq!(r.memory_limit_bytes, Some(536_870_912));
        assert_eq!(names(&r), ["nonessential", "prometheus", "ecs-exporter"]);
        assert!(!r.stats_stale);

        // The stopped container's stats are `null` on Fargate.
        let stopped = container(&r, "nonessential");
        assert_eq!(stopped.known_status, "STOPPED");
        assert_eq!(stopped.exit_code, Some(0));
        assert_eq!(stopped.stats, None);
        assert_eq!(stopped.restart_count, None);
        assert_eq!(stopped.health, None);

        let prometheus = container(&r, "prometheus");
        assert_eq!(prometheus.docker_id, "bae32def0ab64f06818e8862e58f8d6d-1819985369");
        assert_eq!(prometheus.image, "prom/prometheus:v3.1.0");
        assert_eq!(prometheus.exit_code, None);
        let s = stats(&r, "prometheus");
        assert_eq!(s.read_unix_nanos, 1_740_633_769_186_680_233);
        assert_eq!(s.preread_unix_nanos, Some(1_740_633_759_185_738_849));
        assert_eq!(s.memory_usage_bytes, Some(127_934_464));
        // cgroup v1: 127934464 - total_inactive_file 52383744.
        assert_eq!(s.memory_working_set_bytes, Some(75_550_720));
        assert_eq!(s.memory_page_cache_bytes, Some(85_426_176));
        // The container reports 9223372036854771712: the task's 512 MiB applies.
        assert_eq!(s.memory_limit_bytes, Some(536_870_912));
        assert_close(s.cpu_usage_seconds, 0.932_439_492);
        // (932439492 - 925246189) ns over 10000941384 ns of a 0.25 vCPU task.
        assert_close(s.cpu_fraction_of_task, 0.002_877_050_359_082_476_3);
        assert_eq!(s.pids_current, None);
        assert_eq!(s.pids_limit, None);
        assert_eq!(
            s.network,
            Some(NetworkCounters {
                rx_bytes: 129_045_374,
                rx_packets: 88_933,
                rx_errors: 0,
                rx_dropped: 0,
                tx_bytes: 347_839,
                tx_packets: 3_501,
                tx_errors: 0,
                tx_dropped: 0,
            })
        );

        let exporter = stats(&r, "ecs-exporter");
        assert_eq!(exporter.memory_working_set_bytes, Some(84_111_360 - 39_100_416));
        assert_close(exporter.cpu_fraction_of_task, 0.031_945_965_250_370_04);

        // awsvpc: the task's counters are the freshest container's (ecs-exporter, read 0.2 s
        // after prometheus), not a sum.
        assert_eq!(
            r.network,
            Some(NetworkCounters {
                rx_bytes: 129_046_293,
                rx_packets: 88_938,
                rx_errors: 0,
                rx_dropped: 0,
                tx_bytes: 348_223,
                tx_packets: 3_507,
                tx_errors: 0,
                tx_dropped: 0,
            })
        );
        assert_eq!(
            r.ephemeral_storage,
            Some(EphemeralStorage { utilized_bytes: 427 * MIB, reserved_bytes: 20_496 * MIB })
        );
    }

    #[test]
    fn fargate_real_2025_04() {
        let r = reading("fargate-task-real-2025-04.json", Some("fargate-task-stats-real-2025-04.json"));
        assert_eq!(names(&r), ["ecs-exporter", "main", "nonessential"]);
        assert_eq!(r.cpu_limit_vcpus, Some(0.25));
        assert_eq!(r.memory_limit_bytes, Some(512 * MIB));

        // A container with its own memory limit keeps it.
        let exporter = stats(&r, "ecs-exporter");
        assert_eq!(exporter.memory_limit_bytes, Some(134_217_728));
        assert_eq!(exporter.memory_working_set_bytes, Some(39_665_664));
        assert_eq!(exporter.memory_page_cache_bytes, Some(11_218_944));
        assert_close(exporter.cpu_fraction_of_task, 0.015_929_618_050_405_284);

        // One without falls back to the task's; an idle one used exactly no CPU.
        let main = stats(&r, "main");
        assert_eq!(main.memory_limit_bytes, Some(512 * MIB));
        assert_eq!(main.memory_working_set_bytes, Some(23_994_368));
        assert_eq!(main.cpu_fraction_of_task, Some(0.0));

        assert_eq!(container(&r, "nonessential").stats, None);
        assert_eq!(container(&r, "nonessential").exit_code, Some(0));
        assert_eq!(r.network.map(|n| n.rx_bytes), Some(12_906_990));
        assert_eq!(r.ephemeral_storage.map(|e| e.utilized_bytes), Some(40 * MIB));
    }

    #[test]
    fn ec2_bridge_real_2025_02() {
        let r = reading("ec2-bridge-task-real-2025-02.json", Some("ec2-bridge-task-stats-real-2025-02.json"));
        assert_eq!(r.cluster, "prom-ecs-exporter-sandbox");
        assert_eq!(r.launch_type, "EC2");
        // No task-level limits at all.
        assert_eq!(r.cpu_limit_vcpus, None);
        assert_eq!(r.memory_limit_bytes, None);
        assert_eq!(r.ephemeral_storage, None);
        assert_eq!(names(&r), ["nonessential", "ecs-exporter", "prometheus"]);

        // The stopped container's stats are `{}` on EC2.
        assert_eq!(container(&r, "nonessential").stats, None);

        let exporter = stats(&r, "ecs-exporter");
        // cgroup v2: 65249280 - inactive_file 17641472; page cache is `file`.
        assert_eq!(exporter.memory_working_set_bytes, Some(47_607_808));
        assert_eq!(exporter.memory_page_cache_bytes, Some(25_296_896));
        assert_eq!(exporter.memory_limit_bytes, Some(268_435_456));
        assert_eq!(exporter.pids_current, Some(33));
        assert_eq!(exporter.pids_limit, Some(404));
        // No task CPU limit: normalised by online_cpus (2).
        assert_close(exporter.cpu_fraction_of_task, 0.002_572_702_055_670_978);
        assert_eq!(stats(&r, "prometheus").cpu_fraction_of_task, Some(0.0));
        assert_eq!(stats(&r, "prometheus").memory_working_set_bytes, Some(49_934_336));

        // Bridge mode: one namespace per container, so the task's traffic is their sum.
        assert_eq!(
            r.network,
            Some(NetworkCounters {
                rx_bytes: 101_869 + 45_368,
                rx_packets: 284 + 132,
                rx_errors: 0,
                rx_dropped: 0,
                tx_bytes: 43_958 + 13_532,
                tx_packets: 278 + 118,
                tx_errors: 0,
                tx_dropped: 0,
            })
        );
    }

    #[test]
    fn ec2_awsvpc_real_2025_04() {
        let r = reading("ec2-awsvpc-task-real-2025-04.json", Some("ec2-awsvpc-task-stats-real-2025-04.json"));
        // The CNI_PAUSE container is filtered out, though it has stats.
        assert_eq!(names(&r), ["ecs-exporter", "main", "nonessential"]);
        assert_eq!(r.cpu_limit_vcpus, None);
        assert_eq!(r.memory_limit_bytes, Some(256 * MIB));

        let exporter = stats(&r, "ecs-exporter");
        assert_eq!(exporter.memory_limit_bytes, Some(134_217_728));
        assert_eq!(exporter.memory_working_set_bytes, Some(55_615_488));
        assert_close(exporter.cpu_fraction_of_task, 0.011_223_400_788_163_01);

        // `main` reports 439066624 (it has `"Memory": 0`), more than its task's 256 MiB: the
        // task cgroup stops it first.
        let main = stats(&r, "main");
        assert_eq!(main.memory_usage_bytes, Some(26_918_912));
        assert_eq!(main.memory_limit_bytes, Some(256 * MIB));
        assert_eq!(main.memory_working_set_bytes, Some(23_474_176));

        assert_eq!(container(&r, "nonessential").stats, None);
        // Shared namespace: every container reports the same counters; not tripled.
        assert_eq!(r.network.map(|n| n.rx_bytes), Some(44_555));
        assert_eq!(r.network.map(|n| n.tx_packets), Some(444));
    }

    #[test]
    fn managed_instances_real_2026_09() {
        let r = reading(
            "managed-instances-task-real-2026-09.json",
            Some("managed-instances-task-stats-real-2026-09.json"),
        );
        assert_eq!(r.launch_type, "MANAGED_INSTANCES");
        // `"CPU": 0` means no task CPU limit.
        assert_eq!(r.cpu_limit_vcpus, None);
        assert_eq!(r.memory_limit_bytes, Some(256 * MIB));
        assert_eq!(container(&r, "main").health, Some(ContainerHealth::Healthy));
        assert_eq!(container(&r, "ecs-exporter").health, None);
        assert_eq!(container(&r, "nonessential").stats, None);

        let main = stats(&r, "main");
        assert_eq!(main.memory_limit_bytes, Some(100_663_296));
        assert_eq!(main.memory_working_set_bytes, Some(55_701_504));
        assert_eq!(main.memory_page_cache_bytes, Some(59_150_336));
        assert_close(main.cpu_fraction_of_task, 0.002_466_942_662_831_351_6);
        assert_close(stats(&r, "ecs-exporter").cpu_fraction_of_task, 2.764_870_251_551_270_2e-5);
        assert_eq!(r.network.map(|n| n.rx_bytes), Some(33_386));
    }

    #[test]
    fn datadog_fixture_health_and_storage() {
        let r = reading("datadog-fixture-task-with-tags-health.json", None);
        assert_eq!(names(&r), ["log_router", "datadog-agent"]);
        assert_eq!(container(&r, "datadog-agent").health, Some(ContainerHealth::Healthy));
        assert_eq!(container(&r, "log_router").health, None);
        assert_eq!(r.cpu_limit_vcpus, Some(1.0));
        assert_eq!(r.memory_limit_bytes, Some(2048 * MIB));
        assert_eq!(
            r.ephemeral_storage,
            Some(EphemeralStorage { utilized_bytes: 2298 * MIB, reserved_bytes: 20_496 * MIB })
        );
        // Without `/task/stats` the task is still described.
        assert!(r.containers.iter().all(|c| c.stats.is_none()));
        assert_eq!(r.network, None);
        assert!(!r.stats_stale);
    }

    #[test]
    fn documentation_task_examples() {
        struct Case {
            file: &'static str,
            /// The containers kept: those of type NORMAL.
            names: &'static [&'static str],
            cpu: Option<f64>,
            memory_mib: Option<u64>,
            launch_type: &'static str,
        }
        let ec2 = |file| Case { file, names: &["curl"], cpu: None, memory_mib: None, launch_type: "EC2" };
        let fargate = |file, names, launch_type| Case {
            file,
            names,
            cpu: Some(0.25),
            memory_mib: Some(512),
            launch_type,
        };
        let cases = [
            ec2("ec2-task-awsvpc-docs.json"),
            ec2("ec2-task-with-tags-docs.json"),
            ec2("ec2-task-with-tags-errors-docs.json"),
            fargate("fargate-task-docs.json", &["curl-image", "fargate-app"], "FARGATE"),
            // The 2020 example predates `LaunchType`.
            fargate("fargate-task-docs-2020-09.json", &["query-metadata"], ""),
            fargate("fargate-task-docs-2021.json", &["curl"], "FARGATE"),
        ];
        for case in cases {
            let file = case.file;
            let r = reading(file, None);
            assert_eq!(names(&r), case.names, "{file}");
            assert_eq!(r.cpu_limit_vcpus, case.cpu, "{file}");
            assert_eq!(r.memory_limit_bytes, case.memory_mib.map(|m| m * MIB), "{file}");
            assert_eq!(r.launch_type, case.launch_type, "{file}");
            assert_eq!(r.known_status, "RUNNING", "{file}");
            for c in &r.containers {
                assert_eq!(c.restart_count, None, "{file}");
                assert_eq!(c.health, None, "{file}");
            }
        }
        let curl = reading("ec2-task-awsvpc-docs.json", None);
        assert_eq!(
            curl.containers[0].docker_id,
            "ee08638adaaf009d78c248913f629e38299471d45fe7dc944d1039077e3424ca"
        );
        assert_eq!(
            reading("fargate-task-docs.json", None).ephemeral_storage.map(|e| e.utilized_bytes),
            Some(261 * MIB)
        );
    }

    #[test]
    fn documentation_stats_examples() {
        // EC2, cgroup v1, no task limits: the container's own limit, CPU over online_cpus.
        let curl = entry_stats(
            "ec2-task-stats-docs.json",
            "5fc21e5b015f899d22618f8aede80b6d70d71b2a75465ea49d9462c8f3d2d3af",
            TaskLimits::default(),
        )
        .expect("stats");
        assert_eq!(curl.memory_usage_bytes, Some(1_814_528));
        assert_eq!(curl.memory_working_set_bytes, Some(1_814_528));
        assert_eq!(curl.memory_page_cache_bytes, Some(0));
        assert_eq!(curl.memory_limit_bytes, Some(134_217_728));
        assert_eq!(curl.pids_current, Some(3));
        assert_eq!(curl.pids_limit, None);
        assert_close(curl.cpu_fraction_of_task, 0.000_124_970_362_794_814_47);

        // Fargate: the limit literal 9223372036854772000 also means "none".
        let fargate = entry_stats(
            "fargate-task-stats-docs.json",
            "3d1f891cded94dc795608466cce8ddcf-464223573",
            fargate_limits(),
        )
        .expect("stats");
        assert_eq!(fargate.memory_limit_bytes, Some(512 * MIB));
        assert_eq!(fargate.memory_working_set_bytes, Some(6_504_448 - 3_088_384));
        assert_eq!(fargate.memory_page_cache_bytes, Some(651_264));
        assert_close(fargate.cpu_fraction_of_task, 0.000_426_748_267_393_756_6);
        assert_eq!(fargate.network.map(|n| n.rx_bytes), Some(2_398_415_937));
        assert_eq!(fargate.network.map(|n| n.tx_bytes), Some(1_259_037_719));

        // An early Fargate sample: all-zero precpu_stats means no previous sample.
        let early = entry_stats(
            "fargate-task-stats-docs-2020-09.json",
            "1823e1f6-7248-43c3-bed6-eea1fa7501a5query-metadata",
            fargate_limits(),
        )
        .expect("stats");
        assert_eq!(early.cpu_fraction_of_task, None);
        assert_close(early.cpu_usage_seconds, 0.410_557_1);
        assert_eq!(early.memory_working_set_bytes, Some(4_390_912 - 3_108_864));
        assert_eq!(early.memory_limit_bytes, Some(512 * MIB));
        assert_eq!(early.network.map(|n| n.rx_packets), Some(384_960));
    }

    #[test]
    fn documentation_stats_keys_do_not_join_their_task_examples() {
        // SOURCES.md notes that the example stats key is not the example task's DockerId: the
        // join finds nothing, and the containers are described without stats.
        let r = reading("fargate-task-docs-2020-09.json", Some("fargate-task-stats-docs-2020-09.json"));
        assert_eq!(names(&r), ["query-metadata"]);
        assert_eq!(r.containers[0].stats, None);
        assert_eq!(r.network, None);
    }

    #[test]
    fn single_container_documents() {
        // (file, Name, DockerId, KnownStatus)
        let cases = [
            (
                "ec2-container-awsvpc-docs.json",
                "curl",
                "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66",
                "RUNNING",
            ),
            ("fargate-container-docs.json", "curl", "cd189a933e5849daa93386466019ab50-2495160603", "RUNNING"),
            (
                "fargate-container-docs-2020-09.json",
                "query-metadata",
                "c7a6b9b237934e9999f319ea3ccc9da4query-metadata",
                "RUNNING",
            ),
            ("ecs-agent-unittest-container.json", "sleepy", "cid", "RUNNING"),
        ];
        for (file, name, docker_id, status) in cases {
            let raw: RawContainer = serde_json::from_slice(&fixture(file)).expect(file);
            assert_eq!(raw.kind.as_str(), Some("NORMAL"), "{file}");
            let c = container_reading(&raw, None, TaskLimits::default());
            assert_eq!(c.name, name, "{file}");
            assert_eq!(c.docker_id, docker_id, "{file}");
            assert_eq!(c.known_status, status, "{file}");
            assert_eq!(c.restart_count, None, "{file}");
            assert_eq!(c.health, None, "{file}");
            assert_eq!(c.exit_code, None, "{file}");
        }
    }

    #[test]
    fn single_container_stats_documents() {
        let bridge =
            container_stats(&single_stats("ec2-container-stats-bridge-docs.json"), TaskLimits::default())
                .expect("stats");
        assert_eq!(bridge.read_unix_nanos, 1_601_599_873_410_254_284);
        assert_eq!(bridge.memory_usage_bytes, Some(1_806_336));
        assert_eq!(bridge.memory_working_set_bytes, Some(1_806_336));
        assert_eq!(bridge.memory_limit_bytes, Some(134_217_728));
        assert_eq!(bridge.cpu_fraction_of_task, Some(0.0));
        assert_eq!(bridge.pids_current, Some(3));
        assert_eq!(bridge.network.map(|n| n.rx_bytes), Some(84));

        // The agent's zero value: `read` is Go's zero time and `memory_stats` is `{}`. There
        // is no sample, though the raw document does carry counters.
        let zero = single_stats("ecs-agent-unittest-container-stats-zero-values.json");
        assert_eq!(container_stats(&zero, fargate_limits()), None);
        let interfaces = zero.networks.get().expect("networks");
        assert_eq!(interfaces["a"].get().map(|i| i.rx_bytes.as_u64()), Some(Some(5)));
    }

    #[test]
    fn synthetic_restart_count_and_health() {
        let r = reading("synthetic-task-restart-count.json", Some("synthetic-task-stats-restart-count.json"));
        // `sidecar` has no `Type` and is kept.
        assert_eq!(names(&r), ["app", "sidecar", "migrate"]);
        assert_eq!(r.cpu_limit_vcpus, Some(1.0));
        assert_eq!(r.memory_limit_bytes, Some(2048 * MIB));

        // RestartCount present (3 or 0) versus absent (no restart policy).
        assert_eq!(container(&r, "app").restart_count, Some(3));
        assert_eq!(container(&r, "sidecar").restart_count, Some(0));
        assert_eq!(container(&r, "migrate").restart_count, None);
        // Health UNHEALTHY, `{}` while starting, and missing.
        assert_eq!(container(&r, "app").health, Some(ContainerHealth::Unhealthy));
        assert_eq!(container(&r, "sidecar").health, None);
        assert_eq!(container(&r, "migrate").health, None);
        assert_eq!(container(&r, "migrate").exit_code, Some(137));
        assert_eq!(container(&r, "migrate").stats, None);

        let app = stats(&r, "app");
        // `14:00:10.5+02:00`.
        assert_eq!(app.read_unix_nanos, 1_748_779_210_500_000_000);
        assert_eq!(app.memory_usage_bytes, Some(200_000_000));
        assert_eq!(app.memory_working_set_bytes, Some(150_000_000));
        assert_eq!(app.memory_page_cache_bytes, Some(80_000_000));
        // u64::MAX on cgroup v2 means no limit: the task's 2048 MiB applies.
        assert_eq!(app.memory_limit_bytes, Some(2048 * MIB));
        assert_close(app.cpu_usage_seconds, 3.0);
        // 2e9 ns of CPU over 10 s of a 1 vCPU task.
        assert_close(app.cpu_fraction_of_task, 0.2);
        assert_eq!(app.pids_current, Some(42));
        // Docker's 0 means no pids limit.
        assert_eq!(app.pids_limit, None);
        // Summed over eth1 and eth2.
        let app_network = NetworkCounters {
            rx_bytes: 1_002_000,
            rx_packets: 1_020,
            rx_errors: 1,
            rx_dropped: 2,
            tx_bytes: 501_000,
            tx_packets: 410,
            tx_errors: 0,
            tx_dropped: 3,
        };
        assert_eq!(app.network, Some(app_network));

        let sidecar = stats(&r, "sidecar");
        assert_eq!(sidecar.memory_limit_bytes, Some(256 * MIB));
        assert_eq!(sidecar.memory_working_set_bytes, Some(90_000_000));
        assert_eq!(sidecar.pids_limit, Some(404));
        assert_close(sidecar.cpu_fraction_of_task, 0.01);

        // `app` was read last, so its counters are the task's.
        assert_eq!(r.network, Some(app_network));
        assert_eq!(
            r.ephemeral_storage,
            Some(EphemeralStorage { utilized_bytes: 1536 * MIB, reserved_bytes: 20_496 * MIB })
        );
    }

    #[test]
    fn the_same_sample_twice_is_stale() {
        let task = parse_task(&fixture("fargate-task-real-2025-02.json")).expect("task");
        let stats = parse_stats(&fixture("fargate-task-stats-real-2025-02.json")).expect("stats");
        let first = to_reading(&task, Some(&stats), None);
        assert!(!first.stats_stale);
        let second = to_reading(&task, Some(&stats), Some(&first));
        assert!(second.stats_stale);
        // Apart from the flag, a repeated sample reads the same.
        assert_eq!(second.containers, first.containers);

        // One container with a new `read` stamp is new data.
        let body = String::from_utf8(fixture("fargate-task-stats-real-2025-02.json"))
            .expect("utf-8")
            .replace("2025-02-27T05:22:49.186680233Z", "2025-02-27T05:22:59.186680233Z");
        let newer = parse_stats(body.as_bytes()).expect("stats");
        assert!(!to_reading(&task, Some(&newer), Some(&first)).stats_stale);

        // Without stats there is nothing to call stale, and a previous reading without stats
        // makes nothing stale either.
        let without = to_reading(&task, None, Some(&first));
        assert!(!without.stats_stale);
        assert!(!to_reading(&task, Some(&stats), Some(&without)).stats_stale);
    }

    #[test]
    fn lenient_json() {
        // Unknown fields, wrong types and floats are read as far as they make sense.
        let task = br#"{
            "TaskARN": "arn:t", "Revision": 7, "Family": ["not", "a", "string"],
            "Limits": {"CPU": "2", "Memory": 512.0},
            "Containers": [
                {"Name": "a", "DockerId": "a1", "Type": "NORMAL", "RestartCount": 2.0,
                 "ExitCode": -1, "Health": "HEALTHY"},
                "not an object",
                {"Name": "b", "DockerId": "b1", "Type": "CNI_PAUSE"},
                {"Name": "c", "DockerId": "c1", "RestartCount": -4, "Health": {"status": "UNKNOWN"}},
                {"Name": "d", "DockerId": "d1", "Health": null, "Limits": 3}
            ],
            "EphemeralStorageMetrics": {"Utilized": 1}
        }"#;
        let stats = br#"{
            "a1": {"read": "2025-01-01T00:00:01Z", "preread": "not a time",
                   "memory_stats": {"usage": 10, "limit": 0, "stats": "odd"},
                   "cpu_stats": {"cpu_usage": {"total_usage": 5}},
                   "networks": {"eth0": {"rx_bytes": 1.5e3}, "eth1": null}},
            "c1": {},
            "d1": "garbage"
        }"#;
        let task = parse_task(task).expect("task");
        let stats = parse_stats(stats).expect("stats");
        let r = to_reading(&task, Some(&stats), None);
        assert_eq!(r.task_arn, "arn:t");
        assert_eq!(r.revision, "7");
        assert_eq!(r.family, "");
        assert_eq!(r.cpu_limit_vcpus, None);
        assert_eq!(r.memory_limit_bytes, Some(512 * MIB));
        // One of two storage numbers is not enough.
        assert_eq!(r.ephemeral_storage, None);
        assert_eq!(names(&r), ["a", "c", "d"]);

        let a = container(&r, "a");
        assert_eq!(a.restart_count, Some(2));
        assert_eq!(a.exit_code, Some(-1));
        assert_eq!(a.health, None);
        let a = a.stats.as_ref().expect("stats for a");
        assert_eq!(a.preread_unix_nanos, None);
        assert_eq!(a.cpu_fraction_of_task, None);
        assert_eq!(a.memory_usage_bytes, Some(10));
        // No inactive-file figure: the working set is unknown, not equal to usage.
        assert_eq!(a.memory_working_set_bytes, None);
        // A zero container limit is no limit, and the task's applies.
        assert_eq!(a.memory_limit_bytes, Some(512 * MIB));
        assert_eq!(a.network.map(|n| n.rx_bytes), Some(1500));

        assert_eq!(container(&r, "c").restart_count, None);
        assert_eq!(container(&r, "c").health, None);
        assert_eq!(container(&r, "c").stats, None);
        assert_eq!(container(&r, "d").stats, None);
    }

    #[test]
    fn parse_errors_name_the_document() {
        let err = parse_task(b"<html>").unwrap_err();
        assert!(matches!(err, TmdsError::Json { path: TASK_PATH, .. }));
        assert!(err.to_string().starts_with("parse /task: expected value"), "{err}");
        let err = parse_task(b"[]").unwrap_err();
        assert_eq!(err.to_string(), "parse /task: expected a json object");
        let err = parse_stats(b"{\"a\": ").unwrap_err();
        assert!(err.to_string().starts_with("parse /task/stats: "), "{err}");
        let err = parse_stats(b"42").unwrap_err();
        assert_eq!(err.to_string(), "parse /task/stats: expected a json object");
        // A `null` body is "no stats", not an error.
        assert!(parse_stats(b"null").expect("null").0.is_empty());
        assert!(parse_stats(b"{}").expect("empty").0.is_empty());
    }

    #[test]
    fn error_messages() {
        let cases = [
            (TmdsError::Timeout { path: TASK_PATH, after_ms: 800 }, "get /task: timed out after 800 ms"),
            (
                TmdsError::Status { path: STATS_PATH, status: 429, retry_after_secs: Some(3) },
                "get /task/stats: http status 429",
            ),
            (
                TmdsError::TooLarge { path: TASK_PATH, limit: MAX_BODY_BYTES },
                "get /task: body larger than 1048576 bytes",
            ),
        ];
        for (err, expected) in cases {
            assert_eq!(err.to_string(), expected);
            let source_error = SourceError::from(err);
            assert_eq!(source_error.source, Source::Tmds);
            assert_eq!(source_error.detail, expected);
        }
        let status = |status| TmdsError::Status { path: TASK_PATH, status, retry_after_secs: None };
        assert!(status(429).is_throttle());
        assert!(status(500).is_throttle());
        assert!(status(503).is_throttle());
        assert!(!status(404).is_throttle());
        assert!(!status(400).is_throttle());
    }

    #[test]
    fn schedule_rate_limit() {
        let mut s = Schedule::default();
        assert!(s.due(0));
        s.attempted(0);
        assert!(!s.due(0));
        assert!(!s.due(900));
        // A tick that fires a few milliseconds early still polls.
        assert!(s.due(960));
        assert!(s.due(1000));
        s.attempted(1000);
        assert!(!s.due(1500));
        assert!(s.due(2000));
    }

    #[test]
    fn schedule_backs_off_exponentially_and_resets() {
        let mut s = Schedule::default();
        let mut now = 0;
        for expected_delay in [2_000, 4_000, 8_000, 16_000, 30_000, 30_000] {
            s.attempted(now);
            s.throttle(now, None);
            assert!(!s.due(now + expected_delay - 1), "delay {expected_delay}");
            assert!(s.due(now + expected_delay), "delay {expected_delay}");
            now += expected_delay;
        }
        s.attempted(now);
        s.succeeded();
        s.throttle(now, None);
        assert_eq!(s.not_before, now + 2_000);
    }

    #[test]
    fn schedule_honours_retry_after_within_bounds() {
        // (Retry-After seconds, resulting delay in ms)
        for (secs, delay) in [(3, 3_000), (0, 1_000), (600, 30_000), (u64::MAX, 30_000)] {
            let mut s = Schedule::default();
            s.attempted(10_000);
            s.throttle(10_000, Some(secs));
            assert_eq!(s.not_before, 10_000 + delay, "retry-after {secs}");
        }
    }

    #[test]
    fn base_url_must_be_plain_http() {
        assert!(TmdsClient::new("http://169.254.170.2/v4/abc-123").is_ok());
        assert!(TmdsClient::new("http://169.254.170.2/v4/abc-123/").is_ok());
        let err = TmdsClient::new("https://169.254.170.2/v4/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid base url \"https://169.254.170.2/v4/x\": only plain http is supported"
        );
        assert!(matches!(TmdsClient::new("not a url"), Err(TmdsError::InvalidBaseUrl { .. })));
    }

    #[test]
    fn client_urls_append_the_documented_paths() {
        let client = TmdsClient::new("http://169.254.170.2/v4/abc-123/").expect("client");
        assert_eq!(client.task_url, "http://169.254.170.2/v4/abc-123/task");
        assert_eq!(client.stats_url, "http://169.254.170.2/v4/abc-123/task/stats");
    }
}
