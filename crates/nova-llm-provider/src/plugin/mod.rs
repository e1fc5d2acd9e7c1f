//! The plugin system: an ordered chain of [`Middleware`], each given the rest of the chain
//! ([`Next`]) and the call's [`CallContext`] (from the shared call vocabulary, re-exported
//! here).

mod middleware;
pub(crate) mod streams;

pub use crate::call::{CallContext, CallOptions, Extensions, Operation, RequestId};
pub use middleware::{Middleware, Next, OwnedNext};
