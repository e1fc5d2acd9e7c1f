//! Not for users (cargo feature `internals`): the stream decoder and the wire format's
//! encoder and decoder on their own, for this crate's benchmarks. No stability promise.

use nova_llm_core::{ChatRequest, ChatResponse, LlmError, ResponseMetadata};

pub use crate::decode::{EventDecoder, Item};

/// Decodes a `/v1/messages` body.
///
/// # Errors
/// A decode error for anything that is not a Messages API message.
pub fn decode_message(body: &[u8]) -> Result<ChatResponse, LlmError> {
    crate::wire::decode_message(body, ResponseMetadata::default())
}

/// Encodes a request body as the driver would send it.
///
/// # Errors
/// As the driver.
pub fn encode_messages(request: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    crate::wire::encode_messages(
        request,
        crate::DEFAULT_MODEL,
        false,
        crate::DEFAULT_MAX_TOKENS,
    )
}
