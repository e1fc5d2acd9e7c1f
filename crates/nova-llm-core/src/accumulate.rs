//! Turning a stream back into a whole reply, and the error a consumer sees when a stream
//! fails (the stream contract's rule for errors after content).

use std::collections::BTreeMap;
use std::fmt;

use crate::dialog::{ContentPart, Message, ReasoningPart};
use crate::error::{ErrorKind, LlmError};
use crate::metadata::ResponseMetadata;
use crate::partial::PartialOutput;
use crate::response::{ChatResponse, FinishReason};
use crate::stream::{ChatStream, StreamEvent, next_event};
use crate::tool_call::ToolCall;
use crate::usage::Usage;

/// Assembles stream events into a whole [`ChatResponse`].
///
/// Content keeps its order where a service needs it: text deltas are concatenated into a
/// text part and reasoning deltas into a reasoning part; a reasoning signature closes the
/// reasoning part before it (a signature with no reasoning before it is a part of its own)
/// and redacted reasoning is a part of its own, and content after such a signed or redacted
/// part starts new parts (Anthropic's blocks, kept in order for the next turn). Unsigned
/// reasoning interleaved with text (as some OpenAI-compatible servers stream it) splits
/// nothing: the text stays one part, exactly as it was streamed.
/// Tool-call fragments are joined by index (ids and names that some servers repeat in
/// every fragment are not duplicated); the last usage and finish win.
///
/// ```
/// use nova_llm_core::{FinishReason, StreamAccumulator, StreamEvent, ToolCallDelta, Usage};
///
/// let mut acc = StreamAccumulator::new();
/// acc.push(&StreamEvent::text("Hel"));
/// acc.push(&StreamEvent::text("lo"));
/// acc.push(&StreamEvent::tool_call(ToolCallDelta::new(0).with_id("c1").with_name("f")));
/// acc.push(&StreamEvent::tool_call(ToolCallDelta::new(0).with_arguments("{}")));
/// acc.push(&StreamEvent::usage(Usage::new(3, 2)));
/// acc.push(&StreamEvent::finish(FinishReason::ToolCalls));
/// let reply = acc.finish()?;
/// assert_eq!(reply.text(), "Hello");
/// assert_eq!(reply.tool_calls()[0].arguments, "{}");
/// # Ok::<(), nova_llm_core::LlmError>(())
/// ```
#[derive(Default, Clone)]
pub struct StreamAccumulator {
    id: String,
    model: String,
    metadata: ResponseMetadata,
    /// Text and reasoning parts, in order.
    parts: Vec<ContentPart>,
    /// The text part text deltas extend, until signed or redacted reasoning follows it.
    text_at: Option<usize>,
    /// The reasoning part reasoning deltas extend, until a signature closes it.
    reasoning_at: Option<usize>,
    tool_calls: BTreeMap<usize, ToolCall>,
    usage: Option<Usage>,
    finish: Option<(FinishReason, Option<String>)>,
    saw_content: bool,
}

impl fmt::Debug for StreamAccumulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamAccumulator")
            .field("id", &self.id)
            .field("model", &self.model)
            .field("parts", &self.parts.len())
            .field("tool_calls", &self.tool_calls.len())
            .field("usage", &self.usage)
            .field("finish", &self.finish)
            .finish()
    }
}

