//! The rate-limit backend: sliding windows of requests and tokens in Redis, decided
//! atomically by a Lua script on the server's clock.

use std::sync::Arc;

use async_trait::async_trait;
use nova_llm_core::{ErrorKind, LlmError};
use nova_llm_provider::rate_limit::{
    Acquire, MemoryWindows, RateLimitBackend, Ticket, WindowLimits,
};
use nova_llm_provider::{CallContext, EventKind};

use crate::connection::{OnFailure, RedisConnection};

/// Admits one request if the windows allow it. Times are the server's (milliseconds), so
/// the clocks of the hosts never matter. Each admitted request is a member of the
/// requests set (scored by time) and of the tokens set (`ticket:tokens`, scored by time).
///
/// KEYS: requests set, tokens set, ticket counter.
/// ARGV: request limit (0 = none), request window ms, token limit (0 = none), tokens.
/// Returns {1, ticket} or {0, wait ms}.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local req_limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local tok_limit, tokens = tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
if req_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  local n = redis.call('ZCARD', KEYS[1])
  if n >= req_limit then
    local oldest = redis.call('ZRANGE', KEYS[1], n - req_limit, n - req_limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now + 1)
  end
end
if tok_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000)
  local all = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local sum = 0
  for i = 1, #all, 2 do
    sum = sum + tonumber(string.match(all[i], ':(%d+)$'))
  end
  if sum + tokens > tok_limit then
    local freed = 0
    for i = 1, #all, 2 do
      freed = freed + tonumber(string.match(all[i], ':(%d+)$'))
      if sum - freed + tokens <= tok_limit then
        wait = math.max(wait, tonumber(all[i + 1]) + 60000 - now + 1)
        break
      end
    end
  end
end
if wait > 0 then
  return {0, wait}
end
local ticket = redis.call('INCR', KEYS[3])
if req_limit > 0 then
  redis.call('ZADD', KEYS[1], now, ticket)
  redis.call('PEXPIRE', KEYS[1], window)
end
if tok_limit > 0 then
  redis.call('ZADD', KEYS[2], now, ticket .. ':' .. tokens)
  redis.call('PEXPIRE', KEYS[2], 60000)
end
return {1, ticket}
";

/// Replaces the token count of one ticket. KEYS: tokens set. ARGV: ticket, actual tokens.
const RECONCILE: &str = r"
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local prefix = ARGV[1] .. ':'
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #prefix) == prefix then
    redis.call('ZREM', KEYS[1], all[i])
    redis.call('ZADD', KEYS[1], all[i + 1], prefix .. ARGV[2])
    return 1
  end
end
return 0
";

/// A [`RateLimitBackend`] in Redis: every process using the same prefix shares the same
/// windows. Exact sliding windows (a sorted set per window), so no window of the configured
/// length ever admits more than the limit, across all processes. Use it with
/// `RateLimitLayer::backend`.
///
/// When Redis fails or is slower than the connection's timeout, the [`OnFailure`] policy
/// decides (default: count in this process) and a `BackendUnavailable` event says so.
#[derive(Debug, Clone)]
pub struct RedisWindows {
    conn: RedisConnection,
    prefix: String,
    on_failure: OnFailure,
    local: Arc<MemoryWindows>,
    acquire: Arc<redis::Script>,
    reconcile: Arc<redis::Script>,
}

impl RedisWindows {
    /// Windows on `conn` under the prefix `nova:limits:`, falling back to in-process
    /// counting when Redis fails.
    pub fn new(conn: RedisConnection) -> Self {
        RedisWindows {
            conn,
            prefix: "nova:limits:".into(),
            on_failure: OnFailure::Local,
            local: Arc::new(MemoryWindows::new()),
            acquire: Arc::new(redis::Script::new(ACQUIRE)),
            reconcile: Arc::new(redis::Script::new(RECONCILE)),
        }
    }

    /// The key prefix. Default: `nova:limits:`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// What to do when Redis fails. Default: [`OnFailure::Local`].
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    fn keys(&self, scope: &str) -> [String; 3] {
        [
            format!("{}{scope}:requests", self.prefix),
            format!("{}{scope}:tokens", self.prefix),
            format!("{}tickets", self.prefix),
        ]
    }

    async fn remote(
        &self,
        scope: &str,
        tokens: u64,
        limits: WindowLimits,
    ) -> Result<Acquire, LlmError> {
        let [req, tok, tickets] = self.keys(scope);
        let (req_limit, window) = limits.requests.map_or((0, 0), |(n, d)| {
            (n, u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        });
        let tok_limit = limits.tokens_per_minute.unwrap_or(0);
        let script = Arc::clone(&self.acquire);
        let (ok, value): (u8, u64) = self
            .conn
            .run("rate-limit script", |mut c| async move {
                script
                    .key(req)
                    .key(tok)
                    .key(tickets)
                    .arg(req_limit)
                    .arg(window)
                    .arg(tok_limit)
                    .arg(tokens)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(if ok == 1 {
            // Remote tickets are even, local ones odd: a correction goes to the right place.
            Acquire::Admitted(Ticket(value << 1))
        } else {
            Acquire::Wait(std::time::Duration::from_millis(value))
        })
    }
}

#[async_trait]
impl RateLimitBackend for RedisWindows {
    async fn try_acquire(
        &self,
        scope: &str,
        tokens: u64,
        limits: WindowLimits,
        cx: &CallContext,
    ) -> Result<Acquire, LlmError> {
        limits.check_fits(tokens)?;
        let err = match self.remote(scope, tokens, limits).await {
            Ok(a) => return Ok(a),
            Err(e) => e,
        };
        let (fallback, result) = match self.on_failure {
            OnFailure::FailOpen => ("admitted (fail open)", Ok(Acquire::Admitted(Ticket(1)))),
            OnFailure::FailClosed => (
                "refused (fail closed)",
                Err(LlmError::new(
                    ErrorKind::RateLimited,
                    format!("the shared rate limiter is unavailable: {}", err.message()),
                )),
            ),
            OnFailure::Local => (
                "counted in this process",
                self.local
                    .try_acquire(scope, tokens, limits, cx)
                    .await
                    .map(|a| match a {
                        // Local tickets are odd, so a correction finds the right window.
                        Acquire::Admitted(t) => Acquire::Admitted(Ticket((t.0 << 1) | 1)),
                        other => other,
                    }),
            ),
        };
        cx.emit(EventKind::BackendUnavailable {
            backend: "rate limiter".into(),
            fallback: fallback.into(),
            error: err.to_string(),
        });
        result
    }

    async fn reconcile(&self, scope: &str, ticket: Ticket, actual: u64) -> Result<(), LlmError> {
        if ticket.0 & 1 == 1 {
            return self
                .local
                .reconcile(scope, Ticket(ticket.0 >> 1), actual)
                .await;
        }
        let [_, tok, _] = self.keys(scope);
        let id = ticket.0 >> 1;
        let script = Arc::clone(&self.reconcile);
        self.conn
            .run("reconcile script", |mut c| async move {
                script
                    .key(tok)
                    .arg(id)
                    .arg(actual)
                    .invoke_async::<u8>(&mut c)
                    .await
            })
            .await
            .map(|_| ())
    }
}
