//! The load client: a fixed request rate (changing by phases), bounded in count, time and
//! requests in flight, recording every request's start time, latency and outcome.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::http;
use crate::scenario::LoadShape;

/// A request that got an answer has its HTTP status; the others one of these codes.
pub const TRANSPORT_ERROR: u16 = 0;
pub const TIMED_OUT: u16 = 1;
pub const OVER_CAP: u16 = 2;

/// One request's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Unix seconds when it was sent.
    pub t: f64,
    pub latency_ms: f32,
    pub status: u16,
}

impl Outcome {
    /// Success means a 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The rate in force `elapsed` seconds into the run.
pub fn rate_at(shape: &LoadShape, elapsed: f64) -> f64 {
    shape.phases.iter().rfind(|phase| phase.at_s <= elapsed).map_or(shape.rate, |phase| phase.rate)
}

/// Sends requests to `url` for `duration` from `start` (Unix seconds), then waits for the
/// stragglers (at most the request timeout) and returns every outcome in send order.
pub async fn run(url: &str, shape: &LoadShape, start: f64, duration: f64) -> Vec<Outcome> {
    let client = http::client(shape.max_in_flight.min(256));
    let timeout = Duration::from_millis(shape.timeout_ms);
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(Semaphore::new(shape.max_in_flight.max(1)));
    let origin = tokio::time::Instant::now();
    let mut next = 0.0f64;
    // The hard bound on requests: the highest rate for the whole duration.
    let highest = shape.phases.iter().map(|p| p.rate).fold(shape.rate, f64::max);
    let bound = (highest * duration).ceil() as u64 + 1;
    let mut sent = 0u64;
    while next < duration && sent < bound {
        let rate = rate_at(shape, next);
        if rate <= 0.0 {
            next += 0.1;
            continue;
        }
        tokio::time::sleep_until(origin + Duration::from_secs_f64(next)).await;
        next += 1.0 / rate;
        sent += 1;
        let t = start + origin.elapsed().as_secs_f64();
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            outcomes.lock().expect("outcomes lock").push(Outcome { t, latency_ms: 0.0, status: OVER_CAP });
            continue;
        };
        let (client, url, outcomes) = (client.clone(), url.to_owned(), Arc::clone(&outcomes));
        tokio::spawn(async move {
            let began = tokio::time::Instant::now();
            let status = match http::call(&client, "GET", &url, "", timeout).await {
                Ok(answer) => answer.status,
                Err(http::CallError::Timeout) => TIMED_OUT,
                Err(_) => TRANSPORT_ERROR,
            };
            let latency_ms = began.elapsed().as_secs_f32() * 1000.0;
            outcomes.lock().expect("outcomes lock").push(Outcome { t, latency_ms, status });
            drop(permit);
        });
    }
    let total = shape.max_in_flight.max(1) as u32;
    let _ = tokio::time::timeout(timeout + Duration::from_secs(1), in_flight.acquire_many(total)).await;
    let mut all = std::mem::take(&mut *outcomes.lock().expect("outcomes lock"));
    all.sort_by(|a, b| a.t.total_cmp(&b.t));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::LoadPhase;

    #[test]
    fn phases_change_the_rate() {
        let shape = LoadShape {
            rate: 100.0,
            phases: vec![LoadPhase { at_s: 10.0, rate: 500.0 }, LoadPhase { at_s: 20.0, rate: 100.0 }],
            ..LoadShape::default()
        };
        assert_eq!(rate_at(&shape, 0.0), 100.0);
        assert_eq!(rate_at(&shape, 10.0), 500.0);
        assert_eq!(rate_at(&shape, 25.0), 100.0);
    }

    #[test]
    fn success_is_2xx() {
        let outcome = |status| Outcome { t: 0.0, latency_ms: 0.0, status };
        assert!(outcome(200).ok());
        assert!(!outcome(503).ok());
        assert!(!outcome(TIMED_OUT).ok());
    }
}
