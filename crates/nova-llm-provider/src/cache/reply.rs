//! A stored reply: a plain call's reply as it came, or a stream's events held compactly
//! (the text of all their deltas in one buffer, so that keeping a stream of thousands of
//! small deltas costs a few allocations, not one per delta).

use std::fmt;

use nova_llm_core::{
    ChatResponse, ChatStream, ContentPart, LlmError, StreamAccumulator, StreamEvent,
    stream_from_events,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// stack, and this one is 464 bytes).
    Response(Box<ChatResponse>),
    /// A stream's events.
    Events(Events),
}

/// Events held compactly.
#[derive(Debug, Clone, Default)]
struct Events {
    /// The text of the text and reasoning deltas, one after the other.
    text: String,
    /// Each event, in order.
    slots: Vec<Slot>,
    /// The events other than text and reasoning deltas (start, tool-call fragments, usage,
    /// finish: a handful per reply).
    others: Vec<StreamEvent>,
}

/// One event of [`Events`]: 16 bytes, where a [`StreamEvent`] takes 56 and, for a text
/// delta, an allocation of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A text delta: its byte range in `text`.
    Text(u32, u32),
    /// A reasoning delta: its byte range in `text`.
    Reasoning(u32, u32),
    /// Another event: its index in `others`.
    Other(usize),
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
        let mut held = Events {
            slots: Vec::with_capacity(events.len()),
            ..Events::default()
        };
        for e in events {
            held.push_owned(e);
        }
        CachedReply {
            form: Form::Events(held),
        }
    }

    /// How many events the reply has.
    pub fn len(&self) -> usize {
        match &self.form {
            Form::Response(r) => r.to_events().len(),
            Form::Events(e) => e.slots.len(),
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
            Form::Events(e) => e.slots.iter().map(|s| e.materialize(*s)).collect(),
        }
    }

    /// A copy of the event at `index`.
    pub fn event(&self, index: usize) -> Option<StreamEvent> {
        match &self.form {
            Form::Response(r) => r.to_events().into_iter().nth(index),
            Form::Events(e) => e.slots.get(index).map(|s| e.materialize(*s)),
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
            Form::Events(e) => e
                .slots
                .iter()
                .map(|s| match *s {
                    Slot::Text(a, b) | Slot::Reasoning(a, b) => {
                        b.saturating_sub(a) as usize + TEXT_BYTES
                    }
                    Slot::Other(i) => e.others.get(i).map_or(0, Self::event_bytes),
                })
                .sum(),
        }
    }

    /// Roughly how many bytes one event holds.
    pub fn event_bytes(event: &StreamEvent) -> usize {
        match event {
            StreamEvent::TextDelta { text } | StreamEvent::ReasoningDelta { text } => {
                text.len() + TEXT_BYTES
            }
            StreamEvent::ToolCallDelta(d) => {
                d.arguments.len() + d.name.as_ref().map_or(0, String::len) + TOOL_BYTES
            }
            _ => OTHER_BYTES,
        }
    }
}

/// What [`CachedReply::event_bytes`] counts for a text or reasoning delta beyond its text,
/// for a tool-call fragment beyond its name and arguments, and for any other event.
const TEXT_BYTES: usize = 32;
const TOOL_BYTES: usize = 64;
const OTHER_BYTES: usize = 96;

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
    let reasoning = r.reasoning.as_ref().map_or(0, |t| t.len() + TEXT_BYTES);
    let tools: usize = r
        .message
        .tool_calls
        .iter()
        .map(|c| c.arguments.len() + c.name.len() + TOOL_BYTES)
        .sum();
    3 * OTHER_BYTES + reasoning + text + tools
}

impl Events {
    /// The reply as a plain call returns it: the events accumulated.
    fn to_response(&self) -> Result<ChatResponse, LlmError> {
        let mut acc = StreamAccumulator::new();
        let mut i = 0;
        while let Some(slot) = self.slots.get(i) {
            // A run of deltas of one kind is contiguous in `text`: one copy for the run
            // (accumulating "a" then "b" is accumulating "ab").
            let mut end = i + 1;
            match *slot {
                Slot::Text(start, mut stop) | Slot::Reasoning(start, mut stop) => {
                    let reasoning = matches!(slot, Slot::Reasoning(..));
                    while let Some(next) = self.slots.get(end) {
                        match (*next, reasoning) {
                            (Slot::Text(_, e), false) | (Slot::Reasoning(_, e), true) => {
                                stop = e;
                                end += 1;
                            }
                            _ => break,
                        }
                    }
                    let text = self.slice(start, stop);
                    acc.push(&if reasoning {
                        StreamEvent::reasoning(text)
                    } else {
                        StreamEvent::text(text)
                    });
                }
                Slot::Other(i) => {
                    if let Some(event) = self.others.get(i) {
                        acc.push(event);
                    }
                }
            }
            i = end;
        }
        acc.finish()
    }

