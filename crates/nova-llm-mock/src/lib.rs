//! # nova-llm-mock
//!
//! The deterministic test double for anything built on [`LlmDriver`]: add it as a
//! dev-dependency and write tests that read like the behaviour they pin.
//!
//! ## By default it answers `f(x)`
//! When the last row the model would see (hidden rows are skipped) has the text `x`, the
//! reply is `f(x)`. Multi-part rows use their text parts joined with a newline; a plain
//! completion of `x` gives `f(x)`; a tool result `r` gives the text `f(r)`.
//!
//! - **Usage** is counted in whitespace-separated words, never zero: input = the words of
//!   every visible row (tool-call arguments included), output = the words of the reply (of
//!   the arguments, for a tool call). Finish reason `stop`.
//! - **Structured output** (JSON Schema): an object matching the schema, each string property
//!   `k` set to `"f(x).k"` (nested: `"f(x).outer.inner"`), numbers at their minimum or 0,
//!   booleans `true`, arrays of `minItems` (at least one) items, enums their first value.
//!   A JSON-object format gives `{"reply": "f(x)"}`.
//! - **Tools**: when tools are offered, tool choice is not `none` and the last row is a user
//!   row, the mock calls the first tool (or the forced one) with arguments built the same
//!   way (`{"input": "f(x)"}` when the schema has no properties), id `call_<n>` for the
//!   mock's `n`th call; finish reason `tool_calls`.
//! - **Streams** cut the reply into deltas ([`Chunking`], words by default), then usage and
//!   finish; accumulated, they equal the non-streamed reply.
//! - An empty dialog, or parameters out of range, is an invalid-request error, as a real
//!   service answers.
//!
//! ## Scripted replies
//! [`MockDriver::push`] queues the next answers, consumed once each in FIFO order; then the
//! mock returns to `f(x)`. A [`Reply`] is a text, JSON, tool calls, a whole response, an
//! error, or a [`ScriptedStream`] (chosen deltas, failing after chunk N, gaps between
//! chunks); any of them can come late ([`Reply::after`]), and [`Reply::default_after`] is
//! the `f(x)` reply, late. The mock records every request and counts calls.
//!
//! ```
//! use nova_llm_core::{ErrorKind, LlmDriver, LlmError};
//! use nova_llm_mock::{MockDriver, Reply};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LlmError> {
//! let mock = MockDriver::new();
//! assert_eq!(mock.prompt("hello world").await?, "f(hello world)");
//!
//! // Script the next two answers: a rate limit, then a fixed text.
//! mock.push(Reply::error_kind(ErrorKind::RateLimited, "slow down"));
//! mock.push(Reply::text("scripted"));
//! let err = mock.prompt("a").await.unwrap_err();
//! assert!(err.is_retryable());
//! assert_eq!(mock.prompt("b").await?, "scripted");
//! assert_eq!(mock.prompt("c").await?, "f(c)"); // the queue is used up
//!
//! // Every request is recorded for assertions.
//! assert_eq!(mock.calls(), 4);
//! let last = mock.last_chat_request().expect("recorded");
//! assert_eq!(last.dialog.messages()[0].text(), "c");
//! # Ok(())
//! # }
//! ```
//!
//! The handle is cheap to clone and shares its state: hand one clone to the code under test
//! (for example as `Arc<dyn LlmDriver>`) and keep another to script and inspect. Each
//! [`MockDriver::new`] has its own state, so parallel tests never interfere.
#![doc(test(attr(deny(warnings))))]

mod fx;
mod reply;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nova_llm_core::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, CompletionRequest, CompletionResponse,
    LlmDriver, LlmError, StreamAccumulator, StreamEvent, ToolCall, Usage, async_trait,
    stream_from_events,
};
use serde_json::Value;

pub use reply::{Chunking, Reply, ScriptedStream};

