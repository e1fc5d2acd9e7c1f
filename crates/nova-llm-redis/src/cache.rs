//! The cache store: replies as versioned JSON under a key prefix, with Redis TTLs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::{LlmError, StreamEvent};
use nova_llm_provider::cache::{CacheKey, CacheStore, CachedReply};
use serde::{Deserialize, Serialize};

use crate::connection::RedisConnection;

/// The stored format; a different number reads as a miss, never as a wrong reply.
const FORMAT: u32 = 1;

/// `{"format": 1, "events": [...]}`: the reply's own JSON with the format beside it.
#[derive(Serialize)]
struct Stored<'a> {
    format: u32,
    #[serde(flatten)]
    reply: &'a CachedReply,
}

#[derive(Deserialize)]
struct Loaded {
    format: u32,
    events: Vec<StreamEvent>,
}

/// A [`CacheStore`] in Redis, shared by every process that uses the same prefix.
///
/// Entries are JSON (`{"format":1,"events":[...]}`: plain replies and streams alike) under
/// `prefix + key`, with a Redis TTL (the call's, or the store's default). An entry larger
/// than the size cap is not stored; an entry of another format reads as a miss. Errors
/// (Redis down, too slow) are returned to the cache layer, which treats them as a miss and
/// emits a `BackendUnavailable` event: the call itself still succeeds.
#[derive(Debug, Clone)]
pub struct RedisCacheStore {
    conn: RedisConnection,
    prefix: String,
    default_ttl: Duration,
    max_entry_bytes: usize,
}

impl RedisCacheStore {
    /// A store on `conn` with prefix `nova:cache:`, a default TTL of one hour and entries of
    /// at most 1 MiB.
    pub fn new(conn: RedisConnection) -> Self {
        RedisCacheStore {
            conn,
            prefix: "nova:cache:".into(),
            default_ttl: Duration::from_secs(3600),
            max_entry_bytes: 1 << 20,
        }
    }

    /// The key prefix. Default: `nova:cache:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The TTL of entries stored without one. Default: one hour.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// The largest entry stored, in bytes of JSON. Default: 1 MiB.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    fn key(&self, key: &CacheKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    /// Encodes the reply and sets it with its time to live (a reply too large is skipped).
    async fn set(
        &self,
        key: &CacheKey,
        reply: &CachedReply,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError> {
        let body = serde_json::to_vec(&Stored {
            format: FORMAT,
            reply,
        })
        .map_err(|e| LlmError::decode(format!("the reply cannot be encoded: {e}")))?;
        if body.len() > self.max_entry_bytes {
            return Ok(());
        }
        let ms = u64::try_from(ttl.unwrap_or(self.default_ttl).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let k = self.key(key);
        self.conn
            .run("SET", |mut c| async move {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(body)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }
}

#[async_trait]
impl CacheStore for RedisCacheStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, LlmError> {
        let k = self.key(key);
        let raw: Option<Vec<u8>> = self
            .conn
            .run("GET", |mut c| async move {
                redis::cmd("GET").arg(&k).query_async(&mut c).await
            })
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        // An entry of another format, or damaged, is a miss.
        Ok(serde_json::from_slice::<Loaded>(&raw)
            .ok()
            .filter(|l| l.format == FORMAT)
            .and_then(|l| CachedReply::from_events(l.events)))
    }

    async fn put(
        &self,
        key: &CacheKey,
        reply: CachedReply,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError> {
        self.set(key, &reply, ttl).await
    }

    async fn put_shared(
        &self,
        key: &CacheKey,
        reply: Arc<CachedReply>,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError> {
        self.set(key, &reply, ttl).await
    }

    async fn remove(&self, key: &CacheKey) -> Result<(), LlmError> {
        let k = self.key(key);
        self.conn
            .run("DEL", |mut c| async move {
                redis::cmd("DEL").arg(&k).query_async::<()>(&mut c).await
            })
            .await
    }
}
