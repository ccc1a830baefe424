//! The integration tests: one binary, one module per area.

mod fake_tmds;
mod tmds;
