//! Tests of the metadata client's layers, from the fixtures in `tests/fixtures/tmds/`.

use super::client::*;
use super::convert::*;
use super::schedule::*;
use super::wire::*;
use super::*;
use crate::judge::sample::{
    ContainerHealth, ContainerReading, ContainerStats, EphemeralStorage, NetworkCounters, TaskReading,
};

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
    let fargate =
        |file, names, launch_type| Case { file, names, cpu: Some(0.25), memory_mib: Some(512), launch_type };
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
