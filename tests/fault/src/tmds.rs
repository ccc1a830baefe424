//! The Task Metadata Service v4 emulator's documents: `/task`, the container document and the
//! Docker-style stats, in the shapes of the Fargate captures (cgroup v1 memory keys, the
//! "no limit" value for containers without their own limit, `read`/`preread` stamps, task-wide
//! `eth1` counters, `pids_stats` empty, `null` stats for a stopped container).
//!
//! Readers of kernel files are kept apart from the pure parsers and document builders, which the
//! tests drive with literal text.

use std::collections::BTreeMap;
use std::path::Path;

use crate::calendar::rfc3339;
use serde_json::{Value, json};

/// What cgroup v1 reports as the limit of a group without one.
pub const NO_LIMIT: u64 = 9_223_372_036_854_771_712;

/// The task as the emulator describes it.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub task_id: String,
    /// The service's identity, the same for every task of a run.
    pub service: ServiceIdentity,
    /// `AvailabilityZone`, e.g. `us-east-1b`.
    pub availability_zone: String,
    pub cpu_vcpu: f64,
    pub memory_mib: u64,
    pub address: String,
    pub created_at: f64,
    /// `EphemeralStorageMetrics`, MiB.
    pub storage_utilized_mib: u64,
    pub storage_reserved_mib: u64,
}

/// What every task of one ECS service shares: the cluster, the task definition (family and
/// revision) and the service. The region is that of every ARN.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceIdentity {
    pub region: String,
    pub account: String,
    /// The cluster's short name; `Cluster` is its ARN, as on Fargate.
    pub cluster: String,
    pub family: String,
    pub revision: String,
    /// `ServiceName`. Real Fargate responses have no such key (AWS documents it for EC2 and
    /// ECS Anywhere; the Fargate captures in `tests/fixtures/tmds` lack it, the EC2 and Managed
    /// Instances ones carry it after `Containers`): `None` keeps the Fargate shape.
    pub service_name: Option<String>,
}

impl ServiceIdentity {
    /// The cluster's ARN.
    pub fn cluster_arn(&self) -> String {
        format!("arn:aws:ecs:{}:{}:cluster/{}", self.region, self.account, self.cluster)
    }
}

/// One container's lifecycle as the task init knows it.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub name: String,
    pub image: String,
    pub docker_id: String,
    pub running: bool,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub exit_code: Option<i32>,
    /// `Some` only when the container has a restart policy.
    pub restart_count: Option<u32>,
}

/// Raw readings of one container's cgroups.
#[derive(Debug, Clone, Default)]
pub struct ContainerReading {
    pub memory_stat: BTreeMap<String, u64>,
    pub usage: u64,
    pub max_usage: u64,
    pub limit: u64,
    pub cpu_total_ns: u64,
    pub percpu_ns: Vec<u64>,
    pub user_ns: u64,
    pub system_ns: u64,
    pub throttling: Throttling,
}

/// `cpu.stat` of the task's cpu group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// Network counters of one interface.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// One stats sample: when it was read and what the host said.
#[derive(Debug, Clone, Default)]
pub struct HostReading {
    pub at: f64,
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
    pub net: NetCounters,
}

/// Parses `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
pub fn parse_key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The host's total CPU time in ns from `/proc/stat` (the `cpu` line, in USER_HZ = 100 ticks).
pub fn parse_system_cpu_ns(proc_stat: &str) -> u64 {
    proc_stat
        .lines()
        .find(|line| line.starts_with("cpu "))
        .map(|line| {
            line.split_whitespace().skip(1).filter_map(|n| n.parse::<u64>().ok()).sum::<u64>() * 10_000_000
        })
        .unwrap_or(0)
}

/// One interface's counters from `/proc/net/dev`.
pub fn parse_net_dev(text: &str, interface: &str) -> Option<NetCounters> {
    let line = text.lines().find(|line| line.trim_start().starts_with(&format!("{interface}:")))?;
    let numbers: Vec<u64> =
        line.split_once(':')?.1.split_whitespace().filter_map(|n| n.parse().ok()).collect();
    if numbers.len() < 12 {
        return None;
    }
    Some(NetCounters {
        rx_bytes: numbers[0],
        rx_packets: numbers[1],
        rx_errors: numbers[2],
        rx_dropped: numbers[3],
        tx_bytes: numbers[8],
        tx_packets: numbers[9],
        tx_errors: numbers[10],
        tx_dropped: numbers[11],
    })
}

