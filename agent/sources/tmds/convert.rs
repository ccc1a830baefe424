//! Response bodies → the project's own types: parsing the two documents and turning them into
//! a [`TaskReading`]. No I/O, no clock.

use std::collections::HashMap;

use serde::Deserialize;

use super::*;
use crate::judge::sample::{
    ContainerHealth, ContainerReading, ContainerStats, EphemeralStorage, NetworkCounters, TaskReading,
};
use crate::time::parse_rfc3339_nanos;

use super::wire::*;

/// A parsed `/task` document. Opaque: read it through [`to_reading`].
#[derive(Debug)]
pub struct TaskMeta(pub(super) RawTask);

/// A parsed `/task/stats` document, keyed by `DockerId`. Opaque: read it through [`to_reading`].
#[derive(Debug, Default)]
pub struct StatsMap(pub(super) HashMap<String, Lenient<RawStats>>);

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
pub(super) struct TaskLimits {
    /// `Limits.CPU` when positive.
    pub(super) vcpus: Option<f64>,
    /// `Limits.Memory` in bytes when positive.
    pub(super) memory_bytes: Option<u64>,
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
        service_name: raw.service_name.to_owned_or_empty(),
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
pub(super) fn same_sample(containers: &[ContainerReading], previous: &TaskReading) -> bool {
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

pub(super) fn container_reading(
    raw: &RawContainer,
    stats: Option<&RawStats>,
    limits: TaskLimits,
) -> ContainerReading {
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
pub(super) fn container_stats(raw: &RawStats, limits: TaskLimits) -> Option<ContainerStats> {
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
pub(super) fn cpu_fraction(
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

pub(super) fn interface_counters(raw: &RawInterface) -> NetworkCounters {
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

pub(super) fn add_counters(a: &NetworkCounters, b: &NetworkCounters) -> NetworkCounters {
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

pub(super) fn mib_to_bytes(mib: Num) -> Option<u64> {
    mib.as_f64().filter(|v| *v >= 0.0).map(|v| (v * BYTES_PER_MIB).round() as u64)
}
