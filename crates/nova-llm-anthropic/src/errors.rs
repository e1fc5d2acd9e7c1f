//! From HTTP status, headers and error bodies to the core's classified [`LlmError`]; the
//! request id and `anthropic-ratelimit-*` headers into [`ResponseMetadata`].

use std::time::{Duration, SystemTime};

use nova_llm_core::{ErrorKind, LlmError, RateLimitSnapshot, ResponseMetadata};
use nova_llm_http::{one_line, retry_after};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::wire::{WireError, WireErrorBody};

/// The response headers [`metadata_from_headers`] reads, each its first value.
#[derive(Default)]
struct Known<'a> {
    request_id: Option<&'a HeaderValue>,
    requests_limit: Option<&'a HeaderValue>,
    requests_remaining: Option<&'a HeaderValue>,
    requests_reset: Option<&'a HeaderValue>,
    tokens_limit: Option<&'a HeaderValue>,
    tokens_remaining: Option<&'a HeaderValue>,
    tokens_reset: Option<&'a HeaderValue>,
    input_limit: Option<&'a HeaderValue>,
    input_remaining: Option<&'a HeaderValue>,
    input_reset: Option<&'a HeaderValue>,
}

impl<'a> Known<'a> {
    /// Found in one pass over `headers` (every response goes through this).
    fn of(headers: &'a HeaderMap) -> Self {
        let mut k = Known::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "request-id" => &mut k.request_id,
                "anthropic-ratelimit-requests-limit" => &mut k.requests_limit,
                "anthropic-ratelimit-requests-remaining" => &mut k.requests_remaining,
                "anthropic-ratelimit-requests-reset" => &mut k.requests_reset,
                "anthropic-ratelimit-tokens-limit" => &mut k.tokens_limit,
                "anthropic-ratelimit-tokens-remaining" => &mut k.tokens_remaining,
                "anthropic-ratelimit-tokens-reset" => &mut k.tokens_reset,
                "anthropic-ratelimit-input-tokens-limit" => &mut k.input_limit,
                "anthropic-ratelimit-input-tokens-remaining" => &mut k.input_remaining,
                "anthropic-ratelimit-input-tokens-reset" => &mut k.input_reset,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        k
    }
}

/// A header's value as trimmed text; `None` when absent or not text.
fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value?.to_str().ok().map(str::trim)
}

/// The request id and rate-limit state the service reported in `headers`.
pub(crate) fn metadata_from_headers(headers: &HeaderMap) -> ResponseMetadata {
    metadata_at(headers, SystemTime::now())
}

/// [`metadata_from_headers`] with the reset times taken relative to `now`.
fn metadata_at(headers: &HeaderMap, now: SystemTime) -> ResponseMetadata {
    let known = Known::of(headers);
    let mut m = ResponseMetadata::new();
    if let Some(id) = text(known.request_id) {
        m = m.with_request_id(id);
    }
    if let Some(snapshot) = snapshot(&known, now) {
        m = m.with_rate_limit(snapshot);
    }
    m
}

/// The `anthropic-ratelimit-*` headers, if any is present. Tokens are the combined limit
/// (`tokens-*`), else the input-token limit: the one a request's size is checked against.
fn snapshot(k: &Known<'_>, now: SystemTime) -> Option<RateLimitSnapshot> {
    let num = |v| text(v).and_then(|v| v.parse::<u64>().ok());
    let reset = |v| text(v).and_then(|v| until(v, now));
    let (t_limit, t_remaining, t_reset) =
        if k.tokens_limit.is_some() || k.tokens_remaining.is_some() {
            (k.tokens_limit, k.tokens_remaining, k.tokens_reset)
        } else {
            (k.input_limit, k.input_remaining, k.input_reset)
        };
    let snapshot = RateLimitSnapshot::new()
        .with_requests(num(k.requests_limit), num(k.requests_remaining))
        .with_tokens(num(t_limit), num(t_remaining))
        .with_resets(reset(k.requests_reset), reset(t_reset));
    (!snapshot.is_empty()).then_some(snapshot)
}

