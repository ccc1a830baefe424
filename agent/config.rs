//! Every environment variable vigil reads, typed and validated once at start-up.
//!
//! Parsing is pure: [`Config::from_lookup`] takes a lookup function so tests pass a map. An
//! invalid value is a [`ConfigError`] that names the variable and the value; `main` prints it on
//! one line and exits with status 64.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::log::{Format, Level};

pub const ENV_LISTEN: &str = "VIGIL_LISTEN";
pub const ENV_AGENT_CHECK_LISTEN: &str = "VIGIL_AGENT_CHECK_LISTEN";
pub const ENV_INTERVAL: &str = "VIGIL_INTERVAL";
pub const ENV_APP_HEALTH_URL: &str = "VIGIL_APP_HEALTH_URL";
pub const ENV_APP_HEALTH_TIMEOUT: &str = "VIGIL_APP_HEALTH_TIMEOUT";
pub const ENV_WATCH: &str = "VIGIL_WATCH";
pub const ENV_DRAIN_SECONDS: &str = "VIGIL_DRAIN_SECONDS";
pub const ENV_LOG: &str = "VIGIL_LOG";
pub const ENV_LOG_FORMAT: &str = "VIGIL_LOG_FORMAT";
pub const ENV_PROC_ROOT: &str = "VIGIL_PROC_ROOT";
pub const ENV_CGROUP_ROOT: &str = "VIGIL_CGROUP_ROOT";
pub const ENV_DRAIN_HORIZON: &str = "VIGIL_DRAIN_HORIZON";
pub const ENV_CONFIRM_TICKS: &str = "VIGIL_CONFIRM_TICKS";
pub const ENV_CLEAR_TICKS: &str = "VIGIL_CLEAR_TICKS";
pub const ENV_WARMUP: &str = "VIGIL_WARMUP";
pub const ENV_RESTART_PERIOD: &str = "VIGIL_RESTART_PERIOD";
pub const ENV_RECORD: &str = "VIGIL_RECORD";
pub const ENV_MODEL: &str = "VIGIL_MODEL";
pub const ENV_MODEL_CALIBRATION: &str = "VIGIL_MODEL_CALIBRATION";
pub const ENV_FLEET_URL: &str = "VIGIL_FLEET_URL";
pub const ENV_FLEET_INTERVAL: &str = "VIGIL_FLEET_INTERVAL";
pub const ENV_FLEET_SELECTOR: &str = "VIGIL_FLEET_SELECTOR";
pub const ENV_FLEET_SHARE: &str = "VIGIL_FLEET_SHARE";
pub const ENV_FLEET_MAX_DRAINING: &str = "VIGIL_FLEET_MAX_DRAINING";
pub const ENV_FLEET_IMMINENT: &str = "VIGIL_FLEET_IMMINENT";
pub const ENV_TMDS: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// Every variable, with its default, for `--help` and the README.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (ENV_LISTEN, "0.0.0.0:9797", "address of the HTTP server"),
    (
        ENV_AGENT_CHECK_LISTEN,
        "unset",
        "address of an HAProxy agent-check listener (e.g. 0.0.0.0:9798): one line per connection, up ready 100%, up ready 50% (degraded) or drain",
    ),
    (ENV_INTERVAL, "1s", "tick interval (100ms to 60s)"),
    (ENV_APP_HEALTH_URL, "unset", "http:// URL of the app's own health endpoint, probed every tick"),
    (ENV_APP_HEALTH_TIMEOUT, "1s", "how long a probe of the app may take (at most the interval)"),
    (ENV_WATCH, "unset", "regular expression on process command lines; default: every process but vigil"),
    (ENV_DRAIN_SECONDS, "25", "after SIGTERM, seconds to keep serving with health red before exiting"),
    (
        ENV_DRAIN_HORIZON,
        "180s",
        "drain when a resource is predicted to run out within this time; at least the load balancer's interval x unhealthy threshold, plus margin",
    ),
    (ENV_CONFIRM_TICKS, "3", "consecutive ticks a forecast must hold before it drains"),
    (ENV_CLEAR_TICKS, "10", "consecutive ticks without the forecast before draining stops"),
    (ENV_WARMUP, "60s", "history a resource needs before its forecast may drain"),
    (
        ENV_RESTART_PERIOD,
        "300s",
        "the restart policy's restartAttemptPeriod; restarts count for three periods",
    ),
    (
        ENV_RECORD,
        "unset",
        "file to append each tick's model input channels to (CSV), for training the autoencoder",
    ),
    (
        ENV_MODEL,
        "embedded",
        "path of an .nnef.tgz autoencoder to use instead of the embedded int8 model, or off to score nothing",
    ),
    (
        ENV_MODEL_CALIBRATION,
        "300",
        "scores (ticks, after the first 60) the anomaly threshold is calibrated from, 30 to 100000",
    ),
    (
        ENV_FLEET_URL,
        "unset",
        "http:// base URL of the service's Prometheus (which scrapes every vigil): compare this task with its peers; unset: judge alone",
    ),
    (ENV_FLEET_INTERVAL, "5s", "how often to query the fleet view (1s to 60s); one query at a time"),
    (
        ENV_FLEET_SELECTOR,
        "unset",
        "extra PromQL label matchers for the peers' vigil_task_info, e.g. job=\"vigil\"; default: same cluster, family and service",
    ),
    (ENV_FLEET_SHARE, "0.5", "share of the live peers on which a reason counts as fleet-wide (0.1 to 1)"),
    (
        ENV_FLEET_MAX_DRAINING,
        "auto",
        "most tasks of the service draining at once; auto: one task or 10 %, whichever is larger",
    ),
    (
        ENV_FLEET_IMMINENT,
        "30s",
        "a fleet-wide resource forecast drains (within the budget) once it runs out within this time, growing at a steady pace or 95 % used",
    ),
    (ENV_LOG, "info", "log level: error, warn, info, debug"),
    (ENV_LOG_FORMAT, "json", "log line format: json or text"),
    (ENV_PROC_ROOT, "/proc", "where procfs is mounted"),
    (ENV_CGROUP_ROOT, "/sys/fs/cgroup", "where cgroupfs is mounted"),
    (ENV_TMDS, "unset", "set by ECS: the Task Metadata Service v4 base URL; unset means local mode"),
];

