//! `Provider` and its builder: the chain over a driver, itself a driver.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use nova_llm_core::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, CompletionRequest, CompletionResponse,
    LlmDriver, LlmError,
};

use crate::call::{CallContext, CallOptions, EventListener, EventReceiver, Hub, Operation};
use crate::cost::PriceTable;
use crate::events::EventsLayer;
use crate::metrics::Metrics;
use crate::plugin::{Middleware, Next};

/// The built-in layers, outermost first: where [`ProviderBuilder`] puts each one.
pub const BUILT_IN_ORDER: &[&str] = &[
    "events",
    "context",
    "cache",
    "fallback",
    "retry",
    "rate_limit",
    "timeout",
];

/// Events a subscriber can fall behind by before it loses the oldest.
const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Any driver with the cross-cutting features around it, and itself an [`LlmDriver`]:
/// store it as `Arc<dyn LlmDriver>`, wrap it in another provider, hand it to code written
/// against the mock.
///
/// Every trait method goes through the middleware chain: `chat`, `prompt`, `structured` (and
/// tool calls, which are chat requests) as `chat`; `chat_stream`; `complete` and
/// `complete_stream` as chat calls that reach the driver's own completion methods at the
/// bottom. Cloning is cheap and clones share everything.
///
/// The chain, outermost first ([`BUILT_IN_ORDER`]), and why each layer sits where it does:
///
/// 1. `events` (on by default): lifecycle events, the tracing span, cost and metrics.
///    Outermost so that it sees each call exactly once, including calls the cache answers
///    and all the attempts and fallbacks of a call.
/// 2. `context` ([`ProviderBuilder::context`]): trims the dialog to the model's window.
///    Before `cache`, because the cache key must be computed on the request actually sent.
/// 3. `cache` ([`ProviderBuilder::cache`]): before fallback, retry and rate limiting, so
///    that a hit spends neither attempts nor quota.
/// 4. `fallback` ([`ProviderBuilder::fallback`]): before `retry`, so that one driver's
///    retries are spent before the next driver is tried (the layers below it apply to
///    every driver it tries).
/// 5. `retry` ([`ProviderBuilder::retry`]): before `rate_limit`, so that every attempt
///    waits its turn for the limit.
/// 6. `rate_limit` ([`ProviderBuilder::rate_limit`]): counts what is really sent.
/// 7. `timeout` ([`ProviderBuilder::timeout`]): innermost of the built-ins, so it times
///    each attempt and not the wait for a rate limit.
/// 8. your layers ([`ProviderBuilder::layer`]) innermost, so they see each request as it
///    goes to the driver; [`insert_before`](ProviderBuilder::insert_before) and
///    [`insert_after`](ProviderBuilder::insert_after) put them anywhere else.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::cache::CacheLayer;
/// use nova_llm_provider::rate_limit::RateLimitLayer;
/// use nova_llm_provider::Provider;
///
/// let provider = Provider::builder(MockDriver::new())
///     .rate_limit(RateLimitLayer::new().requests_per_minute(500).max_in_flight(8))
///     .cache(CacheLayer::in_memory(10_000, Some(Duration::from_secs(3600))))
///     .build();
/// assert_eq!(provider.layers(), ["events", "cache", "rate_limit"]);
/// ```
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    driver: Arc<dyn LlmDriver>,
    driver_name: Arc<str>,
    name: String,
    chain: Arc<[Arc<dyn Middleware>]>,
    hub: Arc<Hub>,
    metrics: Option<Metrics>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.inner.name)
            .field("driver", &self.inner.driver_name)
            .field("layers", &self.layers())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider over `driver` with every default (events and metrics on, built-in
    /// prices, no content capture).
    pub fn new(driver: impl LlmDriver + 'static) -> Self {
        Self::builder(driver).build()
    }

    /// A builder over `driver`.
    pub fn builder(driver: impl LlmDriver + 'static) -> ProviderBuilder {
        Self::builder_shared(Arc::new(driver))
    }

    /// A builder over a driver you already hold as `Arc<dyn LlmDriver>`.
    pub fn builder_shared(driver: Arc<dyn LlmDriver>) -> ProviderBuilder {
        ProviderBuilder {
            driver,
            name: None,
            layers: vec![Slot::Events],
            prices: PriceTable::builtin(),
            capture_content: false,
            metrics: Some(Metrics::new()),
            listeners: Vec::new(),
            capacity: DEFAULT_EVENT_CAPACITY,
            #[cfg(feature = "metrics")]
            export_metrics: false,
        }
    }

    /// Subscribes to the events of every call from now on. A subscriber that falls more
    /// than the event capacity behind loses the oldest events and is told how many
    /// ([`Received::Missed`](crate::Received::Missed)); requests never wait for it.
    pub fn subscribe(&self) -> EventReceiver {
        self.inner.hub.subscribe()
    }

    /// The built-in metrics, unless they were turned off.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.metrics.as_ref()
    }

    /// The names of the layers, outermost first.
    pub fn layers(&self) -> Vec<&str> {
        self.inner.chain.iter().map(|m| m.name()).collect()
    }

    /// The driver at the bottom of the chain.
    pub fn get_ref(&self) -> &dyn LlmDriver {
        &*self.inner.driver
    }

    /// The driver at the bottom of the chain, shared.
    pub fn into_inner(self) -> Arc<dyn LlmDriver> {
        Arc::clone(&self.inner.driver)
    }

    fn context(&self, op: Operation, model: Option<&str>, options: CallOptions) -> CallContext {
        CallContext::new(
            op,
            options,
            Arc::from(model.unwrap_or("default")),
            Arc::clone(&self.inner.driver_name),
            Arc::clone(&self.inner.hub),
        )
    }

    fn next(&self) -> Next<'_> {
        Next::new(&self.inner.chain, &self.inner.driver)
    }

    /// [`chat`](LlmDriver::chat) with per-call options (tags, extensions).
    ///
    /// # Errors
    /// Whatever the chain and the driver return.
    pub fn chat_with(
        &self,
        request: ChatRequest,
        options: CallOptions,
    ) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        // One small boxed future per call (the context and the chain's own future), not
        // an `async fn` inside `async_trait`'s box: every byte of a call's future is
        // copied when it is boxed.
        let mut cx = self.context(Operation::Chat, request.model.as_deref(), options);
        let next = self.next();
        Box::pin(async move { next.chat(request, &mut cx).await })
    }

    /// [`chat_stream`](LlmDriver::chat_stream) with per-call options.
    ///
    /// # Errors
    /// Whatever the chain and the driver return before any output.
    pub fn chat_stream_with(
        &self,
        request: ChatRequest,
        options: CallOptions,
    ) -> BoxFuture<'_, Result<ChatStream, LlmError>> {
        let mut cx = self.context(Operation::ChatStream, request.model.as_deref(), options);
        let next = self.next();
        Box::pin(async move { next.chat_stream(request, &mut cx).await })
    }

    /// [`complete`](LlmDriver::complete) with per-call options.
    ///
    /// # Errors
    /// Whatever the chain and the driver return.
    pub async fn complete_with(
        &self,
        request: CompletionRequest,
        options: CallOptions,
    ) -> Result<CompletionResponse, LlmError> {
        let mut cx = self.context(Operation::Completion, request.model.as_deref(), options);
        let reply = self.next().chat(request.to_chat(), &mut cx).await?;
        Ok(CompletionResponse::from(reply))
    }

    /// [`complete_stream`](LlmDriver::complete_stream) with per-call options.
    ///
    /// # Errors
    /// Whatever the chain and the driver return before any output.
    pub async fn complete_stream_with(
        &self,
        request: CompletionRequest,
        options: CallOptions,
    ) -> Result<ChatStream, LlmError> {
        let mut cx = self.context(
            Operation::CompletionStream,
            request.model.as_deref(),
            options,
        );
        self.next().chat_stream(request.to_chat(), &mut cx).await
    }
}

