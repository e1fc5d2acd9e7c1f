//! The `events` middleware: the lifecycle of every call as events and a tracing span, with
//! exactly one terminal event however the call ends.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_core::Stream;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ContentPart, ErrorKind, FinishReason, LlmError, Message,
    StreamEvent, Usage,
};
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

use crate::cache::FromCache;
use crate::call::ServedBy;
use crate::call::{CallContext, Completion, Event, EventKind, Failure, Hub, Operation, RequestId};
use crate::cost::PriceTable;
use crate::plugin::{Middleware, Next};

/// The `events` middleware, first in the default chain so that it sees each call once,
/// whatever the layers below it do (cache hits, retries, fallbacks).
///
/// It emits `Started`, `FirstChunk`, `StreamInterrupted` and the terminal `Completed` /
/// `Failed` events, computes cost from the price table, estimates usage when the driver
/// reports none, and wraps the call in a `tracing` span named `gen_ai` with the
/// OpenTelemetry GenAI attributes (`gen_ai.operation.name`, `gen_ai.provider.name`,
/// `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens`,
/// `gen_ai.usage.output_tokens`, `gen_ai.response.finish_reasons`, `error.type`).
#[derive(Debug, Clone)]
pub struct EventsLayer {
    prices: Arc<PriceTable>,
    capture_content: bool,
}

impl EventsLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "events";

    /// A layer pricing calls with `prices`; prompt and reply text go into events only when
    /// `capture_content` is set.
    pub fn new(prices: Arc<PriceTable>, capture_content: bool) -> Self {
        EventsLayer {
            prices,
            capture_content,
        }
    }

    /// The price table.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    fn start(&self, request: &ChatRequest, cx: &CallContext) -> Tracker {
        let span = tracing::info_span!(
            "gen_ai",
            gen_ai.operation.name = cx.operation().gen_ai_name(),
            gen_ai.provider.name = cx.driver(),
            gen_ai.request.model = cx.model(),
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.response.finish_reasons = Empty,
            error.type = Empty,
            nova.request_id = cx.request_id().get(),
            nova.from_cache = Empty,
        );
        let tracker = Tracker {
            hub: Arc::clone(cx.hub()),
            prices: Arc::clone(&self.prices),
            request_id: cx.request_id(),
            driver: cx.shared_driver(),
            model: cx.shared_model(),
            tags: cx.shared_tags(),
            operation: cx.operation(),
            started: cx.started(),
            input_chars: 0,
            capture: self.capture_content,
            span,
            done: false,
            first_content: None,
            text_chars: 0,
        };
        if tracker.hub.wants_all() {
            let prompt = self.capture_content.then(|| request.dialog.clone());
            tracker.emit(EventKind::Started {
                operation: cx.operation(),
                prompt,
            });
        }
        tracker
    }
}

#[async_trait]
impl Middleware for EventsLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let mut call = self.start(&request, cx);
        call.input_chars = visible_chars(&request);
        // Without a subscriber the span is disabled: entering it on every poll would do
        // nothing but cost time.
        let result = if call.span.is_disabled() {
            next.chat(request, cx).await
        } else {
            next.chat(request, cx).instrument(call.span.clone()).await
        };
        match &result {
            Ok(reply) => {
                let reply_text = call.capture.then(|| reply.text());
                // Only an estimate of the usage (when the service reported none) counts them.
                let output_chars = if reply.usage.is_reported() {
                    0
                } else {
                    text_chars(&reply.message)
                        + reasoning_chars(&reply.message)
                        + tool_call_chars(reply)
                };
                call.complete(
                    reply.usage,
                    output_chars,
                    reply.finish_reason.clone(),
                    reply.model.clone(),
                    Answer {
                        from_cache: from_cache(cx),
                        served_by: served_by(cx),
                    },
                    reply_text,
                );
            }
            Err(e) => {
                let used = call.used_by(e);
                call.fail(e, used);
            }
        }
        result
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        let mut call = self.start(&request, cx);
        call.input_chars = visible_chars(&request);
        let started = if call.span.is_disabled() {
            next.chat_stream(request, cx).await
        } else {
            next.chat_stream(request, cx)
                .instrument(call.span.clone())
                .await
        };
        match started {
            Ok(inner) => {
                let stats = StreamStats {
                    answer: Answer {
                        from_cache: from_cache(cx),
                        served_by: served_by(cx),
                    },
                    ..StreamStats::default()
                };
                Ok(Box::pin(Observed { inner, call, stats }))
            }
            Err(e) => {
                let used = call.used_by(&e);
                call.fail(&e, used);
                Err(e)
            }
        }
    }
}

