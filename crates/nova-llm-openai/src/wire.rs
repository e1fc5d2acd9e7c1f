//! The OpenAI wire format: request bodies out, responses and stream chunks in.
//!
//! Requests are written strictly (unset parameters omitted, never `null`); responses are
//! read leniently (unknown fields ignored, missing ones defaulted, `null` accepted wherever a
//! compatible server might send it).

use std::borrow::Cow;
use std::fmt;

use nova_llm_core::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, ContentPart, FinishReason,
    LlmError, Message, ModelParams, ResponseFormat, ResponseMetadata, Role, ToolCall, ToolChoice,
    Usage,
};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Which field carries the output-token limit.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_completion_tokens` (OpenAI's current name; required by reasoning models).
    MaxCompletionTokens,
    /// `max_tokens` (the name most compatible servers read).
    MaxTokens,
}

impl MaxTokensField {
    fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            MaxTokensField::MaxTokens => "max_tokens",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct WireParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: &'a Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

impl<'a> WireParams<'a> {
    fn new(p: &'a ModelParams) -> Self {
        WireParams {
            temperature: p.temperature,
            top_p: p.top_p,
            stop: &p.stop,
            seed: p.seed,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            user: p.user.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct WireChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(flatten)]
    params: WireParams<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'a str,
    /// `None` is written as `null` on purpose: an assistant row with only tool calls.
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Null(Option<()>),
    Text(String),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImage<'a> },
}

#[derive(Serialize)]
struct WireImage<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionOut<'a>,
}

#[derive(Serialize)]
struct WireFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireResponseFormat<'a> {
    JsonObject,
    JsonSchema { json_schema: WireJsonSchema<'a> },
}

#[derive(Serialize)]
struct WireJsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionDef<'a>,
}

#[derive(Serialize)]
struct WireFunctionDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

fn wire_message(m: &Message) -> WireMessage<'_> {
    let only_text = m.content.iter().all(|p| p.as_text().is_some());
    let content = if m.content.is_empty() {
        if m.role == Role::Assistant && !m.tool_calls.is_empty() {
            WireContent::Null(None)
        } else {
            WireContent::Text(String::new())
        }
    } else if only_text {
        WireContent::Text(m.text())
    } else {
        WireContent::Parts(
            m.content
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(WirePart::Text { text }),
                    ContentPart::Image { url, detail } => Some(WirePart::ImageUrl {
                        image_url: WireImage {
                            url,
                            detail: detail.as_deref(),
                        },
                    }),
                    _ => None,
                })
                .collect(),
        )
    };
    WireMessage {
        role: m.role.as_str(),
        content,
        name: m.name.as_deref(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| WireToolCallOut {
                id: &c.id,
                kind: "function",
                function: WireFunctionOut {
                    name: &c.name,
                    arguments: &c.arguments,
                },
            })
            .collect(),
        tool_call_id: m.tool_call_id.as_deref(),
    }
}

fn wire_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => Value::from("auto"),
        ToolChoice::None => Value::from("none"),
        ToolChoice::Required => Value::from("required"),
        ToolChoice::Tool(name) => {
            serde_json::json!({"type": "function", "function": {"name": name}})
        }
        _ => Value::from("auto"),
    }
}

fn finish_body(
    body: &impl Serialize,
    max_tokens: Option<(MaxTokensField, u32)>,
    extras: &Map<String, Value>,
) -> Result<Vec<u8>, LlmError> {
    let encode_err = |e: serde_json::Error| {
        LlmError::invalid_request("the request could not be encoded as JSON").with_source(e)
    };
    if max_tokens.is_none() && extras.is_empty() {
        return serde_json::to_vec(body).map_err(encode_err);
    }
    let mut value = serde_json::to_value(body).map_err(encode_err)?;
    if let Value::Object(map) = &mut value {
        if let Some((field, n)) = max_tokens {
            map.insert(field.as_str().to_owned(), Value::from(n));
        }
        // Provider extras are merged last: they win over every field above.
        for (k, v) in extras {
            map.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&value).map_err(encode_err)
}

/// The JSON body of `POST /chat/completions`.
pub(crate) fn encode_chat(
    request: &ChatRequest,
    model: &str,
    stream: bool,
    max_tokens_field: MaxTokensField,
) -> Result<Vec<u8>, LlmError> {
    let response_format = match &request.response_format {
        ResponseFormat::JsonObject => Some(WireResponseFormat::JsonObject),
        ResponseFormat::JsonSchema(s) => Some(WireResponseFormat::JsonSchema {
            json_schema: WireJsonSchema {
                name: &s.name,
                schema: &s.schema,
                strict: s.strict,
                description: s.description.as_deref(),
            },
        }),
        _ => None,
    };
    let body = WireChatRequest {
        model,
        messages: request.dialog.visible().map(wire_message).collect(),
        params: WireParams::new(&request.params),
        response_format,
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                function: WireFunctionDef {
                    name: &t.name,
                    description: t.description.as_deref(),
                    parameters: &t.parameters,
                    strict: t.strict,
                },
            })
            .collect(),
        tool_choice: request.tool_choice.as_ref().map(wire_tool_choice),
        parallel_tool_calls: request.parallel_tool_calls,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let max = request.params.max_tokens.map(|n| (max_tokens_field, n));
    finish_body(&body, max, &request.extras)
}

#[derive(Serialize)]
struct WireCompletionRequest<'a> {
    model: &'a str,
    prompt: &'a str,
    #[serde(flatten)]
    params: WireParams<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

/// The JSON body of `POST /completions` (the legacy endpoint always calls it `max_tokens`).
pub(crate) fn encode_completion(
    request: &CompletionRequest,
    model: &str,
    stream: bool,
) -> Result<Vec<u8>, LlmError> {
    let body = WireCompletionRequest {
        model,
        prompt: &request.prompt,
        params: WireParams::new(&request.params),
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let max = request
        .params
        .max_tokens
        .map(|n| (MaxTokensField::MaxTokens, n));
    finish_body(&body, max, &request.extras)
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// `null` becomes the default, like a missing field.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string, a number, or anything else rendered as text (error codes come as all three).
fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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

#[derive(Deserialize, Default)]
struct TokenDetails {
    #[serde(default, deserialize_with = "nullable")]
    cached_tokens: u64,
    #[serde(default, deserialize_with = "nullable")]
    reasoning_tokens: u64,
}

impl WireUsage {
    pub(crate) fn into_usage(self) -> Usage {
        let total = if self.total_tokens == 0 {
            self.prompt_tokens + self.completion_tokens
        } else {
            self.total_tokens
        };
        let mut u = Usage::new(self.prompt_tokens, self.completion_tokens)
            .with_cached_input(self.prompt_tokens_details.cached_tokens)
            .with_reasoning_output(self.completion_tokens_details.reasoning_tokens);
        u.total_tokens = total;
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
fn loose_arguments<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    })
}

/// Text of a `content` field: a string, or an array of parts whose text parts are joined.
fn content_text(content: Option<Value>) -> String {
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

fn decode_err(what: &str, e: serde_json::Error) -> LlmError {
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
        response.finish_reason = FinishReason::ContentFilter;
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

// Stream chunks ----------------------------------------------------------------------------

/// One stream chunk. Every chunk repeats the id, the model and the fingerprint, which only
/// the first one's `Start` event keeps: they are borrowed from the chunk's text (no
/// allocation per chunk) unless they contain escapes.
#[derive(Deserialize)]
pub(crate) struct WireChunk<'a> {
    #[serde(default, borrow, deserialize_with = "nullable_str")]
    pub(crate) id: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "nullable_str")]
    pub(crate) model: Cow<'a, str>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) choices: Vec<WireChunkChoice>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
    #[serde(default, borrow, deserialize_with = "nullable_str")]
    pub(crate) system_fingerprint: Cow<'a, str>,
}

/// A string borrowed from the input when it can be (no escapes), else copied; `null` is
/// empty, like a missing field.
fn nullable_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(Text)
}

#[derive(Deserialize)]
pub(crate) struct WireChunkChoice {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) index: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) delta: WireDelta,
    /// Legacy completions stream `text` instead of a delta.
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct WireDelta {
    #[serde(default)]
    pub(crate) content: Option<Value>,
    #[serde(default)]
    pub(crate) refusal: Option<String>,
    #[serde(default)]
    pub(crate) reasoning_content: Option<String>,
    #[serde(default)]
    pub(crate) reasoning: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) tool_calls: Vec<WireToolCallDelta>,
    #[serde(default)]
    pub(crate) function_call: Option<WireFunctionDelta>,
}

#[derive(Deserialize, Default)]
pub(crate) struct WireToolCallDelta {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) index: usize,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) function: WireFunctionDelta,
}

#[derive(Deserialize, Default)]
pub(crate) struct WireFunctionDelta {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "loose_arguments")]
    pub(crate) arguments: String,
}

pub(crate) fn delta_text(content: Option<Value>) -> String {
    content_text(content)
}

/// Parses one stream chunk.
pub(crate) fn decode_chunk(data: &str) -> Result<WireChunk<'_>, LlmError> {
    serde_json::from_str(data).map_err(|e| decode_err("a stream chunk", e))
}

/// Reads an error out of a JSON value (`{"error": ...}` payloads, `event: error` data).
pub(crate) fn error_from_value(v: Value) -> Option<WireError> {
    match v {
        // `{"error": {...}}` (or `{"error": "text"}`, `{"detail": ...}`) around the error...
        Value::Object(ref obj) if obj.contains_key("error") || obj.contains_key("detail") => {
            serde_json::from_value::<WireErrorBody>(v)
                .ok()?
                .into_error()
        }
        // ...or the error object itself.
        Value::Object(_) => serde_json::from_value(v).ok(),
        Value::String(s) => Some(WireError {
            message: Some(s),
            ..WireError::default()
        }),
        _ => None,
    }
}
