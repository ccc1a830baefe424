//! The local sampler: finds the watched processes under the proc root and reads them, their
//! cgroups, the listening sockets of their network namespaces, and pressure stall information
//! into a [`Sample`].
//!
//! It runs every tick inside someone else's task, so it reuses its buffers, reads each cgroup
//! once however many processes share it, and reads each network namespace's files once,
//! through one member process. A file that cannot be read leaves its reading `None` and adds a
//! [`SourceError`]; nothing here fails a tick or panics.
//!
//! Listening sockets: in vigil's own network namespace (in an ECS `awsvpc` task, the app's too)
//! they are listed every tick over netlink `sock_diag` ([`SockDiag`]), which is cheap and also
//! gives each socket's backlog. Other namespaces, and vigil's own while `sock_diag` fails, are
//! read from `/proc/<pid>/net/tcp{,6}`, which costs a walk of the kernel's whole connection
//! table, so only every [`LISTENERS_EVERY_TICKS`] ticks.
//!
//! Processes that are never watched: vigil itself, kernel threads (an empty command line or
//! the `PF_KTHREAD` flag), and, when PID 2 is the host's `kthreadd`, PID 2 and its children
//! (user-mode helpers the kernel starts). Inside a container's PID namespace PID 2 is an
//! ordinary process and is watched like any other.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use regex_lite::Regex;

use crate::judge::sample::{
    CgroupReading, Listener, NetReading, Pressure, ProcessReading, Sample, Source, SourceError,
};
use crate::sources::cgroup::CgroupReader;
use crate::sources::files::ReadError;
use crate::sources::procfs::{PF_KTHREAD, ProcReader, cmdline_to_line, parse_cgroup};
use crate::sources::sockdiag::{MAX_LISTENERS, SockDiag};

/// At most this many processes are watched (the lowest PIDs first).
pub const MAX_PROCESSES: usize = 64;

/// Files the proc reader holds open: `stat` of every watched process and of as many others,
/// the namespaces' `net/netstat` and the three pressure files.
const HELD_PROC_FILES: usize = 2 * MAX_PROCESSES + 8;

/// A watched process's command line, open-files limit and cgroup membership, which rarely
/// change, are read again every this many ticks (spread over ticks by PID), and at once for a
/// new process or one that has run another program (its name changed).
pub const FACTS_EVERY_TICKS: u64 = 10;

/// The host's kernel thread daemon, parent of every kernel thread.
const KTHREADD_PID: u32 = 2;

/// Listening sockets read from `/proc` are listed every this many ticks (`net/tcp` walks the
/// kernel's whole connection table, a few milliseconds on a large host); the overflow counters
/// every tick. After a `sock_diag` failure it is retried on these ticks only.
pub const LISTENERS_EVERY_TICKS: u64 = 10;

/// How many distinct once-only notices are remembered before the memory is reset.
const MAX_NOTICES: usize = 64;

/// Reads the local sources of one tick: `/proc`, cgroups and pressure.
#[derive(Debug)]
pub struct LocalSampler {
    proc: ProcReader,
    cgroups: CgroupReader,
    watch: Option<Regex>,
    self_pid: u32,
    capped: bool,
    pids: Vec<u32>,
    /// The command line of the process being matched, arguments joined by spaces.
    line: String,
    /// The name of the process being read.
    comm: String,
    /// The size of a memory page, in which `stat` gives resident memory.
    page_bytes: u64,
    known: Known,
    notices: Notices,
    ticks: u64,
    /// The listeners last read, per network namespace.
    listeners: Vec<(Option<u64>, Vec<Listener>)>,
    /// vigil's own network namespace, read once from `self/ns/net` under the proc root.
    own_namespace: OwnNamespace,
    sock_diag: SockDiag,
    /// Whether the last `sock_diag` listing failed.
    sock_diag_failed: bool,
}

/// vigil's own network namespace, whose listeners `sock_diag` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnNamespace {
    NotRead,
    /// The namespace's inode.
    Known(u64),
    /// `self/ns/net` could not be read (a proc root that is not a live procfs): every
    /// namespace is read from `/proc`.
    Unknown,
}

impl LocalSampler {
    pub fn new(proc_root: PathBuf, cgroup_root: PathBuf, watch: Option<Regex>, self_pid: u32) -> Self {
        LocalSampler {
            proc: ProcReader::holding(proc_root, HELD_PROC_FILES),
            cgroups: CgroupReader::new(cgroup_root),
            watch,
            self_pid,
            capped: false,
            pids: Vec::new(),
            line: String::new(),
            comm: String::new(),
            page_bytes: rustix::param::page_size() as u64,
            known: Known::default(),
            notices: Notices::default(),
            ticks: 0,
            listeners: Vec::new(),
            own_namespace: OwnNamespace::NotRead,
            sock_diag: SockDiag::new(),
            sock_diag_failed: false,
        }
    }

    /// Whether the last tick found more candidate processes than [`MAX_PROCESSES`] and watched
    /// only the first of them.
    pub fn capped(&self) -> bool {
        self.capped
    }

