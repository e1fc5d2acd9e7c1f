//! One lazily connected, self-reconnecting Redis connection with a per-operation timeout.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use nova_llm_core::{ErrorKind, LlmError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// What to do when Redis cannot be reached (or is too slow) for a rate-limit decision.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Admit the call: availability over strictness.
    FailOpen,
    /// Refuse the call with a rate-limited error.
    FailClosed,
    /// Count in this process instead (each process then applies the whole limit).
    #[default]
    Local,
}

/// A connection shared by the store and the limiter: connects on first use, reconnects by
/// itself, and gives each operation at most `timeout` (default 100 ms) before it counts as a
/// failure. Cheap to clone.
#[derive(Clone)]
pub struct RedisConnection {
    manager: ConnectionManager,
    timeout: Duration,
    url: String,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: show only the host part.
        let host = self.url.rsplit('@').next().unwrap_or_default();
        f.debug_struct("RedisConnection")
            .field("host", &host)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn redis_error(what: &str, e: &redis::RedisError) -> LlmError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    // Display of a RedisError names the failing command, never the URL or a password.
    LlmError::new(kind, format!("redis {what}: {e}"))
}

impl RedisConnection {
    /// A connection to `url` (`redis://host:port/db`); nothing is sent until first use.
    ///
    /// # Errors
    /// `InvalidRequest` when the URL cannot be parsed, or outside a tokio runtime.
    pub fn new(url: &str) -> Result<Self, LlmError> {
        Self::with_timeout(url, Duration::from_millis(100))
    }

    /// [`new`](Self::new) with another per-operation timeout.
    ///
    /// # Errors
    /// `InvalidRequest` when the URL cannot be parsed, or when called outside a tokio
    /// runtime (the connection lives on it).
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, LlmError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(LlmError::invalid_request(
                "a Redis connection must be created inside a tokio runtime",
            ));
        }
        let client = redis::Client::open(url)
            .map_err(|_| LlmError::invalid_request("the Redis URL cannot be parsed"))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| redis_error("setup", &e))?;
        Ok(RedisConnection {
            manager,
            timeout,
            url: url.to_owned(),
        })
    }

    /// The per-operation timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `op` on the connection within the timeout, mapping failures to `LlmError`s.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, LlmError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, op(self.manager.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(what, &e)),
            Err(_) => Err(LlmError::new(
                ErrorKind::Timeout,
                format!("redis {what}: no answer within {:?}", self.timeout),
            )),
        }
    }
}