/// Whether a cache answered the call (it said so with [`FromCache`]).
fn from_cache(cx: &CallContext) -> bool {
    cx.extensions().get::<FromCache>().is_some()
}

/// The driver a layer sent the call to, when not the provider's own ([`ServedBy`]).
fn served_by(cx: &CallContext) -> Option<Arc<str>> {
    cx.extensions().get::<ServedBy>().map(|s| Arc::clone(&s.0))
}

/// Who answered a call: a cache, and which driver.
#[derive(Debug, Default)]
struct Answer {
    from_cache: bool,
    /// `None`: the provider's own driver.
    served_by: Option<Arc<str>>,
}

fn visible_chars(request: &ChatRequest) -> usize {
    request.dialog.visible().map(text_chars).sum()
}

/// The characters of `Message::text` (the text parts joined by newlines), without building
/// it.
fn text_chars(message: &Message) -> usize {
    let (parts, chars): (usize, usize) = message
        .content
        .iter()
        .filter_map(ContentPart::as_text)
        .fold((0, 0), |(n, c), t| (n + 1, c + t.chars().count()));
    chars + parts.saturating_sub(1)
}

fn reasoning_chars(message: &Message) -> usize {
    message
        .content
        .iter()
        .filter_map(ContentPart::as_reasoning)
        .map(|r| r.text.chars().count())
        .sum()
}

fn tool_call_chars(reply: &ChatResponse) -> usize {
    reply
        .tool_calls()
        .iter()
        .map(|c| c.name.len() + c.arguments.len())
        .sum()
}

/// A rough token count for text nobody counted: four characters a token, at least one.
fn estimate_tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// What a stream has shown so far, beyond what its [`Tracker`] keeps (kept out of the
/// tracker so that a plain call's future stays small).
#[derive(Debug, Default)]
struct StreamStats {
    usage: Option<Usage>,
    response_model: String,
    other_chars: usize,
    reply: String,
    answer: Answer,
}

/// One call's lifecycle; its `Drop` guarantees the terminal event.
#[derive(Debug)]
struct Tracker {
    hub: Arc<Hub>,
    prices: Arc<PriceTable>,
    request_id: RequestId,
    driver: Arc<str>,
    model: Arc<str>,
    tags: Arc<BTreeMap<String, String>>,
    operation: Operation,
    started: Instant,
    input_chars: usize,
    capture: bool,
    span: tracing::Span,
    done: bool,
    /// When a stream's first content came.
    first_content: Option<Duration>,
    /// The characters of a stream's text so far.
    text_chars: usize,
}

impl Tracker {
    fn emit(&self, kind: EventKind) {
        self.emit_after(self.started.elapsed(), kind);
    }

    /// Emits `kind`, `elapsed` after the call started (read once by a caller that needs it
    /// for the event too).
    fn emit_after(&self, elapsed: Duration, kind: EventKind) {
        self.hub.emit(Event {
            request_id: self.request_id,
            driver: Arc::clone(&self.driver),
            model: Arc::clone(&self.model),
            at: SystemTime::now(),
            elapsed,
            tags: Arc::clone(&self.tags),
            kind,
        });
    }