    /// Appends a copy of `event`.
    fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.push_text(text, false),
            StreamEvent::ReasoningDelta { text } => self.push_text(text, true),
            other => self.push_other(other.clone()),
        }
    }

    /// Appends `event`.
    fn push_owned(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.push_text(&text, false),
            StreamEvent::ReasoningDelta { text } => self.push_text(&text, true),
            other => self.push_other(other),
        }
    }

    fn push_text(&mut self, text: &str, reasoning: bool) {
        let start = self.text.len();
        self.text.push_str(text);
        match (u32::try_from(start), u32::try_from(self.text.len())) {
            (Ok(a), Ok(b)) if reasoning => self.slots.push(Slot::Reasoning(a, b)),
            (Ok(a), Ok(b)) => self.slots.push(Slot::Text(a, b)),
            // Past 4 GiB of text (far beyond any entry a cache keeps): held as an event.
            _ => {
                let text = self.text.split_off(start);
                self.push_other(if reasoning {
                    StreamEvent::reasoning(text)
                } else {
                    StreamEvent::text(text)
                });
            }
        }
    }

    fn push_other(&mut self, event: StreamEvent) {
        self.slots.push(Slot::Other(self.others.len()));
        self.others.push(event);
    }

    fn slice(&self, start: u32, end: u32) -> &str {
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    fn materialize(&self, slot: Slot) -> StreamEvent {
        match slot {
            Slot::Text(a, b) => StreamEvent::text(self.slice(a, b)),
            Slot::Reasoning(a, b) => StreamEvent::reasoning(self.slice(a, b)),
            Slot::Other(i) => self
                .others
                .get(i)
                .cloned()
                .unwrap_or_else(|| StreamEvent::text(String::new())),
        }
    }
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

/// The events of a stream in flight, kept for the callers behind and for the store:
/// compact, like a stored stream, and able to let go of its oldest events.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    events: Events,
    /// How many events at the front are let go of (their space is reclaimed in bulk).
    first: usize,
    /// Whether any event was let go of (then it is no longer a whole reply).
    trimmed: bool,
}

impl EventLog {
    pub(crate) fn len(&self) -> usize {
        self.events.slots.len() - self.first
    }

    pub(crate) fn push(&mut self, event: &StreamEvent) {
        self.events.push(event);
    }

    /// Copies of the events from `from` to `to` (indices into this log).
    pub(crate) fn copy_range(&self, from: usize, to: usize) -> impl Iterator<Item = StreamEvent> {
        let held = &self.events;
        let slots = held
            .slots
            .get(self.first + from..self.first + to)
            .unwrap_or_default();
        slots.iter().map(|s| held.materialize(*s))
    }

    /// Copies of every event held.
    pub(crate) fn iter(&self) -> impl Iterator<Item = StreamEvent> {
        self.copy_range(0, self.len())
    }

    /// Lets go of the first `n` events. Their space is given back in bulk, once they are at
    /// least half of what is held and at least 64 events (at once when nothing is left).
    pub(crate) fn drop_front(&mut self, n: usize) {
        let held = &mut self.events;
        self.trimmed |= n > 0;
        self.first = (self.first + n).min(held.slots.len());
        if self.first == held.slots.len() {
            held.text.clear();
            held.slots.clear();
            held.others.clear();
            self.first = 0;
            return;
        }
        if self.first < 64 || self.first * 2 < held.slots.len() {
            return;
        }
        let kept = held.slots.split_off(self.first);
        self.first = 0;
        // Appended in order: the first kept delta starts the text still needed, and the
        // first kept other event the others.
        let text_from = kept.iter().find_map(|s| match *s {
            Slot::Text(a, _) | Slot::Reasoning(a, _) => Some(a),
            Slot::Other(_) => None,
        });
        let others_from = kept.iter().find_map(|s| match *s {
            Slot::Other(i) => Some(i),
            _ => None,
        });
        let text_from = text_from.unwrap_or(u32::try_from(held.text.len()).unwrap_or(u32::MAX));
        let others_from = others_from.unwrap_or(held.others.len());
        held.text.drain(..(text_from as usize).min(held.text.len()));
        held.others.drain(..others_from.min(held.others.len()));
        held.slots = kept
            .into_iter()
            .map(|s| match s {
                // Never below: appended in order (saturating all the same).
                Slot::Text(a, b) => {
                    Slot::Text(a.saturating_sub(text_from), b.saturating_sub(text_from))
                }
                Slot::Reasoning(a, b) => {
                    Slot::Reasoning(a.saturating_sub(text_from), b.saturating_sub(text_from))
                }
                Slot::Other(i) => Slot::Other(i.saturating_sub(others_from)),
            })
            .collect();
    }

    /// The log as a reply (with `last` appended), when it has let go of nothing.
    pub(crate) fn take_reply(&mut self, last: StreamEvent) -> Option<CachedReply> {
        if self.trimmed {
            return None;
        }
        let mut events = std::mem::take(&mut self.events);
        events.push_owned(last);
        Some(CachedReply {
            form: Form::Events(events),
        })
    }
}

