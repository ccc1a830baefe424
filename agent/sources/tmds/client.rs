//! The metadata client: the only part of `tmds` that does I/O. Fetches both documents with
//! timeouts, a body cap and the schedule, and reports failures as [`SourceError`]s.

use std::time::Duration;

use super::*;
use crate::judge::sample::{Millis, SourceError, TaskReading};
use crate::sources::http::{self, ClientOptions};

use super::convert::*;
use super::schedule::*;

/// Polls TMDS v4 over plain HTTP. One per agent; call [`TmdsClient::poll`] once per tick.
#[derive(Debug)]
pub struct TmdsClient {
    pub(super) http: reqwest::Client,
    pub(super) task_url: String,
    pub(super) stats_url: String,
    pub(super) connect_timeout: Duration,
    pub(super) total_timeout: Duration,
    pub(super) schedule: Schedule,
    /// The last reading returned from a completed poll, and when it was fetched.
    pub(super) last: Option<(Millis, TaskReading)>,
}

impl TmdsClient {
    /// A client for the base URL found in `ECS_CONTAINER_METADATA_URI_V4`, with the default
    /// timeouts.
    pub fn new(base_url: &str) -> Result<Self, TmdsError> {
        Self::with_timeouts(base_url, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TOTAL_TIMEOUT)
    }

    /// A client with explicit timeouts: `connect` for opening a connection, `total` for a
    /// whole request including its body.
    pub fn with_timeouts(base_url: &str, connect: Duration, total: Duration) -> Result<Self, TmdsError> {
        // The base URL is opaque: only check that it is an absolute plain-HTTP URL, then append
        // the documented paths to it.
        let invalid = |reason: String| TmdsError::InvalidBaseUrl { url: base_url.to_owned(), reason };
        let parsed = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(invalid("only plain http is supported".to_owned()));
        }
        let base = base_url.trim_end_matches('/');

        let options = ClientOptions { connect_timeout: connect, timeout: total, idle_per_host: 2 };
        let http = http::client(options).map_err(|e| TmdsError::Client(error_cause(&e)))?;

        Ok(TmdsClient {
            http,
            task_url: format!("{base}{TASK_PATH}"),
            stats_url: format!("{base}{STATS_PATH}"),
            connect_timeout: connect,
            total_timeout: total,
            schedule: Schedule::default(),
            last: None,
        })
    }

    /// Reads the task once, if the rate limit and back-off allow it at `now`.
    ///
    /// - A poll that ran and read `/task` returns a fresh reading. If `/task/stats` failed, the
    ///   reading has every container's `stats` set to `None`.
    /// - A poll that ran and could not read `/task` returns `None`.
    /// - A poll skipped by the rate limit or back-off returns the last reading marked
    ///   `stats_stale`, while it is at most [`MAX_CACHED_AGE_MS`] old; else `None`.
    ///
    /// Every failure is pushed to `errors` as a [`Source::Tmds`] error; none is returned.
    pub async fn poll(&mut self, now: Millis, errors: &mut Vec<SourceError>) -> Option<TaskReading> {
        if !self.schedule.due(now) {
            return self.cached(now);
        }
        self.schedule.attempted(now);

        let (task, stats) =
            tokio::join!(self.get(&self.task_url, TASK_PATH), self.get(&self.stats_url, STATS_PATH));
        let task = task.and_then(|body| parse_task(&body));
        let stats = stats.and_then(|body| parse_stats(&body));

        let failures = [task.as_ref().err(), stats.as_ref().err()];
        let mut throttled = false;
        let mut retry_after = None;
        for err in failures.into_iter().flatten().filter(|e| e.is_throttle()) {
            throttled = true;
            if let TmdsError::Status { retry_after_secs: Some(secs), .. } = err {
                retry_after = retry_after.max(Some(*secs));
            }
        }
        if throttled {
            self.schedule.throttle(now, retry_after);
        } else {
            self.schedule.succeeded();
        }

        let task = match task {
            Ok(task) => Some(task),
            Err(err) => {
                errors.push(err.into());
                None
            }
        };
        let stats = match stats {
            Ok(stats) => Some(stats),
            Err(err) => {
                errors.push(err.into());
                None
            }
        };
        let task = task?;
        let reading = to_reading(&task, stats.as_ref(), self.last.as_ref().map(|(_, r)| r));
        self.last = Some((now, reading.clone()));
        Some(reading)
    }

    fn cached(&self, now: Millis) -> Option<TaskReading> {
        let (fetched_at, reading) = self.last.as_ref()?;
        if now.saturating_sub(*fetched_at) > MAX_CACHED_AGE_MS {
            return None;
        }
        let mut reading = reading.clone();
        reading.stats_stale = true;
        Some(reading)
    }

    /// One GET, with the body read chunk by chunk and abandoned past [`MAX_BODY_BYTES`].
    async fn get(&self, url: &str, path: &'static str) -> Result<Vec<u8>, TmdsError> {
        let mut response = self.http.get(url).send().await.map_err(|e| self.transport_error(path, &e))?;

        let status = response.status();
        if !status.is_success() {
            let retry_after_secs = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            return Err(TmdsError::Status { path, status: status.as_u16(), retry_after_secs });
        }

        let too_large = TmdsError::TooLarge { path, limit: MAX_BODY_BYTES };
        let announced = response.content_length().unwrap_or(0);
        if announced > MAX_BODY_BYTES as u64 {
            return Err(too_large);
        }
        let mut body = Vec::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(path, &e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, path: &'static str, err: &reqwest::Error) -> TmdsError {
        if err.is_timeout() {
            let limit = if err.is_connect() { self.connect_timeout } else { self.total_timeout };
            return TmdsError::Timeout { path, after_ms: limit.as_millis() };
        }
        TmdsError::Transport { path, cause: error_cause(err) }
    }
}

/// The innermost cause of an error, lower-cased at the start (`connection refused (os error
/// 111)`): the outer layers of an HTTP client error only repeat the URL.
fn error_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}
