//! The Task Metadata Service v4 client and its JSON types: reads `${URI}/task` and
//! `${URI}/task/stats` and turns them into a [`TaskReading`](crate::judge::sample::TaskReading).
//!
//! Four layers, one file each, each testable alone:
//!
//! - **JSON types** (`wire`, private): every field optional, unknown fields ignored, numbers accepted as
//!   integers or floats, a value of the wrong type read as absent. TMDS formats stop here.
//! - **Pure conversion** (`convert`): [`parse_task`], [`parse_stats`] and [`to_reading`] turn response bodies
//!   into the project's own types; [`crate::time::parse_rfc3339_nanos`] reads the stats' timestamps. No I/O,
//!   no clock.
//! - **The schedule** (`schedule`, private, pure): the rate limit and the back-off, with time as an argument.
//! - **The client** (`client`): [`TmdsClient::poll`] fetches both documents (at most once a second, with
//!   timeouts, a body cap and back-off on 429 and 5xx) and reports failures as [`SourceError`]s
//!   instead of failing the tick.
//!
//! Conversion rules, all taken from the fixtures in `tests/fixtures/tmds/`:
//!
//! - Only containers with `Type == "NORMAL"` (or no `Type`) are kept: the EC2 awsvpc pause
//!   container (`CNI_PAUSE`) is dropped.
//! - Stats of `null` (Fargate) or `{}` (EC2) mean "no stats". So does a sample without a usable
//!   `read` stamp, such as Go's zero time `0001-01-01T00:00:00Z`.
//! - Memory working set is usage minus inactive file pages (cgroup v1 `total_inactive_file`,
//!   v2 `inactive_file`); page cache is v1 `cache` or v2 `file`.
//! - A container memory limit of 2^62 or more (9223372036854771712 on cgroup v1, u64::MAX on
//!   v2) means "no limit": the task's `Limits.Memory` applies instead. A real container limit
//!   larger than the task's is capped at the task's, since the task cgroup stops it first.
//! - CPU use is computed from the sample's own `read`/`preread` stamps, never from poll times.
//! - A poll that returns the same `read` stamp for every container is marked `stats_stale`:
//!   TMDS caches stats (about 10 s on Fargate, about 1 s on EC2).

mod client;
mod convert;
mod schedule;
mod wire;

#[cfg(test)]
mod tests;

pub use client::TmdsClient;
pub use convert::{StatsMap, TaskMeta, parse_stats, parse_task, to_reading};

use std::time::Duration;

use crate::judge::sample::{Millis, Source, SourceError};

/// The task document, relative to the base URL.
pub const TASK_PATH: &str = "/task";
/// The per-container stats of the task, relative to the base URL.
pub const STATS_PATH: &str = "/task/stats";
/// The largest response body read; a larger one is abandoned mid-transfer.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The shortest time between two polls. TMDS has a rate limit (40 requests a second steady on
/// EC2, unpublished on Fargate) and refreshes stats no faster than this anyway.
pub const MIN_POLL_INTERVAL_MS: Millis = 1_000;
/// The longest back-off after 429 or 5xx answers, whatever `Retry-After` asks for.
pub const MAX_BACKOFF_MS: Millis = 30_000;
/// How long the last good reading may stand in for a poll skipped by the rate limit or back-off.
pub const MAX_CACHED_AGE_MS: Millis = 30_000;
/// Default time allowed to open a connection to TMDS (a link-local address).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default time allowed for a whole request, body included. The two requests of a poll run
/// concurrently, so a poll never takes longer than this.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_millis(800);

/// A tick that fires a few milliseconds early still counts as a second after the last poll.
const POLL_SLACK_MS: Millis = 50;
/// Memory and pids limits at or above this value mean "no limit".
const NO_LIMIT: u64 = 1 << 62;
const BYTES_PER_MIB: f64 = 1_048_576.0;

/// Why TMDS could not be read or understood. Messages are lower-case and name the cause.
#[derive(Debug, thiserror::Error)]
pub enum TmdsError {
    #[error("invalid base url {url:?}: {reason}")]
    InvalidBaseUrl { url: String, reason: String },
    #[error("build http client: {0}")]
    Client(String),
    #[error("get {path}: timed out after {after_ms} ms")]
    Timeout { path: &'static str, after_ms: u128 },
    #[error("get {path}: {cause}")]
    Transport { path: &'static str, cause: String },
    #[error("get {path}: http status {status}")]
    Status {
        path: &'static str,
        status: u16,
        /// The `Retry-After` header in seconds, when the answer carried one.
        retry_after_secs: Option<u64>,
    },
    #[error("get {path}: body larger than {limit} bytes")]
    TooLarge { path: &'static str, limit: usize },
    #[error("parse {path}: {source}")]
    Json {
        path: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("parse {path}: expected a json object")]
    NotAnObject { path: &'static str },
}

impl TmdsError {
    /// Whether TMDS asked us to slow down (429) or is struggling (5xx): the client backs off.
    pub fn is_throttle(&self) -> bool {
        matches!(self, TmdsError::Status { status, .. } if *status == 429 || (500..600).contains(status))
    }
}

impl From<TmdsError> for SourceError {
    fn from(err: TmdsError) -> Self {
        SourceError::new(Source::Tmds, err.to_string())
    }
}