    /// Fills `out.proc_readable`, `processes`, `cgroups`, `networks` and `pressure` (replacing
    /// what they held) and appends what failed to `errors`.
    pub fn sample(&mut self, out: &mut Sample, errors: &mut Vec<SourceError>) {
        out.processes.clear();
        out.cgroups.clear();
        out.networks.clear();
        self.capped = false;

        if !self.cgroups.is_detected() {
            // The reader's own mountinfo says where its cgroup mounts start; without it the
            // cgroup reader falls back to trying path suffixes.
            let mountinfo = self.proc.read_self_mountinfo().ok();
            self.cgroups.detect(mountinfo);
        }

        out.proc_readable = match self.proc.list_pids(&mut self.pids) {
            Ok(()) => true,
            Err(error) => {
                push(errors, Source::Proc, &error);
                false
            }
        };
        if out.proc_readable {
            self.read_processes(out, errors);
            if self.own_namespace == OwnNamespace::NotRead {
                self.own_namespace = match self.proc.read_self_net_namespace() {
                    Ok(inode) => OwnNamespace::Known(inode),
                    // A proc root without `self` (a fixture) is not worth a notice.
                    Err(error) if error.is_not_found() => OwnNamespace::Unknown,
                    Err(error) => {
                        self.notices.once(Source::Network, format_args!("{error}"), errors);
                        OwnNamespace::Unknown
                    }
                };
            }
            self.read_networks(out, errors);
        }
        out.pressure = self.read_pressure(errors);
        self.proc.end_tick();
        self.cgroups.end_tick();
    }

    fn read_processes(&mut self, out: &mut Sample, errors: &mut Vec<SourceError>) {
        let LocalSampler {
            proc,
            cgroups,
            watch,
            self_pid,
            capped,
            pids,
            line,
            notices,
            known,
            comm,
            ticks,
            page_bytes,
            ..
        } = self;
        let host_kthreadd = pids.binary_search(&KTHREADD_PID).is_ok()
            && matches!(proc.read_stat(KTHREADD_PID), Ok(stat) if stat.comm == "kthreadd" && stat.ppid == 0);

        for &pid in pids.iter() {
            if pid == *self_pid || (host_kthreadd && pid == KTHREADD_PID) {
                continue;
            }
            let mut reading = match proc.read_stat(pid) {
                Ok(stat) => {
                    // Kernel threads and zombies (whose memory and files are gone) are not
                    // watched; nor are the kernel's user-mode helpers.
                    if stat.flags & PF_KTHREAD != 0
                        || matches!(stat.state, 'Z' | 'X')
                        || (host_kthreadd && stat.ppid == KTHREADD_PID)
                    {
                        continue;
                    }
                    comm.clear();
                    comm.push_str(stat.comm);
                    ProcessReading {
                        pid,
                        start_ticks: stat.start_ticks,
                        state: stat.state,
                        threads: Some(stat.threads),
                        cpu_ticks: Some(stat.cpu_ticks),
                        // The same count as `VmRSS` in `status` (which costs the kernel far
                        // more to write); 0 once an exiting process has dropped its memory.
                        rss_bytes: (stat.rss_pages > 0).then(|| stat.rss_pages.saturating_mul(*page_bytes)),
                        ..ProcessReading::default()
                    }
                }
                Err(error) => {
                    // Without `stat` there is no identity to report; a process that exits
                    // before it is even chosen is simply not there.
                    ProcessFailures::default().push(proc, pid, Source::Proc, &error, errors);
                    continue;
                }
            };
            let entry = known.entry(pid, reading.start_ticks, comm, *ticks);
            // A process that exits from here on keeps what was read of it (it was there this
            // tick); the files it took with it are not errors, and the rest are not read.
            let mut failures = ProcessFailures::default();
            if entry.due {
                entry.watched = match proc.read_cmdline(pid) {
                    // Empty in the middle of an exec, so asked again on the next tick (kernel
                    // threads and zombies, whose command lines are empty for good, were left
                    // out by their `stat`).
                    Ok("") => {
                        entry.due_again();
                        false
                    }
                    Ok(cmdline) => match watch {
                        Some(watch) => {
                            cmdline_to_line(cmdline, line);
                            watch.is_match(line)
                        }
                        None => true,
                    },
                    Err(error) => {
                        failures.push(proc, pid, Source::Proc, &error, errors);
                        entry.due_again();
                        continue;
                    }
                };
            }
            if !entry.watched {
                continue;
            }
            if out.processes.len() == MAX_PROCESSES {
                *capped = true;
                entry.due_again();
                break;
            }
            reading.name.clone_from(comm);
            if entry.due && !failures.exited {
                // A fact that cannot be read is tried again (and counted) on the next tick.
                let mut retry = false;
                entry.fd_limit = match proc.read_fd_limit(pid) {
                    Ok(limit) => limit,
                    Err(error) => {
                        failures.push(proc, pid, Source::Proc, &error, errors);
                        retry = true;
                        None
                    }
                };
                entry.cgroup.clear();
                match proc.read_cgroup(pid) {
                    Ok(text) => entry.cgroup.push_str(text),
                    Err(error) => {
                        failures.push(proc, pid, Source::Cgroup, &error, errors);
                        retry = true;
                    }
                }
                if retry {
                    entry.due_again();
                }
            }
            reading.fd_limit = entry.fd_limit;
            if !failures.exited {
                match proc.count_fds(pid) {
                    Ok(fds) => reading.open_fds = Some(fds),
                    Err(error) => failures.push(proc, pid, Source::Proc, &error, errors),
                }
            }
            if !failures.exited && !entry.cgroup.is_empty() {
                reading.cgroup = cgroup_index(cgroups, notices, &entry.cgroup, &mut out.cgroups, errors);
            }
            if !failures.exited {
                reading.network = match proc.read_net_namespace(pid) {
                    Ok(inode) => Some(network_index(Some(inode), &mut out.networks)),
                    Err(error) => {
                        failures.push(proc, pid, Source::Network, &error, errors);
                        // A process that exited has no namespace. One whose link is merely
                        // unreadable (another user's process) still has sockets, which its
                        // `net/` files show: such processes share one entry without an inode.
                        (!error.is_vanished()).then(|| network_index(None, &mut out.networks))
                    }
                };
            }
            out.processes.push(reading);
        }
        known.forget_unseen(*ticks);
    }

