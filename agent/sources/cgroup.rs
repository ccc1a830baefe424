//! cgroups: where a process's memory, pids and cpu accounting lives (cgroup v1, v2, or a hybrid
//! of both), pure parsers for the controller files, and a reader under a configurable root
//! (`VIGIL_CGROUP_ROOT`).
//!
//! # Which hierarchy
//!
//! A controller is bound to at most one hierarchy. `/proc/<pid>/cgroup` lists a v1 line for
//! each v1 hierarchy with controllers and a `0::/path` line for the v2 one, so for each
//! controller the reader uses v1 when the process has a v1 line naming it *and* the root has
//! that controller's v1 directory (`<root>/memory`), and otherwise v2 when the v2 hierarchy's
//! `cgroup.controllers` lists it. The v2 hierarchy is the root itself on a pure v2 host, or
//! `<root>/unified` on a hybrid one. On a hybrid host such as the project's build machine the
//! unified mount has no memory controller, so memory comes from v1 even though `0::/` exists.
//! `cpu.stat` exists in every v2 cgroup (usage without throttling when the cpu controller is
//! off), so CPU usage can come from v2 whenever v1 has no cpu controller.
//!
//! # Resolving a path inside a container
//!
//! `/proc/<pid>/cgroup` shows a path from the root of the hierarchy (as far as the reader's
//! cgroup namespace lets it see), but a container's cgroup mount usually starts at the
//! container's own cgroup: `/ecs/<task>/<container>` is then the mount's top directory, not a
//! subdirectory of it. The mount's starting point is the fourth field ("root") of the cgroup
//! line in the reader's own `/proc/self/mountinfo`, so the reader strips that prefix:
//! `/ecs/t/app` under a mount rooted at `/ecs/t/app` is the top directory, `/ecs/t/app/sub` is
//! `sub`, and `/ecs/t/other` (another container of the task) lies outside the mount and is not
//! readable at all. Paths with `..` components (what a cgroup namespace shows for cgroups
//! outside it) are outside too. Guessing in that case would attribute vigil's own container's
//! limits to another container, so it is reported instead.
//!
//! Without a usable mountinfo (a proc root that is only a fixture, or a mount vigil cannot
//! identify) the reader falls back to trying the full path under the hierarchy's directory,
//! then ever shorter suffixes of it (dropping leading components), and finally the directory
//! itself; the first that exists wins. This can mistake another container's cgroup for the
//! mount's own top directory, which is why mountinfo is preferred.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::judge::sample::{CgroupReading, CgroupVersion};
use crate::sources::files::{OpenFiles, ParseError, ReadError, as_text, read_into};
use crate::sources::procfs::Membership;

/// The controllers vigil reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
    Cpuacct,
}

impl Controller {
    pub const ALL: [Controller; 4] =
        [Controller::Memory, Controller::Pids, Controller::Cpu, Controller::Cpuacct];

    /// The controller's name in `/proc/<pid>/cgroup`, mount options and v1 directory names.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
        }
    }

    fn from_name(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }

    fn v1_path<'a>(self, membership: &Membership<'a>) -> Option<&'a str> {
        match self {
            Controller::Memory => membership.memory,
            Controller::Pids => membership.pids,
            Controller::Cpu => membership.cpu,
            Controller::Cpuacct => membership.cpuacct,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pure parsers.
// ---------------------------------------------------------------------------------------------

/// Limits at or above 2^62 mean "unlimited" in v1 (the kernel prints a page-rounded
/// `i64::MAX`, 9223372036854771712).
const V1_UNLIMITED: u64 = 1 << 62;

/// The smaller of two optional limits; `None` is no limit.
fn min_limit(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses a file holding one number (`memory.usage_in_bytes`, `pids.current`, ...).
pub fn parse_value(text: &str) -> Result<u64, ParseError> {
    text.trim().parse().map_err(|_| ParseError::NotANumber("cgroup value"))
}

/// Parses a limit that is a number or `max` (v2 `memory.max`, `pids.max` in both versions);
/// `None` when unlimited.
pub fn parse_max(text: &str) -> Result<Option<u64>, ParseError> {
    match text.trim() {
        "max" => Ok(None),
        value => parse_value(value).map(Some),
    }
}

/// Parses v1 `memory.limit_in_bytes`; `None` when unlimited.
pub fn parse_v1_limit(text: &str) -> Result<Option<u64>, ParseError> {
    parse_value(text).map(|limit| (limit < V1_UNLIMITED).then_some(limit))
}

/// Finds `key` in a flat keyed file (`key value` lines: `memory.stat`, `memory.events`,
/// `memory.oom_control`, `pids.events`, `cpu.stat`); `Ok(None)` when the key is absent.
pub fn parse_keyed(text: &str, key: &str) -> Result<Option<u64>, ParseError> {
    for line in text.lines() {
        match line.split_once(' ') {
            Some((name, value)) if name == key => return parse_value(value).map(Some),
            _ => {}
        }
    }
    Ok(None)
}

/// Inactive file pages from v1 `memory.stat`: the hierarchical `total_inactive_file` when
/// present (it includes child cgroups, as usage does), otherwise `inactive_file`.
pub fn parse_v1_inactive_file(text: &str) -> Result<Option<u64>, ParseError> {
    match parse_keyed(text, "total_inactive_file")? {
        Some(bytes) => Ok(Some(bytes)),
        None => parse_keyed(text, "inactive_file"),
    }
}

/// CPU accounting from `cpu.stat`, in the units of [`CgroupReading`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    /// Only v2 reports usage here; v1 has it in `cpuacct.usage`.
    pub usage_usec: Option<u64>,
    pub periods: Option<u64>,
    pub throttled_periods: Option<u64>,
    pub throttled_usec: Option<u64>,
}

/// Parses v1 `cpu.stat` (`nr_periods`, `nr_throttled`, `throttled_time` in nanoseconds).
pub fn parse_v1_cpu_stat(text: &str) -> Result<CpuStat, ParseError> {
    Ok(CpuStat {
        usage_usec: None,
        periods: parse_keyed(text, "nr_periods")?,
        throttled_periods: parse_keyed(text, "nr_throttled")?,
        throttled_usec: parse_keyed(text, "throttled_time")?.map(|ns| ns / 1000),
    })
}

/// Parses v2 `cpu.stat` (`usage_usec` always; `nr_periods`, `nr_throttled` and
/// `throttled_usec` only when the cpu controller is enabled for the cgroup).
pub fn parse_v2_cpu_stat(text: &str) -> Result<CpuStat, ParseError> {
    Ok(CpuStat {
        usage_usec: parse_keyed(text, "usage_usec")?,
        periods: parse_keyed(text, "nr_periods")?,
        throttled_periods: parse_keyed(text, "nr_throttled")?,
        throttled_usec: parse_keyed(text, "throttled_usec")?,
    })
}

/// Parses v1 `cpuacct.usage` (nanoseconds) into microseconds.
pub fn parse_cpuacct_usage(text: &str) -> Result<u64, ParseError> {
    parse_value(text).map(|ns| ns / 1000)
}

/// Which of the controllers vigil reads a v2 `cgroup.controllers` file lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct V2Controllers {
    pub memory: bool,
    pub pids: bool,
    pub cpu: bool,
}

