//! The core: one tick's readings in, a verdict out. Pure: no I/O, never reads the clock (time
//! comes in with the sample), every gap an `Option`.

pub mod anomaly;
pub mod evidence;
pub mod features;
pub mod fleet;
pub mod forecast;
pub mod model;
pub mod pipeline;
pub mod restarts;
pub mod sample;
pub mod vector;
pub mod verdict;
pub mod window;