/// The names in `names` that look like vigil's (`VIGIL_` prefix) but are none of
/// [`VARIABLES`]: a misspelt setting, which would otherwise fall back to its default unseen.
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut unknown: Vec<&str> = names
        .into_iter()
        .filter(|name| name.starts_with("VIGIL_") && !VARIABLES.iter().any(|(known, _, _)| known == name))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    unknown
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub agent_check_listen: Option<SocketAddr>,
    pub interval: Duration,
    pub app_health_url: Option<String>,
    pub app_health_timeout: Duration,
    pub watch: Option<regex_lite::Regex>,
    pub drain: Duration,
    pub log_level: Level,
    pub log_format: Format,
    pub proc_root: PathBuf,
    pub cgroup_root: PathBuf,
    /// `None` is local mode: only `/proc` and cgroups.
    pub tmds_url: Option<String>,
    pub drain_horizon: Duration,
    pub confirm_ticks: u32,
    pub clear_ticks: u32,
    pub warmup: Duration,
    pub restart_period: Duration,
    /// Where to append each tick's raw model channels, when set.
    pub record: Option<PathBuf>,
    /// Which autoencoder scores each tick.
    pub model: ModelSource,
    /// Scores the anomaly threshold is calibrated from.
    pub model_calibration: u32,
    /// The service's Prometheus, when the fleet view is on.
    pub fleet_url: Option<String>,
    pub fleet_interval: Duration,
    /// Extra label matchers for the peers' info series.
    pub fleet_selector: String,
    pub fleet: crate::judge::fleet::FleetConfig,
}

/// Where vigil gets its task-level view from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only `/proc` and cgroups: no metadata service configured.
    Local,
    /// `/proc`, cgroups and the Task Metadata Service v4.
    Ecs,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Ecs => "ecs",
        }
    }
}

impl Config {
    /// ECS mode when the metadata service is configured, local mode otherwise.
    pub fn mode(&self) -> Mode {
        if self.tmds_url.is_some() { Mode::Ecs } else { Mode::Local }
    }
}

/// Where the autoencoder comes from. Reading and checking the file is the agent's job, at
/// start-up; a file that cannot be used stops vigil like an invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// The int8 model built into the binary.
    Embedded,
    /// An `.nnef.tgz` file.
    File(PathBuf),
    /// No model: no anomaly score.
    Off,
}