/// Parses a v2 `cgroup.controllers` file (controller names separated by spaces).
pub fn parse_controllers(text: &str) -> V2Controllers {
    let mut controllers = V2Controllers::default();
    for name in text.split_ascii_whitespace() {
        match name {
            "memory" => controllers.memory = true,
            "pids" => controllers.pids = true,
            "cpu" => controllers.cpu = true,
            _ => {}
        }
    }
    controllers
}

/// Where each cgroup hierarchy's mount starts, from the reader's `/proc/self/mountinfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountRoots {
    /// Indexed like [`Controller::ALL`].
    pub v1: [Option<String>; 4],
    pub v2: Option<String>,
}

impl MountRoots {
    fn v1(&self, controller: Controller) -> Option<&str> {
        self.v1[controller.index()].as_deref()
    }
}

/// Parses the cgroup lines of `mountinfo`: `id parent major:minor root mount-point options
/// [optional fields...] - fstype source super-options`. For `cgroup` (v1) mounts the super
/// options name the controllers; `cgroup2` is the unified hierarchy. When a hierarchy is
/// mounted more than once, the first mount wins.
pub fn parse_mount_roots(mountinfo: &str) -> MountRoots {
    let mut roots = MountRoots::default();
    for line in mountinfo.lines() {
        let mut fields = line.split(' ');
        let Some(root) = fields.nth(3) else {
            continue;
        };
        let mut after_separator = fields.skip_while(|field| *field != "-").skip(1);
        let (Some(fstype), Some(_source), Some(options)) =
            (after_separator.next(), after_separator.next(), after_separator.next())
        else {
            continue;
        };
        match fstype {
            "cgroup2" => {
                roots.v2.get_or_insert_with(|| unescape_mount_field(root));
            }
            "cgroup" => {
                for controller in options.split(',').filter_map(Controller::from_name) {
                    roots.v1[controller.index()].get_or_insert_with(|| unescape_mount_field(root));
                }
            }
            _ => {}
        }
    }
    roots
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape_mount_field(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                index += 4;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where `path` (as `/proc/<pid>/cgroup` shows it) lies below a mount whose root is
/// `mount_root`: the relative directory without leading or trailing `/` (empty for the mount's
/// top directory), or `None` when the cgroup is outside the mount.
pub fn relative_to_mount<'a>(path: &'a str, mount_root: &str) -> Option<&'a str> {
    if path.split('/').any(|component| component == "..") {
        return None;
    }
    let rest = path.strip_prefix(mount_root.trim_end_matches('/'))?;
    if rest.is_empty() {
        return Some("");
    }
    // The prefix must end at a component boundary: `/ecs/app` is not below `/ecs/ap`.
    Some(rest.strip_prefix('/')?.trim_end_matches('/'))
}

/// The candidates tried when the mount root is unknown: the full path without its leading
/// `/`, then each shorter suffix, ending with the empty path (the mount's top directory).
pub fn path_suffixes(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path.trim_matches('/')), |current| {
        (!current.is_empty()).then(|| current.split_once('/').map_or("", |(_, rest)| rest))
    })
}