/// Reads one container's cgroup files; a missing file reads as zero.
pub fn read_container(memory: &Path, cpuacct: &Path, task_cpu: &Path) -> ContainerReading {
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let number = |path: &Path| read(path).trim().parse::<u64>().unwrap_or(0);
    let cpuacct_stat = parse_key_values(&read(&cpuacct.join("cpuacct.stat")));
    let cpu_stat = parse_key_values(&read(&task_cpu.join("cpu.stat")));
    ContainerReading {
        memory_stat: parse_key_values(&read(&memory.join("memory.stat"))),
        usage: number(&memory.join("memory.usage_in_bytes")),
        max_usage: number(&memory.join("memory.max_usage_in_bytes")),
        limit: number(&memory.join("memory.limit_in_bytes")),
        cpu_total_ns: number(&cpuacct.join("cpuacct.usage")),
        percpu_ns: read(&cpuacct.join("cpuacct.usage_percpu"))
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect(),
        user_ns: cpuacct_stat.get("user").copied().unwrap_or(0) * 10_000_000,
        system_ns: cpuacct_stat.get("system").copied().unwrap_or(0) * 10_000_000,
        throttling: Throttling {
            periods: cpu_stat.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: cpu_stat.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: cpu_stat.get("throttled_time").copied().unwrap_or(0),
        },
    }
}

/// Reads the host side of a sample: time, host CPU, and `eth1` of the caller's namespace.
pub fn read_host(at: f64) -> HostReading {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let net = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    HostReading {
        at,
        system_cpu_ns: parse_system_cpu_ns(&stat),
        online_cpus: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
        net: parse_net_dev(&net, "eth1").unwrap_or_default(),
    }
}

fn cpu_stats(reading: &ContainerReading, host: &HostReading) -> Value {
    json!({
        "cpu_usage": {
            "total_usage": reading.cpu_total_ns,
            "percpu_usage": reading.percpu_ns,
            "usage_in_kernelmode": reading.system_ns,
            "usage_in_usermode": reading.user_ns,
        },
        "system_cpu_usage": host.system_cpu_ns,
        "online_cpus": host.online_cpus,
        "throttling_data": {
            "periods": reading.throttling.periods,
            "throttled_periods": reading.throttling.throttled_periods,
            "throttled_time": reading.throttling.throttled_time,
        },
    })
}

fn net_json(net: &NetCounters) -> Value {
    json!({
        "rx_bytes": net.rx_bytes,
        "rx_packets": net.rx_packets,
        "rx_errors": net.rx_errors,
        "rx_dropped": net.rx_dropped,
        "tx_bytes": net.tx_bytes,
        "tx_packets": net.tx_packets,
        "tx_errors": net.tx_errors,
        "tx_dropped": net.tx_dropped,
    })
}

