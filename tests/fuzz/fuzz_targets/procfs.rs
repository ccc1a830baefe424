//! Every `/proc` file parser, each on the same text, as a file read from a hostile or changed
//! kernel could hold anything.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::sources::procfs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    let _ = procfs::parse_stat(text);
    let _ = procfs::parse_fd_limit(text);
    let _ = procfs::parse_cgroup(text);
    let mut listeners = Vec::new();
    let _ = procfs::parse_tcp_listeners(text, &mut listeners);
    let _ = procfs::parse_netstat(text);
    let _ = procfs::parse_pressure(text);
    let _ = procfs::parse_cmdline(text).count();
    let mut line = String::new();
    procfs::cmdline_to_line(text, &mut line);
    let _ = procfs::parse_net_namespace(text);
});
