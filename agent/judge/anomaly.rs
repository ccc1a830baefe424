//! The autoencoder's score turned into evidence: a per-task threshold calibrated from the
//! score distribution during warm-up, and a run of ticks above it. Pure: no I/O, no clock.
//!
//! The rule, per task:
//!
//! 1. The first [`Calibration::settle`] scores are ignored: the running normalisation of
//!    [`crate::judge::vector`] is still learning the task and its first inputs are extreme.
//! 2. The next [`Calibration::ticks`] scores go into a fixed log-spaced [`Histogram`]
//!    ([`BINS`] counters, whatever the number of ticks).
//! 3. The threshold is the upper edge of the bin holding the [`Calibration::quantile`] of those
//!    scores, times [`Calibration::margin`]. It then stays fixed for the life of the task.
//! 4. After calibration, [`Calibration::enter`] scores in a row above the threshold make the
//!    task anomalous; [`Calibration::exit`] scores in a row at or below it end that.
//!
//! An anomaly is evidence for `degraded` only: a pattern never seen in warm-up is not proof
//! that a fresh task would do better.

use crate::judge::vector::{INPUT_WIDTH, Raw, Vectoriser};

/// Log-spaced bins per decade of score.
const BINS_PER_DECADE: usize = 20;
/// The smallest score the histogram tells apart; lower ones share the first bin.
const LOWEST: f64 = 1e-6;
/// Decades covered from [`LOWEST`]: up to 1e6; higher scores share the last bin.
const DECADES: usize = 12;
/// Counters in the calibration histogram.
pub const BINS: usize = BINS_PER_DECADE * DECADES;

/// How the threshold is calibrated and how an anomaly is confirmed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// Scores ignored at the start, while the per-task normalisation settles.
    pub settle: u32,
    /// Scores the threshold is calibrated from.
    pub ticks: u32,
    /// The quantile of the calibration scores the threshold starts from.
    pub quantile: f64,
    /// The threshold is the quantile times this.
    pub margin: f64,
    /// Consecutive scores above the threshold before the task counts as anomalous.
    pub enter: u32,
    /// Consecutive scores at or below the threshold before it no longer does.
    pub exit: u32,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration { settle: 60, ticks: 300, quantile: 0.99, margin: 2.0, enter: 3, exit: 3 }
    }
}

/// Counts of scores in fixed log-spaced bins: bounded memory for any number of scores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u32; BINS],
    total: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: [0; BINS], total: 0 }
    }
}

impl Histogram {
    /// Counts one score. Scores that are not finite are not counted.
    pub fn add(&mut self, score: f64) {
        if !score.is_finite() {
            return;
        }
        self.counts[bin(score)] += 1;
        self.total += 1;
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// The upper edge of the bin that holds the `q` quantile: at least the true quantile and
    /// less than one bin width (12 %) above it, except past the last bin. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * f64::from(self.total)).ceil() as u32).max(1);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(upper_edge(i));
            }
        }
        Some(upper_edge(BINS - 1))
    }
}

fn bin(score: f64) -> usize {
    if score <= LOWEST {
        return 0;
    }
    let position = (score / LOWEST).log10() * BINS_PER_DECADE as f64;
    (position.floor() as usize).min(BINS - 1)
}

fn upper_edge(bin: usize) -> f64 {
    LOWEST * 10f64.powf((bin + 1) as f64 / BINS_PER_DECADE as f64)
}

/// What the detector made of one score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The model's reconstruction error for this tick.
    pub score: f64,
    /// The calibrated threshold; `None` while calibrating.
    pub threshold: Option<f64>,
    /// Consecutive scores above the threshold, up to this one.
    pub above: u32,
    /// Whether the task counts as anomalous after this score.
    pub anomalous: bool,
}

impl Reading {
    /// The score over the calibrated threshold; `None` while calibrating.
    pub fn ratio(&self) -> Option<f64> {
        self.threshold.filter(|t| *t > 0.0).map(|t| self.score / t)
    }

    /// The score mapped to [0, 1]: `score / (score + threshold)`, so 0.5 at the threshold;
    /// 0 while calibrating.
    pub fn unit_score(&self) -> f64 {
        match self.threshold {
            Some(threshold) if self.score > 0.0 => self.score / (self.score + threshold),
            _ => 0.0,
        }
    }

    /// Whether this reading is evidence for the verdict: calibrated and anomalous (including
    /// the scores back under the threshold before the anomaly ends).
    pub fn is_evidence(&self) -> bool {
        self.threshold.is_some() && self.anomalous
    }
}

/// The evidence line of an anomalous reading.
impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let score = significant(self.score);
        let threshold = significant(self.threshold.unwrap_or(f64::NAN));
        if self.above > 0 {
            write!(
                f,
                "reconstruction error {score} above the calibrated threshold {threshold} for {} ticks",
                self.above
            )
        } else {
            write!(
                f,
                "reconstruction error {score} back under the calibrated threshold {threshold} after an anomaly"
            )
        }
    }
}