    /// Reads each network namespace's files once, through its first member process; if that
    /// process has exited, through the next. The listeners of vigil's own namespace come from
    /// `sock_diag` instead, unless it fails.
    fn read_networks(&mut self, out: &mut Sample, errors: &mut Vec<SourceError>) {
        let Sample { processes, networks, .. } = out;
        let refresh = self.ticks.is_multiple_of(LISTENERS_EVERY_TICKS);
        self.ticks += 1;
        for (index, network) in networks.iter_mut().enumerate() {
            let own = matches!(
                (self.own_namespace, network.namespace),
                (OwnNamespace::Known(own), Some(namespace)) if own == namespace
            );
            let from_sock_diag = own && self.list_own_listeners(&mut network.listeners, refresh, errors);
            let cached = self.listeners.iter().find(|(namespace, _)| *namespace == network.namespace);
            let list_listeners = match cached {
                _ if from_sock_diag => false,
                Some((_, listeners)) if !refresh => {
                    network.listeners.clone_from(listeners);
                    false
                }
                _ => true,
            };
            let members = processes.iter().filter(|process| process.network == Some(index));
            for member in members {
                if read_network(&mut self.proc, member.pid, network, list_listeners, errors) {
                    break;
                }
            }
            if list_listeners || from_sock_diag {
                match self.listeners.iter_mut().find(|(namespace, _)| *namespace == network.namespace) {
                    Some((_, listeners)) => listeners.clone_from(&network.listeners),
                    None => self.listeners.push((network.namespace, network.listeners.clone())),
                }
            }
        }
        if refresh {
            // Forget namespaces no watched process is in any more.
            self.listeners.retain(|(namespace, _)| networks.iter().any(|n| n.namespace == *namespace));
        }
    }

    /// Lists the listeners of vigil's own namespace over `sock_diag` into `listeners`; false
    /// when it failed (said once per cause) or, after a failure, until the next refresh tick.
    fn list_own_listeners(
        &mut self,
        listeners: &mut Vec<Listener>,
        refresh: bool,
        errors: &mut Vec<SourceError>,
    ) -> bool {
        if self.sock_diag_failed && !refresh {
            return false;
        }
        match self.sock_diag.list_listeners(listeners) {
            Ok(dropped) => {
                self.sock_diag_failed = false;
                if dropped > 0 {
                    self.notices.once(
                        Source::Network,
                        format_args!(
                            "more than {MAX_LISTENERS} listening sockets: the rest are not reported"
                        ),
                        errors,
                    );
                }
                true
            }
            Err(error) => {
                self.sock_diag_failed = true;
                self.notices.once(
                    Source::Network,
                    format_args!("{error}; listing listening sockets from /proc instead"),
                    errors,
                );
                false
            }
        }
    }

    fn read_pressure(&mut self, errors: &mut Vec<SourceError>) -> Option<Pressure> {
        let mut pressure = Pressure::default();
        let mut any = false;
        for (resource, slot) in
            [("cpu", &mut pressure.cpu), ("memory", &mut pressure.memory), ("io", &mut pressure.io)]
        {
            match self.proc.read_pressure(resource) {
                Ok(line) => {
                    *slot = Some(line);
                    any = true;
                }
                // Kernels without PSI, or with it disabled at boot: not a failure.
                Err(error) if error.is_not_found() || error.is_unsupported() => {}
                Err(error) => push(errors, Source::Pressure, &error),
            }
        }
        any.then_some(pressure)
    }
}

/// Finds (or reads and adds) the cgroup reading of a process whose `/proc/<pid>/cgroup` says
/// `membership`; `None` when its cgroup cannot be read.
fn cgroup_index(
    cgroups: &mut CgroupReader,
    notices: &mut Notices,
    membership: &str,
    readings: &mut Vec<CgroupReading>,
    errors: &mut Vec<SourceError>,
) -> Option<usize> {
    // The text parsed when it was read.
    let membership = parse_cgroup(membership).ok()?;
    let located = cgroups.locate(&membership);
    let identity = match located.identity() {
        Ok(identity) => identity,
        Err(error) => {
            // The same condition holds every tick (another container's cgroup stays out of
            // sight), so it is reported once rather than counted every second.
            notices.once(Source::Cgroup, format_args!("{error}"), errors);
            return None;
        }
    };
    let existing = readings
        .iter()
        .position(|reading| reading.version == identity.version && reading.path == identity.path);
    if existing.is_some() {
        return existing;
    }
    let mut failed = Vec::new();
    readings.push(cgroups.read(&located, identity, &mut failed));
    for error in &failed {
        push(errors, Source::Cgroup, error);
    }
    Some(readings.len() - 1)
}

fn network_index(namespace: Option<u64>, networks: &mut Vec<NetReading>) -> usize {
    match networks.iter().position(|network| network.namespace == namespace) {
        Some(index) => index,
        None => {
            networks.push(NetReading { namespace, ..NetReading::default() });
            networks.len() - 1
        }
    }
}

/// Reads `net/tcp`, `net/tcp6` and `net/netstat` through `pid` into `network`. Returns false
/// when `pid` had exited, so that another member of the namespace can be tried.
fn read_network(
    proc: &mut ProcReader,
    pid: u32,
    network: &mut NetReading,
    list_listeners: bool,
    errors: &mut Vec<SourceError>,
) -> bool {
    if list_listeners {
        network.listeners.clear();
        if let Err(error) = proc.read_listeners(pid, "tcp", &mut network.listeners) {
            ProcessFailures::default().push(proc, pid, Source::Network, &error, errors);
            if error.is_vanished() {
                return false;
            }
        }
        match proc.read_listeners(pid, "tcp6", &mut network.listeners) {
            Ok(()) => {}
            // A kernel without IPv6 has no `tcp6`.
            Err(error) if error.is_not_found() => {}
            Err(error) => push(errors, Source::Network, &error),
        }
    }
    let counters = proc.read_netstat(pid);
    if counters.as_ref().is_err_and(|error| error.is_vanished()) {
        return false;
    }
    if let Some(counters) = ok_or_push(counters, Source::Network, errors) {
        network.listen_overflows = counters.overflows;
        network.listen_drops = counters.drops;
    }
    true
}

