//! The threshold arm's health endpoint: what earlyoom-style tools and OOM-signalling init
//! wrappers do today. Red when the task's working set passes a share of its memory limit, or
//! when the app's own `/health` fails (an ALB would see that too); no prediction.
//!
//! Endpoints: `GET /health` (200 `ok` or 503 with the reason), `GET /metrics`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;

use crate::http;
use crate::tmds::parse_key_values;

/// The threshold sidecar's settings.
#[derive(Debug, Clone)]
pub struct ThresholdConfig {
    pub listen: String,
    /// The task's memory cgroup (v1), where the limit is.
    pub memory_cgroup: PathBuf,
    /// Red at or above this share of the limit.
    pub ratio: f64,
    pub app_health_url: String,
    pub interval: Duration,
}

/// The verdict for one reading: `None` when healthy, else the reason.
pub fn verdict(working_set: u64, limit: u64, ratio: f64, app_ok: bool) -> Option<String> {
    if limit > 0 && working_set as f64 >= ratio * limit as f64 {
        return Some(format!(
            "memory {working_set} bytes is at or above {:.0}% of the limit {limit}",
            ratio * 100.0
        ));
    }
    (!app_ok).then(|| "app health check failed".to_owned())
}

/// Usage minus inactive file cache, and the limit, of a v1 memory cgroup.
fn read_memory(dir: &std::path::Path) -> (u64, u64) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let usage: u64 = read("memory.usage_in_bytes").trim().parse().unwrap_or(0);
    let limit: u64 = read("memory.limit_in_bytes").trim().parse().unwrap_or(0);
    let stat = parse_key_values(&read("memory.stat"));
    let inactive = stat.get("total_inactive_file").copied().unwrap_or(0);
    (usage.saturating_sub(inactive), limit)
}

/// Serves until the process ends.
pub async fn run(config: ThresholdConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let reason: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let memory: Arc<Mutex<(u64, u64)>> = Arc::new(Mutex::new((0, 0)));
    let (watch_reason, watch_memory) = (Arc::clone(&reason), Arc::clone(&memory));
    tokio::spawn(async move {
        let client = http::client(1);
        let mut ticker = tokio::time::interval(config.interval);
        loop {
            ticker.tick().await;
            let (working_set, limit) = read_memory(&config.memory_cgroup);
            let probe =
                http::call(&client, "GET", &config.app_health_url, "", Duration::from_millis(800)).await;
            let app_ok = matches!(probe, Ok(answer) if answer.status == 200);
            *watch_reason.lock().expect("reason lock") = verdict(working_set, limit, config.ratio, app_ok);
            *watch_memory.lock().expect("memory lock") = (working_set, limit);
        }
    });
    http::serve(listener, move |request| {
        let reason = reason.lock().expect("reason lock").clone();
        let (working_set, limit) = *memory.lock().expect("memory lock");
        async move {
            match request.uri().path() {
                "/health" => match reason {
                    None => http::text(StatusCode::OK, "ok\n"),
                    Some(why) => http::text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                },
                "/metrics" => http::text(
                    StatusCode::OK,
                    format!(
                        "# TYPE threshold_memory_working_set_bytes gauge\nthreshold_memory_working_set_bytes {working_set}\n# TYPE threshold_memory_limit_bytes gauge\nthreshold_memory_limit_bytes {limit}\n"
                    ),
                ),
                _ => http::text(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_at_the_threshold_or_when_the_app_fails() {
        assert_eq!(verdict(80, 100, 0.9, true), None);
        assert!(verdict(90, 100, 0.9, true).unwrap().contains("90%"));
        assert_eq!(verdict(10, 100, 0.9, false).as_deref(), Some("app health check failed"));
        assert_eq!(verdict(10, 0, 0.9, true), None);
    }
}
