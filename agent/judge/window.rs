//! Fixed-capacity history: the last [`HISTORY`] points of one series, oldest first.
//!
//! Memory is fixed at construction (a `heapless::Deque` inline), so a series costs the same after
//! a week as after a minute. At the default 1 s tick, [`HISTORY`] points are five minutes.

use heapless::Deque;

use crate::judge::sample::Millis;

/// Points kept per series.
pub const HISTORY: usize = 300;

/// One observation: when, and what value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub at: Millis,
    pub value: f64,
}

/// A time-ordered series that forgets its oldest point when full.
#[derive(Debug, Clone, Default)]
pub struct Series {
    points: Deque<Point, HISTORY>,
}

impl Series {
    pub fn new() -> Series {
        Series { points: Deque::new() }
    }

    /// Appends a point. A point not newer than the last one is ignored (a repeated sample), as is
    /// a value that is not finite.
    pub fn push(&mut self, at: Millis, value: f64) -> bool {
        if !value.is_finite() || self.points.back().is_some_and(|last| at <= last.at) {
            return false;
        }
        if self.points.is_full() {
            self.points.pop_front();
        }
        // Cannot fail: a slot was just freed if needed.
        let _ = self.points.push_back(Point { at, value });
        true
    }

    pub fn clear(&mut self) {
        self.points.clear();
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn last(&self) -> Option<Point> {
        self.points.back().copied()
    }

    pub fn first(&self) -> Option<Point> {
        self.points.front().copied()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Point> + '_ {
        self.points.iter().copied()
    }

    /// The points at or after `since`, oldest first.
    pub fn since(&self, since: Millis) -> impl DoubleEndedIterator<Item = Point> + '_ {
        self.iter().filter(move |point| point.at >= since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_points_in_order() {
        let mut series = Series::new();
        for i in 0..(HISTORY as u64 + 10) {
            assert!(series.push(i * 1000, i as f64));
        }
        assert_eq!(series.len(), HISTORY);
        assert_eq!(series.first().unwrap().value, 10.0);
        assert_eq!(series.last().unwrap().at, (HISTORY as u64 + 9) * 1000);
        let values: Vec<f64> = series.since((HISTORY as u64 + 7) * 1000).map(|p| p.value).collect();
        assert_eq!(values, [307.0, 308.0, 309.0]);
    }

    #[test]
    fn ignores_repeats_and_non_finite_values() {
        let mut series = Series::new();
        assert!(series.push(1000, 1.0));
        assert!(!series.push(1000, 2.0), "same time: a repeated sample");
        assert!(!series.push(500, 2.0), "older");
        assert!(!series.push(2000, f64::NAN));
        assert!(series.push(2000, 2.0));
        assert_eq!(series.len(), 2);
    }
}
