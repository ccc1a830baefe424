//! HAProxy 2.6 standing in for an ALB: the configuration of one arm, the process, and the
//! runtime API over its stats socket (server state, adding and removing targets).
//!
//! Every task slot is pre-provisioned as a `disabled` server with the slot's fixed address;
//! the scheduler adds a task with `set server app/sN state ready` and removes it with
//! `state drain` then `state maint`. `retries 0` and no `option redispatch`: an ALB does not
//! retry a failed request on another target, so neither may the emulation.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net;
use crate::sys;

/// Where the load client sends traffic, inside the harness namespace.
pub const FRONTEND: &str = "127.0.0.1:18080";

/// The health-check timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// inter 1 s, fall 2, rise 2: the fastest a load balancer could react.
    Fast,
    /// inter 5 s, fall 2, rise 2: ALB's fastest real setting.
    Alb,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Fast => "fast",
            Profile::Alb => "alb",
        }
    }

    pub fn parse(word: &str) -> Option<Profile> {
        match word {
            "fast" => Some(Profile::Fast),
            "alb" => Some(Profile::Alb),
            _ => None,
        }
    }

    fn check_line(self, check_port: u16) -> String {
        match self {
            Profile::Fast => format!("check port {check_port} inter 1s fall 2 rise 2"),
            Profile::Alb => format!("check port {check_port} inter 5s fall 2 rise 2"),
        }
    }

    fn check_timeout(self) -> &'static str {
        match self {
            Profile::Fast => "1s",
            Profile::Alb => "2s",
        }
    }
}

/// Renders the configuration; `socket` is the stats socket path.
pub fn render(profile: Profile, app_port: u16, check_port: u16, socket: &Path) -> String {
    let mut config = format!(
        "global
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 5s
    timeout check {check_timeout}
    retries 0

frontend fe
    bind {FRONTEND}
    default_backend app

backend app
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server {check}
",
        socket = socket.display(),
        check_timeout = profile.check_timeout(),
        check = profile.check_line(check_port),
    );
    for slot in 1..=net::MAX_SLOTS {
        config.push_str(&format!("    server s{slot} {}:{app_port} disabled\n", net::slot_address(slot)));
    }
    config
}

/// A running HAProxy.
pub struct Haproxy {
    child: Child,
    pub socket: PathBuf,
}

/// Why HAProxy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    #[error("cannot write the configuration {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the configuration does not check: {0}")]
    Config(String),
    #[error("cannot start haproxy: {0}")]
    Spawn(std::io::Error),
    #[error("the stats socket did not answer: {0}")]
    Socket(String),
}

impl Haproxy {
    /// Writes the configuration in `dir`, checks it, and starts HAProxy in the foreground in
    /// the caller's (the harness) network namespace.
    pub fn start(dir: &Path, config: &str) -> Result<Haproxy, HaproxyError> {
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).map_err(|source| HaproxyError::Write { path: path.clone(), source })?;
        let path_text = path.display().to_string();
        sys::run("haproxy", &["-c", "-q", "-f", &path_text])
            .map_err(|e| HaproxyError::Config(e.to_string()))?;
        let log = std::fs::File::create(dir.join("haproxy.log")).map_err(HaproxyError::Spawn)?;
        let child = Command::new("haproxy")
            .args(["-db", "-f", &path_text])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(HaproxyError::Spawn)?)
            .stderr(log)
            .spawn()
            .map_err(HaproxyError::Spawn)?;
        sys::register_pid(child.id());
        Ok(Haproxy { child, socket: dir.join("haproxy.sock") })
    }

    /// Ends HAProxy by its PID.
    pub fn stop(&mut self) {
        sys::stop_pid(self.child.id(), Duration::from_secs(2));
        let _ = self.child.wait();
        sys::forget_pid(self.child.id());
    }
}

/// Sends one runtime API command and returns the answer.
pub async fn command(socket: &Path, line: &str) -> Result<String, HaproxyError> {
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(2), exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(HaproxyError::Socket(e.to_string())),
        Err(_) => Err(HaproxyError::Socket("timed out".into())),
    }
}

/// One server's state from `show servers state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    pub slot: u32,
    /// 0 stopped (DOWN), 1 starting, 2 running (UP), 3 stopping.
    pub operational: u8,
    /// Bit mask: 1 forced maintenance, 8 forced drain, ...
    pub admin: u8,
}

impl ServerState {
    pub fn is_up(&self) -> bool {
        self.operational == 2
    }

    pub fn in_maintenance(&self) -> bool {
        self.admin & 0x03 != 0
    }
}

/// Parses the answer to `show servers state app`.
pub fn parse_servers_state(text: &str) -> Vec<ServerState> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 7 {
                return None;
            }
            Some(ServerState {
                slot: fields[3].strip_prefix('s')?.parse().ok()?,
                operational: fields[5].parse().ok()?,
                admin: fields[6].parse().ok()?,
            })
        })
        .collect()
}

/// Reads every slot's state.
pub async fn servers(socket: &Path) -> Result<Vec<ServerState>, HaproxyError> {
    Ok(parse_servers_state(&command(socket, "show servers state app").await?))
}

/// Sets a slot's administrative state: `ready`, `drain` or `maint`.
pub async fn set_state(socket: &Path, slot: u32, state: &str) -> Result<(), HaproxyError> {
    command(socket, &format!("set server app/s{slot} state {state}")).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_alb_semantics() {
        let config = render(Profile::Alb, 8080, 9797, Path::new("/tmp/x.sock"));
        assert!(config.contains("retries 0"));
        assert!(!config.contains("redispatch"));
        assert!(config.contains("check port 9797 inter 5s fall 2 rise 2"));
        assert!(config.contains("server s1 10.200.0.11:8080 disabled"));
        let fast = render(Profile::Fast, 8080, 8080, Path::new("/tmp/x.sock"));
        assert!(fast.contains("check port 8080 inter 1s fall 2 rise 2"));
    }

    #[test]
    fn servers_state_parses() {
        let text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n3 app 1 s1 10.200.0.11 2 0 1 1 5 6 3 4 6 0 0 0 - 8080 -\n3 app 2 s2 10.200.0.12 0 1 1 1 5 6 3 4 6 0 0 0 - 8080 -\n";
        let states = parse_servers_state(text);
        assert_eq!(states.len(), 2);
        assert!(states[0].is_up() && !states[0].in_maintenance());
        assert_eq!(states[1].slot, 2);
        assert!(!states[1].is_up() && states[1].in_maintenance());
    }
}
