//! When to poll the metadata service: the rate limit and the back-off after 429 and 5xx
//! answers. Pure: time comes in as an argument.

use super::*;
use crate::judge::sample::Millis;

/// The rate limit and the back-off after 429 and 5xx answers.
#[derive(Debug, Clone, Default)]
pub(super) struct Schedule {
    pub(super) last_attempt: Option<Millis>,
    /// No attempt before this instant (back-off).
    pub(super) not_before: Millis,
    /// Throttled polls in a row.
    pub(super) throttled: u32,
}

impl Schedule {
    pub(super) fn due(&self, now: Millis) -> bool {
        now >= self.not_before
            && self
                .last_attempt
                .is_none_or(|last| now.saturating_sub(last) + POLL_SLACK_MS >= MIN_POLL_INTERVAL_MS)
    }

    pub(super) fn attempted(&mut self, now: Millis) {
        self.last_attempt = Some(now);
    }

    /// Backs off for `Retry-After` when TMDS sent one, else for 2, 4, 8, 16, then 30 seconds;
    /// never longer than [`MAX_BACKOFF_MS`], never shorter than the rate limit.
    pub(super) fn throttle(&mut self, now: Millis, retry_after_secs: Option<u64>) {
        self.throttled = self.throttled.saturating_add(1);
        let delay = match retry_after_secs {
            Some(secs) => secs.saturating_mul(1000),
            None => 1000u64 << self.throttled.min(5),
        };
        self.not_before = now.saturating_add(delay.clamp(MIN_POLL_INTERVAL_MS, MAX_BACKOFF_MS));
    }

    pub(super) fn succeeded(&mut self) {
        self.throttled = 0;
    }
}
