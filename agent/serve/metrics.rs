//! The Prometheus registry: the agent's own metrics plus everything in the latest snapshot.
//!
//! Readings are not copied into metric objects every tick. A collector renders the latest
//! [`Snapshot`] when `/metrics` is scraped, so a tick costs nothing here and a scrape shows
//! exactly one tick's readings: series of a container or process that is gone disappear with it.
//!
//! Series from the Task Metadata Service keep the names and labels of the community ECS
//! exporter (`ecs_*`, label `container_name`), so existing dashboards keep working; everything
//! else is `vigil_*`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::judge::evidence::Reason;
use crate::judge::features::Resource;
use crate::judge::sample::{ContainerHealth, ProbeReading, Source};
use crate::judge::verdict::State;
use crate::serve::snapshot::{Snapshot, SnapshotCell};

/// The content type of `/metrics` for scrapers that ask for OpenMetrics (Prometheus does).
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of `/metrics` for everything else: the classic Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub struct Metrics {
    registry: Registry,
    tick_duration: Histogram,
    inference_duration: Histogram,
}

impl Metrics {
    pub fn new(cell: SnapshotCell) -> Metrics {
        let mut registry = Registry::default();
        let tick_duration =
            Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]);
        registry.register(
            "vigil_tick_duration_seconds",
            "Time one tick took: reading every source and judging",
            tick_duration.clone(),
        );
        let inference_duration =
            Histogram::new([0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.001, 0.01]);
        registry.register(
            "vigil_model_inference_seconds",
            "Time the autoencoder took to score one tick, normalisation included",
            inference_duration.clone(),
        );
        registry.register_collector(Box::new(SnapshotCollector { cell }));
        Metrics { registry, tick_duration, inference_duration }
    }

    pub fn observe_tick(&self, took: Duration) {
        self.tick_duration.observe(took.as_secs_f64());
    }

    pub fn observe_inference(&self, took: Duration) {
        self.inference_duration.observe(took.as_secs_f64());
    }

    /// Renders the OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoder error would be a bug in a label value.
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
            text.push_str("# EOF\n");
        }
        text
    }
}

/// Rewrites OpenMetrics text as the classic Prometheus text format (0.0.4), which tools such as
/// `promtool check metrics` and older scrapers read: a counter's `HELP` and `TYPE` lines name
/// the `_total` series, and the `# EOF` and `# UNIT` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(line) => text.push_str(&line),
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[derive(Debug)]
struct SnapshotCollector {
    cell: SnapshotCell,
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let snapshot = Arc::clone(&self.cell.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
        encode_snapshot(&snapshot, &mut encoder)
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its descriptor and its samples (label set, value).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, f64)>,
}

impl Family {
    fn gauge(name: &'static str, help: &'static str) -> Family {
        Family { name, help, kind: MetricType::Gauge, samples: Vec::new() }
    }

    /// `name` without `_total`: the encoder appends it to counter samples.
    fn counter(name: &'static str, help: &'static str) -> Family {
        Family { kind: MetricType::Counter, ..Family::gauge(name, help) }
    }

    fn set(&mut self, labels: Labels, value: impl Into<Option<f64>>) -> &mut Self {
        if let Some(value) = value.into() {
            self.samples.push((labels, value));
        }
        self
    }

    fn one(&mut self, value: impl Into<Option<f64>>) -> &mut Self {
        self.set(Vec::new(), value)
    }

    fn encode(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        if self.samples.is_empty() {
            return Ok(());
        }
        let mut metric = encoder.encode_descriptor(self.name, self.help, None, self.kind)?;
        for (labels, value) in &self.samples {
            if labels.is_empty() {
                encode_value(self.kind, *value, &mut metric)?;
            } else {
                let family = metric.encode_family(labels)?;
                encode_value_into(self.kind, *value, family)?;
            }
        }
        Ok(())
    }
}

fn encode_value(kind: MetricType, value: f64, metric: &mut MetricEncoder) -> fmt::Result {
    match kind {
        MetricType::Counter => metric.encode_counter::<NoLabelSet, f64, f64>(&value, None),
        _ => metric.encode_gauge(&value),
    }
}