// ---------------------------------------------------------------------------------------------
// Locating a process's cgroups.
// ---------------------------------------------------------------------------------------------

/// Why a process's cgroup cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LocateError<'a> {
    #[error("cgroup {0} is outside the cgroup mount vigil sees (it belongs to another container)")]
    OutsideMount(&'a str),
    #[error("cgroup {0} not found under the cgroup root")]
    NotFound(&'a str),
    #[error("no memory, pids or cpu cgroup is visible under the cgroup root")]
    NoController,
}

/// One controller's cgroup for one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement<'a> {
    pub controller: Controller,
    pub version: CgroupVersion,
    /// The path as `/proc/<pid>/cgroup` shows it.
    pub path: &'a str,
    /// The directory below the hierarchy's mount, without a leading `/`.
    pub relative: &'a str,
}

/// For each controller: where it is (`Ok(Some)`), that the host does not offer it to this
/// process (`Ok(None)`), or why it cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located<'a> {
    pub controllers: [Result<Option<Placement<'a>>, LocateError<'a>>; 4],
}

impl<'a> Located<'a> {
    pub fn get(&self, controller: Controller) -> Result<Option<Placement<'a>>, LocateError<'a>> {
        self.controllers[controller.index()]
    }

    /// The cgroup that names this process's accounting in `Sample::cgroups`: the memory
    /// cgroup, or when memory is not offered, the first of pids, cpu and cpuacct that is.
    pub fn identity(&self) -> Result<Placement<'a>, LocateError<'a>> {
        for controller in Controller::ALL {
            if let Some(placement) = self.get(controller)? {
                return Ok(placement);
            }
        }
        Err(LocateError::NoController)
    }
}

/// A parser of one numeric value, optional where the file may lack it or say "unlimited".
type ParseU64 = fn(&str) -> Result<Option<u64>, ParseError>;

/// What the cgroup root offers, found once.
#[derive(Debug, Clone, Default)]
struct Layout {
    /// `<root>/<controller>` for each v1 hierarchy that is mounted there.
    v1_dirs: [Option<PathBuf>; 4],
    /// The v2 hierarchy: the root itself, or `<root>/unified` on a hybrid host.
    v2_dir: Option<PathBuf>,
    v2_controllers: V2Controllers,
    mount_roots: MountRoots,
}

/// Cgroup files held open: a v1 task's ten files and three ancestors' limits, for a few
/// cgroups.
const HELD_FILES: usize = 48;

/// Reads cgroup files under a cgroup root, reusing one path buffer and one text buffer. The
/// files read every tick are held open ([`OpenFiles`]); [`CgroupReader::end_tick`] closes those
/// of cgroups no longer read.
#[derive(Debug)]
pub struct CgroupReader {
    root: PathBuf,
    layout: Option<Layout>,
    path: PathBuf,
    bytes: Vec<u8>,
    lossy: String,
    open: OpenFiles,
}