#[cfg(test)]
mod tests {
    use nova_llm_core::{
        ChatResponse, ContentPart, FinishReason, Message, ResponseMetadata, StreamAccumulator,
        StreamEvent, StreamStart, ToolCall, ToolCallDelta, Usage,
    };

    use super::{CachedReply, EventLog};

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
            StreamEvent::Usage(Usage::new(3, 4)),
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
        assert_eq!(want.reasoning.as_deref(), Some("thinkmore"));
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
    fn an_event_held_compactly_takes_16_bytes_beside_its_text() {
        assert_eq!(std::mem::size_of::<super::Slot>(), 16);
        assert!(std::mem::size_of::<StreamEvent>() >= 3 * 16);
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

    /// The events the log holds space for (let go of or not), its text bytes and its other
    /// events.
    fn held(log: &EventLog) -> (usize, usize, usize) {
        let e = &log.events;
        (e.slots.len(), e.text.len(), e.others.len())
    }

    /// A log of `n` events: four bytes of text each, every tenth a usage event instead.
    fn log_of(n: u64) -> EventLog {
        let mut log = EventLog::default();
        for i in 0..n {
            if i % 10 == 9 {
                log.push(&StreamEvent::Usage(Usage::new(i, i)));
            } else {
                log.push(&StreamEvent::text(format!("{i:04}")));
            }
        }
        log
    }

    #[test]
    fn the_log_gives_space_back_once_half_of_it_and_at_least_64_events_are_let_go_of() {
        // 128 events: 63 let go of keep their space (fewer than 64)...
        let mut log = log_of(128);
        assert_eq!(held(&log), (128, 116 * 4, 12));
        log.drop_front(63);
        assert_eq!(held(&log), (128, 116 * 4, 12));
        // ...the 64th is half of what is held: the space of all 64 is given back.
        log.drop_front(1);
        assert_eq!(held(&log), (64, 58 * 4, 6));
        assert_eq!(log.len(), 64);
        assert_eq!(log.iter().next(), Some(StreamEvent::text("0064")));

        // 129 events: 64 let go of are less than half; 65 are more.
        let mut log = log_of(129);
        log.drop_front(64);
        assert_eq!(held(&log).0, 129);
        log.drop_front(1);
        assert_eq!(held(&log), (64, 58 * 4, 6));
        assert_eq!(log.iter().next(), Some(StreamEvent::text("0065")));

        // 100 events: 60 let go of are more than half, but fewer than 64: kept in place.
        let mut log = log_of(100);
        log.drop_front(60);
        assert_eq!(held(&log).0, 100);
        // All of them: everything is given back at once.
        log.drop_front(40);
        assert_eq!(held(&log), (0, 0, 0));
        // Past the end is the same as all.
        let mut log = log_of(10);
        log.drop_front(11);
        assert_eq!((log.len(), held(&log)), (0, (0, 0, 0)));
    }

    #[test]
    fn the_log_lets_go_of_its_oldest_events_and_keeps_the_rest_exact() {
        let all: Vec<StreamEvent> = (0..600)
            .map(|i| match i % 7 {
                3 => StreamEvent::Usage(Usage::new(i, i)),
                5 => StreamEvent::reasoning(format!("r{i}")),
                _ => StreamEvent::text(format!("w{i} ")),
            })
            .collect();
        let mut log = EventLog::default();
        for e in &all[..400] {
            log.push(e);
        }
        // Small steps (kept in place), then past half (space given back), then the rest.
        let mut gone = 0;
        for n in [1, 10, 50, 150, 100] {
            log.drop_front(n);
            gone += n;
            assert_eq!(log.len(), 400 - gone);
            assert_eq!(
                log.iter().collect::<Vec<_>>(),
                all[gone..400],
                "after {gone}"
            );
            assert_eq!(
                log.copy_range(5, 9).collect::<Vec<_>>(),
                all[gone + 5..gone + 9],
                "after {gone}"
            );
        }
        // Events pushed after a compaction land after the kept ones.
        for e in &all[400..] {
            log.push(e);
        }
        assert_eq!(log.iter().collect::<Vec<_>>(), all[gone..]);
        // A log that let go of events is not a whole reply.
        assert!(
            log.take_reply(StreamEvent::finish(FinishReason::Stop))
                .is_none()
        );
        log.drop_front(log.len());
        assert_eq!(log.len(), 0);
        assert_eq!(log.events.text.len(), 0, "its space is given back");
        // Emptied, it starts again from nothing.
        log.push(&all[0]);
        assert_eq!(log.iter().collect::<Vec<_>>(), all[..1]);
        // A log that let go of nothing (letting go of none counts as nothing) becomes a
        // reply whole.
        let mut log = EventLog::default();
        log.push(&all[0]);
        log.drop_front(0);
        log.push(&all[1]);
        let reply = log
            .take_reply(StreamEvent::finish(FinishReason::Stop))
            .unwrap();
        assert_eq!(
            reply.events(),
            [
                all[0].clone(),
                all[1].clone(),
                StreamEvent::finish(FinishReason::Stop)
            ]
        );
        assert_eq!(log.len(), 0, "moved out");
    }
}