/// A variable that is set but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the process environment. A variable that is not valid Unicode is an error.
    pub fn from_env() -> Result<Config, ConfigError> {
        let non_unicode = std::cell::RefCell::new(None);
        let config = Config::from_lookup(|name| match std::env::var(name) {
            Ok(value) => Some(value),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(raw)) => {
                non_unicode.borrow_mut().get_or_insert((name, raw.to_string_lossy().into_owned()));
                None
            }
        });
        if let Some((name, value)) = non_unicode.into_inner() {
            let variable = VARIABLES
                .iter()
                .map(|(known, _, _)| *known)
                .find(|known| *known == name)
                .unwrap_or("environment variable");
            return Err(invalid(variable, &value, "not valid UTF-8"));
        }
        config
    }

    /// Builds the configuration from any lookup (the environment, or a map in tests). Empty
    /// values count as unset.
    pub fn from_lookup(lookup: impl Fn(&'static str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| lookup(name).filter(|value| !value.trim().is_empty());

        let listen = match get(ENV_LISTEN) {
            None => SocketAddr::from(([0, 0, 0, 0], 9797)),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| invalid(ENV_LISTEN, &value, "expected address:port, e.g. 0.0.0.0:9797"))?,
        };

        let agent_check_listen = match get(ENV_AGENT_CHECK_LISTEN) {
            None => None,
            Some(value) => Some(value.trim().parse().map_err(|_| {
                invalid(ENV_AGENT_CHECK_LISTEN, &value, "expected address:port, e.g. 0.0.0.0:9798")
            })?),
        };

        let interval = match get(ENV_INTERVAL) {
            None => Duration::from_secs(1),
            Some(value) => {
                let interval =
                    parse_duration(&value).map_err(|reason| invalid(ENV_INTERVAL, &value, reason))?;
                if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&interval) {
                    return Err(invalid(ENV_INTERVAL, &value, "must be between 100ms and 60s"));
                }
                interval
            }
        };

        let app_health_url = match get(ENV_APP_HEALTH_URL) {
            None => None,
            Some(value) => Some(
                parse_http_url(&value)
                    .map_err(|reason| invalid(ENV_APP_HEALTH_URL, &redacted(&value), reason))?,
            ),
        };

        let app_health_timeout = match get(ENV_APP_HEALTH_TIMEOUT) {
            None => Duration::from_secs(1).min(interval),
            Some(value) => {
                let timeout = parse_duration(&value)
                    .map_err(|reason| invalid(ENV_APP_HEALTH_TIMEOUT, &value, reason))?;
                if timeout.is_zero() || timeout > interval {
                    return Err(invalid(
                        ENV_APP_HEALTH_TIMEOUT,
                        &value,
                        "must be more than 0 and at most the interval",
                    ));
                }
                timeout
            }
        };

        let watch = match get(ENV_WATCH) {
            None => None,
            Some(value) => Some(
                regex_lite::Regex::new(&value)
                    .map_err(|error| invalid(ENV_WATCH, &value, &first_line(&error.to_string())))?,
            ),
        };

        let drain = match get(ENV_DRAIN_SECONDS) {
            None => Duration::from_secs(25),
            Some(value) => {
                let seconds: u64 = value
                    .trim()
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| invalid(ENV_DRAIN_SECONDS, &value, "expected whole seconds, e.g. 25"))?;
                if seconds > 3600 {
                    return Err(invalid(ENV_DRAIN_SECONDS, &value, "must be at most 3600"));
                }
                Duration::from_secs(seconds)
            }
        };

        let log_level = match get(ENV_LOG) {
            None => Level::Info,
            Some(value) => Level::parse(&value)
                .ok_or_else(|| invalid(ENV_LOG, &value, "expected error, warn, info or debug"))?,
        };

        let log_format = match get(ENV_LOG_FORMAT).as_deref().map(str::trim) {
            None | Some("json") => Format::Json,
            Some("text") => Format::Text,
            Some(other) => return Err(invalid(ENV_LOG_FORMAT, other, "expected json or text")),
        };

        let proc_root = PathBuf::from(get(ENV_PROC_ROOT).unwrap_or_else(|| "/proc".into()));
        let cgroup_root = PathBuf::from(get(ENV_CGROUP_ROOT).unwrap_or_else(|| "/sys/fs/cgroup".into()));

        let duration =
            |variable: &'static str, default: Duration, range: std::ops::RangeInclusive<Duration>| {
                let Some(value) = get(variable) else { return Ok(default) };
                let parsed = parse_duration(&value).map_err(|reason| invalid(variable, &value, reason))?;
                if !range.contains(&parsed) {
                    let reason = format!("must be between {:?} and {:?}", range.start(), range.end());
                    return Err(invalid(variable, &value, &reason));
                }
                Ok(parsed)
            };
        let ticks = |variable: &'static str, default: u32| {
            let Some(value) = get(variable) else { return Ok(default) };
            match value.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(invalid(variable, &value, "expected a whole number of ticks from 1 to 1000")),
            }
        };
        let drain_horizon = duration(
            ENV_DRAIN_HORIZON,
            Duration::from_secs(180),
            Duration::from_secs(10)..=Duration::from_secs(86_400),
        )?;
        let confirm_ticks = ticks(ENV_CONFIRM_TICKS, 3)?;
        let clear_ticks = ticks(ENV_CLEAR_TICKS, 10)?;
        let warmup =
            duration(ENV_WARMUP, Duration::from_secs(60), Duration::ZERO..=Duration::from_secs(3600))?;
        let restart_period = duration(
            ENV_RESTART_PERIOD,
            Duration::from_secs(300),
            Duration::from_secs(10)..=Duration::from_secs(3600),
        )?;

        let record = get(ENV_RECORD).map(PathBuf::from);

        let model = match get(ENV_MODEL) {
            None => ModelSource::Embedded,
            Some(value) if value.trim() == "off" => ModelSource::Off,
            Some(value) => ModelSource::File(PathBuf::from(value)),
        };
        let model_calibration = match get(ENV_MODEL_CALIBRATION) {
            None => 300,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(n) if (30..=100_000).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        ENV_MODEL_CALIBRATION,
                        &value,
                        "expected a whole number of ticks from 30 to 100000",
                    ));
                }
            },
        };

        let fleet_url = match get(ENV_FLEET_URL) {
            None => None,
            Some(value) => Some(
                parse_http_url(&value).map_err(|reason| invalid(ENV_FLEET_URL, &redacted(&value), reason))?,
            ),
        };
        let fleet_interval = duration(
            ENV_FLEET_INTERVAL,
            Duration::from_secs(5),
            Duration::from_secs(1)..=Duration::from_secs(60),
        )?;
        let fleet_selector = get(ENV_FLEET_SELECTOR).unwrap_or_default();
        if fleet_selector.contains(['{', '}']) {
            return Err(invalid(
                ENV_FLEET_SELECTOR,
                &fleet_selector,
                "expected label matchers without braces, e.g. job=\"vigil\"",
            ));
        }
        let fleet_share = match get(ENV_FLEET_SHARE) {
            None => 0.5,
            Some(value) => match value.trim().parse::<f64>() {
                Ok(share) if (0.1..=1.0).contains(&share) => share,
                _ => {
                    return Err(invalid(ENV_FLEET_SHARE, &value, "expected a share from 0.1 to 1, e.g. 0.5"));
                }
            },
        };
        let fleet_max_draining = match get(ENV_FLEET_MAX_DRAINING) {
            None => None,
            Some(value) if value.trim() == "auto" => None,
            Some(value) => match value.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    return Err(invalid(
                        ENV_FLEET_MAX_DRAINING,
                        &value,
                        "expected auto or a whole number of tasks, at least 1",
                    ));
                }
            },
        };
        let fleet_imminent = duration(
            ENV_FLEET_IMMINENT,
            Duration::from_secs(30),
            Duration::ZERO..=Duration::from_secs(3600),
        )?;
        let fleet = crate::judge::fleet::FleetConfig {
            share: fleet_share,
            max_draining: fleet_max_draining,
            // Three queries missed, and at least 15 s: then the view is no view.
            stale_ms: (3 * fleet_interval.as_millis() as u64).max(15_000),
            imminent_seconds: fleet_imminent.as_secs_f64(),
            answered_latency_seconds: app_health_timeout.as_secs_f64() / 2.0,
            ..crate::judge::fleet::FleetConfig::default()
        };

        let tmds_url = match get(ENV_TMDS) {
            None => None,
            Some(value) => {
                Some(parse_http_url(&value).map_err(|reason| invalid(ENV_TMDS, &redacted(&value), reason))?)
            }
        };

        Ok(Config {
            listen,
            agent_check_listen,
            interval,
            app_health_url,
            app_health_timeout,
            watch,
            drain,
            log_level,
            log_format,
            proc_root,
            cgroup_root,
            tmds_url,
            drain_horizon,
            confirm_ticks,
            fleet_url,
            fleet_interval,
            fleet_selector,
            fleet,
            clear_ticks,
            warmup,
            restart_period,
            record,
            model,
            model_calibration,
        })
    }
}

