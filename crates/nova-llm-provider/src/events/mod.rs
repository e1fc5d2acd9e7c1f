//! The `events` middleware: the lifecycle of every call as typed events, exactly one
//! terminal event per call, and the `tracing` span around each call. The event types and
//! their delivery are the shared call vocabulary, re-exported here.

mod layer;

pub use crate::call::{
    Completion, Event, EventKind, EventListener, EventReceiver, Failure, Received,
};
pub use layer::EventsLayer;
