//! From stream bytes to typed events: SSE framing, then OpenAI chunks, then
//! [`StreamEvent`]s that follow the core's stream contract (one `Finish`, always last).
//!
//! This part does no I/O, so it is tested, benchmarked and fuzzed on bytes alone.

use std::collections::VecDeque;

use nova_llm_core::{
    FinishReason, LlmError, ResponseMetadata, StreamEvent, StreamStart, ToolCallDelta,
};

pub use nova_llm_http::Item;
use nova_llm_http::{Decoder, LineTooLong, SseEvent, SseParser};

use crate::errors::from_stream_payload;
use crate::wire::{WireChunk, decode_chunk, delta_text, error_from_value};

/// Turns the bytes of a `/chat/completions` or `/completions` event stream into events,
/// fed as they arrive (`feed`), then ended (`end`).
#[derive(Debug)]
pub struct ChunkDecoder {
    sse: SseParser,
    scratch: Vec<SseEvent>,
    metadata: Option<ResponseMetadata>,
    started: bool,
    finish: Option<String>,
    saw_tool_call: bool,
    refused: bool,
    done: bool,
    failed: bool,
}

impl ChunkDecoder {
    /// A decoder whose `Start` event carries `metadata` (request id and rate limits from the
    /// response headers), rejecting event lines over `max_line` bytes.
    pub fn new(metadata: ResponseMetadata, max_line: usize) -> Self {
        ChunkDecoder {
            sse: SseParser::new(max_line),
            scratch: Vec::new(),
            metadata: Some(metadata),
            started: false,
            finish: None,
            saw_tool_call: false,
            refused: false,
            done: false,
            failed: false,
        }
    }

    /// Whether the stream said it is finished (`[DONE]` or a finish reason). After `[DONE]`
    /// or an error, further input is ignored.
    pub fn is_complete(&self) -> bool {
        self.done || self.finish.is_some()
    }

    /// Whether the decoder stopped for good (`[DONE]` or an error item was produced).
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

