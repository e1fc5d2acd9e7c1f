//! Not for users (cargo feature `internals`): the stream decoder and the wire format's
//! encoders and decoders on their own, for this crate's benchmarks and fuzz targets. No
//! stability promise.

use nova_llm_core::{ChatRequest, ChatResponse, CompletionResponse, LlmError, ResponseMetadata};

pub use crate::decode::{ChunkDecoder, Item};

/// Decodes a `/chat/completions` body.
///
/// # Errors
/// A decode error for anything that is not a chat completion.
pub fn decode_chat(body: &[u8]) -> Result<ChatResponse, LlmError> {
    crate::wire::decode_chat(body, ResponseMetadata::default())
}

/// Decodes a `/completions` body.
///
/// # Errors
/// A decode error for anything that is not a completion.
pub fn decode_completion(body: &[u8]) -> Result<CompletionResponse, LlmError> {
    crate::wire::decode_completion(body, ResponseMetadata::default())
}

/// Encodes a chat request body as the driver would send it.
///
/// # Errors
/// As the driver.
pub fn encode_chat(request: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    crate::wire::encode_chat(
        request,
        "gpt-4o-mini",
        false,
        crate::MaxTokensField::MaxCompletionTokens,
    )
}
