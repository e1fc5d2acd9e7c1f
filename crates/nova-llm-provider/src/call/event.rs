//! The typed lifecycle events of a call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nova_llm_core::{Dialog, ErrorKind, FinishReason, Usage};

use super::id::{Operation, RequestId};

/// Something that happened to one call.
///
/// Every call emits exactly one [`EventKind::Started`] and then exactly one
/// [`EventKind::Completed`] or [`EventKind::Failed`], for plain and streamed calls alike,
/// whether a stream is read to its end or dropped early (a dropped call fails as
/// [`ErrorKind::Cancelled`]). Other events come in between; none follows the terminal
/// one, whatever the interleaving (work shared by several calls reports only for a call
/// that is still there).
///
/// Events never hold an API key. Prompt and reply text appear only when the provider was
/// built with [`capture_content`](crate::ProviderBuilder::capture_content).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Event {
    /// The call's id (shared by all of its events).
    pub request_id: RequestId,
    /// The driver at the bottom of the chain.
    pub driver: Arc<str>,
    /// The requested model, or `"default"` when the request left it to the driver.
    pub model: Arc<str>,
    /// Wall-clock time of the event.
    pub at: SystemTime,
    /// Time since the call entered the provider (tokio's clock).
    pub elapsed: Duration,
    /// The caller's tags for this call ([`CallOptions::tag`](crate::CallOptions::tag)).
    pub tags: Arc<BTreeMap<String, String>>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// Whether this is the last event of its call (completed or failed).
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, EventKind::Completed(_) | EventKind::Failed(_))
    }
}

/// What happened. Caching, rate-limit, retry, fallback and circuit events are emitted by
/// the middleware that do those things.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The call entered the provider.
    Started {
        /// Which trait method it came through.
        operation: Operation,
        /// The dialog, only with content capture on.
        prompt: Option<Dialog>,
    },
    /// A cache answered the call.
    CacheHit,
    /// The cache had no answer; the call goes on.
    CacheMiss,
    /// The reply was stored in the cache. For a stream shared by several callers, it is
    /// reported for the earliest caller still reading it (the one whose call went upstream,
    /// unless it let go), before that caller's terminal event.
    CacheStored,
    /// The call joined an identical call already in flight instead of sending its own.
    Coalesced,
    /// The call waited for a rate limit.
    RateLimitWait {
        /// How long it waited.
        waited: Duration,
    },
    /// A shared backend (a cache store, a rate-limit backend) failed; the call went on
    /// without it as configured.
    BackendUnavailable {
        /// Which backend (`cache store`, `rate limiter`).
        backend: String,
        /// What was done instead (`treated as a miss`, `admitted (fail open)`, ...).
        fallback: String,
        /// The backend's error.
        error: String,
    },
    /// The dialog was trimmed to fit the model's context window.
    ContextTrimmed {
        /// Rows dropped.
        dropped_rows: usize,
        /// Their tokens (as the layer's counter counts).
        dropped_tokens: usize,
        /// Whether a summary row replaced them.
        summarized: bool,
    },
    /// A local rate limit refused the call (fail-fast, or the wait would be too long).
    RateLimitRejected {
        /// When a retry could succeed, if known.
        retry_after: Option<Duration>,
    },
    /// An attempt failed and another is scheduled.
    RetryScheduled {
        /// The attempt that comes next (from 2).
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// Why the previous attempt failed.
        error: ErrorKind,
    },
    /// The call moved on to another driver.
    Fallback {
        /// The driver it moved to.
        to: String,
        /// Why the previous driver failed.
        error: ErrorKind,
    },
    /// A circuit breaker stopped sending to a driver.
    CircuitOpened {
        /// The driver.
        driver: String,
    },
    /// A circuit breaker let traffic through to a driver again.
    CircuitClosed {
        /// The driver.
        driver: String,
    },
    /// The first content of a streamed reply arrived.
    FirstChunk {
        /// Time from the call's start to the first text, reasoning or tool-call delta.
        time_to_first_token: Duration,
    },
    /// A stream that had produced output ended before its finish (error, cut connection,
    /// or the caller dropped it). The call's `Failed` event follows.
    StreamInterrupted {
        /// Why: the error's kind, [`ErrorKind::Cancelled`] when the caller dropped it.
        error: ErrorKind,
        /// Characters of text received before the end.
        received_chars: usize,
    },
    /// The call succeeded. Terminal.
    Completed(Completion),
    /// The call failed. Terminal.
    Failed(Failure),
}

/// The figures of a successful call.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Which trait method the call came through.
    pub operation: Operation,
    /// Time from the call's start to its end (the `Finish` event for streams).
    pub latency: Duration,
    /// For streams: time to the first content.
    pub time_to_first_token: Option<Duration>,
    /// Token counts: the driver's, or an estimate (flagged `estimated`) when it reported
    /// none.
    pub usage: Usage,
    /// What the call cost in US dollars; `None` when the model has no known price. A cache
    /// hit costs `0.0`.
    pub cost_usd: Option<f64>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The model that answered, as the service named it (empty when it did not say).
    pub response_model: String,
    /// The driver that answered: the provider's own, or the fallback target that did
    /// ([`ServedBy`](crate::ServedBy)).
    pub served_by: Arc<str>,
    /// Whether a cache served the reply.
    pub from_cache: bool,
    /// The reply text, only with content capture on.
    pub reply: Option<String>,
}

/// What is known about a failed call.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Which trait method the call came through.
    pub operation: Operation,
    /// Time from the call's start to the failure.
    pub latency: Duration,
    /// The error's kind ([`ErrorKind::Cancelled`] when the caller dropped the call).
    pub error: ErrorKind,
    /// The error's message.
    pub message: String,
    /// The HTTP status, if there was one.
    pub status: Option<u16>,
    /// What the call used before it failed, when anything is known: the service's own
    /// count if it reported one (a stream's usage before it broke), else, once output had
    /// arrived, an estimate from the characters sent and received (flagged `estimated`).
    /// `None` when nothing was generated (a refusal before any output is not billed).
    pub usage: Option<Usage>,
    /// What that usage cost in US dollars, when the model has a known price.
    pub cost_usd: Option<f64>,
}
