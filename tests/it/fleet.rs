//! The fleet source end to end: the tick loop in ECS mode against the fake metadata service and
//! a fake Prometheus query API that answers what a real one would for a service of three tasks.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::fake_tmds::FakeTmds;
use vigil::config::{Config, Mode};
use vigil::serve::shared::Shared;
use vigil::tick::Agent;

/// The fixture's task id (the end of its TaskARN).
const OWN_TASK: &str = "bae32def0ab64f06818e8862e58f8d6d";

/// A fake `/api/v1/query`: answers `body` and remembers the queries it was asked.
#[derive(Clone, Default)]
struct FakePrometheus {
    body: Arc<Mutex<String>>,
    queries: Arc<Mutex<Vec<String>>>,
}

impl FakePrometheus {
    async fn start(self) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let fake = self.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let fake = fake.clone();
                        async move {
                            let query = request.uri().query().unwrap_or_default().to_string();
                            fake.queries.lock().unwrap().push(query);
                            let body = fake.body.lock().unwrap().clone();
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        format!("http://{address}")
    }

    fn answer(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

/// What Prometheus answers for this task and two peers, one of them draining.
fn three_tasks() -> String {
    let series = |name: &str, instance: &str, labels: serde_json::Value, value: &str| {
        let mut metric = serde_json::json!({"__name__": name, "job": "vigil", "instance": instance});
        for (k, v) in labels.as_object().unwrap() {
            metric[k] = v.clone();
        }
        serde_json::json!({"metric": metric, "value": [1_790_000_000.0, value]})
    };
    let info = |instance: &str, task: &str, zone: &str| {
        series(
            "vigil_task_info",
            instance,
            serde_json::json!({"task": task, "availability_zone": zone, "revision": "9"}),
            "1",
        )
    };
    serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [
        info("10.0.0.1:9797", OWN_TASK, "us-east-1a"),
        info("10.0.0.2:9797", "peer2", "us-east-1b"),
        info("10.0.0.3:9797", "peer3", "us-east-1c"),
        series("vigil_draining", "10.0.0.3:9797", serde_json::json!({}), "1"),
        series("vigil_reason_evidence", "10.0.0.3:9797", serde_json::json!({"reason": "fd_exhaustion"}), "1"),
    ]}})
    .to_string()
}

async fn agent(tmds: &FakeTmds, prometheus: &str) -> (Agent, Arc<Shared>) {
    vigil::log::init(vigil::log::Level::Error, vigil::log::Format::Json);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/local");
    let (tmds, prometheus) = (tmds.base_url(), prometheus.to_string());
    let config = Config::from_lookup(|name| match name {
        "ECS_CONTAINER_METADATA_URI_V4" => Some(tmds.clone()),
        "VIGIL_FLEET_URL" => Some(prometheus.clone()),
        "VIGIL_FLEET_INTERVAL" => Some("1s".into()),
        "VIGIL_PROC_ROOT" => Some(format!("{fixtures}/proc")),
        "VIGIL_CGROUP_ROOT" => Some(format!("{fixtures}/cgroup-v1")),
        _ => None,
    })
    .unwrap();
    let shared = Arc::new(Shared::new(Mode::Ecs, Duration::from_secs(1)));
    let mut agent = Agent::new(&config, Arc::clone(&shared)).unwrap();
    agent.start_fleet();
    (agent, shared)
}

fn status(shared: &Shared) -> serde_json::Value {
    let snapshot = shared.snapshot();
    let doc = vigil::serve::status::Status::new(&snapshot, shared.now(), false, Duration::from_secs(1));
    serde_json::to_value(doc).unwrap()
}

/// Ticks until `done` holds of `/status`, for at most 10 s.
async fn tick_until(
    agent: &mut Agent,
    shared: &Shared,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..100 {
        agent.tick().await;
        let doc = status(shared);
        if done(&doc) {
            return doc;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not reached in 10 s: {}", status(shared));
}

#[tokio::test]
async fn the_fleet_view_comes_from_one_query_for_this_tasks_service() {
    let tmds =
        FakeTmds::with_fixtures("fargate-task-real-2025-02.json", "fargate-task-stats-real-2025-02.json")
            .await;
    let fake = FakePrometheus::default();
    fake.answer(three_tasks());
    let url = fake.clone().start().await;
    let (mut agent, shared) = agent(&tmds, &url).await;

    let doc = tick_until(&mut agent, &shared, |doc| doc["fleet"]["used"] == true).await;
    assert_eq!(doc["fleet"]["peers"], 2);
    assert_eq!(doc["fleet"]["peers_draining"], 1);
    assert_eq!(doc["fleet"]["budget"], 1);
    assert_eq!(doc["sources"]["fleet"]["up"], true);

    let query = fake.queries().last().cloned().unwrap();
    let query: String = url_decode(&query);
    assert!(
        query.contains(r#"cluster="arn:aws:ecs:us-east-1:829490980523:cluster/prom-ecs-exporter-sandbox""#),
        "{query}"
    );
    assert!(query.contains(r#"family="prom-ecs-exporter-sandbox-main-fargate""#), "{query}");

    let metrics = vigil::serve::metrics::to_prometheus_text(&shared.metrics.encode());
    assert!(metrics.contains(&format!(r#"task="{OWN_TASK}""#)), "vigil_task_info names the task");
    assert!(
        metrics.contains(r#"vigil_fleet_reason_tasks{revision="9",reason="fd_exhaustion"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_broken_prometheus_is_an_error_and_the_local_rules_decide() {
    let tmds =
        FakeTmds::with_fixtures("fargate-task-real-2025-02.json", "fargate-task-stats-real-2025-02.json")
            .await;
    let fake = FakePrometheus::default();
    fake.answer("<html>502 Bad Gateway</html>".into());
    let url = fake.clone().start().await;
    let (mut agent, shared) = agent(&tmds, &url).await;

    let doc =
        tick_until(&mut agent, &shared, |doc| doc["sources"]["fleet"]["errors_total"].as_u64() >= Some(1))
            .await;
    assert_eq!(doc["fleet"]["used"], false);
    assert_eq!(doc["fleet"]["fallback"], "no fleet view");
    assert_eq!(doc["sources"]["fleet"]["up"], false);
    let error = doc["sources"]["fleet"]["last_error"].as_str().unwrap();
    assert!(error.starts_with("answer is not a Prometheus query result"), "{error}");
    assert_eq!(doc["health"]["status"], 200, "vigil's own input failing never turns health red");
}

#[tokio::test]
async fn prometheus_gone_is_an_error_and_the_local_rules_decide() {
    let tmds =
        FakeTmds::with_fixtures("fargate-task-real-2025-02.json", "fargate-task-stats-real-2025-02.json")
            .await;
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (mut agent, shared) = agent(&tmds, &url).await;
    let doc =
        tick_until(&mut agent, &shared, |doc| doc["sources"]["fleet"]["errors_total"].as_u64() >= Some(1))
            .await;
    assert_eq!(doc["fleet"]["used"], false);
    assert!(doc["sources"]["fleet"]["last_error"].as_str().unwrap().starts_with("query failed"));
    assert_eq!(doc["health"]["status"], 200);
}

fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
