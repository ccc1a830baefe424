//! The one way vigil builds an HTTP client: no proxy (every call is to the task's own network),
//! no redirects, vigil's user agent, a connect and a total timeout on every request, and a small
//! idle pool.

use std::time::Duration;

/// How a client waits and how many idle connections it keeps per host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    /// The whole request, body included.
    pub timeout: Duration,
    pub idle_per_host: usize,
}

/// A client for the metadata service, the app's health URL or vigil's own `/health`.
pub fn client(options: ClientOptions) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .pool_max_idle_per_host(options.idle_per_host)
        .build()
}
