//! The fleet source: the service's own Prometheus, which already scrapes every vigil, asked
//! over its HTTP API (`GET /api/v1/query`) what the other tasks of this service report.
//!
//! One instant query every `VIGIL_FLEET_INTERVAL`, never two in flight, bounded in time and
//! size. The peers are the vigils whose `vigil_task_info` has this task's cluster, family and
//! (when the metadata service reports it) service, plus any matchers in `VIGIL_FLEET_SELECTOR`;
//! the join is on Prometheus' own `job` and `instance` labels, so no relabelling is needed:
//!
//! ```text
//! vigil_task_info{S} or ({__name__=~"vigil_(draining|reason_evidence|...)"} and on(job, instance) vigil_task_info{S})
//! ```
//!
//! The answer is a few series per task (about 5 for a calm one), so a 100-task service returns
//! about 500 series (roughly 100 KB) per query. The poller runs beside the tick loop and keeps
//! only the latest view; the tick reads it and never waits for Prometheus.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::judge::evidence::Reason;
use crate::judge::fleet::{FleetView, Peer};
use crate::judge::sample::{Millis, TaskReading};
use crate::sources::http::{self, ClientOptions};

/// The most of an answer that is read: a service of thousands of tasks fits.
pub const BODY_LIMIT: usize = 8 * 1024 * 1024;
/// The most tasks a view keeps.
pub const MAX_TASKS: usize = 5_000;

/// The series each vigil publishes for its peers (see `serve::metrics`).
pub const INFO_METRIC: &str = "vigil_task_info";
pub const PEER_METRICS: [&str; 6] = [
    "vigil_draining",
    "vigil_reason_evidence",
    "vigil_drain_candidate_seconds",
    "vigil_app_probe_latency_seconds",
    "vigil_app_probe_sent_timestamp_seconds",
    "vigil_anomaly_ratio",
];

/// Who this task is, as its `vigil_task_info` labels say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub cluster: String,
    pub family: String,
    /// Empty when the metadata service does not report the service.
    pub service: String,
    pub revision: String,
    pub zone: String,
    /// The task id: the last part of the task ARN.
    pub task: String,
}

impl Identity {
    pub fn of(task: &TaskReading) -> Identity {
        Identity {
            cluster: task.cluster.clone(),
            family: task.family.clone(),
            service: task.service_name.clone(),
            revision: task.revision.clone(),
            zone: task.availability_zone.clone(),
            task: task.task_id().to_string(),
        }
    }
}

/// The PromQL selector of this task's service: its info metric with `extra` matchers.
pub fn selector(identity: &Identity, extra: &str) -> String {
    let mut matchers = vec![
        format!("cluster=\"{}\"", escape(&identity.cluster)),
        format!("family=\"{}\"", escape(&identity.family)),
    ];
    if !identity.service.is_empty() {
        matchers.push(format!("service=\"{}\"", escape(&identity.service)));
    }
    if !extra.trim().is_empty() {
        matchers.push(extra.trim().to_string());
    }
    format!("{INFO_METRIC}{{{}}}", matchers.join(","))
}

/// The one query: the service's info series and, joined on them, every peer series.
pub fn query(identity: &Identity, extra: &str) -> String {
    let service = selector(identity, extra);
    format!("{service} or ({{__name__=~\"{}\"}} and on(job, instance) {service})", PEER_METRICS.join("|"))
}

/// A PromQL string literal's content.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Why an answer is no view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error("query failed: {0}")]
    Request(String),
    #[error("Prometheus answered HTTP {0}")]
    Status(u16),
    #[error("answer larger than {BODY_LIMIT} bytes")]
    TooLarge,
    #[error("answer is not a Prometheus query result: {0}")]
    Malformed(String),
    #[error("Prometheus reports an error: {0}")]
    Failed(String),
}