    /// Handles the events the parser completed, then its error if it hit the size limit.
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
            self.on_event(ev, out);
        }
        if let Err(e) = parsed
            && !self.is_closed()
        {
            let err = LlmError::decode(format!("the event stream was rejected: {e}"));
            self.fail(err.with_source(e), out);
        }
    }

    /// The bytes the decoder's buffers hold right now (capacity, not length): bounded by
    /// the largest event, whatever the length of the stream.
    #[cfg(any(test, feature = "internals"))] // only tests and benchmarks look at it
    pub fn buffered_bytes(&self) -> usize {
        self.sse.buffered_bytes() + self.scratch.capacity() * std::mem::size_of::<SseEvent>()
    }

    /// Ends the input. If the stream finished, the `Finish` event is appended; otherwise
    /// nothing is, and [`is_complete`](Self::is_complete) stays `false` (the caller reports
    /// the truncation with what it received).
    pub fn end(&mut self, out: &mut VecDeque<Item>) {
        if !self.is_closed() {
            let mut events = std::mem::take(&mut self.scratch);
            let parsed = self.sse.finish(&mut events);
            self.take_events(&mut events, parsed, out);
            self.scratch = events;
        }
        if !self.failed && self.finish.is_some() && !self.done {
            self.done = true;
            self.push_finish(out);
        }
    }

    fn fail(&mut self, err: LlmError, out: &mut VecDeque<Item>) {
        self.failed = true;
        out.push_back(Err(err));
    }

    fn push_finish(&mut self, out: &mut VecDeque<Item>) {
        let raw = self.finish.clone();
        // `[DONE]` with no finish reason: the server marked the end without saying why
        // (OmniRoute, GenieX and several Gemini-to-OpenAI proxies do this). Complete, but
        // no natural stop is claimed; tool calls that came whole are why it stopped.
        let mut reason = match &raw {
            Some(r) => FinishReason::from_raw(r),
            None if self.saw_tool_call => FinishReason::ToolCalls,
            None => FinishReason::Unspecified,
        };
        if self.refused {
            reason = FinishReason::Refusal;
        }
        out.push_back(Ok(StreamEvent::Finish { reason, raw }));
    }

    fn on_event(&mut self, ev: SseEvent, out: &mut VecDeque<Item>) {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            self.push_finish(out);
            return;
        }
        if ev.event.as_deref() == Some("error") {
            let wire = serde_json::from_str(data)
                .ok()
                .and_then(error_from_value)
                .unwrap_or_else(|| crate::wire::WireError {
                    message: Some(data.to_owned()),
                    ..Default::default()
                });
            self.fail(from_stream_payload(wire), out);
            return;
        }
        if data.is_empty() {
            return;
        }
        let chunk = match decode_chunk(data) {
            Ok(c) => c,
            Err(e) => {
                self.fail(e, out);
                return;
            }
        };
        self.on_chunk(chunk, out);
    }

    fn on_chunk(&mut self, chunk: WireChunk<'_>, out: &mut VecDeque<Item>) {
        if let Some(err) = chunk.error {
            let wire = error_from_value(err).unwrap_or_default();
            self.fail(from_stream_payload(wire), out);
            return;
        }
        if !self.started {
            self.started = true;
            let mut meta = self.metadata.take().unwrap_or_default();
            if meta.system_fingerprint.is_none() && !chunk.system_fingerprint.is_empty() {
                meta.system_fingerprint = Some(chunk.system_fingerprint.into_owned());
            }
            out.push_back(Ok(StreamEvent::start(
                StreamStart::new(chunk.id.into_owned(), chunk.model.into_owned())
                    .with_metadata(meta),
            )));
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let d = choice.delta;
            if let Some(r) = d
                .reasoning_content
                .or(d.reasoning)
                .filter(|r| !r.is_empty())
            {
                out.push_back(Ok(StreamEvent::reasoning(r)));
            }
            let text = delta_text(d.content);
            if !text.is_empty() {
                out.push_back(Ok(StreamEvent::text(text)));
            }
            if let Some(text) = choice.text.filter(|t| !t.is_empty()) {
                out.push_back(Ok(StreamEvent::text(text)));
            }
            if let Some(refusal) = d.refusal.filter(|r| !r.is_empty()) {
                self.refused = true;
                out.push_back(Ok(StreamEvent::text(refusal)));
            }
            for call in d.tool_calls {
                let name = call.function.name.filter(|n| !n.is_empty());
                let id = call.id.filter(|i| !i.is_empty());
                if id.is_none() && name.is_none() && call.function.arguments.is_empty() {
                    continue;
                }
                self.saw_tool_call = true;
                let mut delta =
                    ToolCallDelta::new(call.index).with_arguments(call.function.arguments);
                delta.id = id;
                delta.name = name;
                out.push_back(Ok(StreamEvent::tool_call(delta)));
            }
            if let Some(f) = d.function_call {
                self.saw_tool_call = true;
                let mut delta = ToolCallDelta::new(0).with_arguments(f.arguments);
                delta.name = f.name.filter(|n| !n.is_empty());
                out.push_back(Ok(StreamEvent::tool_call(delta)));
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.finish = Some(reason);
            }
        }
        if let Some(usage) = chunk.usage {
            out.push_back(Ok(StreamEvent::usage(usage.into_usage())));
        }
    }
}

/// The truncation error for a stream that ended before it finished.
fn truncated(partial: nova_llm_core::PartialOutput) -> LlmError {
    LlmError::stream_interrupted(
        "the stream ended before the service finished the reply (no finish reason, no [DONE])",
        partial,
    )
}

impl Decoder for ChunkDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Item>) {
        ChunkDecoder::feed(self, bytes, out);
    }

    fn end(&mut self, out: &mut VecDeque<Item>) {
        ChunkDecoder::end(self, out);
    }

    fn is_complete(&self) -> bool {
        ChunkDecoder::is_complete(self)
    }

    fn is_closed(&self) -> bool {
        ChunkDecoder::is_closed(self)
    }

    fn truncated(&self, partial: nova_llm_core::PartialOutput) -> LlmError {
        truncated(partial)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::ChunkDecoder;

    #[test]
    fn bytes_in_pieces_become_start_text_and_finish() {
        let mut d = ChunkDecoder::new(Default::default(), 1 << 20);
        let mut out = VecDeque::new();
        d.feed(
            b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            &mut out,
        );
        assert!(!d.is_complete());
        d.feed(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            &mut out,
        );
        assert!(d.is_complete());
        assert_eq!(out.len(), 3, "start, the text \"Hi\", finish");
    }
}
