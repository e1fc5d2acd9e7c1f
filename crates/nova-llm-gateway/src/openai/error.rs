//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, with the
//! HTTP status an OpenAI client expects for each kind.

use nova_llm_core::{ErrorKind, LlmError};
use serde::Serialize;

/// `{"error": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl<'a> ErrorBody<'a> {
    /// The body for `err`: its message (already free of upstream keys: drivers redact
    /// their own), OpenAI's type for its kind, and the service's code when it gave one.
    pub(crate) fn of(err: &'a LlmError) -> Self {
        let (_, kind, code) = describe(err.kind());
        ErrorBody {
            error: ErrorDetail {
                message: err.message(),
                kind,
                param: None,
                code: err.code().or(code),
            },
        }
    }

    /// A body of the gateway's own (`kind` and `code` given).
    pub(crate) fn new(message: &'a str, kind: &'static str, code: Option<&'a str>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                message,
                kind,
                param: None,
                code,
            },
        }
    }
}

/// The HTTP status, OpenAI error type and default code for a kind.
pub(crate) fn describe(kind: ErrorKind) -> (u16, &'static str, Option<&'static str>) {
    match kind {
        ErrorKind::InvalidRequest => (400, "invalid_request_error", None),
        ErrorKind::Authentication => (401, "authentication_error", Some("invalid_api_key")),
        ErrorKind::PermissionDenied => (403, "permission_error", None),
        ErrorKind::NotFound => (404, "invalid_request_error", Some("model_not_found")),
        ErrorKind::RateLimited => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        ErrorKind::QuotaExceeded => (429, "insufficient_quota", Some("insufficient_quota")),
        ErrorKind::ContextLengthExceeded => (
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
        ),
        ErrorKind::ContentFiltered => (400, "invalid_request_error", Some("content_filter")),
        ErrorKind::Timeout => (504, "timeout_error", None),
        ErrorKind::Connection => (502, "api_connection_error", None),
        ErrorKind::Overloaded => (503, "overloaded_error", None),
        ErrorKind::Server | ErrorKind::Decode | ErrorKind::StreamInterrupted => {
            (502, "api_error", None)
        }
        // A cancelled call has no client left to answer; any other is the gateway's own.
        _ => (500, "api_error", None),
    }
}
