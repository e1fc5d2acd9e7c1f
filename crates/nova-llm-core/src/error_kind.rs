//! What went wrong, in terms a caller can act on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a caller can act on.
///
/// Retry, fallback and circuit-breaking logic branch on this value (and on
/// [`LlmError::is_retryable`](crate::LlmError::is_retryable)), never on message strings.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request was malformed or had invalid parameters (HTTP 400, 413, 422).
    InvalidRequest,
    /// The credentials were missing or rejected (HTTP 401).
    Authentication,
    /// The credentials are valid but may not do this (HTTP 403).
    PermissionDenied,
    /// The model or endpoint does not exist (HTTP 404).
    NotFound,
    /// Too many requests for now; try again later (HTTP 429).
    RateLimited,
    /// The account has run out of quota or credit; waiting does not help.
    QuotaExceeded,
    /// The prompt plus the requested output do not fit the model's context window.
    ContextLengthExceeded,
    /// The service refused the input or output on content-policy grounds.
    ContentFiltered,
    /// The call, or a wait between stream chunks, took too long.
    Timeout,
    /// The service could not be reached or the connection broke before a reply.
    Connection,
    /// The service failed internally (HTTP 500, 502).
    Server,
    /// The service is overloaded or unavailable for now (HTTP 503, 504, 529).
    Overloaded,
    /// The reply could not be decoded (malformed JSON, too large, wrong shape).
    Decode,
    /// A stream ended before it was finished; [`LlmError::partial`](crate::LlmError::partial) holds what arrived.
    StreamInterrupted,
    /// The call was cancelled by the caller.
    Cancelled,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether an error of this kind may succeed if the same request is sent again later.
    ///
    /// Rate limits, timeouts, connection failures, server errors, overload and interrupted
    /// streams are retryable; invalid requests, authentication, quota, context length,
    /// content filtering, decode errors and cancellation are not.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::Server
                | ErrorKind::Overloaded
                | ErrorKind::StreamInterrupted
        )
    }

    /// A short lowercase description, as used in `Display`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid request",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::NotFound => "not found",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::QuotaExceeded => "quota exceeded",
            ErrorKind::ContextLengthExceeded => "context length exceeded",
            ErrorKind::ContentFiltered => "content filtered",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Connection => "connection failed",
            ErrorKind::Server => "server error",
            ErrorKind::Overloaded => "service overloaded",
            ErrorKind::Decode => "could not decode the response",
            ErrorKind::StreamInterrupted => "stream interrupted",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Other => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;
    use crate::LlmError;

    #[test]
    fn retryable_kinds_are_the_transient_ones() {
        use ErrorKind::*;
        let retryable = [
            RateLimited,
            Timeout,
            Connection,
            Server,
            Overloaded,
            StreamInterrupted,
        ];
        let permanent = [
            InvalidRequest,
            Authentication,
            PermissionDenied,
            NotFound,
            QuotaExceeded,
            ContextLengthExceeded,
            ContentFiltered,
            Decode,
            Cancelled,
            Other,
        ];
        for k in retryable {
            assert!(LlmError::new(k, "x").is_retryable(), "{k:?}");
        }
        for k in permanent {
            assert!(!LlmError::new(k, "x").is_retryable(), "{k:?}");
        }
    }

    #[test]
    fn a_kind_displays_as_its_short_description() {
        for kind in [ErrorKind::RateLimited, ErrorKind::Timeout, ErrorKind::Other] {
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!(
            ErrorKind::ContextLengthExceeded.to_string(),
            "context length exceeded"
        );
    }

    #[test]
    fn kind_serializes_as_snake_case() {
        let s = serde_json::to_string(&ErrorKind::ContextLengthExceeded).unwrap();
        assert_eq!(s, "\"context_length_exceeded\"");
    }
}
