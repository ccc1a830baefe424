//! The bad-input matrix: the metadata service's answers broken every way we know of, first at
//! the parser (every field of real responses mutated), then through the whole agent against the
//! fake service. Expected each time: no crash, a tick that ends within its time bound, the error
//! counted in `vigil_source_errors_total`, health not turned red by vigil's own input (fail
//! open), and recovery once the service answers again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::ecs::{agent_against, sample_value};
use crate::fake_tmds::{Endpoint, FakeTmds, Reply, fixture};
use vigil::judge::verdict::State;
use vigil::serve::shared::Shared;
use vigil::sources::tmds::{DEFAULT_TOTAL_TIMEOUT, parse_stats, parse_task, to_reading};
use vigil::tick::Agent;

const PAIRS: [(&str, &str); 4] = [
    ("fargate-task-real-2025-04.json", "fargate-task-stats-real-2025-04.json"),
    ("ec2-awsvpc-task-real-2025-04.json", "ec2-awsvpc-task-stats-real-2025-04.json"),
    ("ec2-bridge-task-real-2025-02.json", "ec2-bridge-task-stats-real-2025-02.json"),
    ("managed-instances-task-real-2026-09.json", "managed-instances-task-stats-real-2026-09.json"),
];

/// What replaces a value: `null` and every other JSON type, extremes included.
fn replacements() -> [Value; 9] {
    [
        Value::Null,
        json!("x"),
        json!(""),
        json!(-1),
        json!(1e308),
        json!(true),
        json!([]),
        json!({}),
        json!(u64::MAX),
    ]
}

/// Every path below the root of `value`, as JSON pointers.
fn paths(value: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.replace('~', "~0").replace('/', "~1"), v)).collect(),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        _ => return,
    };
    for (key, child) in children {
        let path = format!("{at}/{key}");
        out.push(path.clone());
        paths(child, path, out);
    }
}

/// The container a pointer into a `/task` body (`/Containers/<i>/...`) or a `/task/stats` body
/// (`/<DockerId>/...`) belongs to, if it is strictly inside one.
fn container_of(path: &str, task: &Value, in_stats: bool) -> Option<String> {
    let mut parts = path.split('/').skip(1);
    if in_stats {
        let id = parts.next()?;
        parts.next()?;
        return Some(id.to_string());
    }
    if parts.next()? != "Containers" {
        return None;
    }
    let index: usize = parts.next()?.parse().ok()?;
    parts.next()?;
    task["Containers"][index]["DockerId"].as_str().map(str::to_string)
}

