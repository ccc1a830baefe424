//! The real HTTP server on `127.0.0.1:0`, fed hand-made snapshots.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use vigil::config::Mode;
use vigil::judge::anomaly::Scorer;
use vigil::judge::pipeline::{Pipeline, PipelineConfig};
use vigil::judge::sample::{
    CgroupReading, CgroupVersion, ContainerHealth, ContainerReading, ContainerStats, Listener, NetReading,
    NetworkCounters, Pressure, PressureLine, ProbeReading, ProcessReading, Sample, Source, TaskReading,
};
use vigil::judge::verdict::State;
use vigil::serve::server;
use vigil::serve::shared::Shared;
use vigil::serve::snapshot::{AnomalyStatus, Snapshot, SourceStatus};

pub struct Running {
    pub address: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn start(interval: Duration) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shared = Arc::new(Shared::new(Mode::Local, interval));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, Arc::clone(&shared), async {
        let _ = stopped.await;
    }));
    Running { address, shared, stop: Some(stop) }
}

pub async fn get(address: SocketAddr, path: &str) -> (u16, String, String) {
    request(reqwest::Method::GET, address, path, None).await
}

async fn request(
    method: reqwest::Method,
    address: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, String) {
    let client = reqwest::Client::new();
    let mut builder = client.request(method, format!("http://{address}{path}"));
    if let Some(accept) = accept {
        builder = builder.header("accept", accept);
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// A snapshot with one of everything, as the tick loop would publish it.
pub fn full_snapshot() -> Snapshot {
    let sample = Sample {
        at: 42_000,
        wall_ms: 1_790_000_042_000,
        proc_readable: true,
        processes: vec![ProcessReading {
            pid: 7,
            name: "java".into(),
            start_ticks: 1234,
            state: 'S',
            rss_bytes: Some(104_857_600),
            threads: Some(42),
            open_fds: Some(120),
            fd_limit: Some(65_536),
            cpu_ticks: Some(250),
            cgroup: Some(0),
            network: Some(0),
        }],
        cgroups: vec![CgroupReading {
            path: "/ecs/task/app".into(),
            version: CgroupVersion::V2,
            memory_usage_bytes: Some(200_000_000),
            memory_limit_bytes: Some(536_870_912),
            memory_inactive_file_bytes: Some(50_000_000),
            oom_kills: Some(1),
            pids_current: Some(44),
            pids_max: Some(1024),
            pids_limit_hits: Some(0),
            cpu_usage_usec: Some(12_500_000),
            cpu_periods: Some(1000),
            cpu_throttled_periods: Some(25),
            cpu_throttled_usec: Some(1_500_000),
        }],
        networks: vec![NetReading {
            namespace: Some(4_026_531_992),
            listeners: vec![Listener { port: 8080, queue: 3, backlog: 511 }],
            listen_overflows: Some(5),
            listen_drops: Some(6),
        }],
        pressure: Some(Pressure {
            cpu: Some(PressureLine {
                some_avg10: 1.5,
                some_total_usec: 2_000_000,
                full_avg10: None,
                full_total_usec: None,
            }),
            memory: Some(PressureLine {
                some_avg10: 0.0,
                some_total_usec: 10,
                full_avg10: Some(0.0),
                full_total_usec: Some(5),
            }),
            io: None,
        }),
        task: Some(TaskReading {
            task_arn: "arn:aws:ecs:us-east-1:123456789012:task/c/abc".into(),
            cluster: "c".into(),
            family: "payments".into(),
            revision: "7".into(),
            launch_type: "FARGATE".into(),
            availability_zone: "us-east-1a".into(),
            service_name: "payments-svc".into(),
            known_status: "RUNNING".into(),
            cpu_limit_vcpus: Some(0.25),
            memory_limit_bytes: Some(536_870_912),
            containers: vec![ContainerReading {
                name: "app".into(),
                docker_id: "abc-1".into(),
                image: "app:1".into(),
                known_status: "RUNNING".into(),
                restart_count: Some(2),
                health: Some(ContainerHealth::Healthy),
                exit_code: None,
                stats: Some(ContainerStats {
                    read_unix_nanos: 1,
                    preread_unix_nanos: Some(0),
                    memory_usage_bytes: Some(31_817_728),
                    memory_limit_bytes: Some(536_870_912),
                    memory_working_set_bytes: Some(13_914_112),
                    memory_page_cache_bytes: Some(18_280_448),
                    cpu_usage_seconds: Some(0.117),
                    cpu_fraction_of_task: Some(0.5),
                    pids_current: None,
                    pids_limit: None,
                    network: None,
                }),
            }],
            network: Some(NetworkCounters {
                rx_bytes: 100,
                rx_packets: 2,
                tx_bytes: 300,
                tx_packets: 4,
                ..Default::default()
            }),
            ephemeral_storage: None,
            stats_stale: false,
        }),
        probe: Some(ProbeReading::Answered { status: 200, latency_ms: 12 }),
        probe_sent_ms: 1_700_000_000_250,
    };
    let mut judge = Pipeline::<NoModel>::new(PipelineConfig::default(), None, 0);
    let step = judge.step(&sample, false, None);
    let mut sources: [SourceStatus; Source::ALL.len()] = Default::default();
    for source in Source::ALL {
        sources[source.index()] = SourceStatus {
            enabled: source != Source::Tmds,
            up: source != Source::Pressure,
            errors_total: source.index() as u64,
            last_success_at: Some(41_000),
            last_error: (source == Source::Pressure).then(|| "read /proc/pressure/io: gone".into()),
        };
    }
    Snapshot {
        mode: Mode::Local,
        tick: 42,
        verdict: judge.verdict().clone(),
        processes_visible: true,
        sources,
        transitions: [0, 1, 0],
        signals: step.signals,
        restarts: step.restarts,
        anomaly: AnomalyStatus {
            model: Some("embedded vigil-ae-int8".into()),
            score: Some(0.0625),
            threshold: Some(0.25),
            calibrated_ticks: 300,
            calibration_ticks: 300,
            above_ticks: 0,
            anomalous: false,
            errors_total: 0,
        },
        evidence: step.evidence,
        fleet: step.fleet,
        fleet_view: Some(std::sync::Arc::new(fleet_view())),
        sample,
    }
}

#[tokio::test]
async fn health_is_ok_until_stopping_then_503_at_once() {
    let running = start(Duration::from_secs(1)).await;
    running.shared.publish(full_snapshot());
    let (status, content_type, body) = get(running.address, "/health").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(content_type.starts_with("text/plain"));

    running.shared.stop();
    let (status, _, body) = get(running.address, "/health").await;
    assert_eq!(status, 503);
    assert_eq!(body, "draining: stopping (vigil received a stop signal)\n");
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let running = start(Duration::from_secs(1)).await;
    let (status, _, _) = get(running.address, "/nope").await;
    assert_eq!(status, 404);
    for method in
        [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::HEAD]
    {
        let (status, _, _) = request(method.clone(), running.address, "/health", None).await;
        assert_eq!(status, 405, "{method}");
    }
}

#[tokio::test]
async fn live_turns_503_when_the_tick_loop_stalls() {
    let running = start(Duration::from_millis(50)).await;
    running.shared.publish(full_snapshot());
    assert_eq!(get(running.address, "/live").await.0, 200);
    // Nothing publishes any more: after three intervals the loop counts as stalled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, body) = get(running.address, "/live").await;
    assert_eq!(status, 503, "{body}");
    running.shared.publish(full_snapshot());
    assert_eq!(get(running.address, "/live").await.0, 200);
}

#[tokio::test]
async fn status_is_json_with_verdict_sources_and_readings() {
    let running = start(Duration::from_secs(1)).await;
    running.shared.publish(full_snapshot());
    let (status, content_type, body) = get(running.address, "/status").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["state"], "healthy");
    assert_eq!(json["mode"], "local");
    assert_eq!(json["health"]["status"], 200);
    assert_eq!(json["tick"], 42);
    assert_eq!(json["sources"]["pressure"]["last_error"], "read /proc/pressure/io: gone");
    assert_eq!(json["sources"]["tmds"]["enabled"], false);
    assert_eq!(json["readings"]["processes"][0]["pid"], 7);
    assert_eq!(json["readings"]["task"]["containers"][0]["restart_count"], 2);
    assert_eq!(json["readings"]["probe"]["outcome"], "answered");
    assert_eq!(json["anomaly"]["score"], 0.0625);
    assert_eq!(json["anomaly"]["threshold"], 0.25);
    assert_eq!(json["anomaly"]["model"], "embedded vigil-ae-int8");
}

#[tokio::test]
async fn degraded_stays_200_and_says_why() {
    let running = start(Duration::from_secs(1)).await;
    let mut snapshot = full_snapshot();
    snapshot.sample.probe = Some(ProbeReading::Answered { status: 503, latency_ms: 2 });
    let mut judge = Pipeline::<NoModel>::new(PipelineConfig::default(), None, 0);
    judge.step(&snapshot.sample, false, None);
    snapshot.verdict = judge.verdict().clone();
    assert_eq!(snapshot.verdict.state, State::Degraded);
    running.shared.publish(snapshot);
    let (status, _, body) = get(running.address, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body, "ok; degraded: app_errors (app health URL answered 503 in 2 ms)\n");
}

/// The exposition is compared with a checked-in file; `VIGIL_BLESS=1 cargo test` rewrites it.
#[tokio::test]
async fn metrics_match_the_golden_file() {
    let running = start(Duration::from_secs(1)).await;
    running.shared.publish(full_snapshot());
    let (status, content_type, body) = get(running.address, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(content_type, vigil::serve::metrics::TEXT_CONTENT_TYPE);
    check_golden("metrics.txt", &body);

    let (_, content_type, body) = request(
        reqwest::Method::GET,
        running.address,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .await;
    assert_eq!(content_type, vigil::serve::metrics::OPENMETRICS_CONTENT_TYPE);
    assert!(body.ends_with("# EOF\n"));
    check_golden("metrics.openmetrics.txt", &body);
}

fn check_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden").join(name);
    if std::env::var_os("VIGIL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with VIGIL_BLESS=1 to create it)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(e, a)| e != a)
            .take(5)
            .map(|(e, a)| format!("- {e}\n+ {a}"))
            .collect();
        panic!("{} differs from the output:\n{}", path.display(), diff.join("\n"));
    }
}

/// A service of three tasks, one of them on a newer revision that leaks.
fn fleet_view() -> vigil::judge::fleet::FleetView {
    use vigil::judge::evidence::Reason;
    use vigil::judge::fleet::{FleetView, Peer};
    let peer = |task: &str, revision: &str, draining: bool, evidence: &[Reason]| Peer {
        task: task.into(),
        zone: "us-east-1b".into(),
        revision: revision.into(),
        draining,
        evidence: evidence.iter().copied().collect(),
        ..Peer::default()
    };
    FleetView {
        at: 41_000,
        own: Some(peer("abc", "7", false, &[])),
        peers: vec![peer("def", "7", false, &[]), peer("ghi", "8", true, &[Reason::MemoryExhaustion])],
    }
}

/// No model: these snapshots need only the rules.
struct NoModel;

impl Scorer for NoModel {
    type Error = std::convert::Infallible;

    fn score(&mut self, _: &[f32; vigil::judge::vector::INPUT_WIDTH]) -> Result<f32, Self::Error> {
        Ok(0.0)
    }
}

/// Clients that open connections and sit on them — idle, or with headers never finished — do
/// not make `/health` wait: each answer comes within a second, as a load balancer's check needs.
#[tokio::test]
async fn idle_and_slow_clients_do_not_starve_the_health_answer() {
    use tokio::io::AsyncWriteExt;
    let running = start(Duration::from_secs(1)).await;
    running.shared.publish(full_snapshot());
    let mut hogs = Vec::new();
    for i in 0..800 {
        let mut stream = tokio::net::TcpStream::connect(running.address).await.unwrap();
        if i % 2 == 1 {
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: vigil\r\nX-Slow: ").await.unwrap();
        }
        hogs.push(stream);
    }
    for poll in 0..10 {
        let answer = tokio::time::timeout(Duration::from_secs(1), get(running.address, "/health")).await;
        let (status, _, body) = answer.unwrap_or_else(|_| panic!("poll {poll}: no answer within 1 s"));
        assert_eq!((status, body.as_str()), (200, "ok\n"), "poll {poll}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(hogs);
}