#[async_trait]
impl LlmDriver for Provider {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.driver.capabilities()
    }

    // Written out (not `async fn`) so that the future is the one `chat_with` boxes, not a
    // second box around it.
    fn chat<'life0, 'async_trait>(
        &'life0 self,
        request: ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatResponse, LlmError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.chat_with(request, CallOptions::new())
    }

    fn chat_stream<'life0, 'async_trait>(
        &'life0 self,
        request: ChatRequest,
    ) -> BoxFuture<'async_trait, Result<ChatStream, LlmError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.chat_stream_with(request, CallOptions::new())
    }

    async fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, LlmError> {
        self.complete_with(request, CallOptions::new()).await
    }

    async fn complete_stream(&self, request: CompletionRequest) -> Result<ChatStream, LlmError> {
        self.complete_stream_with(request, CallOptions::new()).await
    }
}

/// A place in the chain a builder is putting together.
enum Slot {
    /// The `events` layer, made by [`ProviderBuilder::build`] once its settings are final.
    Events,
    Layer(Arc<dyn Middleware>),
}

impl Slot {
    fn name(&self) -> &str {
        match self {
            Slot::Events => EventsLayer::NAME,
            Slot::Layer(layer) => layer.name(),
        }
    }
}

/// Builds a [`Provider`]. Every feature is optional; each setter says its default.
pub struct ProviderBuilder {
    driver: Arc<dyn LlmDriver>,
    name: Option<String>,
    layers: Vec<Slot>,
    prices: PriceTable,
    capture_content: bool,
    metrics: Option<Metrics>,
    listeners: Vec<Arc<dyn EventListener>>,
    capacity: usize,
    #[cfg(feature = "metrics")]
    export_metrics: bool,
}

