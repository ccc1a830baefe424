//! The built `vigil` binary: usage, configuration errors, `vigil probe`, and the SIGTERM drain.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VIGIL: &str = env!("CARGO_BIN_EXE_vigil");

/// A `vigil` process that is killed if the test fails before it exits.
struct Agent {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(env: &[(&str, &str)]) -> Agent {
        let mut command = Command::new(VIGIL);
        command.env_clear().env("VIGIL_LISTEN", "127.0.0.1:0").stdout(Stdio::piped()).stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Agent { child, lines }
    }

    /// Waits for a log line with the given event and returns it parsed.
    fn event(&self, name: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else { break };
            let json: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            if json["event"] == name {
                return json;
            }
        }
        panic!("no {name} event within 10 s");
    }

    fn address(&self) -> String {
        self.event("listening")["address"].as_str().unwrap().to_string()
    }
}

fn health(address: &str) -> Option<(u16, String)> {
    http::get(&format!("http://{address}/health"))
}

/// A minimal blocking GET, so these tests need no runtime.
mod http {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub fn get(url: &str) -> Option<(u16, String)> {
        let rest = url.strip_prefix("http://")?;
        let (host, path) =
            rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let mut stream = TcpStream::connect(host).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    }
}

#[test]
fn version_and_help() {
    let output = Command::new(VIGIL).arg("--version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("vigil {}\n", env!("CARGO_PKG_VERSION")));

    let output = Command::new(VIGIL).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (name, _, _) in vigil::config::VARIABLES {
        assert!(help.contains(name), "--help lists {name}");
    }

    let output = Command::new(VIGIL).arg("--frobnicate").output().unwrap();
    assert_eq!(output.status.code(), Some(64));
}

#[test]
fn invalid_configuration_exits_64_naming_the_variable() {
    let cases = [
        ("VIGIL_INTERVAL", "abc"),
        ("VIGIL_LISTEN", "everywhere"),
        ("VIGIL_APP_HEALTH_URL", "ftp://x"),
        ("VIGIL_WATCH", "("),
        ("VIGIL_DRAIN_SECONDS", "-3"),
        ("VIGIL_LOG_FORMAT", "yaml"),
        ("ECS_CONTAINER_METADATA_URI_V4", "::"),
        ("VIGIL_RECORD", "/nonexistent-dir/record.csv"),
        ("VIGIL_MODEL", "/nonexistent-dir/model.nnef.tgz"),
        ("VIGIL_MODEL_CALIBRATION", "5"),
    ];
    for (name, value) in cases {
        let output = Command::new(VIGIL).env_clear().env(name, value).output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(name) && stderr.contains(value), "{stderr}");
    }
}

#[test]
fn record_appends_one_line_of_channels_per_tick() {
    let dir = std::env::temp_dir().join(format!("vigil-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("record.csv");
    let agent = Agent::start(&[("VIGIL_RECORD", path.to_str().unwrap()), ("VIGIL_INTERVAL", "100ms")]);
    agent.address();
    std::thread::sleep(Duration::from_millis(700));
    drop(agent);
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert_eq!(header, format!("unix_ms,{}", vigil::judge::vector::CHANNELS.join(",")));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.len() >= 3, "{text}");
    for row in rows {
        assert_eq!(row.split(',').count(), 1 + vigil::judge::vector::CHANNELS.len(), "{row}");
        assert!(row.split(',').next().unwrap().parse::<i64>().unwrap() > 1_700_000_000_000);
    }
}

#[test]
fn first_log_line_says_local_mode() {
    let agent = Agent::start(&[]);
    let start = agent.event("start");
    assert_eq!(start["mode"], "local");
    assert!(start["detail"].as_str().unwrap().contains("local mode"));
}

#[test]
fn probe_exits_0_when_health_is_200_and_1_otherwise() {
    let agent = Agent::start(&[]);
    let address = agent.address();
    let status = Command::new(VIGIL).env_clear().env("VIGIL_LISTEN", &address).output().unwrap();
    // The second instance cannot bind the same address: it must fail, not hang.
    assert_eq!(status.status.code(), Some(1));

    let output = Command::new(VIGIL).arg("probe").env_clear().env("VIGIL_LISTEN", &address).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));

    // Nothing listens on port 1 of loopback.
    let output =
        Command::new(VIGIL).arg("probe").env_clear().env("VIGIL_LISTEN", "127.0.0.1:1").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn sigterm_turns_health_red_then_exits_0_after_the_drain() {
    let mut agent = Agent::start(&[("VIGIL_DRAIN_SECONDS", "2"), ("VIGIL_INTERVAL", "200ms")]);
    let address = agent.address();
    let deadline = Instant::now() + Duration::from_secs(5);
    while health(&address).map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "health never answered 200");
        std::thread::sleep(Duration::from_millis(20));
    }

    let sent = Instant::now();
    let kill = Command::new("kill").args(["-TERM", &agent.child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let (status, body) = loop {
        let answer = health(&address).expect("vigil keeps serving while it drains");
        if answer.0 != 200 {
            break answer;
        }
        assert!(sent.elapsed() < Duration::from_secs(2), "health still 200 after SIGTERM");
    };
    assert_eq!(status, 503);
    assert!(body.contains("stopping"), "{body}");
    agent.event("stopping");

    // Still serving (red) during the drain, then a clean exit.
    assert_eq!(health(&address).map(|(status, _)| status), Some(503));
    let exit = loop {
        if let Some(exit) = agent.child.try_wait().unwrap() {
            break exit;
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "did not exit after the drain");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
    assert!(sent.elapsed() >= Duration::from_secs(2), "exited before the drain ended");
}
