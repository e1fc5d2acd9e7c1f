//! Streaming: typed events, the boxed stream type, and the accumulator that turns a stream
//! back into a whole [`ChatResponse`].
//!
//! # The stream contract
//! Every driver's stream follows these rules, and every layer may rely on them:
//! 1. An error that happens before the stream has produced anything (bad request, 401,
//!    429, connection refused) fails the `chat_stream` call itself; it is never the first
//!    item.
//! 2. Content arrives as [`StreamEvent::TextDelta`], [`StreamEvent::ReasoningDelta`] and
//!    [`StreamEvent::ToolCallDelta`]. [`StreamEvent::Start`] and [`StreamEvent::Usage`] may
//!    come at any point.
//! 3. A complete stream ends with exactly one [`StreamEvent::Finish`], its last event. A
//!    service that marks the end of its reply without saying why (an OpenAI-compatible
//!    server's `[DONE]` with no finish reason) gives [`FinishReason::Unspecified`], never a
//!    made-up `Stop`.
//! 4. An error item ends the stream; nothing follows it. Once content has arrived, that
//!    error is an [`ErrorKind::StreamInterrupted`] error carrying the partial output, with
//!    the error that stopped the stream (a broken connection, an idle timeout, an error
//!    event from the service) as its [`source`](std::error::Error::source) and
//!    [`cause_kind`](LlmError::cause_kind), and that error's retryability. Before content,
//!    an error item is that error itself. Drivers, the mock and every provider layer follow
//!    this; [`StreamAccumulator::interrupt`] applies it.
//! 5. A stream that ends without a finish event was cut short: consumers must treat it as an
//!    [`ErrorKind::StreamInterrupted`] error, never as success.
//!    [`StreamAccumulator::finish`] and [`collect_stream`] do exactly that.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::dialog::Message;
use crate::error::{ErrorKind, LlmError};
use crate::metadata::ResponseMetadata;
pub use crate::partial::PartialOutput;
use crate::response::{ChatResponse, FinishReason};
use crate::tool_call::ToolCall;
use crate::usage::Usage;

/// A boxed, `Send` stream of events, as every driver returns it.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static>>;

/// One piece of a streamed reply.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// What the service said about the reply: its id, model, request id, rate limits.
    /// Boxed, as is [`ToolCallDelta`](StreamEvent::ToolCallDelta): events are moved through
    /// every layer of a stack, so the common ones (text) must stay small.
    Start(Box<StreamStart>),
    /// A piece of the reply's text.
    TextDelta {
        /// The text piece.
        text: String,
    },
    /// A piece of reasoning ("thinking") text.
    ReasoningDelta {
        /// The reasoning piece.
        text: String,
    },
    /// A fragment of a tool call.
    ToolCallDelta(Box<ToolCallDelta>),
    /// Token counts for the whole call.
    Usage(Usage),
    /// The end of a complete reply: why it stopped. Always the last event.
    Finish {
        /// Why generation stopped, normalized.
        reason: FinishReason,
        /// The finish reason exactly as the service sent it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<String>,
    },
}

impl StreamEvent {
    /// A text delta.
    pub fn text(text: impl Into<String>) -> Self {
        StreamEvent::TextDelta { text: text.into() }
    }

    /// A start event.
    pub fn start(start: StreamStart) -> Self {
        StreamEvent::Start(Box::new(start))
    }

    /// A tool-call fragment.
    pub fn tool_call(delta: ToolCallDelta) -> Self {
        StreamEvent::ToolCallDelta(Box::new(delta))
    }

    /// A reasoning delta.
    pub fn reasoning(text: impl Into<String>) -> Self {
        StreamEvent::ReasoningDelta { text: text.into() }
    }

    /// A finish event with a normalized reason and no raw value.
    pub fn finish(reason: FinishReason) -> Self {
        StreamEvent::Finish { reason, raw: None }
    }

    /// A finish event from the service's raw reason, normalized.
    pub fn finish_raw(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        StreamEvent::Finish {
            reason: FinishReason::from_raw(&raw),
            raw: Some(raw),
        }
    }

    /// Whether the event carries reply content (text, reasoning or a tool-call fragment).
    ///
    /// Retry and fallback may switch drivers only before the first content event.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            StreamEvent::TextDelta { .. }
                | StreamEvent::ReasoningDelta { .. }
                | StreamEvent::ToolCallDelta(_)
        )
    }
}

/// The service's description of a streamed reply, sent before or with its first content.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStart {
    /// The reply's id.
    #[serde(default)]
    pub id: String,
    /// The model that answers.
    #[serde(default)]
    pub model: String,
    /// Request id and rate-limit state.
    #[serde(default)]
    pub metadata: ResponseMetadata,
}

impl StreamStart {
    /// A start event with `id` and `model`.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        StreamStart {
            id: id.into(),
            model: model.into(),
            metadata: ResponseMetadata::default(),
        }
    }

    /// Sets the metadata. Default: empty.
    pub fn with_metadata(mut self, metadata: ResponseMetadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// A fragment of a tool call. Fragments with the same `index` belong to the same call.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which call of the reply this fragment belongs to.
    pub index: usize,
    /// The call id (usually only in the first fragment; some servers repeat it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool name (usually only in the first fragment; some servers repeat it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the JSON arguments, appended to what came before.
    #[serde(default)]
    pub arguments: String,
}

impl ToolCallDelta {
    /// A fragment of call `index`.
    pub fn new(index: usize) -> Self {
        ToolCallDelta {
            index,
            ..Self::default()
        }
    }

    /// Sets the call id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the tool name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the arguments fragment.
    pub fn with_arguments(mut self, arguments: impl Into<String>) -> Self {
        self.arguments = arguments.into();
        self
    }
}

