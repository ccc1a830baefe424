//! Answers of the service's Prometheus to the fleet query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::sources::fleet::parse;

fuzz_target!(|data: &[u8]| {
    let _ = parse(data, "ba69ec90eb4fef881bc9d5d0c5ff1598", 1_790_000_000_000);
});
