//! The `fallback` middleware: an ordered chain of drivers, error-specific chains, a circuit
//! breaker per driver; switches drivers only before a stream's first content.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, ErrorKind, LlmDriver, LlmError};
use tokio::time::Instant;

use crate::call::{CallContext, EventKind, ServedBy};
use crate::circuit::{Admit, CircuitBreaker, CircuitConfig, Transition};
use crate::plugin::attempt::{Attempt, Outcome};
use crate::plugin::{Middleware, Next};

/// A driver to fall back to, with the model to ask it for.
#[derive(Clone)]
pub struct Target {
    driver: Arc<dyn LlmDriver>,
    model: Option<String>,
    name: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Target {
    /// `driver` asked for `model` (`None`: the request's model).
    pub fn new(driver: Arc<dyn LlmDriver>, model: Option<&str>) -> Self {
        let name = match model {
            Some(m) => format!("{}/{m}", driver.name()),
            None => driver.name().to_owned(),
        };
        Target {
            driver,
            model: model.map(str::to_owned),
            name,
        }
    }

    /// `driver name/model`, as events and errors name it.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The `fallback` middleware.
///
/// ```
/// use std::sync::Arc;
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::fallback::FallbackLayer;
/// use nova_llm_provider::Provider;
///
/// let backup = Arc::new(MockDriver::builder().name("backup").build());
/// let big = Arc::new(MockDriver::builder().name("big").build());
/// let fallback = FallbackLayer::new()
///     .then(backup, Some("gpt-4o-mini"))
///     .on_context_length(big, Some("gpt-4.1"))
///     .circuit_breaker(Default::default());
/// let provider = Provider::builder(MockDriver::new()).fallback(fallback).build();
/// assert_eq!(provider.layers(), ["events", "fallback"]);
/// ```
///
/// - The driver of the provider comes first, then each fallback in order. The layers below
///   this one (retry, rate limits, timeouts, yours) apply to every driver tried, so a
///   driver's retries are spent before the next is tried.
/// - Moves on after a retryable error; after another error only for the kinds given to
///   [`also_on`](Self::also_on). A context-length error goes to the
///   [`on_context_length`](Self::on_context_length) chain and a content-filter error to the
///   [`on_content_filter`](Self::on_content_filter) chain, when they are set. Such a chain
///   is tried in order (a driver that overflows too passes the call to the next, larger
///   one) and entered at most once per call.
/// - **Streams** switch drivers only before their first content event. A failure after
///   content has started ends the stream with a `StreamInterrupted` error carrying the
///   partial text, tool calls and usage: nothing already generated is lost.
/// - With a [`circuit_breaker`](Self::circuit_breaker), each driver has one: after enough
///   failures it is skipped for a cooldown, then one probe call decides. When every
///   driver's circuit is open the call fails at once with an error naming them and when
///   they may recover (or waits for the first to recover, with
///   [`wait_when_all_open`](Self::wait_when_all_open)).
/// - Emits `Fallback` at every switch, `CircuitOpened` / `CircuitClosed` at every
///   transition.
#[derive(Clone, Default)]
pub struct FallbackLayer {
    chain: Vec<Target>,
    on_context_length: Vec<Target>,
    on_content_filter: Vec<Target>,
    also_on: Vec<ErrorKind>,
    circuit: Option<CircuitConfig>,
    breakers: Arc<Mutex<HashMap<String, Arc<CircuitBreaker>>>>,
    wait_when_all_open: bool,
}

impl fmt::Debug for FallbackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("chain", &self.chain)
            .field("on_context_length", &self.on_context_length)
            .field("on_content_filter", &self.on_content_filter)
            .field("also_on", &self.also_on)
            .field("circuit", &self.circuit)
            .finish_non_exhaustive()
    }
}

/// Which list of drivers a call is going through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    Main,
    ContextLength,
    ContentFilter,
}