impl StreamAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::Start(start) => {
                if !start.id.is_empty() {
                    self.id.clone_from(&start.id);
                }
                if !start.model.is_empty() {
                    self.model.clone_from(&start.model);
                }
                let m = &start.metadata;
                if m.request_id.is_some() {
                    self.metadata.request_id.clone_from(&m.request_id);
                }
                if m.rate_limit.is_some() {
                    self.metadata.rate_limit.clone_from(&m.rate_limit);
                }
                if m.system_fingerprint.is_some() {
                    self.metadata
                        .system_fingerprint
                        .clone_from(&m.system_fingerprint);
                }
            }
            StreamEvent::TextDelta { text } => {
                self.saw_content = true;
                match self.text_at.and_then(|i| self.parts.get_mut(i)) {
                    Some(ContentPart::Text { text: last }) => last.push_str(text),
                    _ => {
                        self.text_at = Some(self.parts.len());
                        self.parts.push(ContentPart::text(text.as_str()));
                    }
                }
            }
            StreamEvent::ReasoningDelta { text } => {
                self.saw_content = true;
                self.in_reasoning(|r| r.text.push_str(text));
            }
            StreamEvent::ReasoningSignature { signature, origin } => {
                self.saw_content = true;
                self.in_reasoning(|r| {
                    r.signature = Some(signature.clone());
                    r.origin = Some(origin.clone());
                });
                self.close_block();
            }
            StreamEvent::ReasoningRedacted { data, origin } => {
                self.saw_content = true;
                self.parts
                    .push(ContentPart::Reasoning(ReasoningPart::redacted(
                        data.as_str(),
                        origin.as_str(),
                    )));
                self.close_block();
            }
            StreamEvent::ToolCallDelta(d) => {
                self.saw_content = true;
                let call = self
                    .tool_calls
                    .entry(d.index)
                    .or_insert_with(|| ToolCall::new("", "", ""));
                if let Some(id) = &d.id
                    && call.id.is_empty()
                {
                    call.id.clone_from(id);
                }
                if let Some(name) = &d.name {
                    if call.name.is_empty() {
                        call.name.clone_from(name);
                    } else if *name != call.name {
                        // A name sent in pieces (rare, but seen): join them.
                        call.name.push_str(name);
                    }
                }
                call.arguments.push_str(&d.arguments);
            }
            StreamEvent::Usage(u) => self.usage = Some(**u),
            StreamEvent::Finish { reason, raw } => {
                self.finish = Some((reason.clone(), raw.clone()));
            }
        }
    }

    /// Applies `f` to the reasoning part reasoning deltas and signatures go to, made if
    /// there is none.
    fn in_reasoning(&mut self, f: impl FnOnce(&mut ReasoningPart)) {
        let at = match self.reasoning_at {
            Some(i) if matches!(self.parts.get(i), Some(ContentPart::Reasoning(_))) => i,
            _ => {
                self.parts
                    .push(ContentPart::Reasoning(ReasoningPart::default()));
                self.parts.len() - 1
            }
        };
        self.reasoning_at = Some(at);
        if let Some(ContentPart::Reasoning(r)) = self.parts.get_mut(at) {
            f(r);
        }
    }

    /// A signed or redacted part ended a block: what follows starts new parts.
    fn close_block(&mut self) {
        self.text_at = None;
        self.reasoning_at = None;
    }

    /// Whether any content event (text, reasoning, tool-call fragment) has arrived.
    pub fn saw_content(&self) -> bool {
        self.saw_content
    }

    /// Whether the finish event has arrived.
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The text so far (text parts joined with a newline, as
    /// [`Message::text`](crate::Message::text) joins them).
    pub fn text(&self) -> String {
        join(self.parts.iter().filter_map(ContentPart::as_text))
    }

    /// The usage reported so far, if any.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Everything received so far, for an interrupted-stream error.
    pub fn partial(&self) -> PartialOutput {
        PartialOutput {
            id: self.id.clone(),
            model: self.model.clone(),
            text: self.text(),
            reasoning: join(
                self.parts
                    .iter()
                    .filter_map(ContentPart::as_reasoning)
                    .map(|r| r.text.as_str())
                    .filter(|t| !t.is_empty()),
            ),
            tool_calls: self.tool_calls.values().cloned().collect(),
            usage: self.usage,
        }
    }

    /// The whole reply.
    ///
    /// # Errors
    /// An [`ErrorKind::StreamInterrupted`] error carrying the partial output when no finish
    /// event arrived: a stream cut short is never a success.
    pub fn finish(self) -> Result<ChatResponse, LlmError> {
        let Some((reason, raw)) = self.finish.clone() else {
            return Err(LlmError::stream_interrupted(
                "the stream ended without a finish event",
                self.partial(),
            ));
        };
        let mut message = Message::assistant("");
        message.content = self.parts;
        message.tool_calls = self.tool_calls.into_values().collect();
        Ok(ChatResponse {
            id: self.id,
            model: self.model,
            message,
            finish_reason: reason,
            raw_finish_reason: raw,
            usage: self.usage.unwrap_or_default(),
            metadata: self.metadata,
        })
    }

    /// The error a consumer sees when `err` ends this stream, by the stream contract:
    /// - after the output started (a text, reasoning or tool-call delta arrived): an
    ///   [`ErrorKind::StreamInterrupted`] error carrying the partial output, with `err` as
    ///   its source and its retryability ([`LlmError::interrupted`]); an `err` that already
    ///   is one only gets the partial output, if it carries none;
    /// - before: `err` itself, with the partial output attached when something (usage)
    ///   arrived, so that nothing is lost.
    ///
    /// ```
    /// use nova_llm_core::{ErrorKind, LlmError, StreamAccumulator, StreamEvent};
    ///
    /// let mut acc = StreamAccumulator::new();
    /// let reset = || LlmError::new(ErrorKind::Connection, "reset by peer");
    /// assert_eq!(acc.interrupt(reset()).kind(), ErrorKind::Connection);
    /// acc.push(&StreamEvent::text("Hel"));
    /// let err = acc.interrupt(reset());
    /// assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    /// assert_eq!(err.cause_kind(), Some(ErrorKind::Connection));
    /// assert_eq!(err.partial().map(|p| p.text.as_str()), Some("Hel"));
    /// ```
    pub fn interrupt(&self, err: LlmError) -> LlmError {
        if self.saw_content && err.kind() != ErrorKind::StreamInterrupted {
            LlmError::interrupted(err, self.partial())
        } else if err.partial().is_none() && (self.saw_content || self.usage.is_some()) {
            err.with_partial(self.partial())
        } else {
            err
        }
    }
}

