//! Small HTTP/1 helpers on hyper: a server loop over a bound listener and a client with timeouts.
//!
//! Every program of the suite (the demo app, the task init's metadata emulator, the threshold
//! sidecar and the harness itself) speaks plain HTTP/1 on loopback or inside namespaces the suite
//! created, so one small module serves them all.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The body type every handler answers with.
pub type Body = Full<Bytes>;

/// The largest request or response body any part of the suite reads.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A pooled HTTP/1 client.
pub type HttpClient = Client<HttpConnector, Body>;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("request timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("response body unreadable: {0}")]
    Body(String),
    #[error("bad request: {0}")]
    Build(String),
}

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

/// Builds a plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

/// Builds a JSON response.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

/// Reads a request body up to [`MAX_BODY_BYTES`]; a larger or broken body reads as empty.
pub async fn read_body(request: Request<Incoming>) -> Bytes {
    match Limited::new(request.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

/// Serves every connection accepted on `listener` with `handler` until the process ends.
///
/// An accept error (for example EMFILE when the process leaks file descriptors) is not fatal:
/// the loop waits a little and tries again, as a real server would.
pub async fn serve<H, F>(listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let handler = Arc::clone(&handler);
                async move { Ok::<_, Infallible>(handler(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Builds a pooled client; `max_idle_per_host` bounds kept-alive connections.
pub fn client(max_idle_per_host: usize) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle_per_host)
        .pool_idle_timeout(Duration::from_secs(5))
        .build(connector)
}

/// Sends one request and reads the whole answer, all under `timeout`.
pub async fn call(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: &str,
    timeout: Duration,
) -> Result<Answer, CallError> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| CallError::Build(e.to_string()))?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| CallError::Connect(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| CallError::Body(e.to_string()))?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(CallError::Timeout))
}

/// A one-off GET without pooling, for probes that must not reuse a connection.
pub async fn get_fresh(url: &str, timeout: Duration) -> Result<Answer, CallError> {
    let client = client(0);
    call(&client, "GET", url, "", timeout).await
}
