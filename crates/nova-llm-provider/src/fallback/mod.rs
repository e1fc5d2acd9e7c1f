//! Fallback: an ordered chain of drivers, error-specific chains, circuit breakers; safe
//! for streams.

mod layer;

pub use layer::{FallbackLayer, Target};