impl fmt::Debug for ProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderBuilder")
            .field("driver", &self.driver.name())
            .field("layers", &self.layer_names())
            .finish_non_exhaustive()
    }
}

impl ProviderBuilder {
    /// The provider's name, as [`LlmDriver::name`] reports it. Default: the driver's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a middleware innermost (closest to the driver). Default chain: `events` only.
    pub fn layer(mut self, layer: impl Middleware) -> Self {
        self.layers.push(Slot::Layer(Arc::new(layer)));
        self
    }

    /// Adds a middleware just outside the layer named `before`; innermost when no layer
    /// has that name.
    pub fn insert_before(mut self, before: &str, layer: impl Middleware) -> Self {
        let at = self.position(before).unwrap_or(self.layers.len());
        self.layers.insert(at, Slot::Layer(Arc::new(layer)));
        self
    }

    /// Adds a middleware just inside the layer named `after`; innermost when no layer has
    /// that name.
    pub fn insert_after(mut self, after: &str, layer: impl Middleware) -> Self {
        let at = self.position(after).map_or(self.layers.len(), |i| i + 1);
        self.layers.insert(at, Slot::Layer(Arc::new(layer)));
        self
    }

    /// Removes the layers named `name` (for example `"events"`, which also stops the
    /// metrics, fed by events).
    pub fn without(mut self, name: &str) -> Self {
        self.layers.retain(|slot| slot.name() != name);
        self
    }

