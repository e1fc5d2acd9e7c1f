//! The nova-llm provider as an OpenAI-compatible HTTP gateway (`nova serve`): programs in
//! any language, with the official OpenAI SDKs unchanged, get the provider's layers as a
//! service — one place for upstream keys, gateway keys with limits and budgets, caching,
//! fallback across vendors, and metrics.
//!
//! - `POST /v1/chat/completions` (plain and SSE), `POST /v1/completions`, `GET /v1/models`,
//!   in OpenAI's wire shape; errors in OpenAI's error shape with the matching status and
//!   `Retry-After`; a stream that fails after it began ends with an `{"error": …}` event
//!   the SDKs raise, never a silent truncation. `POST /v1/messages` in Anthropic's shape
//!   (named stream events, `x-api-key`), so the Anthropic SDKs work against any route.
//! - Routing from a TOML [`Config`]: each model clients may ask for names a driver
//!   (OpenAI-compatible, Anthropic, Gemini, the mock), its base URL, the environment
//!   variable holding its key, a fallback chain, rate limits, a cache. An unknown model is
//!   a 404 in OpenAI's shape.
//! - Gateway keys kept as SHA-256 hashes ([`hash_key`]), each with allowed models, request
//!   and token limits, and a spend budget per period.
//! - `GET /metrics` (Prometheus text, OpenTelemetry GenAI names, the gateway's own added
//!   latency), `GET /health`, `GET /ready`; an access log through `tracing` (target
//!   `nova_gateway::access`), without bodies unless asked.
//! - With [`GatewayBuilder::redis`], caches, rate limits and budgets are shared by every
//!   instance on one Redis.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use nova_llm_gateway::{Config, Gateway};
//!
//! // One route, `mock`, on the built-in test double; no keys.
//! let gateway = Gateway::builder(Config::builtin_mock()).build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(gateway.serve(listener, async move { let _ = stopped.await; }));
//!
//! // Any OpenAI client works; a raw request shows the shape.
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let body = r#"{"model":"mock","messages":[{"role":"user","content":"hello"}]}"#;
//! let mut conn = tokio::net::TcpStream::connect(addr).await?;
//! conn.write_all(format!(
//!     "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
//!      content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()
//! ).as_bytes()).await?;
//! let mut answer = String::new();
//! conn.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200"));
//! assert!(answer.contains(r#""content":"f(hello)""#));
//!
//! let _ = stop.send(());
//! server.await??;
//! # Ok(())
//! # }
//! ```

mod access;
mod anthropic;
mod config;
mod metrics;
mod openai;
mod routes;
mod server;
mod shared;
mod spend;
mod timed;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nova_llm_core::LlmError;
use nova_llm_redis::RedisConnection;
use tokio::net::TcpListener;

pub use access::hash_key;
pub use config::{
    CacheConfig, Config, ConfigError, DriverKind, KeyConfig, ModelRoute, ServerConfig,
};

use access::{AccessLayer, Keys};
use metrics::{GatewayMetrics, MetricsListener};
use routes::Routes;
use shared::Shared;
use spend::{Spend, SpendListener};

/// A gateway ready to serve: its routes built, its keys loaded.
pub struct Gateway {
    config: Config,
    routes: Routes,
    keys: Arc<Keys>,
    metrics: Arc<GatewayMetrics>,
    /// Set once a shutdown began (`/ready` answers 503).
    draining: AtomicBool,
    ids: AtomicU64,
    /// Tells this instance's ids from another's.
    instance: u64,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("models", &self.routes.names().collect::<Vec<_>>())
            .field("keys", &self.keys.required())
            .finish_non_exhaustive()
    }
}

/// How the gateway reads environment variables (the upstream keys).
pub(crate) type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds a [`Gateway`].
pub struct GatewayBuilder {
    config: Config,
    redis: Option<(String, String)>,
    env: Env,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("models", &self.config.models.len())
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Shares caches, rate limits and budgets through the Redis at `url`, under the key
    /// prefix `nova:gw:` (see [`redis_prefix`](Self::redis_prefix)). Default: in memory.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.redis = Some((url.into(), "nova:gw:".into()));
        self
    }

    /// Where the routes' `api_key_env` (and the drivers' other variables) are read.
    /// Default: the process's environment.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Another Redis key prefix (several deployments on one Redis).
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        if let Some((_, p)) = &mut self.redis {
            *p = prefix.into();
        }
        self
    }

    /// The gateway.
    ///
    /// # Errors
    /// A route whose driver cannot be built (its message names the route), or a Redis URL
    /// that does not parse. Call inside a tokio runtime when Redis is used.
    pub fn build(self) -> Result<Gateway, LlmError> {
        let shared = match &self.redis {
            None => Shared::Memory,
            Some((url, prefix)) => Shared::Redis {
                conn: RedisConnection::new(url)?,
                prefix: prefix.clone(),
            },
        };
        let keys = Arc::new(Keys::from_config(&self.config.keys));
        let periods: HashMap<String, u64> = self
            .config
            .keys
            .iter()
            .map(|k| (k.name.get_ref().clone(), k.period().as_secs().max(1)))
            .collect();
        let spend = Arc::new(Spend::new(periods, shared.tally()));
        let access = AccessLayer::new(
            Arc::clone(&keys),
            shared.windows("keys:"),
            Arc::clone(&spend),
        );
        let metrics = Arc::new(GatewayMetrics::default());
        let routes = Routes::build(
            &self.config,
            &self.env,
            &shared,
            &access,
            &MetricsListener(Arc::clone(&metrics)),
            &SpendListener(spend),
        )?;
        Ok(Gateway {
            config: self.config,
            routes,
            keys,
            metrics,
            draining: AtomicBool::new(false),
            ids: AtomicU64::new(0),
            instance: u64::from(fastrand_seed()),
        })
    }
}

/// A per-process number for ids (not a secret).
fn fastrand_seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    t ^ std::process::id()
}

impl Gateway {
    /// A builder for `config` (already checked: see [`Config::parse`]).
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            redis: None,
            env: Arc::new(|name| std::env::var(name).ok()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A new response id with `prefix`.
    fn next_id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:08x}{n:x}", self.instance)
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting, lets
    /// in-flight calls and streams finish for up to the configured grace period, and
    /// returns (what is still running then is dropped, which cancels its upstream calls).
    /// A client gets the configured time to send its headers, then its connection closes.
    ///
    /// # Errors
    /// None today: a failed accept (out of file descriptors) is logged and retried.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let grace = self.config.server.shutdown_grace();
        let mut http = hyper::server::conn::http1::Builder::new();
        // hyper arms this timer for every request's headers: about a fifth of the
        // throughput at 64 calls in flight on two cores (BENCHMARKS.md); 0 turns it off.
        if let Some(timeout) = self.config.server.header_timeout() {
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeout);
        }
        let gateway = Arc::new(self);
        let service =
            hyper_util::service::TowerToHyperService::new(server::router(Arc::clone(&gateway)));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        // The connections, to end what still runs after the grace period.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let conn = http.serve_connection(
                            hyper_util::rt::TokioIo::new(stream),
                            service.clone(),
                        );
                        let conn = graceful.watch(conn);
                        while connections.try_join_next().is_some() {}
                        connections.spawn(async move {
                            let _ = conn.await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(target: "nova_gateway::access", error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        gateway.draining.store(true, Ordering::Relaxed);
        tracing::info!(target: "nova_gateway::access", "draining for up to {grace:?}");
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(grace) => {
                tracing::warn!(target: "nova_gateway::access", "in-flight work dropped after the grace period");
            }
        }
        connections.abort_all();
        Ok(())
    }
}