/// What the mock was asked, in order.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// A `chat` call (also `prompt` and `structured`, which go through it).
    Chat(ChatRequest),
    /// A `chat_stream` call.
    ChatStream(ChatRequest),
    /// A `complete` call.
    Complete(CompletionRequest),
    /// A `complete_stream` call.
    CompleteStream(CompletionRequest),
}

impl Recorded {
    /// The chat request, for chat and chat-stream calls.
    pub fn chat_request(&self) -> Option<&ChatRequest> {
        match self {
            Recorded::Chat(r) | Recorded::ChatStream(r) => Some(r),
            _ => None,
        }
    }

    /// The completion request, for completion calls.
    pub fn completion_request(&self) -> Option<&CompletionRequest> {
        match self {
            Recorded::Complete(r) | Recorded::CompleteStream(r) => Some(r),
            _ => None,
        }
    }

    /// Whether the call asked for a stream.
    pub fn is_stream(&self) -> bool {
        matches!(self, Recorded::ChatStream(_) | Recorded::CompleteStream(_))
    }
}

/// Settings of a [`MockDriver`]; see [`MockDriver::builder`].
#[derive(Debug, Clone)]
pub struct MockBuilder {
    name: String,
    model: String,
    chunking: Chunking,
    capabilities: Capabilities,
    strict: bool,
}

impl Default for MockBuilder {
    fn default() -> Self {
        MockBuilder {
            name: "mock".into(),
            model: "mock-1".into(),
            chunking: Chunking::Words,
            capabilities: Capabilities::all(),
            strict: false,
        }
    }
}

impl MockBuilder {
    /// The driver name reported to layers. Default: `mock`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The model named in replies when the request names none. Default: `mock-1`.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// How default and scripted text replies are cut into stream deltas. Default: words.
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.chunking = chunking;
        self
    }

    /// The capabilities reported. Default: everything native.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Panic when the last handle is dropped with scripted replies left unused (skipped
    /// while already panicking), so a test cannot pass without reaching its script.
    /// Default: off.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The mock.
    pub fn build(self) -> MockDriver {
        MockDriver {
            shared: Arc::new(Shared {
                config: self,
                queue: Mutex::new(VecDeque::new()),
                recorded: Mutex::new(Vec::new()),
                calls: AtomicU64::new(0),
            }),
        }
    }
}

struct Shared {
    config: MockBuilder,
    queue: Mutex<VecDeque<Reply>>,
    recorded: Mutex<Vec<Recorded>>,
    calls: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let left = self
            .queue
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        if self.config.strict && left > 0 && !std::thread::panicking() {
            panic!("strict MockDriver dropped with {left} scripted replies never used");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make every other test's mock unusable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The mock driver: a cheap, clonable handle over shared state.
#[derive(Clone)]
pub struct MockDriver {
    shared: Arc<Shared>,
}

impl Default for MockDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MockDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockDriver")
            .field("name", &self.shared.config.name)
            .field("model", &self.shared.config.model)
            .field("pending", &self.pending())
            .field("calls", &self.calls())
            .finish()
    }
}

impl MockDriver {
    /// A mock with the default settings (name `mock`, model `mock-1`, word chunking).
    pub fn new() -> Self {
        MockBuilder::default().build()
    }

    /// Settings for a mock.
    pub fn builder() -> MockBuilder {
        MockBuilder::default()
    }

    /// Queues the next reply (FIFO; each is used once).
    pub fn push(&self, reply: impl Into<Reply>) -> &Self {
        lock(&self.shared.queue).push_back(reply.into());
        self
    }

    /// Queues a text reply.
    pub fn push_text(&self, text: impl Into<String>) -> &Self {
        self.push(Reply::text(text))
    }

    /// Queues a JSON reply.
    pub fn push_json(&self, value: Value) -> &Self {
        self.push(Reply::json(value))
    }

