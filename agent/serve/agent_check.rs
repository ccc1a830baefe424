//! HAProxy's agent check (`agent-check agent-port N` on a `server` line): HAProxy connects over
//! TCP, reads one line and closes. vigil answers each connection with the verdict in the agent
//! protocol and closes it, reading nothing:
//!
//! | verdict                 | line             | HAProxy                                      |
//! |-------------------------|------------------|----------------------------------------------|
//! | healthy                 | `up ready 100%`  | serving, full weight; clears an earlier drain |
//! | degraded                | `up ready 50%`   | serving at half weight                       |
//! | draining, or stopping   | `drain`          | no new sessions, existing ones finish        |
//!
//! After `drain` only `ready` brings a server back (`up` alone leaves it drained), hence
//! `ready` in every serving line. Weights are relative to the server's configured weight.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::judge::verdict::State;
use crate::serve::shared::Shared;

/// How long one answer may take to write before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The agent protocol's line for a state.
pub fn line(state: State, stopping: bool) -> &'static str {
    match (state, stopping) {
        (_, true) | (State::Draining, _) => "drain\n",
        (State::Degraded, false) => "up ready 50%\n",
        (State::Healthy, false) => "up ready 100%\n",
    }
}

/// Answers every connection on `listener` until `shutdown` resolves. Each connection costs one
/// short write and is closed at once, so idle clients hold nothing.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = tokio::task::unconstrained(listener.accept()) => accepted,
        };
        let Ok((mut stream, _)) = accepted else {
            // Out of descriptors or an aborted handshake: try again shortly, never spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let text = line(shared.snapshot().verdict.state, shared.stopping());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
                stream.write_all(text.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serving_line_says_ready_and_draining_says_drain() {
        assert_eq!(line(State::Healthy, false), "up ready 100%\n");
        assert_eq!(line(State::Degraded, false), "up ready 50%\n");
        assert_eq!(line(State::Draining, false), "drain\n");
        assert_eq!(line(State::Healthy, true), "drain\n");
    }
}
