//! An in-process fake of the ECS Task Metadata Service v4 for integration tests.
//!
//! It listens on `127.0.0.1:0`, serves `${base_url}/task` and `${base_url}/task/stats` (every
//! other path is 404), and can be re-scripted while it runs:
//!
//! ```ignore
//! let tmds = FakeTmds::with_fixtures(
//!     "fargate-task-real-2025-02.json",
//!     "fargate-task-stats-real-2025-02.json",
//! )
//! .await;
//! let mut client = TmdsClient::new(&tmds.base_url())?;
//! // Every later /task/stats request fails...
//! tmds.set_reply(Endpoint::Stats, Reply::Status(500));
//! // ...and the next /task request is throttled once, then served normally.
//! tmds.queue(Endpoint::Task, [Reply::TooManyRequests { retry_after_secs: Some(3) }]);
//! assert_eq!(tmds.requests(Endpoint::Task), 0);
//! ```
//!
//! Each request takes the next queued [`Reply`] for its endpoint if there is one, else the
//! standing reply set by [`FakeTmds::set_reply`] (at first [`Reply::Body`]). Bodies come from
//! [`FakeTmds::set_task`] and [`FakeTmds::set_stats`] (or their `_fixture` forms, which read
//! `tests/fixtures/tmds/`). The server stops accepting connections when the `FakeTmds` is
//! dropped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Sleep;

/// The opaque part of the base URL, shaped like the real one (`/v4/<id>`).
const BASE_PATH: &str = "/v4/0123456789abcdef0123456789abcdef-1234567890";

/// The two documents the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `${base_url}/task`.
    Task,
    /// `${base_url}/task/stats`.
    Stats,
}

impl Endpoint {
    fn index(self) -> usize {
        match self {
            Endpoint::Task => 0,
            Endpoint::Stats => 1,
        }
    }
}

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the endpoint's current body.
    Body,
    /// 200 with the endpoint's current body, sent after this delay (nothing is sent before).
    Delayed(Duration),
    /// 200 with headers and the first half of the body at once, the rest after this delay.
    StalledBody(Duration),
    /// This status with an empty body.
    Status(u16),
    /// 429, with a `Retry-After` header in seconds when given.
    TooManyRequests { retry_after_secs: Option<u64> },
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with this many bytes of JSON-looking filler, streamed in 64 KiB chunks, with a
    /// `Content-Length` header only when `with_length` is set.
    Oversize { bytes: usize, with_length: bool },
    /// 200 with the endpoint's current body, one byte per this interval.
    Trickle(Duration),
    /// 200 with a `Content-Length` for the whole body, the first half of it, then the
    /// connection is torn down.
    ResetMidBody,
}

/// A running fake TMDS. See the module documentation.
pub struct FakeTmds {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: Mutex<JoinHandle<()>>,
}

struct State {
    bodies: [Bytes; 2],
    standing: [Reply; 2],
    queued: [VecDeque<Reply>; 2],
    requests: [usize; 2],
    /// Open connections, ended by [`FakeTmds::go_away`].
    connections: Vec<tokio::task::AbortHandle>,
}

/// The bytes of `tests/fixtures/tmds/<name>`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/tmds/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read fixture {name}: {e}"))
}

impl FakeTmds {
    /// Starts a fake that answers both endpoints with `{}` until told otherwise.
    pub async fn start() -> FakeTmds {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State {
            bodies: [Bytes::from_static(b"{}"), Bytes::from_static(b"{}")],
            standing: [Reply::Body, Reply::Body],
            queued: [VecDeque::new(), VecDeque::new()],
            requests: [0, 0],
            connections: Vec::new(),
        }));
        let accept = Mutex::new(tokio::spawn(accept_loop(listener, Arc::clone(&state))));
        FakeTmds { addr, state, accept }
    }

    /// Stops listening and ends every open connection: connecting is refused until
    /// [`FakeTmds::come_back`].
    pub fn go_away(&self) {
        self.accept.lock().expect("accept task").abort();
        for connection in self.lock().connections.drain(..) {
            connection.abort();
        }
    }

    /// Listens again on the same address.
    pub async fn come_back(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("bind the same address again");
        *self.accept.lock().expect("accept task") =
            tokio::spawn(accept_loop(listener, Arc::clone(&self.state)));
    }

    /// Starts a fake serving two files of `tests/fixtures/tmds/`.
    pub async fn with_fixtures(task: &str, stats: &str) -> FakeTmds {
        let fake = FakeTmds::start().await;
        fake.set_task_fixture(task);
        fake.set_stats_fixture(stats);
        fake
    }

    /// The value to put in `ECS_CONTAINER_METADATA_URI_V4`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}{BASE_PATH}", self.addr)
    }

    /// Sets the body of `/task`.
    pub fn set_task(&self, body: impl Into<Bytes>) {
        self.lock().bodies[Endpoint::Task.index()] = body.into();
    }

    /// Sets the body of `/task/stats`.
    pub fn set_stats(&self, body: impl Into<Bytes>) {
        self.lock().bodies[Endpoint::Stats.index()] = body.into();
    }

    /// Sets the body of `/task` to a file of `tests/fixtures/tmds/`.
    pub fn set_task_fixture(&self, name: &str) {
        self.set_task(fixture(name));
    }

    /// Sets the body of `/task/stats` to a file of `tests/fixtures/tmds/`.
    pub fn set_stats_fixture(&self, name: &str) {
        self.set_stats(fixture(name));
    }

    /// Sets how every later request to `endpoint` is answered, once the queue is empty.
    pub fn set_reply(&self, endpoint: Endpoint, reply: Reply) {
        self.lock().standing[endpoint.index()] = reply;
    }

    /// Queues replies for the next requests to `endpoint`, one per request, in order.
    pub fn queue(&self, endpoint: Endpoint, replies: impl IntoIterator<Item = Reply>) {
        self.lock().queued[endpoint.index()].extend(replies);
    }

    /// How many requests `endpoint` has received so far, whatever the reply.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        self.lock().requests[endpoint.index()]
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake tmds state")
    }
}