/// Three significant digits, for evidence texts.
fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let digits = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}

/// The calibration, then the run of scores above the threshold.
#[derive(Debug, Clone)]
pub struct Detector {
    config: Calibration,
    /// Scores seen, including the ones ignored while settling.
    seen: u32,
    histogram: Histogram,
    threshold: Option<f64>,
    above: u32,
    below: u32,
    anomalous: bool,
}

impl Detector {
    pub fn new(config: Calibration) -> Detector {
        Detector {
            config,
            seen: 0,
            histogram: Histogram::default(),
            threshold: None,
            above: 0,
            below: 0,
            anomalous: false,
        }
    }

    pub fn config(&self) -> &Calibration {
        &self.config
    }

    pub fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    /// Scores counted towards the threshold so far.
    pub fn calibrated_ticks(&self) -> u32 {
        self.histogram.total()
    }

    /// Takes one score. A score that is not finite counts for nothing. The reading of a score
    /// taken for calibration has no threshold, even for the score that completes it.
    pub fn observe(&mut self, score: f64) -> Reading {
        if score.is_finite() {
            self.seen = self.seen.saturating_add(1);
            match self.threshold {
                None => {
                    if self.seen > self.config.settle {
                        self.histogram.add(score);
                        if self.histogram.total() >= self.config.ticks.max(1) {
                            let quantile = self.histogram.quantile(self.config.quantile).unwrap_or(LOWEST);
                            self.threshold = Some(quantile * self.config.margin);
                        }
                    }
                    return Reading { score, threshold: None, above: 0, anomalous: false };
                }
                Some(threshold) => {
                    if score > threshold {
                        self.above = self.above.saturating_add(1);
                        self.below = 0;
                    } else {
                        self.below = self.below.saturating_add(1);
                        self.above = 0;
                    }
                    if !self.anomalous && self.above >= self.config.enter {
                        self.anomalous = true;
                    } else if self.anomalous && self.below >= self.config.exit {
                        self.anomalous = false;
                    }
                }
            }
        }
        Reading { score, threshold: self.threshold, above: self.above, anomalous: self.anomalous }
    }
}

/// Something that scores one input vector: the model, or a stand-in in tests.
pub trait Scorer {
    type Error;

    /// The reconstruction error of `input`.
    fn score(&mut self, input: &[f32; INPUT_WIDTH]) -> Result<f32, Self::Error>;
}

/// The whole path from raw channels to a reading, shared by the agent and `vigil replay`:
/// [`Vectoriser`] → [`Scorer`] → [`Detector`].
#[derive(Debug, Clone)]
pub struct Scoring<S> {
    vectoriser: Vectoriser,
    scorer: S,
    detector: Detector,
}

impl<S: Scorer> Scoring<S> {
    pub fn new(scorer: S, calibration: Calibration) -> Scoring<S> {
        Scoring { vectoriser: Vectoriser::default(), scorer, detector: Detector::new(calibration) }
    }

