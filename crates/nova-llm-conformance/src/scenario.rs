//! What the kit asks a service double to answer: logical outcomes, each with the content
//! the kit then expects to read back through the driver.

use std::time::Duration;

use nova_llm_core::{ErrorKind, ToolCall, Usage};
use serde_json::Value;

/// A logical outcome of one call, which a service double answers as its service would on
/// the wire. The kit chooses the content; the double only encodes it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// A plain text reply with its usage; finish: a natural stop.
    Text {
        /// The reply's text.
        text: String,
        /// The token counts the service reports.
        usage: Usage,
    },
    /// Several tool calls in one reply; finish: tool calls.
    ToolCalls {
        /// The calls, in order (ids, names, JSON arguments).
        calls: Vec<ToolCall>,
        /// The token counts the service reports.
        usage: Usage,
    },
    /// A structured reply to a request that asked for JSON (a JSON schema): the JSON value.
    Structured {
        /// The value the reply holds.
        value: Value,
    },
    /// A reply with reasoning before its text.
    Reasoning {
        /// The reasoning text.
        reasoning: String,
        /// The reply's text.
        text: String,
        /// The token counts the service reports.
        usage: Usage,
    },
    /// A streamed text reply: one delta each, then usage, then the finish.
    Stream {
        /// The text deltas, in order.
        deltas: Vec<String>,
        /// The token counts the service reports.
        usage: Usage,
    },
    /// A streamed reply of several tool calls, their argument fragments interleaved if
    /// the service interleaves them, ids and names repeated in every fragment if it
    /// repeats them.
    StreamToolCalls {
        /// The calls the fragments must assemble into.
        calls: Vec<ToolCall>,
    },
    /// An error response of `class` before any output, its message holding `message`
    /// (the kit puts the driver's key in it to check the driver never shows it).
    Error {
        /// Which error.
        class: ErrorClass,
        /// What the service's error message says.
        message: String,
    },
    /// A stream whose connection is cut after its first `after` deltas.
    StreamCut {
        /// The text deltas the stream would have.
        deltas: Vec<String>,
        /// How many were sent.
        after: usize,
    },
    /// A stream that sends an error event of `class` after its first `after` deltas.
    StreamError {
        /// The text deltas the stream would have.
        deltas: Vec<String>,
        /// How many were sent before the error.
        after: usize,
        /// Which error.
        class: ErrorClass,
        /// What the error event's message says.
        message: String,
    },
    /// A stream that stops sending after its first `after` deltas, its connection left
    /// open.
    StreamStall {
        /// The text deltas the stream would have.
        deltas: Vec<String>,
        /// How many were sent.
        after: usize,
    },
    /// A plain reply body of `bytes` bytes, far over the driver's size limit, sent
    /// without a declared length.
    Oversize {
        /// How large the body is.
        bytes: usize,
    },
}

/// The fragments a double sends for [`Scenario::StreamToolCalls`]: each call's arguments
/// cut in two halves, the calls interleaved (every call's first half, then every call's
/// second half), as `(index of the call, the call, the piece of its arguments)`.
///
/// ```
/// use nova_llm_conformance::fragments;
/// use nova_llm_core::ToolCall;
///
/// let calls = [ToolCall::new("a", "f", "{\"x\":1}"), ToolCall::new("b", "g", "{}")];
/// let pieces: Vec<_> = fragments(&calls).into_iter().map(|(i, _, p)| (i, p)).collect();
/// assert_eq!(pieces, [(0, "{\"x"), (1, "{"), (0, "\":1}"), (1, "}")]);
/// ```
pub fn fragments(calls: &[ToolCall]) -> Vec<(usize, &ToolCall, &str)> {
    let half = |c: &ToolCall| c.arguments.len() / 2;
    let firsts = calls
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c, c.arguments.get(..half(c)).unwrap_or_default()));
    let seconds = calls
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c, c.arguments.get(half(c)..).unwrap_or_default()));
    firsts.chain(seconds).collect()
}

/// The classes of errors a service sends, each with what the driver must make of it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is malformed (HTTP 400).
    InvalidRequest,
    /// The key is missing or wrong (HTTP 401).
    Authentication,
    /// The key may not do this (HTTP 403).
    PermissionDenied,
    /// The model or endpoint does not exist (HTTP 404).
    NotFound,
    /// Too many requests; try again after the `Retry-After` the double sends (HTTP 429).
    RateLimited,
    /// The account's quota or credit is used up (HTTP 429 or 402 by the service's word).
    QuotaExhausted,
    /// The prompt does not fit the model's context window.
    ContextLength,
    /// The service refused the input on content-policy grounds.
    ContentFilter,
    /// The service is overloaded for now (HTTP 503 or 529).
    Overloaded,
    /// The service failed (HTTP 500).
    Server,
    /// A proxy's HTML error page (HTTP 502), not the service's JSON.
    HtmlPage,
    /// A body that is not JSON at all, with a server error status (HTTP 500).
    NonJson,
}

/// What the double sends as `Retry-After` for [`ErrorClass::RateLimited`], and what the
/// driver must report.
pub const RETRY_AFTER: Duration = Duration::from_secs(7);

impl ErrorClass {
    /// Every class, in the order the kit checks them.
    pub const ALL: [ErrorClass; 12] = [
        ErrorClass::InvalidRequest,
        ErrorClass::Authentication,
        ErrorClass::PermissionDenied,
        ErrorClass::NotFound,
        ErrorClass::RateLimited,
        ErrorClass::QuotaExhausted,
        ErrorClass::ContextLength,
        ErrorClass::ContentFilter,
        ErrorClass::Overloaded,
        ErrorClass::Server,
        ErrorClass::HtmlPage,
        ErrorClass::NonJson,
    ];

    /// The kind the driver must classify it as.
    pub fn kind(self) -> ErrorKind {
        match self {
            ErrorClass::InvalidRequest => ErrorKind::InvalidRequest,
            ErrorClass::Authentication => ErrorKind::Authentication,
            ErrorClass::PermissionDenied => ErrorKind::PermissionDenied,
            ErrorClass::NotFound => ErrorKind::NotFound,
            ErrorClass::RateLimited => ErrorKind::RateLimited,
            ErrorClass::QuotaExhausted => ErrorKind::QuotaExceeded,
            ErrorClass::ContextLength => ErrorKind::ContextLengthExceeded,
            ErrorClass::ContentFilter => ErrorKind::ContentFiltered,
            ErrorClass::Overloaded => ErrorKind::Overloaded,
            ErrorClass::Server | ErrorClass::HtmlPage | ErrorClass::NonJson => ErrorKind::Server,
        }
    }

    /// Whether the driver must say a retry may succeed.
    pub fn retryable(self) -> bool {
        self.kind().is_retryable()
    }
}

/// The content of the kit's scenarios: the same for every driver.
pub(crate) mod content {
    use nova_llm_core::{ToolCall, Usage};

    pub(crate) fn usage() -> Usage {
        Usage::new(11, 7)
    }

    pub(crate) fn deltas() -> Vec<String> {
        ["Conformance ", "is ", "a ", "shared ", "promise."]
            .into_iter()
            .map(String::from)
            .collect()
    }

    pub(crate) fn calls() -> Vec<ToolCall> {
        vec![
            ToolCall::new("call_weather_1", "get_weather", r#"{"city":"Paris"}"#),
            ToolCall::new("call_time_2", "get_time", r#"{"zone":"Europe/Paris"}"#),
        ]
    }
}