/// Assembles stream events into a whole [`ChatResponse`].
///
/// Text and reasoning deltas are concatenated; tool-call fragments are joined by index (ids
/// and names that some servers repeat in every fragment are not duplicated); the last usage
/// and finish win.
///
/// ```
/// use nova_llm_core::{FinishReason, StreamAccumulator, StreamEvent, ToolCallDelta, Usage};
///
/// let mut acc = StreamAccumulator::new();
/// acc.push(&StreamEvent::text("Hel"));
/// acc.push(&StreamEvent::text("lo"));
/// acc.push(&StreamEvent::tool_call(ToolCallDelta::new(0).with_id("c1").with_name("f")));
/// acc.push(&StreamEvent::tool_call(ToolCallDelta::new(0).with_arguments("{}")));
/// acc.push(&StreamEvent::Usage(Usage::new(3, 2)));
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
    text: String,
    reasoning: String,
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
            .field("text_len", &self.text.len())
            .field("reasoning_len", &self.reasoning.len())
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
                self.text.push_str(text);
            }
            StreamEvent::ReasoningDelta { text } => {
                self.saw_content = true;
                self.reasoning.push_str(text);
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
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::Finish { reason, raw } => {
                self.finish = Some((reason.clone(), raw.clone()));
            }
        }
    }

    /// Whether any content event (text, reasoning, tool-call fragment) has arrived.
    pub fn saw_content(&self) -> bool {
        self.saw_content
    }

    /// Whether the finish event has arrived.
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
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
            text: self.text.clone(),
            reasoning: self.reasoning.clone(),
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
        let mut message = Message::assistant(self.text);
        message.tool_calls = self.tool_calls.into_values().collect();
        Ok(ChatResponse {
            id: self.id,
            model: self.model,
            message,
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
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

impl ChatResponse {
    /// The reply as the events of a stream: start, reasoning, text, tool calls (one fragment
    /// each), usage, finish. Accumulating them gives back an equal response.
    pub fn to_events(&self) -> Vec<StreamEvent> {
        let mut events = Vec::with_capacity(4 + self.message.tool_calls.len());
        events.push(StreamEvent::start(StreamStart {
            id: self.id.clone(),
            model: self.model.clone(),
            metadata: self.metadata.clone(),
        }));
        if let Some(r) = &self.reasoning {
            events.push(StreamEvent::reasoning(r.clone()));
        }
        let text = self.message.text();
        if !text.is_empty() {
            events.push(StreamEvent::text(text));
        }
        for (index, call) in self.message.tool_calls.iter().enumerate() {
            events.push(StreamEvent::tool_call(ToolCallDelta {
                index,
                id: Some(call.id.clone()),
                name: Some(call.name.clone()),
                arguments: call.arguments.clone(),
            }));
        }
        events.push(StreamEvent::Usage(self.usage));
        events.push(StreamEvent::Finish {
            reason: self.finish_reason.clone(),
            raw: self.raw_finish_reason.clone(),
        });
        events
    }
}

/// A [`ChatStream`] that yields `items` in order (for replays, tests and default
/// implementations).
pub fn stream_from_items(items: Vec<Result<StreamEvent, LlmError>>) -> ChatStream {
    Box::pin(ItemStream {
        items: items.into_iter(),
    })
}

/// A [`ChatStream`] that yields `events` in order, all successful.
pub fn stream_from_events(events: Vec<StreamEvent>) -> ChatStream {
    stream_from_items(events.into_iter().map(Ok).collect())
}

struct ItemStream {
    items: std::vec::IntoIter<Result<StreamEvent, LlmError>>,
}

impl Stream for ItemStream {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.items.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

/// The next item of a stream (a dependency-free `StreamExt::next`).
pub async fn next_event(stream: &mut ChatStream) -> Option<Result<StreamEvent, LlmError>> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
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

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The futures here never wait, so a no-op waker suffices.
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
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
            StreamEvent::Usage(Usage::new(5, 2)),
        ];
        // What it says at each step, before the end.
        acc.push(&events[0]);
        assert!(!acc.saw_content() && !acc.is_finished());
        assert_eq!((acc.text(), acc.usage()), ("", None));
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
        assert_eq!(r.reasoning.as_deref(), Some("think hard"));
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

    #[test]
    fn a_stream_of_items_knows_how_many_are_left() {
        let mut s = stream_from_events(vec![StreamEvent::text("a"), StreamEvent::text("b")]);
        assert_eq!(s.size_hint(), (2, Some(2)));
        block_on(next_event(&mut s));
        assert_eq!(s.size_hint(), (1, Some(1)));
    }

    #[test]
    fn content_events_are_told_apart() {
        assert!(StreamEvent::text("a").is_content());
        assert!(StreamEvent::reasoning("a").is_content());
        assert!(StreamEvent::tool_call(ToolCallDelta::new(0)).is_content());
        assert!(!StreamEvent::Usage(Usage::default()).is_content());
        assert!(!StreamEvent::finish(FinishReason::Stop).is_content());
        assert!(!StreamEvent::start(StreamStart::default()).is_content());
    }

    #[test]
    fn events_round_trip_through_json() {
        let events = vec![
            StreamEvent::start(StreamStart::new("i", "m")),
            StreamEvent::text("t"),
            StreamEvent::reasoning("r"),
            StreamEvent::tool_call(ToolCallDelta::new(2).with_id("c").with_arguments("{")),
            StreamEvent::Usage(Usage::new(1, 1)),
            StreamEvent::finish_raw("eos"),
        ];
        let json = serde_json::to_string(&events).unwrap();
        assert!(json.contains("\"type\":\"text_delta\""));
        let back: Vec<StreamEvent> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, events);
    }
}
