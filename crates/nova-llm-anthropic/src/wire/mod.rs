//! The only place that knows the Messages API's JSON: request bodies out
//! ([`request`]), replies, usage and error bodies in ([`response`]), stream events in
//! ([`event`]).

mod event;
mod request;
mod response;

pub(crate) use event::{BlockDelta, BlockStart, MessageDelta, MessageStart, StreamError};
pub(crate) use request::encode_messages;
pub(crate) use response::{
    WireBlock, WireError, WireErrorBody, WireUsage, decode_message, tool_arguments,
};
