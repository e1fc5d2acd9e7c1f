//! The one classified error type every driver returns.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use crate::error_kind::ErrorKind;
use crate::metadata::RateLimitSnapshot;
use crate::partial::PartialOutput;
use crate::secret::ApiKey;

/// The error of every [`LlmDriver`](crate::LlmDriver) call.
///
/// Opaque by design (like `reqwest::Error`): ask it questions instead of matching on
/// variants, so new details can be added without breaking anyone.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_core::{ErrorKind, LlmError};
///
/// let err = LlmError::new(ErrorKind::RateLimited, "slow down")
///     .with_status(429)
///     .with_retry_after(Duration::from_secs(2));
/// assert!(err.is_retryable());
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(err.to_string(), "rate limited (http 429): slow down");
/// ```
///
/// The error never holds a credential; drivers must not put one in the message.
#[derive(Clone)]
pub struct LlmError {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    code: Option<String>,
    error_type: Option<String>,
    param: Option<String>,
    request_id: Option<String>,
    rate_limit: Option<RateLimitSnapshot>,
    partial: Option<PartialOutput>,
    /// The kind of the error that interrupted a stream ([`LlmError::interrupted`]), whose
    /// retryability this error keeps.
    cause: Option<ErrorKind>,
    source: Option<Arc<dyn StdError + Send + Sync + 'static>>,
}

impl LlmError {
    /// A new error of `kind` with a human-readable `message` (no credentials, no bodies).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        LlmError {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                retry_after: None,
                code: None,
                error_type: None,
                param: None,
                request_id: None,
                rate_limit: None,
                partial: None,
                cause: None,
                source: None,
            }),
        }
    }

    /// Shorthand for an [`ErrorKind::InvalidRequest`] error.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// Shorthand for an [`ErrorKind::Decode`] error.
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decode, message)
    }

    /// Shorthand for an [`ErrorKind::StreamInterrupted`] error carrying what arrived so far.
    pub fn stream_interrupted(message: impl Into<String>, partial: PartialOutput) -> Self {
        Self::new(ErrorKind::StreamInterrupted, message).with_partial(partial)
    }

    /// The error a stream ends with when `cause` (a broken connection, an idle timeout, an
    /// error event from the service) stops it after its output started: an
    /// [`ErrorKind::StreamInterrupted`] error carrying `partial`, with `cause` as its
    /// [`source`](StdError::source). It keeps the cause's retryability, status,
    /// `retry_after`, code, type and request id, so callers can still tell an overloaded
    /// service from a content filter. See the stream contract (module `stream`).
    ///
    /// ```
    /// use nova_llm_core::{ErrorKind, LlmError, PartialOutput};
    ///
    /// let cause = LlmError::new(ErrorKind::Overloaded, "overloaded").with_code("overloaded_error");
    /// let err = LlmError::interrupted(cause, PartialOutput::default());
    /// assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    /// assert_eq!(err.cause_kind(), Some(ErrorKind::Overloaded));
    /// assert!(err.is_retryable());
    /// assert_eq!(err.to_string(), "stream interrupted: service overloaded after the output started");
    /// ```
    pub fn interrupted(cause: LlmError, partial: PartialOutput) -> Self {
        let c = &cause.inner;
        let mut err = Self::new(
            ErrorKind::StreamInterrupted,
            format!("{} after the output started", c.kind),
        );
        let i = &mut err.inner;
        i.status = c.status;
        i.retry_after = c.retry_after;
        i.code.clone_from(&c.code);
        i.error_type.clone_from(&c.error_type);
        i.request_id.clone_from(&c.request_id);
        i.rate_limit.clone_from(&c.rate_limit);
        i.cause = Some(c.cause.unwrap_or(c.kind));
        i.partial = Some(partial);
        err.with_source(cause)
    }

    /// Sets the HTTP status the service answered with.
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Sets how long the service asked the caller to wait before retrying.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.inner.retry_after = Some(after);
        self
    }

    /// Sets the provider's own error code (for example `insufficient_quota`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.inner.code = Some(code.into());
        self
    }

    /// Sets the provider's own error type (for example `invalid_request_error`).
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.inner.error_type = Some(error_type.into());
        self
    }

    /// Sets the request parameter the provider blamed.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.inner.param = Some(param.into());
        self
    }

    /// Sets the provider's request id (for support tickets).
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.inner.request_id = Some(id.into());
        self
    }

    /// Sets the rate-limit state reported alongside the error.
    pub fn with_rate_limit(mut self, snapshot: RateLimitSnapshot) -> Self {
        self.inner.rate_limit = Some(snapshot);
        self
    }

    /// Attaches the output a stream produced before it failed.
    pub fn with_partial(mut self, partial: PartialOutput) -> Self {
        self.inner.partial = Some(partial);
        self
    }

    /// Keeps the underlying error (an I/O, HTTP or JSON error) as [`source`](StdError::source).
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.inner.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Whether sending the same request again later may succeed (see
    /// [`ErrorKind::is_retryable`]; an interrupted stream answers for its cause).
    pub fn is_retryable(&self) -> bool {
        self.inner.cause.unwrap_or(self.inner.kind).is_retryable()
    }

    /// For a stream stopped by another error after its output started
    /// ([`LlmError::interrupted`]): that error's kind. `None` for every other error,
    /// including a stream that was cut with no error at all.
    pub fn cause_kind(&self) -> Option<ErrorKind> {
        self.inner.cause
    }

    /// Whether the error is a timeout.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// How long the service asked to wait before retrying, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// The HTTP status, if the error came from an HTTP response.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The provider's error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// The provider's error type, if it sent one.
    pub fn error_type(&self) -> Option<&str> {
        self.inner.error_type.as_deref()
    }

    /// The request parameter the provider blamed, if any.
    pub fn param(&self) -> Option<&str> {
        self.inner.param.as_deref()
    }

    /// The provider's request id, if it sent one.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// The rate-limit state reported with the error, if any.
    pub fn rate_limit(&self) -> Option<&RateLimitSnapshot> {
        self.inner.rate_limit.as_ref()
    }

    /// What a stream delivered before it failed, if the error ended a stream.
    pub fn partial(&self) -> Option<&PartialOutput> {
        self.inner.partial.as_ref()
    }

    /// The error with every occurrence of `key` in its texts (message, code, type,
    /// parameter, request id, and the same in an [`LlmError`] kept as its source) replaced
    /// by `<redacted>`.
    ///
    /// Drivers call it on every error they return, so a key that a service or a proxy
    /// echoes back in an error body never reaches a log, an event or a span. Cheap when the
    /// key is not there (one search per text).
    pub fn redact(mut self, key: &ApiKey) -> Self {
        let i = &mut *self.inner;
        let fix = |s: &mut String| {
            if key.appears_in(s) {
                *s = key.redact_in(s);
            }
        };
        fix(&mut i.message);
        for s in [
            &mut i.code,
            &mut i.error_type,
            &mut i.param,
            &mut i.request_id,
        ]
        .into_iter()
        .flatten()
        {
            fix(s);
        }
        if let Some(source) = &i.source
            && let Some(cause) = source.downcast_ref::<LlmError>()
        {
            let cause = cause.clone().redact(key);
            i.source = Some(Arc::new(cause));
        }
        self
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.as_str())?;
        if let Some(status) = self.inner.status {
            write!(f, " (http {status})")?;
        }
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        Ok(())
    }
}

