//! Timeouts: per attempt, to the first content of a stream, and between stream events.

mod layer;

pub use layer::TimeoutLayer;
