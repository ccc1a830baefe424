//! Time to exhaustion: when will a growing resource reach its limit? Pure arithmetic on a
//! [`Series`].
//!
//! The trend is robust, never a two-point slope: the Theil–Sen estimator (the median of the
//! slopes between every pair of points) with Kendall's τ (how consistently later points are
//! higher) as its confidence. Two shapes of memory are told apart:
//!
//! - **Monotone** (no significant drop in the history): trends are fitted at three scales — the
//!   last 20 s, the last 2 min and the whole history. The longest scale that shows a confident,
//!   material rise is used, unless a shorter scale clearly disagrees with it (its band of
//!   pairwise slopes excludes the longer slope): then growth has sped up or slowed down, and the
//!   recent scale wins. A ramp that levels off into a plateau therefore stops yielding an ETA.
//! - **Sawtooth** (the series dropped sharply at least once, as a garbage collector makes it
//!   do): only the troughs — the low points after each drop — are fitted. A sawtooth whose troughs
//!   do not rise yields nothing, however high its peaks go; a leak under the sawtooth raises the
//!   troughs and yields an ETA for the peaks to reach the limit.
//!
//! A forecast also says whether the growth keeps its pace ([`Course`]): a leak grows at a steady
//! rate, a cache filling towards its size slows down as it gets there. Nothing else tells the
//! two apart before the fill stops, and the fleet needs to (a leak on every task is a bad build,
//! a fill on every task is normal).

use crate::judge::sample::Millis;
use crate::judge::window::{Point, Series};

/// Kendall's τ a trend needs to count.
pub const MIN_CONFIDENCE: f64 = 0.6;
/// A trend must add at least this share of the limit over the span it was fitted on.
pub const MIN_GROWTH_OF_LIMIT: f64 = 0.005;
/// A fall between two consecutive points by this share of the limit is a drop (sawtooth).
pub const DROP_OF_LIMIT: f64 = 0.02;
/// Troughs a sawtooth trend needs.
pub const MIN_TROUGHS: usize = 3;

/// Most points any one fit uses; longer spans are thinned evenly (the fit is quadratic).
const MAX_FIT_POINTS: usize = 48;

/// The course of the growth is read from the means of this many consecutive bins ...
pub const COURSE_BINS: usize = 4;
/// ... of this many milliseconds each, ending at the latest point.
pub const COURSE_BIN_MS: Millis = 5_000;
/// Growth keeps its pace when the rate between each pair of neighbouring bins is within these
/// bounds of the rate between the pair before.
pub const STEADY_PACE: (f64, f64) = (0.9, 1.2);

/// Whether growth keeps its pace over the last [`COURSE_BINS`] × [`COURSE_BIN_MS`].
///
/// Rates are taken between the bins' mean points (mean time, mean value), so a bin that holds
/// one sample more or less than its neighbour does not change them. An approach to a ceiling
/// with time constant τ slows by a factor `exp(-bin/τ)` from one rate to the next (0.88 for
/// τ = 40 s with 5 s bins); a leak keeps its rate (1.0). A fill slower than that is nearly a
/// straight line over 20 s, but it is also too slow to run out within half a minute, which is
/// what the fleet asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Course {
    /// Too little history, a window that does not rise in every bin, growth that speeds up (as
    /// at the onset of any growth), or a sawtooth.
    Unsettled,
    /// Every rate is within [`STEADY_PACE`] of the one before.
    Steady,
    /// Some rate is below [`STEADY_PACE`] of the one before: heading for a ceiling.
    Slowing,
}

impl Course {
    pub fn name(self) -> &'static str {
        match self {
            Course::Unsettled => "unsettled",
            Course::Steady => "steady",
            Course::Slowing => "slowing",
        }
    }
}

/// Where a forecast's trend came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The last 20 seconds.
    Short,
    /// The last 2 minutes.
    Medium,
    /// The whole history.
    Long,
    /// The troughs of a sawtooth.
    Troughs,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::Short => "20s",
            Scale::Medium => "2m",
            Scale::Long => "history",
            Scale::Troughs => "troughs",
        }
    }
}

