//! `vigil probe`: the container health check command for images without curl.

use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::sources::http::{self, ClientOptions};

/// Asks the local agent's `/health`; exits 0 on 200 within 2 s, else 1.
pub async fn probe(config: &Config) -> ExitCode {
    let mut address = config.listen;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{address}/health");
    let wait = Duration::from_secs(2);
    let client = match http::client(ClientOptions { connect_timeout: wait, timeout: wait, idle_per_host: 0 })
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("vigil probe: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(&url).send().await {
        Ok(response) => {
            let code = response.status();
            let body = response.text().await.unwrap_or_default();
            println!("{} {}", code.as_u16(), body.trim_end());
            if code == reqwest::StatusCode::OK { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(error) => {
            println!("no answer from {url}: {error}");
            ExitCode::FAILURE
        }
    }
}
