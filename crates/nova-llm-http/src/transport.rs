//! Transport failures (connect, timeout, a body cut off) as classified errors.

use nova_llm_core::{ErrorKind, LlmError};

/// A transport failure from reqwest, `during` saying what was under way ("the request").
/// The message never repeats the URL (a user's base URL could carry secrets in its query).
pub fn from_reqwest(e: reqwest::Error, during: &str) -> LlmError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connection
    } else if e.is_decode() {
        ErrorKind::Decode
    } else {
        ErrorKind::Connection
    };
    let what = match kind {
        ErrorKind::Timeout => "timed out",
        ErrorKind::Decode => "could not be decoded",
        _ if e.is_connect() => "could not connect",
        _ => "failed",
    };
    LlmError::new(kind, format!("{during} {what}")).with_source(e.without_url())
}

/// A failure while a response body is read. reqwest reports those as decode errors, but the
/// drivers turn on no content decoding, so they are the transport's: the connection was
/// reset or closed before the body was complete. Retryable, like any broken connection.
pub fn from_body_read(e: reqwest::Error) -> LlmError {
    let (kind, message) = if e.is_timeout() {
        (ErrorKind::Timeout, "reading the response timed out")
    } else {
        (
            ErrorKind::Connection,
            "the connection broke while the response was read",
        )
    };
    LlmError::new(kind, message).with_source(e.without_url())
}
