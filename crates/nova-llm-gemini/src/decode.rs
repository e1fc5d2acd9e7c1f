//! From stream bytes to typed events: SSE framing, then one `GenerateContentResponse` per
//! event, then [`StreamEvent`]s that follow the core's stream contract. The usage (the API
//! repeats it, cumulative, in chunk after chunk) is reported once, and the finish last,
//! when the stream ends after a finish reason; a stream that ends without one was cut
//! short.
//!
//! This part does no I/O, so it is tested and benchmarked on bytes alone.

use std::collections::VecDeque;

use nova_llm_core::{LlmError, PartialOutput, ResponseMetadata};
pub use nova_llm_http::Item;
use nova_llm_http::{Decoder, LineTooLong, SseEvent, SseParser};

use crate::wire::Reader;

/// Turns the bytes of a `:streamGenerateContent?alt=sse` stream into events, fed as they
/// arrive (`feed`), then ended (`end`).
#[derive(Debug)]
pub struct ChunkDecoder {
    sse: SseParser,
    scratch: Vec<SseEvent>,
    reader: Reader,
    done: bool,
    failed: bool,
}

impl ChunkDecoder {
    /// A decoder whose `Start` event carries `metadata`, rejecting event lines over
    /// `max_line` bytes.
    pub fn new(metadata: ResponseMetadata, max_line: usize) -> Self {
        ChunkDecoder {
            sse: SseParser::new(max_line),
            scratch: Vec::new(),
            reader: Reader::new(metadata),
            done: false,
            failed: false,
        }
    }

    /// The bytes the decoder's buffers hold right now (capacity, not length).
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
            if self.failed {
                break;
            }
            self.on_event(&ev, out);
        }
        if let Err(e) = parsed
            && !self.failed
        {
            let err = LlmError::decode(format!("the event stream was rejected: {e}"));
            self.failed = true;
            out.push_back(Err(err.with_source(e)));
        }
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut VecDeque<Item>) {
        let data = ev.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return;
        }
        match crate::wire::parse(data) {
            Ok(response) => {
                if self.reader.read(response, out).is_err() {
                    self.failed = true;
                }
            }
            Err(e) => {
                self.failed = true;
                out.push_back(Err(LlmError::decode(format!(
                    "an event of the stream could not be read: {e}"
                ))));
            }
        }
    }
}

impl Decoder for ChunkDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Item>) {
        if self.done || self.failed {
            return;
        }
        let mut events = std::mem::take(&mut self.scratch);
        let parsed = self.sse.push(bytes, &mut events);
        self.take_events(&mut events, parsed, out);
        self.scratch = events;
    }

    /// The last event, if it came without its blank line; then, if a finish reason
    /// arrived, the usage and the finish.
    fn end(&mut self, out: &mut VecDeque<Item>) {
        if self.done || self.failed {
            return;
        }
        let mut events = std::mem::take(&mut self.scratch);
        let parsed = self.sse.finish(&mut events);
        self.take_events(&mut events, parsed, out);
        self.scratch = events;
        if !self.failed && self.reader.is_finished() {
            self.reader.finish(out);
            self.done = true;
        }
    }

    fn is_complete(&self) -> bool {
        self.done
    }

    fn is_closed(&self) -> bool {
        self.done || self.failed
    }

    fn truncated(&self, partial: PartialOutput) -> LlmError {
        LlmError::stream_interrupted(
            "the stream ended before the service finished the reply (no finish reason)",
            partial,
        )
    }
}
