//! vigil: a sidecar that takes an ECS task out of its load balancer before the task fails.
//!
//! Code map (core first: pure, no I/O, no clock; then the edge that reads and serves the world):
//!
//! - [`sample`]: one tick of raw readings, each source an `Option`.
//! - [`window`]: fixed-capacity history of one series.
//! - [`forecast`]: time to exhaustion from a robust trend.
//! - [`features`]: readings → per-resource histories, forecasts and surge signals.
//! - [`restarts`]: crash loops, OOM restarts, shrinking uptimes.
//! - [`vector`]: the autoencoder's input, normalised per task.
//! - [`anomaly`]: the autoencoder's score → a per-task calibrated threshold → evidence.
//! - [`verdict`]: evidence → healthy / degraded / draining, with reasons and hysteresis.
//! - [`config`]: every environment variable, typed and validated at start-up.
//! - [`log`]: one JSON (or text) line per event on stdout.
//! - [`procfs`], [`cgroup`]: pure parsers for `/proc` and cgroup files, and their readers.
//! - [`sockdiag`]: netlink `sock_diag`: the listening TCP sockets of vigil's own network namespace.
//! - [`sampler`]: finds the watched processes and reads them, their cgroups and sockets.
//! - [`tmds`]: the Task Metadata Service v4 client and its JSON types.
//! - [`probe`]: the app's own health URL.
//! - [`model`]: the autoencoder, run with tract (the only module that knows tract).
//! - [`replay`]: recorded and NAB files through the same path offline (`vigil vectors`, `vigil replay`).
//! - [`metrics`]: the Prometheus registry and what each tick publishes to it.
//! - [`server`]: `/health`, `/live`, `/metrics`, `/status`.
//! - [`agent`]: the tick loop that ties them together.
#![forbid(unsafe_code)]

pub mod judge;

pub mod commands;
pub mod config;
pub mod log;
pub mod serve;
pub mod sources;
pub mod tick;
