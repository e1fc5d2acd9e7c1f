//! Not for users (cargo feature `internals`): the stream decoder and the wire format's
//! encoder and decoder on their own, for this crate's benchmarks. No stability promise.

use nova_llm_core::{ChatRequest, ChatResponse, LlmError, ResponseMetadata};

pub use crate::decode::{ChunkDecoder, Item};
pub use nova_llm_http::Decoder;

/// Decodes a `:generateContent` body.
///
/// # Errors
/// A decode error for anything that is not a Gemini response.
pub fn decode_generate(body: &[u8]) -> Result<ChatResponse, LlmError> {
    crate::wire::decode_generate(body, ResponseMetadata::default())
}

/// Encodes a request body as the driver would send it.
///
/// # Errors
/// As the driver.
pub fn encode_generate(request: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    crate::wire::encode_generate(request)
}