    fn complete(
        &mut self,
        usage: Usage,
        output_chars: usize,
        finish_reason: FinishReason,
        response_model: String,
        answer: Answer,
        reply: Option<String>,
    ) {
        self.done = true;
        let from_cache = answer.from_cache;
        let usage = if !usage.is_reported() {
            Usage::new(
                estimate_tokens(self.input_chars),
                estimate_tokens(output_chars),
            )
            .with_estimated(true)
        } else {
            usage
        };
        let span = &self.span;
        if !span.is_disabled() {
            span.record("gen_ai.response.model", response_model.as_str());
            span.record("gen_ai.usage.input_tokens", usage.input_tokens);
            span.record("gen_ai.usage.output_tokens", usage.output_tokens);
            span.record("gen_ai.response.finish_reasons", finish_reason.as_str());
            span.record("nova.from_cache", from_cache);
        }
        if !self.hub.is_active() {
            return;
        }
        let cost_usd = if from_cache {
            Some(0.0)
        } else {
            self.price(&usage, &response_model)
        };
        let latency = self.started.elapsed();
        self.emit_after(
            latency,
            EventKind::Completed(Completion {
                operation: self.operation,
                latency,
                time_to_first_token: self.first_content,
                usage,
                cost_usd,
                finish_reason,
                response_model,
                served_by: answer.served_by.unwrap_or_else(|| Arc::clone(&self.driver)),
                from_cache,
                reply,
            }),
        );
    }

    /// What a failed call used, as far as `err` tells: the usage its partial output
    /// carries, else an estimate when it carries output, else nothing.
    fn used_by(&self, err: &LlmError) -> Option<(Usage, String)> {
        let partial = err.partial()?;
        let usage = match partial.usage {
            Some(u) if u.is_reported() => u,
            _ if partial.is_empty() => return None,
            _ => {
                let out = partial.text.chars().count()
                    + partial.reasoning.chars().count()
                    + partial
                        .tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len())
                        .sum::<usize>();
                Usage::new(estimate_tokens(self.input_chars), estimate_tokens(out))
                    .with_estimated(true)
            }
        };
        Some((usage, partial.model.clone()))
    }

    /// The cost of `usage` on `response_model` (or the requested model).
    fn price(&self, usage: &Usage, response_model: &str) -> Option<f64> {
        self.prices.cost(response_model, usage).or_else(|| {
            // The requested name, when the service answered under another one.
            (*self.model != *response_model)
                .then(|| self.prices.cost(&self.model, usage))
                .flatten()
        })
    }

    fn fail(&mut self, err: &LlmError, used: Option<(Usage, String)>) {
        self.fail_with(err.kind(), err.message().to_owned(), err.status(), used);
    }

    fn fail_with(
        &mut self,
        error: ErrorKind,
        message: String,
        status: Option<u16>,
        used: Option<(Usage, String)>,
    ) {
        self.done = true;
        if !self.span.is_disabled() {
            self.span.record("error.type", error.as_str());
        }
        if !self.hub.is_active() {
            return;
        }
        let cost_usd = used.as_ref().and_then(|(u, model)| self.price(u, model));
        let latency = self.started.elapsed();
        self.emit_after(
            latency,
            EventKind::Failed(Failure {
                operation: self.operation,
                latency,
                error,
                message,
                status,
                usage: used.map(|(u, _)| u),
                cost_usd,
            }),
        );
    }

    /// A stream that showed output and then ended early: say so, then fail, with what it
    /// used.
    fn interrupt(
        &mut self,
        error: ErrorKind,
        message: String,
        status: Option<u16>,
        used: Option<(Usage, String)>,
    ) {
        if self.first_content.is_some() && self.hub.wants_all() {
            self.emit(EventKind::StreamInterrupted {
                error,
                received_chars: self.text_chars,
            });
        }
        self.fail_with(error, message, status, used);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        if !self.done {
            let span = self.span.clone();
            let _entered = span.enter();
            self.interrupt(
                ErrorKind::Cancelled,
                "the caller dropped the call before it finished".to_owned(),
                None,
                None,
            );
        }
    }
}

