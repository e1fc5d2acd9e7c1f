//! Where the gateway keeps state that several instances may share: in this process, or in
//! Redis (`--redis URL`), through `nova-llm-redis`.

use std::sync::Arc;
use std::time::Duration;

use nova_llm_provider::cache::CacheLayer;
use nova_llm_provider::rate_limit::{MemoryWindows, RateLimitBackend};
use nova_llm_redis::{RedisCacheStore, RedisConnection, RedisTally, RedisWindows};

/// Memory or Redis.
#[derive(Debug, Clone)]
pub(crate) enum Shared {
    /// This process only.
    Memory,
    /// Every instance on one Redis; keys under `prefix`.
    Redis {
        conn: RedisConnection,
        prefix: String,
    },
}

impl Shared {
    /// Rate-limit windows, their keys under `scope` in Redis.
    pub(crate) fn windows(&self, scope: &str) -> Arc<dyn RateLimitBackend> {
        match self {
            Shared::Memory => Arc::new(MemoryWindows::new()),
            Shared::Redis { conn, prefix } => {
                Arc::new(RedisWindows::new(conn.clone()).prefix(format!("{prefix}{scope}")))
            }
        }
    }

    /// A cache for `route`.
    pub(crate) fn cache(&self, route: &str, capacity: u64, ttl: Option<Duration>) -> CacheLayer {
        match self {
            Shared::Memory => CacheLayer::in_memory(capacity, ttl),
            Shared::Redis { conn, prefix } => {
                let store = RedisCacheStore::new(conn.clone())
                    .prefix(format!("{prefix}cache:{route}:"))
                    .default_ttl(ttl.unwrap_or(Duration::from_secs(86_400)));
                CacheLayer::new(store)
            }
        }
    }

    /// The spend counters, when shared.
    pub(crate) fn tally(&self) -> Option<RedisTally> {
        match self {
            Shared::Memory => None,
            Shared::Redis { conn, prefix } => {
                Some(RedisTally::new(conn.clone()).prefix(format!("{prefix}spend:")))
            }
        }
    }
}
