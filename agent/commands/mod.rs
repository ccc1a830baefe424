//! The subcommands besides the agent itself: recorded and NAB files through the same core path
//! offline.

pub mod replay;
