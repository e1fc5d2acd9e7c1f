//! The `rate_limit` middleware: requests and tokens per window, calls in flight, a fair
//! waiting queue or fail-fast, and adaptive slowdown from the service's own signals.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, ContentPart, ErrorKind, LlmError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::backend::{Acquire, MemoryWindows, RateLimitBackend, Ticket, WindowLimits, scope_entry};
use super::limited::{Admission, Limited};
use super::queue::{Queue, QueueRef, Waiting};
use super::signals::Signals;
use crate::FastMap;
use crate::call::{CallContext, EventKind};
use crate::plugin::{Middleware, Next};

/// What to do when a call may not go now.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Wait in a fair first-come first-served queue; fail with a rate-limited error (with
    /// the expected wait as retry-after) when the wait would exceed `max_wait`.
    Wait {
        /// The longest a call may wait in all.
        max_wait: Duration,
    },
    /// Fail at once with a rate-limited error carrying the expected wait.
    FailFast,
}

/// The `rate_limit` middleware.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::rate_limit::RateLimitLayer;
/// use nova_llm_provider::Provider;
///
/// let limits = RateLimitLayer::new()
///     .requests_per_minute(500)
///     .tokens_per_minute(200_000)
///     .max_in_flight(16)
///     .max_wait(Duration::from_secs(30));
/// let provider = Provider::builder(MockDriver::new()).rate_limit(limits).build();
/// assert_eq!(provider.layers(), ["events", "rate_limit"]);
/// ```
///
/// - **Requests** per window and **tokens per minute**, sliding windows that no window of
///   that length ever exceeds (requests admitted within a 64th of the window are counted
///   together, so memory stays small at any rate; see [`MemoryWindows`]): a request's
///   tokens are estimated before the call (the visible text at four characters a token,
///   plus its maximum output tokens or a default) and corrected with the real usage after.
///   A limit of zero requests is refused as an invalid request.
/// - **Calls in flight** at most `max_in_flight` (a stream holds its slot until it ends or
///   is dropped).
/// - **Fair waiting** (first come, first served) up to a maximum wait, or fail fast.
/// - **Adaptive** (on by default): the rate-limit headers of every reply and error
///   (remaining requests and tokens, reset times) and the `Retry-After` of a 429 hold new
///   calls back until the service's window resets, and calls are spaced out when less
///   than a tenth of the service's requests are left (what is left spread evenly over
///   what is left of the window, never past its end), so the service does not have to
///   say no.
/// - Limits apply to each service the provider calls (its own driver, and each driver a
///   fallback chain moves on to, by driver name: OpenAI's 429 never holds back calls to
///   Claude), or to each service and model with [`per_model`](Self::per_model).
/// - Cancellation safe: a call dropped while waiting leaves the queue; a dropped call or
///   stream gives back its slot.
/// - Events: `RateLimitWait` for every wait (how long), `RateLimitRejected` for every
///   refusal.
///
/// Clones share their counts, queues and slots.
#[derive(Clone)]
pub struct RateLimitLayer {
    limits: WindowLimits,
    backend: Arc<dyn RateLimitBackend>,
    in_flight: Option<Arc<Semaphore>>,
    max_in_flight: Option<usize>,
    mode: Mode,
    per_model: bool,
    adaptive: bool,
    default_output_tokens: u64,
    /// The waiting line of the whole provider (the scope without `per_model`): held
    /// directly, so the common case looks nothing up.
    queue: Arc<Queue>,
    /// The waiting lines of the other scopes (fallback targets, models with `per_model`).
    queues: Arc<RwLock<FastMap<String, Arc<Queue>>>>,
    /// The scope of the provider's own driver without `per_model`: empty, as it always
    /// was, so windows kept in a shared backend (Redis) keep their keys across versions.
    whole: Arc<str>,
    signals: Arc<Signals>,
}

impl fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limits", &self.limits)
            .field("max_in_flight", &self.max_in_flight)
            .field("mode", &self.mode)
            .field("per_model", &self.per_model)
            .field("adaptive", &self.adaptive)
            .finish_non_exhaustive()
    }
}