#[test]
fn every_field_of_real_responses_mutated_parses_and_loses_no_other_container() {
    let mut documents = 0;
    for (task_name, stats_name) in PAIRS {
        let task_body = fixture(task_name);
        let stats_body = fixture(stats_name);
        let task_json: Value = serde_json::from_slice(&task_body).unwrap();
        let stats_json: Value = serde_json::from_slice(&stats_body).unwrap();
        let original =
            to_reading(&parse_task(&task_body).unwrap(), Some(&parse_stats(&stats_body).unwrap()), None);
        let by_id = |reading: &vigil::judge::sample::TaskReading, id: &str| {
            reading.containers.iter().find(|c| c.docker_id == id).cloned()
        };

        for (in_stats, doc) in [(false, &task_json), (true, &stats_json)] {
            let mut all = Vec::new();
            paths(doc, String::new(), &mut all);
            for path in &all {
                let mut variants: Vec<Value> = Vec::new();
                for replacement in replacements() {
                    let mut mutated = doc.clone();
                    *mutated.pointer_mut(path).unwrap() = replacement;
                    variants.push(mutated);
                }
                // The field gone.
                let (parent, key) = path.rsplit_once('/').unwrap();
                let mut removed = doc.clone();
                let holder = if parent.is_empty() { Some(&mut removed) } else { removed.pointer_mut(parent) };
                match holder.unwrap() {
                    Value::Object(map) => {
                        map.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Value::Array(items) => {
                        items.remove(key.parse::<usize>().unwrap());
                    }
                    _ => unreachable!(),
                }
                variants.push(removed);

                for mutated in variants {
                    documents += 1;
                    let body = serde_json::to_vec(&mutated).unwrap();
                    let (task, stats) = if in_stats {
                        (parse_task(&task_body).unwrap(), parse_stats(&body))
                    } else {
                        (
                            parse_task(&body).unwrap_or_else(|e| panic!("{task_name} {path}: {e}")),
                            parse_stats(&stats_body),
                        )
                    };
                    let reading = to_reading(&task, stats.as_ref().ok(), Some(&original));
                    // A broken part of one container takes nothing from the others.
                    if let Some(broken) = container_of(path, &task_json, in_stats) {
                        for other in original.containers.iter().filter(|c| c.docker_id != broken) {
                            assert_eq!(
                                by_id(&reading, &other.docker_id).as_ref(),
                                Some(other),
                                "{task_name}/{stats_name}: mutating {path} changed container {}",
                                other.name
                            );
                        }
                    }
                }
            }
        }

        // Unknown fields in every object are ignored: the reading is the same.
        for (in_stats, doc) in [(false, &task_json), (true, &stats_json)] {
            let mut all = vec![String::new()];
            paths(doc, String::new(), &mut all);
            for path in all.iter().filter(|p| doc.pointer(p).is_some_and(Value::is_object)) {
                let mut extended = doc.clone();
                let object = extended.pointer_mut(path).unwrap().as_object_mut().unwrap();
                object.insert("VigilUnknownField".into(), json!({"nested": [1, null, "x"]}));
                let body = serde_json::to_vec(&extended).unwrap();
                let reading = if in_stats {
                    to_reading(&parse_task(&task_body).unwrap(), Some(&parse_stats(&body).unwrap()), None)
                } else {
                    to_reading(&parse_task(&body).unwrap(), Some(&parse_stats(&stats_body).unwrap()), None)
                };
                assert_eq!(
                    reading, original,
                    "{task_name}: an unknown field at {path:?} changed the reading"
                );
                documents += 1;
            }
        }
    }
    assert!(documents > 10_000, "only {documents} documents tried");
}

#[test]
fn bodies_that_are_not_objects_are_clear_errors() {
    for body in [&b""[..], b"null", b"[]", b"42", b"\"task\"", b"{\"Containers\": [", b"\xff\xfe", b"{}}"] {
        let error = parse_task(body).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("/task"), "{body:?}: {error}");
    }
    for body in [&b""[..], b"[]", b"42", b"{\"a\": ", b"\x00"] {
        let error = parse_stats(body).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains("/task/stats"), "{body:?}: {error}");
    }
}

/// The sample value of `series` in the agent's exposition (0 when absent).
fn value(shared: &Shared, series: &str) -> f64 {
    let text = vigil::serve::metrics::to_prometheus_text(&shared.metrics.encode());
    sample_value(&text, series).unwrap_or(0.0)
}

const ERRORS: &str = "vigil_source_errors_total{source=\"tmds\"}";
const UP: &str = "vigil_source_up{source=\"tmds\"}";

/// A tick, at least a poll interval after the last, that must end within its time bound and
/// must not turn health red.
async fn tick(agent: &mut Agent, shared: &Shared, case: &str) {
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    let started = Instant::now();
    agent.tick().await;
    let took = started.elapsed();
    // Both documents are asked for at once, each within the client's total timeout.
    assert!(took < DEFAULT_TOTAL_TIMEOUT * 2 + Duration::from_millis(500), "{case}: a tick took {took:?}");
    let verdict = &shared.snapshot().verdict;
    assert_ne!(verdict.state, State::Draining, "{case}: health turned red: {verdict:?}");
}