impl FallbackLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "fallback";

    /// No fallbacks and no circuit breaker yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fallback: `driver`, asked for `model` (`None`: the request's model).
    pub fn then(mut self, driver: Arc<dyn LlmDriver>, model: Option<&str>) -> Self {
        self.chain.push(Target::new(driver, model));
        self
    }

    /// Where a context-length error goes (a model with a larger window). Default: nowhere
    /// (the error is returned).
    pub fn on_context_length(mut self, driver: Arc<dyn LlmDriver>, model: Option<&str>) -> Self {
        self.on_context_length.push(Target::new(driver, model));
        self
    }

    /// Where a content-filter error goes. Default: nowhere.
    pub fn on_content_filter(mut self, driver: Arc<dyn LlmDriver>, model: Option<&str>) -> Self {
        self.on_content_filter.push(Target::new(driver, model));
        self
    }

    /// Also falls back after errors of `kind`, which are not retryable. Default: only
    /// retryable errors fall back.
    pub fn also_on(mut self, kind: ErrorKind) -> Self {
        self.also_on.push(kind);
        self
    }

    /// A circuit breaker per driver. Default: none.
    pub fn circuit_breaker(mut self, config: CircuitConfig) -> Self {
        self.circuit = Some(config);
        self
    }

    /// When every circuit is open, wait for the first to allow a probe instead of failing
    /// at once. Default: fail at once.
    pub fn wait_when_all_open(mut self, yes: bool) -> Self {
        self.wait_when_all_open = yes;
        self
    }

    /// The breaker named `name`, once a call has used it. Breakers are named as
    /// [`Target::name`] names targets: the provider's own driver by its driver name alone
    /// ([`LlmDriver::name`], such as `openai` or `mock`), a fallback target `driver/model`,
    /// or `driver` when it names no model (sharing the breaker of a driver of that name).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), nova_llm_core::LlmError> {
    /// use std::sync::Arc;
    /// use nova_llm_core::LlmDriver;
    /// use nova_llm_mock::MockDriver;
    /// use nova_llm_provider::fallback::FallbackLayer;
    /// use nova_llm_provider::Provider;
    ///
    /// let backup = Arc::new(MockDriver::builder().name("backup").build());
    /// let fallback = FallbackLayer::new()
    ///     .then(backup, Some("small"))
    ///     .circuit_breaker(Default::default());
    /// let provider = Provider::builder(MockDriver::new()).fallback(fallback.clone()).build();
    /// provider.prompt("hi").await?;
    /// assert!(fallback.breaker("mock").is_some()); // the provider's own driver
    /// assert!(fallback.breaker("backup/small").is_none()); // not needed yet
    /// # Ok(())
    /// # }
    /// ```
    pub fn breaker(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        self.breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn breaker_for(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        let config = self.circuit?;
        let mut map = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(
            map.entry(name.to_owned())
                .or_insert_with(|| Arc::new(CircuitBreaker::new(config))),
        ))
    }

    fn list(&self, chain: Chain) -> &[Target] {
        match chain {
            Chain::Main => &self.chain,
            Chain::ContextLength => &self.on_context_length,
            Chain::ContentFilter => &self.on_content_filter,
        }
    }

    /// Where to go after `err` from the chain `current`: another chain, the next driver of
    /// this one, or nowhere. Inside its own chain, a context-length (or content-filter)
    /// error moves on to the chain's next driver; each of those two chains is entered at
    /// most once per call (`entered`), so two drivers that send a call back and forth
    /// between them cannot loop.
    fn after(&self, err: &LlmError, current: Chain, entered: &[Chain]) -> Option<Chain> {
        let kind = err.kind();
        let own = match kind {
            ErrorKind::ContextLengthExceeded => {
                Some((Chain::ContextLength, &self.on_context_length))
            }
            ErrorKind::ContentFiltered => Some((Chain::ContentFilter, &self.on_content_filter)),
            _ => None,
        };
        if let Some((chain, targets)) = own {
            if current == chain {
                return Some(current);
            }
            if !targets.is_empty() && !entered.contains(&chain) {
                return Some(chain);
            }
        }
        (err.is_retryable() || self.also_on.contains(&kind)).then_some(current)
    }

    /// Tries the drivers in order, running the rest of the chain over each.
    async fn run(
        &self,
        request: &ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
        kind: Attempt,
    ) -> Result<Outcome, LlmError> {
        let mut walk = Walk::new();
        loop {
            let target = match walk.pos {
                None => None,
                Some(i) => match self.list(walk.chain).get(i) {
                    Some(t) => Some(t),
                    None => {
                        self.all_tried(&mut walk).await?;
                        continue;
                    }
                },
            };
            let name = target.map_or(next.driver().name(), Target::name);
            let breaker = self.breaker_for(name);
            let admitted = breaker.as_ref().map(|b| b.admit());
            if let Some(Admit::No { until }) = admitted {
                walk.skip(name.to_owned(), until);
                continue;
            }
            let probe = breaker
                .as_deref()
                .filter(|_| admitted == Some(Admit::Probe));
            let err = match self.attempt(target, request, cx, next, kind, probe).await {
                Ok(outcome) => {
                    self.note(cx, breaker.as_deref(), name, true);
                    if let Some(t) = target {
                        cx.extensions_mut()
                            .insert(ServedBy(Arc::from(t.driver.name())));
                    }
                    return Ok(outcome);
                }
                Err(e) => e,
            };
            if err.kind() != ErrorKind::Cancelled {
                self.note(cx, breaker.as_deref(), name, !err.is_retryable());
            }
            self.move_on(&mut walk, err, cx)?;
        }
    }

    /// One attempt on `target` (`None`: the provider's own driver), asked for the target's
    /// model, with the rest of the chain over its driver. A circuit's `probe` is given back
    /// if the attempt ends without a verdict (the caller went away).
    async fn attempt(
        &self,
        target: Option<&Target>,
        request: &ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
        kind: Attempt,
        probe: Option<&CircuitBreaker>,
    ) -> Result<Outcome, LlmError> {
        let mut req = request.clone();
        if let Some(m) = target.and_then(|t| t.model.clone()) {
            req.model = Some(m);
        }
        let rest = match target {
            Some(t) => next.with_driver(&t.driver),
            None => next,
        };
        let mut probe = ProbeGuard {
            breaker: probe,
            done: false,
        };
        let result = kind.start(req, cx, rest).outcome().await;
        probe.done = true;
        result
    }

    /// After `err`: on to the next driver of this chain or of another chain (saying so
    /// with a `Fallback` event), or `Err` when the error is one to give up on.
    fn move_on(&self, walk: &mut Walk, err: LlmError, cx: &CallContext) -> Result<(), LlmError> {
        let Some(next_chain) = self.after(&err, walk.chain, &walk.entered) else {
            return Err(err);
        };
        let next_pos = if next_chain == walk.chain {
            walk.pos.map_or(0, |i| i + 1)
        } else {
            walk.entered.push(next_chain);
            0
        };
        if let Some(t) = self.list(next_chain).get(next_pos) {
            cx.emit(EventKind::Fallback {
                to: t.name().to_owned(),
                error: err.kind(),
            });
        }
        walk.chain = next_chain;
        walk.pos = Some(next_pos);
        walk.last_err = Some(err);
        Ok(())
    }

    /// Every driver of the chain was tried or skipped: the last error; or, when only open
    /// circuits were met, a wait for the first to allow a probe (once, if so configured)
    /// and a new walk from the start (`Ok`), or the error naming them.
    async fn all_tried(&self, walk: &mut Walk) -> Result<(), LlmError> {
        if let Some(e) = walk.last_err.take() {
            return Err(e);
        }
        let first = walk.closed.iter().map(|c| c.1).min();
        match first {
            Some(first) if self.wait_when_all_open && !walk.waited => {
                tokio::time::sleep_until(first).await;
                walk.waited = true;
                walk.chain = Chain::Main;
                walk.pos = None;
                walk.closed.clear();
                Ok(())
            }
            _ => Err(all_open(&walk.closed)),
        }
    }

    fn note(&self, cx: &CallContext, breaker: Option<&CircuitBreaker>, name: &str, ok: bool) {
        let Some(b) = breaker else {
            return;
        };
        match b.record(ok) {
            Some(Transition::Opened) => cx.emit(EventKind::CircuitOpened {
                driver: name.to_owned(),
            }),
            Some(Transition::Closed) => cx.emit(EventKind::CircuitClosed {
                driver: name.to_owned(),
            }),
            None => {}
        }
    }
}

