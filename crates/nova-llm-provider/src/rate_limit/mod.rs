//! Rate limiting: requests and tokens per window, calls in flight, fair waiting or fail
//! fast, adaptive slowdown; counts behind a backend trait.

mod backend;
mod layer;
mod limited;
mod queue;
mod signals;

pub use backend::{Acquire, MemoryWindows, RateLimitBackend, Ticket, WindowLimits};
pub use layer::{Mode, RateLimitLayer};
