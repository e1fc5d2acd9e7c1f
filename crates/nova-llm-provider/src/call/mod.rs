//! The vocabulary every layer of a call shares: which call it is ([`RequestId`],
//! [`Operation`]), what travels with it ([`CallContext`]), and the events it reports and
//! where they go ([`Event`], the hub of listeners and subscribers).

mod context;
mod event;
mod hub;
mod id;
mod served;

pub(crate) use context::Relay;
pub use context::{CallContext, CallOptions, Extensions};
pub use event::{Completion, Event, EventKind, Failure};
pub(crate) use hub::Hub;
pub use hub::{EventListener, EventReceiver, Received};
pub use id::{Operation, RequestId};
pub use served::ServedBy;