/// A stream that reports its lifecycle as it is read.
struct Observed {
    inner: ChatStream,
    call: Tracker,
    stats: StreamStats,
}

impl Observed {
    fn observe(&mut self, event: &StreamEvent) {
        let call = &mut self.call;
        let stats = &mut self.stats;
        if call.first_content.is_none() && event.is_content() {
            let ttft = call.started.elapsed();
            call.first_content = Some(ttft);
            if call.hub.wants_all() {
                call.emit_after(
                    ttft,
                    EventKind::FirstChunk {
                        time_to_first_token: ttft,
                    },
                );
            }
        }
        match event {
            StreamEvent::TextDelta { text } => {
                call.text_chars += text.chars().count();
                if call.capture {
                    stats.reply.push_str(text);
                }
            }
            StreamEvent::ReasoningDelta { text } => {
                stats.other_chars += text.chars().count();
            }
            StreamEvent::ToolCallDelta(d) => {
                stats.other_chars += d.name.as_ref().map_or(0, String::len) + d.arguments.len();
            }
            StreamEvent::Usage(u) => stats.usage = Some(**u),
            StreamEvent::Start(s) => stats.response_model.clone_from(&s.model),
            StreamEvent::Finish { reason, .. } => {
                let usage = stats.usage.unwrap_or_default();
                let output_chars = call.text_chars + stats.other_chars;
                let model = std::mem::take(&mut stats.response_model);
                let reply = call.capture.then(|| std::mem::take(&mut stats.reply));
                call.complete(
                    usage,
                    output_chars,
                    reason.clone(),
                    model,
                    std::mem::take(&mut stats.answer),
                    reply,
                );
            }
            _ => {}
        }
    }
}

impl Stream for Observed {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.call.done {
            // Finished or failed: the contract says nothing follows.
            return Poll::Ready(None);
        }
        // The inner stream runs in the call's span (cloned: `observe` below borrows the
        // stream); a disabled span (no subscriber) is not entered at all.
        let span = (!this.call.span.is_disabled()).then(|| this.call.span.clone());
        let _entered = span.as_ref().map(tracing::Span::enter);
        let item = match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        match &item {
            Some(Ok(event)) => this.observe(event),
            Some(Err(e)) => {
                let used = this.used();
                this.call
                    .interrupt(e.kind(), e.message().to_owned(), e.status(), used);
            }
            None => {
                let used = this.used();
                this.call.interrupt(
                    ErrorKind::StreamInterrupted,
                    "the stream ended without a finish event".to_owned(),
                    None,
                    used,
                );
            }
        }
        Poll::Ready(item)
    }
}

impl Observed {
    /// What the stream used so far: the service's usage if it reported one, else an
    /// estimate once output arrived, else nothing.
    fn used(&self) -> Option<(Usage, String)> {
        let model = self.stats.response_model.clone();
        if let Some(u) = self.stats.usage.filter(Usage::is_reported) {
            return Some((u, model));
        }
        self.call.first_content?;
        let out = self.call.text_chars + self.stats.other_chars;
        let usage = Usage::new(estimate_tokens(self.call.input_chars), estimate_tokens(out))
            .with_estimated(true);
        Some((usage, model))
    }
}

/// A stream dropped before its end: the call is cancelled, with what it used so far
/// (tokens generated before the caller went away are billed all the same).
impl Drop for Observed {
    fn drop(&mut self) {
        if !self.call.done {
            let used = self.used();
            let span = self.call.span.clone();
            let _entered = span.enter();
            self.call.interrupt(
                ErrorKind::Cancelled,
                "the caller dropped the stream before it finished".to_owned(),
                None,
                used,
            );
        }
    }
}
