//! Calls in flight across processes: leases in Redis that expire if their process dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, ErrorKind, LlmError};
use nova_llm_provider::{CallContext, EventKind, Middleware, Next};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::connection::{OnFailure, RedisConnection};

/// Takes a lease if fewer than the limit are live. KEYS: the lease set. ARGV: limit, lease
/// ms, lease id. Returns {1, 0} or {0, ms until the next lease expires}.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(first[2]) - now}
";

/// Extends a live lease. KEYS: the lease set. ARGV: lease ms, lease id.
const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return 1
";

/// A middleware limiting calls in flight across every process that shares the key: each
/// call holds a lease in Redis (a stream until it ends or is dropped), renewed while the
/// call lasts; a process that dies leaves leases that expire after the lease time.
///
/// Add it with `ProviderBuilder::insert_after("rate_limit", ...)` (or `.layer(...)`). Waits
/// up to `max_wait` for a lease, then fails with a rate-limited error; when Redis fails, the
/// [`OnFailure`] policy decides (`Local` admits here: this layer has no local count) and a
/// `BackendUnavailable` event says so.
#[derive(Debug, Clone)]
pub struct RedisConcurrencyLayer {
    conn: RedisConnection,
    key: String,
    limit: u64,
    lease: Duration,
    max_wait: Duration,
    on_failure: OnFailure,
    take: Arc<redis::Script>,
    renew: Arc<redis::Script>,
    instance: u64,
    counter: Arc<AtomicU64>,
}

impl RedisConcurrencyLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "concurrency";

    /// At most `limit` calls in flight under `key` (for example `nova:inflight:openai`),
    /// leases of 30 s renewed every 10 s, waiting up to 60 s, failing open.
    pub fn new(conn: RedisConnection, key: impl Into<String>, limit: u64) -> Self {
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        RedisConcurrencyLayer {
            conn,
            key: key.into(),
            limit,
            lease: Duration::from_secs(30),
            max_wait: Duration::from_secs(60),
            on_failure: OnFailure::FailOpen,
            take: Arc::new(redis::Script::new(TAKE)),
            renew: Arc::new(redis::Script::new(RENEW)),
            instance: INSTANCE.fetch_add(1, Ordering::Relaxed),
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How long a lease lives without renewal (it is renewed every third of it while its
    /// call lasts). Default: 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// The longest a call waits for a lease. Default: 60 s.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// What to do when Redis fails. Default: [`OnFailure::FailOpen`].
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits for a lease; `None` when the policy admitted the call without one.
    async fn acquire(&self, cx: &CallContext) -> Result<Option<Lease>, LlmError> {
        let id = format!(
            "{}:{}:{}",
            std::process::id(),
            self.instance,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let deadline = Instant::now() + self.max_wait;
        loop {
            let script = Arc::clone(&self.take);
            let (key, limit, ms, lease_id) =
                (self.key.clone(), self.limit, self.lease_ms(), id.clone());
            let taken = self
                .conn
                .run("lease script", |mut c| async move {
                    script
                        .key(key)
                        .arg(limit)
                        .arg(ms)
                        .arg(lease_id)
                        .invoke_async::<(u8, i64)>(&mut c)
                        .await
                })
                .await;
            match taken {
                Ok((1, _)) => return Ok(Some(self.hold(id))),
                Ok((_, wait_ms)) => {
                    let wait =
                        Duration::from_millis(u64::try_from(wait_ms.clamp(1, 100)).unwrap_or(100));
                    if Instant::now() + wait > deadline {
                        return Err(LlmError::new(
                            ErrorKind::RateLimited,
                            format!(
                                "{} calls are already in flight across processes",
                                self.limit
                            ),
                        )
                        .with_retry_after(wait));
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let (fallback, result) = match self.on_failure {
                        OnFailure::FailClosed => (
                            "refused (fail closed)",
                            Err(LlmError::new(
                                ErrorKind::RateLimited,
                                format!(
                                    "the shared concurrency limit is unavailable: {}",
                                    e.message()
                                ),
                            )),
                        ),
                        _ => ("admitted without a lease", Ok(None)),
                    };
                    cx.emit(EventKind::BackendUnavailable {
                        backend: "concurrency leases".into(),
                        fallback: fallback.into(),
                        error: e.to_string(),
                    });
                    return result;
                }
            }
        }
    }

    /// Keeps the lease alive until the returned guard is dropped, then removes it.
    fn hold(&self, id: String) -> Lease {
        let (tx, mut rx) = oneshot::channel::<()>();
        let conn = self.conn.clone();
        let renew = Arc::clone(&self.renew);
        let key = self.key.clone();
        let ms = self.lease_ms();
        let every = self.lease / 3;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tokio::time::sleep(every) => {
                        let (s, k, i) = (Arc::clone(&renew), key.clone(), id.clone());
                        let _ = conn
                            .run("lease renewal", |mut c| async move {
                                s.key(k).arg(ms).arg(i).invoke_async::<u8>(&mut c).await
                            })
                            .await;
                    }
                }
            }
            let _ = conn
                .run("lease release", |mut c| async move {
                    redis::cmd("ZREM")
                        .arg(&key)
                        .arg(&id)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
        });
        Lease { _stop: tx }
    }
}

/// A held lease: dropping it stops the renewals and releases it.
#[derive(Debug)]
struct Lease {
    _stop: oneshot::Sender<()>,
}

#[async_trait]
impl Middleware for RedisConcurrencyLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let _lease = self.acquire(cx).await?;
        next.chat(request, cx).await
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        let lease = self.acquire(cx).await?;
        let stream = next.chat_stream(request, cx).await?;
        // The lease goes with the stream: released when it ends or is dropped.
        Ok(Box::pin(stream.map(move |item| {
            let _held = &lease;
            item
        })))
    }
}