/// One container's stats document from this sample and the previous one.
pub fn container_stats(
    container: &ContainerInfo,
    now: (&ContainerReading, &HostReading),
    before: Option<(&ContainerReading, &HostReading)>,
) -> Value {
    let (reading, host) = now;
    let empty_reading = ContainerReading::default();
    let empty_host = HostReading::default();
    let (pre_reading, pre_host) = before.unwrap_or((&empty_reading, &empty_host));
    let seconds = (host.at - pre_host.at).max(1e-3);
    let rate = |now: u64, then: u64| {
        if before.is_some() { now.saturating_sub(then) as f64 / seconds } else { 0.0 }
    };
    json!({
        "read": rfc3339(host.at),
        "preread": if before.is_some() { rfc3339(pre_host.at) } else { "0001-01-01T00:00:00Z".into() },
        "pids_stats": {},
        "blkio_stats": {
            "io_service_bytes_recursive": [],
            "io_serviced_recursive": [],
            "io_queue_recursive": [],
            "io_service_time_recursive": [],
            "io_wait_time_recursive": [],
            "io_merged_recursive": [],
            "io_time_recursive": [],
            "sectors_recursive": [],
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(reading, host),
        "precpu_stats": cpu_stats(pre_reading, pre_host),
        "memory_stats": {
            "usage": reading.usage,
            "max_usage": reading.max_usage,
            "stats": reading.memory_stat,
            "limit": reading.limit,
        },
        "name": container.name,
        "id": container.docker_id,
        "networks": { "eth1": net_json(&host.net) },
        "network_rate_stats": {
            "rx_bytes_per_sec": rate(host.net.rx_bytes, pre_host.net.rx_bytes),
            "tx_bytes_per_sec": rate(host.net.tx_bytes, pre_host.net.tx_bytes),
        },
    })
}

fn arn(kind: &str, task: &TaskInfo, suffix: &str) -> String {
    let service = &task.service;
    format!(
        "arn:aws:ecs:{}:{}:{kind}/{}/{}{suffix}",
        service.region, service.account, service.cluster, task.task_id
    )
}

/// One container's metadata document (an element of `/task`'s `Containers`).
pub fn container_document(task: &TaskInfo, container: &ContainerInfo) -> Value {
    let mut doc = json!({
        "DockerId": container.docker_id,
        "Name": container.name,
        "DockerName": container.name,
        "Image": container.image,
        "ImageID": format!("sha256:{:064x}", container.name.len()),
        "Labels": {
            "com.amazonaws.ecs.cluster": task.service.cluster_arn(),
            "com.amazonaws.ecs.container-name": container.name,
            "com.amazonaws.ecs.task-arn": arn("task", task, ""),
            "com.amazonaws.ecs.task-definition-family": task.service.family,
            "com.amazonaws.ecs.task-definition-version": task.service.revision,
        },
        "DesiredStatus": "RUNNING",
        "KnownStatus": if container.running { "RUNNING" } else { "STOPPED" },
        "Limits": { "CPU": 0 },
        "CreatedAt": rfc3339(task.created_at),
        "Type": "NORMAL",
        "ContainerARN": arn("container", task, &format!("/{}", container.name)),
        "Networks": [{
            "NetworkMode": "awsvpc",
            "IPv4Addresses": [task.address],
            "AttachmentIndex": 0,
            "MACAddress": "0a:ff:00:00:00:01",
            "IPv4SubnetCIDRBlock": "10.200.0.0/24",
            "PrivateDNSName": "ip-vgf.internal",
            "SubnetGatewayIpv4Address": "10.200.0.1/24",
        }],
        "Snapshotter": "overlayfs",
    });
    let object = doc.as_object_mut().expect("a JSON object");
    if let Some(at) = container.started_at {
        object.insert("StartedAt".into(), rfc3339(at).into());
    }
    if let Some(at) = container.finished_at {
        object.insert("FinishedAt".into(), rfc3339(at).into());
    }
    if let Some(code) = container.exit_code {
        object.insert("ExitCode".into(), code.into());
    }
    if let Some(count) = container.restart_count {
        object.insert("RestartCount".into(), count.into());
    }
    doc
}

/// The `/task` document.
pub fn task_document(task: &TaskInfo, containers: &[ContainerInfo]) -> Value {
    let any_running = containers.iter().any(|c| c.running);
    let mut doc = json!({
        "Cluster": task.service.cluster_arn(),
        "TaskARN": arn("task", task, ""),
        "Family": task.service.family,
        "Revision": task.service.revision,
        "DesiredStatus": "RUNNING",
        "KnownStatus": if any_running { "RUNNING" } else { "STOPPED" },
        "Limits": { "CPU": task.cpu_vcpu, "Memory": task.memory_mib },
        "PullStartedAt": rfc3339(task.created_at),
        "PullStoppedAt": rfc3339(task.created_at),
        "AvailabilityZone": task.availability_zone,
        "LaunchType": "FARGATE",
        "Containers": containers.iter().map(|c| container_document(task, c)).collect::<Vec<_>>(),
        "ClockDrift": {
            "ClockErrorBound": 0.5,
            "ReferenceTimestamp": rfc3339(task.created_at.floor()),
            "ClockSynchronizationStatus": "SYNCHRONIZED",
        },
        "EphemeralStorageMetrics": {
            "Utilized": task.storage_utilized_mib,
            "Reserved": task.storage_reserved_mib,
        },
        "FaultInjectionEnabled": false,
    });
    if let Some(name) = &task.service.service_name {
        doc.as_object_mut().expect("a JSON object").insert("ServiceName".into(), name.clone().into());
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_text_parses() {
        let stat = parse_key_values("cache 4096\nrss 8192\ntotal_inactive_file 0\n");
        assert_eq!(stat.get("rss"), Some(&8192));
        assert_eq!(parse_system_cpu_ns("cpu  10 0 5 85 0 0 0 0 0 0\ncpu0 1 2 3\n"), 1_000_000_000);
        let dev = "Inter-|   Receive\n face |bytes\n    lo: 1 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n  eth1: 100 2 0 1 0 0 0 0 300 4 0 0 0 0 0 0\n";
        let eth1 = parse_net_dev(dev, "eth1").unwrap();
        assert_eq!((eth1.rx_bytes, eth1.rx_dropped, eth1.tx_bytes), (100, 1, 300));
        assert!(parse_net_dev(dev, "eth0").is_none());
    }

    fn task() -> TaskInfo {
        TaskInfo {
            task_id: "0123456789abcdef0123456789abcdef".into(),
            service: ServiceIdentity {
                region: "us-east-1".into(),
                account: "000000000000".into(),
                cluster: "vgf-cluster".into(),
                family: "vgf-demo".into(),
                revision: "7".into(),
                service_name: None,
            },
            availability_zone: "us-east-1b".into(),
            cpu_vcpu: 0.5,
            memory_mib: 256,
            address: "10.200.0.11".into(),
            created_at: 1_745_807_422.0,
            storage_utilized_mib: 40,
            storage_reserved_mib: 20480,
        }
    }

    fn app(running: bool) -> ContainerInfo {
        ContainerInfo {
            name: "app".into(),
            image: "vgf/demo-app".into(),
            docker_id: "0123456789abcdef0123456789abcdef-1".into(),
            running,
            started_at: Some(1_745_807_423.0),
            finished_at: None,
            exit_code: None,
            restart_count: Some(2),
        }
    }

    #[test]
    fn task_document_has_the_fargate_shape() {
        let doc = task_document(&task(), &[app(true)]);
        assert_eq!(doc["LaunchType"], "FARGATE");
        assert_eq!(doc["Cluster"], "arn:aws:ecs:us-east-1:000000000000:cluster/vgf-cluster");
        assert_eq!(
            doc["TaskARN"],
            "arn:aws:ecs:us-east-1:000000000000:task/vgf-cluster/0123456789abcdef0123456789abcdef"
        );
        assert_eq!((&doc["Family"], &doc["Revision"]), (&json!("vgf-demo"), &json!("7")));
        assert_eq!(doc["AvailabilityZone"], "us-east-1b");
        assert!(doc.get("ServiceName").is_none(), "Fargate has no ServiceName");
        let labels = &doc["Containers"][0]["Labels"];
        assert_eq!(labels["com.amazonaws.ecs.task-definition-version"], "7");
        assert_eq!(labels["com.amazonaws.ecs.cluster"], doc["Cluster"]);
        assert_eq!(doc["Limits"]["Memory"], 256);
        assert_eq!(doc["Containers"][0]["RestartCount"], 2);
        assert_eq!(doc["Containers"][0]["KnownStatus"], "RUNNING");
        assert!(doc["Containers"][0].get("ExitCode").is_none());
    }

    #[test]
    fn the_task_document_has_the_keys_of_a_real_fargate_capture() {
        let fixture = include_str!("../../fixtures/tmds/fargate-task-real-2025-04.json");
        let real: Value = serde_json::from_str(fixture).unwrap();
        let doc = task_document(&task(), &[app(true)]);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&doc), keys(&real));
    }

    #[test]
    fn a_service_name_is_added_only_when_the_identity_has_one() {
        let mut info = task();
        info.service.service_name = Some("vgf-demo-service".into());
        assert_eq!(task_document(&info, &[])["ServiceName"], "vgf-demo-service");
    }

    #[test]
    fn stats_carry_v1_memory_keys_and_rates() {
        let mut reading = ContainerReading { usage: 100, limit: NO_LIMIT, ..ContainerReading::default() };
        reading.memory_stat.insert("total_inactive_file".into(), 10);
        let before = HostReading { at: 10.0, ..HostReading::default() };
        let mut now = before.clone();
        now.at = 20.0;
        now.net.rx_bytes = 1000;
        let stats = container_stats(&app(true), (&reading, &now), Some((&reading, &before)));
        assert_eq!(stats["memory_stats"]["limit"], NO_LIMIT);
        assert_eq!(stats["memory_stats"]["stats"]["total_inactive_file"], 10);
        assert_eq!(stats["network_rate_stats"]["rx_bytes_per_sec"], 100.0);
        assert_eq!(stats["pids_stats"], json!({}));
        assert_eq!(stats["preread"], rfc3339(10.0));
    }
}
