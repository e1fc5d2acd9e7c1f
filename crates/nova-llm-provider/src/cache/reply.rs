//! A stored reply: a plain call's reply as it came, or a stream's events held compactly
//! (the text of all their deltas in one buffer, so that keeping a stream of thousands of
//! small deltas costs a few allocations, not one per delta).

use std::fmt;

use nova_llm_core::{
    ChatResponse, ChatStream, ContentPart, LlmError, StreamEvent, stream_from_events,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::compact::{self, Events, OTHER_BYTES, TEXT_BYTES, TOOL_BYTES};

/// A complete reply: the one form that serves both a plain call and a streamed call.
///
/// Seen as its event sequence (ending with `Finish`): a stored stream is replayed event for
/// event, and a stored plain reply is replayed as [`ChatResponse::to_events`] gives it. A
/// plain reply is kept as it came (a plain call that hits it gets it back unchanged); a
/// stream is kept compactly, the text of every text and reasoning delta in one buffer.
/// The events are read back as copies ([`events`](Self::events)). It serializes as
/// `{"events": [...]}`, so a shared store can keep it as JSON.
///
/// ```
/// use nova_llm_core::{ChatResponse, FinishReason, StreamEvent};
/// use nova_llm_provider::cache::CachedReply;
///
/// let reply = ChatResponse::from_text("hello");
/// let stored = CachedReply::from_response(&reply);
/// assert_eq!(stored.events(), reply.to_events());
/// assert_eq!(stored.to_response().unwrap(), reply);
///
/// // A stream is kept event for event, and answers a plain call too.
/// let events = vec![
///     StreamEvent::text("hel"),
///     StreamEvent::text("lo"),
///     StreamEvent::finish(FinishReason::Stop),
/// ];
/// let stored = CachedReply::from_events(events.clone()).unwrap();
/// assert_eq!(stored.events(), events);
/// assert_eq!(stored.to_response().unwrap().text(), "hello");
///
/// // A stream cut before its finish is not a reply.
/// assert!(CachedReply::from_events(vec![StreamEvent::text("hel")]).is_none());
/// ```
#[derive(Clone)]
pub struct CachedReply {
    form: Form,
}

#[derive(Clone)]
enum Form {
    /// A plain call's reply, as it came (boxed: a reply moves through every layer of a
    /// stack, so it is kept small).
    Response(Box<ChatResponse>),
    /// A stream's events.
    Events(Events),
}

impl CachedReply {
    /// The reply of a plain call.
    pub fn from_response(response: &ChatResponse) -> Self {
        CachedReply {
            form: Form::Response(Box::new(response.clone())),
        }
    }

    /// The events of a stream that finished cleanly; `None` when it did not finish (a cut
    /// stream is never stored).
    pub fn from_events(events: Vec<StreamEvent>) -> Option<Self> {
        if !matches!(events.last(), Some(StreamEvent::Finish { .. })) {
            return None;
        }
        Some(Self::collect(events))
    }

    /// The events, whatever they are.
    fn collect(events: Vec<StreamEvent>) -> Self {
        Self::from_compact(Events::from_vec(events))
    }

    /// A stream's events, already held compactly (a stream in flight's log, moved).
    pub(super) fn from_compact(events: Events) -> Self {
        CachedReply {
            form: Form::Events(events),
        }
    }

    /// How many events the reply has.
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Response(r) => r.to_events().len(),
            Form::Events(e) => e.len(),
        }
    }

    /// Whether it has no event (never the case for a reply made by `from_response` or
    /// `from_events`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies of the events, in order.
    pub fn events(&self) -> Vec<StreamEvent> {
        match &self.form {
            Form::Response(r) => r.to_events(),
            Form::Events(e) => e.iter().collect(),
        }
    }

    /// A copy of the event at `index`.
    pub fn event(&self, index: usize) -> Option<StreamEvent> {
        match &self.form {
            Form::Response(r) => r.to_events().into_iter().nth(index),
            Form::Events(e) => e.get(index),
        }
    }

    /// The reply as a plain call returns it.
    ///
    /// # Errors
    /// `StreamInterrupted` when the events do not end with `Finish` (a damaged entry).
    pub fn to_response(&self) -> Result<ChatResponse, LlmError> {
        match &self.form {
            Form::Response(r) => Ok(ChatResponse::clone(r)),
            Form::Events(e) => e.to_response(),
        }
    }

    /// The reply as a plain call returns it, without a copy of a plain reply.
    ///
    /// # Errors
    /// As [`to_response`](Self::to_response).
    pub fn into_response(self) -> Result<ChatResponse, LlmError> {
        match self.form {
            Form::Response(r) => Ok(*r),
            Form::Events(e) => e.to_response(),
        }
    }

    /// The reply replayed as a stream.
    pub fn to_stream(&self) -> ChatStream {
        stream_from_events(self.events())
    }

    /// Roughly how many bytes the entry holds (for byte-bounded stores): the sum of
    /// [`event_bytes`](Self::event_bytes) over its events.
    pub fn approx_bytes(&self) -> usize {
        match &self.form {
            Form::Response(r) => response_bytes(r),
            Form::Events(e) => e.approx_bytes(),
        }
    }

    /// Roughly how many bytes one event holds.
    pub fn event_bytes(event: &StreamEvent) -> usize {
        compact::event_bytes(event)
    }
}

