//! The artefacts users paste: every metric the Prometheus rules and the Grafana dashboard query
//! must exist in vigil's `/metrics`.

use std::collections::BTreeSet;
use std::time::Duration;

use vigil::judge::features::{Resource, ResourceForecast};
use vigil::judge::forecast::{Course, Forecast, Scale};

use crate::server::{full_snapshot, get, start};

const RULES: &str = include_str!("../../task-definition/prometheus/vigil.rules.yml");
const DASHBOARD: &str = include_str!("../../task-definition/grafana/vigil-dashboard.json");

/// The names of vigil's own series in a PromQL text: identifiers starting `vigil_` or `ecs_`.
/// Recording rules' names (with a `:`) are Prometheus' own and are left out.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut token = String::new();
    for c in promql.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            token.push(c);
            continue;
        }
        let starts_like_ours = token.starts_with("vigil_") || token.starts_with("ecs_");
        if starts_like_ours && !token.contains(':') {
            names.insert(std::mem::take(&mut token));
        }
        token.clear();
    }
    names
}

/// Every PromQL text in the dashboard: panel targets' `expr` and template variables' `query`.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(q)) => out.push(q.clone()),
                    ("query", serde_json::Value::String(q)) => out.push(q.clone()),
                    ("query", serde_json::Value::Object(q)) => {
                        if let Some(serde_json::Value::String(q)) = q.get("query") {
                            out.push(q.clone());
                        }
                    }
                    _ => dashboard_queries(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| dashboard_queries(item, out)),
        _ => {}
    }
}

/// The series names in an exposition text (sample lines, not comments).
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// `/metrics` of a snapshot with one of everything, a forecast and a predicted crash included
/// (families without samples are not rendered).
async fn rendered_metrics() -> BTreeSet<String> {
    let running = start(Duration::from_secs(1)).await;
    let mut snapshot = full_snapshot();
    snapshot.signals.forecasts.push(ResourceForecast {
        resource: Resource::Memory,
        subject: "cgroup /ecs/task/app".into(),
        forecast: Forecast {
            eta_seconds: 120.0,
            rate_per_second: 1_000_000.0,
            confidence: 0.9,
            level: 200_000_000.0,
            limit: 536_870_912.0,
            scale: Scale::Short,
            course: Course::Steady,
        },
        warm: true,
    });
    snapshot.restarts.next_crash_seconds = Some(40.0);
    running.shared.publish(snapshot);
    let (status, _, body) = get(running.address, "/metrics").await;
    assert_eq!(status, 200);
    exposed_names(&body)
}

fn missing(queried: &BTreeSet<String>, exposed: &BTreeSet<String>) -> Vec<String> {
    queried.difference(exposed).cloned().collect()
}

#[tokio::test]
async fn every_metric_the_rules_query_is_exposed() {
    let exposed = rendered_metrics().await;
    let queried = metric_names(RULES);
    assert!(queried.len() >= 8, "the rules file lost its queries: {queried:?}");
    assert_eq!(missing(&queried, &exposed), Vec::<String>::new(), "exposed: {exposed:?}");
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exposed() {
    let exposed = rendered_metrics().await;
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 10, "the dashboard lost its panels: {queries:?}");
    let queried: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert_eq!(missing(&queried, &exposed), Vec::<String>::new(), "exposed: {exposed:?}");
}

#[tokio::test]
async fn a_misspelt_metric_is_reported_missing() {
    let exposed = rendered_metrics().await;
    let queried = metric_names(
        "max by (task) (vigil_health_state) > 0 and on (task) vigil_helth_state \
         or service:vigil_tasks:count",
    );
    assert_eq!(queried.len(), 2, "{queried:?}");
    assert_eq!(missing(&queried, &exposed), vec!["vigil_helth_state".to_string()]);
}

/// Reads what the agent-check listener says to one connection, up to its close.
async fn agent_line(address: std::net::SocketAddr) -> String {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut text)).await.unwrap().unwrap();
    text
}

#[tokio::test]
async fn agent_check_says_one_line_per_connection_and_drain_on_stop() {
    use std::sync::Arc;
    use vigil::config::Mode;
    use vigil::serve::agent_check;
    use vigil::serve::shared::Shared;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shared = Arc::new(Shared::new(Mode::Local, Duration::from_secs(1)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(agent_check::serve(listener, Arc::clone(&shared), async {
        let _ = stopped.await;
    }));
    shared.publish(full_snapshot());
    assert_eq!(agent_line(address).await, "up ready 100%\n");

    // Clients that connect and never read hold nothing: the next one is still answered.
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(tokio::net::TcpStream::connect(address).await.unwrap());
    }
    assert_eq!(agent_line(address).await, "up ready 100%\n");

    shared.stop();
    assert_eq!(agent_line(address).await, "drain\n");
    let _ = stop.send(());
}
