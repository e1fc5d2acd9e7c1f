//! The `retry` middleware: retryable errors only, bounded attempts, exponential backoff
//! with full jitter, `Retry-After`, a total deadline, per-attempt timeouts and a budget.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, ErrorKind, LlmError};
use tokio::time::Instant;

use super::budget::RetryBudget;
use crate::call::{CallContext, EventKind};
use crate::plugin::attempt::{Attempt, Outcome};
use crate::plugin::{Middleware, Next};

/// The `retry` middleware.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::retry::RetryLayer;
/// use nova_llm_provider::Provider;
///
/// let retry = RetryLayer::new()
///     .max_attempts(4)
///     .backoff(Duration::from_millis(200), Duration::from_secs(10))
///     .deadline(Duration::from_secs(60));
/// let provider = Provider::builder(MockDriver::new()).retry(retry).build();
/// assert_eq!(provider.layers(), ["events", "retry"]);
/// ```
///
/// - Retries only what the core classifies as retryable ([`LlmError::is_retryable`]): rate
///   limits, timeouts, connection, server and overload errors, interrupted streams. Never
///   invalid requests, authentication, quota, context length or content filtering.
/// - Waits `Retry-After` when the error carries one (and gives up if it is longer than
///   [`max_retry_after`](Self::max_retry_after)); otherwise exponential backoff with full
///   jitter: a random wait between zero and `base × 2^(attempt−1)`, capped.
/// - Gives up when the next attempt could not start before the call's deadline (the total
///   time of the call). Per-attempt, first-chunk and gap timeouts are the `timeout` layer's,
///   which sits inside this one so that a timed-out attempt is retried.
/// - A budget shared by all calls through the layer: retries may add at most a fraction of
///   the calls (plus a small reserve), so a failing service is not stormed.
/// - A streamed call is retried only while it has shown no content: the stream is read
///   up to its first content event before it is handed out; after that a failure ends it
///   with a `StreamInterrupted` error carrying the partial output.
/// - Emits `RetryScheduled` before each new attempt; [`CallContext::attempt`] counts them.
#[derive(Clone)]
pub struct RetryLayer {
    max_attempts: u32,
    base: Duration,
    cap: Duration,
    max_retry_after: Duration,
    deadline: Option<Duration>,
    budget: Arc<RetryBudget>,
    rng: Arc<Mutex<fastrand::Rng>>,
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_attempts", &self.max_attempts)
            .field("base", &self.base)
            .field("cap", &self.cap)
            .field("max_retry_after", &self.max_retry_after)
            .field("deadline", &self.deadline)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "retry";

    /// 3 attempts, backoff from 250 ms capped at 20 s, `Retry-After` up to 60 s, no
    /// deadline, the default budget.
    pub fn new() -> Self {
        RetryLayer {
            max_attempts: 3,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
            deadline: None,
            budget: Arc::new(RetryBudget::default()),
            rng: Arc::new(Mutex::new(fastrand::Rng::new())),
        }
    }

    /// Attempts in all, the first included. Default: 3.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first backoff and the cap. Default: 250 ms, 20 s.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.base = base;
        self.cap = cap.max(base);
        self
    }

    /// The longest `Retry-After` honoured; a longer one ends the retries. Default: 60 s.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The whole call, retries and waits included, must end within this. Default: none.
    pub fn deadline(mut self, total: Duration) -> Self {
        self.deadline = Some(total);
        self
    }

    /// The retry budget (shared by clones of this layer). Default: [`RetryBudget::default`].
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Arc::new(budget);
        self
    }

    /// Seeds the jitter, for reproducible waits. Default: a random seed.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        self
    }

    /// The budget, to inspect.
    pub fn current_budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// The wait before attempt `next` (from 2) after `err`, or `None` to give up.
    fn plan(&self, err: &LlmError, next: u32, deadline: Option<Instant>) -> Option<Duration> {
        if !err.is_retryable() || next > self.max_attempts {
            return None;
        }
        let delay = match err.retry_after() {
            Some(d) if d > self.max_retry_after => return None,
            Some(d) => d,
            None => {
                let exp = self
                    .base
                    .saturating_mul(2_u32.saturating_pow(next.saturating_sub(2)))
                    .min(self.cap);
                let nanos = u64::try_from(exp.as_nanos()).unwrap_or(u64::MAX);
                let r = self
                    .rng
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .u64(0..=nanos);
                Duration::from_nanos(r)
            }
        };
        if deadline.is_some_and(|d| Instant::now() + delay >= d) {
            return None;
        }
        self.budget.try_withdraw().then_some(delay)
    }
}

fn timed_out() -> LlmError {
    LlmError::new(ErrorKind::Timeout, "the call's deadline passed")
}

impl RetryLayer {
    /// The attempts of one call (plain or streamed), with waits in between.
    async fn attempts(
        &self,
        request: &ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
        kind: Attempt,
    ) -> Result<Outcome, LlmError> {
        self.budget.deposit();
        let deadline = self.deadline.map(|d| cx.started() + d);
        let mut attempt = 1;
        loop {
            cx.set_attempt(attempt);
            let call = kind.start(request.clone(), cx, next).outcome();
            let result = match deadline {
                Some(limit) => tokio::time::timeout_at(limit, call)
                    .await
                    .unwrap_or_else(|_| Err(timed_out())),
                None => call.await,
            };
            let err = match result {
                Ok(outcome) => return Ok(outcome),
                Err(e) => e,
            };
            let Some(delay) = self.plan(&err, attempt + 1, deadline) else {
                return Err(err);
            };
            attempt += 1;
            cx.emit(EventKind::RetryScheduled {
                attempt,
                delay,
                error: err.kind(),
            });
            tokio::time::sleep(delay).await;
        }
    }
}

#[async_trait]
impl Middleware for RetryLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.attempts(&request, cx, next, Attempt::Plain)
            .await?
            .into_reply()
            .await
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        Ok(self
            .attempts(&request, cx, next, Attempt::Stream)
            .await?
            .into_stream())
    }
}
