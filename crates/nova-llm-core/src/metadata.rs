//! What a service says about a call besides the reply: its request id and rate limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The service's rate-limit state, as read from response headers (`x-ratelimit-*`).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimitSnapshot {
    /// Requests allowed per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_requests: Option<u64>,
    /// Tokens allowed per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
    /// Requests left in the current window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_requests: Option<u64>,
    /// Tokens left in the current window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_tokens: Option<u64>,
    /// Time until the request window resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_requests: Option<Duration>,
    /// Time until the token window resets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_tokens: Option<Duration>,
}

impl RateLimitSnapshot {
    /// An empty snapshot (nothing known).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no field is known.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Sets the request limit and what is left of it.
    pub fn with_requests(mut self, limit: Option<u64>, remaining: Option<u64>) -> Self {
        self.limit_requests = limit;
        self.remaining_requests = remaining;
        self
    }

    /// Sets the token limit and what is left of it.
    pub fn with_tokens(mut self, limit: Option<u64>, remaining: Option<u64>) -> Self {
        self.limit_tokens = limit;
        self.remaining_tokens = remaining;
        self
    }

    /// Sets the reset times of the request and token windows.
    pub fn with_resets(mut self, requests: Option<Duration>, tokens: Option<Duration>) -> Self {
        self.reset_requests = requests;
        self.reset_tokens = tokens;
        self
    }
}

/// What the service said about the call, besides the reply.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseMetadata {
    /// The service's request id (`x-request-id`), for support tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The rate-limit state after this call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSnapshot>,
    /// The service's system fingerprint, when it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
}

impl ResponseMetadata {
    /// Nothing known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the rate-limit snapshot.
    pub fn with_rate_limit(mut self, snapshot: RateLimitSnapshot) -> Self {
        self.rate_limit = Some(snapshot);
        self
    }
}
