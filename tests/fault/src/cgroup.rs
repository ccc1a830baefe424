//! The cgroups of an emulated task: where the caller's own cgroups are, and a task's set of
//! memory, cpu, cpuacct and pids groups (cgroup v1) plus an optional cgroup2 group for
//! pressure files, each with one child per container.
//!
//! Layout for task `vgf-t3`: `<caller's memory cgroup>/vgf-t3` holds the task's memory limit and
//! `.../vgf-t3/app`, `.../vgf-t3/sidecar` hold the containers, like a Fargate task whose containers
//! have no limit of their own. The same shape repeats under cpu (quota on the task), cpuacct,
//! pids (limit on the task) and, when present, the cgroup2 mount.

use std::fs;
use std::path::{Path, PathBuf};

use crate::sys::{self, SysError};

/// The v1 controllers every task uses.
pub const CONTROLLERS: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

/// The container cgroups inside a task.
pub const CONTAINERS: [&str; 2] = ["app", "sidecar"];

/// Why the cgroups cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup v1 hierarchy with the {0} controller is mounted")]
    NoController(String),
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// Finds, in `/proc/self/mounts` text, the mount point of the v1 hierarchy carrying
/// `controller`, and the cgroup2 mount point (if any).
pub fn parse_mounts(mounts: &str, controller: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            return None;
        }
        let matches = if controller == "unified" {
            fields[2] == "cgroup2"
        } else {
            fields[2] == "cgroup" && fields[3].split(',').any(|opt| opt == controller)
        };
        matches.then(|| PathBuf::from(fields[1]))
    })
}

/// Finds, in `/proc/self/cgroup` text, the caller's path in the hierarchy of `controller`
/// (`unified` for the cgroup2 line `0::`).
pub fn parse_self_cgroup(text: &str, controller: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_id, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if controller == "unified" {
            names.is_empty()
        } else {
            names.split(',').any(|name| name == controller)
        };
        matches.then(|| path.to_owned())
    })
}

/// Where the caller's own cgroups are, per controller; task groups are created below them.
#[derive(Debug, Clone)]
pub struct Parents {
    pub memory: PathBuf,
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
    pub pids: PathBuf,
    pub unified: Option<PathBuf>,
}

impl Parents {
    /// Reads the caller's cgroups from `/proc/self`.
    pub fn discover() -> Result<Parents, CgroupError> {
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let find = |controller: &str| -> Option<PathBuf> {
            let mount = parse_mounts(&mounts, controller)?;
            let path = parse_self_cgroup(&own, controller)?;
            Some(mount.join(path.trim_start_matches('/')))
        };
        let need =
            |controller: &str| find(controller).ok_or_else(|| CgroupError::NoController(controller.into()));
        Ok(Parents {
            memory: need("memory")?,
            cpu: need("cpu")?,
            cpuacct: need("cpuacct")?,
            pids: need("pids")?,
            unified: find("unified").filter(|p| p.is_dir()),
        })
    }

    /// Every parent directory, for the stale sweep.
    pub fn all(&self) -> Vec<PathBuf> {
        let mut all = vec![self.memory.clone(), self.cpu.clone(), self.cpuacct.clone(), self.pids.clone()];
        all.extend(self.unified.clone());
        all
    }
}

/// The limits of one task.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: u64,
    pub cpu_vcpu: f64,
    pub pids_max: u64,
}

/// One task's cgroups; [`TaskCgroups::remove`] (or the registry at exit) deletes them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskCgroups {
    pub memory: PathBuf,
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
    pub pids: PathBuf,
    pub unified: Option<PathBuf>,
}

impl TaskCgroups {
    /// Creates the task's groups named `name` with `limits`, and one child per container.
    pub fn create(parents: &Parents, name: &str, limits: Limits) -> Result<TaskCgroups, CgroupError> {
        let groups = TaskCgroups {
            memory: parents.memory.join(name),
            cpu: parents.cpu.join(name),
            cpuacct: parents.cpuacct.join(name),
            pids: parents.pids.join(name),
            unified: parents.unified.as_ref().map(|p| p.join(name)),
        };
        for dir in groups.dirs() {
            make_dir(&dir)?;
            sys::register_cgroup(&dir);
            for container in CONTAINERS {
                make_dir(&dir.join(container))?;
            }
        }
        let memory = limits.memory_bytes.to_string();
        sys::write_file(&groups.memory.join("memory.limit_in_bytes"), &memory)?;
        // Without swap accounting this file is absent; with it, swap must not extend the limit.
        let _ = fs::write(groups.memory.join("memory.memsw.limit_in_bytes"), &memory);
        sys::write_file(&groups.cpu.join("cpu.cfs_period_us"), "100000")?;
        let quota = ((limits.cpu_vcpu * 100_000.0) as u64).max(1000);
        sys::write_file(&groups.cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
        sys::write_file(&groups.pids.join("pids.max"), &limits.pids_max.to_string())?;
        Ok(groups)
    }

    /// The task-level directories, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.memory.clone(), self.cpu.clone(), self.cpuacct.clone(), self.pids.clone()];
        dirs.extend(self.unified.clone());
        dirs
    }

    /// The `cgroup.procs` files a container's process must join.
    pub fn procs_files(&self, container: &str) -> Vec<PathBuf> {
        self.dirs().iter().map(|dir| dir.join(container).join("cgroup.procs")).collect()
    }

    /// The task's OOM kill count: `oom_kill` of `memory.oom_control`, summed over the task's
    /// group and its containers' (cgroup v1 counts a kill in the victim's own group).
    pub fn oom_kills(&self) -> u64 {
        let read = |dir: &Path| {
            parse_oom_kills(&fs::read_to_string(dir.join("memory.oom_control")).unwrap_or_default())
        };
        read(&self.memory) + CONTAINERS.iter().map(|c| read(&self.memory.join(c))).sum::<u64>()
    }

    /// Kills what is left inside and deletes every group.
    pub fn remove(&self) {
        for dir in self.dirs() {
            sys::remove_cgroup_tree(&dir);
            sys::forget_cgroup(&dir);
        }
    }
}

/// The `oom_kill` counter of `memory.oom_control` text (0 when absent).
pub fn parse_oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(SysError::File { path: dir.into(), source }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    const SELF: &str = "\
8:pids:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn mounts_and_own_paths_are_found() {
        assert_eq!(parse_mounts(MOUNTS, "memory"), Some(PathBuf::from("/sys/fs/cgroup/memory")));
        assert_eq!(parse_mounts(MOUNTS, "cpu"), Some(PathBuf::from("/sys/fs/cgroup/cpu")));
        assert_eq!(parse_mounts(MOUNTS, "unified"), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(parse_mounts(MOUNTS, "blkio"), None);
        assert_eq!(parse_self_cgroup(SELF, "memory").as_deref(), Some("/process_api/abc"));
        assert_eq!(parse_self_cgroup(SELF, "unified").as_deref(), Some("/"));
        assert_eq!(parse_self_cgroup(SELF, "cpu").as_deref(), Some("/"));
    }

    #[test]
    fn oom_kills_are_read() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(parse_oom_kills(text), 2);
        assert_eq!(parse_oom_kills(""), 0);
    }
}