fn encode_value_into(kind: MetricType, value: f64, metric: MetricEncoder) -> fmt::Result {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(value).encode(metric),
    }
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

fn opt(value: Option<u64>) -> Option<f64> {
    value.map(|v| v as f64)
}

fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

/// Renders every snapshot-derived family.
fn encode_snapshot(snapshot: &Snapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let mut families = Vec::with_capacity(64);
    agent_families(snapshot, &mut families);
    prediction_families(snapshot, &mut families);
    fleet_families(snapshot, &mut families);
    local_families(snapshot, &mut families);
    ecs_families(snapshot, &mut families);
    for family in &families {
        family.encode(encoder)?;
    }
    Ok(())
}

fn agent_families(snapshot: &Snapshot, out: &mut Vec<Family>) {
    let mut build = Family::gauge("vigil_build_info", "vigil's version; always 1");
    build.set(label("version", env!("CARGO_PKG_VERSION")), 1.0);
    out.push(build);

    let mut mode = Family::gauge(
        "vigil_mode",
        "1 for the mode vigil runs in: ecs (with the task metadata service) or local",
    );
    for name in ["ecs", "local"] {
        let active = matches!(
            (name, snapshot.mode),
            ("ecs", crate::config::Mode::Ecs) | ("local", crate::config::Mode::Local)
        );
        mode.set(label("mode", name), flag(active));
    }
    out.push(mode);

    let mut ticks = Family::counter("vigil_ticks", "Ticks completed");
    ticks.one(snapshot.tick as f64);
    out.push(ticks);

    let mut state = Family::gauge(
        "vigil_health_state",
        "1 for the current verdict: healthy, degraded, or draining (health check answers 503)",
    );
    for s in State::ALL {
        state.set(label("state", s.name()), flag(snapshot.verdict.state == s));
    }
    out.push(state);

    let mut reasons = Family::gauge("vigil_reason_active", "1 while a reason is part of the verdict");
    for reason in Reason::ALL {
        reasons.set(label("reason", reason.code()), flag(snapshot.verdict.has(reason)));
    }
    out.push(reasons);

    let mut transitions =
        Family::counter("vigil_verdict_transitions", "Verdict changes, by the state entered");
    for (i, s) in State::ALL.iter().enumerate() {
        transitions.set(label("to", s.name()), snapshot.transitions[i] as f64);
    }
    out.push(transitions);

    let mut up = Family::gauge(
        "vigil_source_up",
        "1 if the source gave a reading on the last tick (only sources vigil reads are listed)",
    );
    let mut errors = Family::counter("vigil_source_errors", "Failed reads, by source");
    for source in Source::ALL {
        let status = snapshot.source(source);
        if status.enabled {
            up.set(label("source", source.name()), flag(status.up));
            errors.set(label("source", source.name()), status.errors_total as f64);
        }
    }
    out.push(up);
    out.push(errors);

    let mut visible = Family::gauge(
        "vigil_processes_visible",
        "1 if vigil has seen the app's processes (shared PID namespace); 0 turns process watching off",
    );
    visible.one(flag(snapshot.processes_visible));
    out.push(visible);
}

fn prediction_families(snapshot: &Snapshot, out: &mut Vec<Family>) {
    let mut eta = Family::gauge(
        "vigil_predicted_exhaustion_seconds",
        "Seconds until a resource is predicted to reach its limit (absent: not heading there)",
    );
    for (resource, seconds) in Resource::ALL.iter().zip(snapshot.signals.eta_by_resource()) {
        eta.set(label("resource", resource.name()), seconds);
    }
    let mut usage =
        Family::gauge("vigil_resource_usage_ratio", "Highest use of a resource as a share of its limit");
    for (resource, ratio) in Resource::ALL.iter().zip(snapshot.signals.usage) {
        usage.set(label("resource", resource.name()), ratio);
    }
    let mut restarts = Family::gauge(
        "vigil_restarts_recent",
        "Restarts of the app within the restart window (from RestartCount, or process identity)",
    );
    restarts.one(snapshot.restarts.recent as f64);
    let mut score = Family::gauge(
        "vigil_anomaly_score",
        "The autoencoder's reconstruction error on the last tick (absent: no model, or input window not full)",
    );
    score.one(snapshot.anomaly.score);
    let mut threshold = Family::gauge(
        "vigil_anomaly_threshold",
        "The reconstruction error above which ticks count as anomalous (absent: calibrating, or no model)",
    );
    threshold.one(snapshot.anomaly.threshold);
    let mut crash = Family::gauge(
        "vigil_predicted_crash_seconds",
        "Seconds until the next crash if uptimes keep shrinking (absent: no such pattern)",
    );
    crash.one(snapshot.restarts.next_crash_seconds);
    out.extend([eta, usage, restarts, crash, score, threshold]);
}

