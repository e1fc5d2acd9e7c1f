//! The OpenAI wire format, the only place that knows its JSON: request bodies out
//! ([`request`]), responses and error bodies in ([`response`]), stream chunks in
//! ([`chunk`]).

mod chunk;
mod request;
mod response;

pub(crate) use chunk::{WireChunk, decode_chunk, delta_text, error_from_value};
pub use request::MaxTokensField;
pub(crate) use request::{encode_chat, encode_completion};
pub(crate) use response::{WireError, WireErrorBody, decode_chat, decode_completion};