impl Default for RateLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimitLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "rate_limit";

    /// No limits yet (only the adaptive behaviour), waiting up to 60 s, in-memory windows.
    pub fn new() -> Self {
        RateLimitLayer {
            limits: WindowLimits::default(),
            backend: Arc::new(MemoryWindows::new()),
            in_flight: None,
            max_in_flight: None,
            mode: Mode::Wait {
                max_wait: Duration::from_secs(60),
            },
            per_model: false,
            adaptive: true,
            default_output_tokens: 256,
            queue: Arc::default(),
            queues: Arc::default(),
            whole: Arc::from(""),
            signals: Arc::default(),
        }
    }

    /// At most `n` requests in any window of `per`. Default: no limit.
    pub fn requests(mut self, n: u64, per: Duration) -> Self {
        self.limits.requests = Some((n, per));
        self
    }

    /// At most `n` requests in any minute. Default: no limit.
    pub fn requests_per_minute(self, n: u64) -> Self {
        self.requests(n, Duration::from_secs(60))
    }

    /// At most `n` tokens (estimated before, corrected after) in any minute. Default: no
    /// limit.
    pub fn tokens_per_minute(mut self, n: u64) -> Self {
        self.limits.tokens_per_minute = Some(n);
        self
    }

    /// At most `n` calls in flight at once (per process). Default: no limit.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = Some(n);
        self.in_flight = Some(Arc::new(Semaphore::new(n)));
        self
    }

    /// Wait up to `max_wait` for a turn. Default: wait, up to 60 s.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.mode = Mode::Wait { max_wait };
        self
    }

    /// Fail at once instead of waiting. Default: wait.
    pub fn fail_fast(mut self) -> Self {
        self.mode = Mode::FailFast;
        self
    }

    /// Separate limits (and queues, and adaptive state) for each model of each service.
    /// Default: one set for each service (driver).
    pub fn per_model(mut self, yes: bool) -> Self {
        self.per_model = yes;
        self
    }

    /// Follow the service's rate-limit headers and `Retry-After`. Default: on.
    pub fn adaptive(mut self, yes: bool) -> Self {
        self.adaptive = yes;
        self
    }

    /// The output tokens assumed for a request that sets no maximum. Default: 256.
    pub fn default_output_tokens(mut self, n: u64) -> Self {
        self.default_output_tokens = n;
        self
    }

    /// Counts in `backend` instead of in memory (a shared backend for many processes).
    pub fn backend(mut self, backend: Arc<dyn RateLimitBackend>) -> Self {
        self.backend = backend;
        self
    }

    /// Call slots free now (`None` without a limit on calls in flight).
    pub fn available_slots(&self) -> Option<usize> {
        self.in_flight.as_ref().map(|s| s.available_permits())
    }

    /// The estimated tokens of `request`: visible text at four characters a token, plus the
    /// maximum output tokens (or the default).
    pub fn estimate_tokens(&self, request: &ChatRequest) -> u64 {
        let chars: usize = request
            .dialog
            .visible()
            .flat_map(|m| &m.content)
            .map(|part| match part {
                ContentPart::Text { text } => text.chars().count(),
                _ => 0,
            })
            .sum();
        let output = request
            .params
            .max_tokens
            .map_or(self.default_output_tokens, u64::from);
        (chars as u64).div_ceil(4) + output
    }

    /// The scope of a call to `driver` (the driver it is going to: the provider's own, or a
    /// fallback target) for `request`. The provider's own driver keeps the scopes it always
    /// had (empty, or the model with [`per_model`](Self::per_model)), shared rather than
    /// made on every call; a fallback target's is its driver's name (and `/model`).
    fn scope(&self, request: &ChatRequest, cx: &CallContext, driver: &str, home: bool) -> Arc<str> {
        let model = || request.model.as_deref().unwrap_or(cx.model());
        match (home, self.per_model) {
            (true, false) => Arc::clone(&self.whole),
            (true, true) => Arc::from(model()),
            (false, false) => Arc::from(driver),
            (false, true) => Arc::from(format!("{driver}/{}", model())),
        }
    }

    /// The waiting line of `scope`; `home` when it is the provider's own driver's (the
    /// common case looks nothing up).
    fn queue(&self, scope: &str, home: bool) -> QueueRef<'_> {
        if !self.per_model && home {
            return QueueRef::Whole(&self.queue);
        }
        // Read-mostly: a scope's line is made once, then only looked up.
        if let Some(q) = self
            .queues
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
        {
            return QueueRef::Model(Arc::clone(q));
        }
        let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
        QueueRef::Model(Arc::clone(scope_entry(&mut queues, scope)))
    }

    fn reject(&self, cx: &CallContext, retry_after: Option<Duration>, why: &str) -> LlmError {
        cx.emit(EventKind::RateLimitRejected { retry_after });
        let err = LlmError::new(ErrorKind::RateLimited, format!("local rate limit: {why}"));
        match retry_after {
            Some(d) => err.with_retry_after(d),
            None => err,
        }
    }

    /// The latest a call that started waiting at `start` may be admitted.
    fn deadline(&self, start: Instant) -> Option<Instant> {
        match self.mode {
            Mode::Wait { max_wait } => start.checked_add(max_wait),
            Mode::FailFast => Some(start),
        }
    }

    /// Waits for a turn (or fails); returns what the call holds while it runs: a call
    /// slot (at once, or after a wait), then a place in the windows (at once when nobody
    /// waits and the limits allow, else in line).
    async fn admit(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
        driver: &str,
    ) -> Result<Admission, LlmError> {
        let home = driver == cx.driver();
        let scope = self.scope(request, cx, driver, home);
        // Without a token limit nothing counts tokens: no need to read the whole dialog.
        let tokens = if self.limits.tokens_per_minute.is_some() {
            self.estimate_tokens(request)
        } else {
            0
        };
        let mut wait = Wait::default();
        // The waits are boxed: rare, and large futures that would otherwise make every
        // call's future larger.
        let permit = match &self.in_flight {
            None => None,
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => Some(Box::pin(self.wait_for_slot(sem, cx, &mut wait)).await?),
            },
        };
        let queue = self.queue(&scope, home);
        let ticket = match self.admit_now(&queue, &scope, tokens, cx).await? {
            Some(ticket) => ticket,
            None => {
                let in_line = self.wait_in_line(&queue, &scope, tokens, cx, &mut wait);
                Box::pin(in_line).await?
            }
        };
        if let Some(waited) = wait.waited() {
            cx.emit(EventKind::RateLimitWait { waited });
        }
        Ok(Admission {
            _permit: permit,
            ticket,
            scope,
        })
    }

    /// A call slot that was not free at once: after waiting for one (or at once an error,
    /// failing fast).
    async fn wait_for_slot(
        &self,
        sem: &Arc<Semaphore>,
        cx: &CallContext,
        wait: &mut Wait,
    ) -> Result<OwnedSemaphorePermit, LlmError> {
        if self.mode == Mode::FailFast {
            return Err(self.reject(cx, None, "too many calls in flight"));
        }
        let acquire = Arc::clone(sem).acquire_owned();
        let permit = match self.deadline(wait.start()) {
            Some(d) => tokio::time::timeout_at(d, acquire)
                .await
                .map_err(|_| self.reject(cx, None, "no call slot freed up in time"))?,
            None => acquire.await,
        };
        // The semaphore is never closed.
        permit.map_err(|_| self.reject(cx, None, "closed"))
    }

    /// The fast path: nobody is waiting, so a call the limits and the service's signals
    /// allow goes at once, without taking its turn in line. (The signals are only looked
    /// at, and the clock read for them, once a service sent some.)
    async fn admit_now(
        &self,
        queue: &Queue,
        scope: &str,
        tokens: u64,
        cx: &CallContext,
    ) -> Result<Option<Ticket>, LlmError> {
        let signals = self.adaptive && self.signals.active();
        if queue.waiting.load(Ordering::Acquire) != 0
            || (signals && self.signals.wait(scope, Instant::now()).is_some())
        {
            return Ok(None);
        }
        match self
            .backend
            .try_acquire(scope, tokens, self.limits, cx)
            .await?
        {
            Acquire::Admitted(ticket) => {
                if signals {
                    self.signals.admitted(scope, Instant::now());
                }
                Ok(Some(ticket))
            }
            Acquire::Wait(_) => Ok(None),
        }
    }

    /// One at a time per scope, in arrival order (tokio's mutex is fair): while anyone
    /// waits, newcomers queue behind them. The head of the line waits until the service's
    /// signals and the windows let it go, or fails when that is past its deadline.
    async fn wait_in_line(
        &self,
        queue: &Queue,
        scope: &str,
        tokens: u64,
        cx: &CallContext,
        wait: &mut Wait,
    ) -> Result<Ticket, LlmError> {
        let _in_line = Waiting::enter(queue);
        let _turn = match Arc::clone(&queue.lock).try_lock_owned() {
            Ok(turn) => turn,
            Err(_) if self.mode == Mode::FailFast => {
                return Err(self.reject(cx, None, "other calls are waiting"));
            }
            Err(_) => {
                let lock = Arc::clone(&queue.lock).lock_owned();
                match self.deadline(wait.start()) {
                    Some(d) => tokio::time::timeout_at(d, lock)
                        .await
                        .map_err(|_| self.reject(cx, None, "the queue did not move in time"))?,
                    None => lock.await,
                }
            }
        };
        let ticket = loop {
            let now = Instant::now();
            let held = if self.adaptive {
                self.signals.wait(scope, now)
            } else {
                None
            };
            let pause = match held {
                Some(w) => w,
                None => match self
                    .backend
                    .try_acquire(scope, tokens, self.limits, cx)
                    .await?
                {
                    Acquire::Admitted(t) => break t,
                    Acquire::Wait(w) => w,
                },
            };
            let until = now + pause;
            if self.deadline(wait.start_at(now)).is_some_and(|d| until > d) {
                return Err(self.reject(cx, Some(pause), "the limit is reached"));
            }
            wait.note();
            tokio::time::sleep_until(until).await;
        };
        if self.adaptive {
            self.signals.admitted(scope, Instant::now());
        }
        Ok(ticket)
    }

    /// Learns from a failed call's rate-limit signals and settles its tokens: a call the
    /// service refused (429, 400) used none.
    async fn settle_failed(&self, admission: &Admission, e: &LlmError) {
        if self.adaptive {
            self.signals
                .learn(&admission.scope, e.rate_limit(), e.retry_after());
        }
        let refused = e.status().is_some_and(|s| s == 429 || s == 400);
        self.settle(admission, refused.then_some(0)).await;
    }

    async fn settle(&self, admission: &Admission, actual: Option<u64>) {
        // Only a token limit needs the real count.
        if self.limits.tokens_per_minute.is_none() {
            return;
        }
        if let Some(actual) = actual {
            // A failed correction leaves the estimate counted: safe.
            let _ = self
                .backend
                .reconcile(&admission.scope, admission.ticket, actual)
                .await;
        }
    }
}

