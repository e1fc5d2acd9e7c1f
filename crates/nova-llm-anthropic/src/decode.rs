//! From stream bytes to typed events: SSE framing, then the Messages API's named events,
//! then [`StreamEvent`]s that follow the core's stream contract (one `Finish`, always
//! last, and only after `message_stop`).
//!
//! This part does no I/O, so it is tested and benchmarked on bytes alone.

use std::collections::VecDeque;

use nova_llm_core::{
    FinishReason, LlmError, PartialOutput, ResponseMetadata, StreamEvent, StreamStart,
    ToolCallDelta,
};
pub use nova_llm_http::Item;
use nova_llm_http::{Decoder, LineTooLong, SseEvent, SseParser};
use serde::Deserialize;

use crate::ORIGIN;
use crate::errors::from_stream_error;
use crate::wire::{
    BlockDelta, BlockStart, MessageDelta, MessageStart, StreamError, WireBlock, WireUsage,
    tool_arguments,
};

/// What a content block of the stream is, by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Text, thinking, redacted thinking: their deltas say what they are.
    Content,
    /// A tool call: the index of the call among the reply's calls, and whether any of its
    /// input arrived.
    Tool { call: usize, input: bool },
    /// A block this driver does not know (a server tool's): its deltas are skipped.
    Other,
}

/// Turns the bytes of a `/v1/messages` event stream into events, fed as they arrive
/// (`feed`), then ended (`end`).
#[derive(Debug)]
pub struct EventDecoder {
    sse: SseParser,
    scratch: Vec<SseEvent>,
    metadata: Option<ResponseMetadata>,
    blocks: Vec<Block>,
    calls: usize,
    usage: Option<WireUsage>,
    /// Whether a `Usage` event went out (the final one comes with `message_delta`).
    usage_sent: bool,
    stop_reason: Option<String>,
    done: bool,
    failed: bool,
}

impl EventDecoder {
    /// A decoder whose `Start` event carries `metadata` (request id and rate limits from the
    /// response headers), rejecting event lines over `max_line` bytes.
    pub fn new(metadata: ResponseMetadata, max_line: usize) -> Self {
        EventDecoder {
            sse: SseParser::new(max_line),
            scratch: Vec::new(),
            metadata: Some(metadata),
            blocks: Vec::new(),
            calls: 0,
            usage: None,
            usage_sent: false,
            stop_reason: None,
            done: false,
            failed: false,
        }
    }

    /// Whether `message_stop` arrived: the reply is complete.
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// Whether the decoder stopped for good (`message_stop`, or an error item produced).
    pub fn is_closed(&self) -> bool {
        self.done || self.failed
    }

