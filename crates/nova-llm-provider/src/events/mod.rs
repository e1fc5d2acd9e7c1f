//! Lifecycle events of every call: typed, delivered to listeners and subscribers, exactly
//! one terminal event per call; and the `tracing` span around each call.

mod event;
mod hub;
mod layer;

pub use event::{Completion, Event, EventKind, Failure};
pub(crate) use hub::Hub;
pub use hub::{EventListener, EventReceiver, Received};
pub use layer::EventsLayer;