/// What was read of the processes seen last tick, by PID: the facts that rarely change.
#[derive(Debug, Default)]
struct Known {
    /// Sorted by PID.
    processes: Vec<KnownProcess>,
}

#[derive(Debug)]
struct KnownProcess {
    pid: u32,
    start_ticks: u64,
    name: String,
    /// The tick it was last seen on.
    seen: u64,
    /// Whether its facts are read this tick.
    due: bool,
    /// Whether they are to be read on the next tick it is seen, whatever its turn.
    stale: bool,
    /// Whether its command line is watched (not empty, and matching `VIGIL_WATCH`).
    watched: bool,
    fd_limit: Option<u64>,
    /// The text of its `/proc/<pid>/cgroup`; empty when it could not be read.
    cgroup: String,
}

impl Known {
    /// The entry of the process `pid` started at `start_ticks` and named `name`, marked seen on
    /// `tick`. A new process (a PID reused is one) and a process whose name changed (it ran
    /// another program: the command line changes with it) are due at once.
    fn entry(&mut self, pid: u32, start_ticks: u64, name: &str, tick: u64) -> &mut KnownProcess {
        let index = match self.processes.binary_search_by_key(&pid, |known| known.pid) {
            Ok(index) => index,
            Err(index) => {
                let known = KnownProcess {
                    pid,
                    start_ticks,
                    name: name.to_owned(),
                    seen: tick,
                    due: true,
                    stale: true,
                    watched: false,
                    fd_limit: None,
                    cgroup: String::new(),
                };
                self.processes.insert(index, known);
                index
            }
        };
        let known = &mut self.processes[index];
        if known.start_ticks != start_ticks || known.name != name {
            known.start_ticks = start_ticks;
            known.name.clear();
            known.name.push_str(name);
            known.stale = true;
        }
        known.seen = tick;
        known.due = known.stale || (tick + u64::from(pid)).is_multiple_of(FACTS_EVERY_TICKS);
        known.stale = false;
        known
    }

    /// Forgets the processes not seen on `tick`.
    fn forget_unseen(&mut self, tick: u64) {
        self.processes.retain(|known| known.seen == tick);
    }
}

impl KnownProcess {
    /// Asks for its facts to be read on the next tick (they could not be read on this one).
    fn due_again(&mut self) {
        self.stale = true;
    }
}

/// The failed reads of one process's files in one tick. Each is counted unless the process
/// has exited, which costs a read of its `stat` and is asked at most once: a process found
/// running is taken to be running for the rest of the tick (another user's process refuses its
/// `fd` and `ns/net` every tick).
#[derive(Debug, Default)]
struct ProcessFailures {
    running: bool,
    exited: bool,
}

impl ProcessFailures {
    fn push(
        &mut self,
        proc: &mut ProcReader,
        pid: u32,
        source: Source,
        error: &ReadError,
        errors: &mut Vec<SourceError>,
    ) {
        if !self.running && !self.exited && error.may_mean_exit() {
            self.exited = proc.has_exited(pid);
            self.running = !self.exited;
        }
        if !self.exited {
            push(errors, source, error);
        }
    }
}

fn push(errors: &mut Vec<SourceError>, source: Source, error: &ReadError) {
    errors.push(SourceError::new(source, error.to_string()));
}

fn ok_or_push<T>(result: Result<T, ReadError>, source: Source, errors: &mut Vec<SourceError>) -> Option<T> {
    result.map_err(|error| push(errors, source, &error)).ok()
}

/// Conditions reported once rather than every tick.
#[derive(Debug, Default)]
struct Notices {
    seen: Vec<String>,
    scratch: String,
}

