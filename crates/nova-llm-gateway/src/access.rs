//! Gateway keys: who may call, which models, how often, and how much they may spend.
//!
//! A key is kept as its SHA-256 only; a request's bearer token is hashed and looked up.
//! The key's limits are checked by a middleware in each route's provider (inside the
//! events layer, so a refusal is an event like any other) with the key's name as a call
//! tag; its windows are shared by every route (and, with Redis, every instance).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, ErrorKind, LlmError};
use nova_llm_provider::rate_limit::{Acquire, RateLimitBackend, RateLimitLayer, WindowLimits};
use nova_llm_provider::{CallContext, Middleware, Next};
use sha2::{Digest, Sha256};

use crate::config::KeyConfig;
use crate::spend::Spend;

/// The call tag that carries the gateway key's name.
pub(crate) const KEY_TAG: &str = "gateway.key";

/// One gateway key, as the gateway enforces it.
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) name: String,
    /// `None`: every model.
    models: Option<HashSet<String>>,
    limits: WindowLimits,
    budget_usd: Option<f64>,
}

impl Key {
    /// Whether this key may call `model`.
    pub(crate) fn allows(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.contains(model))
    }
}

/// The SHA-256 of `token`, in lowercase hex (what the configuration holds).
pub fn hash_key(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Every key, by hash and by name.
#[derive(Debug)]
pub(crate) struct Keys {
    by_hash: HashMap<String, Arc<Key>>,
    by_name: HashMap<String, Arc<Key>>,
}

/// Why a request's key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No bearer token.
    Missing,
    /// A token that is no key.
    Unknown,
}

impl Keys {
    pub(crate) fn from_config(keys: &[KeyConfig]) -> Keys {
        let mut by_hash = HashMap::new();
        let mut by_name = HashMap::new();
        for k in keys {
            let key = Arc::new(Key {
                name: k.name.get_ref().clone(),
                models: k
                    .models
                    .as_ref()
                    .map(|m| m.iter().map(|s| s.get_ref().clone()).collect()),
                limits: {
                    let mut l = WindowLimits::default();
                    l.requests = k.rpm.map(|n| (n, Duration::from_secs(60)));
                    l.tokens_per_minute = k.tpm;
                    l
                },
                budget_usd: k.budget_usd,
            });
            by_hash.insert(k.sha256.get_ref().to_ascii_lowercase(), Arc::clone(&key));
            by_name.insert(key.name.clone(), key);
        }
        Keys { by_hash, by_name }
    }

    /// Whether calls need a key at all (any key configured).
    pub(crate) fn required(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// The key of an `Authorization` header's value; `Ok(None)` when no key is needed.
    pub(crate) fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Option<Arc<Key>>, Refusal> {
        if !self.required() {
            return Ok(None);
        }
        let token = authorization
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Missing)?;
        self.by_hash
            .get(&hash_key(token))
            .cloned()
            .map(Some)
            .ok_or(Refusal::Unknown)
    }

    fn named(&self, name: &str) -> Option<&Arc<Key>> {
        self.by_name.get(name)
    }
}

/// The middleware that holds a call to its key's limits and budget.
#[derive(Clone)]
pub(crate) struct AccessLayer {
    keys: Arc<Keys>,
    windows: Arc<dyn RateLimitBackend>,
    spend: Arc<Spend>,
    /// Only its token estimate is used.
    estimator: RateLimitLayer,
}

impl std::fmt::Debug for AccessLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLayer")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl AccessLayer {
    pub(crate) fn new(
        keys: Arc<Keys>,
        windows: Arc<dyn RateLimitBackend>,
        spend: Arc<Spend>,
    ) -> Self {
        AccessLayer {
            keys,
            windows,
            spend,
            estimator: RateLimitLayer::new(),
        }
    }

    /// Refuses a call its key may not make now; else counts it and says where (the scope
    /// and ticket to correct once the usage is known).
    async fn admit(
        &self,
        request: &ChatRequest,
        cx: &CallContext,
    ) -> Result<Option<(String, nova_llm_provider::rate_limit::Ticket)>, LlmError> {
        let Some(key) = cx.tags().get(KEY_TAG).and_then(|n| self.keys.named(n)) else {
            return Ok(None);
        };
        if let Some(budget) = key.budget_usd {
            match self.spend.spent(&key.name).await {
                Ok(spent) if spent >= budget => {
                    return Err(LlmError::new(
                        ErrorKind::QuotaExceeded,
                        format!(
                            "the key `{}` has spent its budget of ${budget} for this period",
                            key.name
                        ),
                    )
                    .with_code("budget_exceeded"));
                }
                Ok(_) => {}
                // Availability over strictness: the budget is checked again on the next call.
                Err(e) => tracing::warn!(key = %key.name, error = %e, "budget not checked"),
            }
        }
        if key.limits.requests.is_none() && key.limits.tokens_per_minute.is_none() {
            return Ok(None);
        }
        let tokens = if key.limits.tokens_per_minute.is_some() {
            self.estimator.estimate_tokens(request)
        } else {
            0
        };
        let scope = format!("key:{}", key.name);
        match self
            .windows
            .try_acquire(&scope, tokens, key.limits, cx)
            .await?
        {
            Acquire::Admitted(ticket) => Ok(Some((scope, ticket))),
            Acquire::Wait(wait) => Err(LlmError::new(
                ErrorKind::RateLimited,
                format!("the key `{}` is over its rate limit", key.name),
            )
            .with_retry_after(wait)),
        }
    }
}

#[async_trait]
impl Middleware for AccessLayer {
    fn name(&self) -> &str {
        "gateway_access"
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let admitted = self.admit(&request, cx).await?;
        let result = next.chat(request, cx).await;
        if let (Some((scope, ticket)), Ok(reply)) = (admitted, &result) {
            // The estimate corrected with the real count (best effort).
            let _ = self
                .windows
                .reconcile(
                    &scope,
                    ticket,
                    reply.usage.input_tokens + reply.usage.output_tokens,
                )
                .await;
        }
        result
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        // A stream's tokens stay counted at their estimate.
        self.admit(&request, cx).await?;
        next.chat_stream(request, cx).await
    }
}