impl fmt::Debug for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("LlmError");
        d.field("kind", &i.kind).field("message", &i.message);
        if let Some(v) = &i.status {
            d.field("status", v);
        }
        if let Some(v) = &i.retry_after {
            d.field("retry_after", v);
        }
        if let Some(v) = &i.code {
            d.field("code", v);
        }
        if let Some(v) = &i.error_type {
            d.field("error_type", v);
        }
        if let Some(v) = &i.param {
            d.field("param", v);
        }
        if let Some(v) = &i.request_id {
            d.field("request_id", v);
        }
        if let Some(v) = &i.rate_limit {
            d.field("rate_limit", v);
        }
        if let Some(v) = &i.partial {
            d.field("partial", v);
        }
        if let Some(v) = &i.cause {
            d.field("cause", v);
        }
        if let Some(v) = &i.source {
            d.field("source", v);
        }
        d.finish()
    }
}

impl StdError for LlmError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_traits<T: Send + Sync + Clone + 'static + StdError>() {}

    #[test]
    fn error_is_send_sync_static_and_pointer_sized() {
        assert_traits::<LlmError>();
        assert_eq!(
            std::mem::size_of::<LlmError>(),
            std::mem::size_of::<usize>()
        );
        assert_eq!(
            std::mem::size_of::<Result<(), LlmError>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn display_is_lowercase_and_does_not_repeat_the_source() {
        let io = std::io::Error::other("socket closed by peer");
        let err =
            LlmError::new(ErrorKind::Connection, "could not reach the service").with_source(io);
        let shown = err.to_string();
        assert_eq!(shown, "connection failed: could not reach the service");
        assert!(!shown.ends_with('.'));
        assert_eq!(
            err.source().map(|s| s.to_string()).as_deref(),
            Some("socket closed by peer")
        );
        assert_eq!(
            LlmError::new(ErrorKind::Cancelled, "").to_string(),
            "cancelled"
        );
    }

    #[test]
    fn accessors_return_what_was_set() {
        let snap = RateLimitSnapshot {
            remaining_requests: Some(0),
            ..RateLimitSnapshot::default()
        };
        let err = LlmError::new(ErrorKind::QuotaExceeded, "you exceeded your current quota")
            .with_status(429)
            .with_code("insufficient_quota")
            .with_error_type("insufficient_quota")
            .with_param("model")
            .with_request_id("req_123")
            .with_rate_limit(snap.clone());
        assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(err.message(), "you exceeded your current quota");
        assert!(!err.is_retryable());
        assert!(!err.is_timeout());
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.code(), Some("insufficient_quota"));
        assert_eq!(err.error_type(), Some("insufficient_quota"));
        assert_eq!(err.param(), Some("model"));
        assert_eq!(err.request_id(), Some("req_123"));
        assert_eq!(err.rate_limit(), Some(&snap));
        assert_eq!(err.retry_after(), None);
        assert!(err.partial().is_none());
        let dbg = format!("{err:?}");
        assert!(dbg.contains("QuotaExceeded") && dbg.contains("req_123"));

        let slow = LlmError::new(ErrorKind::Timeout, "no reply")
            .with_retry_after(std::time::Duration::from_secs(2));
        assert!(slow.is_timeout());
        assert_eq!(slow.retry_after(), Some(std::time::Duration::from_secs(2)));
    }

    #[test]
    fn stream_interrupted_carries_partial_output() {
        let partial = PartialOutput {
            text: "Hello, wor".into(),
            ..PartialOutput::default()
        };
        let err = LlmError::stream_interrupted("connection dropped", partial);
        assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
        assert_eq!(err.partial().map(|p| p.text.as_str()), Some("Hello, wor"));
    }

    #[test]
    fn redact_takes_the_key_out_of_every_text_and_the_source() {
        let key = ApiKey::new("sk-SECRET-0123456789");
        let cause = LlmError::new(ErrorKind::Authentication, "key sk-SECRET-0123456789 is bad");
        let err = LlmError::new(
            ErrorKind::Authentication,
            "Bearer sk-SECRET-0123456789 refused",
        )
        .with_code("sk-SECRET-0123456789")
        .with_error_type("t sk-SECRET-0123456789")
        .with_param("p sk-SECRET-0123456789")
        .with_request_id("r sk-SECRET-0123456789")
        .with_status(401)
        .with_source(cause)
        .redact(&key);
        assert_eq!(err.message(), "Bearer <redacted> refused");
        assert_eq!(err.code(), Some("<redacted>"));
        assert_eq!(err.error_type(), Some("t <redacted>"));
        assert_eq!(err.param(), Some("p <redacted>"));
        assert_eq!(err.request_id(), Some("r <redacted>"));
        assert_eq!(err.status(), Some(401));
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
        }
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("authentication failed: key <redacted> is bad")
        );
    }

    #[test]
    fn an_interrupted_stream_keeps_what_its_cause_says() {
        let partial = PartialOutput {
            text: "Hel".into(),
            ..PartialOutput::default()
        };
        let permanent = LlmError::new(ErrorKind::ContentFiltered, "flagged")
            .with_code("content_filter")
            .with_error_type("invalid_request_error")
            .with_request_id("req_9");
        let err = LlmError::interrupted(permanent, partial.clone());
        assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
        assert_eq!(err.cause_kind(), Some(ErrorKind::ContentFiltered));
        assert!(!err.is_retryable(), "a content filter stays permanent");
        assert_eq!(err.code(), Some("content_filter"));
        assert_eq!(err.error_type(), Some("invalid_request_error"));
        assert_eq!(err.request_id(), Some("req_9"));
        assert_eq!(err.partial(), Some(&partial));
        assert_eq!(
            err.to_string(),
            "stream interrupted: content filtered after the output started"
        );
        let source = err.source().and_then(|s| s.downcast_ref::<LlmError>());
        assert_eq!(source.map(LlmError::message), Some("flagged"));
        assert!(format!("{err:?}").contains("cause: ContentFiltered"));

        let busy = LlmError::new(ErrorKind::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(Duration::from_secs(3));
        let err = LlmError::interrupted(busy, partial.clone());
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        // Interrupting an interrupted stream again keeps the first cause.
        let again = LlmError::interrupted(err, partial);
        assert_eq!(again.cause_kind(), Some(ErrorKind::RateLimited));
        // A stream cut with no error is retryable, with no cause.
        let cut = LlmError::stream_interrupted("cut", PartialOutput::default());
        assert!(cut.is_retryable());
        assert_eq!(cut.cause_kind(), None);
    }
}
