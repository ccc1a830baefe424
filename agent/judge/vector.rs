//! The autoencoder's input: a fixed-length vector of normalised recent history. Pure.
//!
//! Each tick gives one value per [`CHANNELS`] entry (raw: ratios, logs of counts and
//! latencies). Each channel is normalised per task by a running mean and variance (so one
//! shipped model fits many workloads), clipped, and the last [`WINDOW`] ticks are laid out
//! time-major into [`INPUT_WIDTH`] values: `[t-7: c0..c7, t-6: c0..c7, ..., t: c0..c7]`.
//! A channel with no reading on a tick counts as its running mean (0 after normalisation).
//!
//! The model card (`models/README.md`) documents the same order and normalisation; a test
//! there and one here keep the two in step.

use crate::judge::features::{Resource, Signals};
use crate::judge::sample::{ProbeReading, Sample};

/// The channels, in input order.
pub const CHANNELS: [&str; 8] = [
    "memory_ratio",
    "fds_ratio",
    "threads_ratio",
    "cpu_ratio",
    "memory_pressure",
    "accept_queue_log",
    "probe_latency_log",
    "probe_failed",
];
/// Ticks of history in one input.
pub const WINDOW: usize = 8;
/// The model's input width.
pub const INPUT_WIDTH: usize = CHANNELS.len() * WINDOW;

/// The smallest standard deviation each channel is divided by: a nearly constant channel
/// must move by a meaningful amount, not by noise, to stand out.
const MIN_STD: [f64; 8] = [0.01, 0.005, 0.005, 0.02, 0.01, 0.1, 0.1, 0.05];
/// Normalised values are clipped to ± this.
pub const CLIP: f64 = 6.0;
/// Ticks over which the running statistics are plain averages, before they start forgetting.
const WARMUP_TICKS: u64 = 60;
/// Half-life of the running statistics, in ticks (10 minutes at the default interval).
const HALF_LIFE_TICKS: f64 = 600.0;

/// One tick's raw channel values.
pub type Raw = [Option<f64>; CHANNELS.len()];

/// The raw channel values of one tick.
pub fn raw(sample: &Sample, signals: &Signals) -> Raw {
    let usage = |resource: Resource| signals.usage[resource as usize];
    let accept_queue =
        sample.networks.iter().flat_map(|n| n.listeners.iter()).map(|l| f64::from(l.queue)).reduce(f64::max);
    let (latency, failed) = match sample.probe {
        Some(ProbeReading::Answered { status, latency_ms }) => {
            (Some((latency_ms as f64).ln_1p()), Some(if status >= 500 { 1.0 } else { 0.0 }))
        }
        Some(ProbeReading::Refused | ProbeReading::TimedOut) => (None, Some(1.0)),
        None => (None, None),
    };
    [
        usage(Resource::Memory),
        usage(Resource::Fds),
        usage(Resource::Threads),
        signals.cpu_ratio,
        sample.pressure.and_then(|p| p.memory).map(|line| line.some_avg10 / 100.0),
        accept_queue.map(f64::ln_1p),
        latency,
        failed,
    ]
}

/// Running mean and variance per channel, and the window of normalised ticks.
#[derive(Debug, Clone)]
pub struct Vectoriser {
    count: [u64; CHANNELS.len()],
    mean: [f64; CHANNELS.len()],
    variance: [f64; CHANNELS.len()],
    window: [[f32; CHANNELS.len()]; WINDOW],
    filled: usize,
}

impl Default for Vectoriser {
    fn default() -> Self {
        Vectoriser {
            count: [0; CHANNELS.len()],
            mean: [0.0; CHANNELS.len()],
            variance: [0.0; CHANNELS.len()],
            window: [[0.0; CHANNELS.len()]; WINDOW],
            filled: 0,
        }
    }
}

impl Vectoriser {
    /// Normalises one tick against the statistics so far (then updates them), and returns the
    /// input vector once [`WINDOW`] ticks have been seen.
    pub fn push(&mut self, raw: &Raw) -> Option<[f32; INPUT_WIDTH]> {
        let mut row = [0.0f32; CHANNELS.len()];
        for (c, value) in raw.iter().enumerate() {
            let Some(x) = value.filter(|x| x.is_finite()) else { continue };
            if self.count[c] > 0 {
                let std = self.variance[c].sqrt().max(MIN_STD[c]);
                row[c] = ((x - self.mean[c]) / std).clamp(-CLIP, CLIP) as f32;
            }
            self.update(c, x);
        }
        self.window.rotate_left(1);
        self.window[WINDOW - 1] = row;
        self.filled = (self.filled + 1).min(WINDOW);
        (self.filled == WINDOW).then(|| self.vector())
    }

    fn update(&mut self, c: usize, x: f64) {
        self.count[c] += 1;
        let weight = if self.count[c] <= WARMUP_TICKS {
            1.0 / self.count[c] as f64
        } else {
            1.0 - 0.5f64.powf(1.0 / HALF_LIFE_TICKS)
        };
        let delta = x - self.mean[c];
        self.mean[c] += weight * delta;
        // West's weighted update: exact for the plain average, an EWMA variance after.
        self.variance[c] = (1.0 - weight) * (self.variance[c] + weight * delta * delta);
    }

    fn vector(&self) -> [f32; INPUT_WIDTH] {
        let mut out = [0.0f32; INPUT_WIDTH];
        for (t, row) in self.window.iter().enumerate() {
            out[t * CHANNELS.len()..(t + 1) * CHANNELS.len()].copy_from_slice(row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_and_order() {
        assert_eq!(INPUT_WIDTH, 64);
        assert_eq!(CHANNELS[0], "memory_ratio");
        assert_eq!(CHANNELS[7], "probe_failed");
    }

    #[test]
    fn statistics_are_the_plain_mean_and_variance_during_warm_up() {
        let mut v = Vectoriser::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            v.push(&[Some(x), None, None, None, None, None, None, None]);
        }
        assert!((v.mean[0] - 2.5).abs() < 1e-12);
        assert!((v.variance[0] - 1.25).abs() < 1e-12, "population variance");
        assert_eq!(v.count[1], 0);
    }

    #[test]
    fn a_jump_stands_out_then_is_learnt() {
        let mut v = Vectoriser::default();
        let row = |x: f64| [Some(x), Some(0.1), None, None, None, None, None, None];
        let mut last = None;
        for t in 0..200 {
            last = v.push(&row(0.30 + 0.001 * (t % 3) as f64));
        }
        let calm = last.unwrap();
        assert!(calm[INPUT_WIDTH - 8].abs() < 2.0);
        let jumped = v.push(&row(0.90)).unwrap();
        assert_eq!(jumped[INPUT_WIDTH - 8], CLIP as f32, "clipped");
        assert_eq!(jumped[INPUT_WIDTH - 7], 0.0, "a constant channel stays at 0");
        assert_eq!(jumped[INPUT_WIDTH - 6], 0.0, "a missing channel is 0");
        // The previous tick moved one row up in the window.
        assert_eq!(jumped[INPUT_WIDTH - 16], calm[INPUT_WIDTH - 8]);
    }

    #[test]
    fn no_vector_until_the_window_is_full() {
        let mut v = Vectoriser::default();
        for _ in 0..WINDOW - 1 {
            assert!(v.push(&[None; 8]).is_none());
        }
        assert_eq!(v.push(&[None; 8]), Some([0.0; INPUT_WIDTH]));
    }
}
