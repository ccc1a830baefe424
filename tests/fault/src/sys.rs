//! Running system commands, ending processes by PID, and the registry of everything the harness
//! created so that every exit path (normal end, error, Ctrl-C, panic) can undo it.
//!
//! Every kernel object the harness creates carries the [`PREFIX`] in its name, so a run killed
//! before its cleanup leaves nothing that the next run's [`remove_stale`] cannot find.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The name prefix of every namespace, interface and cgroup the harness creates.
pub const PREFIX: &str = "vgf-";

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("{path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
}

/// Runs `program args...` to completion; a non-zero exit is an error carrying its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, SysError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| SysError::Spawn { program: program.into(), source })?;
    if !output.status.success() {
        return Err(SysError::Failed {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `program args...` with `input` on its standard input; a non-zero exit is an error.
pub fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), SysError> {
    use std::io::Write as _;
    let spawn = |source| SysError::Spawn { program: program.into(), source };
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(spawn)?;
    }
    let output = child.wait_with_output().map_err(spawn)?;
    if !output.status.success() {
        return Err(SysError::Failed {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// Stops a child of this process by its PID (see [`stop_pid`]) and reaps it.
pub fn stop_child(pid: u32, grace: Duration) {
    if pid <= 1 {
        return;
    }
    stop_pid(pid, grace);
    // SAFETY: waitpid(2) on our own child with WNOHANG has no memory-safety preconditions.
    unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
    forget_pid(pid);
}

/// Writes `value` to a kernel file (cgroup or proc), naming the file on failure.
pub fn write_file(path: &Path, value: &str) -> Result<(), SysError> {
    fs::write(path, value).map_err(|source| SysError::File { path: path.into(), source })
}

/// Sends `signal` to one process. Never used with a PID the harness did not start or find in
/// its own namespaces and cgroups.
pub fn signal_pid(pid: u32, signal: i32) {
    if pid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    }
}

/// Whether a process is still there (zombies count as gone).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub fn stop_pid(pid: u32, grace: Duration) {
    signal_pid(pid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if pid_alive(pid) {
        signal_pid(pid, libc::SIGKILL);
    }
}

/// Seconds since the Unix epoch, as f64: the one time base every part of the suite logs in.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Something to undo at exit.
#[derive(Debug, Clone, PartialEq)]
enum Resource {
    Process(u32),
    Netns(String),
    Cgroup(PathBuf),
}

static REGISTRY: Mutex<Vec<Resource>> = Mutex::new(Vec::new());

fn register(resource: Resource) {
    if let Ok(mut list) = REGISTRY.lock() {
        list.push(resource);
    }
}

fn forget(resource: &Resource) {
    if let Ok(mut list) = REGISTRY.lock() {
        list.retain(|r| r != resource);
    }
}

/// Records a process the harness started.
pub fn register_pid(pid: u32) {
    register(Resource::Process(pid));
}

/// Forgets a process that has been ended and reaped.
pub fn forget_pid(pid: u32) {
    forget(&Resource::Process(pid));
}

/// Records a network namespace the harness created.
pub fn register_netns(name: &str) {
    register(Resource::Netns(name.into()));
}

/// Forgets a namespace that has been deleted.
pub fn forget_netns(name: &str) {
    forget(&Resource::Netns(name.into()));
}

/// Records a cgroup directory the harness created.
pub fn register_cgroup(path: &Path) {
    register(Resource::Cgroup(path.into()));
}

/// Forgets a cgroup directory that has been removed.
pub fn forget_cgroup(path: &Path) {
    forget(&Resource::Cgroup(path.into()));
}

/// Undoes everything still registered, newest first: processes, then cgroups, then namespaces.
/// Safe to call more than once and from a panic hook.
pub fn cleanup_all() {
    leave_netns();
    let resources: Vec<Resource> = match REGISTRY.lock() {
        Ok(mut list) => std::mem::take(&mut *list),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    let pids: Vec<u32> = resources
        .iter()
        .rev()
        .filter_map(|r| match r {
            Resource::Process(pid) => Some(*pid),
            _ => None,
        })
        .collect();
    for pid in &pids {
        signal_pid(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while pids.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in pids.iter().filter(|p| pid_alive(**p)) {
        signal_pid(*pid, libc::SIGKILL);
    }
    for resource in resources.iter().rev() {
        if let Resource::Cgroup(path) = resource {
            remove_cgroup_tree(path);
        }
    }
    for resource in resources.iter().rev() {
        if let Resource::Netns(name) = resource {
            remove_netns(name);
        }
    }
}

/// Kills every process in a cgroup directory and its children by PID, then removes the
/// directories, deepest first. Bounded: gives up after a few seconds.
pub fn remove_cgroup_tree(path: &Path) {
    let mut dirs = vec![path.to_path_buf()];
    let mut index = 0;
    while index < dirs.len() {
        if let Ok(entries) = fs::read_dir(&dirs[index]) {
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(entry.path());
                }
            }
        }
        index += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for dir in dirs.iter().rev() {
        loop {
            let pids = cgroup_pids(dir);
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                signal_pid(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = fs::remove_dir(dir);
    }
}

/// The PIDs listed in a cgroup's `cgroup.procs`.
pub fn cgroup_pids(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Kills the processes inside a network namespace by PID and deletes the namespace.
pub fn remove_netns(name: &str) {
    if !name.starts_with(PREFIX) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<u32> = run("ip", &["netns", "pids", name])
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .filter(|pid| *pid != std::process::id())
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in pids {
            signal_pid(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = run("ip", &["netns", "del", name]);
}

/// Removes what a killed run left behind: namespaces named with the prefix (and their
/// processes), and prefixed cgroups under each of `cgroup_parents`.
pub fn remove_stale(cgroup_parents: &[PathBuf]) -> usize {
    let mut removed = 0;
    for line in run("ip", &["netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(PREFIX) {
            remove_netns(name);
            removed += 1;
        }
    }
    for parent in cgroup_parents {
        let Ok(entries) = fs::read_dir(parent) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                remove_cgroup_tree(&entry.path());
                removed += 1;
            }
        }
    }
    removed
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Takes an exclusive lock on `path` for the life of the process, or says who holds it.
pub fn lock_exclusive(path: &Path) -> Result<fs::File, SysError> {
    use std::os::fd::AsRawFd;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| SysError::File { path: path.into(), source })?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(SysError::Failed {
            command: format!("lock {}", path.display()),
            stderr: "another fault-suite run holds the lock".into(),
        });
    }
    Ok(file)
}

/// The network namespace the process started in, kept open so any thread can return to it.
static ORIGINAL_NETNS: std::sync::OnceLock<fs::File> = std::sync::OnceLock::new();

/// Moves the calling thread back to the namespace the process started in (no-op before
/// [`enter_netns`]).
pub fn leave_netns() {
    use std::os::fd::AsRawFd;
    if let Some(file) = ORIGINAL_NETNS.get() {
        // SAFETY: setns on a descriptor we own, with the matching namespace type.
        unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}

/// Moves the calling thread into a named network namespace. Threads and processes started
/// afterwards from this thread inherit it.
pub fn enter_netns(name: &str) -> Result<(), SysError> {
    use std::os::fd::AsRawFd;
    if ORIGINAL_NETNS.get().is_none() {
        let original = fs::File::open("/proc/thread-self/ns/net")
            .map_err(|source| SysError::File { path: "/proc/thread-self/ns/net".into(), source })?;
        let _ = ORIGINAL_NETNS.set(original);
    }
    let path = PathBuf::from(format!("/run/netns/{name}"));
    let file = fs::File::open(&path).map_err(|source| SysError::File { path: path.clone(), source })?;
    // SAFETY: setns on a descriptor we own, with the matching namespace type.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(SysError::File { path, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_pid_one_is_never_signalled() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(u32::MAX - 1));
        signal_pid(1, 0);
        signal_pid(0, 0);
    }

    #[test]
    fn registry_forgets_what_was_undone() {
        register_pid(u32::MAX - 7);
        forget_pid(u32::MAX - 7);
        assert!(!REGISTRY.lock().unwrap().contains(&Resource::Process(u32::MAX - 7)));
    }
}
