//! Circuit breaking: per-driver state (closed, open for a cooldown, half-open probe).

mod breaker;

pub use breaker::{Admit, CircuitBreaker, CircuitConfig, Transition};
