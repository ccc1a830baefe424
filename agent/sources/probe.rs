//! Probes the app's own health URL over the task's localhost, once per tick.
//!
//! Any HTTP answer counts as an answer (its status and latency are reported); only a refused
//! connection or no answer within the timeout is a miss. A miss is an observation about the
//! app, not an error of vigil's. With the fleet view on, a miss is re-probed at once, with a
//! shorter timeout, so one lost connection or one pause is not reported: there one reported
//! miss is enough to call the app unresponsive.

use std::time::{Duration, Instant};

use crate::judge::sample::ProbeReading;
use crate::sources::http::{self, ClientOptions};

/// The most of an answer's body that is read (and discarded) so the connection can be reused.
const BODY_READ_LIMIT: usize = 64 * 1024;
/// The longest a re-probe after a miss may take.
const REPROBE_TIMEOUT: Duration = Duration::from_millis(300);

pub struct AppProbe {
    client: reqwest::Client,
    url: String,
    /// The timeout of the re-probe after a miss; `None`: no re-probe.
    reprobe_timeout: Option<Duration>,
}

impl AppProbe {
    /// `timeout` bounds the whole probe, connection included; `reprobe` re-probes a miss (with
    /// a fleet view, where one miss counts).
    pub fn new(url: &str, timeout: Duration, reprobe: bool) -> Result<AppProbe, reqwest::Error> {
        let client = http::client(ClientOptions { connect_timeout: timeout, timeout, idle_per_host: 1 })?;
        Ok(AppProbe {
            client,
            url: url.to_string(),
            reprobe_timeout: reprobe.then(|| timeout.min(REPROBE_TIMEOUT)),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One probe, and on a miss one quick re-probe if set up: the reading is the re-probe's.
    /// `on_miss` is called when the first probe missed, before the re-probe (the fleet view is
    /// asked for meanwhile).
    pub async fn probe(&self, on_miss: impl FnOnce()) -> ProbeReading {
        match (self.once(None).await, self.reprobe_timeout) {
            (ProbeReading::Refused | ProbeReading::TimedOut, Some(timeout)) => {
                on_miss();
                self.once(Some(timeout)).await
            }
            (reading, _) => reading,
        }
    }

    async fn once(&self, timeout: Option<Duration>) -> ProbeReading {
        let started = Instant::now();
        let mut request = self.client.get(&self.url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return miss(&error),
        };
        let status = response.status().as_u16();
        let mut read = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read > BODY_READ_LIMIT {
                        break;
                    }
                }
                Ok(None) => break,
                // Headers arrived: the app answered, even if the body then stalled.
                Err(_) => break,
            }
        }
        ProbeReading::Answered { status, latency_ms: started.elapsed().as_millis() as u64 }
    }
}

fn miss(error: &reqwest::Error) -> ProbeReading {
    if error.is_timeout() {
        ProbeReading::TimedOut
    } else {
        // Refused, reset, or closed before answering: nothing is serving.
        ProbeReading::Refused
    }
}