/// Turns a `/api/v1/query` answer into a view for the task `own`, taken at `at`.
///
/// Series are grouped by their `job` and `instance`; a group without an info series is not a
/// vigil of this service and is dropped, as is a second group of the same task (scraped twice).
pub fn parse(body: &[u8], own: &str, at: Millis) -> Result<FleetView, FleetError> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| FleetError::Malformed(e.to_string()))?;
    if doc["status"] != "success" {
        let error = doc["error"].as_str().unwrap_or("status is not success");
        return Err(FleetError::Failed(error.chars().take(200).collect()));
    }
    let data = &doc["data"];
    if data["resultType"] != "vector" {
        return Err(FleetError::Malformed("resultType is not vector".into()));
    }
    let result = data["result"].as_array().ok_or_else(|| FleetError::Malformed("no result list".into()))?;

    let mut groups: BTreeMap<(String, String), (Option<Peer>, Peer)> = BTreeMap::new();
    for series in result {
        let metric = &series["metric"];
        let label = |name: &str| metric[name].as_str().unwrap_or_default().to_string();
        let Some(value) = series["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if groups.len() >= MAX_TASKS && !groups.contains_key(&(label("job"), label("instance"))) {
            continue;
        }
        let (info, peer) = groups.entry((label("job"), label("instance"))).or_default();
        match metric["__name__"].as_str().unwrap_or_default() {
            INFO_METRIC if info.is_none() => {
                *info = Some(Peer {
                    task: label("task"),
                    zone: label("availability_zone"),
                    revision: label("revision"),
                    ..Peer::default()
                });
            }
            "vigil_draining" => peer.draining = value >= 1.0,
            "vigil_reason_evidence" if value >= 1.0 => {
                if let Some(reason) = Reason::ALL.into_iter().find(|r| r.code() == label("reason")) {
                    peer.evidence.insert(reason);
                }
            }
            "vigil_drain_candidate_seconds" if value.is_finite() => {
                peer.candidate_seconds = Some(value.max(0.0))
            }
            "vigil_app_probe_latency_seconds" if value.is_finite() => {
                peer.probe_latency_seconds = Some(value)
            }
            "vigil_app_probe_sent_timestamp_seconds" if value.is_finite() => {
                peer.answered_probe_sent_ms = Some((value * 1000.0).round() as i64)
            }
            "vigil_anomaly_ratio" if value.is_finite() => peer.anomaly_ratio = Some(value),
            _ => {}
        }
    }

    let mut view = FleetView { at, own: None, peers: Vec::new() };
    let mut seen = std::collections::BTreeSet::new();
    for (info, peer) in groups.into_values() {
        let Some(info) = info else { continue };
        if info.task.is_empty() || !seen.insert(info.task.clone()) {
            continue;
        }
        let peer = Peer { task: info.task, zone: info.zone, revision: info.revision, ..peer };
        if peer.task == own {
            view.own = Some(peer);
        } else {
            view.peers.push(peer);
        }
    }
    Ok(view)
}

/// What the poller shares with the tick loop.
#[derive(Debug, Default)]
pub struct Feed {
    /// Who to ask about; set by the tick loop once the metadata service answered.
    pub identity: Option<Identity>,
    pub view: Option<Arc<FleetView>>,
    /// Failures since the tick loop last took them.
    pub errors: Vec<FleetError>,
    pub queries_total: u64,
}

/// Most often the poller asks while a drain waits for the fleet to see it.
pub const URGENT_INTERVAL: Duration = Duration::from_millis(500);

pub type SharedFeed = Arc<Mutex<Feed>>;

/// The tick loop's handle: the feed, and whether a drain waits for the fleet to see it (then
/// the poller asks at once and every [`URGENT_INTERVAL`] until it no longer waits).
#[derive(Debug, Clone, Default)]
pub struct FleetHandle {
    pub feed: SharedFeed,
    bell: Arc<tokio::sync::Notify>,
    waiting: Arc<std::sync::atomic::AtomicBool>,
}

impl FleetHandle {
    /// Called every tick: whether a drain waits for the view.
    pub fn set_waiting(&self, waiting: bool) {
        let was = self.waiting.swap(waiting, std::sync::atomic::Ordering::Relaxed);
        if waiting && !was {
            self.bell.notify_one();
        }
    }

    /// Asks for a view as soon as the rate allows, once.
    pub fn ring(&self) {
        self.bell.notify_one();
    }