/// Where a call is in the fallback chains.
struct Walk {
    /// The chain being walked.
    chain: Chain,
    /// The error-specific chains the call went into.
    entered: Vec<Chain>,
    /// The position in the chain: `None` is the provider's own driver.
    pos: Option<usize>,
    /// The error of the last driver tried.
    last_err: Option<LlmError>,
    /// The drivers skipped for an open circuit, and until when it is open.
    closed: Vec<(String, Instant)>,
    /// Whether the call already waited for an open circuit.
    waited: bool,
}

impl Walk {
    fn new() -> Self {
        Walk {
            chain: Chain::Main,
            entered: Vec::new(),
            pos: None,
            last_err: None,
            closed: Vec::new(),
            waited: false,
        }
    }

    /// Skips a driver whose circuit is open until `until`.
    fn skip(&mut self, name: String, until: Instant) {
        self.closed.push((name, until));
        self.pos = Some(self.pos.map_or(0, |i| i + 1));
    }
}

/// Gives the probe back if its call ended without a verdict (cancelled).
struct ProbeGuard<'a> {
    breaker: Option<&'a CircuitBreaker>,
    done: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Some(b) = self.breaker
        {
            b.release_probe();
        }
    }
}

fn all_open(closed: &[(String, Instant)]) -> LlmError {
    let now = Instant::now();
    let names: Vec<String> = closed
        .iter()
        .map(|(n, until)| {
            format!(
                "{n} (may recover in {:?})",
                until.saturating_duration_since(now)
            )
        })
        .collect();
    let err = LlmError::new(
        ErrorKind::Overloaded,
        format!("every driver's circuit is open: {}", names.join(", ")),
    );
    match closed.iter().map(|c| c.1).min() {
        Some(first) => err.with_retry_after(first.saturating_duration_since(now)),
        None => err,
    }
}

#[async_trait]
impl Middleware for FallbackLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.run(&request, cx, next, Attempt::Plain)
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
            .run(&request, cx, next, Attempt::Stream)
            .await?
            .into_stream())
    }
}
