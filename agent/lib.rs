//! vigil: a sidecar that takes an ECS task out of its load balancer before the task fails.
//!
//! Code map, one way: [`sources`] read the world into a sample, [`judge`] turns it into a
//! verdict (pure: no I/O, no clock), [`tick`] runs one after the other and publishes a snapshot,
//! [`serve`] answers from the snapshot. Nothing upstream knows what is downstream.
//!
//! - [`judge`]: [`judge::sample`] (one tick of readings), [`judge::window`], [`judge::forecast`],
//!   [`judge::features`] (histories, forecasts, surge signals), [`judge::restarts`],
//!   [`judge::vector`] and [`judge::model`] (the autoencoder, the only module that knows tract),
//!   [`judge::anomaly`] (score → calibrated threshold), [`judge::evidence`] (typed evidence from
//!   the rules), [`judge::verdict`] (evidence → healthy / degraded / draining with hysteresis),
//!   [`judge::fleet`] (the local verdict weighed against the service's other tasks),
//!   [`judge::pipeline`] (all of it, in order, once a tick).
//! - [`sources`]: `/proc`, cgroups, netlink `sock_diag`, the sampler that combines them, the
//!   Task Metadata Service client, the app's health URL, the fleet view from the service's
//!   Prometheus.
//! - [`tick`]: the loop: clock, sources, pipeline, log, record ([`record`]), publish.
//! - [`serve`]: the published [`serve::snapshot`], the `/status` schema, the Prometheus
//!   registry, the HTTP server.
//! - [`commands`]: the command line: `vigil`, `vigil probe`, `vigil vectors`, `vigil replay`.
//! - [`config`]: every environment variable, typed and validated at start-up; [`log`]: one line
//!   per event, and the rate limit for repeated errors; [`time`]: RFC 3339 and the calendar.
#![forbid(unsafe_code)]

pub mod judge;

pub mod commands;
pub mod config;
pub mod log;
pub mod record;
pub mod serve;
pub mod sources;
pub mod tick;
pub mod time;
