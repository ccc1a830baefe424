//! The configuration: the input is an environment, one `NAME=value` per line; every value is also
//! read as a duration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::config::{Config, parse_duration, unknown_variables};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text.lines().filter_map(|line| line.split_once('=')).collect();
    let lookup = |name: &'static str| pairs.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
    if let Ok(config) = Config::from_lookup(lookup) {
        let _ = config.mode();
    }
    let _ = unknown_variables(pairs.iter().map(|(name, _)| *name));
    for (_, value) in &pairs {
        let _ = parse_duration(value);
    }
    let _ = parse_duration(&text);
});
