//! A real Prometheus in the harness namespace scraping every sidecar's `/metrics` each second,
//! with its targets in a file the scheduler rewrites as tasks come and go. It listens on the
//! bridge address, so the sidecars in the task namespaces can query it too (vigil's fleet
//! awareness, `VIGIL_FLEET_URL`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::http;
use crate::net;
use crate::sys;

/// Prometheus' port on the harness bridge.
pub const PORT: u16 = 19090;

/// Where Prometheus listens: the bridge address of the harness namespace, the tasks' gateway.
pub fn listen_address() -> String {
    format!("{}:{PORT}", net::GATEWAY)
}

/// The base URL of its HTTP API, as the tasks and the harness reach it.
pub fn base_url() -> String {
    format!("http://{}", listen_address())
}

/// A running (or stopped) Prometheus.
pub struct Prometheus {
    child: Option<Child>,
    dir: PathBuf,
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
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let mut prometheus = Prometheus { child: None, dir: dir.to_owned(), targets };
        prometheus.spawn()?;
        Ok(prometheus)
    }

    /// Starts the process on the configuration and storage already in `dir`; its output is
    /// appended to `prometheus.log`.
    fn spawn(&mut self) -> std::io::Result<()> {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", self.dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", self.dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={}", listen_address()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        sys::register_pid(child.id());
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process is running (it is not between [`Prometheus::stop`] and
    /// [`Prometheus::restart`]).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts a stopped Prometheus again on the same storage (the `prometheus-stop` fault's end).
    pub fn restart(&mut self) -> std::io::Result<()> {
        if self.child.is_none() {
            self.spawn()?;
        }
        Ok(())
    }

    /// Waits until `/-/ready` answers 200, at most `limit`.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        let url = format!("{}/-/ready", base_url());
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if http::get_fresh(&url, Duration::from_millis(500)).await.is_ok_and(|a| a.status == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
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
            let url = format!("{}/api/v1/query?query={}", base_url(), encode(&expr));
            let answer = http::get_fresh(&url, Duration::from_secs(3)).await.ok()?;
            let doc: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
            doc["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()
        };
        ScrapeTotals {
            scrapes: query(format!("sum(count_over_time(up[{seconds}s]))")).await.unwrap_or(0.0) as u64,
            scrapes_up: query(format!("sum(sum_over_time(up[{seconds}s]))")).await.unwrap_or(0.0) as u64,
        }
    }

    /// Ends Prometheus by its PID (nothing when it is already stopped).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            sys::stop_pid(child.id(), Duration::from_secs(3));
            let _ = child.wait();
            sys::forget_pid(child.id());
        }
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

    #[test]
    fn it_listens_where_the_tasks_can_reach_it() {
        assert_eq!(super::base_url(), "http://10.200.0.1:19090");
    }
}
