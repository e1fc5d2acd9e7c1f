//! The `timeout` middleware: a limit for the whole attempt, for the first content of a
//! stream, and for the gap between two stream events.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ErrorKind, LlmError, StreamAccumulator, StreamEvent,
};
use tokio::time::Instant;

use crate::call::CallContext;
use crate::plugin::attempt::until_first_content;
use crate::plugin::{Middleware, Next};

/// The `timeout` middleware. It sits inside `retry`, so its limits apply to each attempt
/// and a timed-out attempt (a retryable `Timeout` error) is retried; the retry layer's
/// deadline bounds the call as a whole.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::timeout::TimeoutLayer;
/// use nova_llm_provider::Provider;
///
/// let timeouts = TimeoutLayer::new()
///     .total(Duration::from_secs(120))
///     .first_chunk(Duration::from_secs(20))
///     .gap(Duration::from_secs(30));
/// let provider = Provider::builder(MockDriver::new()).timeout(timeouts).build();
/// assert_eq!(provider.layers(), ["events", "timeout"]);
/// ```
///
/// - `total`: the attempt, a stream read to its end included.
/// - `first_chunk`: a stream must show its first content within this; otherwise
///   `chat_stream` itself fails with a `Timeout` (nothing was shown, so it can be retried).
/// - `gap`: after that, at most this between two events; a stalled stream ends with a
///   `StreamInterrupted` error carrying the partial output, a `Timeout` its cause.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeoutLayer {
    total: Option<Duration>,
    first_chunk: Option<Duration>,
    gap: Option<Duration>,
}

impl TimeoutLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "timeout";

    /// No limits yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The longest an attempt may take. Default: none.
    pub fn total(mut self, d: Duration) -> Self {
        self.total = Some(d);
        self
    }

    /// The longest a stream may take to show its first content. Default: none.
    pub fn first_chunk(mut self, d: Duration) -> Self {
        self.first_chunk = Some(d);
        self
    }

    /// The longest gap between two events of a stream. Default: none.
    pub fn gap(mut self, d: Duration) -> Self {
        self.gap = Some(d);
        self
    }
}

fn timeout(what: String) -> LlmError {
    LlmError::new(ErrorKind::Timeout, what)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

#[async_trait]
impl Middleware for TimeoutLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        match self.total {
            Some(total) => tokio::time::timeout(total, next.chat(request, cx))
                .await
                .unwrap_or_else(|_| Err(timeout(format!("the call took longer than {total:?}")))),
            None => next.chat(request, cx).await,
        }
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        let start = Instant::now();
        let end = self.total.map(|t| start + t);
        let first = earliest(end, self.first_chunk.map(|f| start + f));
        let opened = async {
            let stream = next.chat_stream(request, cx).await?;
            until_first_content(stream).await
        };
        let stream = match first {
            Some(limit) => tokio::time::timeout_at(limit, opened)
                .await
                .unwrap_or_else(|_| {
                    Err(timeout(format!(
                        "no content within {:?} (time to first chunk)",
                        limit - start
                    )))
                })?,
            None => opened.await?,
        };
        if end.is_none() && self.gap.is_none() {
            return Ok(stream);
        }
        Ok(watch_gaps(stream, end, self.gap))
    }
}

struct Watched {
    inner: ChatStream,
    end: Option<Instant>,
    gap: Option<Duration>,
    acc: StreamAccumulator,
}

/// Ends the stream with a `Timeout` when an event takes longer than `gap`, or the stream
/// runs past `end` (after content: `StreamInterrupted` with the partial output, the timeout
/// its cause).
fn watch_gaps(inner: ChatStream, end: Option<Instant>, gap: Option<Duration>) -> ChatStream {
    let state = Watched {
        inner,
        end,
        gap,
        acc: StreamAccumulator::new(),
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut st = state?;
            let limit = earliest(st.end, st.gap.map(|g| Instant::now() + g));
            let item = match limit {
                Some(limit) => match tokio::time::timeout_at(limit, st.inner.next()).await {
                    Ok(item) => item?,
                    Err(_) => {
                        let why = if st.end.is_some_and(|e| e <= limit) {
                            "the stream ran past its total time limit".to_owned()
                        } else {
                            format!(
                                "the stream sent nothing for {:?} (gap timeout)",
                                st.gap.unwrap_or_default()
                            )
                        };
                        let err = st.acc.interrupt(timeout(why));
                        return Some((Err(err), None));
                    }
                },
                None => st.inner.next().await?,
            };
            match &item {
                Ok(event) => {
                    st.acc.push(event);
                    let done = matches!(event, StreamEvent::Finish { .. });
                    Some((item, (!done).then_some(st)))
                }
                Err(_) => Some((item, None)),
            }
        },
    ))
}
