//! The integration tests: one binary, one module per area.

mod bad_input;
mod binary;
mod ecs;
mod fake_tmds;
mod fleet;
mod model;
mod offline;
mod server;
mod shipping;
mod tmds;
