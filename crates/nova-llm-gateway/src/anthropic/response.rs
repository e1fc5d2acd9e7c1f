//! Core replies written in Anthropic's shape: the `message` object, and its errors.

use nova_llm_core::{ChatResponse, ContentPart, ErrorKind, FinishReason, LlmError, Usage};
use serde::Serialize;
use serde_json::Value;

use crate::openai::response::to_vec;

/// Anthropic's name for a finish reason.
pub(crate) fn stop_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::PauseTurn => "pause_turn",
        FinishReason::Refusal | FinishReason::ContentFilter | FinishReason::Recitation => "refusal",
        _ => "end_turn",
    }
}

#[derive(Serialize)]
pub(crate) struct OutUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
}

impl From<&Usage> for OutUsage {
    fn from(u: &Usage) -> Self {
        // Anthropic's input_tokens are those neither read from nor written to the cache.
        OutUsage {
            input_tokens: u.uncached_input_tokens(),
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_write_tokens,
            cache_read_input_tokens: u.cache_read_tokens,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutBlock<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
}

#[derive(Serialize)]
struct OutMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<OutBlock<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    usage: OutUsage,
}

/// A tool call's arguments as the JSON object Anthropic's `input` is (`{}` when the
/// model sent none, the text under `_raw` when it is not JSON).
pub(crate) fn input_of(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| serde_json::json!({"_raw": arguments}))
}

/// A `message` body for `reply`, named `model` (the route the client asked for).
pub(crate) fn message(reply: &ChatResponse, id: &str, model: &str) -> Vec<u8> {
    let mut content = Vec::new();
    for part in &reply.message.content {
        match part {
            ContentPart::Reasoning(r) => match (&r.redacted, &r.signature) {
                (Some(data), _) => content.push(OutBlock::RedactedThinking { data }),
                (None, sig) => content.push(OutBlock::Thinking {
                    thinking: &r.text,
                    signature: sig.as_deref().unwrap_or(""),
                }),
            },
            ContentPart::Text { text } => content.push(OutBlock::Text { text }),
            _ => {}
        }
    }
    for call in reply.tool_calls() {
        content.push(OutBlock::ToolUse {
            id: &call.id,
            name: &call.name,
            input: input_of(&call.arguments),
        });
    }
    to_vec(&OutMessage {
        id,
        kind: "message",
        role: "assistant",
        model,
        content,
        stop_reason: stop_reason(&reply.finish_reason),
        stop_sequence: None,
        usage: OutUsage::from(&reply.usage),
    })
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

impl<'a> ErrorBody<'a> {
    pub(crate) fn new(kind: &'static str, message: &'a str) -> Self {
        ErrorBody {
            kind: "error",
            error: ErrorDetail { kind, message },
        }
    }

    pub(crate) fn of(err: &'a LlmError) -> Self {
        Self::new(describe(err.kind()).1, err.message())
    }
}

/// The HTTP status and Anthropic error type for a kind.
pub(crate) fn describe(kind: ErrorKind) -> (u16, &'static str) {
    match kind {
        ErrorKind::InvalidRequest
        | ErrorKind::ContextLengthExceeded
        | ErrorKind::ContentFiltered => (400, "invalid_request_error"),
        ErrorKind::Authentication => (401, "authentication_error"),
        ErrorKind::PermissionDenied => (403, "permission_error"),
        ErrorKind::NotFound => (404, "not_found_error"),
        ErrorKind::RateLimited | ErrorKind::QuotaExceeded => (429, "rate_limit_error"),
        ErrorKind::Overloaded => (529, "overloaded_error"),
        ErrorKind::Timeout => (504, "timeout_error"),
        _ => (502, "api_error"),
    }
}
