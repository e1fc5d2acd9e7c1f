//! Whole responses and error bodies, read leniently: unknown fields ignored, missing ones
//! defaulted, `null` accepted wherever a compatible server might send it.

use nova_llm_core::{
    ChatResponse, CompletionResponse, FinishReason, LlmError, Message, ResponseMetadata, Role,
    ToolCall, Usage,
};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null` becomes the default, like a missing field.
pub(super) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string, a number, or anything else rendered as text (error codes come as all three).
pub(super) fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

#[derive(Deserialize, Default)]
pub(crate) struct WireUsage {
    #[serde(default, deserialize_with = "nullable")]
    prompt_tokens: u64,
    #[serde(default, deserialize_with = "nullable")]
    completion_tokens: u64,
    #[serde(default, deserialize_with = "nullable")]
    total_tokens: u64,
    #[serde(default, deserialize_with = "nullable")]
    prompt_tokens_details: TokenDetails,
    #[serde(default, deserialize_with = "nullable")]
    completion_tokens_details: TokenDetails,
}

/// A breakdown the server may leave out (most OpenAI-compatible servers do): `None` then,
/// not zero.
#[derive(Deserialize, Default)]
struct TokenDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn into_usage(self) -> Usage {
        let total = if self.total_tokens == 0 {
            self.prompt_tokens + self.completion_tokens
        } else {
            self.total_tokens
        };
        let mut u = Usage::new(self.prompt_tokens, self.completion_tokens);
        u.total_tokens = total;
        u.cache_read_tokens = self.prompt_tokens_details.cached_tokens;
        u.reasoning_tokens = self.completion_tokens_details.reasoning_tokens;
        u
    }
}

/// The `error` object of an error body or stream payload.
#[derive(Deserialize, Default, Debug, Clone)]
pub(crate) struct WireError {
    #[serde(default, deserialize_with = "loose_string")]
    pub(crate) message: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "loose_string")]
    pub(crate) kind: Option<String>,
    #[serde(default, deserialize_with = "loose_string")]
    pub(crate) param: Option<String>,
    #[serde(default, deserialize_with = "loose_string")]
    pub(crate) code: Option<String>,
}

/// What an error body may look like: `{"error": {...}}`, `{"error": "text"}`,
/// `{"message": "..."}` or `{"detail": "..."}` (FastAPI-based servers).
#[derive(Deserialize)]
pub(crate) struct WireErrorBody {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, deserialize_with = "loose_string")]
    message: Option<String>,
    #[serde(default)]
    detail: Option<Value>,
}

impl WireErrorBody {
    /// The error described by the body, if it describes one.
    pub(crate) fn into_error(self) -> Option<WireError> {
        match self.error {
            Some(Value::Object(obj)) => serde_json::from_value(Value::Object(obj)).ok(),
            Some(Value::String(s)) => Some(WireError {
                message: Some(s),
                ..WireError::default()
            }),
            _ => {
                let message = self.message.or_else(|| match self.detail {
                    Some(Value::String(s)) => Some(s),
                    Some(v @ (Value::Array(_) | Value::Object(_))) => Some(v.to_string()),
                    _ => None,
                })?;
                Some(WireError {
                    message: Some(message),
                    ..WireError::default()
                })
            }
        }
    }
}

#[derive(Deserialize)]
struct WireChatResponse {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    model: String,
    #[serde(default, deserialize_with = "nullable")]
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    system_fingerprint: Option<String>,
}

#[derive(Deserialize)]
struct WireChoice {
    #[serde(default, deserialize_with = "nullable")]
    message: WireMessageIn,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireMessageIn {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    tool_calls: Vec<WireToolCallIn>,
    #[serde(default)]
    function_call: Option<WireFunctionIn>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireToolCallIn {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    function: WireFunctionIn,
}

#[derive(Deserialize, Default)]
struct WireFunctionIn {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "loose_arguments")]
    arguments: String,
}

/// Arguments are a JSON string on OpenAI; some servers send the object itself.
pub(super) fn loose_arguments<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    })
}

/// Text of a `content` field: a string, or an array of parts whose text parts are joined.
pub(super) fn content_text(content: Option<Value>) -> String {
    match content {
        Some(Value::String(s)) => s,
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                other => other.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

pub(super) fn decode_err(what: &str, e: serde_json::Error) -> LlmError {
    LlmError::decode(format!(
        "{what} is not valid JSON of the expected shape ({e})"
    ))
    .with_source(e)
}

/// Parses a response body. A body that is valid UTF-8 as a whole (every real one) is parsed
/// as text, which spares serde_json a UTF-8 check of every string and key one by one (about
/// a fifth of the time for a small reply); any other body takes the byte parser, which
/// reports where it goes wrong.
fn from_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// Parses a `/chat/completions` response body.
pub(crate) fn decode_chat(
    body: &[u8],
    metadata: ResponseMetadata,
) -> Result<ChatResponse, LlmError> {
    let wire: WireChatResponse = from_body(body).map_err(|e| decode_err("the chat response", e))?;
    let Some(choice) = wire.choices.into_iter().next() else {
        return Err(LlmError::decode("the chat response has no choices"));
    };
    let m = choice.message;
    let mut text = content_text(m.content);
    let refused = m.refusal.as_ref().is_some_and(|r| !r.is_empty());
    if refused && text.is_empty() {
        text = m.refusal.clone().unwrap_or_default();
    }
    let mut message = Message::new(m.role.map_or(Role::Assistant, Role::from), text);
    message.name = m.name;
    message.tool_calls = m
        .tool_calls
        .into_iter()
        .map(|c| ToolCall::new(c.id, c.function.name, c.function.arguments))
        .collect();
    if let Some(f) = m.function_call
        && message.tool_calls.is_empty()
    {
        message
            .tool_calls
            .push(ToolCall::new("", f.name, f.arguments));
    }
    if refused {
        message = message.with_metadata("refusal", true);
    }
    let reasoning = m
        .reasoning_content
        .or(m.reasoning)
        .filter(|r| !r.is_empty());
    let mut metadata = metadata;
    if metadata.system_fingerprint.is_none() {
        metadata.system_fingerprint = wire.system_fingerprint;
    }
    let mut response = ChatResponse::new(message)
        .with_id(wire.id)
        .with_model(wire.model)
        .with_usage(wire.usage.map(WireUsage::into_usage).unwrap_or_default())
        .with_metadata(metadata);
    // No finish reason: as in a stream that ends with `[DONE]` alone (see `decode`).
    if let Some(raw) = choice.finish_reason {
        response = response.with_raw_finish_reason(raw);
    } else if !response.message.tool_calls.is_empty() {
        response.finish_reason = FinishReason::ToolCalls;
    } else {
        response.finish_reason = FinishReason::Unspecified;
    }
    if refused {
        response.finish_reason = FinishReason::Refusal;
    }
    if let Some(r) = reasoning {
        response = response.with_reasoning(r);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct WireCompletionResponse {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    model: String,
    #[serde(default, deserialize_with = "nullable")]
    choices: Vec<WireCompletionChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireCompletionChoice {
    #[serde(default, deserialize_with = "nullable")]
    text: String,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// Parses a `/completions` response body.
pub(crate) fn decode_completion(
    body: &[u8],
    metadata: ResponseMetadata,
) -> Result<CompletionResponse, LlmError> {
    let wire: WireCompletionResponse =
        from_body(body).map_err(|e| decode_err("the completion response", e))?;
    let Some(choice) = wire.choices.into_iter().next() else {
        return Err(LlmError::decode("the completion response has no choices"));
    };
    let mut r = ChatResponse::from_text(choice.text)
        .with_id(wire.id)
        .with_model(wire.model)
        .with_usage(wire.usage.map(WireUsage::into_usage).unwrap_or_default())
        .with_metadata(metadata);
    r.finish_reason = FinishReason::Unspecified;
    if let Some(raw) = choice.finish_reason {
        r = r.with_raw_finish_reason(raw);
    }
    Ok(CompletionResponse::from(r))
}
