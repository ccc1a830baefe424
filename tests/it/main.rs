//! The integration tests: one binary, one module per area.

mod binary;
mod fake_tmds;
mod server;
mod tmds;
