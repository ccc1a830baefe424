//! What the tick loop shares with the server: the latest snapshot, the liveness stamp, the
//! stopping flag and the metrics registry.
//!
//! `/health` reads the stopping flag directly, so a stop turns it red at once, without waiting
//! for a tick.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::Mode;
use crate::judge::sample::Millis;
use crate::serve::metrics::Metrics;
use crate::serve::snapshot::{Snapshot, SnapshotCell};

/// What the tick loop shares with the server.
pub struct Shared {
    started: Instant,
    interval: Duration,
    snapshot: SnapshotCell,
    /// Milliseconds since start at which the last tick completed; `u64::MAX` before the first.
    last_tick: AtomicU64,
    stopping: AtomicBool,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(mode: Mode, interval: Duration) -> Shared {
        let snapshot: SnapshotCell = Arc::new(RwLock::new(Arc::new(Snapshot::empty(mode))));
        Shared {
            started: Instant::now(),
            interval,
            metrics: Metrics::new(Arc::clone(&snapshot)),
            snapshot,
            last_tick: AtomicU64::new(u64::MAX),
            stopping: AtomicBool::new(false),
        }
    }

    /// Milliseconds on the agent's monotonic clock.
    pub fn now(&self) -> Millis {
        self.started.elapsed().as_millis() as Millis
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(snapshot);
        self.last_tick.store(self.now(), Ordering::Release);
    }

    /// Marks the agent as stopping: `/health` turns red from the next request on.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether the tick loop has advanced within the last three intervals (or, before the
    /// first tick, within three intervals of start-up).
    pub fn live(&self, now: Millis) -> bool {
        let last = match self.last_tick.load(Ordering::Acquire) {
            u64::MAX => 0,
            at => at,
        };
        now.saturating_sub(last) <= 3 * self.interval.as_millis() as u64
    }
}
