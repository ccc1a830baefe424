//! The edge that reads the world: `/proc`, cgroups, netlink `sock_diag`, the Task Metadata
//! Service and the app's health URL. Each source turns its foreign format into the core's
//! [`sample`](crate::judge::sample) types and reports a failure as a typed error, never a failed
//! tick.

pub mod cgroup;
pub mod files;
pub mod fleet;
pub mod http;
pub mod probe;
pub mod procfs;
pub mod sampler;
pub mod sockdiag;
pub mod tmds;
