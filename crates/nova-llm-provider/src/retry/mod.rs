//! Retry: retryable errors only, backoff with full jitter, `Retry-After`, deadlines and a
//! budget; safe for streams.

mod budget;
mod layer;

pub use budget::RetryBudget;
pub use layer::RetryLayer;
