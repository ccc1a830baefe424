//! `/proc`: pure parsers for the per-process, per-namespace and system-wide files vigil reads,
//! and a thin reader that fetches them under a configurable root (`VIGIL_PROC_ROOT`).
//!
//! Every `parse_*` function takes the file's text and does no I/O, so it is tested with literal
//! captures. [`ProcReader`] owns the root and two reusable buffers; it returns a typed
//! [`ReadError`] that names the file, and the sampler turns that into a counted `SourceError`.

use std::fmt::Write as _;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::RawDir;

use crate::judge::sample::{Listener, PressureLine};
use crate::sources::files::{ESRCH, OpenFiles, ParseError, ReadError, as_text, read_into};

// ---------------------------------------------------------------------------------------------
// Pure parsers.
// ---------------------------------------------------------------------------------------------

/// The fields vigil uses from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    pub pid: u32,
    /// The kernel's short name; it may itself contain spaces and parentheses.
    pub comm: &'a str,
    pub state: char,
    pub ppid: u32,
    /// The kernel's per-process flags (`PF_*`), e.g. [`PF_KTHREAD`].
    pub flags: u64,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    pub threads: u64,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    /// Resident set size in pages (the page size is not known here).
    pub rss_pages: u64,
}

/// The `stat` flag of kernel threads (`include/linux/sched.h`).
pub const PF_KTHREAD: u64 = 0x0020_0000;
/// Set from the moment a process starts to exit: it drops its memory, files and namespaces
/// before it becomes a zombie.
pub const PF_EXITING: u64 = 0x0000_0004;

/// Parses `/proc/<pid>/stat`.
///
/// The name sits between the first `(` and the *last* `)`, because a name may contain both
/// (a program called `x) (y` is legal); every field after it is separated by single spaces.
pub fn parse_stat(text: &str) -> Result<Stat<'_>, ParseError> {
    let open = text.find('(').ok_or(ParseError::Malformed("stat name"))?;
    let close = text.rfind(')').ok_or(ParseError::Malformed("stat name"))?;
    if close < open {
        return Err(ParseError::Malformed("stat name"));
    }
    let pid = number(text[..open].trim(), "stat pid")?;
    let comm = &text[open + 1..close];

    // `fields[0]` is field 3 of proc(5) (state), so field n is `fields[n - 3]`.
    let mut fields = [""; 22];
    let mut count = 0;
    for (slot, field) in fields.iter_mut().zip(text[close + 1..].split_ascii_whitespace()) {
        *slot = field;
        count += 1;
    }
    if count < fields.len() {
        return Err(ParseError::Missing("stat fields"));
    }
    let mut state_chars = fields[0].chars();
    let state = match (state_chars.next(), state_chars.next()) {
        (Some(state), None) => state,
        _ => return Err(ParseError::Malformed("stat state")),
    };
    let utime: u64 = number(fields[11], "stat utime")?;
    let stime: u64 = number(fields[12], "stat stime")?;
    Ok(Stat {
        pid,
        comm,
        state,
        ppid: number(fields[1], "stat ppid")?,
        flags: number(fields[6], "stat flags")?,
        cpu_ticks: utime.saturating_add(stime),
        threads: number(fields[17], "stat num_threads")?,
        start_ticks: number(fields[19], "stat starttime")?,
        rss_pages: number(fields[21], "stat rss")?,
    })
}

/// Parses the soft "Max open files" limit from `/proc/<pid>/limits`; `None` when unlimited.
pub fn parse_fd_limit(text: &str) -> Result<Option<u64>, ParseError> {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .ok_or(ParseError::Missing("Max open files"))?;
    match line.split_ascii_whitespace().next() {
        Some("unlimited") => Ok(None),
        Some(soft) => number(soft, "Max open files").map(Some),
        None => Err(ParseError::Missing("Max open files soft limit")),
    }
}

/// The cgroups one process belongs to, from `/proc/<pid>/cgroup`: for each v1 controller vigil
/// reads, the path in that controller's hierarchy, and the path in the v2 (unified) hierarchy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Membership<'a> {
    pub memory: Option<&'a str>,
    pub pids: Option<&'a str>,
    pub cpu: Option<&'a str>,
    pub cpuacct: Option<&'a str>,
    /// The `0::/path` line; present on cgroup v2 and on hybrid hosts.
    pub unified: Option<&'a str>,
}

