//! The HTTP server: one port, GET only.
//!
//! | path       | answers                                                                        |
//! |------------|--------------------------------------------------------------------------------|
//! | `/health`  | 200 `ok`, or 503 with a one-line reason: what the load balancer's check reads  |
//! | `/live`    | 200 while the tick loop advances, 503 once it has stalled for 3 intervals      |
//! | `/metrics` | OpenMetrics text for Prometheus                                                |
//! | `/status`  | JSON: the verdict and its reasons, per-source freshness, the anomaly score and |
//! |            | threshold, the latest readings                                                 |
//!
//! `/health` and `/live` differ on purpose: `/health` says whether this task should get
//! traffic; `/live` says whether vigil itself works. Other methods get 405, other paths 404.
//! The caller binds the listener and chooses when to stop, so tests bind `127.0.0.1:0`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use crate::serve::metrics;
use crate::serve::shared::Shared;
use crate::serve::snapshot::health;
use crate::serve::status::Status;

/// Connections held at once. A new connection beyond it closes the oldest one, so clients
/// that open connections and sit on them cannot make the load balancer's check wait behind them:
/// the check is always the newest connection, answered in microseconds.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's headers, the first or the next on a kept-alive
/// connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The open connections, oldest first (ids only grow).
#[derive(Default)]
struct Connections {
    open: Mutex<BTreeMap<u64, AbortHandle>>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, AbortHandle>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Closes the oldest connection; false if there is none.
    fn close_oldest(&self) -> bool {
        match self.lock().pop_first() {
            Some((_, handle)) => {
                handle.abort();
                true
            }
            None => false,
        }
    }
}

/// Serves until `shutdown` completes. Errors on single connections are dropped.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: impl Future<Output = ()>) {
    let connections = Arc::new(Connections::default());
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => return,
            // Outside the scheduler's budget: on the single-threaded runtime an accept that
            // ran out of budget was polled again only at the next timer (measured: 64
            // connections accepted, then none for 2 s while the backlog filled and /health
            // checks timed out).
            accepted = tokio::task::unconstrained(listener.accept()) => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, or the like: make room, else back off briefly.
                Err(_) => {
                    if !connections.close_oldest() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        while connections.lock().len() >= MAX_CONNECTIONS && connections.close_oldest() {}
        let id = next_id;
        next_id += 1;
        let shared = Arc::clone(&shared);
        let done = Arc::clone(&connections);
        // Hold the lock while spawning so the task cannot finish (and unregister) before it is
        // registered.
        let mut open = connections.lock();
        let task = tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let accept = request.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
                let response = respond(&shared, request.method(), request.uri().path(), accept);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(16 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            done.lock().remove(&id);
        });
        open.insert(id, task.abort_handle());
    }
}

/// Answers one request. Pure apart from reading the shared state and the agent's clock.
/// `accept` is the request's `Accept` header: `/metrics` answers in OpenMetrics when it is
/// asked for, else in the classic Prometheus text format.
pub fn respond(shared: &Shared, method: &Method, path: &str, accept: Option<&str>) -> Response<Full<Bytes>> {
    let known = matches!(path, "/" | "/health" | "/live" | "/metrics" | "/status");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found: try /health, /live, /metrics or /status\n".into());
    }
    if method != Method::GET {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed: use GET\n".into());
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    match path {
        "/health" => {
            let snapshot = shared.snapshot();
            let (code, body) = health(&snapshot.verdict, shared.stopping());
            text(status(code), body + "\n")
        }
        "/live" => {
            let now = shared.now();
            if shared.live(now) {
                text(StatusCode::OK, "live\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "tick loop stalled for more than 3 intervals\n".into())
            }
        }
        "/metrics" => {
            let openmetrics = shared.metrics.encode();
            let (body, content_type) = if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
                (openmetrics, metrics::OPENMETRICS_CONTENT_TYPE)
            } else {
                (metrics::to_prometheus_text(&openmetrics), metrics::TEXT_CONTENT_TYPE)
            };
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            no_store(response)
        }
        "/status" => {
            let body = status_json(shared);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            no_store(response)
        }
        _ => text(
            StatusCode::OK,
            "vigil: /health (load balancer), /live (vigil itself), /metrics (Prometheus), /status (JSON)\n"
                .into(),
        ),
    }
}

/// The document served at `/status`, from the latest snapshot.
pub fn status_json(shared: &Shared) -> Vec<u8> {
    let snapshot = shared.snapshot();
    let document = Status::new(&snapshot, shared.now(), shared.stopping(), shared.interval());
    serde_json::to_vec_pretty(&document).unwrap_or_default()
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    no_store(response)
}

fn no_store(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
