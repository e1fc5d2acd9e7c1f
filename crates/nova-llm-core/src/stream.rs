//! Streaming: typed events and the boxed stream type ([`StreamAccumulator`] turns a stream
//! back into a whole [`ChatResponse`]).
//!
//! [`StreamAccumulator`]: crate::StreamAccumulator
//!
//! # The stream contract
//! Every driver's stream follows these rules, and every layer may rely on them:
//! 1. An error that happens before the stream has produced anything (bad request, 401,
//!    429, connection refused) fails the `chat_stream` call itself; it is never the first
//!    item.
//! 2. Content arrives as [`StreamEvent::TextDelta`], [`StreamEvent::ReasoningDelta`],
//!    [`StreamEvent::ReasoningSignature`] (which closes the reasoning before it),
//!    [`StreamEvent::ReasoningRedacted`] and [`StreamEvent::ToolCallDelta`].
//!    [`StreamEvent::Start`] and [`StreamEvent::Usage`] may come at any point.
//! 3. A complete stream ends with exactly one [`StreamEvent::Finish`], its last event. A
//!    service that marks the end of its reply without saying why (an OpenAI-compatible
//!    server's `[DONE]` with no finish reason) gives [`FinishReason::Unspecified`], never a
//!    made-up `Stop`.
//! 4. An error item ends the stream; nothing follows it. Once content has arrived, that
//!    error is a [`StreamInterrupted`] error carrying the partial output, with the error
//!    that stopped the stream (a broken connection, an idle timeout, an error event from
//!    the service) as its [`source`](std::error::Error::source) and
//!    [`cause_kind`](LlmError::cause_kind), and that error's retryability. Before content,
//!    an error item is that error itself. Drivers, the mock and every provider layer follow
//!    this; [`StreamAccumulator::interrupt`] applies it.
//! 5. A stream that ends without a finish event was cut short: consumers must treat it as a
//!    [`StreamInterrupted`] error, never as success. [`StreamAccumulator::finish`] and
//!    [`collect_stream`] do exactly that.
//!
//! [`StreamInterrupted`]: crate::ErrorKind::StreamInterrupted
//! [`StreamAccumulator::interrupt`]: crate::StreamAccumulator::interrupt
//! [`StreamAccumulator::finish`]: crate::StreamAccumulator::finish
//! [`collect_stream`]: crate::collect_stream

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::{Deserialize, Serialize};

use crate::dialog::{ContentPart, ReasoningPart};
use crate::error::LlmError;
use crate::metadata::ResponseMetadata;
pub use crate::partial::PartialOutput;
use crate::response::{ChatResponse, FinishReason};
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
    /// The signature that closes the reasoning streamed since the last signature: opaque,
    /// kept with that reasoning in the reply's [`ReasoningPart`].
    ReasoningSignature {
        /// The signature, as the service sent it.
        signature: String,
        /// The service it came from (`anthropic`, ...).
        origin: String,
    },
    /// Reasoning the service sent redacted (encrypted): one whole opaque part.
    ReasoningRedacted {
        /// The opaque data, as the service sent it.
        data: String,
        /// The service it came from.
        origin: String,
    },
    /// A fragment of a tool call.
    ToolCallDelta(Box<ToolCallDelta>),
    /// Token counts for the whole call (boxed like the start: a usage is larger than a
    /// text delta and comes once).
    Usage(Box<Usage>),
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

    /// A usage event.
    pub fn usage(usage: Usage) -> Self {
        StreamEvent::Usage(Box::new(usage))
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

    /// Whether the event carries reply content (text, reasoning, a reasoning signature or
    /// redacted reasoning, or a tool-call fragment).
    ///
    /// Retry and fallback may switch drivers only before the first content event.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            StreamEvent::TextDelta { .. }
                | StreamEvent::ReasoningDelta { .. }
                | StreamEvent::ReasoningSignature { .. }
                | StreamEvent::ReasoningRedacted { .. }
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

impl ChatResponse {
    /// The reply as the events of a stream: start, then the content in order (reasoning
    /// with its signature, text, each run of text parts as one delta joined as
    /// [`Message::text`](crate::Message::text) joins them), tool calls (one fragment each),
    /// usage, finish. Accumulating them gives back an equal response.
    pub fn to_events(&self) -> Vec<StreamEvent> {
        let mut events = Vec::with_capacity(4 + self.message.tool_calls.len());
        events.push(StreamEvent::start(StreamStart {
            id: self.id.clone(),
            model: self.model.clone(),
            metadata: self.metadata.clone(),
        }));
        let mut text: Option<String> = None;
        for part in &self.message.content {
            match part {
                ContentPart::Text { text: t } => match &mut text {
                    Some(run) => {
                        run.push('\n');
                        run.push_str(t);
                    }
                    None => text = Some(t.clone()),
                },
                ContentPart::Reasoning(r) => {
                    if let Some(run) = text.take() {
                        events.push(StreamEvent::text(run));
                    }
                    reasoning_events(r, &mut events);
                }
                // Assistant replies carry no images or documents.
                _ => {}
            }
        }
        if let Some(run) = text.filter(|t| !t.is_empty()) {
            events.push(StreamEvent::text(run));
        }
        for (index, call) in self.message.tool_calls.iter().enumerate() {
            events.push(StreamEvent::tool_call(ToolCallDelta {
                index,
                id: Some(call.id.clone()),
                name: Some(call.name.clone()),
                arguments: call.arguments.clone(),
            }));
        }
        events.push(StreamEvent::usage(self.usage));
        events.push(StreamEvent::Finish {
            reason: self.finish_reason.clone(),
            raw: self.raw_finish_reason.clone(),
        });
        events
    }
}

/// The events of one reasoning part.
fn reasoning_events(r: &ReasoningPart, events: &mut Vec<StreamEvent>) {
    let origin = || r.origin.clone().unwrap_or_default();
    if let Some(data) = &r.redacted {
        events.push(StreamEvent::ReasoningRedacted {
            data: data.clone(),
            origin: origin(),
        });
        return;
    }
    if !r.text.is_empty() {
        events.push(StreamEvent::reasoning(r.text.clone()));
    }
    if let Some(signature) = &r.signature {
        events.push(StreamEvent::ReasoningSignature {
            signature: signature.clone(),
            origin: origin(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of a future that never waits.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the future never waits")
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
        for opaque in [
            StreamEvent::ReasoningSignature {
                signature: "s".into(),
                origin: "anthropic".into(),
            },
            StreamEvent::ReasoningRedacted {
                data: "d".into(),
                origin: "anthropic".into(),
            },
        ] {
            assert!(opaque.is_content());
        }
        assert!(!StreamEvent::usage(Usage::default()).is_content());
        assert!(!StreamEvent::finish(FinishReason::Stop).is_content());
        assert!(!StreamEvent::start(StreamStart::default()).is_content());
    }

    #[test]
    fn events_round_trip_through_json() {
        let events = vec![
            StreamEvent::start(StreamStart::new("i", "m")),
            StreamEvent::text("t"),
            StreamEvent::reasoning("r"),
            StreamEvent::ReasoningSignature {
                signature: "sig".into(),
                origin: "anthropic".into(),
            },
            StreamEvent::tool_call(ToolCallDelta::new(2).with_id("c").with_arguments("{")),
            StreamEvent::usage(Usage::new(1, 1)),
            StreamEvent::finish_raw("eos"),
        ];
        let json = serde_json::to_string(&events).unwrap();
        assert!(json.contains("\"type\":\"text_delta\""));
        let back: Vec<StreamEvent> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, events);
    }
}