/// Parses `/proc/<pid>/cgroup`: v1 lines are `id:controller[,controller...]:/path` and the v2
/// line is `0::/path`. Named v1 hierarchies (`name=systemd`) are ignored.
pub fn parse_cgroup(text: &str) -> Result<Membership<'_>, ParseError> {
    let mut membership = Membership::default();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let (id, rest) = line.split_once(':').ok_or(ParseError::Malformed("cgroup line"))?;
        let (controllers, path) = rest.split_once(':').ok_or(ParseError::Malformed("cgroup line"))?;
        if id == "0" && controllers.is_empty() {
            membership.unified = Some(path);
            continue;
        }
        for controller in controllers.split(',') {
            let slot = match controller {
                "memory" => &mut membership.memory,
                "pids" => &mut membership.pids,
                "cpu" => &mut membership.cpu,
                "cpuacct" => &mut membership.cpuacct,
                _ => continue,
            };
            *slot = Some(path);
        }
    }
    Ok(membership)
}

/// Appends the LISTEN rows (state `0A`) of `/proc/<pid>/net/tcp` or `tcp6` to `out`.
///
/// For a LISTEN row the kernel prints the current accept-queue length as `rx_queue`. The
/// `tx_queue` column is copied into [`Listener::backlog`] as the row shows it, but the kernel
/// prints `write_seq - snd_una` there for every state, so it is 0 for listening sockets (seen on
/// this project's 6.x kernels: a socket with `listen(4)` shows `00000000:00000002`). The real
/// capacity is only reported over netlink `sock_diag` ([`crate::sources::sockdiag`]).
pub fn parse_tcp_listeners(text: &str, out: &mut Vec<Listener>) -> Result<(), ParseError> {
    for line in text.lines().skip(1) {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_slot), Some(local), Some(_remote), Some(state), Some(queues)) =
            (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
        else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(ParseError::Malformed("tcp row"));
        };
        if state != "0A" {
            continue;
        }
        let (_address, port) = local.rsplit_once(':').ok_or(ParseError::Malformed("tcp local address"))?;
        let (tx_queue, rx_queue) = queues.split_once(':').ok_or(ParseError::Malformed("tcp queues"))?;
        out.push(Listener {
            port: u16::from_str_radix(port, 16).map_err(|_| ParseError::NotANumber("tcp port"))?,
            queue: u32::from_str_radix(rx_queue, 16).map_err(|_| ParseError::NotANumber("tcp rx_queue"))?,
            backlog: u32::from_str_radix(tx_queue, 16).map_err(|_| ParseError::NotANumber("tcp tx_queue"))?,
        });
    }
    Ok(())
}

/// The accept-queue counters of one network namespace, from `/proc/<pid>/net/netstat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenCounters {
    pub overflows: Option<u64>,
    pub drops: Option<u64>,
}

/// Parses the `TcpExt:` header line and the value line that follows it in `net/netstat`.
pub fn parse_netstat(text: &str) -> Result<ListenCounters, ParseError> {
    let mut lines = text.lines();
    while let Some(header) = lines.next() {
        let Some(names) = header.strip_prefix("TcpExt:") else {
            continue;
        };
        let values = lines
            .next()
            .and_then(|line| line.strip_prefix("TcpExt:"))
            .ok_or(ParseError::Missing("TcpExt values"))?;
        let mut counters = ListenCounters::default();
        let pairs = names.split_ascii_whitespace().zip(values.split_ascii_whitespace());
        for (name, value) in pairs {
            match name {
                "ListenOverflows" => {
                    counters.overflows = Some(number(value, "ListenOverflows")?);
                }
                "ListenDrops" => counters.drops = Some(number(value, "ListenDrops")?),
                _ => {}
            }
        }
        return Ok(counters);
    }
    Err(ParseError::Missing("TcpExt"))
}

/// Parses a pressure stall file (`/proc/pressure/*` or a v2 cgroup's `*.pressure`):
/// a `some` line and, where the kernel reports it, a `full` line of `key=value` pairs.
pub fn parse_pressure(text: &str) -> Result<PressureLine, ParseError> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let slot = match kind {
            "some" => &mut some,
            "full" => &mut full,
            _ => continue,
        };
        let mut avg10 = None;
        let mut total = None;
        for pair in rest.split_ascii_whitespace() {
            match pair.split_once('=') {
                Some(("avg10", value)) => avg10 = Some(number::<f64>(value, "pressure avg10")?),
                Some(("total", value)) => total = Some(number::<u64>(value, "pressure total")?),
                _ => {}
            }
        }
        match (avg10, total) {
            (Some(avg10), Some(total)) => *slot = Some((avg10, total)),
            _ => return Err(ParseError::Missing("pressure avg10 or total")),
        }
    }
    let (some_avg10, some_total_usec) = some.ok_or(ParseError::Missing("pressure some line"))?;
    Ok(PressureLine {
        some_avg10,
        some_total_usec,
        full_avg10: full.map(|(avg10, _)| avg10),
        full_total_usec: full.map(|(_, total)| total),
    })
}

