//! The `rate_limit` middleware: requests and tokens per window, calls in flight, a fair
//! waiting queue or fail-fast, and adaptive slowdown from the service's own signals.

use crate::FastMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ContentPart, ErrorKind, LlmError, RateLimitSnapshot,
    StreamEvent,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::backend::{Acquire, MemoryWindows, RateLimitBackend, Ticket, WindowLimits, scope_entry};
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
/// - Limits apply to the whole provider, or to each model with
///   [`per_model`](Self::per_model).
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
    /// The waiting lines of each model (with `per_model`).
    queues: Arc<RwLock<FastMap<String, Arc<Queue>>>>,
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

    /// Separate limits (and queues, and adaptive state) for each model. Default: one set
    /// for the whole provider.
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

    fn scope(&self, cx: &CallContext) -> String {
        if self.per_model {
            cx.model().to_owned()
        } else {
            String::new()
        }
    }

    fn queue(&self, scope: &str) -> QueueRef<'_> {
        if !self.per_model {
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

    /// Waits for a turn (or fails); returns what the call holds while it runs.
    async fn admit(&self, request: &ChatRequest, cx: &CallContext) -> Result<Admission, LlmError> {
        // When the call first had to wait: a call admitted at once reads no clock here.
        let mut start: Option<Instant> = None;
        let scope = self.scope(cx);
        // Without a token limit nothing counts tokens: no need to read the whole dialog.
        let tokens = if self.limits.tokens_per_minute.is_some() {
            self.estimate_tokens(request)
        } else {
            0
        };

        // Whether the call had to wait for anything (only then is a wait reported).
        let mut waited = false;
        let permit = match &self.in_flight {
            None => None,
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) if self.mode == Mode::FailFast => {
                    return Err(self.reject(cx, None, "too many calls in flight"));
                }
                Err(_) => {
                    waited = true;
                    let deadline = self.deadline(*start.get_or_insert_with(Instant::now));
                    let acquire = Arc::clone(sem).acquire_owned();
                    let permit = match deadline {
                        Some(d) => tokio::time::timeout_at(d, acquire)
                            .await
                            .map_err(|_| self.reject(cx, None, "no call slot freed up in time"))?,
                        None => acquire.await,
                    };
                    // The semaphore is never closed.
                    Some(permit.map_err(|_| self.reject(cx, None, "closed"))?)
                }
            },
        };

        let queue = self.queue(&scope);
        // The fast path: nobody is waiting, so a call the limits allow goes at once, without
        // taking its turn in the queue.
        // (The service's signals are only looked at, and the clock read for them, once a
        // service sent some.)
        let signals = self.adaptive && self.signals.active();
        if queue.waiting.load(Ordering::Acquire) == 0
            && !(signals && self.signals.wait(&scope, Instant::now()).is_some())
            && let Acquire::Admitted(ticket) = self
                .backend
                .try_acquire(&scope, tokens, self.limits, cx)
                .await?
        {
            if signals {
                self.signals.admitted(&scope, Instant::now());
            }
            return Ok(Admission {
                _permit: permit,
                ticket,
                scope,
            });
        }
        // Otherwise one at a time per scope, in arrival order (tokio's mutex is fair); while
        // anyone waits, newcomers queue behind them.
        let _waiting = Waiting::enter(&queue);
        let turn = match Arc::clone(&queue.lock).try_lock_owned() {
            Ok(t) => t,
            Err(_) if self.mode == Mode::FailFast => {
                return Err(self.reject(cx, None, "other calls are waiting"));
            }
            Err(_) => {
                waited = true;
                let deadline = self.deadline(*start.get_or_insert_with(Instant::now));
                let lock = Arc::clone(&queue.lock);
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, lock.lock_owned())
                        .await
                        .map_err(|_| self.reject(cx, None, "the queue did not move in time"))?,
                    None => lock.lock_owned().await,
                }
            }
        };
        let ticket = loop {
            let now = Instant::now();
            let held = if self.adaptive {
                self.signals.wait(&scope, now)
            } else {
                None
            };
            let wait = match held {
                Some(w) => w,
                None => match self
                    .backend
                    .try_acquire(&scope, tokens, self.limits, cx)
                    .await?
                {
                    Acquire::Admitted(t) => break t,
                    Acquire::Wait(w) => w,
                },
            };
            let until = now + wait;
            if self
                .deadline(*start.get_or_insert(now))
                .is_some_and(|d| until > d)
            {
                return Err(self.reject(cx, Some(wait), "the limit is reached"));
            }
            waited = true;
            tokio::time::sleep_until(until).await;
        };
        if self.adaptive {
            self.signals.admitted(&scope, Instant::now());
        }
        drop(turn);
        if waited && let Some(start) = start {
            cx.emit(EventKind::RateLimitWait {
                waited: start.elapsed(),
            });
        }
        Ok(Admission {
            _permit: permit,
            ticket,
            scope,
        })
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

