//! The plugin system: an ordered chain of [`Middleware`], a per-call [`CallContext`].

mod context;
mod middleware;
pub(crate) mod streams;

pub(crate) use context::Relay;
pub use context::{CallContext, CallOptions, Extensions, Operation, RequestId};
pub use middleware::{Middleware, Next, OwnedNext};