    /// Decodes `bytes`, appending items to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Item>) {
        if self.is_closed() {
            return;
        }
        let mut events = std::mem::take(&mut self.scratch);
        let parsed = self.sse.push(bytes, &mut events);
        self.take_events(&mut events, parsed, out);
        self.scratch = events;
    }

    /// Ends the input: the last event, if it came without its blank line. A stream that
    /// did not reach `message_stop` produces nothing more, and is reported cut short by
    /// whoever drives the decoder.
    pub fn end(&mut self, out: &mut VecDeque<Item>) {
        if self.is_closed() {
            return;
        }
        let mut events = std::mem::take(&mut self.scratch);
        let parsed = self.sse.finish(&mut events);
        self.take_events(&mut events, parsed, out);
        self.scratch = events;
    }

    /// The bytes the decoder's buffers hold right now (capacity, not length): bounded by
    /// the largest event, whatever the length of the stream.
    #[cfg(any(test, feature = "internals"))]
    pub fn buffered_bytes(&self) -> usize {
        self.sse.buffered_bytes() + self.scratch.capacity() * std::mem::size_of::<SseEvent>()
    }

    fn take_events(
        &mut self,
        events: &mut Vec<SseEvent>,
        parsed: Result<(), LineTooLong>,
        out: &mut VecDeque<Item>,
    ) {
        for ev in events.drain(..) {
            if self.is_closed() {
                break;
            }
            self.on_event(&ev, out);
        }
        if let Err(e) = parsed
            && !self.is_closed()
        {
            let err = LlmError::decode(format!("the event stream was rejected: {e}"));
            self.fail(err.with_source(e), out);
        }
    }

    fn fail(&mut self, err: LlmError, out: &mut VecDeque<Item>) {
        self.failed = true;
        out.push_back(Err(err));
    }

    /// The `Start` event, before the first other event of the reply.
    fn start(&mut self, id: String, model: String, out: &mut VecDeque<Item>) {
        if let Some(metadata) = self.metadata.take() {
            out.push_back(Ok(StreamEvent::start(
                StreamStart::new(id, model).with_metadata(metadata),
            )));
        }
    }

    /// Reads `data` as the payload of the event named `name`.
    fn parse<'a, T: Deserialize<'a>>(
        &mut self,
        name: &str,
        data: &'a str,
        out: &mut VecDeque<Item>,
    ) -> Option<T> {
        match serde_json::from_str(data) {
            Ok(v) => Some(v),
            Err(e) => {
                let err = LlmError::decode(format!(
                    "a `{name}` event of the stream could not be read: {e}"
                ))
                .with_source(e);
                self.fail(err, out);
                None
            }
        }
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut VecDeque<Item>) {
        // The API names every event; a proxy that drops the names still sends the type in
        // the data.
        let name = match &ev.event {
            Some(name) => name.as_str(),
            None => match type_of(&ev.data) {
                Some(t) => t,
                None => return,
            },
        };
        let data = ev.data.as_str();
        match name {
            "content_block_delta" => {
                if let Some(d) = self.parse::<BlockDelta<'_>>(name, data, out) {
                    self.on_delta(d, out);
                }
            }
            "message_start" => {
                if let Some(s) = self.parse::<MessageStart>(name, data, out) {
                    let m = s.message;
                    self.usage = m.usage;
                    self.start(m.id.unwrap_or_default(), m.model.unwrap_or_default(), out);
                }
            }
            "content_block_start" => {
                if let Some(b) = self.parse::<BlockStart>(name, data, out) {
                    self.on_block_start(b, out);
                }
            }
            "content_block_stop" => self.on_block_stop(data, out),
            "message_delta" => {
                if let Some(d) = self.parse::<MessageDelta>(name, data, out) {
                    if d.delta.stop_reason.is_some() {
                        self.stop_reason = d.delta.stop_reason;
                    }
                    if let Some(u) = d.usage {
                        let usage = self.usage.unwrap_or_default().updated(u);
                        self.usage = Some(usage);
                        self.usage_sent = true;
                        out.push_back(Ok(StreamEvent::usage(usage.into_usage())));
                    }
                }
            }
            "message_stop" => {
                self.start(String::new(), String::new(), out);
                if let Some(u) = self.usage
                    && !self.usage_sent
                {
                    out.push_back(Ok(StreamEvent::usage(u.into_usage())));
                }
                let event = match self.stop_reason.take() {
                    Some(raw) => StreamEvent::finish_raw(raw),
                    None => StreamEvent::finish(FinishReason::Unspecified),
                };
                out.push_back(Ok(event));
                self.done = true;
            }
            "error" => {
                let wire = self.parse::<StreamError>(name, data, out).map(|e| e.error);
                if let Some(wire) = wire {
                    self.fail(from_stream_error(wire), out);
                }
            }
            // `ping`, and events added after this driver was written.
            _ => {}
        }
    }

    fn block_at(&mut self, index: usize) -> &mut Block {
        if self.blocks.len() <= index {
            self.blocks.resize(index + 1, Block::Other);
        }
        &mut self.blocks[index]
    }

    fn on_block_start(&mut self, b: BlockStart, out: &mut VecDeque<Item>) {
        self.start(String::new(), String::new(), out);
        let kind = match b.content_block {
            WireBlock::Text { text } => {
                if !text.is_empty() {
                    out.push_back(Ok(StreamEvent::text(text)));
                }
                Block::Content
            }
            WireBlock::Thinking {
                thinking,
                signature,
            } => {
                if !thinking.is_empty() {
                    out.push_back(Ok(StreamEvent::reasoning(thinking)));
                }
                if !signature.is_empty() {
                    out.push_back(Ok(signed(signature)));
                }
                Block::Content
            }
            WireBlock::RedactedThinking { data } => {
                out.push_back(Ok(StreamEvent::ReasoningRedacted {
                    data,
                    origin: ORIGIN.to_owned(),
                }));
                Block::Content
            }
            WireBlock::ToolUse { id, name, input } => {
                let call = self.calls;
                self.calls += 1;
                // The start's `input` is `{}`; the input comes in `input_json_delta`s.
                let whole = !matches!(&input, serde_json::Value::Object(m) if m.is_empty())
                    && !input.is_null();
                let mut delta = ToolCallDelta::new(call).with_id(id).with_name(name);
                if whole {
                    delta = delta.with_arguments(tool_arguments(&input));
                }
                out.push_back(Ok(StreamEvent::tool_call(delta)));
                Block::Tool { call, input: whole }
            }
            WireBlock::Other => Block::Other,
        };
        *self.block_at(b.index) = kind;
    }

    fn on_delta(&mut self, d: BlockDelta<'_>, out: &mut VecDeque<Item>) {
        let block = *self.block_at(d.index);
        let delta = d.delta;
        let event = match (&*delta.kind, block) {
            (_, Block::Other) => return,
            ("text_delta", _) => StreamEvent::text(delta.text.unwrap_or_default()),
            ("thinking_delta", _) => StreamEvent::reasoning(delta.thinking.unwrap_or_default()),
            ("signature_delta", _) => signed(delta.signature.unwrap_or_default()),
            ("input_json_delta", Block::Tool { call, .. }) => {
                let json = delta.partial_json.unwrap_or_default();
                if json.is_empty() {
                    return;
                }
                *self.block_at(d.index) = Block::Tool { call, input: true };
                StreamEvent::tool_call(ToolCallDelta::new(call).with_arguments(json))
            }
            // `citations_delta`, and deltas added after this driver was written.
            _ => return,
        };
        if event.is_content() {
            self.start(String::new(), String::new(), out);
        }
        out.push_back(Ok(event));
    }

    /// A tool call whose input never came has the empty object as its arguments, as in a
    /// reply that was not streamed.
    fn on_block_stop(&mut self, data: &str, out: &mut VecDeque<Item>) {
        #[derive(Deserialize)]
        struct Stop {
            index: usize,
        }
        let Some(stop) = self.parse::<Stop>("content_block_stop", data, out) else {
            return;
        };
        if let Some(Block::Tool { call, input: false }) = self.blocks.get(stop.index).copied() {
            self.blocks[stop.index] = Block::Tool { call, input: true };
            out.push_back(Ok(StreamEvent::tool_call(
                ToolCallDelta::new(call).with_arguments("{}"),
            )));
        }
    }
}

/// A signature event of this service.
fn signed(signature: String) -> StreamEvent {
    StreamEvent::ReasoningSignature {
        signature,
        origin: ORIGIN.to_owned(),
    }
}

/// The `type` of an event's data, for a stream whose events have no names.
fn type_of(data: &str) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    let t: Typed<'_> = serde_json::from_str(data).ok()?;
    [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    ]
    .into_iter()
    .find(|known| *known == t.kind)
}

/// The error of a stream that ended before `message_stop`.
pub(crate) fn truncated(partial: PartialOutput) -> LlmError {
    LlmError::stream_interrupted(
        "the stream ended before the service finished the reply (no `message_stop`)",
        partial,
    )
}

impl Decoder for EventDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Item>) {
        EventDecoder::feed(self, bytes, out);
    }

    fn end(&mut self, out: &mut VecDeque<Item>) {
        EventDecoder::end(self, out);
    }

    fn is_complete(&self) -> bool {
        EventDecoder::is_complete(self)
    }

    fn is_closed(&self) -> bool {
        EventDecoder::is_closed(self)
    }

    fn truncated(&self, partial: PartialOutput) -> LlmError {
        truncated(partial)
    }
}