/// [`CachedReply::approx_bytes`] of a plain reply, without making its events: the events of
/// [`ChatResponse::to_events`] (start, reasoning, text, a fragment per tool call, usage,
/// finish), weighed as [`CachedReply::event_bytes`] does.
fn response_bytes(r: &ChatResponse) -> usize {
    let mut texts = 0;
    let mut text_len = 0;
    for t in r.message.content.iter().filter_map(ContentPart::as_text) {
        texts += 1;
        text_len += t.len();
    }
    // `Message::text` joins the parts with newlines.
    let text_len = text_len + texts.max(1) - 1;
    let text = if text_len > 0 {
        text_len + TEXT_BYTES
    } else {
        0
    };
    let reasoning: usize = r
        .message
        .content
        .iter()
        .filter_map(ContentPart::as_reasoning)
        .map(|p| {
            let text = if p.text.is_empty() {
                0
            } else {
                p.text.len() + TEXT_BYTES
            };
            let opaque = p.signature.as_ref().or(p.redacted.as_ref());
            text + opaque.map_or(0, |o| o.len() + TEXT_BYTES)
        })
        .sum();
    let tools: usize = r
        .message
        .tool_calls
        .iter()
        .map(|c| c.arguments.len() + c.name.len() + TOOL_BYTES)
        .sum();
    3 * OTHER_BYTES + reasoning + text + tools
}

impl PartialEq for CachedReply {
    fn eq(&self, other: &Self) -> bool {
        self.events() == other.events()
    }
}

impl fmt::Debug for CachedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedReply")
            .field("events", &self.events())
            .finish()
    }
}

impl Serialize for CachedReply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("CachedReply", 1)?;
        s.serialize_field("events", &self.events())?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for CachedReply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            events: Vec<StreamEvent>,
        }
        Ok(Self::collect(Wire::deserialize(deserializer)?.events))
    }
}

#[cfg(test)]
mod tests {
    use nova_llm_core::{
        ChatResponse, ContentPart, FinishReason, Message, ResponseMetadata, StreamAccumulator,
        StreamEvent, StreamStart, ToolCall, ToolCallDelta, Usage,
    };

    use super::CachedReply;

    fn weight(events: &[StreamEvent]) -> usize {
        events.iter().map(CachedReply::event_bytes).sum()
    }

    /// Every kind of event, deltas of both kinds interleaved, an empty one among them.
    fn stream() -> Vec<StreamEvent> {
        vec![
            StreamEvent::start(
                StreamStart::new("id-1", "m")
                    .with_metadata(ResponseMetadata::new().with_request_id("req-9")),
            ),
            StreamEvent::reasoning("thi"),
            StreamEvent::reasoning("nk"),
            StreamEvent::text("hé"),
            StreamEvent::text(""),
            StreamEvent::reasoning("more"),
            StreamEvent::text("llo"),
            StreamEvent::tool_call(ToolCallDelta::new(0).with_id("c1").with_name("f")),
            StreamEvent::tool_call(ToolCallDelta::new(0).with_arguments("{\"a\":1}")),
            StreamEvent::text(" world"),
            StreamEvent::usage(Usage::new(3, 4)),
            StreamEvent::finish_raw("stop"),
        ]
    }