fn invalid(variable: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError { variable, value: value.to_string(), reason: reason.to_string() }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// Parses `500ms`, `1s`, `1.5s`, `2m`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const EXPECTED: &str = "expected a duration such as 500ms, 1s or 2m";
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| EXPECTED)?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        _ => return Err(EXPECTED),
    };
    if !seconds.is_finite() || seconds > 86_400.0 {
        return Err(EXPECTED);
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Accepts an absolute `http://host[:port]/...` URL; vigil speaks only plain HTTP (the task's
/// localhost and the link-local metadata service), so `https` is refused with a reason.
fn parse_http_url(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    let url = reqwest::Url::parse(text).map_err(|_| "expected an absolute http:// URL")?;
    if url.scheme() != "http" {
        return Err("only http:// URLs are supported");
    }
    if url.host_str().is_none() {
        return Err("the URL has no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported (they would be logged and sent in the clear)");
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// A URL as an error message may show it: any user name and password replaced by `***`.
fn redacted(text: &str) -> String {
    match reqwest::Url::parse(text.trim()) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("***");
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_local_mode_on_port_9797() {
        let config = config(&[]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:9797".parse().unwrap());
        assert_eq!(config.interval, Duration::from_secs(1));
        assert_eq!(config.app_health_timeout, Duration::from_secs(1));
        assert_eq!(config.drain, Duration::from_secs(25));
        assert_eq!(config.log_level, Level::Info);
        assert_eq!(config.log_format, Format::Json);
        assert_eq!(config.proc_root, PathBuf::from("/proc"));
        assert_eq!(config.cgroup_root, PathBuf::from("/sys/fs/cgroup"));
        assert!(config.tmds_url.is_none());
        assert!(config.app_health_url.is_none());
        assert_eq!(config.drain_horizon, Duration::from_secs(180));
        assert_eq!((config.confirm_ticks, config.clear_ticks), (3, 10));
        assert_eq!(config.warmup, Duration::from_secs(60));
        assert_eq!(config.restart_period, Duration::from_secs(300));
        assert!(config.watch.is_none());
        assert_eq!(config.model, ModelSource::Embedded);
        assert_eq!(config.model_calibration, 300);
        assert!(config.fleet_url.is_none());
        assert_eq!(config.fleet_interval, Duration::from_secs(5));
        assert_eq!(config.fleet, crate::judge::fleet::FleetConfig { stale_ms: 15_000, ..Default::default() });
    }

    #[test]
    fn fleet_settings() {
        let config = config(&[
            (ENV_FLEET_URL, "http://prometheus.internal:9090/"),
            (ENV_FLEET_INTERVAL, "10s"),
            (ENV_FLEET_SELECTOR, "job=\"vigil\""),
            (ENV_FLEET_SHARE, "0.6"),
            (ENV_FLEET_MAX_DRAINING, "2"),
            (ENV_FLEET_IMMINENT, "45s"),
        ])
        .unwrap();
        assert_eq!(config.fleet_url.as_deref(), Some("http://prometheus.internal:9090"));
        assert_eq!(config.fleet_selector, "job=\"vigil\"");
        assert_eq!(
            (
                config.fleet.share,
                config.fleet.max_draining,
                config.fleet.stale_ms,
                config.fleet.imminent_seconds
            ),
            (0.6, Some(2), 30_000, 45.0)
        );
    }

    #[test]
    fn model_is_embedded_a_file_or_off() {
        let cases = [
            ("off", ModelSource::Off),
            (" off ", ModelSource::Off),
            ("/models/f32.nnef.tgz", ModelSource::File("/models/f32.nnef.tgz".into())),
        ];
        for (value, expected) in cases {
            assert_eq!(config(&[(ENV_MODEL, value)]).unwrap().model, expected, "{value}");
        }
        let config = config(&[(ENV_MODEL_CALIBRATION, "600")]).unwrap();
        assert_eq!(config.model_calibration, 600);
    }

    #[test]
    fn durations() {
        let cases = [
            ("500ms", Some(500)),
            ("1s", Some(1000)),
            ("1.5s", Some(1500)),
            ("2", Some(2000)),
            ("2m", Some(120_000)),
            (" 3s ", Some(3000)),
            ("abc", None),
            ("1h", None),
            ("", None),
            ("-1s", None),
            ("ms", None),
        ];
        for (text, expected) in cases {
            let parsed = parse_duration(text).ok().map(|d| d.as_millis() as u64);
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn every_invalid_value_names_its_variable() {
        let cases = [
            (ENV_LISTEN, "nowhere"),
            (ENV_INTERVAL, "abc"),
            (ENV_INTERVAL, "10ms"),
            (ENV_INTERVAL, "5m"),
            (ENV_APP_HEALTH_URL, "localhost:8080/health"),
            (ENV_APP_HEALTH_URL, "https://127.0.0.1/health"),
            (ENV_APP_HEALTH_TIMEOUT, "2s"),
            (ENV_WATCH, "(unclosed"),
            (ENV_DRAIN_SECONDS, "soon"),
            (ENV_DRAIN_SECONDS, "99999"),
            (ENV_LOG, "loud"),
            (ENV_LOG_FORMAT, "xml"),
            (ENV_TMDS, "not a url"),
            (ENV_FLEET_URL, "prometheus:9090"),
            (ENV_FLEET_INTERVAL, "100ms"),
            (ENV_FLEET_SELECTOR, "{job=x}"),
            (ENV_FLEET_SHARE, "0"),
            (ENV_FLEET_SHARE, "half"),
            (ENV_FLEET_MAX_DRAINING, "0"),
            (ENV_DRAIN_HORIZON, "soon"),
            (ENV_DRAIN_HORIZON, "1s"),
            (ENV_CONFIRM_TICKS, "0"),
            (ENV_CLEAR_TICKS, "many"),
            (ENV_WARMUP, "2h"),
            (ENV_RESTART_PERIOD, "1ms"),
            (ENV_MODEL_CALIBRATION, "10"),
            (ENV_MODEL_CALIBRATION, "lots"),
        ];
        for (variable, value) in cases {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{variable}={value}");
            let message = error.to_string();
            assert!(message.contains(variable) && message.contains(value), "{message}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    #[test]
    fn valid_values_are_used() {
        let config = config(&[
            (ENV_LISTEN, "127.0.0.1:0"),
            (ENV_INTERVAL, "500ms"),
            (ENV_APP_HEALTH_URL, "http://127.0.0.1:8080/health"),
            (ENV_WATCH, "^java "),
            (ENV_DRAIN_SECONDS, "0"),
            (ENV_LOG, "debug"),
            (ENV_LOG_FORMAT, "text"),
            (ENV_TMDS, "http://169.254.170.2/v4/abc-123/"),
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.interval, Duration::from_millis(500));
        assert_eq!(config.app_health_timeout, Duration::from_millis(500), "clamped to the interval");
        assert_eq!(config.app_health_url.as_deref(), Some("http://127.0.0.1:8080/health"));
        assert!(config.watch.unwrap().is_match("java -jar app.jar"));
        assert_eq!(config.drain, Duration::ZERO);
        assert_eq!(config.log_level, Level::Debug);
        assert_eq!(config.log_format, Format::Text);
        assert_eq!(config.tmds_url.as_deref(), Some("http://169.254.170.2/v4/abc-123"));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[(ENV_INTERVAL, ""), (ENV_APP_HEALTH_URL, " ")]).unwrap();
        assert_eq!(config.interval, Duration::from_secs(1));
        assert!(config.app_health_url.is_none());
    }

    #[test]
    fn misspelt_settings_are_named() {
        let names = ["VIGIL_DRAIN_HORIZEN", "VIGIL_LISTEN", "PATH", "VIGIL_FLEET_URL", "VIGIL_X", "VIGIL_X"];
        assert_eq!(unknown_variables(names), vec!["VIGIL_DRAIN_HORIZEN", "VIGIL_X"]);
        assert!(unknown_variables(VARIABLES.iter().map(|(name, _, _)| *name)).is_empty());
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_being_shown() {
        let error =
            config(&[(ENV_FLEET_URL, "http://admin:s3cret@prometheus:9090")]).unwrap_err().to_string();
        assert!(error.contains("credentials in the URL are not supported"), "{error}");
        assert!(!error.contains("s3cret") && !error.contains("admin"), "{error}");
        assert!(config(&[(ENV_APP_HEALTH_URL, "http://user@127.0.0.1:8080/health")]).is_err());
    }
}
