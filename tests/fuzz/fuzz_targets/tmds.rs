//! The metadata service's `/task` and `/task/stats` bodies, and their conversion into a reading.
//! One input holds both bodies, split at the first 0xFF byte (never part of UTF-8 JSON); without
//! one, the same bytes serve as both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::sources::tmds::{parse_stats, parse_task, to_reading};

fuzz_target!(|data: &[u8]| {
    let (task, stats) = match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, data),
    };
    let stats = parse_stats(stats).ok();
    if let Ok(task) = parse_task(task) {
        let first = to_reading(&task, stats.as_ref(), None);
        // A second poll with the same bodies: the repeated-sample path.
        let _ = to_reading(&task, stats.as_ref(), Some(&first));
        let _ = to_reading(&task, None, Some(&first));
    }
});
