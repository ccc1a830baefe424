//! Netlink sock_diag answers: the first four bytes are the sequence number the dump expects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::sources::sockdiag::parse_dump;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let seq = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let mut out = Vec::new();
    let _ = parse_dump(&data[4..], seq, &mut out);
});