    #[test]
    fn a_stream_is_kept_event_for_event_and_accumulates_as_its_events_do() {
        let events = stream();
        let reply = CachedReply::from_events(events.clone()).unwrap();
        assert_eq!(reply.events(), events);
        assert_eq!(reply.len(), events.len());
        for (i, e) in events.iter().enumerate() {
            assert_eq!(reply.event(i).as_ref(), Some(e), "event {i}");
        }
        assert_eq!(reply.event(events.len()), None);
        let mut acc = StreamAccumulator::new();
        for e in &events {
            acc.push(e);
        }
        let want = acc.finish().unwrap();
        assert_eq!(reply.to_response().unwrap(), want);
        assert_eq!(reply.clone().into_response().unwrap(), want);
        assert_eq!(want.text(), "héllo world");
        assert_eq!(want.reasoning().as_deref(), Some("thinkmore"));
        assert_eq!(reply.approx_bytes(), weight(&events));
        // Replayed as a stream, event for event.
        let replayed = futures_executor_block_on(reply.to_stream());
        assert_eq!(replayed, events);
    }

    /// The events of a stream, read to its end without a runtime (a replay is ready at
    /// once).
    fn futures_executor_block_on(mut s: nova_llm_core::ChatStream) -> Vec<StreamEvent> {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(item)) = s.as_mut().poll_next(&mut cx) {
            out.push(item.unwrap());
        }
        out
    }

    #[test]
    fn a_plain_reply_is_kept_as_it_came_and_weighs_and_replays_as_its_events() {
        let mut rich = ChatResponse::new(
            Message::assistant("first")
                .with_part(ContentPart::image_url("https://example.com/a.png"))
                .with_part(ContentPart::text("second"))
                .with_tool_call(ToolCall::new("c1", "lookup", "{\"q\":\"x\"}"))
                .with_tool_call(ToolCall::new("c2", "f", "{}")),
        )
        .with_id("id-1")
        .with_model("m")
        .with_reasoning("because")
        .with_raw_finish_reason("tool_calls")
        .with_usage(Usage::new(5, 6))
        .with_metadata(ResponseMetadata::new().with_request_id("req-1"));
        rich.finish_reason = FinishReason::ToolCalls;
        let bare = ChatResponse::new(Message::assistant(""));
        let two_empty = ChatResponse::new(Message::assistant("").with_part(ContentPart::text("")));
        for r in [rich, bare, two_empty, ChatResponse::from_text("hi")] {
            let stored = CachedReply::from_response(&r);
            let events = r.to_events();
            assert_eq!(stored.events(), events);
            assert_eq!(stored.len(), events.len());
            assert_eq!(stored.event(1), events.get(1).cloned());
            // Back unchanged, even what its events do not carry (the image part).
            assert_eq!(stored.to_response().unwrap(), r);
            assert_eq!(stored.clone().into_response().unwrap(), r);
            assert_eq!(stored.approx_bytes(), weight(&events), "{r:?}");
            // Equal to the same events held as a stream.
            assert_eq!(stored, CachedReply::from_events(events).unwrap());
        }
    }

    #[test]
    fn it_serializes_as_its_events_and_reads_back_equal() {
        let events = stream();
        let reply = CachedReply::from_events(events.clone()).unwrap();
        let json = serde_json::to_value(&reply).unwrap();
        assert_eq!(json, serde_json::json!({ "events": events }));
        let back: CachedReply = serde_json::from_value(json).unwrap();
        assert_eq!(back, reply);
        assert_eq!(back.to_response().unwrap(), reply.to_response().unwrap());
        let plain = CachedReply::from_response(&ChatResponse::from_text("hi"));
        let json = serde_json::to_value(&plain).unwrap();
        assert_eq!(
            json,
            serde_json::json!({ "events": ChatResponse::from_text("hi").to_events() })
        );
        assert_eq!(serde_json::from_value::<CachedReply>(json).unwrap(), plain);
    }
}