/// The time from `now` until the RFC 3339 time `at` (zero when it has passed).
fn until(at: &str, now: SystemTime) -> Option<Duration> {
    let at = humantime::parse_rfc3339_weak(at).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn contains_any(haystack: Option<&str>, needles: &[&str]) -> bool {
    haystack.is_some_and(|h| needles.iter().any(|n| h.contains(n)))
}

/// Classifies an error the service described (`status` is `None` inside a stream): by the
/// error's type first (it says more than the status, and is all a stream has), then the
/// status. A prompt that does not fit is recognized by its message.
pub(crate) fn classify(status: Option<u16>, e: &WireError) -> ErrorKind {
    let kind = e.kind.as_deref();
    let msg = e.message.as_deref();
    if contains_any(
        msg,
        &[
            "prompt is too long",
            "exceed context limit",
            "context window",
            "context length",
            "too many total text bytes",
        ],
    ) {
        return ErrorKind::ContextLengthExceeded;
    }
    match kind {
        Some("overloaded_error") => return ErrorKind::Overloaded,
        Some("rate_limit_error") => return ErrorKind::RateLimited,
        Some("billing_error") => return ErrorKind::QuotaExceeded,
        Some("authentication_error") => return ErrorKind::Authentication,
        Some("permission_error") => return ErrorKind::PermissionDenied,
        Some("not_found_error") => return ErrorKind::NotFound,
        Some("timeout_error") => return ErrorKind::Timeout,
        Some("api_error") => return ErrorKind::Server,
        Some("invalid_request_error" | "request_too_large") => {
            return ErrorKind::InvalidRequest;
        }
        _ => {}
    }
    match status {
        Some(400 | 413 | 422) => ErrorKind::InvalidRequest,
        Some(401) => ErrorKind::Authentication,
        Some(402) => ErrorKind::QuotaExceeded,
        Some(403) => ErrorKind::PermissionDenied,
        Some(404) => ErrorKind::NotFound,
        Some(408) => ErrorKind::Timeout,
        Some(429) => ErrorKind::RateLimited,
        Some(500 | 502) => ErrorKind::Server,
        Some(503 | 504 | 529) => ErrorKind::Overloaded,
        Some(s) if s >= 500 => ErrorKind::Server,
        Some(_) => ErrorKind::Other,
        None => ErrorKind::Server,
    }
}

/// The error for a non-success HTTP response.
pub(crate) fn from_status(status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
    let parsed = serde_json::from_slice::<WireErrorBody>(body).ok();
    let (wire, body_request_id, message) = match parsed {
        Some(WireErrorBody {
            error: Some(w),
            request_id,
        }) => {
            let m = w
                .message
                .as_deref()
                .map(one_line)
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the service gave no message".to_owned());
            (w, request_id, m)
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let m = if text.trim().is_empty() {
                "empty response body".to_owned()
            } else {
                format!("non-JSON error body: {}", one_line(&text))
            };
            (WireError::default(), None, m)
        }
    };
    let kind = classify(Some(status), &wire);
    let mut err = LlmError::new(kind, message).with_status(status);
    if let Some(t) = wire.kind {
        err = err.with_error_type(t);
    }
    let meta = metadata_from_headers(headers);
    if let Some(id) = meta.request_id.or(body_request_id) {
        err = err.with_request_id(id);
    }
    if let Some(rl) = meta.rate_limit {
        err = err.with_rate_limit(rl);
    }
    if let Some(after) = retry_after(headers, SystemTime::now()) {
        err = err.with_retry_after(after);
    }
    err
}

/// The error of an `error` event inside a stream.
pub(crate) fn from_stream_error(wire: WireError) -> LlmError {
    let kind = classify(None, &wire);
    let message = wire.message.as_deref().map(one_line).map_or_else(
        || "the service reported an error mid-stream".to_owned(),
        |m| format!("the service reported an error mid-stream: {m}"),
    );
    let mut err = LlmError::new(kind, message);
    if let Some(t) = wire.kind {
        err = err.with_error_type(t);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderName;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn rate_limit_headers_become_a_snapshot_with_resets_from_now() {
        let now = humantime::parse_rfc3339("2026-12-05T10:00:00Z").unwrap();
        let h = headers(&[
            ("request-id", " req_011 "),
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2026-12-05T10:00:01Z"),
            ("anthropic-ratelimit-tokens-limit", "90000"),
            ("anthropic-ratelimit-tokens-remaining", "89000"),
            (
                "anthropic-ratelimit-tokens-reset",
                "2026-12-05T10:00:30.500Z",
            ),
            ("anthropic-ratelimit-input-tokens-limit", "1"),
        ]);
        let m = metadata_at(&h, now);
        assert_eq!(m.request_id.as_deref(), Some("req_011"));
        let rl = m.rate_limit.unwrap();
        assert_eq!(
            (rl.limit_requests, rl.remaining_requests),
            (Some(50), Some(49))
        );
        assert_eq!(
            (rl.limit_tokens, rl.remaining_tokens),
            (Some(90000), Some(89000))
        );
        assert_eq!(rl.reset_requests, Some(Duration::from_secs(1)));
        assert_eq!(rl.reset_tokens, Some(Duration::from_millis(30_500)));
    }

    #[test]
    fn input_token_limits_stand_in_for_combined_ones_and_past_resets_are_zero() {
        let now = humantime::parse_rfc3339("2026-12-05T10:00:00Z").unwrap();
        let h = headers(&[
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2026-12-05T09:59:00Z",
            ),
            ("anthropic-ratelimit-requests-reset", "not a time"),
        ]);
        let rl = metadata_at(&h, now).rate_limit.unwrap();
        assert_eq!(
            (rl.limit_tokens, rl.remaining_tokens),
            (Some(40000), Some(0))
        );
        assert_eq!(rl.reset_tokens, Some(Duration::ZERO));
        assert_eq!(rl.reset_requests, None);
        assert!(metadata_at(&HeaderMap::new(), now).rate_limit.is_none());
    }

    #[test]
    fn the_error_type_decides_before_the_status() {
        let e = |kind: &str, message: &str| WireError {
            kind: Some(kind.into()),
            message: Some(message.into()),
        };
        let cases = [
            (
                Some(529),
                e("overloaded_error", "Overloaded"),
                ErrorKind::Overloaded,
            ),
            (
                None,
                e("overloaded_error", "Overloaded"),
                ErrorKind::Overloaded,
            ),
            (
                Some(429),
                e("rate_limit_error", "slow down"),
                ErrorKind::RateLimited,
            ),
            (None, e("api_error", "oops"), ErrorKind::Server),
            (
                Some(400),
                e("billing_error", "no credit"),
                ErrorKind::QuotaExceeded,
            ),
            (
                Some(413),
                e("request_too_large", "too big"),
                ErrorKind::InvalidRequest,
            ),
            (Some(504), e("timeout_error", "slow"), ErrorKind::Timeout),
            (
                Some(400),
                e(
                    "invalid_request_error",
                    "prompt is too long: 210000 tokens > 200000 maximum",
                ),
                ErrorKind::ContextLengthExceeded,
            ),
            (
                Some(400),
                e(
                    "invalid_request_error",
                    "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
                ),
                ErrorKind::ContextLengthExceeded,
            ),
            (
                Some(400),
                e("invalid_request_error", "bad"),
                ErrorKind::InvalidRequest,
            ),
            (Some(418), WireError::default(), ErrorKind::Other),
            (Some(503), WireError::default(), ErrorKind::Overloaded),
        ];
        for (status, wire, want) in cases {
            assert_eq!(classify(status, &wire), want, "{status:?} {:?}", wire.kind);
        }
    }
}
