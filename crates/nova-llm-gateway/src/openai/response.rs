//! Core replies written in OpenAI's shape: `chat.completion`, `text_completion`, and the
//! model list.

use nova_llm_core::{ChatResponse, CompletionResponse, FinishReason, Usage};
use serde::Serialize;

/// OpenAI's name for a finish reason. Reasons OpenAI has no word for are told as the
/// nearest one a client understands (`content_filter` for refusals and recitation, `stop`
/// for a paused turn or an unknown reason).
pub(crate) fn finish_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter | FinishReason::Refusal | FinishReason::Recitation => {
            "content_filter"
        }
        _ => "stop",
    }
}

#[derive(Serialize)]
pub(crate) struct OutUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
}

impl From<&Usage> for OutUsage {
    fn from(u: &Usage) -> Self {
        OutUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens.max(u.input_tokens + u.output_tokens),
            prompt_tokens_details: u
                .cache_read_tokens
                .map(|cached_tokens| PromptDetails { cached_tokens }),
            completion_tokens_details: u
                .reasoning_tokens
                .map(|reasoning_tokens| CompletionDetails { reasoning_tokens }),
        }
    }
}

#[derive(Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: OutUsage,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<&'a str>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: OutMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct OutMessage<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OutToolCall<'a>>,
}

#[derive(Serialize)]
pub(crate) struct OutToolCall<'a> {
    pub(crate) id: &'a str,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) function: OutFunction<'a>,
}

#[derive(Serialize)]
pub(crate) struct OutFunction<'a> {
    pub(crate) name: &'a str,
    pub(crate) arguments: &'a str,
}

/// A `chat.completion` body for `reply`, named `model` (the route the client asked for).
pub(crate) fn chat(reply: &ChatResponse, id: &str, model: &str, created: u64) -> Vec<u8> {
    let text = reply.text();
    let calls = reply.tool_calls();
    let body = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message: OutMessage {
                role: "assistant",
                content: (!text.is_empty() || calls.is_empty()).then_some(text),
                refusal: None,
                reasoning_content: reply.reasoning(),
                tool_calls: calls
                    .iter()
                    .map(|c| OutToolCall {
                        id: &c.id,
                        kind: "function",
                        function: OutFunction {
                            name: &c.name,
                            arguments: &c.arguments,
                        },
                    })
                    .collect(),
            },
            logprobs: None,
            finish_reason: finish_reason(&reply.finish_reason),
        }],
        usage: OutUsage::from(&reply.usage),
        system_fingerprint: reply.metadata.system_fingerprint.as_deref(),
    };
    to_vec(&body)
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [TextChoice<'a>; 1],
    usage: OutUsage,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

/// A `text_completion` body for `reply`.
pub(crate) fn completion(
    reply: &CompletionResponse,
    id: &str,
    model: &str,
    created: u64,
) -> Vec<u8> {
    to_vec(&TextCompletion {
        id,
        object: "text_completion",
        created,
        model,
        choices: [TextChoice {
            index: 0,
            text: &reply.text,
            logprobs: None,
            finish_reason: finish_reason(&reply.finish_reason),
        }],
        usage: OutUsage::from(&reply.usage),
    })
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

/// A `list` of models.
pub(crate) fn models<'a>(names: impl Iterator<Item = &'a str>) -> Vec<u8> {
    to_vec(&ModelList {
        object: "list",
        data: names
            .map(|id| ModelEntry {
                id,
                object: "model",
                created: 0,
                owned_by: "nova-llm",
            })
            .collect(),
    })
}

/// Serializes a body made of plain types, which cannot fail; an empty object if it ever
/// did.
pub(crate) fn to_vec(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}