/// A resource heading for its limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Seconds from `now` until `level` grows to `limit` at `rate_per_second`; 0 if already there.
    pub eta_seconds: f64,
    pub rate_per_second: f64,
    /// Kendall's τ of the fitted points, in [`MIN_CONFIDENCE`, 1].
    pub confidence: f64,
    /// The value the ETA starts from: the latest value, or the latest peak of a sawtooth.
    pub level: f64,
    pub limit: f64,
    pub scale: Scale,
    pub course: Course,
}

/// A robust line through some points.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Trend {
    /// Units per second.
    slope: f64,
    /// Kendall's τ in [-1, 1].
    tau: f64,
    /// The 10th and 90th percentiles of the pairwise slopes.
    band: (f64, f64),
    /// Seconds between the first and last point.
    span: f64,
}

/// Forecasts when the series reaches `limit`, or `None` when it is not heading there with
/// confidence. `now` is the current time (the series' last point may be older).
pub fn forecast(series: &Series, limit: f64, now: Millis) -> Option<Forecast> {
    let last = series.last()?;
    if limit.is_nan() || limit <= 0.0 || series.len() < 6 {
        return None;
    }
    // A series whose whole history moves less than a material trend would add cannot hold
    // one: skip the fits (most series, most of the time).
    let (low, high) =
        series.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.value), hi.max(p.value)));
    if high - low < MIN_GROWTH_OF_LIMIT * limit {
        return None;
    }
    let age = now.saturating_sub(last.at) as f64 / 1000.0;
    let drop = DROP_OF_LIMIT * limit;
    let sawtooth = series.iter().zip(series.iter().skip(1)).any(|(a, b)| a.value - b.value >= drop);

    let (trend, level, scale) = if sawtooth { troughs(series, drop)? } else { monotone(series, limit)? };
    if trend.slope <= 0.0
        || trend.tau < MIN_CONFIDENCE
        || trend.slope * trend.span < MIN_GROWTH_OF_LIMIT * limit
    {
        return None;
    }
    let eta = ((limit - level) / trend.slope - age).max(0.0);
    Some(Forecast {
        eta_seconds: eta,
        rate_per_second: trend.slope,
        confidence: trend.tau,
        level,
        limit,
        scale,
        course: if sawtooth { Course::Unsettled } else { course(series) },
    })
}

/// Reads the [`Course`] of the growth at the end of `series`.
pub fn course(series: &Series) -> Course {
    let (Some(first), Some(last)) = (series.iter().next(), series.last()) else {
        return Course::Unsettled;
    };
    let span = COURSE_BINS as Millis * COURSE_BIN_MS;
    if last.at.saturating_sub(first.at) < span - COURSE_BIN_MS / 5 {
        return Course::Unsettled;
    }
    // Bin `i` holds the points in (end - (BINS - i) × BIN, end - (BINS - i - 1) × BIN].
    let start = last.at.saturating_sub(span);
    // Per bin: the sum of seconds after `start`, the sum of values, the number of points.
    let mut sums = [(0.0, 0.0, 0u32); COURSE_BINS];
    for point in series.iter().rev().take_while(|p| p.at > start) {
        let bin = ((point.at - start - 1) / COURSE_BIN_MS) as usize;
        let (at, value, n) = &mut sums[bin.min(COURSE_BINS - 1)];
        *at += (point.at - start) as f64 / 1000.0;
        *value += point.value;
        *n += 1;
    }
    if sums.iter().any(|&(_, _, n)| n < 2) {
        return Course::Unsettled;
    }
    let means = sums.map(|(at, value, n)| (at / f64::from(n), value / f64::from(n)));
    let rate = |i: usize| (means[i + 1].1 - means[i].1) / (means[i + 1].0 - means[i].0);
    let mut slowing = false;
    for i in 1..COURSE_BINS - 1 {
        let (before, after) = (rate(i - 1), rate(i));
        if before <= 0.0 || after <= 0.0 {
            return Course::Unsettled;
        }
        let pace = after / before;
        if pace > STEADY_PACE.1 {
            return Course::Unsettled;
        }
        slowing |= pace < STEADY_PACE.0;
    }
    if slowing { Course::Slowing } else { Course::Steady }
}