/// The arguments of `/proc/<pid>/cmdline` (NUL-separated, usually NUL-terminated).
pub fn parse_cmdline(text: &str) -> impl Iterator<Item = &str> {
    let trimmed = text.strip_suffix('\0').unwrap_or(text);
    trimmed.split('\0').filter(move |_| !trimmed.is_empty())
}

/// Writes the command line into `out` with its arguments joined by single spaces, the form the
/// `VIGIL_WATCH` regular expression is matched against. `out` is cleared first.
pub fn cmdline_to_line(text: &str, out: &mut String) {
    out.clear();
    for (index, argument) in parse_cmdline(text).enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push_str(argument);
    }
}

/// Parses the target of the `/proc/<pid>/ns/net` link, `net:[4026531840]`, into the inode.
pub fn parse_net_namespace(link: &str) -> Result<u64, ParseError> {
    let inode = link
        .strip_prefix("net:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or(ParseError::Malformed("net namespace link"))?;
    number(inode, "net namespace inode")
}

fn number<T: std::str::FromStr>(text: &str, what: &'static str) -> Result<T, ParseError> {
    text.parse().map_err(|_| ParseError::NotANumber(what))
}

// ---------------------------------------------------------------------------------------------
// Reader.
// ---------------------------------------------------------------------------------------------

/// Reads files under a proc root, reusing one path buffer and one text buffer across calls.
/// The files read every tick (`stat`, `net/netstat`, `pressure/*`) are held open
/// ([`OpenFiles`]); [`ProcReader::end_tick`] closes those of processes no longer read.
#[derive(Debug)]
pub struct ProcReader {
    root: PathBuf,
    path: PathBuf,
    bytes: Vec<u8>,
    lossy: String,
    open: OpenFiles,
    /// The root, held open for listing.
    root_dir: Option<OwnedFd>,
    dir_buffer: Vec<u8>,
    /// Whether the root is a live procfs, whose `<pid>/fd` directories give their number of
    /// entries as their size (Linux 6.2 and later); found on first use.
    procfs: Option<bool>,
}

impl ProcReader {
    /// A reader that holds at most 16 files open.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ProcReader::holding(root, 16)
    }

    /// A reader that holds at most `files` files open.
    pub fn holding(root: impl Into<PathBuf>, files: usize) -> Self {
        ProcReader {
            root: root.into(),
            path: PathBuf::new(),
            bytes: Vec::with_capacity(4096),
            lossy: String::new(),
            open: OpenFiles::new(files),
            root_dir: None,
            dir_buffer: Vec::with_capacity(32 << 10),
            procfs: None,
        }
    }

    /// Closes the held files that were not read since the previous call; called once a tick.
    pub fn end_tick(&mut self) {
        self.open.sweep();
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes the numeric directory names of the root (the visible PIDs) into `out`, sorted.
    ///
    /// The root stays open and is read again from its start each time, into a reused buffer;
    /// after a failure it is opened anew.
    pub fn list_pids(&mut self, out: &mut Vec<u32>) -> Result<(), ReadError> {
        out.clear();
        let ProcReader { root, root_dir, dir_buffer, .. } = self;
        let listed = (|| -> std::io::Result<()> {
            let dir = match root_dir {
                Some(dir) => {
                    rustix::fs::seek(&*dir, rustix::fs::SeekFrom::Start(0))?;
                    dir
                }
                None => root_dir.insert(OwnedFd::from(fs::File::open(&*root)?)),
            };
            let mut entries = RawDir::new(&*dir, dir_buffer.spare_capacity_mut());
            while let Some(entry) = entries.next() {
                let entry = entry?;
                if let Some(pid) =
                    std::str::from_utf8(entry.file_name().to_bytes()).ok().and_then(|name| name.parse().ok())
                {
                    out.push(pid);
                }
            }
            Ok(())
        })();
        if let Err(error) = listed {
            *root_dir = None;
            out.clear();
            return Err(ReadError::io(root, error));
        }
        out.sort_unstable();
        Ok(())
    }

    /// Whether process `pid` has exited: it is gone, exiting (`PF_EXITING`) or a zombie, which
    /// keeps `stat` but has dropped its memory, files and namespaces. Asked after a read of one
    /// of its files failed in a way that [`ReadError::may_mean_exit`]: a process that exits
    /// while it is read takes its files with it, which is the process ending, not the source
    /// failing.
    pub fn has_exited(&mut self, pid: u32) -> bool {
        match self.read_stat(pid) {
            Ok(stat) => matches!(stat.state, 'Z' | 'X') || stat.flags & PF_EXITING != 0,
            // `ESRCH`: it exited after `stat` was opened.
            Err(error) if error.is_vanished() && !error.is_not_found() => true,
            // No `stat`: exited if its directory is gone too (a fixture may lack the file).
            Err(error) if error.is_not_found() => {
                self.set_root_path(format_args!("{pid}"));
                fs::symlink_metadata(&self.path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            }
            Err(_) => false,
        }
    }

    /// The raw, NUL-separated command line; empty for kernel threads and zombies.
    pub fn read_cmdline(&mut self, pid: u32) -> Result<&str, ReadError> {
        self.set_pid_path(pid, "cmdline");
        self.read_text()
    }

    pub fn read_stat(&mut self, pid: u32) -> Result<Stat<'_>, ReadError> {
        self.set_pid_path(pid, "stat");
        self.read_held_parsed(parse_stat)
    }

    /// The soft open-files limit; `Ok(None)` when unlimited.
    ///
    /// The kernel writes an empty file once the process has let go of its signal handlers on
    /// its way out; that reads as `ESRCH`, the process being gone.
    pub fn read_fd_limit(&mut self, pid: u32) -> Result<Option<u64>, ReadError> {
        self.set_pid_path(pid, "limits");
        read_into(&self.path, &mut self.bytes)?;
        if self.bytes.is_empty() {
            return Err(ReadError::io(&self.path, std::io::Error::from_raw_os_error(ESRCH)));
        }
        let text = as_text(&self.bytes, &mut self.lossy);
        parse_fd_limit(text).map_err(|error| ReadError::parse(&self.path, error))
    }

    /// The text of `/proc/<pid>/cgroup`, once it has been parsed with [`parse_cgroup`].
    pub fn read_cgroup(&mut self, pid: u32) -> Result<&str, ReadError> {
        self.set_pid_path(pid, "cgroup");
        self.read_parsed(|text| parse_cgroup(text).map(|_| text))
    }

    /// The number of open files of process `pid`. A live procfs of Linux 6.2 or later gives it
    /// as the size of `/proc/<pid>/fd`, to any user, in one `statx`; otherwise, or when that
    /// says 0, the directory's entries are counted, which needs ptrace access to another
    /// user's process (`EACCES` is then an expected failure).
    pub fn count_fds(&mut self, pid: u32) -> Result<u64, ReadError> {
        self.set_pid_path(pid, "fd");
        let procfs = *self.procfs.get_or_insert_with(|| {
            rustix::fs::statfs(&self.root).is_ok_and(|fs| fs.f_type == rustix::fs::PROC_SUPER_MAGIC)
        });
        if procfs {
            let size = fs::metadata(&self.path).map_err(|error| ReadError::io(&self.path, error))?.len();
            if size > 0 {
                return Ok(size);
            }
        }
        let entries = fs::read_dir(&self.path).map_err(|error| ReadError::io(&self.path, error))?;
        let mut count = 0;
        for entry in entries {
            entry.map_err(|error| ReadError::io(&self.path, error))?;
            count += 1;
        }
        Ok(count)
    }

    /// The inode of the process's network namespace, from the `ns/net` link.
    pub fn read_net_namespace(&mut self, pid: u32) -> Result<u64, ReadError> {
        self.set_pid_path(pid, "ns/net");
        self.read_namespace_link()
    }

    fn read_namespace_link(&self) -> Result<u64, ReadError> {
        let target = fs::read_link(&self.path).map_err(|error| ReadError::io(&self.path, error))?;
        let target =
            target.to_str().ok_or_else(|| ReadError::parse(&self.path, ParseError::Malformed("link")))?;
        parse_net_namespace(target).map_err(|error| ReadError::parse(&self.path, error))
    }

    /// The inode of the reading process's own network namespace, from the `self/ns/net` link.
    pub fn read_self_net_namespace(&mut self) -> Result<u64, ReadError> {
        self.set_root_path(format_args!("self/ns/net"));
        self.read_namespace_link()
    }

    /// Appends the LISTEN sockets of `net/<file>` (`tcp` or `tcp6`) as seen by `pid`.
    pub fn read_listeners(&mut self, pid: u32, file: &str, out: &mut Vec<Listener>) -> Result<(), ReadError> {
        self.set_root_path(format_args!("{pid}/net/{file}"));
        self.read_parsed(|text| parse_tcp_listeners(text, out))
    }

    pub fn read_netstat(&mut self, pid: u32) -> Result<ListenCounters, ReadError> {
        self.set_pid_path(pid, "net/netstat");
        self.read_held_parsed(parse_netstat)
    }

    /// Reads `pressure/<resource>` (`cpu`, `memory` or `io`) under the root.
    pub fn read_pressure(&mut self, resource: &str) -> Result<PressureLine, ReadError> {
        self.set_root_path(format_args!("pressure/{resource}"));
        self.read_held_parsed(parse_pressure)
    }

    /// The mount table of the reading process (`self/mountinfo`), which says where each cgroup
    /// hierarchy's mount starts.
    pub fn read_self_mountinfo(&mut self) -> Result<&str, ReadError> {
        self.set_root_path(format_args!("self/mountinfo"));
        self.read_text()
    }

    fn set_pid_path(&mut self, pid: u32, file: &str) {
        self.set_root_path(format_args!("{pid}/{file}"));
    }

    fn set_root_path(&mut self, relative: std::fmt::Arguments<'_>) {
        let path = self.path.as_mut_os_string();
        path.clear();
        path.push(self.root.as_os_str());
        // Writing into an `OsString` cannot fail.
        let _ = write!(path, "/{relative}");
    }

    fn read_parsed<'a, T>(
        &'a mut self,
        parse: impl FnOnce(&'a str) -> Result<T, ParseError>,
    ) -> Result<T, ReadError> {
        read_into(&self.path, &mut self.bytes)?;
        let text = as_text(&self.bytes, &mut self.lossy);
        parse(text).map_err(|error| ReadError::parse(&self.path, error))
    }

    /// As `read_parsed`, through a held handle.
    fn read_held_parsed<'a, T>(
        &'a mut self,
        parse: impl FnOnce(&'a str) -> Result<T, ParseError>,
    ) -> Result<T, ReadError> {
        self.open.read(&self.path, &mut self.bytes)?;
        let text = as_text(&self.bytes, &mut self.lossy);
        parse(text).map_err(|error| ReadError::parse(&self.path, error))
    }

    fn read_text(&mut self) -> Result<&str, ReadError> {
        read_into(&self.path, &mut self.bytes)?;
        Ok(as_text(&self.bytes, &mut self.lossy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on the project's build machine with `cat /proc/self/stat`.
    const STAT_CAT: &str = "9038 (cat) R 9036 9036 4662 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 211829 3133440 381 18446744073709551615 93866545815552 93866545835433 140736126321872 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 93866545851440 93866545853056 93867618336768 140736126323425 140736126323445 140736126323445 140736126324715 0\n";

    // Captured from a copy of `sleep` renamed to `x) (y z`, to show a name with both
    // parentheses and spaces.
    const STAT_ODD_NAME: &str = "9865 (x) (y z) S 9862 9862 4662 0 -1 4194304 131 0 0 0 0 0 0 0 20 0 1 0 224744 2990080 401 18446744073709551615 93836582334464 93836582352393 140725794937824 0 0 0 0 6 0 1 0 0 17 1 0 0 0 0 0 93836582366480 93836582367744 93837251125248 140725794945766 140725794945781 140725794945781 140725794947051 0\n";

    // Captured from a python3 process that had used some CPU time.
    const STAT_PYTHON: &str = "9185 (python3) S 9182 9182 4662 0 -1 4194304 2974 6546 2 0 2 2 5 0 20 0 1 0 212434 17309696 3471 18446744073709551615 94173310472192 94173310472533 140727744119056 0 0 0 0 16781318 0 1 0 0 17 0 0 0 0 0 0 94173310483888 94173310484504 94173641457664 140727744121079 140727744121131 140727744121131 140727744122831 0\n";

    #[test]
    fn stat_of_a_plain_process() {
        let stat = parse_stat(STAT_CAT).unwrap();
        assert_eq!(
            stat,
            Stat {
                pid: 9038,
                comm: "cat",
                state: 'R',
                ppid: 9036,
                flags: 4194304,
                cpu_ticks: 0,
                threads: 1,
                start_ticks: 211829,
                rss_pages: 381,
            }
        );
    }

    #[test]
    fn stat_name_with_spaces_and_parentheses() {
        let stat = parse_stat(STAT_ODD_NAME).unwrap();
        assert_eq!(stat.comm, "x) (y z");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 9862);
        assert_eq!(stat.start_ticks, 224744);
    }

    #[test]
    fn stat_sums_user_and_system_time() {
        let stat = parse_stat(STAT_PYTHON).unwrap();
        assert_eq!(stat.cpu_ticks, 4);
        assert_eq!(stat.rss_pages, 3471);
    }

    #[test]
    fn stat_rejects_truncated_text() {
        assert_eq!(parse_stat("12 (x) S 1 1 1"), Err(ParseError::Missing("stat fields")));
        assert_eq!(parse_stat(""), Err(ParseError::Malformed("stat name")));
        assert_eq!(parse_stat(") 12 (x"), Err(ParseError::Malformed("stat name")));
    }

    // Captured with `cat /proc/self/limits`.
    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96365                96365                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
";

    #[test]
    fn limits_soft_open_files() {
        assert_eq!(parse_fd_limit(LIMITS), Ok(Some(20000)));
    }

    #[test]
    fn limits_unlimited_open_files_is_none() {
        let text = LIMITS.replace(
            "Max open files            20000                20000",
            "Max open files            unlimited            unlimited",
        );
        assert_eq!(parse_fd_limit(&text), Ok(None));
        assert_eq!(parse_fd_limit("Limit Soft Limit\n"), Err(ParseError::Missing("Max open files")));
    }

    // Captured with `cat /proc/self/cgroup` on the hybrid (v1 plus an empty v2) build machine; the
    // memory cgroup's name is replaced.
    const CGROUP_HYBRID: &str = "\
9:name=systemd:/
8:pids:/vigil-capture
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/sandbox/3f9a0c
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn cgroup_v1_and_unified_lines() {
        assert_eq!(
            parse_cgroup(CGROUP_HYBRID).unwrap(),
            Membership {
                memory: Some("/sandbox/3f9a0c"),
                pids: Some("/vigil-capture"),
                cpu: Some("/"),
                cpuacct: Some("/"),
                unified: Some("/"),
            }
        );
    }

    #[test]
    fn cgroup_comounted_controllers_and_pure_v2() {
        // The shape systemd hosts and Docker on cgroup v1 produce: cpu and cpuacct share one
        // hierarchy.
        let v1 = "12:pids:/ecs/abc/app\n4:cpu,cpuacct:/ecs/abc/app\n3:memory:/ecs/abc/app\n";
        let membership = parse_cgroup(v1).unwrap();
        assert_eq!(membership.cpu, Some("/ecs/abc/app"));
        assert_eq!(membership.cpuacct, Some("/ecs/abc/app"));
        assert_eq!(membership.unified, None);
        // On cgroup v2 the file has a single line.
        assert_eq!(
            parse_cgroup("0::/system.slice/app.service\n").unwrap(),
            Membership { unified: Some("/system.slice/app.service"), ..Membership::default() }
        );
        assert_eq!(parse_cgroup("garbage\n"), Err(ParseError::Malformed("cgroup line")));
    }

    // Captured from `/proc/<pid>/net/tcp` of a python3 process listening on 127.0.0.1 with
    // `listen(4)` and two connections it had not accepted (rx_queue 2, and tx_queue 0 although
    // the backlog is 4), next to another listener (its port changed to 8080 when sanitizing)
    // and the four established rows.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 0100007F:C435 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 15573 3 0000000026d122e5 100 0 0 10 0                     
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 436 1 00000000d7604437 100 0 0 10 0                       
   2: 0100007F:C435 0100007F:A2F2 01 00000000:00000000 00:00000000 00000000     0        0 0 1 00000000ac04708d 20 0 0 10 -1                         
   3: 0100007F:A2E4 0100007F:C435 01 00000000:00000000 00:00000000 00000000     0        0 15575 2 0000000083319004 20 0 0 10 -1                     
   4: 0100007F:A2F2 0100007F:C435 01 00000000:00000000 00:00000000 00000000     0        0 15576 2 0000000054677fbb 20 0 0 10 -1                     
   5: 0100007F:C435 0100007F:A2E4 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000044453f43 20 0 0 10 -1                         
";

    // Captured from the same process, which also listened on [::1].
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:D433 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 15574 1 00000000868686b2 100 0 0 10 0
";

    #[test]
    fn tcp_listen_rows_only() {
        let mut listeners = Vec::new();
        parse_tcp_listeners(TCP, &mut listeners).unwrap();
        assert_eq!(
            listeners,
            [Listener { port: 0xC435, queue: 2, backlog: 0 }, Listener { port: 8080, queue: 0, backlog: 0 },]
        );
        parse_tcp_listeners(TCP6, &mut listeners).unwrap();
        assert_eq!(listeners[2], Listener { port: 0xD433, queue: 0, backlog: 0 });
    }

    #[test]
    fn tcp_header_only_and_garbage() {
        let mut listeners = Vec::new();
        let header = TCP.lines().next().unwrap();
        parse_tcp_listeners(header, &mut listeners).unwrap();
        assert!(listeners.is_empty());
        let bad = format!("{header}\n   0: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000\n");
        assert_eq!(parse_tcp_listeners(&bad, &mut listeners), Err(ParseError::NotANumber("tcp port")));
    }

    // Captured with `cat /proc/net/netstat` (the IpExt and MPTcpExt pairs follow TcpExt).
    const NETSTAT: &str = "TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail TCPRcvCoalesce TCPOFOQueue TCPOFODrop TCPOFOMerge TCPChallengeACK TCPSYNChallenge TCPFastOpenActive TCPFastOpenActiveFail TCPFastOpenPassive TCPFastOpenPassiveFail TCPFastOpenListenOverflow TCPFastOpenCookieReqd TCPFastOpenBlackhole TCPSpuriousRtxHostQueues BusyPollRxPackets TCPAutoCorking TCPFromZeroWindowAdv TCPToZeroWindowAdv TCPWantZeroWindowAdv TCPSynRetrans TCPOrigDataSent TCPHystartTrainDetect TCPHystartTrainCwnd TCPHystartDelayDetect TCPHystartDelayCwnd TCPACKSkippedSynRecv TCPACKSkippedPAWS TCPACKSkippedSeq TCPACKSkippedFinWait2 TCPACKSkippedTimeWait TCPACKSkippedChallenge TCPWinProbe TCPKeepAlive TCPMTUPFail TCPMTUPSuccess TCPDelivered TCPDeliveredCE TCPAckCompressed TCPZeroWindowDrop TCPRcvQDrop TCPWqueueTooBig TCPFastOpenPassiveAltKey TcpTimeoutRehash TcpDuplicateDataRehash TCPDSACKRecvSegs TCPDSACKIgnoredDubious TCPMigrateReqSuccess TCPMigrateReqFailure TCPPLBRehash TCPAORequired TCPAOBad TCPAOKeyNotFound TCPAOGood TCPAODroppedIcmps
TcpExt: 0 0 0 0 0 0 0 0 0 0 10 0 0 0 0 0 0 0 0 3 0 0 0 0 127 100 148 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2 0 0 0 0 0 212 0 0 0 0 3 31 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4042 0 0 0 0 0 0 0 0 0 0 0 0 2 0 202 133 133 118 0 810 0 0 0 0 0 0 0 0 0 0 0 0 0 0 848 0 0 0 0 0 0 2 0 0 0 0 0 0 0 0 0 0 0
IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps
IpExt: 0 0 0 0 0 0 139883128 294211 0 0 0 0 0 5657 0 0 0 0
";

    #[test]
    fn netstat_listen_counters() {
        assert_eq!(parse_netstat(NETSTAT), Ok(ListenCounters { overflows: Some(0), drops: Some(0) }));
        // The same pair with the two counters set, to check the columns are matched by name.
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 1 17 19\n";
        assert_eq!(parse_netstat(text), Ok(ListenCounters { overflows: Some(17), drops: Some(19) }));
    }

    #[test]
    fn netstat_without_tcpext() {
        assert_eq!(parse_netstat("IpExt: InNoRoutes\nIpExt: 0\n"), Err(ParseError::Missing("TcpExt")));
        assert_eq!(parse_netstat("TcpExt: ListenDrops\n"), Err(ParseError::Missing("TcpExt values")));
    }

    // Captured with `cat /proc/pressure/{cpu,memory,io}`.
    const PRESSURE_CPU: &str = "some avg10=0.26 avg60=0.77 avg300=1.00 total=10538823\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    const PRESSURE_MEMORY: &str =
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    const PRESSURE_IO: &str = "some avg10=0.98 avg60=1.26 avg300=1.06 total=7450617\nfull avg10=0.98 avg60=1.15 avg300=0.99 total=6925332\n";

    #[test]
    fn pressure_some_and_full() {
        assert_eq!(
            parse_pressure(PRESSURE_CPU),
            Ok(PressureLine {
                some_avg10: 0.26,
                some_total_usec: 10538823,
                full_avg10: Some(0.0),
                full_total_usec: Some(0),
            })
        );
        assert_eq!(parse_pressure(PRESSURE_MEMORY).unwrap().some_total_usec, 0);
        assert_eq!(
            parse_pressure(PRESSURE_IO),
            Ok(PressureLine {
                some_avg10: 0.98,
                some_total_usec: 7450617,
                full_avg10: Some(0.98),
                full_total_usec: Some(6925332),
            })
        );
    }

    #[test]
    fn pressure_cpu_without_full_line() {
        // Kernels before 5.13 print only the `some` line for system-wide CPU pressure.
        let text = "some avg10=1.50 avg60=0.70 avg300=0.20 total=123456\n";
        assert_eq!(
            parse_pressure(text),
            Ok(PressureLine {
                some_avg10: 1.5,
                some_total_usec: 123456,
                full_avg10: None,
                full_total_usec: None,
            })
        );
        assert_eq!(parse_pressure(""), Err(ParseError::Missing("pressure some line")));
        assert_eq!(parse_pressure("some avg10=x total=1\n"), Err(ParseError::NotANumber("pressure avg10")));
    }

    #[test]
    fn cmdline_arguments_and_line() {
        // Captured from the renamed `sleep`: the path holds spaces and parentheses.
        let raw = "/tmp/x) (y z\u{0}2\u{0}";
        assert_eq!(parse_cmdline(raw).collect::<Vec<_>>(), ["/tmp/x) (y z", "2"]);
        let mut line = String::new();
        cmdline_to_line(raw, &mut line);
        assert_eq!(line, "/tmp/x) (y z 2");
        // Kernel threads and zombies have an empty command line.
        assert_eq!(parse_cmdline("").count(), 0);
        cmdline_to_line("", &mut line);
        assert_eq!(line, "");
        // A process that rewrote its title may leave no NUL at all.
        cmdline_to_line("nginx: worker process", &mut line);
        assert_eq!(line, "nginx: worker process");
    }

    #[test]
    fn net_namespace_link() {
        // Captured with `readlink /proc/self/ns/net`.
        assert_eq!(parse_net_namespace("net:[4026531833]"), Ok(4026531833));
        assert_eq!(parse_net_namespace("mnt:[4026531833]"), Err(ParseError::Malformed("net namespace link")));
    }

    #[test]
    fn open_files_are_the_fd_directory_size_and_its_entries() {
        // A child that stays as it is: the size of its `fd` directory (Linux 6.2 and later) and
        // a count of its entries agree.
        use std::process::{Command, Stdio};
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = ProcReader::new("/proc");
        let entries = fs::read_dir(format!("/proc/{}/fd", child.id())).unwrap().count() as u64;
        assert_eq!(reader.count_fds(child.id()).unwrap(), entries);
        assert!(entries >= 3, "stdin, stdout, stderr and what it inherited");
        assert_eq!(reader.procfs, Some(true));
        child.kill().unwrap();
        child.wait().unwrap();
        // A fixture is no procfs: its entries are counted.
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/local/proc");
        let mut reader = ProcReader::new(&fixture);
        let entries = fs::read_dir(fixture.join("12/fd")).unwrap().count() as u64;
        assert_eq!(reader.count_fds(12).unwrap(), entries);
        assert_eq!(reader.procfs, Some(false));
    }

    #[test]
    fn reader_reads_this_process() {
        // The real `/proc` of the test process: a smoke test of the paths the reader builds.
        let mut reader = ProcReader::new("/proc");
        let pid = std::process::id();
        let stat = reader.read_stat(pid).unwrap();
        assert_eq!(stat.pid, pid);
        assert!(stat.rss_pages > 0 && stat.threads >= 1);
        assert!(reader.count_fds(pid).unwrap() >= 1);
        assert!(reader.read_cgroup(pid).is_ok());
        let mut pids = Vec::new();
        reader.list_pids(&mut pids).unwrap();
        assert!(pids.contains(&pid));
        assert!(reader.read_stat(u32::MAX).unwrap_err().is_vanished());
        assert_eq!(reader.read_self_net_namespace().unwrap(), reader.read_net_namespace(pid).unwrap());
    }
}