    /// Queues a tool-call reply.
    pub fn push_tool_calls(&self, calls: impl IntoIterator<Item = ToolCall>) -> &Self {
        self.push(Reply::tool_calls(calls))
    }

    /// Queues an error.
    pub fn push_error(&self, error: LlmError) -> &Self {
        self.push(Reply::error(error))
    }

    /// Queues a scripted stream.
    pub fn push_stream(&self, stream: ScriptedStream) -> &Self {
        self.push(Reply::stream(stream))
    }

    /// Queues the default `f(x)` reply, sent after `delay` (`Reply::default_after`).
    pub fn push_default_after(&self, delay: Duration) -> &Self {
        self.push(Reply::default_after(delay))
    }

    /// Number of scripted replies not used yet.
    pub fn pending(&self) -> usize {
        lock(&self.shared.queue).len()
    }

    /// Number of calls received (every method counts once).
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Every call received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    /// The chat requests received (plain and streamed), in order.
    pub fn chat_requests(&self) -> Vec<ChatRequest> {
        lock(&self.shared.recorded)
            .iter()
            .filter_map(Recorded::chat_request)
            .cloned()
            .collect()
    }

    /// The last chat request received (plain or streamed).
    pub fn last_chat_request(&self) -> Option<ChatRequest> {
        lock(&self.shared.recorded)
            .iter()
            .rev()
            .find_map(Recorded::chat_request)
            .cloned()
    }

    /// Clears the queue, the records and the call count.
    pub fn reset(&self) {
        lock(&self.shared.queue).clear();
        lock(&self.shared.recorded).clear();
        self.shared.calls.store(0, Ordering::SeqCst);
    }

    /// Counts and records the call, then takes the next scripted reply, if any.
    fn begin(&self, record: Recorded) -> (u64, Option<Reply>) {
        let n = self.shared.calls.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.shared.recorded).push(record);
        (n, lock(&self.shared.queue).pop_front())
    }

    /// The reply to a chat request, as a whole response or a script to play.
    async fn answer(
        &self,
        request: &ChatRequest,
        n: u64,
        reply: Option<Reply>,
    ) -> Result<Answer, LlmError> {
        request.validate()?;
        let Some(reply) = reply else {
            return self.default_answer(request, n).map(Answer::Whole);
        };
        if let Some(d) = reply.delay {
            tokio::time::sleep(d).await;
        }
        match reply.kind {
            reply::ReplyKind::Default => self.default_answer(request, n).map(Answer::Whole),
            reply::ReplyKind::Response(r) => {
                Ok(Answer::Whole(self.complete_scripted(request, n, *r)))
            }
            reply::ReplyKind::Error(e) => Err(e),
            reply::ReplyKind::Stream(s) => Ok(Answer::Script(s)),
        }
    }

    fn default_answer(&self, request: &ChatRequest, n: u64) -> Result<ChatResponse, LlmError> {
        fx::default_reply(request, &self.shared.config.model, n)
    }

    /// Fills what a scripted response left out: id, model, usage, finish reason.
    fn complete_scripted(
        &self,
        request: &ChatRequest,
        n: u64,
        mut r: ChatResponse,
    ) -> ChatResponse {
        if r.id.is_empty() {
            r.id = format!("mock-{n}");
        }
        if r.model.is_empty() {
            r.model = request
                .model
                .clone()
                .unwrap_or_else(|| self.shared.config.model.clone());
        }
        if r.usage == Usage::default() {
            r.usage = fx::usage_for(request, &r);
        }
        if r.raw_finish_reason.is_none() && r.finish_reason == nova_llm_core::FinishReason::Stop {
            r.finish_reason = fx::finish_for(&r);
        }
        r
    }

    async fn chat_inner(
        &self,
        request: &ChatRequest,
        n: u64,
        reply: Option<Reply>,
    ) -> Result<ChatResponse, LlmError> {
        match self.answer(request, n, reply).await? {
            Answer::Whole(r) => Ok(r),
            Answer::Script(s) => accumulate(s).await,
        }
    }

    async fn stream_inner(
        &self,
        request: &ChatRequest,
        n: u64,
        reply: Option<Reply>,
    ) -> Result<ChatStream, LlmError> {
        match self.answer(request, n, reply).await? {
            Answer::Whole(r) => Ok(stream_from_events(reply::events_of(
                &r,
                self.shared.config.chunking,
            ))),
            Answer::Script(s) => Ok(play(s)),
        }
    }
}