/// Picks the scale for a series without drops; see the module documentation.
fn monotone(series: &Series, limit: f64) -> Option<(Trend, f64, Scale)> {
    let last = series.last()?;
    let fit_since = |seconds: Option<u64>| {
        let since = seconds.map_or(0, |s| last.at.saturating_sub(s * 1000));
        let points = thin(series.since(since));
        (points.len() >= 6 && points[points.len() - 1].at - points[0].at >= 5_000).then(|| theil_sen(&points))
    };
    let scales = [
        (Scale::Long, fit_since(None)),
        (Scale::Medium, fit_since(Some(120))),
        (Scale::Short, fit_since(Some(20))),
    ];
    let qualifies = |trend: &Trend| {
        trend.slope > 0.0
            && trend.tau >= MIN_CONFIDENCE
            && trend.slope * trend.span >= MIN_GROWTH_OF_LIMIT * limit
    };
    let mut pick: Option<(Trend, Scale)> = None;
    for (scale, trend) in scales {
        let Some(trend) = trend else { continue };
        pick = match pick {
            None if qualifies(&trend) => Some((trend, scale)),
            None => None,
            // A shorter scale whose pairwise slopes exclude the longer slope: the rate changed.
            Some((longer, _)) if longer.slope < trend.band.0 || longer.slope > trend.band.1 => {
                Some((trend, scale))
            }
            keep => keep,
        };
    }
    let (trend, scale) = pick?;
    Some((trend, last.value, scale))
}

/// Fits the troughs of a sawtooth; the level is the highest point of the latest full cycle.
fn troughs(series: &Series, drop: f64) -> Option<(Trend, f64, Scale)> {
    let mut troughs: heapless::Vec<Point, { crate::judge::window::HISTORY }> = heapless::Vec::new();
    let mut previous: Option<Point> = None;
    let mut descending = false;
    for point in series.iter() {
        if let Some(prev) = previous {
            if prev.value - point.value >= drop || (descending && point.value < prev.value) {
                descending = true;
            } else if descending {
                // The previous point ended a descent: a trough.
                let _ = troughs.push(prev);
                descending = false;
            }
        }
        previous = Some(point);
    }
    if troughs.len() < MIN_TROUGHS {
        return None;
    }
    let cycle_start = troughs[troughs.len() - 2].at;
    let level = series.since(cycle_start).map(|p| p.value).fold(f64::MIN, f64::max);
    let points = thin(troughs.iter().copied());
    Some((theil_sen(&points), level, Scale::Troughs))
}

/// At most [`MAX_FIT_POINTS`] points, evenly spread, always keeping the last one.
fn thin(points: impl DoubleEndedIterator<Item = Point>) -> heapless::Vec<Point, MAX_FIT_POINTS> {
    let all: heapless::Vec<Point, { crate::judge::window::HISTORY }> = points.collect();
    let mut out = heapless::Vec::new();
    let n = all.len();
    if n <= MAX_FIT_POINTS {
        out.extend(all.iter().copied());
        return out;
    }
    for i in 0..MAX_FIT_POINTS {
        // Indices from 0 to n - 1 inclusive, evenly spaced.
        let index = i * (n - 1) / (MAX_FIT_POINTS - 1);
        let _ = out.push(all[index]);
    }
    out
}