/// The waiting line of one scope.
#[derive(Debug, Default)]
struct Queue {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Calls in the line (waiting for the lock or holding it).
    waiting: AtomicUsize,
}

/// A waiting line: the provider's own (borrowed, no reference count touched per call) or
/// a model's.
enum QueueRef<'a> {
    Whole(&'a Queue),
    Model(Arc<Queue>),
}

impl std::ops::Deref for QueueRef<'_> {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        match self {
            QueueRef::Whole(q) => q,
            QueueRef::Model(q) => q,
        }
    }
}

/// Counts a call in the line while it lives (also when its future is dropped).
struct Waiting<'a>(&'a Queue);

impl<'a> Waiting<'a> {
    fn enter(q: &'a Queue) -> Self {
        q.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(q)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the service said about its limits, per scope.
#[derive(Debug, Default)]
struct Signals {
    scopes: Mutex<FastMap<String, ServiceState>>,
    /// Whether the service ever said anything: until then every check is one atomic read.
    any: AtomicBool,
}

impl Signals {
    /// Whether a service has sent any signal yet (until then there is nothing to look at).
    fn active(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// How long the service's own signals say to hold back, if at all.
    fn wait(&self, scope: &str, now: Instant) -> Option<Duration> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let map = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        let s = map.get(scope)?;
        let blocked = s.blocked_until.filter(|t| *t > now);
        let spaced = match (s.spacing, s.last_admit) {
            // A gap ends with the window at the latest: the service's count starts again.
            (Some((gap, until)), Some(last)) if until > now => {
                Some((last + gap).min(until)).filter(|t| *t > now)
            }
            _ => None,
        };
        blocked.max(spaced).map(|t| t - now)
    }

    /// Notes an admission (the spacing counts from it); only scopes the service spoke of
    /// have a state to note it in.
    fn admitted(&self, scope: &str, now: Instant) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut map = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = map.get_mut(scope) {
            s.last_admit = Some(now);
        }
    }

    /// Learns from the service's rate-limit headers and `Retry-After`.
    fn learn(
        &self,
        scope: &str,
        snapshot: Option<&RateLimitSnapshot>,
        retry_after: Option<Duration>,
    ) {
        if retry_after.is_none() && snapshot.is_none_or(RateLimitSnapshot::is_empty) {
            // Nothing said: nothing to learn (and a scope the service never spoke of
            // keeps no state).
            if !self.any.load(Ordering::Acquire) {
                return;
            }
        }
        let now = Instant::now();
        let mut map = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        self.any.store(true, Ordering::Release);
        let s = scope_entry(&mut map, scope);
        let mut hold = |d: Duration| {
            let until = now + d;
            s.blocked_until = Some(s.blocked_until.map_or(until, |t| t.max(until)));
        };
        if let Some(d) = retry_after {
            hold(d);
        }
        let Some(snap) = snapshot else {
            return;
        };
        if snap.remaining_requests == Some(0) {
            hold(snap.reset_requests.unwrap_or(Duration::from_secs(1)));
        }
        if snap.remaining_tokens == Some(0) {
            hold(snap.reset_tokens.unwrap_or(Duration::from_secs(1)));
        }
        s.spacing = None;
        if let (Some(limit), Some(left), Some(reset)) = (
            snap.limit_requests,
            snap.remaining_requests,
            snap.reset_requests,
        ) && left > 0
            && left * 10 <= limit
        {
            // Spread what is left evenly over what is left of the window.
            let gap = reset / u32::try_from(left + 1).unwrap_or(u32::MAX);
            s.spacing = Some((gap, now + reset));
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ServiceState {
    blocked_until: Option<Instant>,
    /// Space calls by this much until this time.
    spacing: Option<(Duration, Instant)>,
    last_admit: Option<Instant>,
}

/// What an admitted call holds.
#[derive(Debug)]
struct Admission {
    _permit: Option<OwnedSemaphorePermit>,
    ticket: Ticket,
    scope: String,
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
        let admission = self.admit(&request, cx).await?;
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
        let admission = self.admit(&request, cx).await?;
        match next.chat_stream(request, cx).await {
            Ok(inner) => Ok(self.limited(inner, admission)),
            Err(e) => {
                self.settle_failed(&admission, &e).await;
                Err(e)
            }
        }
    }
}

/// A stream that holds the call's slot until it ends or is dropped. Written by hand (no
/// `unfold`): it is on the path of every event.
struct Limited {
    inner: ChatStream,
    /// `None` once the stream ended: the slot is back.
    admission: Option<Admission>,
    backend: Arc<dyn RateLimitBackend>,
    signals: Option<Arc<Signals>>,
    usage: Option<u64>,
    /// The `Finish`, held while the token count is corrected.
    settling: Option<(Settle, Result<StreamEvent, LlmError>)>,
}

type Settle = Pin<Box<dyn Future<Output = ()> + Send>>;

impl RateLimitLayer {
    /// Wraps a stream: it learns from the headers on its `Start`, and corrects the token
    /// count with its usage before handing out its `Finish`.
    fn limited(&self, inner: ChatStream, admission: Admission) -> ChatStream {
        Box::pin(Limited {
            inner,
            admission: Some(admission),
            backend: Arc::clone(&self.backend),
            signals: self.adaptive.then(|| Arc::clone(&self.signals)),
            usage: None,
            settling: None,
        })
    }
}

impl Stream for Limited {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some((settle, _)) = this.settling.as_mut() {
            if settle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Finished: the slot goes back now.
            this.admission = None;
            return Poll::Ready(this.settling.take().map(|(_, finish)| finish));
        }
        let Some(admission) = this.admission.as_ref() else {
            return Poll::Ready(None);
        };
        let item = match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                this.admission = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(item)) => item,
        };
        let scope = admission.scope.as_str();
        match &item {
            Ok(StreamEvent::Start(start)) => {
                if let (Some(sig), Some(snap)) = (&this.signals, &start.metadata.rate_limit) {
                    sig.learn(scope, Some(snap), None);
                }
            }
            Ok(StreamEvent::Usage(u)) => this.usage = Some(u.input_tokens + u.output_tokens),
            Ok(StreamEvent::Finish { .. }) => {
                if let Some(actual) = this.usage {
                    let backend = Arc::clone(&this.backend);
                    let scope = scope.to_owned();
                    let ticket = admission.ticket;
                    // A failed correction leaves the estimate counted: safe.
                    let settle: Settle = Box::pin(async move {
                        let _ = backend.reconcile(&scope, ticket, actual).await;
                    });
                    this.settling = Some((settle, item));
                    return Pin::new(this).poll_next(cx);
                }
                this.admission = None;
            }
            Err(e) => {
                if let Some(sig) = &this.signals {
                    sig.learn(scope, e.rate_limit(), e.retry_after());
                }
                this.admission = None;
            }
            Ok(_) => {}
        }
        Poll::Ready(Some(item))
    }
}