/// What the peers read of this task (`vigil_task_info` and the series the fleet query joins on
/// it), and what this task sees of the fleet, by revision.
fn fleet_families(snapshot: &Snapshot, out: &mut Vec<Family>) {
    if let Some(task) = &snapshot.sample.task {
        let mut info = Family::gauge(
            "vigil_task_info",
            "This task as the fleet view selects it: ECS cluster, family, service, revision, zone and task id; always 1",
        );
        info.set(
            vec![
                ("cluster", task.cluster.clone()),
                ("family", task.family.clone()),
                ("service", task.service_name.clone()),
                ("revision", task.revision.clone()),
                ("availability_zone", task.availability_zone.clone()),
                ("task", task.task_id().to_string()),
            ],
            1.0,
        );
        out.push(info);
    }
    let mut draining = Family::gauge("vigil_draining", "1 while /health answers 503");
    draining.one(flag(snapshot.verdict.state == State::Draining));
    out.push(draining);

    let mut evidence = Family::gauge(
        "vigil_reason_evidence",
        "1 for each draining reason this task's own rules show (in force or confirming), before the fleet's say",
    );
    for reason in snapshot.evidence.iter() {
        evidence.set(label("reason", reason.code()), 1.0);
    }
    let mut candidate = Family::gauge(
        "vigil_drain_candidate_seconds",
        "Seconds to the predicted failure of a task that qualifies for a drain, its claim on the drain budget (absent: none)",
    );
    candidate.one(snapshot.fleet.candidate_seconds);
    let mut ratio = Family::gauge(
        "vigil_anomaly_ratio",
        "The anomaly score over its calibrated threshold (absent: calibrating, or no model)",
    );
    ratio.one(
        snapshot.anomaly.score.zip(snapshot.anomaly.threshold).filter(|(_, t)| *t > 0.0).map(|(s, t)| s / t),
    );
    out.extend([evidence, candidate, ratio]);

    let Some(view) = snapshot.fleet_view.as_deref() else { return };
    let mut age = Family::gauge("vigil_fleet_view_age_seconds", "Age of the fleet view the last tick saw");
    age.one(snapshot.fleet.age_ms.map(|ms| ms as f64 / 1000.0));
    let mut used = Family::gauge(
        "vigil_fleet_used",
        "1 if the fleet view weighed the last verdict; 0: the local rules decided alone (no view, stale, no peers)",
    );
    used.one(flag(snapshot.fleet.used));
    let mut budget = Family::gauge("vigil_fleet_drain_budget", "Most tasks of the service draining at once");
    budget.one((snapshot.fleet.budget > 0).then_some(snapshot.fleet.budget as f64));
    let mut tasks = Family::gauge(
        "vigil_fleet_tasks",
        "Tasks of the service in the fleet view, this one included, by revision",
    );
    let mut drains =
        Family::gauge("vigil_fleet_draining_tasks", "Tasks of the service draining, by revision");
    let mut reasons = Family::gauge(
        "vigil_fleet_reason_tasks",
        "Tasks of the service whose own rules show a draining reason, by revision (absent: none)",
    );
    for count in crate::judge::fleet::by_revision(view) {
        let revision = || label("revision", count.revision.clone());
        tasks.set(revision(), count.tasks as f64);
        drains.set(revision(), count.draining as f64);
        for reason in Reason::ALL {
            let n = count.reasons[reason.index()];
            if n > 0 {
                reasons.set(
                    vec![("revision", count.revision.clone()), ("reason", reason.code().to_string())],
                    n as f64,
                );
            }
        }
    }
    out.extend([age, used, budget, tasks, drains, reasons]);
}

