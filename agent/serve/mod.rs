//! The edge that serves the world: the published snapshot, the HTTP server and the Prometheus
//! registry. It only reads what the tick loop publishes.

pub mod agent_check;
pub mod metrics;
pub mod server;
pub mod shared;
pub mod snapshot;
pub mod status;
