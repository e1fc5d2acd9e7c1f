//! Scripted replies: what a test queues for the mock to answer next.

use std::time::Duration;

use nova_llm_core::{
    ChatResponse, ErrorKind, FinishReason, LlmError, StreamEvent, ToolCall, ToolCallDelta, Usage,
};
use serde_json::Value;

/// How the mock cuts a reply's text into stream deltas.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunking {
    /// One delta per word, each word keeping the whitespace that follows it (the default).
    #[default]
    Words,
    /// One delta per character.
    Chars,
    /// Deltas of this many characters (at least 1).
    Fixed(usize),
}

impl Chunking {
    /// Cuts `text` into pieces that join back to exactly `text`.
    pub fn split(self, text: &str) -> Vec<String> {
        match self {
            Chunking::Words => {
                let mut out = Vec::new();
                let mut start = 0;
                let mut in_space = false;
                for (i, c) in text.char_indices() {
                    if c.is_whitespace() {
                        in_space = true;
                    } else if in_space {
                        out.push(text[start..i].to_owned());
                        start = i;
                        in_space = false;
                    }
                }
                if start < text.len() {
                    out.push(text[start..].to_owned());
                }
                out
            }
            Chunking::Chars => text.chars().map(String::from).collect(),
            Chunking::Fixed(n) => {
                let n = n.max(1);
                let chars: Vec<char> = text.chars().collect();
                chars.chunks(n).map(|c| c.iter().collect()).collect()
            }
        }
    }
}

/// One scripted answer. Queue it with [`MockDriver::push`](crate::MockDriver::push).
///
/// Every kind answers every call: a text reply streams as chunked deltas when the call is a
/// stream, a scripted stream is accumulated when the call is not.
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) kind: ReplyKind,
    pub(crate) delay: Option<Duration>,
}

#[derive(Debug, Clone)]
pub(crate) enum ReplyKind {
    /// The `f(x)` default (used for a pure delay).
    Default,
    Response(Box<ChatResponse>),
    Error(LlmError),
    Stream(ScriptedStream),
}

impl Reply {
    /// An assistant text reply (finish `stop`, usage computed the mock's way).
    pub fn text(text: impl Into<String>) -> Self {
        Self::of(ReplyKind::Response(Box::new(ChatResponse::from_text(text))))
    }

    /// A JSON reply, for structured-output calls (the text is the JSON).
    pub fn json(value: Value) -> Self {
        Self::text(value.to_string())
    }

    /// A reply asking for tool calls (finish `tool_calls`).
    pub fn tool_calls(calls: impl IntoIterator<Item = ToolCall>) -> Self {
        Self::of(ReplyKind::Response(Box::new(
            ChatResponse::from_tool_calls(calls),
        )))
    }

    /// A whole custom response, used as given (usage and finish reason included). An id or
    /// model left empty is filled in.
    pub fn response(response: ChatResponse) -> Self {
        Self::of(ReplyKind::Response(Box::new(response)))
    }

    /// The call fails with `error` (for a stream call: before the stream starts).
    pub fn error(error: LlmError) -> Self {
        Self::of(ReplyKind::Error(error))
    }

    /// The call fails with a new error of `kind`.
    pub fn error_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::error(LlmError::new(kind, message))
    }

    /// A scripted stream (a non-streamed call gets it accumulated).
    pub fn stream(stream: ScriptedStream) -> Self {
        Self::of(ReplyKind::Stream(stream))
    }

    /// The default `f(x)` reply, sent after `delay`.
    pub fn default_after(delay: Duration) -> Self {
        Self::of(ReplyKind::Default).after(delay)
    }

    /// This reply, sent after `delay` (on tokio's clock, so `tokio::time::pause()` controls
    /// it): `Reply::text("hi").after(Duration::from_secs(1))`. Default: at once.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    fn of(kind: ReplyKind) -> Self {
        Reply { kind, delay: None }
    }
}

impl From<LlmError> for Reply {
    fn from(e: LlmError) -> Self {
        Reply::error(e)
    }
}

impl From<ChatResponse> for Reply {
    fn from(r: ChatResponse) -> Self {
        Reply::response(r)
    }
}

impl From<ScriptedStream> for Reply {
    fn from(s: ScriptedStream) -> Self {
        Reply::stream(s)
    }
}