impl Notices {
    fn once(&mut self, source: Source, detail: fmt::Arguments<'_>, errors: &mut Vec<SourceError>) {
        self.scratch.clear();
        // Writing into a `String` cannot fail.
        let _ = self.scratch.write_fmt(detail);
        if self.seen.contains(&self.scratch) {
            return;
        }
        if self.seen.len() == MAX_NOTICES {
            self.seen.clear();
        }
        self.seen.push(self.scratch.clone());
        errors.push(SourceError::new(source, self.scratch.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::net::{TcpListener, TcpStream};
    use std::path::Path;

    use super::*;
    use crate::judge::sample::{CgroupVersion, PressureLine};

    const SELF_PID: u32 = 20;
    const NAMESPACE: u64 = 4026532201;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/local").join(name)
    }

    fn fixture_sampler(cgroup_root: &str, watch: Option<&str>) -> LocalSampler {
        LocalSampler::new(
            fixture("proc"),
            fixture(cgroup_root),
            watch.map(|pattern| Regex::new(pattern).unwrap()),
            SELF_PID,
        )
    }

    fn tick(sampler: &mut LocalSampler) -> (Sample, Vec<SourceError>) {
        let mut sample = Sample::default();
        let mut errors = Vec::new();
        sampler.sample(&mut sample, &mut errors);
        (sample, errors)
    }

    fn pids(sample: &Sample) -> Vec<u32> {
        sample.processes.iter().map(|process| process.pid).collect()
    }

    fn page_bytes() -> u64 {
        rustix::param::page_size() as u64
    }

    fn process(sample: &Sample, pid: u32) -> &ProcessReading {
        sample.processes.iter().find(|process| process.pid == pid).unwrap()
    }

    /// The error details, with the fixture directory cut off so the expectations read the way
    /// the errors do on a real machine.
    fn details(errors: &[SourceError]) -> Vec<(Source, String)> {
        let root = fixture("").display().to_string();
        errors.iter().map(|error| (error.source, error.detail.replace(&root, ""))).collect()
    }

    #[test]
    fn reads_the_fixture_task_with_a_hybrid_cgroup_root() {
        let mut sampler = fixture_sampler("cgroup-v1", None);
        let (sample, errors) = tick(&mut sampler);

        assert!(sample.proc_readable);
        assert!(!sampler.capped());
        // Not 2 or 31 (kernel threads), 33 (kthreadd's helper), 20 (vigil) or 40 (gone).
        assert_eq!(pids(&sample), [7, 8, 12, 13, 41]);

        assert_eq!(
            *process(&sample, 7),
            ProcessReading {
                pid: 7,
                name: "node".to_owned(),
                start_ticks: 150000,
                state: 'S',
                rss_bytes: Some(40960 * page_bytes()),
                threads: Some(11),
                open_fds: Some(6),
                fd_limit: Some(65535),
                cpu_ticks: Some(5200),
                cgroup: Some(0),
                network: Some(0),
            }
        );
        let python = process(&sample, 12);
        assert_eq!(python.name, "python3");
        assert_eq!(python.fd_limit, None, "unlimited");
        assert_eq!(python.open_fds, Some(3));
        assert_eq!(python.cgroup, Some(1));

        // 7 and 8 share one cgroup; 12 is only in the unified hierarchy, which offers CPU
        // usage alone here; 13's cgroup belongs to another container.
        assert_eq!(process(&sample, 8).cgroup, Some(0));
        assert_eq!(process(&sample, 13).cgroup, None);
        assert_eq!(
            sample.cgroups,
            [
                CgroupReading {
                    path: "/ecs/0f1e2d/app".to_owned(),
                    version: CgroupVersion::V1,
                    memory_usage_bytes: Some(268435456),
                    memory_limit_bytes: Some(536870912),
                    memory_inactive_file_bytes: Some(67108864),
                    oom_kills: Some(2),
                    pids_current: Some(9),
                    pids_max: Some(512),
                    pids_limit_hits: Some(3),
                    cpu_usage_usec: Some(123456789),
                    cpu_periods: Some(1200),
                    cpu_throttled_periods: Some(300),
                    cpu_throttled_usec: Some(45000000),
                },
                CgroupReading {
                    path: "/ecs/0f1e2d/web".to_owned(),
                    version: CgroupVersion::V2,
                    cpu_usage_usec: Some(526407),
                    ..CgroupReading::default()
                },
            ]
        );
        assert_eq!(sample.cgroups[0].memory_working_set_bytes(), Some(201326592));

        // One namespace, read once through process 7 (8 and 13 have no `net/` files).
        assert_eq!(
            sample.networks,
            [NetReading {
                namespace: Some(NAMESPACE),
                listeners: vec![
                    Listener { port: 8080, queue: 3, backlog: 0 },
                    Listener { port: 9901, queue: 0, backlog: 0 },
                    Listener { port: 9797, queue: 0, backlog: 0 },
                ],
                listen_overflows: Some(17),
                listen_drops: Some(21),
            }]
        );
        for pid in [7, 8, 12, 13] {
            assert_eq!(process(&sample, pid).network, Some(0), "pid {pid}");
        }

        assert_eq!(
            sample.pressure,
            Some(Pressure {
                cpu: Some(PressureLine {
                    some_avg10: 2.5,
                    some_total_usec: 8123456,
                    full_avg10: None,
                    full_total_usec: None,
                }),
                memory: Some(PressureLine {
                    some_avg10: 0.4,
                    some_total_usec: 99000,
                    full_avg10: Some(0.1),
                    full_total_usec: Some(41000),
                }),
                io: Some(PressureLine {
                    some_avg10: 0.98,
                    some_total_usec: 7450617,
                    full_avg10: Some(0.98),
                    full_total_usec: Some(6925332),
                }),
            })
        );

        // 40 vanished before its `stat` was read, 41 after: each missing file is counted.
        let outside = "cgroup /ecs/0f1e2d/envoy is outside the cgroup mount vigil sees \
                       (it belongs to another container)";
        assert_eq!(
            details(&errors),
            [
                (Source::Cgroup, outside.to_owned()),
                (Source::Proc, "read proc/40/stat: no such file or directory".to_owned()),
                (Source::Proc, "read proc/41/limits: no such file or directory".to_owned()),
                (Source::Cgroup, "read proc/41/cgroup: no such file or directory".to_owned()),
                (Source::Proc, "read proc/41/fd: no such file or directory".to_owned()),
                (Source::Network, "read proc/41/ns/net: no such file or directory".to_owned()),
            ]
        );
        let vanished = process(&sample, 41);
        assert_eq!((vanished.open_fds, vanished.fd_limit), (None, None));
        assert_eq!((vanished.cgroup, vanished.network), (None, None));
        assert_eq!((vanished.threads, vanished.rss_bytes), (Some(1), Some(500 * page_bytes())), "from stat");

        // The next tick gives the same sample and the same per-tick errors, but the notice
        // about another container's cgroup is not repeated.
        let (again, errors) = tick(&mut sampler);
        assert_eq!(again, sample);
        assert_eq!(errors.len(), 5);
        assert!(errors.iter().all(|error| !error.detail.contains("envoy")));
    }

    #[test]
    fn reads_the_fixture_task_with_a_pure_v2_cgroup_root() {
        let mut sampler = fixture_sampler("cgroup-v2", None);
        let (sample, errors) = tick(&mut sampler);
        assert_eq!(pids(&sample), [7, 8, 12, 13, 41]);
        // Without v1 hierarchies, 7, 8 and 13 fall back to their unified line `0::/`, the
        // root cgroup, which has no memory or pids files (and that is not an error).
        assert_eq!(
            sample.cgroups,
            [
                CgroupReading {
                    path: "/".to_owned(),
                    version: CgroupVersion::V2,
                    ..CgroupReading::default()
                },
                CgroupReading {
                    path: "/ecs/0f1e2d/web".to_owned(),
                    version: CgroupVersion::V2,
                    memory_usage_bytes: Some(150994944),
                    memory_limit_bytes: Some(268435456),
                    memory_inactive_file_bytes: Some(33554432),
                    oom_kills: Some(1),
                    pids_current: Some(5),
                    pids_max: Some(1024),
                    pids_limit_hits: Some(0),
                    cpu_usage_usec: Some(98765432),
                    cpu_periods: Some(500),
                    cpu_throttled_periods: Some(20),
                    cpu_throttled_usec: Some(1500000),
                },
            ]
        );
        for (pid, cgroup) in [(7, Some(0)), (8, Some(0)), (12, Some(1)), (13, Some(0))] {
            assert_eq!(process(&sample, pid).cgroup, cgroup, "pid {pid}");
        }
        assert!(
            errors.iter().all(|error| error.source != Source::Cgroup || error.detail.contains("proc/41/"))
        );
    }

    #[test]
    fn listeners_are_listed_every_few_ticks_and_reused_between() {
        let mut sampler = fixture_sampler("cgroup-v1", None);
        let (first, _) = tick(&mut sampler);
        assert!(first.networks.iter().any(|n| !n.listeners.is_empty()));
        // The cached listeners stand in until the next listing; the counters are read anew.
        sampler.proc = ProcReader::new(fixture("no-such-proc"));
        sampler.pids.clear();
        for _ in 1..LISTENERS_EVERY_TICKS {
            let mut sample = Sample { networks: first.networks.clone(), ..Sample::default() };
            sample.processes = first.processes.clone();
            let mut errors = Vec::new();
            sampler.read_networks(&mut sample, &mut errors);
            let listeners: Vec<_> = sample.networks.iter().map(|n| n.listeners.clone()).collect();
            let expected: Vec<_> = first.networks.iter().map(|n| n.listeners.clone()).collect();
            assert_eq!(listeners, expected);
            assert!(errors.iter().all(|e| !e.detail.contains("net/tcp")), "{errors:?}");
        }
    }

    /// A connection the listener has not accepted, waiting in its accept queue.
    fn pending(listener: &TcpListener) -> TcpStream {
        TcpStream::connect(listener.local_addr().unwrap()).unwrap()
    }

    fn sock_diag_errors(errors: &[SourceError]) -> Vec<&str> {
        errors.iter().filter(|e| e.detail.contains("sock_diag")).map(|e| e.detail.as_str()).collect()
    }

    #[test]
    fn lists_its_own_namespace_over_sock_diag_every_tick() {
        // The real proc root, watching only this test process: vigil's own PID is set to one no
        // process has, so the test process is watched, and its namespace is vigil's own.
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        let watch = Regex::new(&regex_lite::escape(name)).unwrap();
        let mut sampler = LocalSampler::new("/proc".into(), "/sys/fs/cgroup".into(), Some(watch), 0);
        let own = ProcReader::new("/proc").read_self_net_namespace().unwrap();

        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let _connections = [pending(&first), pending(&first)];
        let (sample, errors) = tick(&mut sampler);
        assert!(pids(&sample).contains(&std::process::id()));
        let network = sample.networks.iter().find(|n| n.namespace == Some(own)).unwrap();
        let port = first.local_addr().unwrap().port();
        let found = network.listeners.iter().find(|l| l.port == port).copied();
        // `/proc/net/tcp` would show the queue but a backlog of 0.
        assert!(matches!(found, Some(Listener { queue: 2, backlog, .. }) if backlog > 0), "{found:?}");
        assert!(network.listen_overflows.is_some(), "net/netstat is still read");
        assert_eq!(sock_diag_errors(&errors), Vec::<&str>::new());
        assert!(sampler.listeners.iter().any(|(namespace, _)| *namespace == Some(own)));

        // The second tick lists no `/proc` files, yet sees a listener opened since the first.
        let second = TcpListener::bind("127.0.0.1:0").unwrap();
        let (sample, errors) = tick(&mut sampler);
        let network = sample.networks.iter().find(|n| n.namespace == Some(own)).unwrap();
        let port = second.local_addr().unwrap().port();
        let found = network.listeners.iter().find(|l| l.port == port).copied();
        assert!(matches!(found, Some(Listener { queue: 0, backlog, .. }) if backlog > 0), "{found:?}");
        assert_eq!(sock_diag_errors(&errors), Vec::<&str>::new());
    }

    #[test]
    fn falls_back_to_proc_when_sock_diag_fails_and_retries_on_refresh_ticks() {
        // The fixture's namespace stands in for vigil's own, and the first request goes to a
        // UDP socket, which cannot send to a netlink address.
        let mut sampler = fixture_sampler("cgroup-v1", None);
        sampler.own_namespace = OwnNamespace::Known(NAMESPACE);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sampler.sock_diag = SockDiag::with_socket(udp.into());

        let (first, errors) = tick(&mut sampler);
        let from_proc = vec![
            Listener { port: 8080, queue: 3, backlog: 0 },
            Listener { port: 9901, queue: 0, backlog: 0 },
            Listener { port: 9797, queue: 0, backlog: 0 },
        ];
        assert_eq!(first.networks[0].listeners, from_proc);
        let said = sock_diag_errors(&errors);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("send sock_diag request: "), "{}", said[0]);
        assert!(said[0].ends_with("; listing listening sockets from /proc instead"), "{}", said[0]);

        // Until the next refresh tick it is not retried: the `/proc` listing stands in, and
        // nothing is said again.
        for _ in 1..LISTENERS_EVERY_TICKS {
            let (sample, errors) = tick(&mut sampler);
            assert_eq!(sample.networks[0].listeners, from_proc);
            assert_eq!(sock_diag_errors(&errors), Vec::<&str>::new());
        }

        // On the refresh tick a fresh netlink socket works: the listeners are now those of the
        // test's real namespace, with their backlogs.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sample, errors) = tick(&mut sampler);
        let found = sample.networks[0].listeners.iter().find(|l| l.port == port).copied();
        assert!(matches!(found, Some(Listener { queue: 0, backlog, .. }) if backlog > 0), "{found:?}");
        assert_eq!(sock_diag_errors(&errors), Vec::<&str>::new());
        assert!(!sampler.sock_diag_failed);
    }

    #[test]
    fn watch_regex_selects_by_command_line() {
        // Arguments are joined by spaces before matching.
        let mut sampler = fixture_sampler("cgroup-v2", Some(r"-m gunicorn app:"));
        let (sample, errors) = tick(&mut sampler);
        assert_eq!(pids(&sample), [12]);
        // Every visible process's `stat` is read (it says which process holds the PID), so
        // 40, which vanished before it, is counted though it would not have been watched.
        assert_eq!(
            details(&errors),
            [(Source::Proc, "read proc/40/stat: no such file or directory".to_owned())]
        );
        // The namespace is now read through 12, its only watched member.
        assert_eq!(sample.networks.len(), 1);
        assert_eq!(sample.networks[0].listeners.len(), 3);
        assert_eq!(sample.cgroups.len(), 1);

        // Vigil is never watched, even when the pattern matches it.
        let mut sampler = sampler_with_self("cgroup-v2", "vigil|node", SELF_PID);
        let (sample, _) = tick(&mut sampler);
        assert_eq!(pids(&sample), [7, 8]);
        let mut sampler = sampler_with_self("cgroup-v2", "vigil|node", 7);
        let (sample, _) = tick(&mut sampler);
        assert_eq!(pids(&sample), [8, 20]);
    }

    fn sampler_with_self(cgroup_root: &str, watch: &str, self_pid: u32) -> LocalSampler {
        LocalSampler::new(fixture("proc"), fixture(cgroup_root), Some(Regex::new(watch).unwrap()), self_pid)
    }

    #[test]
    fn unreadable_proc_root_is_not_a_failed_tick() {
        let mut sampler =
            LocalSampler::new(fixture("no-such-proc"), fixture("no-such-cgroup"), None, SELF_PID);
        let mut sample = Sample { processes: vec![ProcessReading::default()], ..Sample::default() };
        let mut errors = Vec::new();
        sampler.sample(&mut sample, &mut errors);
        assert!(!sample.proc_readable);
        assert_eq!(sample.processes, []);
        assert_eq!(sample.pressure, None, "no PSI is not an error");
        assert_eq!(
            details(&errors),
            [(Source::Proc, "read no-such-proc: no such file or directory".to_owned())]
        );
    }

    #[test]
    fn processes_exiting_while_they_are_read_are_not_errors() {
        use std::process::{Command, Stdio};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        // Real processes living a few milliseconds, read from the real /proc as they come and
        // go, beside one that stays.
        let mut stays = Command::new("sleep").arg("30.25").spawn().unwrap();
        // Its command line is empty until its exec has completed.
        for _ in 0..1000 {
            if fs::read(format!("/proc/{}/cmdline", stays.id())).is_ok_and(|line| !line.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let churn: Vec<_> = (0..2)
            .map(|_| {
                let (stop, started) = (Arc::clone(&stop), Arc::clone(&started));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut child) = Command::new("sleep").arg("0.003").stdout(Stdio::null()).spawn()
                        else {
                            continue;
                        };
                        started.fetch_add(1, Ordering::Relaxed);
                        let _ = child.wait();
                    }
                })
            })
            .collect();
        let watch = Regex::new(r"^sleep (0\.003|30\.25)$").unwrap();
        let mut sampler =
            LocalSampler::new("/proc".into(), "/sys/fs/cgroup".into(), Some(watch), std::process::id());
        let mut seen_short = std::collections::BTreeSet::new();
        let mut failures = Vec::new();
        for n in 0..300 {
            let (sample, errors) = tick(&mut sampler);
            let Some(kept) = sample.processes.iter().find(|p| p.pid == stays.id()) else {
                panic!("tick {n}: pid {} missing: {:?} {errors:?}", stays.id(), pids(&sample));
            };
            assert!(kept.rss_bytes.is_some() && kept.open_fds.is_some(), "{kept:?}");
            seen_short.extend(sample.processes.iter().map(|p| p.pid).filter(|&pid| pid != stays.id()));
            failures.extend(
                errors.into_iter().filter(|e| e.source != Source::Cgroup || !e.detail.contains("outside")),
            );
        }
        stop.store(true, Ordering::Relaxed);
        for thread in churn {
            thread.join().unwrap();
        }
        let _ = stays.kill();
        let _ = stays.wait();
        assert!(seen_short.len() > 10, "too few short-lived processes were read: {}", seen_short.len());
        assert_eq!(failures, [], "{} short-lived processes started", started.load(Ordering::Relaxed));
    }

    #[test]
    fn limits_are_read_again_on_the_process_turn_and_a_new_program_at_once() {
        use std::process::Command;
        let mut child = Command::new("sleep").arg("30.5").spawn().unwrap();
        let pid = child.id();
        // Its command line is the test's, then empty, until its exec has completed.
        for _ in 0..1000 {
            if fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| line.starts_with(b"sleep")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let watch = Regex::new(r"^sleep 30\.5$").unwrap();
        let mut sampler =
            LocalSampler::new("/proc".into(), "/sys/fs/cgroup".into(), Some(watch), std::process::id());
        let limit_of =
            |sample: &Sample, pid: u32| sample.processes.iter().find(|p| p.pid == pid).map(|p| p.fd_limit);
        let limit = |sample: &Sample| limit_of(sample, pid);
        let (sample, _) = tick(&mut sampler);
        let before = limit(&sample).expect("the child is watched");
        assert_ne!(before, Some(777));
        let status = Command::new("prlimit").arg(format!("--pid={pid}")).arg("--nofile=777:").status();
        assert!(status.unwrap().success());
        for _ in 0..FACTS_EVERY_TICKS {
            let due = (sampler.ticks + u64::from(pid)).is_multiple_of(FACTS_EVERY_TICKS);
            let (sample, _) = tick(&mut sampler);
            if due {
                assert_eq!(limit(&sample), Some(Some(777)), "read on its turn");
                break;
            }
            assert_eq!(limit(&sample), Some(before), "not read before its turn");
        }
        let _ = child.kill();
        let _ = child.wait();

        // A shell, not watched, that becomes a watched program: watched on the first tick
        // after its exec, not on its turn.
        let mut child = Command::new("sh").args(["-c", "sleep 0.3; exec sleep 30.5"]).spawn().unwrap();
        let pid = child.id();
        let mut watched_after_exec = false;
        for _ in 0..200 {
            let execed =
                fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| line.starts_with(b"sleep"));
            let (sample, _) = tick(&mut sampler);
            let watched = limit_of(&sample, pid).is_some();
            if execed {
                watched_after_exec = watched;
                break;
            }
            assert!(!watched, "the shell is not watched");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(watched_after_exec);
    }

    #[test]
    fn without_cgroups_or_pressure_the_processes_are_still_read() {
        // A kernel without cgroup mounts vigil can see, and without PSI (no `pressure/`): the
        // fixture's processes with every cgroup and pressure file out of reach.
        let scratch = ScratchProc::new("no-cgroups");
        for pid in [7, 8] {
            scratch.process(pid, "app", 1);
            let dir = scratch.0.join(pid.to_string());
            fs::write(
                dir.join("limits"),
                "Max open files            1024                 4096                 files\n",
            )
            .unwrap();
            fs::write(dir.join("cgroup"), "0::/ecs/task/app\n").unwrap();
        }
        let mut sampler = LocalSampler::new(scratch.0.clone(), scratch.0.join("no-cgroup-mount"), None, 1000);
        for tick_number in 0..3 {
            let (sample, errors) = tick(&mut sampler);
            assert!(sample.proc_readable);
            assert_eq!(pids(&sample), [7, 8]);
            let app = process(&sample, 7);
            assert_eq!(
                (app.rss_bytes, app.threads, app.fd_limit, app.open_fds, app.cgroup),
                (Some(10 * page_bytes()), Some(1), Some(1024), Some(0), None)
            );
            assert_eq!(sample.cgroups, []);
            assert_eq!(sample.pressure, None, "no PSI is not an error");
            // Said once, not counted every tick (the scratch root has no `ns/net` links either,
            // which is the network source's business).
            let cgroup: Vec<_> = errors.iter().filter(|e| e.source != Source::Network).collect();
            let expected = "no memory, pids or cpu cgroup is visible under the cgroup root";
            if tick_number == 0 {
                assert_eq!(cgroup, [&SourceError::new(Source::Cgroup, expected)]);
            } else {
                assert_eq!(cgroup, Vec::<&SourceError>::new());
            }
        }
    }

    /// A scratch proc root under the system's temporary directory, removed on drop.
    struct ScratchProc(PathBuf);

    impl ScratchProc {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("vigil-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            ScratchProc(dir)
        }

        fn process(&self, pid: u32, comm: &str, ppid: u32) {
            let dir = self.0.join(pid.to_string());
            fs::create_dir_all(dir.join("fd")).unwrap();
            fs::write(dir.join("cmdline"), format!("{comm}\0")).unwrap();
            let stat =
                format!("{pid} ({comm}) S {ppid} 1 1 0 -1 4194560 0 0 0 0 1 1 0 0 20 0 1 0 {pid} 1000 10 0");
            fs::write(dir.join("stat"), stat).unwrap();
        }
    }

    impl Drop for ScratchProc {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn caps_at_the_lowest_pids_and_watches_pid_2_in_a_container() {
        let scratch = ScratchProc::new("cap");
        // Inside a container's PID namespace PID 2 is an ordinary process, and so are its
        // children.
        for pid in 1..=70 {
            scratch.process(pid, "app", if pid == 1 { 0 } else { 2 });
        }
        let mut sampler = LocalSampler::new(scratch.0.clone(), scratch.0.clone(), None, 1000);
        let (sample, _) = tick(&mut sampler);
        assert!(sampler.capped());
        // Numeric order, not the directory's order: 1, 2, ..., 64.
        assert_eq!(pids(&sample), (1..=64).collect::<Vec<_>>());
        // One fewer candidate than the cap is not capped.
        fs::remove_dir_all(scratch.0.join("70")).unwrap();
        for pid in 65..=69 {
            fs::remove_dir_all(scratch.0.join(pid.to_string())).unwrap();
        }
        let (sample, _) = tick(&mut sampler);
        assert!(!sampler.capped());
        assert_eq!(sample.processes.len(), 64);
    }

    #[test]
    fn notices_are_given_once() {
        let mut notices = Notices::default();
        let mut errors = Vec::new();
        for _ in 0..3 {
            notices.once(Source::Cgroup, format_args!("cgroup {} gone", "/a"), &mut errors);
        }
        notices.once(Source::Cgroup, format_args!("cgroup {} gone", "/b"), &mut errors);
        assert_eq!(
            errors,
            [
                SourceError::new(Source::Cgroup, "cgroup /a gone"),
                SourceError::new(Source::Cgroup, "cgroup /b gone"),
            ]
        );
    }
}