/// The Theil–Sen slope, Kendall's τ and the 10–90 % band of pairwise slopes.
fn theil_sen(points: &[Point]) -> Trend {
    const PAIRS: usize = MAX_FIT_POINTS * (MAX_FIT_POINTS - 1) / 2;
    let mut slopes: heapless::Vec<f64, PAIRS> = heapless::Vec::new();
    let (mut concordant, mut discordant) = (0i64, 0i64);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let dt = (b.at - a.at) as f64 / 1000.0;
            if dt <= 0.0 {
                continue;
            }
            let slope = (b.value - a.value) / dt;
            let _ = slopes.push(slope);
            if slope > 0.0 {
                concordant += 1;
            } else if slope < 0.0 {
                discordant += 1;
            }
        }
    }
    let pairs = slopes.len();
    if pairs == 0 {
        return Trend { slope: 0.0, tau: 0.0, band: (0.0, 0.0), span: 0.0 };
    }
    slopes.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| slopes[((pairs - 1) as f64 * q).round() as usize];
    let median =
        if pairs % 2 == 1 { slopes[pairs / 2] } else { (slopes[pairs / 2 - 1] + slopes[pairs / 2]) / 2.0 };
    Trend {
        slope: median,
        tau: (concordant - discordant) as f64 / pairs as f64,
        band: (at(0.1), at(0.9)),
        span: (points[points.len() - 1].at - points[0].at) as f64 / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1_000_000.0;
    const LIMIT: f64 = 512.0 * MB;

    /// A deterministic noise source (xorshift), in [-1, 1].
    struct Noise(u64);
    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 20_001) as f64 / 10_000.0 - 1.0
        }
    }

    /// Feeds `shape(t_seconds)` once a second for `seconds` and returns the series.
    fn series(seconds: u64, mut shape: impl FnMut(f64) -> f64) -> Series {
        let mut series = Series::new();
        for t in 0..seconds {
            series.push(t * 1000, shape(t as f64));
        }
        series
    }

    fn eta(series: &Series) -> Option<f64> {
        let now = series.last().unwrap().at;
        forecast(series, LIMIT, now).map(|f| f.eta_seconds)
    }

    #[test]
    fn linear_leaks_at_many_rates_with_noise() {
        // (rate MB/s, noise ± MB, seconds observed)
        let cases = [
            (0.1, 0.5, 300),
            (0.5, 2.0, 120),
            (1.0, 4.0, 90),
            (2.0, 4.0, 60),
            (10.0, 8.0, 15),
            (50.0, 10.0, 8),
        ];
        for (rate, noise, seconds) in cases {
            let mut rng = Noise(7);
            let start = 100.0 * MB;
            let s = series(seconds, |t| start + rate * MB * t + noise * MB * rng.next());
            let last = start + rate * MB * (seconds - 1) as f64;
            let truth = (LIMIT - last) / (rate * MB);
            let eta = eta(&s).unwrap_or_else(|| panic!("{rate} MB/s: no forecast"));
            assert!(
                (eta - truth).abs() <= 0.15 * truth + 5.0,
                "{rate} MB/s: eta {eta:.0} s, truth {truth:.0} s"
            );
        }
    }

    #[test]
    fn flat_and_noisy_series_yield_nothing() {
        let mut rng = Noise(3);
        assert_eq!(eta(&series(300, |_| 300.0 * MB + 5.0 * MB * rng.next())), None);
        assert_eq!(eta(&series(300, |_| 435.0 * MB)), None, "plateau at 85 %");
    }

    #[test]
    fn a_ramp_that_levels_off_stops_yielding_an_eta() {
        // 60 s ramp at 4 MB/s from 195 MB to 435 MB (85 %), then flat for 3 minutes.
        let ramp = |t: f64| 195.0 * MB + 4.0 * MB * t.min(60.0);
        assert!(eta(&series(50, ramp)).is_some(), "during the ramp it looks like a leak");
        let mut rng = Noise(11);
        let s = series(240, |t| ramp(t) + 1.0 * MB * rng.next());
        assert_eq!(eta(&s), None, "after the plateau has lasted a while");
    }

    /// The course at every second of `shape` sampled once a second for `seconds`.
    fn courses(seconds: u64, mut shape: impl FnMut(f64) -> f64) -> Vec<Course> {
        let mut s = Series::new();
        (0..seconds)
            .map(|t| {
                s.push(t * 1000, shape(t as f64));
                course(&s)
            })
            .collect()
    }

    #[test]
    fn a_leak_keeps_its_pace_and_a_fill_slows_down() {
        // Flat at 100 MB for 60 s, then growth from t = 60 s.
        let at_onset = |t: f64| (t - 60.0).max(0.0);
        for rate in [0.5, 2.0, 6.0, 20.0] {
            let mut rng = Noise(5);
            let c = courses(150, |t| 100.0 * MB + rate * MB * at_onset(t) + 0.2 * rate * MB * rng.next());
            assert!(c[..60].iter().all(|&c| c == Course::Unsettled), "{rate} MB/s: flat is unsettled");
            assert!(c[60..75].iter().all(|&c| c != Course::Steady), "{rate} MB/s: too new to tell");
            let steady = c[80..].iter().filter(|&&c| c == Course::Steady).count();
            assert!(steady >= 65, "{rate} MB/s: steady on {steady} of 70 s");
        }
        for tau in [5.0, 10.0, 20.0, 30.0, 40.0] {
            let fill = |t: f64| 100.0 * MB + 370.0 * MB * (1.0 - (-at_onset(t) / tau).exp());
            let c = courses(200, fill);
            assert!(!c.contains(&Course::Steady), "a fill with τ {tau} s never looks steady: {c:?}");
            assert!(c[90..].iter().all(|&c| c != Course::Steady));
        }
        // A sawtooth has no course.
        let s = series(120, |t| 200.0 * MB + 6.0 * MB * (t % 30.0) + 0.2 * MB * t);
        assert_eq!(forecast(&s, LIMIT, 119_000).map(|f| f.course), Some(Course::Unsettled));
        assert_eq!(course(&series(10, |t| 100.0 * MB + MB * t)), Course::Unsettled, "too short");
    }

    #[test]
    fn sawtooth_without_growth_yields_nothing() {
        // Rises 6 MB/s for 30 s from 200 MB to 380 MB, collected back to 200 MB.
        let s = series(300, |t| 200.0 * MB + 6.0 * MB * (t % 30.0));
        assert_eq!(eta(&s), None);
    }

    #[test]
    fn a_leak_under_a_sawtooth_follows_the_troughs() {
        // The same sawtooth, with the troughs rising 0.5 MB/s.
        let s = series(240, |t| 100.0 * MB + 0.5 * MB * t + 6.0 * MB * (t % 30.0));
        let f = forecast(&s, LIMIT, 239_000).expect("troughs rise");
        assert_eq!(f.scale, Scale::Troughs);
        assert!((f.rate_per_second - 0.5 * MB).abs() < 0.05 * MB, "rate {}", f.rate_per_second);
        // The latest peak is about 100 + 0.5 * 239 + 174 = 393.5 MB; it reaches 512 MB in ~237 s.
        assert!((f.eta_seconds - 237.0).abs() < 30.0, "eta {}", f.eta_seconds);
    }

    #[test]
    fn an_old_sample_counts_against_the_eta() {
        let s = series(60, |t| 100.0 * MB + 2.0 * MB * t);
        let fresh = forecast(&s, LIMIT, 59_000).unwrap().eta_seconds;
        let aged = forecast(&s, LIMIT, 69_000).unwrap().eta_seconds;
        assert!((fresh - aged - 10.0).abs() < 0.01);
    }

    #[test]
    fn at_the_limit_the_eta_is_zero() {
        let s = series(30, |t| LIMIT - 20.0 * MB + 2.0 * MB * t);
        assert_eq!(eta(&s), Some(0.0));
    }

    #[test]
    fn too_little_data_or_no_limit_yields_nothing() {
        assert_eq!(eta(&series(5, |t| 100.0 * MB + 50.0 * MB * t)), None);
        let s = series(60, |t| 100.0 * MB + 2.0 * MB * t);
        assert_eq!(forecast(&s, 0.0, 59_000), None);
    }
}