// Lives for one call only; boxing the common variant would add an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Answer {
    Whole(ChatResponse),
    Script(ScriptedStream),
}

/// A scripted stream read to its end, for a non-streamed call.
async fn accumulate(s: ScriptedStream) -> Result<ChatResponse, LlmError> {
    let mut acc = StreamAccumulator::new();
    for (i, event) in s.events.iter().enumerate() {
        if let Some((at, err)) = &s.fail
            && *at == i
        {
            return Err(acc.interrupt(err.clone()));
        }
        if let Some(gap) = s.gap {
            tokio::time::sleep(gap).await;
        }
        acc.push(event);
    }
    if let Some((_, err)) = s.fail.filter(|(at, _)| *at >= s.events.len()) {
        return Err(acc.interrupt(err));
    }
    acc.finish()
}

/// A scripted stream played event by event.
fn play(s: ScriptedStream) -> ChatStream {
    struct State {
        events: std::vec::IntoIter<StreamEvent>,
        sent: usize,
        fail: Option<(usize, LlmError)>,
        /// What was sent, for the error of a scripted failure (kept only when one is).
        acc: Option<StreamAccumulator>,
        gap: Option<Duration>,
        done: bool,
    }
    let state = State {
        events: s.events.into_iter(),
        sent: 0,
        acc: s.fail.is_some().then(StreamAccumulator::new),
        fail: s.fail,
        gap: s.gap,
        done: false,
    };
    // The scripted error as the stream contract makes it: `StreamInterrupted` with the
    // partial output once content was sent.
    fn failure(st: &mut State) -> Option<LlmError> {
        let err = st.fail.take().map(|(_, e)| e)?;
        Some(match &st.acc {
            Some(acc) => acc.interrupt(err),
            None => err,
        })
    }
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if st.fail.as_ref().is_some_and(|(at, _)| *at <= st.sent) {
            st.done = true;
            let err = failure(&mut st)?;
            return Some((Err(err), st));
        }
        let Some(event) = st.events.next() else {
            // Past the end: a failure scripted beyond the last event still happens.
            st.done = true;
            let err = failure(&mut st)?;
            return Some((Err(err), st));
        };
        if let Some(gap) = st.gap {
            tokio::time::sleep(gap).await;
        }
        st.sent += 1;
        if let Some(acc) = st.acc.as_mut() {
            acc.push(&event);
        }
        Some((Ok(event), st))
    }))
}

#[async_trait]
impl LlmDriver for MockDriver {
    fn name(&self) -> &str {
        &self.shared.config.name
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.config.capabilities
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let (n, reply) = self.begin(Recorded::Chat(request.clone()));
        self.chat_inner(&request, n, reply).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let (n, reply) = self.begin(Recorded::ChatStream(request.clone()));
        self.stream_inner(&request, n, reply).await
    }

    async fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, LlmError> {
        let (n, reply) = self.begin(Recorded::Complete(request.clone()));
        request.validate()?;
        let chat = request.to_chat();
        self.chat_inner(&chat, n, reply)
            .await
            .map(CompletionResponse::from)
    }

    async fn complete_stream(&self, request: CompletionRequest) -> Result<ChatStream, LlmError> {
        let (n, reply) = self.begin(Recorded::CompleteStream(request.clone()));
        request.validate()?;
        let chat = request.to_chat();
        self.stream_inner(&chat, n, reply).await
    }
}
