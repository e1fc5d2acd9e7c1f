//! Core stream events written as OpenAI's server-sent events: `chat.completion.chunk` (or
//! `text_completion` for the legacy endpoint), the usage chunk when the client asked for
//! it, `[DONE]`; and an error that ends a stream early as the `{"error": …}` event the
//! official SDKs raise, never a silent truncation.

use nova_llm_core::{LlmError, StreamEvent, Usage};
use serde::Serialize;

use super::error::ErrorBody;
use super::response::{OutUsage, finish_reason, to_vec};

/// Which chunk shape to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `chat.completion.chunk`.
    Chat,
    /// `text_completion` (the legacy endpoint).
    Text,
}

/// Writes one stream's events as SSE frames.
#[derive(Debug)]
pub(crate) struct ChunkWriter {
    shape: Shape,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Whether the assistant role was announced (the first chat chunk carries it).
    started: bool,
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OutUsage>,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[DeltaCall<'a>; 1]>,
}

#[derive(Serialize)]
struct DeltaCall<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: DeltaFunction<'a>,
}

#[derive(Serialize)]
struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

impl ChunkWriter {
    /// A writer for one stream, named `model` (the route the client asked for).
    pub(crate) fn new(
        shape: Shape,
        id: String,
        model: String,
        created: u64,
        include_usage: bool,
    ) -> Self {
        ChunkWriter {
            shape,
            id,
            model,
            created,
            include_usage,
            started: false,
            usage: None,
        }
    }

    /// The frames for `event` appended to `out` (none for events OpenAI has no chunk for:
    /// the start of a text completion, reasoning signatures).
    pub(crate) fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match event {
            StreamEvent::Start(_) => self.start(out),
            StreamEvent::TextDelta { text } => {
                self.start(out);
                match self.shape {
                    Shape::Chat => self.chat_delta(
                        Delta {
                            content: Some(text),
                            ..Delta::default()
                        },
                        None,
                        out,
                    ),
                    Shape::Text => self.text_delta(text, None, out),
                }
            }
            StreamEvent::ReasoningDelta { text, .. } if self.shape == Shape::Chat => {
                self.start(out);
                self.chat_delta(
                    Delta {
                        reasoning_content: Some(text),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
            }
            StreamEvent::ToolCallDelta(d) if self.shape == Shape::Chat => {
                self.start(out);
                let call = DeltaCall {
                    index: d.index,
                    id: d.id.as_deref(),
                    kind: d.id.as_ref().map(|_| "function"),
                    function: DeltaFunction {
                        name: d.name.as_deref(),
                        arguments: &d.arguments,
                    },
                };
                self.chat_delta(
                    Delta {
                        tool_calls: Some([call]),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
            }
            StreamEvent::Usage(u) => self.usage = Some(**u),
            StreamEvent::Finish { reason, .. } => {
                self.start(out);
                let reason = finish_reason(reason);
                match self.shape {
                    Shape::Chat => self.chat_delta(Delta::default(), Some(reason), out),
                    Shape::Text => self.text_delta("", Some(reason), out),
                }
                if self.include_usage {
                    let usage = self.usage.unwrap_or_default();
                    self.frame(out, [(); 0], Some(OutUsage::from(&usage)));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            _ => {}
        }
    }

    /// The frame that ends a stream on `err`: `{"error": …}`, which the official SDKs
    /// raise as an API error.
    pub(crate) fn error(&self, err: &LlmError, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&to_vec(&ErrorBody::of(err)));
        out.extend_from_slice(b"\n\n");
    }

    /// The role chunk, once, for chat streams.
    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.shape == Shape::Chat {
            self.chat_delta(
                Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                },
                None,
                out,
            );
        }
    }

    fn chat_delta(&self, delta: Delta<'_>, finish: Option<&'static str>, out: &mut Vec<u8>) {
        let choice = ChatChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        };
        self.frame(out, [choice], None);
    }

    fn text_delta(&self, text: &str, finish: Option<&'static str>, out: &mut Vec<u8>) {
        let choice = TextChoice {
            index: 0,
            text,
            logprobs: None,
            finish_reason: finish,
        };
        self.frame(out, [choice], None);
    }

    fn frame<C: Serialize>(&self, out: &mut Vec<u8>, choices: C, usage: Option<OutUsage>) {
        let chunk = Chunk {
            id: &self.id,
            object: match self.shape {
                Shape::Chat => "chat.completion.chunk",
                Shape::Text => "text_completion",
            },
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        // Plain types: serializing cannot fail.
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
    }
}