#[async_trait]
impl Middleware for RateLimitLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let admission = self.admit(&request, cx, next.driver().name()).await?;
        let result = next.chat(request, cx).await;
        match &result {
            Ok(reply) => {
                if self.adaptive {
                    let snap = reply.metadata.rate_limit.as_ref();
                    self.signals.learn(&admission.scope, snap, None);
                }
                let actual = reply.usage.input_tokens + reply.usage.output_tokens;
                self.settle(&admission, (actual > 0).then_some(actual))
                    .await;
            }
            Err(e) => self.settle_failed(&admission, e).await,
        }
        result
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        let admission = self.admit(&request, cx, next.driver().name()).await?;
        match next.chat_stream(request, cx).await {
            Ok(inner) => Ok(Limited::wrap(
                inner,
                admission,
                Arc::clone(&self.backend),
                self.adaptive.then(|| Arc::clone(&self.signals)),
            )),
            Err(e) => {
                self.settle_failed(&admission, &e).await;
                Err(e)
            }
        }
    }
}

/// How long a call has waited for its turn: a call admitted at once reads no clock.
#[derive(Debug, Default)]
struct Wait {
    /// When the call first had to wait.
    start: Option<Instant>,
    /// Whether it waited for anything (only then is a wait reported).
    waited: bool,
}

impl Wait {
    /// When the waiting started (now, the first time it is asked).
    fn start(&mut self) -> Instant {
        self.start_at(Instant::now())
    }

    /// When the waiting started (`now`, the first time it is asked).
    fn start_at(&mut self, now: Instant) -> Instant {
        self.waited = true;
        *self.start.get_or_insert(now)
    }

    /// The call is about to wait.
    fn note(&mut self) {
        self.waited = true;
    }

    /// How long the call waited, if it did.
    fn waited(&self) -> Option<Duration> {
        self.start
            .filter(|_| self.waited)
            .map(|start| start.elapsed())
    }
}
