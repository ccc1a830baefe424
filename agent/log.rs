//! Event logging: one line per event on stdout, JSON by default, plain text on request.
//!
//! vigil logs events (start-up facts, verdict transitions, source errors), never ticks. A line
//! is `{"ts":"…","level":"info","event":"…",…fields}`; the text form is
//! `ts level event key=value …`. Writing never fails the caller: a closed stdout is ignored.

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::time::format_rfc3339_millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

static SETTINGS: OnceLock<(Level, Format)> = OnceLock::new();

/// Sets the level and format once; later calls are ignored. Before `init`, `info` in JSON.
pub fn init(level: Level, format: Format) {
    let _ = SETTINGS.set((level, format));
}

fn settings() -> (Level, Format) {
    SETTINGS.get().copied().unwrap_or((Level::Info, Format::Json))
}

/// Whether an event at `level` would be written.
pub fn enabled(level: Level) -> bool {
    level <= settings().0
}

/// Writes one event. `fields` should be a JSON object; anything else is logged under `value`.
pub fn event(level: Level, name: &str, fields: Value) {
    if !enabled(level) {
        return;
    }
    let line = format_line(settings().1, &now_rfc3339(), level, name, fields);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.flush();
}

pub fn error(name: &str, fields: Value) {
    event(Level::Error, name, fields)
}

pub fn warn(name: &str, fields: Value) {
    event(Level::Warn, name, fields)
}

pub fn info(name: &str, fields: Value) {
    event(Level::Info, name, fields)
}

pub fn debug(name: &str, fields: Value) {
    event(Level::Debug, name, fields)
}

/// Builds one line, newline included. Pure, for tests.
pub fn format_line(format: Format, ts: &str, level: Level, name: &str, fields: Value) -> String {
    let fields = match fields {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => Map::from_iter([("value".to_string(), other)]),
    };
    match format {
        Format::Json => {
            // Written by hand so that `ts`, `level` and `event` come first; the fields follow
            // in key order. A field may not override the first three.
            let mut text = format!(
                "{{\"ts\":{},\"level\":\"{}\",\"event\":{}",
                Value::from(ts),
                level.name(),
                Value::from(name)
            );
            for (key, value) in fields {
                if matches!(key.as_str(), "ts" | "level" | "event") {
                    continue;
                }
                text.push(',');
                text.push_str(&Value::from(key).to_string());
                text.push(':');
                text.push_str(&value.to_string());
            }
            text.push_str("}\n");
            text
        }
        Format::Text => {
            let mut text = format!("{ts} {} {name}", level.name());
            for (key, value) in fields {
                match value {
                    Value::String(s) => text.push_str(&format!(" {key}={s:?}")),
                    other => text.push_str(&format!(" {key}={other}")),
                }
            }
            text.push('\n');
            text
        }
    }
}

/// The wall-clock time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format_rfc3339_millis(since.as_millis() as i64)
}

/// Rate-limited logging of repeated errors: the first error of each key is logged at once,
/// then at most one a quiet period per key, with the number of errors not logged in between.
/// Time comes in as milliseconds, so the limiter is pure.
#[derive(Debug, Clone)]
pub struct Quiet<const N: usize> {
    quiet_ms: u64,
    last_logged: [Option<u64>; N],
    suppressed: [u64; N],
}

impl<const N: usize> Quiet<N> {
    pub fn new(quiet_ms: u64) -> Self {
        Quiet { quiet_ms, last_logged: [None; N], suppressed: [0; N] }
    }

    /// Whether an error of `key` at `at` should be logged: `Some(errors not logged since the
    /// last line)` if so, `None` when it is counted instead. A key out of range is always logged.
    pub fn admit(&mut self, key: usize, at: u64) -> Option<u64> {
        let (Some(last), Some(suppressed)) = (self.last_logged.get_mut(key), self.suppressed.get_mut(key))
        else {
            return Some(0);
        };
        match *last {
            Some(then) if at.saturating_sub(then) < self.quiet_ms => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(at);
                Some(std::mem::take(suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quiet_logs_the_first_error_then_one_a_period_per_key() {
        let mut quiet = Quiet::<2>::new(60_000);
        assert_eq!(quiet.admit(0, 1_000), Some(0));
        assert_eq!(quiet.admit(0, 2_000), None);
        assert_eq!(quiet.admit(0, 60_999), None);
        assert_eq!(quiet.admit(1, 61_000), Some(0), "keys are independent");
        assert_eq!(quiet.admit(0, 61_000), Some(2), "a period later, with the count in between");
        assert_eq!(quiet.admit(0, 61_001), None);
        assert_eq!(quiet.admit(0, 200_000), Some(1));
        assert_eq!(quiet.admit(7, 200_000), Some(0), "out of range is never lost");
    }

    #[test]
    fn json_line_puts_ts_level_event_first_and_keeps_them() {
        let line = format_line(
            Format::Json,
            "2026-01-01T00:00:00.000Z",
            Level::Warn,
            "source_error",
            json!({"source": "tmds", "event": "ignored"}),
        );
        assert_eq!(
            line,
            "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"level\":\"warn\",\"event\":\"source_error\",\"source\":\"tmds\"}\n"
        );
    }

    #[test]
    fn text_line() {
        let line = format_line(
            Format::Text,
            "T",
            Level::Info,
            "start",
            json!({"mode": "local", "interval_ms": 1000}),
        );
        assert_eq!(line, "T info start interval_ms=1000 mode=\"local\"\n");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("nope"), None);
        assert!(Level::Error < Level::Debug);
    }
}
