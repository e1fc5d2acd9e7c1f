//! # nova-llm-redis
//!
//! Redis backends for `nova-llm-provider`, so that many processes (replicas of one service
//! calling the same OpenAI organization) share one cache and one set of limits instead of
//! each spending the whole quota on its own. The provider itself knows nothing of Redis:
//! these types plug into its traits.
//!
//! - [`RedisCacheStore`]: a `CacheStore` (stored replies and streams, versioned JSON, Redis
//!   TTLs, a size cap per entry).
//! - [`RedisWindows`]: a `RateLimitBackend` (requests per window and tokens per minute,
//!   decided atomically by a Lua script on the server's clock).
//! - [`RedisConcurrencyLayer`]: calls in flight across processes, with leases that expire
//!   if a process dies.
//! - [`RedisConnection`]: one lazily connected, self-reconnecting connection with a timeout
//!   per operation. When Redis is down or slow, the cache degrades to a miss and the limits
//!   follow their [`OnFailure`] policy; each time a `BackendUnavailable` event says so, and
//!   the call goes on.
//!
//! The example points at a port where no Redis listens, to show the degradation: the call
//! still succeeds (on the mock), and an event tells what happened.
//!
//! ```
//! use std::time::Duration;
//! use nova_llm_core::LlmDriver;
//! use nova_llm_mock::MockDriver;
//! use nova_llm_provider::cache::CacheLayer;
//! use nova_llm_provider::rate_limit::RateLimitLayer;
//! use nova_llm_provider::{EventKind, Provider};
//! use nova_llm_redis::{RedisCacheStore, RedisConnection, RedisWindows};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), nova_llm_core::LlmError> {
//! let conn = RedisConnection::with_timeout("redis://127.0.0.1:1/", Duration::from_millis(50))?;
//! let provider = Provider::builder(MockDriver::new())
//!     .cache(CacheLayer::new(RedisCacheStore::new(conn.clone())))
//!     .rate_limit(
//!         RateLimitLayer::new()
//!             .requests_per_minute(500)
//!             .backend(std::sync::Arc::new(RedisWindows::new(conn))),
//!     )
//!     .build();
//! let mut events = provider.subscribe();
//! assert_eq!(provider.prompt("hello").await?, "f(hello)");
//! let degraded = events
//!     .drain()
//!     .into_iter()
//!     .filter(|e| matches!(e.kind, EventKind::BackendUnavailable { .. }))
//!     .count();
//! assert!(degraded >= 2); // the cache lookup and the limiter
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

mod cache;
mod connection;
mod leases;
mod limits;
mod tally;
#[cfg(feature = "testing")]
pub mod testing;

pub use cache::RedisCacheStore;
pub use connection::{OnFailure, RedisConnection};
pub use leases::RedisConcurrencyLayer;
pub use limits::RedisWindows;
pub use tally::RedisTally;
