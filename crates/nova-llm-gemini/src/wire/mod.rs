//! The only place that knows the Gemini API's JSON: request bodies out ([`request`]),
//! responses and stream chunks in ([`response`], one shape for both).

mod request;
mod response;

pub(crate) use request::encode_generate;
pub(crate) use response::{Reader, decode_generate, parse};