/// `texts` joined with a newline.
fn join<'a>(texts: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, t) in texts.enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(t);
    }
    out
}

/// Reads a stream to its end and assembles the whole reply.
///
/// # Errors
/// The stream's own error item as [`StreamAccumulator::interrupt`] makes it (a
/// `StreamInterrupted` error with the partial output once content arrived), or an
/// [`ErrorKind::StreamInterrupted`] error when the stream ended without a finish event.
pub async fn collect_stream(mut stream: ChatStream) -> Result<ChatResponse, LlmError> {
    let mut acc = StreamAccumulator::new();
    while let Some(item) = next_event(&mut stream).await {
        match item {
            Ok(event) => acc.push(&event),
            Err(err) => return Err(acc.interrupt(err)),
        }
    }
    acc.finish()
}

impl LlmError {
    /// Whether this error ended a stream after content had started (so a retry or fallback
    /// would repeat output the caller has already seen).
    pub fn is_mid_stream(&self) -> bool {
        self.kind() == ErrorKind::StreamInterrupted || self.partial().is_some_and(|p| !p.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{StreamStart, ToolCallDelta, stream_from_events, stream_from_items};

    /// The value of a future that never waits.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the future never waits")
    }

    #[test]
    fn text_deltas_accumulate_into_the_reply() {
        let mut acc = StreamAccumulator::new();
        let metadata = ResponseMetadata::new().with_request_id("req_1");
        let events = [
            StreamEvent::start(StreamStart::new("id1", "m1").with_metadata(metadata.clone())),
            StreamEvent::reasoning("think "),
            StreamEvent::reasoning("hard"),
            StreamEvent::text("Hello, "),
            StreamEvent::text("world"),
            StreamEvent::finish_raw("stop"),
            StreamEvent::usage(Usage::new(5, 2)),
        ];
        // What it says at each step, before the end.
        acc.push(&events[0]);
        assert!(!acc.saw_content() && !acc.is_finished());
        assert_eq!((acc.text().as_str(), acc.usage()), ("", None));
        for e in &events[1..4] {
            acc.push(e);
        }
        assert!(acc.saw_content() && !acc.is_finished());
        assert_eq!(acc.text(), "Hello, ");
        for e in &events[4..] {
            acc.push(e);
        }
        assert!(acc.saw_content() && acc.is_finished());
        assert_eq!(acc.text(), "Hello, world");
        assert_eq!(acc.usage(), Some(Usage::new(5, 2)));
        let r = acc.finish().unwrap();
        assert_eq!(r.text(), "Hello, world");
        assert_eq!(r.reasoning().as_deref(), Some("think hard"));
        assert_eq!((r.id.as_str(), r.model.as_str()), ("id1", "m1"));
        assert_eq!(r.usage, Usage::new(5, 2));
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(r.raw_finish_reason.as_deref(), Some("stop"));
        assert_eq!(r.metadata, metadata);
    }

    #[test]
    fn tool_call_fragments_join_by_index_without_duplicating_repeated_ids_and_names() {
        let d = |i: usize| ToolCallDelta::new(i);
        let events = [
            d(1).with_id("b")
                .with_name("second")
                .with_arguments("{\"y\""),
            d(0).with_id("a")
                .with_name("first")
                .with_arguments("{\"x\":"),
            // Some servers repeat id and name in every fragment.
            d(0).with_id("a").with_name("first").with_arguments(" 1}"),
            d(1).with_arguments(": 2}"),
        ];
        let mut acc = StreamAccumulator::new();
        for e in events {
            acc.push(&StreamEvent::tool_call(e));
        }
        acc.push(&StreamEvent::finish(FinishReason::ToolCalls));
        let r = acc.finish().unwrap();
        assert_eq!(
            r.tool_calls(),
            [
                ToolCall::new("a", "first", "{\"x\": 1}"),
                ToolCall::new("b", "second", "{\"y\": 2}"),
            ]
        );
        assert_eq!(r.text(), "");
    }

    #[test]
    fn a_stream_without_finish_is_a_truncation_error_with_the_partial_output() {
        let mut acc = StreamAccumulator::new();
        acc.push(&StreamEvent::text("Hello, wor"));
        acc.push(&StreamEvent::tool_call(
            ToolCallDelta::new(0)
                .with_id("c")
                .with_name("f")
                .with_arguments("{\"a"),
        ));
        let err = acc.finish().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
        assert!(err.is_mid_stream());
        let p = err.partial().unwrap();
        assert_eq!(p.text, "Hello, wor");
        assert_eq!(p.tool_calls[0].arguments, "{\"a");

        let empty = StreamAccumulator::new().finish().unwrap_err();
        assert_eq!(empty.kind(), ErrorKind::StreamInterrupted);
    }

    #[test]
    fn events_of_a_response_accumulate_back_to_it() {
        let r = ChatResponse::from_tool_calls([
            ToolCall::new("1", "f", "{}"),
            ToolCall::new("2", "g", "[]"),
        ])
        .with_id("x")
        .with_model("m")
        .with_reasoning("because")
        .with_usage(Usage::new(1, 2))
        .with_raw_finish_reason("tool_calls");
        let mut r = r;
        r.message.content.push(crate::ContentPart::text("calling"));
        let events = r.to_events();
        assert!(matches!(events.last(), Some(StreamEvent::Finish { .. })));
        let back = block_on(collect_stream(stream_from_events(events))).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn reasoning_parts_keep_their_order_signatures_and_redactions() {
        let sig = |s: &str| StreamEvent::ReasoningSignature {
            signature: s.into(),
            origin: "anthropic".into(),
        };
        let events = [
            StreamEvent::reasoning("first "),
            StreamEvent::reasoning("thought"),
            sig("s1"),
            // A signature with no text before it (the service withheld the text).
            sig("s2"),
            StreamEvent::ReasoningRedacted {
                data: "opaque".into(),
                origin: "anthropic".into(),
            },
            StreamEvent::text("Ans"),
            // Unsigned reasoning between text deltas splits nothing.
            StreamEvent::reasoning("more"),
            StreamEvent::text("wer"),
            StreamEvent::reasoning(" still"),
            // A signature ends the block: the text after it is a part of its own.
            sig("s3"),
            StreamEvent::text("Rest"),
            StreamEvent::finish(FinishReason::Stop),
        ];
        let mut acc = StreamAccumulator::new();
        for e in &events {
            acc.push(e);
        }
        let partial = acc.partial();
        assert_eq!(
            (partial.text.as_str(), partial.reasoning.as_str()),
            ("Answer\nRest", "first thought\nmore still")
        );
        let r = acc.finish().unwrap();
        assert_eq!(
            r.message.content,
            [
                ContentPart::Reasoning(
                    ReasoningPart::new("first thought").with_signature("s1", "anthropic")
                ),
                ContentPart::Reasoning(ReasoningPart::default().with_signature("s2", "anthropic")),
                ContentPart::Reasoning(ReasoningPart::redacted("opaque", "anthropic")),
                ContentPart::text("Answer"),
                ContentPart::Reasoning(
                    ReasoningPart::new("more still").with_signature("s3", "anthropic")
                ),
                ContentPart::text("Rest"),
            ]
        );
        assert_eq!(r.text(), "Answer\nRest");
        assert_eq!(r.reasoning().as_deref(), Some("first thought\nmore still"));
        // And the reply's events give the same reply back.
        let back = block_on(collect_stream(stream_from_events(r.to_events()))).unwrap();
        assert_eq!(back, r);

        // Reasoning no signature closed is kept.
        let mut acc = StreamAccumulator::new();
        acc.push(&StreamEvent::reasoning("unfinished"));
        assert_eq!(acc.partial().reasoning, "unfinished");
        acc.push(&StreamEvent::finish(FinishReason::Length));
        assert_eq!(
            acc.finish().unwrap().reasoning().as_deref(),
            Some("unfinished")
        );
    }

    #[test]
    fn collect_stream_returns_a_mid_stream_error_with_what_arrived() {
        let items = vec![
            Ok(StreamEvent::text("part")),
            Err(LlmError::new(ErrorKind::Connection, "reset by peer")),
            Ok(StreamEvent::text("never seen")),
        ];
        let err = block_on(collect_stream(stream_from_items(items))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
        assert_eq!(err.cause_kind(), Some(ErrorKind::Connection));
        assert!(err.is_retryable());
        assert_eq!(err.partial().unwrap().text, "part");
        assert!(err.is_mid_stream());

        let before = vec![Err(LlmError::new(ErrorKind::Server, "boom"))];
        let err = block_on(collect_stream(stream_from_items(before))).unwrap_err();
        assert!(err.partial().is_none());
        assert!(!err.is_mid_stream());

        // An empty partial output is not content: the error is not mid-stream.
        assert!(PartialOutput::default().is_empty());
        let empty = LlmError::new(ErrorKind::Server, "boom").with_partial(PartialOutput::default());
        assert!(!empty.is_mid_stream());
        let thought = PartialOutput {
            reasoning: "hm".into(),
            ..PartialOutput::default()
        };
        assert!(!thought.is_empty());
        assert!(
            LlmError::new(ErrorKind::Server, "boom")
                .with_partial(thought)
                .is_mid_stream()
        );
    }
}