/// A stream played exactly as written: chosen events, an optional failure after a number
/// of them, an optional pause between events.
///
/// ```
/// use nova_llm_core::{ErrorKind, FinishReason, LlmError, Usage};
/// use nova_llm_mock::ScriptedStream;
///
/// // Two deltas, then the connection "drops".
/// let s = ScriptedStream::new()
///     .text("Hello, ")
///     .text("wor")
///     .usage(Usage::new(3, 2))
///     .finish(FinishReason::Stop)
///     .fail_after(2, LlmError::new(ErrorKind::Connection, "reset by peer"));
/// assert_eq!(s.len(), 4);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ScriptedStream {
    pub(crate) events: Vec<StreamEvent>,
    pub(crate) fail: Option<(usize, LlmError)>,
    pub(crate) gap: Option<Duration>,
}

impl ScriptedStream {
    /// A stream with no events yet (and no finish: add one, or it ends truncated).
    pub fn new() -> Self {
        Self::default()
    }

    /// The events of `response`, its text cut by `chunking`, then usage and finish.
    pub fn from_response(response: &ChatResponse, chunking: Chunking) -> Self {
        ScriptedStream {
            events: events_of(response, chunking),
            ..Self::default()
        }
    }

    /// Adds any event.
    pub fn event(mut self, event: StreamEvent) -> Self {
        self.events.push(event);
        self
    }

    /// Adds a text delta.
    pub fn text(self, text: impl Into<String>) -> Self {
        self.event(StreamEvent::text(text))
    }

    /// Adds a reasoning delta.
    pub fn reasoning(self, text: impl Into<String>) -> Self {
        self.event(StreamEvent::reasoning(text))
    }

    /// Adds a tool-call fragment.
    pub fn tool_call_delta(self, delta: ToolCallDelta) -> Self {
        self.event(StreamEvent::tool_call(delta))
    }

    /// Adds a usage event.
    pub fn usage(self, usage: Usage) -> Self {
        self.event(StreamEvent::usage(usage))
    }

    /// Adds the finish event.
    pub fn finish(self, reason: FinishReason) -> Self {
        self.event(StreamEvent::finish(reason))
    }

    /// After `n` events, the stream yields `error` and ends (the events after `n` are never
    /// sent). Default: no failure.
    pub fn fail_after(mut self, n: usize, error: LlmError) -> Self {
        self.fail = Some((n, error));
        self
    }

    /// Waits `gap` before each event (on tokio's clock), to simulate a slow or stalled
    /// stream. Default: no wait.
    pub fn gap(mut self, gap: Duration) -> Self {
        self.gap = Some(gap);
        self
    }

    /// Number of scripted events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is scripted.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The stream events of a whole response ([`ChatResponse::to_events`]: start, content in
/// order with reasoning signatures, tool calls, usage, finish), reasoning and text cut by
/// `chunking`, tool calls sent as their name and id first, then their arguments cut by
/// `chunking`.
pub(crate) fn events_of(response: &ChatResponse, chunking: Chunking) -> Vec<StreamEvent> {
    let whole = response.to_events();
    let mut events = Vec::with_capacity(whole.len() * 2);
    for event in whole {
        match event {
            StreamEvent::TextDelta { text } => {
                events.extend(chunking.split(&text).into_iter().map(StreamEvent::text));
            }
            StreamEvent::ReasoningDelta { text } => {
                events.extend(
                    chunking
                        .split(&text)
                        .into_iter()
                        .map(StreamEvent::reasoning),
                );
            }
            StreamEvent::ToolCallDelta(call) => {
                let index = call.index;
                let mut head = ToolCallDelta::new(index);
                head.id = call.id;
                head.name = call.name;
                events.push(StreamEvent::tool_call(head));
                events.extend(
                    chunking.split(&call.arguments).into_iter().map(|a| {
                        StreamEvent::tool_call(ToolCallDelta::new(index).with_arguments(a))
                    }),
                );
            }
            other => events.push(other),
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunking_joins_back_to_the_text() {
        let text = "f(héllo  wörld) \n end";
        for c in [
            Chunking::Words,
            Chunking::Chars,
            Chunking::Fixed(3),
            Chunking::Fixed(0),
        ] {
            let parts = c.split(text);
            assert_eq!(parts.concat(), text, "{c:?}");
            assert!(parts.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(Chunking::Words.split("f(a b)"), ["f(a ", "b)"]);
        assert_eq!(Chunking::Fixed(2).split("abcde"), ["ab", "cd", "e"]);
        assert_eq!(Chunking::Chars.split("ab").len(), 2);
        assert!(Chunking::Words.split("").is_empty());
    }
}