    /// Takes one tick's raw channels. `Ok(None)` until the vectoriser's window is full.
    pub fn push(&mut self, raw: &Raw) -> Result<Option<Reading>, S::Error> {
        let Some(input) = self.vectoriser.push(raw) else { return Ok(None) };
        let score = self.scorer.score(&input)?;
        Ok(Some(self.detector.observe(f64::from(score))))
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    pub fn scorer(&self) -> &S {
        &self.scorer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration(settle: u32, ticks: u32) -> Calibration {
        Calibration { settle, ticks, quantile: 0.9, margin: 2.0, enter: 2, exit: 3 }
    }

    #[test]
    fn bins_are_log_spaced_and_bounded() {
        assert_eq!(bin(0.0), 0);
        assert_eq!(bin(1e-9), 0);
        assert_eq!(bin(1e-6 * 1.01), 0);
        assert_eq!(bin(1e-5 * 1.01), BINS_PER_DECADE);
        assert_eq!(bin(1e300), BINS - 1);
        for score in [1e-5, 3.3e-3, 0.42, 1.0, 17.0, 9e5] {
            let edge = upper_edge(bin(score));
            assert!(edge > score && edge <= score * 10f64.powf(1.0 / 20.0) * 1.000_001, "{score} {edge}");
        }
    }

    #[test]
    fn quantiles_round_up_to_a_bin_edge() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        for i in 1..=100 {
            histogram.add(f64::from(i) / 100.0);
        }
        histogram.add(f64::NAN);
        assert_eq!(histogram.total(), 100);
        let cases = [(0.5, 0.50), (0.9, 0.90), (0.99, 0.99), (1.0, 1.0), (0.0, 0.01)];
        for (q, exact) in cases {
            let got = histogram.quantile(q).unwrap();
            assert!(got >= exact && got < exact * 1.123, "q {q}: {got} for {exact}");
        }
    }

    #[test]
    fn settles_then_calibrates_then_confirms_and_clears() {
        let mut detector = Detector::new(calibration(2, 10));
        // Two wild scores while the normalisation settles are not part of the calibration.
        for score in [50.0, 40.0] {
            assert_eq!(detector.observe(score).threshold, None);
        }
        // Ten calibration scores: 0.1 .. 1.0; the 0.9 quantile is 0.9, doubled.
        for i in 1..=10 {
            assert_eq!(detector.observe(f64::from(i) / 10.0).threshold, None, "calibrating");
        }
        let threshold = detector.threshold().expect("calibrated after 10 scores");
        assert!((1.8..1.8 * 1.123).contains(&threshold), "{threshold}");
        assert_eq!(detector.calibrated_ticks(), 10);

        let sequence = [
            (1.0, 0, false),
            (5.0, 1, false),
            (1.0, 0, false),
            (5.0, 1, false),
            (5.0, 2, true),
            (9.0, 3, true),
            (1.0, 0, true),
            (1.0, 0, true),
            (5.0, 1, true),
            (1.0, 0, true),
            (1.0, 0, true),
            (1.0, 0, false),
        ];
        for (i, (score, above, anomalous)) in sequence.into_iter().enumerate() {
            let reading = detector.observe(score);
            assert_eq!((reading.above, reading.anomalous), (above, anomalous), "step {i}: {score}");
            assert_eq!(reading.is_evidence(), anomalous, "step {i}");
        }
    }

    #[test]
    fn scores_that_are_not_finite_count_for_nothing() {
        let mut detector = Detector::new(calibration(0, 2));
        detector.observe(f64::NAN);
        detector.observe(f64::INFINITY);
        assert_eq!(detector.calibrated_ticks(), 0);
        detector.observe(0.5);
        detector.observe(0.5);
        assert_eq!(detector.threshold().map(|t| t > 1.0), Some(true));
    }

    #[test]
    fn a_zero_calibration_still_gives_a_positive_threshold() {
        let mut detector = Detector::new(calibration(0, 3));
        for _ in 0..3 {
            detector.observe(0.0);
        }
        let threshold = detector.threshold().unwrap();
        assert!(threshold > 0.0 && threshold < 1e-5, "{threshold}");
        assert!(!detector.observe(0.0).anomalous);
    }

    #[test]
    fn unit_score_is_zero_while_calibrating_and_half_at_the_threshold() {
        let calibrating = Reading { score: 3.0, threshold: None, above: 0, anomalous: false };
        assert_eq!(calibrating.unit_score(), 0.0);
        let at = Reading { threshold: Some(3.0), ..calibrating };
        assert_eq!(at.unit_score(), 0.5);
        let far = Reading { score: 3e9, ..at };
        assert!(far.unit_score() < 1.0 && far.unit_score() > 0.999);
        assert_eq!(Reading { score: 0.0, ..at }.unit_score(), 0.0);
    }

    #[test]
    fn evidence_reads_as_a_sentence() {
        let reading = Reading { score: 0.8421, threshold: Some(0.2519), above: 4, anomalous: true };
        assert_eq!(
            reading.to_string(),
            "reconstruction error 0.842 above the calibrated threshold 0.252 for 4 ticks"
        );
        assert_eq!(significant(123.456), "123");
        assert_eq!(significant(0.000_123_4), "0.000123");
    }

    /// Scores the mean of the newest row, so a jump in channel 0 shows up at once.
    struct NewestRow;

    impl Scorer for NewestRow {
        type Error = std::convert::Infallible;

        fn score(&mut self, input: &[f32; INPUT_WIDTH]) -> Result<f32, Self::Error> {
            Ok(input[INPUT_WIDTH - 8..].iter().map(|x| x * x).sum::<f32>() / 8.0 + 0.01)
        }
    }

    #[test]
    fn the_pipeline_scores_once_the_window_is_full_and_flags_a_jump() {
        let mut pipeline = Scoring::new(NewestRow, calibration(10, 50));
        let row = |x: f64| [Some(x), None, None, None, None, None, None, None];
        let mut readings = Vec::new();
        for t in 0..200 {
            readings.push(pipeline.push(&row(0.5 + 0.01 * (t % 5) as f64)).unwrap());
        }
        assert!(readings[..crate::judge::vector::WINDOW - 1].iter().all(Option::is_none));
        assert!(readings[crate::judge::vector::WINDOW - 1].is_some());
        assert!(readings.iter().flatten().all(|r| !r.anomalous));
        assert!(pipeline.detector().threshold().is_some());
        let jumped: Vec<Reading> = (0..3).map(|_| pipeline.push(&row(0.9)).unwrap().unwrap()).collect();
        assert!(!jumped[0].anomalous && jumped[1].anomalous, "{jumped:?}");
        assert!(jumped[1].unit_score() > 0.5);
    }
}
