//! The plugin system: an ordered chain of [`Middleware`], each given the rest of the chain
//! ([`Next`]) and the call's [`CallContext`] (from the shared call vocabulary, re-exported
//! here).

pub(crate) mod attempt;
mod middleware;

pub use crate::call::{CallContext, CallOptions, Extensions, Operation, RequestId, ServedBy};
pub use middleware::{Middleware, Next, OwnedNext};
