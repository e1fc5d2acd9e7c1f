//! # nova-llm-provider
//!
//! Wraps **any** [`LlmDriver`](nova_llm_core::LlmDriver) and adds what every application
//! needs around the call, so a new driver gets all of it for free. The [`Provider`] is
//! itself an `LlmDriver`, so layers compose and code written against the mock runs on it
//! unchanged.
//!
//! - [`plugin`]: an ordered chain of [`Middleware`], the one plugin interface the built-in
//!   features and yours share; a per-call [`CallContext`] (request id, attempt, tags,
//!   extensions).
//! - [`events`]: typed lifecycle [`Event`]s, exactly one `Started` and one
//!   `Completed`-or-`Failed` per call, streamed or not, read to the end or dropped; to
//!   [listeners](EventListener) and [subscribers](Provider::subscribe) that can never slow a
//!   request down; a `tracing` span per call with the OpenTelemetry GenAI attributes.
//! - [`metrics`]: requests, errors by kind, latency and time to first token percentiles,
//!   tokens and cost per driver and model; export through the `metrics` facade with the
//!   cargo feature `metrics`.
//! - [`cost`]: a versioned [`PriceTable`]; an unknown model has unknown cost, never zero.
//! - [`cache`]: canonical keys, a bounded in-memory store (or yours), stream store and
//!   replay, and single-flight: identical concurrent calls share one upstream call.
//! - [`rate_limit`]: requests and tokens per window, calls in flight, fair waiting or fail
//!   fast, and adaptive slowdown from the service's rate-limit headers.
//! - [`retry`], [`fallback`] (with [`circuit`] breakers) and [`timeout`]: safe for streams,
//!   which are retried or switched to another driver only before their first content.
//! - [`context`]: token counting, trimming that keeps a dialog valid, the `context` layer,
//!   and a budgeted [`Conversation`](context::Conversation).
//!
//! The order of the layers, and why, is on [`Provider`].
//!
//! ```
//! use nova_llm_core::{collect_stream, ChatRequest, Dialog, LlmDriver, LlmError};
//! use nova_llm_mock::MockDriver;
//! use nova_llm_provider::{EventKind, Provider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LlmError> {
//! let provider = Provider::new(MockDriver::new());
//! let mut events = provider.subscribe();
//!
//! let request = ChatRequest::new(Dialog::new().user("hello")).model("gpt-4o-mini");
//! assert_eq!(provider.chat(request.clone()).await?.text(), "f(hello)");
//! let stream = provider.chat_stream(request).await?;
//! assert_eq!(collect_stream(stream).await?.text(), "f(hello)");
//!
//! // Each call: one Started, one Completed (with usage and cost), FirstChunk for streams.
//! let kinds: Vec<_> = events.drain().into_iter().map(|e| e.kind).collect();
//! assert!(matches!(kinds[0], EventKind::Started { .. }));
//! assert!(matches!(&kinds[1], EventKind::Completed(c) if c.cost_usd.is_some()));
//! assert_eq!(kinds.len(), 5);
//!
//! let stats = provider.metrics().unwrap().snapshot();
//! let m = stats.get("mock", "gpt-4o-mini").unwrap();
//! assert_eq!((m.requests, m.errors), (2, 0));
//! assert!(m.cost_usd > 0.0);
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

pub mod cache;
mod call;
pub mod circuit;
pub mod context;
pub mod cost;
pub mod events;
pub mod fallback;
mod fast_map;
pub mod metrics;
pub mod plugin;
mod provider;
pub mod rate_limit;
pub mod retry;
#[cfg(test)]
mod tests;
pub mod timeout;

pub(crate) use fast_map::FastMap;

pub use cost::{LongPrompt, PRICE_TABLE_VERSION, Price, PriceTable};
pub use events::{
    Completion, Event, EventKind, EventListener, EventReceiver, EventsLayer, Failure, Received,
};
#[cfg(feature = "metrics")]
pub use metrics::MetricsExporter;
pub use metrics::{Metrics, MetricsSnapshot, ModelMetrics, Percentiles};
pub use plugin::{
    CallContext, CallOptions, Extensions, Middleware, Next, Operation, OwnedNext, RequestId,
    ServedBy,
};
pub use provider::{BUILT_IN_ORDER, Provider, ProviderBuilder};