fn local_families(snapshot: &Snapshot, out: &mut Vec<Family>) {
    let sample = &snapshot.sample;

    let mut watched = Family::gauge("vigil_processes_watched", "Processes watched on the last tick");
    watched.one(sample.processes.len() as f64);
    out.push(watched);

    let mut rss =
        Family::gauge("vigil_process_resident_memory_bytes", "Resident memory of a watched process");
    let mut threads = Family::gauge("vigil_process_threads", "Threads of a watched process");
    let mut fds = Family::gauge("vigil_process_open_fds", "Open file descriptors of a watched process");
    let mut max_fds =
        Family::gauge("vigil_process_max_fds", "Soft limit on open file descriptors of a watched process");
    let mut cpu = Family::counter("vigil_process_cpu_seconds", "CPU time of a watched process");
    let mut start = Family::gauge(
        "vigil_process_start_time_ticks",
        "When a watched process started, in clock ticks after boot",
    );
    for process in &sample.processes {
        let labels = || vec![("pid", process.pid.to_string()), ("name", process.name.clone())];
        rss.set(labels(), opt(process.rss_bytes));
        threads.set(labels(), opt(process.threads));
        fds.set(labels(), opt(process.open_fds));
        max_fds.set(labels(), opt(process.fd_limit));
        cpu.set(labels(), process.cpu_ticks.map(|t| t as f64 / 100.0));
        start.set(labels(), process.start_ticks as f64);
    }
    out.extend([rss, threads, fds, max_fds, cpu, start]);

    let mut usage = Family::gauge("vigil_cgroup_memory_usage_bytes", "Memory charged to a watched cgroup");
    let mut working = Family::gauge(
        "vigil_cgroup_memory_working_set_bytes",
        "Memory usage minus inactive file pages of a watched cgroup",
    );
    let mut limit =
        Family::gauge("vigil_cgroup_memory_limit_bytes", "Memory limit of a watched cgroup (absent: none)");
    let mut ooms = Family::counter("vigil_cgroup_oom_kills", "Kernel OOM kills in a watched cgroup");
    let mut pids = Family::gauge("vigil_cgroup_pids", "Tasks (processes and threads) in a watched cgroup");
    let mut pids_max =
        Family::gauge("vigil_cgroup_pids_max", "Limit on tasks in a watched cgroup (absent: none)");
    let mut cpu_usage = Family::counter("vigil_cgroup_cpu_usage_seconds", "CPU time of a watched cgroup");
    let mut periods = Family::counter("vigil_cgroup_cpu_periods", "CPU quota periods of a watched cgroup");
    let mut throttled = Family::counter(
        "vigil_cgroup_cpu_throttled_periods",
        "CPU quota periods in which a watched cgroup was throttled",
    );
    let mut throttled_time =
        Family::counter("vigil_cgroup_cpu_throttled_seconds", "Time a watched cgroup spent throttled");
    for cgroup in &sample.cgroups {
        let labels = || label("cgroup", cgroup.path.clone());
        usage.set(labels(), opt(cgroup.memory_usage_bytes));
        working.set(labels(), opt(cgroup.memory_working_set_bytes()));
        limit.set(labels(), opt(cgroup.memory_limit_bytes));
        ooms.set(labels(), opt(cgroup.oom_kills));
        pids.set(labels(), opt(cgroup.pids_current));
        pids_max.set(labels(), opt(cgroup.pids_max));
        cpu_usage.set(labels(), cgroup.cpu_usage_usec.map(|us| us as f64 / 1e6));
        periods.set(labels(), opt(cgroup.cpu_periods));
        throttled.set(labels(), opt(cgroup.cpu_throttled_periods));
        throttled_time.set(labels(), cgroup.cpu_throttled_usec.map(|us| us as f64 / 1e6));
    }
    out.extend([usage, working, limit, ooms, pids, pids_max, cpu_usage, periods, throttled, throttled_time]);

    let mut queue =
        Family::gauge("vigil_listen_queue_length", "Connections waiting to be accepted on a listening port");
    let mut backlog = Family::gauge(
        "vigil_listen_backlog",
        "Accept-queue capacity of a listening port (its listen() backlog, capped by somaxconn)",
    );
    let mut overflows = Family::counter(
        "vigil_listen_overflows",
        "Times a full accept queue refused a connection (TcpExt ListenOverflows)",
    );
    let mut drops =
        Family::counter("vigil_listen_drops", "Connections dropped while listening (TcpExt ListenDrops)");
    for net in &sample.networks {
        let netns = net.namespace.map(|ns| ns.to_string()).unwrap_or_default();
        for listener in &net.listeners {
            let labels = || vec![("netns", netns.clone()), ("port", listener.port.to_string())];
            queue.set(labels(), f64::from(listener.queue));
            // 0 means unknown: only sockets listed over sock_diag have a backlog.
            if listener.backlog > 0 {
                backlog.set(labels(), f64::from(listener.backlog));
            }
        }
        overflows.set(label("netns", netns.clone()), opt(net.listen_overflows));
        drops.set(label("netns", netns.clone()), opt(net.listen_drops));
    }
    out.extend([queue, backlog, overflows, drops]);

    let mut pressure = Family::gauge(
        "vigil_pressure_ratio",
        "Share of the last 10 s in which tasks stalled on a resource (PSI avg10 / 100)",
    );
    let mut stalled =
        Family::counter("vigil_pressure_stalled_seconds", "Time tasks stalled on a resource (PSI total)");
    if let Some(psi) = &sample.pressure {
        for (resource, line) in [("cpu", psi.cpu), ("memory", psi.memory), ("io", psi.io)] {
            let Some(line) = line else { continue };
            let labels = |kind: &str| vec![("resource", resource.to_string()), ("kind", kind.to_string())];
            pressure.set(labels("some"), line.some_avg10 / 100.0);
            stalled.set(labels("some"), line.some_total_usec as f64 / 1e6);
            pressure.set(labels("full"), line.full_avg10.map(|v| v / 100.0));
            stalled.set(labels("full"), line.full_total_usec.map(|v| v as f64 / 1e6));
        }
    }
    out.extend([pressure, stalled]);

    if let Some(probe) = sample.probe {
        let mut answered =
            Family::gauge("vigil_app_probe_up", "1 if the app answered its health URL on the last tick");
        answered.one(flag(probe.answered()));
        out.push(answered);
        if let ProbeReading::Answered { status, latency_ms } = probe {
            let mut code =
                Family::gauge("vigil_app_probe_status_code", "HTTP status of the app's last health answer");
            code.one(f64::from(status));
            let mut latency = Family::gauge(
                "vigil_app_probe_latency_seconds",
                "How long the app took to answer its health URL",
            );
            latency.one(latency_ms as f64 / 1000.0);
            let mut sent = Family::gauge(
                "vigil_app_probe_sent_timestamp_seconds",
                "When the probe the app last answered was sent, Unix time (absent while it does not answer)",
            );
            sent.one(sample.probe_sent_ms as f64 / 1000.0);
            out.extend([code, latency, sent]);
        }
    }
}

