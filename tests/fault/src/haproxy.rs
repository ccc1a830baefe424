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

/// The stats socket of this harness process: short, because a unix socket path is limited to
/// 108 bytes and a run's folder may be deep; one per process, so two harnesses never share it.
pub fn socket_path() -> PathBuf {
    PathBuf::from(format!("/tmp/vgf-haproxy-{}.sock", std::process::id()))
}

/// The harness PID in a stats socket's file name (`vgf-haproxy-<pid>.sock`), if it is one.
pub fn socket_pid(file_name: &str) -> Option<u32> {
    file_name.strip_prefix("vgf-haproxy-")?.strip_suffix(".sock")?.parse().ok()
}

/// Removes the stats sockets in `dir` (`/tmp`) left by harness processes that are gone; returns
/// how many. A socket of a live process (this one, or another harness) stays.
pub fn remove_stale_sockets(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = socket_pid(&name)
            && !sys::pid_alive(pid)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
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
    #[error("the configuration does not check:\n{0}")]
    Config(String),
    #[error("cannot start haproxy: {0}")]
    Spawn(std::io::Error),
    #[error("the stats socket did not answer: {0}")]
    Socket(String),
}

impl Haproxy {
    /// Writes the configuration in `dir`, checks it (a failed check carries HAProxy's own
    /// messages), and starts HAProxy in the foreground in the caller's (the harness) network
    /// namespace; `socket` is the stats socket the configuration names.
    pub fn start(dir: &Path, config: &str, socket: &Path) -> Result<Haproxy, HaproxyError> {
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).map_err(|source| HaproxyError::Write { path: path.clone(), source })?;
        let path_text = path.display().to_string();
        check(&path_text)?;
        // A socket left by an earlier arm of this process.
        let _ = std::fs::remove_file(socket);
        let log = std::fs::File::create(dir.join("haproxy.log")).map_err(HaproxyError::Spawn)?;
        let child = Command::new("haproxy")
            .args(["-db", "-f", &path_text])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(HaproxyError::Spawn)?)
            .stderr(log)
            .spawn()
            .map_err(HaproxyError::Spawn)?;
        sys::register_pid(child.id());
        Ok(Haproxy { child, socket: socket.to_owned() })
    }

    /// Ends HAProxy by its PID and removes its stats socket.
    pub fn stop(&mut self) {
        sys::stop_pid(self.child.id(), Duration::from_secs(2));
        let _ = self.child.wait();
        sys::forget_pid(self.child.id());
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// `haproxy -c -f <config>`; on failure, HAProxy's own output (its alerts name the line).
fn check(config_path: &str) -> Result<(), HaproxyError> {
    let output = Command::new("haproxy")
        .args(["-c", "-f", config_path])
        .stdin(Stdio::null())
        .output()
        .map_err(HaproxyError::Spawn)?;
    if output.status.success() {
        return Ok(());
    }
    Err(HaproxyError::Config(check_failure(&output.stdout, &output.stderr, output.status.code())))
}

/// The message of a failed configuration check: HAProxy's stderr and stdout, trimmed.
fn check_failure(stdout: &[u8], stderr: &[u8], code: Option<i32>) -> String {
    let text: Vec<String> = [stderr, stdout]
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).trim().to_owned())
        .filter(|text| !text.is_empty())
        .collect();
    match (text.is_empty(), code) {
        (true, Some(code)) => format!("haproxy -c exited with status {code} and no message"),
        (true, None) => "haproxy -c was killed by a signal".to_owned(),
        (false, _) => text.join("\n"),
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
    fn the_stats_socket_path_is_short_and_per_process() {
        let path = socket_path();
        assert!(path.as_os_str().len() < 108, "{}", path.display());
        assert!(path.display().to_string().ends_with(&format!("-{}.sock", std::process::id())));
    }

    #[test]
    fn stale_sockets_are_found_by_the_pid_in_their_name() {
        assert_eq!(socket_pid("vgf-haproxy-4242.sock"), Some(4242));
        assert_eq!(socket_pid("vgf-haproxy-.sock"), None);
        assert_eq!(socket_pid("vgf-haproxy-12x.sock"), None);
        assert_eq!(socket_pid("other-4242.sock"), None);
        let dir = std::env::temp_dir().join(format!("vgf-sockets-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join(format!("vgf-haproxy-{}.sock", std::process::id()));
        let gone = dir.join(format!("vgf-haproxy-{}.sock", u32::MAX - 3));
        let unrelated = dir.join("notes.txt");
        for path in [&own, &gone, &unrelated] {
            std::fs::write(path, "").unwrap();
        }
        assert_eq!(remove_stale_sockets(&dir), 1);
        assert!(own.exists() && !gone.exists() && unrelated.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_check_shows_haproxys_own_words() {
        let alert = b"[ALERT]    (1) : config : parsing [x.cfg:3] : unknown keyword 'bogus'.\n";
        assert_eq!(
            check_failure(b"", alert, Some(1)),
            "[ALERT]    (1) : config : parsing [x.cfg:3] : unknown keyword 'bogus'."
        );
        assert_eq!(check_failure(b"out", b"err", Some(1)), "err\nout");
        assert_eq!(check_failure(b"", b" \n", Some(2)), "haproxy -c exited with status 2 and no message");
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
