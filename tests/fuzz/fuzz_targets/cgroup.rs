//! The cgroup v1 and v2 file parsers, the mount table and the placement of a process's cgroup
//! paths under the mounts found.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::sources::cgroup;
use vigil::sources::procfs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let _ = cgroup::parse_value(text);
    let _ = cgroup::parse_max(text);
    let _ = cgroup::parse_v1_limit(text);
    let _ = cgroup::parse_keyed(text, "oom_kill");
    let _ = cgroup::parse_v1_inactive_file(text);
    let _ = cgroup::parse_v1_cpu_stat(text);
    let _ = cgroup::parse_v2_cpu_stat(text);
    let _ = cgroup::parse_cpuacct_usage(text);
    let _ = cgroup::parse_controllers(text);
    let roots = cgroup::parse_mount_roots(text);
    // The same text as /proc/<pid>/cgroup, placed under the mounts it described.
    if let Ok(membership) = procfs::parse_cgroup(text) {
        let mut reader = cgroup::CgroupReader::new("/nonexistent-vigil-fuzz");
        reader.detect(Some(text));
        let located = reader.locate(&membership);
        let _ = located.identity();
    }
    for root in roots.v1.iter().flatten().chain(roots.v2.iter()) {
        for line in text.lines() {
            let _ = cgroup::relative_to_mount(line, root);
        }
    }
    for line in text.lines().take(64) {
        let _ = cgroup::path_suffixes(line).count();
    }
});