    /// The names of the layers so far, outermost first.
    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(Slot::name).collect()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|slot| slot.name() == name)
    }

    /// Puts a built-in layer in its place in [`BUILT_IN_ORDER`], replacing a layer of the
    /// same name: just inside the last built-in that comes before it.
    fn place(mut self, layer: Arc<dyn Middleware>) -> Self {
        if let Some(i) = self.position(layer.name()) {
            self.layers[i] = Slot::Layer(layer);
            return self;
        }
        let rank = |name: &str| BUILT_IN_ORDER.iter().position(|n| *n == name);
        let mine = rank(layer.name());
        let at = self
            .layers
            .iter()
            .rposition(|slot| rank(slot.name()).is_some_and(|r| Some(r) < mine))
            .map_or(0, |i| i + 1);
        self.layers.insert(at, Slot::Layer(layer));
        self
    }

    /// Adds the cache (see [`CacheLayer`](crate::cache::CacheLayer)) in its place: inside
    /// `events`, outside retry and rate limiting. Default: no cache.
    pub fn cache(self, cache: crate::cache::CacheLayer) -> Self {
        self.place(Arc::new(cache))
    }

    /// Adds context trimming (see [`ContextLayer`](crate::context::ContextLayer)) in its
    /// place: right inside `events`, before the cache computes its key. Default: none.
    pub fn context(self, context: crate::context::ContextLayer) -> Self {
        self.place(Arc::new(context))
    }

    /// Adds retries (see [`RetryLayer`](crate::retry::RetryLayer)) in their place: inside
    /// `fallback`, so that a driver's retries are spent before the next driver is tried,
    /// and outside rate limiting and timeouts, so that each attempt waits its turn and has
    /// its own timeout. Default: no retries.
    pub fn retry(self, retry: crate::retry::RetryLayer) -> Self {
        self.place(Arc::new(retry))
    }

    /// Adds fallback drivers and circuit breakers (see
    /// [`FallbackLayer`](crate::fallback::FallbackLayer)) in their place: inside the cache,
    /// outside retry. Default: none.
    pub fn fallback(self, fallback: crate::fallback::FallbackLayer) -> Self {
        self.place(Arc::new(fallback))
    }

    /// Adds timeouts (see [`TimeoutLayer`](crate::timeout::TimeoutLayer)) in their place:
    /// innermost of the built-ins, so they time each attempt and not the wait for a rate
    /// limit. Default: none (the driver's own timeouts apply).
    pub fn timeout(self, timeout: crate::timeout::TimeoutLayer) -> Self {
        self.place(Arc::new(timeout))
    }

    /// Adds rate limiting (see [`RateLimitLayer`](crate::rate_limit::RateLimitLayer)) in its
    /// place: inside the cache and retry, so that cache hits spend no quota and every retry
    /// waits its turn. Default: none.
    pub fn rate_limit(self, limits: crate::rate_limit::RateLimitLayer) -> Self {
        self.place(Arc::new(limits))
    }

    /// The price table used for cost. Default: [`PriceTable::builtin`].
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Puts the prompt (in `Started`) and reply text (in `Completed`) into events. Default:
    /// off; events then carry figures only.
    pub fn capture_content(mut self, yes: bool) -> Self {
        self.capture_content = yes;
        self
    }

    /// Keeps the built-in metrics ([`Provider::metrics`]). Default: on.
    pub fn metrics(mut self, yes: bool) -> Self {
        self.metrics = yes.then(Metrics::new);
        self
    }

    /// Records into this [`Metrics`] handle (for example one shared by several providers).
    /// Default: a handle of the provider's own.
    pub fn metrics_into(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Also exports every call through the `metrics` facade (see
    /// [`MetricsExporter`](crate::MetricsExporter)). Default: off.
    #[cfg(feature = "metrics")]
    pub fn export_metrics(mut self, yes: bool) -> Self {
        self.export_metrics = yes;
        self
    }

    /// Calls `listener` with every event, in line. Default: none.
    pub fn listener(mut self, listener: impl EventListener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// How many events a subscriber may fall behind before it loses the oldest. Default:
    /// 1024.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The provider.
    pub fn build(self) -> Provider {
        let ProviderBuilder {
            driver,
            name,
            layers,
            prices,
            capture_content,
            metrics,
            mut listeners,
            capacity,
            #[cfg(feature = "metrics")]
            export_metrics,
        } = self;
        // The events layer is made here, with the final price table and capture setting.
        let events: Arc<dyn Middleware> =
            Arc::new(EventsLayer::new(Arc::new(prices), capture_content));
        let chain: Vec<Arc<dyn Middleware>> = layers
            .into_iter()
            .map(|slot| match slot {
                Slot::Events => Arc::clone(&events),
                Slot::Layer(layer) => layer,
            })
            .collect();
        if let Some(m) = &metrics {
            listeners.insert(0, Arc::new(m.clone()));
        }
        #[cfg(feature = "metrics")]
        if export_metrics {
            listeners.push(Arc::new(crate::MetricsExporter));
        }
        let driver_name: Arc<str> = Arc::from(driver.name());
        Provider {
            inner: Arc::new(Inner {
                name: name.unwrap_or_else(|| driver_name.to_string()),
                driver_name,
                driver,
                chain: chain.into(),
                hub: Arc::new(Hub::new(capacity, listeners)),
                metrics,
            }),
        }
    }
}
