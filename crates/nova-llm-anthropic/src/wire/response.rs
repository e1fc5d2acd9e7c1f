//! Replies (`Message` objects), their usage, and error bodies, read leniently: unknown
//! fields and block types are ignored, `null`s and missing fields are defaults.

use nova_llm_core::{
    ChatResponse, FinishReason, LlmError, ResponseMetadata, StreamAccumulator, StreamEvent,
    StreamStart, ToolCallDelta, Usage,
};
use serde::Deserialize;
use serde_json::Value;

use crate::ORIGIN;

/// A `Message` object: the reply to a plain call, and the head of a stream
/// (`message_start`).
#[derive(Deserialize, Default)]
pub(crate) struct WireMessage {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) content: Option<Vec<WireBlock>>,
    #[serde(default)]
    pub(crate) stop_reason: Option<String>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
}

/// A content block of a reply. Server tools' blocks and other kinds this driver does not
/// know are `Other` and skipped.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum WireBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// A tool call's `input` as the arguments text: the JSON object, `{}` when there is none.
pub(crate) fn tool_arguments(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Token counts as the API reports them: `input_tokens` is the uncached part only.
#[derive(Deserialize, Default, Clone, Copy, Debug)]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize, Default, Clone, Copy, Debug)]
pub(crate) struct OutputDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl WireUsage {
    /// `later`'s figures where it has them, these otherwise (a stream's final usage and its
    /// start).
    pub(crate) fn updated(self, later: WireUsage) -> WireUsage {
        WireUsage {
            input_tokens: later.input_tokens.or(self.input_tokens),
            output_tokens: later.output_tokens.or(self.output_tokens),
            cache_creation_input_tokens: later
                .cache_creation_input_tokens
                .or(self.cache_creation_input_tokens),
            cache_read_input_tokens: later
                .cache_read_input_tokens
                .or(self.cache_read_input_tokens),
            output_tokens_details: later.output_tokens_details.or(self.output_tokens_details),
        }
    }

    /// The core's usage: input is the whole prompt (uncached, cache reads and cache
    /// writes), with the reads and writes as its breakdown.
    pub(crate) fn into_usage(self) -> Usage {
        let read = self.cache_read_input_tokens;
        let write = self.cache_creation_input_tokens;
        let input = self.input_tokens.unwrap_or(0) + read.unwrap_or(0) + write.unwrap_or(0);
        let mut u = Usage::new(input, self.output_tokens.unwrap_or(0));
        u.cache_read_tokens = read;
        u.cache_write_tokens = write;
        u.reasoning_tokens = self.output_tokens_details.and_then(|d| d.thinking_tokens);
        u
    }
}

/// An error body: `{"type": "error", "error": {"type": ..., "message": ...}, "request_id":
/// ...}`.
#[derive(Deserialize)]
pub(crate) struct WireErrorBody {
    #[serde(default)]
    pub(crate) error: Option<WireError>,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// The `error` object of an error body or an `error` event.
#[derive(Deserialize, Default, Debug, Clone)]
pub(crate) struct WireError {
    #[serde(default, rename = "type")]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

fn decode_err(e: serde_json::Error) -> LlmError {
    LlmError::decode(format!("the reply is not a Messages API message: {e}")).with_source(e)
}

/// Decodes the body of a plain `POST /v1/messages`.
///
/// The blocks go through the same [`StreamAccumulator`] a stream's events do, so a reply
/// reads the same whether it was streamed or not (adjacent text blocks are one text;
/// reasoning keeps its signature and its place).
pub(crate) fn decode_message(
    body: &[u8],
    metadata: ResponseMetadata,
) -> Result<ChatResponse, LlmError> {
    let wire: WireMessage = serde_json::from_slice(body).map_err(decode_err)?;
    let Some(blocks) = wire.content else {
        return Err(LlmError::decode("the reply has no `content`"));
    };
    let mut acc = StreamAccumulator::new();
    acc.push(&StreamEvent::start(
        StreamStart::new(wire.id.unwrap_or_default(), wire.model.unwrap_or_default())
            .with_metadata(metadata),
    ));
    let mut tools = 0;
    for block in blocks {
        for event in block_events(block, &mut tools) {
            acc.push(&event);
        }
    }
    if let Some(u) = wire.usage {
        acc.push(&StreamEvent::usage(u.into_usage()));
    }
    acc.push(&match wire.stop_reason {
        Some(raw) => StreamEvent::finish_raw(raw),
        None => StreamEvent::finish(FinishReason::Unspecified),
    });
    acc.finish()
}

/// The events of one whole block (`tools` counts the tool calls so far).
fn block_events(block: WireBlock, tools: &mut usize) -> Vec<StreamEvent> {
    match block {
        WireBlock::Text { text } if text.is_empty() => Vec::new(),
        WireBlock::Text { text } => vec![StreamEvent::text(text)],
        WireBlock::Thinking {
            thinking,
            signature,
        } => {
            let mut events = Vec::with_capacity(2);
            if !thinking.is_empty() {
                events.push(StreamEvent::reasoning(thinking));
            }
            if !signature.is_empty() {
                events.push(StreamEvent::ReasoningSignature {
                    signature,
                    origin: ORIGIN.to_owned(),
                });
            }
            events
        }
        WireBlock::RedactedThinking { data } => vec![StreamEvent::ReasoningRedacted {
            data,
            origin: ORIGIN.to_owned(),
        }],
        WireBlock::ToolUse { id, name, input } => {
            let index = *tools;
            *tools += 1;
            vec![StreamEvent::tool_call(
                ToolCallDelta::new(index)
                    .with_id(id)
                    .with_name(name)
                    .with_arguments(tool_arguments(&input)),
            )]
        }
        WireBlock::Other => Vec::new(),
    }
}
