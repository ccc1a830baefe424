//! A real Prometheus in the harness namespace scraping every sidecar's `/metrics` each second,
//! with its targets in a file the scheduler rewrites as tasks come and go.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http;
use crate::sys;

/// Where Prometheus listens, inside the harness namespace.
pub const LISTEN: &str = "127.0.0.1:19090";

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    targets: PathBuf,
}

/// The scrape totals of a run.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ScrapeTotals {
    pub scrapes: u64,
    pub scrapes_up: u64,
}

impl Prometheus {
    /// Writes the configuration and starts Prometheus with temporary storage under `dir`.
    pub fn start(dir: &Path) -> std::io::Result<Prometheus> {
        let targets = dir.join("targets.json");
        std::fs::write(&targets, "[]")?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: sidecar\n    file_sd_configs:\n      - files: ['{}']\n        refresh_interval: 1s\n",
            targets.display()
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={LISTEN}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        sys::register_pid(child.id());
        Ok(Prometheus { child, targets })
    }

    /// Replaces the scrape targets (`host:port` each).
    pub fn set_targets(&self, targets: &[String]) {
        let list = serde_json::json!([{ "targets": targets, "labels": { "job": "sidecar" } }]);
        let tmp = self.targets.with_extension("tmp");
        if std::fs::write(&tmp, list.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.targets);
        }
    }

    /// Counts scrapes and successful scrapes over the last `seconds`.
    pub async fn totals(&self, seconds: u64) -> ScrapeTotals {
        let query = |expr: String| async move {
            let url = format!("http://{LISTEN}/api/v1/query?query={}", encode(&expr));
            let answer = http::get_fresh(&url, Duration::from_secs(3)).await.ok()?;
            let doc: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
            doc["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()
        };
        ScrapeTotals {
            scrapes: query(format!("sum(count_over_time(up[{seconds}s]))")).await.unwrap_or(0.0) as u64,
            scrapes_up: query(format!("sum(sum_over_time(up[{seconds}s]))")).await.unwrap_or(0.0) as u64,
        }
    }

    /// Ends Prometheus by its PID.
    pub fn stop(&mut self) {
        sys::stop_pid(self.child.id(), Duration::from_secs(3));
        let _ = self.child.wait();
        sys::forget_pid(self.child.id());
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_are_encoded() {
        assert_eq!(super::encode("sum(up[5s])"), "sum%28up%5B5s%5D%29");
    }
}
