//! vigil-fault: the fault suite — emulated ECS tasks behind HAProxy, real faults, and the
//! baseline, threshold and vigil arms compared on the same scenario.
//!
//! Code map (pure parts first, then the edge that creates and drives the world):
//!
//! - [`calendar`]: Unix seconds to RFC 3339, the suite's one calendar.
//! - [`fault`]: the demo app's fault spec language.
//! - [`scenario`]: scenario files (TOML), their defaults and validation.
//! - [`inherit`]: which fault a replacement task starts with (shared faults).
//! - [`report`]: timeline → summary figures, expectation checks, the Markdown table.
//! - [`restart`]: the task init's restart policy and exit decisions.
//! - [`tmds`]: the metadata emulator's documents, from cgroup and `/proc` readings.
//! - [`http`]: HTTP/1 server loop and client helpers shared by every program of the suite.
//! - [`demo`]: the demo "transactions" service and its fault effects.
//! - [`init`]: PID 1 of a task — containers, restart policy, metadata emulator, event log.
//! - [`threshold`]: the threshold arm's memory-threshold health endpoint.
//! - [`sys`]: commands, PIDs, the cleanup registry, the stale sweep.
//! - [`cgroup`], [`net`]: a task's cgroups; the harness and task namespaces.
//! - [`task`]: launching and stopping a task from the harness.
//! - [`haproxy`], [`prometheus`], [`load`]: the load balancer, the scraper, the client.
//! - [`watch`]: the health-port prober and per-second task samples (memory, vigil's state and forecasts) for the plots.
//! - [`plot`]: the PNG timeline of a scenario.
//! - [`scheduler`]: the ECS service scheduler emulation, a pure state machine (observations in,
//!   actions out).
//! - [`injection`]: applying and clearing faults, the noisy neighbour.
//! - [`writers`]: the timeline and record index files of an arm.
//! - [`arm`]: one arm of one scenario: the sequence that drives all of the above.

pub mod calendar;
pub mod fault;
pub mod inherit;
pub mod report;
pub mod restart;
pub mod scenario;
pub mod scheduler;
pub mod tmds;

pub mod arm;
pub mod cgroup;
pub mod demo;
pub mod haproxy;
pub mod http;
pub mod init;
pub mod injection;
pub mod load;
pub mod net;
pub mod plot;
pub mod prometheus;
pub mod sys;
pub mod task;
pub mod threshold;
pub mod watch;
pub mod writers;
