//! The tick loop in ECS mode against the fake metadata service serving real Fargate captures.

use std::sync::Arc;
use std::time::Duration;

use crate::fake_tmds::{FakeTmds, fixture};
use vigil::config::Config;
use vigil::config::Mode;
use vigil::serve::shared::Shared;
use vigil::tick::Agent;

pub(crate) async fn agent_against(fake: &FakeTmds) -> (Agent, Arc<Shared>) {
    // The fixture process table has vanishing processes on purpose: keep their warnings quiet.
    vigil::log::init(vigil::log::Level::Error, vigil::log::Format::Json);
    let base_url = fake.base_url();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/local");
    let config = Config::from_lookup(|name| match name {
        "ECS_CONTAINER_METADATA_URI_V4" => Some(base_url.clone()),
        "VIGIL_PROC_ROOT" => Some(format!("{fixtures}/proc")),
        "VIGIL_CGROUP_ROOT" => Some(format!("{fixtures}/cgroup-v1")),
        _ => None,
    })
    .unwrap();
    let shared = Arc::new(Shared::new(Mode::Ecs, Duration::from_secs(1)));
    let agent = Agent::new(&config, Arc::clone(&shared)).unwrap();
    assert_eq!(agent.mode(), Mode::Ecs);
    (agent, shared)
}

/// The `value` of the sample line `name{labels}`, if present.
pub(crate) fn sample_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_show_each_running_normal_containers_memory_from_the_fixture() {
    let fake =
        FakeTmds::with_fixtures("fargate-task-real-2025-02.json", "fargate-task-stats-real-2025-02.json")
            .await;
    let (mut agent, shared) = agent_against(&fake).await;
    agent.tick().await;
    let metrics = vigil::serve::metrics::to_prometheus_text(&shared.metrics.encode());

    // Expected values straight from the fixtures, read here with a plain JSON parser.
    let task: serde_json::Value = serde_json::from_slice(&fixture("fargate-task-real-2025-02.json")).unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&fixture("fargate-task-stats-real-2025-02.json")).unwrap();
    let mut checked = 0;
    for container in task["Containers"].as_array().unwrap() {
        let name = container["Name"].as_str().unwrap();
        let series = format!("ecs_container_memory_usage_bytes{{container_name=\"{name}\"}}");
        match stats[container["DockerId"].as_str().unwrap()]["memory_stats"]["usage"].as_f64() {
            Some(usage) => {
                assert_eq!(sample_value(&metrics, &series), Some(usage), "{name}");
                checked += 1;
            }
            // A stopped container's stats are null: no memory series for it.
            None => assert_eq!(sample_value(&metrics, &series), None, "{name}"),
        }
    }
    assert_eq!(checked, 2);
    assert_eq!(
        sample_value(&metrics, "ecs_container_memory_usage_bytes{container_name=\"prometheus\"}"),
        Some(127_934_464.0)
    );
    // No container limit: the task's 512 MiB.
    assert_eq!(
        sample_value(&metrics, "ecs_container_memory_limit_bytes{container_name=\"prometheus\"}"),
        Some(536_870_912.0)
    );
    assert_eq!(sample_value(&metrics, "ecs_task_cpu_limit_vcpus"), Some(0.25));
    assert_eq!(sample_value(&metrics, "vigil_mode{mode=\"ecs\"}"), Some(1.0));
    assert_eq!(sample_value(&metrics, "vigil_source_up{source=\"tmds\"}"), Some(1.0));
    assert!(metrics.contains("ecs_task_metadata_info{"), "{metrics}");
}