impl Drop for FakeTmds {
    fn drop(&mut self) {
        self.go_away();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let serving = Arc::clone(&state);
        let connection = tokio::spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&serving), request));
            // A client that gives up mid-answer (a timeout test) ends the connection with an
            // error, which is expected here.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        let mut state = state.lock().expect("fake tmds state");
        state.connections.retain(|c| !c.is_finished());
        state.connections.push(connection.abort_handle());
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    request: Request<Incoming>,
) -> Result<Response<FakeBody>, Infallible> {
    let endpoint = match request.uri().path().strip_prefix(BASE_PATH) {
        Some("/task") => Endpoint::Task,
        Some("/task/stats") => Endpoint::Stats,
        _ => return Ok(status(StatusCode::NOT_FOUND)),
    };
    let (reply, body) = {
        let mut state = state.lock().expect("fake tmds state");
        let i = endpoint.index();
        state.requests[i] += 1;
        let reply = state.queued[i].pop_front().unwrap_or_else(|| state.standing[i].clone());
        (reply, state.bodies[i].clone())
    };

    let response = match reply {
        Reply::Body => ok(FakeBody::Full(Some(body))),
        Reply::Delayed(delay) => {
            tokio::time::sleep(delay).await;
            ok(FakeBody::Full(Some(body)))
        }
        Reply::StalledBody(delay) => {
            let half = body.len() / 2;
            ok(FakeBody::Stalled {
                first: Some(body.slice(..half)),
                pause: Box::pin(tokio::time::sleep(delay)),
                rest: Some(body.slice(half..)),
            })
        }
        Reply::Status(code) => status(StatusCode::from_u16(code).expect("a valid status code")),
        Reply::TooManyRequests { retry_after_secs } => {
            let mut response = status(StatusCode::TOO_MANY_REQUESTS);
            if let Some(secs) = retry_after_secs {
                response.headers_mut().insert("retry-after", secs.to_string().parse().expect("header value"));
            }
            response
        }
        Reply::Garbage => ok(FakeBody::Full(Some(Bytes::from_static(b"{\"Cluster\": \"half a document")))),
        Reply::Oversize { bytes, with_length } => {
            ok(FakeBody::Filler { chunk: Bytes::from(vec![b' '; 64 * 1024]), remaining: bytes, with_length })
        }
        Reply::Trickle(every) => {
            ok(FakeBody::Trickle { rest: body, every, pause: Box::pin(tokio::time::sleep(Duration::ZERO)) })
        }
        Reply::ResetMidBody => {
            let half = body.len() / 2;
            ok(FakeBody::Broken { first: Some(body.slice(..half)), whole: body.len() as u64 })
        }
    };
    Ok(response)
}

fn ok(body: FakeBody) -> Response<FakeBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert("content-type", "application/json".parse().expect("header value"));
    response
}

fn status(code: StatusCode) -> Response<FakeBody> {
    let mut response = Response::new(FakeBody::Full(None));
    *response.status_mut() = code;
    response
}

/// The bodies the fake can send: whole, filler in chunks, stalled half-way, a byte at a time, or
/// broken off half-way.
enum FakeBody {
    Full(Option<Bytes>),
    Filler { chunk: Bytes, remaining: usize, with_length: bool },
    Stalled { first: Option<Bytes>, pause: Pin<Box<Sleep>>, rest: Option<Bytes> },
    Trickle { rest: Bytes, every: Duration, pause: Pin<Box<Sleep>> },
    Broken { first: Option<Bytes>, whole: u64 },
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let frame = |data: Bytes| Some(Ok(Frame::data(data)));
        match self.get_mut() {
            FakeBody::Full(data) => Poll::Ready(data.take().and_then(frame)),
            FakeBody::Filler { chunk, remaining, .. } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(chunk.len());
                *remaining -= n;
                Poll::Ready(frame(chunk.slice(..n)))
            }
            FakeBody::Stalled { first, pause, rest } => {
                if let Some(first) = first.take() {
                    return Poll::Ready(frame(first));
                }
                match pause.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(rest.take().and_then(frame)),
                    Poll::Pending => Poll::Pending,
                }
            }
            FakeBody::Trickle { rest, every, pause } => {
                if rest.is_empty() {
                    return Poll::Ready(None);
                }
                match pause.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        pause.as_mut().reset(tokio::time::Instant::now() + *every);
                        Poll::Ready(frame(rest.split_to(1)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            FakeBody::Broken { first, .. } => match first.take() {
                Some(first) => Poll::Ready(frame(first)),
                None => Poll::Ready(Some(Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))),
            },
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FakeBody::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            FakeBody::Filler { remaining, with_length: true, .. } => SizeHint::with_exact(*remaining as u64),
            FakeBody::Filler { .. } => SizeHint::default(),
            FakeBody::Stalled { first, rest, .. } => {
                let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
                SizeHint::with_exact(len(first) + len(rest))
            }
            FakeBody::Trickle { rest, .. } => SizeHint::with_exact(rest.len() as u64),
            FakeBody::Broken { whole, .. } => SizeHint::with_exact(*whole),
        }
    }
}