/// Runs the agent against a healthy fake, breaks it with `fault`, and mends it with `mend`.
async fn survives(case: &str, fault: impl FnOnce(&FakeTmds), mend: impl FnOnce(&FakeTmds)) {
    let fake =
        FakeTmds::with_fixtures("fargate-task-real-2025-04.json", "fargate-task-stats-real-2025-04.json")
            .await;
    let (mut agent, shared) = agent_against(&fake).await;
    agent.tick().await;
    assert_eq!(value(&shared, UP), 1.0, "{case}: not up before the fault");
    let errors = value(&shared, ERRORS);

    fault(&fake);
    for _ in 0..3 {
        tick(&mut agent, &shared, case).await;
    }
    assert!(value(&shared, ERRORS) > errors, "{case}: no error counted");
    assert_eq!(value(&shared, UP), 0.0, "{case}: still up");

    mend(&fake);
    // Back-off after 5xx and 429 is at most 8 s after three failures.
    for _ in 0..12 {
        tick(&mut agent, &shared, case).await;
        if value(&shared, UP) == 1.0 {
            assert!(shared.snapshot().sample.task.is_some(), "{case}: up without a reading");
            return;
        }
    }
    panic!("{case}: no recovery within 12 ticks");
}

fn task_reply(reply: Reply) -> impl FnOnce(&FakeTmds) {
    move |fake| fake.set_reply(Endpoint::Task, reply)
}

fn task_body(body: Vec<u8>) -> impl FnOnce(&FakeTmds) {
    move |fake| fake.set_task(body)
}

fn mend_replies(fake: &FakeTmds) {
    fake.set_reply(Endpoint::Task, Reply::Body);
    fake.set_reply(Endpoint::Stats, Reply::Body);
    fake.set_task_fixture("fargate-task-real-2025-04.json");
}

#[tokio::test]
async fn truncated_json() {
    let mut body = fixture("fargate-task-real-2025-04.json");
    body.truncate(body.len() / 3);
    survives("truncated", task_body(body), mend_replies).await;
}

#[tokio::test]
async fn garbage() {
    survives("garbage", task_reply(Reply::Garbage), mend_replies).await;
}

#[tokio::test]
async fn null_and_wrong_types_at_the_top() {
    survives("null body", task_body(b"null".to_vec()), mend_replies).await;
    survives("array body", task_body(b"[{\"Cluster\": 1}]".to_vec()), mend_replies).await;
}

#[tokio::test]
async fn a_ten_megabyte_body() {
    let big = Reply::Oversize { bytes: 10 << 20, with_length: true };
    survives("10 MB with length", task_reply(big), mend_replies).await;
    let big = Reply::Oversize { bytes: 10 << 20, with_length: false };
    survives("10 MB chunked", task_reply(big), mend_replies).await;
}

#[tokio::test]
async fn one_byte_a_second() {
    survives("trickle", task_reply(Reply::Trickle(Duration::from_secs(1))), mend_replies).await;
}

#[tokio::test]
async fn throttled_and_failing() {
    for code in [500, 503] {
        survives(&format!("status {code}"), task_reply(Reply::Status(code)), mend_replies).await;
    }
    let throttled = Reply::TooManyRequests { retry_after_secs: Some(2) };
    survives("429", task_reply(throttled), mend_replies).await;
}

#[tokio::test]
async fn reset_mid_body() {
    survives("reset", task_reply(Reply::ResetMidBody), mend_replies).await;
    survives("stats reset", |fake| fake.set_reply(Endpoint::Stats, Reply::ResetMidBody), mend_replies).await;
}

#[tokio::test]
async fn connection_refused_then_back() {
    let fake =
        FakeTmds::with_fixtures("fargate-task-real-2025-04.json", "fargate-task-stats-real-2025-04.json")
            .await;
    let (mut agent, shared) = agent_against(&fake).await;
    agent.tick().await;
    assert_eq!(value(&shared, UP), 1.0);
    fake.go_away();
    for _ in 0..3 {
        tick(&mut agent, &shared, "refused").await;
    }
    assert_eq!(value(&shared, UP), 0.0);
    assert!(value(&shared, ERRORS) >= 3.0);
    fake.come_back().await;
    tick(&mut agent, &shared, "back").await;
    assert_eq!(value(&shared, UP), 1.0, "no recovery on the first tick after the service came back");
}