impl CgroupReader {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CgroupReader {
            root: root.into(),
            layout: None,
            path: PathBuf::new(),
            bytes: Vec::with_capacity(2048),
            lossy: String::new(),
            open: OpenFiles::new(HELD_FILES),
        }
    }

    /// Closes the held files that were not read since the previous call; called once a tick.
    pub fn end_tick(&mut self) {
        self.open.sweep();
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_detected(&self) -> bool {
        self.layout.is_some()
    }

    /// Finds which hierarchies the root offers, given the reader's own mountinfo when it could
    /// be read. Cgroup mounts do not change while a container runs, so this is done once.
    pub fn detect(&mut self, mountinfo: Option<&str>) {
        let mut layout =
            Layout { mount_roots: mountinfo.map(parse_mount_roots).unwrap_or_default(), ..Layout::default() };
        if self.root.join("cgroup.controllers").is_file() {
            layout.v2_dir = Some(self.root.clone());
        } else {
            for controller in Controller::ALL {
                let dir = self.root.join(controller.name());
                if dir.is_dir() {
                    layout.v1_dirs[controller.index()] = Some(dir);
                }
            }
            let unified = self.root.join("unified");
            if unified.join("cgroup.controllers").is_file() {
                layout.v2_dir = Some(unified);
            }
        }
        if let Some(dir) = &layout.v2_dir {
            // Without a readable list, no v2 controller is assumed (CPU usage still is).
            if read_into(&dir.join("cgroup.controllers"), &mut self.bytes).is_ok() {
                layout.v2_controllers = parse_controllers(as_text(&self.bytes, &mut self.lossy));
            }
        }
        self.layout = Some(layout);
    }

    /// Decides, for each controller, which hierarchy and directory hold this process's files.
    pub fn locate<'a>(&mut self, membership: &Membership<'a>) -> Located<'a> {
        let mut located = Located { controllers: [Ok(None); 4] };
        let Some(layout) = self.layout.take() else {
            return located;
        };
        for controller in Controller::ALL {
            let v1 = controller.v1_path(membership).filter(|_| layout.v1_dirs[controller.index()].is_some());
            let v2_offered = match controller {
                Controller::Memory => layout.v2_controllers.memory,
                Controller::Pids => layout.v2_controllers.pids,
                Controller::Cpu => true,
                Controller::Cpuacct => false,
            };
            let v2 = membership.unified.filter(|_| v2_offered && layout.v2_dir.is_some());
            located.controllers[controller.index()] = match (v1, v2) {
                (Some(path), _) => {
                    let mount_root = layout.mount_roots.v1(controller);
                    self.resolve(&layout, controller, CgroupVersion::V1, path, mount_root)
                }
                (None, Some(path)) => {
                    let mount_root = layout.mount_roots.v2.as_deref();
                    self.resolve(&layout, controller, CgroupVersion::V2, path, mount_root)
                }
                (None, None) => Ok(None),
            };
        }
        self.layout = Some(layout);
        located
    }

    fn resolve<'a>(
        &mut self,
        layout: &Layout,
        controller: Controller,
        version: CgroupVersion,
        path: &'a str,
        mount_root: Option<&str>,
    ) -> Result<Option<Placement<'a>>, LocateError<'a>> {
        let placement = |relative| Placement { controller, version, path, relative };
        if let Some(mount_root) = mount_root {
            return relative_to_mount(path, mount_root)
                .map(|relative| Some(placement(relative)))
                .ok_or(LocateError::OutsideMount(path));
        }
        if path.split('/').any(|component| component == "..") {
            return Err(LocateError::OutsideMount(path));
        }
        for relative in path_suffixes(path) {
            let candidate = placement(relative);
            self.set_path(layout, &candidate, "");
            if self.path.is_dir() {
                return Ok(Some(candidate));
            }
        }
        Err(LocateError::NotFound(path))
    }

    /// Reads every file of the located controllers into one reading named after `identity`.
    ///
    /// Two processes whose memory cgroups match share one reading even if their pids or cpu
    /// cgroups differ (possible only on v1); the first process read decides those.
    pub fn read(
        &mut self,
        located: &Located<'_>,
        identity: Placement<'_>,
        errors: &mut Vec<ReadError>,
    ) -> CgroupReading {
        let mut reading = CgroupReading {
            path: identity.path.to_owned(),
            version: identity.version,
            ..CgroupReading::default()
        };
        let Some(layout) = self.layout.take() else {
            return reading;
        };
        // A controller that cannot be located while the identity could is left empty: in
        // practice all of a process's controllers are visible or none are.
        let placed = |controller| located.get(controller).ok().flatten();

        if let Some(memory) = placed(Controller::Memory) {
            let mut read = |file, parse: ParseU64| self.read_file(&layout, &memory, file, parse, errors);
            match memory.version {
                CgroupVersion::V1 => {
                    reading.memory_usage_bytes = read("memory.usage_in_bytes", |t| parse_value(t).map(Some));
                    reading.memory_limit_bytes = read("memory.limit_in_bytes", parse_v1_limit);
                    reading.memory_inactive_file_bytes = read("memory.stat", parse_v1_inactive_file);
                    reading.oom_kills = read("memory.oom_control", |t| parse_keyed(t, "oom_kill"));
                }
                CgroupVersion::V2 => {
                    reading.memory_usage_bytes = read("memory.current", |t| parse_value(t).map(Some));
                    reading.memory_limit_bytes = read("memory.max", parse_max);
                    reading.memory_inactive_file_bytes =
                        read("memory.stat", |t| parse_keyed(t, "inactive_file"));
                    reading.oom_kills = read("memory.events", |t| parse_keyed(t, "oom_kill"));
                }
            }
            let (file, parse): (&str, ParseU64) = match memory.version {
                CgroupVersion::V1 => ("memory.limit_in_bytes", parse_v1_limit),
                CgroupVersion::V2 => ("memory.max", parse_max),
            };
            reading.memory_limit_bytes =
                min_limit(reading.memory_limit_bytes, self.ancestor_limit(&layout, &memory, file, parse));
        }

        if let Some(pids) = placed(Controller::Pids) {
            let mut read = |file, parse: ParseU64| self.read_file(&layout, &pids, file, parse, errors);
            // The pids files are alike in both versions.
            reading.pids_current = read("pids.current", |t| parse_value(t).map(Some));
            reading.pids_max = read("pids.max", parse_max);
            reading.pids_limit_hits = read("pids.events", |t| parse_keyed(t, "max"));
            reading.pids_max =
                min_limit(reading.pids_max, self.ancestor_limit(&layout, &pids, "pids.max", parse_max));
        }

        if let Some(cpu) = placed(Controller::Cpu) {
            let parse = match cpu.version {
                CgroupVersion::V1 => parse_v1_cpu_stat,
                CgroupVersion::V2 => parse_v2_cpu_stat,
            };
            let stat = self.read_file(&layout, &cpu, "cpu.stat", |t| parse(t).map(Some), errors);
            if let Some(stat) = stat {
                reading.cpu_usage_usec = stat.usage_usec;
                reading.cpu_periods = stat.periods;
                reading.cpu_throttled_periods = stat.throttled_periods;
                reading.cpu_throttled_usec = stat.throttled_usec;
            }
        }

        if let Some(cpuacct) = placed(Controller::Cpuacct) {
            reading.cpu_usage_usec = self.read_file(
                &layout,
                &cpuacct,
                "cpuacct.usage",
                |t| parse_cpuacct_usage(t).map(Some),
                errors,
            );
        }

        self.layout = Some(layout);
        reading
    }

    /// The tightest limit set on an ancestor of `placement` below the hierarchy's mount: a
    /// container without its own limit is bound by its task's (the kernel enforces every
    /// level). Ancestors without the file or with an unreadable one are skipped silently: the
    /// process's own reading already reports errors.
    fn ancestor_limit(
        &mut self,
        layout: &Layout,
        placement: &Placement<'_>,
        file: &str,
        parse: ParseU64,
    ) -> Option<u64> {
        let mut tightest = None;
        let mut relative = placement.relative;
        while let Some(cut) = relative.rfind('/') {
            relative = &relative[..cut];
            let ancestor = Placement { relative, ..*placement };
            self.set_path(layout, &ancestor, file);
            if self.open.read(&self.path, &mut self.bytes).is_ok()
                && let Ok(limit) = parse(as_text(&self.bytes, &mut self.lossy))
            {
                tightest = min_limit(tightest, limit);
            }
        }
        tightest
    }

    /// Reads and parses one file. A file missing from the top directory of a mount is not an
    /// error: the real root cgroup has no usage or limit files (v1 `pids.current`, v2
    /// `memory.current`), and that is where processes outside any container live.
    fn read_file<T>(
        &mut self,
        layout: &Layout,
        placement: &Placement<'_>,
        file: &str,
        parse: impl FnOnce(&str) -> Result<Option<T>, ParseError>,
        errors: &mut Vec<ReadError>,
    ) -> Option<T> {
        self.set_path(layout, placement, file);
        match self.open.read(&self.path, &mut self.bytes) {
            Ok(()) => {}
            Err(error) if error.is_not_found() && placement.relative.is_empty() => return None,
            Err(error) => {
                errors.push(error);
                return None;
            }
        }
        match parse(as_text(&self.bytes, &mut self.lossy)) {
            Ok(value) => value,
            Err(error) => {
                errors.push(ReadError::parse(&self.path, error));
                None
            }
        }
    }

    /// Sets `self.path` to `<hierarchy dir>/<relative>/<file>` without allocating.
    fn set_path(&mut self, layout: &Layout, placement: &Placement<'_>, file: &str) {
        let base = match placement.version {
            CgroupVersion::V1 => layout.v1_dirs[placement.controller.index()].as_deref(),
            CgroupVersion::V2 => layout.v2_dir.as_deref(),
        };
        let path = self.path.as_mut_os_string();
        path.clear();
        path.push(base.unwrap_or(&self.root).as_os_str());
        // Writing into an `OsString` cannot fail.
        if !placement.relative.is_empty() {
            let _ = write!(path, "/{}", placement.relative);
        }
        if !file.is_empty() {
            let _ = write!(path, "/{file}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::procfs::parse_cgroup;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/local").join(name)
    }

    // Captured on the project's build machine (cgroup v1) from a child memory cgroup limited
    // to 32 MiB after a python3 process in it was OOM-killed.
    const V1_MEMORY_LIMIT: &str = "33554432\n";
    const V1_OOM_CONTROL_AFTER_KILL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
    // Captured from the build machine's own memory cgroup, which has no limit.
    const V1_MEMORY_USAGE: &str = "206131200\n";
    const V1_MEMORY_NO_LIMIT: &str = "9223372036854771712\n";
    const V1_MEMORY_STAT: &str = "\
cache 203202560
rss 1658880
rss_huge 0
shmem 0
mapped_file 4096
dirty 24576
writeback 0
workingset_refault_anon 0
workingset_refault_file 51482
swap 0
swapcached 0
pgpgin 65038
pgpgout 18472
pgfault 37560
pgmajfault 65
inactive_anon 1536000
active_anon 8192
inactive_file 190369792
active_file 12832768
unevictable 0
hierarchical_memory_limit 9223372036854771712
hierarchical_memsw_limit 9223372036854771712
total_cache 203202560
total_rss 1658880
total_rss_huge 0
total_shmem 0
total_mapped_file 4096
total_dirty 24576
total_writeback 0
total_workingset_refault_anon 0
total_workingset_refault_file 51482
total_swap 0
total_swapcached 0
total_pgpgin 65038
total_pgpgout 18472
total_pgfault 37560
total_pgmajfault 65
total_inactive_anon 1536000
total_active_anon 8192
total_inactive_file 190369792
total_active_file 12832768
total_unevictable 0
";
    const V1_OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";

    #[test]
    fn v1_memory_files() {
        assert_eq!(parse_value(V1_MEMORY_USAGE), Ok(206131200));
        assert_eq!(parse_v1_limit(V1_MEMORY_NO_LIMIT), Ok(None));
        assert_eq!(parse_v1_limit(V1_MEMORY_LIMIT), Ok(Some(33554432)));
        assert_eq!(parse_v1_inactive_file(V1_MEMORY_STAT), Ok(Some(190369792)));
        assert_eq!(parse_keyed(V1_OOM_CONTROL, "oom_kill"), Ok(Some(0)));
        assert_eq!(parse_keyed(V1_OOM_CONTROL_AFTER_KILL, "oom_kill"), Ok(Some(1)));
        // Kernels before 4.13 have no `oom_kill` line.
        assert_eq!(parse_keyed("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"), Ok(None));
        // A non-hierarchical stat (no `total_` lines) still gives inactive file pages.
        assert_eq!(parse_v1_inactive_file("inactive_file 4096\nactive_file 0\n"), Ok(Some(4096)));
        assert_eq!(parse_value("lots\n"), Err(ParseError::NotANumber("cgroup value")));
    }

    // Captured from a v1 pids cgroup with `pids.max` 8 after a fork failed at the limit, and
    // while one process ran in it.
    const V1_PIDS_CURRENT: &str = "1\n";
    const V1_PIDS_MAX: &str = "8\n";
    const V1_PIDS_EVENTS: &str = "max 1\n";

    #[test]
    fn pids_files() {
        assert_eq!(parse_value(V1_PIDS_CURRENT), Ok(1));
        assert_eq!(parse_max(V1_PIDS_MAX), Ok(Some(8)));
        assert_eq!(parse_max("max\n"), Ok(None));
        assert_eq!(parse_keyed(V1_PIDS_EVENTS, "max"), Ok(Some(1)));
    }

    // Captured from a v1 cpu cgroup with `cpu.cfs_quota_us` 25000 (a quarter of a CPU) after a
    // two-second busy loop, and from the matching cpuacct cgroup.
    const V1_CPU_STAT: &str =
        "nr_periods 23\nnr_throttled 21\nthrottled_time 1508091179\nnr_bursts 0\nburst_time 0\n";
    const V1_CPUACCT_USAGE: &str = "526407486\n";

    #[test]
    fn v1_cpu_files() {
        assert_eq!(
            parse_v1_cpu_stat(V1_CPU_STAT),
            Ok(CpuStat {
                usage_usec: None,
                periods: Some(23),
                throttled_periods: Some(21),
                throttled_usec: Some(1508091),
            })
        );
        assert_eq!(parse_cpuacct_usage(V1_CPUACCT_USAGE), Ok(526407));
    }

    // Captured from the build machine's hybrid cgroup2 mount: its only controller, and the
    // `cpu.stat` of a child cgroup that ran the same busy loop. Without the cpu controller, v2
    // `cpu.stat` has usage but no throttling lines.
    const UNIFIED_CONTROLLERS: &str = "hugetlb\n";
    const UNIFIED_CPU_STAT: &str = "usage_usec 526407\nuser_usec 522966\nsystem_usec 3441\nnice_usec 0\n";

    #[test]
    fn hybrid_unified_files() {
        assert_eq!(parse_controllers(UNIFIED_CONTROLLERS), V2Controllers::default());
        assert_eq!(
            parse_v2_cpu_stat(UNIFIED_CPU_STAT),
            Ok(CpuStat { usage_usec: Some(526407), ..CpuStat::default() })
        );
    }

    // This machine has no v2 memory, pids or cpu controller, so the following texts are not
    // captures: they follow the file formats in the kernel's cgroup-v2 documentation
    // (Documentation/admin-guide/cgroup-v2.rst), with made-up values.
    const V2_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc\n";
    const V2_MEMORY_MAX: &str = "268435456\n";
    const V2_MEMORY_STAT: &str = "\
anon 104857600
file 41943040
kernel 3145728
kernel_stack 262144
pagetables 1048576
sock 0
shmem 0
file_mapped 8388608
file_dirty 0
file_writeback 0
anon_thp 0
inactive_anon 104857600
active_anon 0
inactive_file 33554432
active_file 8388608
unevictable 0
slab_reclaimable 1048576
slab_unreclaimable 786432
pgfault 51234
pgmajfault 12
";
    const V2_MEMORY_EVENTS: &str = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
    const V2_PIDS_EVENTS: &str = "max 0\n";
    const V2_CPU_STAT: &str = "usage_usec 98765432\nuser_usec 80000000\nsystem_usec 18765432\nnr_periods 500\nnr_throttled 20\nthrottled_usec 1500000\nnr_bursts 0\nburst_usec 0\n";

    #[test]
    fn v2_files_per_kernel_documentation() {
        assert_eq!(parse_controllers(V2_CONTROLLERS), V2Controllers { memory: true, pids: true, cpu: true });
        assert_eq!(parse_max(V2_MEMORY_MAX), Ok(Some(268435456)));
        assert_eq!(parse_keyed(V2_MEMORY_STAT, "inactive_file"), Ok(Some(33554432)));
        // `oom_kill` must not be confused with `oom` or `oom_group_kill`.
        assert_eq!(parse_keyed(V2_MEMORY_EVENTS, "oom_kill"), Ok(Some(1)));
        assert_eq!(parse_keyed(V2_PIDS_EVENTS, "max"), Ok(Some(0)));
        assert_eq!(
            parse_v2_cpu_stat(V2_CPU_STAT),
            Ok(CpuStat {
                usage_usec: Some(98765432),
                periods: Some(500),
                throttled_periods: Some(20),
                throttled_usec: Some(1500000),
            })
        );
    }

    // The cgroup lines of the build machine's `/proc/self/mountinfo` (and two other lines).
    const MOUNTINFO_HOST: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mount_roots_on_the_host() {
        let roots = parse_mount_roots(MOUNTINFO_HOST);
        let slash = Some("/".to_owned());
        assert_eq!(
            roots,
            MountRoots { v1: [slash.clone(), slash.clone(), slash.clone(), slash.clone()], v2: slash }
        );
    }

    #[test]
    fn mount_roots_in_a_container() {
        // The shape a container runtime gives a container on a v1 host (proc(5) format, with
        // optional `master:N` fields): every hierarchy is mounted from the container's own
        // cgroup. This is the fixture's mountinfo.
        let text = std::fs::read_to_string(fixture("proc/self/mountinfo")).unwrap();
        let roots = parse_mount_roots(&text);
        let app = Some("/ecs/0f1e2d/app".to_owned());
        assert_eq!(
            roots,
            MountRoots { v1: [app.clone(), app.clone(), app.clone(), app], v2: Some("/".to_owned()) }
        );
        // An escaped space in a root is decoded.
        let line = "50 31 0:40 /a\\040b /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(parse_mount_roots(line).v1(Controller::Memory), Some("/a b"));
        assert_eq!(parse_mount_roots("garbage\n"), MountRoots::default());
    }

    #[test]
    fn paths_relative_to_the_mount() {
        let check = |path, root, expected: Option<&str>| {
            assert_eq!(relative_to_mount(path, root), expected, "{path} under {root}");
        };
        check("/", "/", Some(""));
        check("/ecs/t/app", "/", Some("ecs/t/app"));
        check("/ecs/t/app", "/ecs/t/app", Some(""));
        check("/ecs/t/app/", "/ecs/t/app/", Some(""));
        check("/ecs/t/app/worker", "/ecs/t/app", Some("worker"));
        // Another container of the same task: not visible through this mount.
        check("/ecs/t/envoy", "/ecs/t/app", None);
        check("/ecs/t/application", "/ecs/t/app", None);
        // What a cgroup namespace shows for a cgroup outside it.
        check("/../envoy", "/", None);
    }

    #[test]
    fn suffixes_from_longest_to_mount_top() {
        assert_eq!(path_suffixes("/ecs/t/app").collect::<Vec<_>>(), ["ecs/t/app", "t/app", "app", ""]);
        assert_eq!(path_suffixes("/").collect::<Vec<_>>(), [""]);
    }

    fn open_reader(root: &str, mountinfo: Option<&str>) -> CgroupReader {
        let mut reader = CgroupReader::new(fixture(root));
        reader.detect(mountinfo);
        reader
    }

    fn container_mountinfo() -> String {
        std::fs::read_to_string(fixture("proc/self/mountinfo")).unwrap()
    }

    #[test]
    fn reads_v1_through_a_container_mount() {
        let mountinfo = container_mountinfo();
        let mut reader = open_reader("cgroup-v1", Some(&mountinfo));
        let text = std::fs::read_to_string(fixture("proc/7/cgroup")).unwrap();
        let membership = parse_cgroup(&text).unwrap();
        let located = reader.locate(&membership);
        let identity = located.identity().unwrap();
        assert_eq!(identity.version, CgroupVersion::V1);
        assert_eq!(identity.path, "/ecs/0f1e2d/app");
        assert_eq!(identity.relative, "");
        let mut errors = Vec::new();
        let reading = reader.read(&located, identity, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(reading, expected_v1_app());
    }

    fn expected_v1_app() -> CgroupReading {
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
        }
    }

    fn expected_v2_web() -> CgroupReading {
        CgroupReading {
            path: "/ecs/0f1e2d/web".to_owned(),
            version: CgroupVersion::V2,
            memory_usage_bytes: Some(150994944),
            memory_limit_bytes: Some(268435456),
            memory_inactive_file_bytes: Some(33554432),
            oom_kills: Some(1),
            pids_current: Some(5),
            // `web` has no pids limit of its own: the task's (its parent's) applies.
            pids_max: Some(1024),
            pids_limit_hits: Some(0),
            cpu_usage_usec: Some(98765432),
            cpu_periods: Some(500),
            cpu_throttled_periods: Some(20),
            cpu_throttled_usec: Some(1500000),
        }
    }

    #[test]
    fn reads_pure_v2() {
        let mountinfo = container_mountinfo();
        let mut reader = open_reader("cgroup-v2", Some(&mountinfo));
        let membership = parse_cgroup("0::/ecs/0f1e2d/web\n").unwrap();
        let located = reader.locate(&membership);
        let identity = located.identity().unwrap();
        assert_eq!(identity.relative, "ecs/0f1e2d/web");
        let mut errors = Vec::new();
        let reading = reader.read(&located, identity, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(reading, expected_v2_web());
    }

    #[test]
    fn hybrid_prefers_the_hierarchy_that_has_the_controller() {
        let mountinfo = container_mountinfo();
        let mut reader = open_reader("cgroup-v1", Some(&mountinfo));
        // A process with v1 lines and `0::/`: every controller comes from v1.
        let both =
            "11:memory:/ecs/0f1e2d/app\n12:pids:/ecs/0f1e2d/app\n4:cpu,cpuacct:/ecs/0f1e2d/app\n0::/\n";
        let located = reader.locate(&parse_cgroup(both).unwrap());
        for controller in Controller::ALL {
            let placement = located.get(controller).unwrap().unwrap();
            assert_eq!(placement.version, CgroupVersion::V1, "{controller:?}");
        }
        // A process with only the unified line: the unified mount offers no memory or pids
        // controller, so only CPU usage is found, from v2 `cpu.stat`.
        let located = reader.locate(&parse_cgroup("0::/ecs/0f1e2d/web\n").unwrap());
        assert_eq!(located.get(Controller::Memory), Ok(None));
        assert_eq!(located.get(Controller::Pids), Ok(None));
        let identity = located.identity().unwrap();
        assert_eq!(identity.controller, Controller::Cpu);
        assert_eq!(identity.version, CgroupVersion::V2);
        let mut errors = Vec::new();
        let reading = reader.read(&located, identity, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            reading,
            CgroupReading {
                path: "/ecs/0f1e2d/web".to_owned(),
                version: CgroupVersion::V2,
                cpu_usage_usec: Some(526407),
                ..CgroupReading::default()
            }
        );
    }

    #[test]
    fn another_containers_cgroup_is_not_guessed() {
        let mountinfo = container_mountinfo();
        let mut reader = open_reader("cgroup-v1", Some(&mountinfo));
        let text = std::fs::read_to_string(fixture("proc/13/cgroup")).unwrap();
        let located = reader.locate(&parse_cgroup(&text).unwrap());
        assert_eq!(located.identity(), Err(LocateError::OutsideMount("/ecs/0f1e2d/envoy")));
        // A host without any of the controllers.
        let mut reader = reader_without_layout();
        let located = reader.locate(&parse_cgroup("0::/\n").unwrap());
        assert_eq!(located.identity(), Err(LocateError::NoController));
    }

    fn reader_without_layout() -> CgroupReader {
        let mut reader = CgroupReader::new(fixture("does-not-exist"));
        reader.detect(None);
        reader
    }

    #[test]
    fn without_mountinfo_falls_back_to_suffixes() {
        // v1: the container's files are at the top of each hierarchy directory, so the full
        // path and its suffixes are missing and the top directory is used.
        let mut reader = open_reader("cgroup-v1", None);
        let text = std::fs::read_to_string(fixture("proc/7/cgroup")).unwrap();
        let located = reader.locate(&parse_cgroup(&text).unwrap());
        let identity = located.identity().unwrap();
        assert_eq!(identity.relative, "");
        let mut errors = Vec::new();
        assert_eq!(reader.read(&located, identity, &mut errors), expected_v1_app());
        assert!(errors.is_empty(), "{errors:?}");
        // v2: the full path exists and is taken as it is.
        let mut reader = reader_v2_without_mountinfo();
        let located = reader.locate(&parse_cgroup("0::/ecs/0f1e2d/web\n").unwrap());
        assert_eq!(located.identity().unwrap().relative, "ecs/0f1e2d/web");
        // A cgroup-namespace path that points outside is refused even without mountinfo.
        let located = reader.locate(&parse_cgroup("0::/../envoy\n").unwrap());
        assert_eq!(located.identity(), Err(LocateError::OutsideMount("/../envoy")));
    }

    fn reader_v2_without_mountinfo() -> CgroupReader {
        open_reader("cgroup-v2", None)
    }

    #[test]
    fn missing_files_outside_the_top_directory_are_errors() {
        let mut reader = reader_v2_without_mountinfo();
        let membership = parse_cgroup("0::/ecs/0f1e2d/web\n").unwrap();
        let located = reader.locate(&membership);
        let mut identity = located.identity().unwrap();
        // Point the identity's memory placement at a directory that does not exist.
        let mut located = located;
        identity.relative = "ecs/0f1e2d/gone";
        located.controllers = [Ok(Some(identity)), Ok(None), Ok(None), Ok(None)];
        let mut errors = Vec::new();
        let reading = reader.read(&located, identity, &mut errors);
        assert_eq!(reading.memory_usage_bytes, None);
        assert_eq!(errors.len(), 4);
        assert!(errors.iter().all(ReadError::is_not_found));
        let first = errors[0].to_string();
        assert!(first.ends_with("ecs/0f1e2d/gone/memory.current: no such file or directory"), "{first}");
        // The top directory of a pure v2 root is the real root cgroup: no memory files, no
        // errors.
        let located = reader.locate(&parse_cgroup("0::/\n").unwrap());
        let identity = located.identity().unwrap();
        let mut errors = Vec::new();
        let reading = reader.read(&located, identity, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(reading.memory_usage_bytes, None);
        assert_eq!(reading.path, "/");
    }
}
