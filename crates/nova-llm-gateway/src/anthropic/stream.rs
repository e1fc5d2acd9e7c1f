//! Core stream events written as Anthropic's named server-sent events: `message_start`,
//! content blocks opened, filled and closed in order (`text_delta`, `thinking_delta`,
//! `signature_delta`, `input_json_delta`), `message_delta` with the stop reason and usage,
//! `message_stop`; and an `error` event that ends a failed stream, which the Anthropic
//! SDKs raise.

use nova_llm_core::{LlmError, StreamEvent, Usage};
use serde::Serialize;
use serde_json::json;

use super::response::{ErrorBody, OutUsage, stop_reason};

/// The kind of the block open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its index in the reply.
    Tool(usize),
}

/// Writes one stream's events as Anthropic's SSE.
#[derive(Debug)]
pub(crate) struct EventWriter {
    id: String,
    model: String,
    started: bool,
    /// The block open now, and the index of the next one.
    open: Option<Open>,
    next: usize,
    usage: Option<Usage>,
}

impl EventWriter {
    pub(crate) fn new(id: String, model: String) -> Self {
        EventWriter {
            id,
            model,
            started: false,
            open: None,
            next: 0,
            usage: None,
        }
    }

    fn send(out: &mut Vec<u8>, name: &str, data: &impl Serialize) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Plain types: serializing cannot fail.
        let _ = serde_json::to_writer(&mut *out, data);
        out.extend_from_slice(b"\n\n");
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        Self::send(
            out,
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}
            }}),
        );
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            let index = self.next - 1;
            Self::send(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }

    /// Opens a block of `kind` (closing the one open, if another), described by `block`.
    fn open(&mut self, kind: Open, block: serde_json::Value, out: &mut Vec<u8>) {
        if self.open == Some(kind) {
            return;
        }
        self.close(out);
        let index = self.next;
        self.next += 1;
        self.open = Some(kind);
        Self::send(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
    }

    fn delta(&self, delta: serde_json::Value, out: &mut Vec<u8>) {
        let index = self.next - 1;
        Self::send(
            out,
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        );
    }

    /// The events for `event` appended to `out`.
    pub(crate) fn event(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        self.start(out);
        match event {
            StreamEvent::TextDelta { text } => {
                self.open(Open::Text, json!({"type": "text", "text": ""}), out);
                self.delta(json!({"type": "text_delta", "text": text}), out);
            }
            StreamEvent::ReasoningDelta { text, .. } => {
                self.open(
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
                self.delta(json!({"type": "thinking_delta", "thinking": text}), out);
            }
            StreamEvent::ReasoningSignature { signature, .. } => {
                self.open(
                    Open::Thinking,
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    out,
                );
                self.delta(
                    json!({"type": "signature_delta", "signature": signature}),
                    out,
                );
                // A signature ends its thinking block.
                self.close(out);
            }
            StreamEvent::ReasoningRedacted { data, .. } => {
                self.close(out);
                self.open(
                    Open::Thinking,
                    json!({"type": "redacted_thinking", "data": data}),
                    out,
                );
                self.close(out);
            }
            StreamEvent::ToolCallDelta(d) => {
                if self.open != Some(Open::Tool(d.index)) {
                    let block = json!({"type": "tool_use", "id": d.id.clone().unwrap_or_default(),
                        "name": d.name.clone().unwrap_or_default(), "input": {}});
                    self.open(Open::Tool(d.index), block, out);
                }
                if !d.arguments.is_empty() {
                    self.delta(
                        json!({"type": "input_json_delta", "partial_json": d.arguments}),
                        out,
                    );
                }
            }
            StreamEvent::Usage(u) => self.usage = Some(**u),
            StreamEvent::Finish { reason, .. } => {
                self.close(out);
                let usage = OutUsage::from(&self.usage.unwrap_or_default());
                Self::send(
                    out,
                    "message_delta",
                    &json!({"type": "message_delta",
                        "delta": {"stop_reason": stop_reason(reason), "stop_sequence": null},
                        "usage": usage}),
                );
                Self::send(out, "message_stop", &json!({"type": "message_stop"}));
            }
            _ => {}
        }
    }

    /// The `error` event that ends a failed stream.
    pub(crate) fn error(&self, err: &LlmError, out: &mut Vec<u8>) {
        Self::send(out, "error", &ErrorBody::of(err));
    }
}