fn ecs_families(snapshot: &Snapshot, out: &mut Vec<Family>) {
    let Some(task) = &snapshot.sample.task else {
        return;
    };

    let mut info = Family::gauge(
        "ecs_task_metadata_info",
        "ECS task metadata, sourced from the task metadata endpoint version 4",
    );
    info.set(
        vec![
            ("availability_zone", task.availability_zone.clone()),
            ("cluster", task.cluster.clone()),
            ("family", task.family.clone()),
            ("known_status", task.known_status.clone()),
            ("launch_type", task.launch_type.clone()),
            ("revision", task.revision.clone()),
            ("task_arn", task.task_arn.clone()),
        ],
        1.0,
    );
    out.push(info);

    let mut cpu_limit = Family::gauge("ecs_task_cpu_limit_vcpus", "Configured task CPU limit in vCPUs");
    cpu_limit.one(task.cpu_limit_vcpus);
    let mut memory_limit =
        Family::gauge("ecs_task_memory_limit_bytes", "Configured task memory limit in bytes");
    memory_limit.one(opt(task.memory_limit_bytes));
    out.extend([cpu_limit, memory_limit]);

    if let Some(storage) = task.ephemeral_storage {
        let mut used = Family::gauge(
            "ecs_task_ephemeral_storage_used_bytes",
            "Current Fargate task ephemeral storage usage in bytes",
        );
        used.one(storage.utilized_bytes as f64);
        let mut allocated = Family::gauge(
            "ecs_task_ephemeral_storage_allocated_bytes",
            "Configured Fargate task ephemeral storage allocated size in bytes",
        );
        allocated.one(storage.reserved_bytes as f64);
        out.extend([used, allocated]);
    }

    let mut cpu =
        Family::counter("ecs_container_cpu_usage_seconds", "Cumulative total container CPU usage in seconds");
    let mut usage = Family::gauge(
        "ecs_container_memory_usage_bytes",
        "Current container memory usage in bytes, including page cache",
    );
    let mut limit = Family::gauge(
        "ecs_container_memory_limit_bytes",
        "Memory limit applicable to the container in bytes: the container's, else the task's",
    );
    let mut cache = Family::gauge(
        "ecs_container_memory_page_cache_size_bytes",
        "Current page cache memory accounted to the container in bytes",
    );
    let mut working = Family::gauge(
        "vigil_container_memory_working_set_bytes",
        "Container memory usage minus inactive file pages, from the task metadata service",
    );
    let mut cpu_share = Family::gauge(
        "vigil_container_cpu_task_ratio",
        "CPU used by the container between its last two samples, as a share of the task's vCPU limit",
    );
    let mut restarts = Family::counter(
        "ecs_container_restarts",
        "Cumulative total count of container restarts (only with a restart policy)",
    );
    let mut health = Family::gauge(
        "vigil_container_healthy",
        "1 if ECS reports the container HEALTHY, 0 if UNHEALTHY (absent while unknown)",
    );
    for container in &task.containers {
        let labels = || label("container_name", container.name.clone());
        restarts.set(labels(), container.restart_count.map(f64::from));
        health.set(labels(), container.health.map(|h| flag(h == ContainerHealth::Healthy)));
        let Some(stats) = &container.stats else { continue };
        cpu.set(labels(), stats.cpu_usage_seconds);
        usage.set(labels(), opt(stats.memory_usage_bytes));
        limit.set(labels(), opt(stats.memory_limit_bytes));
        cache.set(labels(), opt(stats.memory_page_cache_bytes));
        working.set(labels(), opt(stats.memory_working_set_bytes));
        cpu_share.set(labels(), stats.cpu_fraction_of_task);
    }
    out.extend([cpu, usage, limit, cache, working, cpu_share, restarts, health]);

    if let Some(net) = task.network {
        let pairs: [(&'static str, &'static str, u64); 8] = [
            (
                "ecs_network_receive_bytes",
                "Cumulative total size of network packets received in bytes",
                net.rx_bytes,
            ),
            (
                "ecs_network_receive_packets",
                "Cumulative total count of network packets received",
                net.rx_packets,
            ),
            (
                "ecs_network_receive_errors",
                "Cumulative total count of network errors in receiving",
                net.rx_errors,
            ),
            (
                "ecs_network_receive_packets_dropped",
                "Cumulative total count of network packets dropped in receiving",
                net.rx_dropped,
            ),
            (
                "ecs_network_transmit_bytes",
                "Cumulative total size of network packets transmitted in bytes",
                net.tx_bytes,
            ),
            (
                "ecs_network_transmit_packets",
                "Cumulative total count of network packets transmitted",
                net.tx_packets,
            ),
            (
                "ecs_network_transmit_errors",
                "Cumulative total count of network errors in transmit",
                net.tx_errors,
            ),
            (
                "ecs_network_transmit_packets_dropped",
                "Cumulative total count of network packets dropped in transmit",
                net.tx_dropped,
            ),
        ];
        for (name, help, value) in pairs {
            let mut family = Family::counter(name, help);
            family.one(value as f64);
            out.push(family);
        }
    }
}