    fn waiting(&self) -> bool {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Asks Prometheus for the fleet every `interval`, one query at a time.
pub struct FleetPoller {
    http: reqwest::Client,
    url: String,
    extra: String,
    interval: Duration,
    handle: FleetHandle,
}

impl FleetPoller {
    /// `base` is the Prometheus base URL (`http://host:9090`); a query may take at most
    /// `interval`, and at most 5 s.
    pub fn new(base: &str, extra: &str, interval: Duration) -> Result<FleetPoller, reqwest::Error> {
        let timeout = interval.min(Duration::from_secs(5));
        let http = http::client(ClientOptions { connect_timeout: timeout, timeout, idle_per_host: 1 })?;
        Ok(FleetPoller {
            http,
            url: format!("{}/api/v1/query", base.trim_end_matches('/')),
            extra: extra.to_string(),
            interval,
            handle: FleetHandle::default(),
        })
    }

    pub fn handle(&self) -> FleetHandle {
        self.handle.clone()
    }

    /// Polls until the process exits: every `interval`, or sooner (but at most every
    /// [`URGENT_INTERVAL`]) when the tick loop rings. `now` is the tick clock.
    pub async fn run(self, now: impl Fn() -> Millis) {
        loop {
            let started = tokio::time::Instant::now();
            let identity = lock(&self.handle.feed).identity.clone();
            if let Some(identity) = identity {
                let answer = self.ask(&identity).await;
                self.store(answer, &identity, now());
            }
            let next = if self.handle.waiting() { URGENT_INTERVAL } else { self.interval };
            tokio::select! {
                () = tokio::time::sleep_until(started + next) => {}
                () = self.handle.bell.notified() => {
                    tokio::time::sleep_until(started + URGENT_INTERVAL).await;
                }
            }
        }
    }

    fn store(&self, answer: Result<Vec<u8>, FleetError>, identity: &Identity, now: Millis) {
        {
            let mut feed = lock(&self.handle.feed);
            feed.queries_total += 1;
            match answer.and_then(|body| parse(&body, &identity.task, now)) {
                Ok(view) => feed.view = Some(Arc::new(view)),
                Err(error) => {
                    if feed.errors.len() < 16 {
                        feed.errors.push(error);
                    }
                }
            }
        }
    }

    async fn ask(&self, identity: &Identity) -> Result<Vec<u8>, FleetError> {
        let mut url = reqwest::Url::parse(&self.url).map_err(|e| FleetError::Request(e.to_string()))?;
        url.query_pairs_mut().append_pair("query", &query(identity, &self.extra));
        let mut response = self.http.get(url).send().await.map_err(|e| FleetError::Request(cause(&e)))?;
        let status = response.status().as_u16();
        if status != 200 && status != 400 && status != 422 {
            return Err(FleetError::Status(status));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| FleetError::Request(cause(&e)))? {
            if body.len() + chunk.len() > BODY_LIMIT {
                return Err(FleetError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

pub fn lock(feed: &SharedFeed) -> std::sync::MutexGuard<'_, Feed> {
    feed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The innermost cause of a request error, which says what actually happened.
fn cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(next) = source.source() {
        source = next;
    }
    if error.is_timeout() { "timed out".to_string() } else { source.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            cluster: "arn:aws:ecs:us-east-1:1:cluster/prod".into(),
            family: "web".into(),
            service: String::new(),
            revision: "7".into(),
            zone: "us-east-1a".into(),
            task: "t1".into(),
        }
    }

    #[test]
    fn the_query_selects_the_service_and_escapes_its_labels() {
        let mut id = identity();
        assert_eq!(
            selector(&id, ""),
            r#"vigil_task_info{cluster="arn:aws:ecs:us-east-1:1:cluster/prod",family="web"}"#
        );
        id.service = "we\"b\\".into();
        assert_eq!(
            selector(&id, r#" job="vigil" "#),
            r#"vigil_task_info{cluster="arn:aws:ecs:us-east-1:1:cluster/prod",family="web",service="we\"b\\",job="vigil"}"#
        );
        let q = query(&identity(), "");
        assert!(q.starts_with("vigil_task_info{"), "{q}");
        assert!(q.contains(r#"{__name__=~"vigil_draining|vigil_reason_evidence|vigil_drain_candidate_seconds|vigil_app_probe_latency_seconds|vigil_app_probe_sent_timestamp_seconds|vigil_anomaly_ratio"} and on(job, instance) vigil_task_info{"#), "{q}");
    }

    fn series(name: &str, instance: &str, labels: &[(&str, &str)], value: &str) -> Value {
        let mut metric = serde_json::json!({"__name__": name, "job": "vigil", "instance": instance});
        for (k, v) in labels {
            metric[*k] = Value::from(*v);
        }
        serde_json::json!({"metric": metric, "value": [1_790_000_000.5, value]})
    }

    fn answer(result: Vec<Value>) -> Vec<u8> {
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
            .to_string()
            .into_bytes()
    }

    fn info(instance: &str, task: &str, zone: &str) -> Value {
        series(INFO_METRIC, instance, &[("task", task), ("availability_zone", zone), ("revision", "7")], "1")
    }

    #[test]
    fn an_answer_becomes_this_task_and_its_peers() {
        let body = answer(vec![
            info("10.0.0.1:9797", "t1", "a"),
            info("10.0.0.2:9797", "t2", "b"),
            info("10.0.0.3:9797", "t3", "c"),
            series("vigil_reason_evidence", "10.0.0.1:9797", &[("reason", "app_unresponsive")], "1"),
            series("vigil_reason_evidence", "10.0.0.2:9797", &[("reason", "app_unresponsive")], "1"),
            series("vigil_reason_evidence", "10.0.0.2:9797", &[("reason", "no_such_reason")], "1"),
            series("vigil_draining", "10.0.0.3:9797", &[], "1"),
            series("vigil_drain_candidate_seconds", "10.0.0.3:9797", &[], "12.5"),
            series("vigil_app_probe_latency_seconds", "10.0.0.2:9797", &[], "0.004"),
            series("vigil_app_probe_sent_timestamp_seconds", "10.0.0.2:9797", &[], "1790000000.125"),
            series("vigil_anomaly_ratio", "10.0.0.2:9797", &[], "NaN"),
            // Not a vigil of this service: no info series.
            series("vigil_draining", "10.9.9.9:9797", &[], "1"),
            // The same task scraped by a second job.
            series(INFO_METRIC, "10.0.0.2:9797", &[("task", "t2")], "1"),
        ]);
        let view = parse(&body, "t1", 42).unwrap();
        assert_eq!(view.at, 42);
        let own = view.own.unwrap();
        assert!(own.evidence.contains(Reason::AppUnresponsive));
        assert_eq!(view.peers.len(), 2);
        let t2 = &view.peers[0];
        assert_eq!((t2.task.as_str(), t2.zone.as_str(), t2.draining), ("t2", "b", false));
        assert!(t2.evidence.contains(Reason::AppUnresponsive));
        assert_eq!((t2.probe_latency_seconds, t2.anomaly_ratio), (Some(0.004), None));
        assert_eq!(t2.answered_probe_sent_ms, Some(1_790_000_000_125));
        let t3 = &view.peers[1];
        assert_eq!((t3.draining, t3.candidate_seconds), (true, Some(12.5)));
    }

    /// A real Prometheus' answer to [`query`] for three scraped vigils (see
    /// `tests/fixtures/fleet/README.md`).
    #[test]
    fn a_real_prometheus_answer_parses() {
        let body = include_bytes!("../../tests/fixtures/fleet/prometheus-3-tasks.json");
        let view = parse(body, "t1", 7).unwrap();
        let own = view.own.expect("t1 is in the answer");
        assert_eq!((own.zone.as_str(), own.revision.as_str(), own.draining), ("a", "7", false));
        assert_eq!(own.evidence.iter().collect::<Vec<_>>(), [Reason::AppUnresponsive]);
        let peers: Vec<(&str, bool, Vec<Reason>)> =
            view.peers.iter().map(|p| (p.task.as_str(), p.draining, p.evidence.iter().collect())).collect();
        assert_eq!(
            peers,
            [("t2", true, vec![]), ("t3", false, vec![Reason::AppUnresponsive, Reason::FdExhaustion])]
        );
        assert!(view.peers.iter().all(|p| p.probe_latency_seconds == Some(0.004)));
        let sent: Vec<Option<i64>> = view.peers.iter().map(|p| p.answered_probe_sent_ms).collect();
        assert_eq!(sent, [Some(1_796_530_419_125), Some(1_796_530_419_250)]);
    }

    #[test]
    fn bad_answers_are_clear_errors() {
        assert!(matches!(parse(b"<html>", "t1", 0), Err(FleetError::Malformed(_))));
        let failed = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(parse(failed, "t1", 0), Err(FleetError::Failed("parse error at char 3".into())));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(parse(matrix, "t1", 0), Err(FleetError::Malformed(_))));
        // A vector with junk in it loses only the junk.
        let junk = answer(vec![
            serde_json::json!({"metric": 3}),
            serde_json::json!({"value": [1, "x"]}),
            info("i", "t1", "a"),
        ]);
        let view = parse(&junk, "t1", 0).unwrap();
        assert!(view.own.is_some() && view.peers.is_empty());
    }
}
