//! From HTTP status, headers and error bodies to the core's classified [`LlmError`].

use std::time::{Duration, SystemTime};

use nova_llm_core::{ErrorKind, LlmError, RateLimitSnapshot, ResponseMetadata};
use nova_llm_http::{one_line, retry_after};
use reqwest::header::{HeaderMap, HeaderValue};

use crate::wire::{WireError, WireErrorBody};

/// The response headers [`metadata_from_headers`] reads, each its first value.
#[derive(Default)]
struct Known<'a> {
    request_id: Option<&'a HeaderValue>,
    apim_request_id: Option<&'a HeaderValue>,
    limit_requests: Option<&'a HeaderValue>,
    remaining_requests: Option<&'a HeaderValue>,
    limit_tokens: Option<&'a HeaderValue>,
    remaining_tokens: Option<&'a HeaderValue>,
    reset_requests: Option<&'a HeaderValue>,
    reset_tokens: Option<&'a HeaderValue>,
}

impl<'a> Known<'a> {
    /// Found in one pass over `headers`: every response goes through this, and a lookup by
    /// name parses the name and hashes it again for each of the eight.
    fn of(headers: &'a HeaderMap) -> Self {
        let mut k = Known::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "x-request-id" => &mut k.request_id,
                "apim-request-id" => &mut k.apim_request_id,
                "x-ratelimit-limit-requests" => &mut k.limit_requests,
                "x-ratelimit-remaining-requests" => &mut k.remaining_requests,
                "x-ratelimit-limit-tokens" => &mut k.limit_tokens,
                "x-ratelimit-remaining-tokens" => &mut k.remaining_tokens,
                "x-ratelimit-reset-requests" => &mut k.reset_requests,
                "x-ratelimit-reset-tokens" => &mut k.reset_tokens,
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
    let known = Known::of(headers);
    let mut m = ResponseMetadata::new();
    if let Some(id) = text(known.request_id).or_else(|| text(known.apim_request_id)) {
        m = m.with_request_id(id);
    }
    if let Some(snapshot) = snapshot(&known) {
        m = m.with_rate_limit(snapshot);
    }
    m
}

/// The `x-ratelimit-*` headers, if any is present.
fn snapshot(k: &Known<'_>) -> Option<RateLimitSnapshot> {
    let num = |v| text(v).and_then(|v| v.parse::<u64>().ok());
    let dur = |v| text(v).and_then(parse_reset);
    let snapshot = RateLimitSnapshot::new()
        .with_requests(num(k.limit_requests), num(k.remaining_requests))
        .with_tokens(num(k.limit_tokens), num(k.remaining_tokens))
        .with_resets(dur(k.reset_requests), dur(k.reset_tokens));
    (!snapshot.is_empty()).then_some(snapshot)
}

/// Parses OpenAI's reset durations: `1s`, `6m0s`, `20ms`, `1h2m3.5s`, `0.5s`, or bare
/// seconds (`12`, `1.5`).
pub(crate) fn parse_reset(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

fn contains_any(haystack: Option<&str>, needles: &[&str]) -> bool {
    haystack.is_some_and(|h| needles.iter().any(|n| h.contains(n)))
}

/// Classifies an error the service described (`status` is `None` inside a stream).
pub(crate) fn classify(status: Option<u16>, e: &WireError) -> ErrorKind {
    let code = e.code.as_deref();
    let kind = e.kind.as_deref();
    let msg = e.message.as_deref();
    if contains_any(code, &["insufficient_quota"]) || contains_any(kind, &["insufficient_quota"]) {
        return ErrorKind::QuotaExceeded;
    }
    if contains_any(
        code,
        &["context_length_exceeded", "string_above_max_length"],
    ) || contains_any(
        msg,
        &[
            "maximum context length",
            "context length exceeded",
            "context window",
        ],
    ) {
        return ErrorKind::ContextLengthExceeded;
    }
    if contains_any(
        code,
        &[
            "content_filter",
            "content_policy_violation",
            "content_policy",
        ],
    ) || contains_any(kind, &["content_filter"])
    {
        return ErrorKind::ContentFiltered;
    }
    match status {
        Some(400 | 413 | 422) => ErrorKind::InvalidRequest,
        Some(401) => ErrorKind::Authentication,
        Some(403) => ErrorKind::PermissionDenied,
        Some(404) => ErrorKind::NotFound,
        Some(408) => ErrorKind::Timeout,
        Some(429) => ErrorKind::RateLimited,
        Some(500 | 502) => ErrorKind::Server,
        Some(503 | 504 | 529) => ErrorKind::Overloaded,
        Some(s) if s >= 500 => ErrorKind::Server,
        Some(_) => ErrorKind::Other,
        // Inside a stream there is no status: go by the error's type and code.
        None => {
            if contains_any(code, &["rate_limit"]) || contains_any(kind, &["rate_limit"]) {
                ErrorKind::RateLimited
            } else if contains_any(kind, &["overloaded"]) || contains_any(code, &["overloaded"]) {
                ErrorKind::Overloaded
            } else if contains_any(kind, &["invalid_request"]) {
                ErrorKind::InvalidRequest
            } else {
                ErrorKind::Server
            }
        }
    }
}

/// The error for a non-success HTTP response.
pub(crate) fn from_status(status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
    let parsed = serde_json::from_slice::<WireErrorBody>(body)
        .ok()
        .and_then(WireErrorBody::into_error);
    let (wire, message) = match parsed {
        Some(w) => {
            let m = w
                .message
                .as_deref()
                .map(one_line)
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "the service gave no message".to_owned());
            (w, m)
        }
        None => {
            let text = String::from_utf8_lossy(body);
            let m = if text.trim().is_empty() {
                "empty response body".to_owned()
            } else {
                format!("non-JSON error body: {}", one_line(&text))
            };
            (WireError::default(), m)
        }
    };
    let kind = classify(Some(status), &wire);
    let mut err = LlmError::new(kind, message).with_status(status);
    if let Some(c) = wire.code {
        err = err.with_code(c);
    }
    if let Some(t) = wire.kind {
        err = err.with_error_type(t);
    }
    if let Some(p) = wire.param {
        err = err.with_param(p);
    }
    let meta = metadata_from_headers(headers);
    if let Some(id) = meta.request_id {
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

/// The error for an `{"error": ...}` payload or `event: error` inside a stream.
pub(crate) fn from_stream_payload(wire: WireError) -> LlmError {
    let kind = classify(None, &wire);
    let message = wire.message.as_deref().map(one_line).map_or_else(
        || "the service reported an error mid-stream".to_owned(),
        |m| format!("the service reported an error mid-stream: {m}"),
    );
    let mut err = LlmError::new(kind, message);
    if let Some(c) = wire.code {
        err = err.with_code(c);
    }
    if let Some(t) = wire.kind {
        err = err.with_error_type(t);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

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
    fn reset_durations_parse_in_every_form_openai_uses() {
        let ms = Duration::from_millis;
        assert_eq!(parse_reset("1s"), Some(ms(1000)));
        assert_eq!(parse_reset("6m0s"), Some(ms(360_000)));
        assert_eq!(parse_reset("20ms"), Some(ms(20)));
        assert_eq!(parse_reset("1h2m3.5s"), Some(ms(3_723_500)));
        assert_eq!(parse_reset("0.5s"), Some(ms(500)));
        assert_eq!(parse_reset("12"), Some(ms(12_000)));
        let us = Duration::from_micros;
        assert_eq!(parse_reset("250us"), Some(us(250)));
        assert_eq!(parse_reset("250µs"), Some(us(250)));
        assert_eq!(parse_reset("2000ns"), Some(us(2)));
        assert_eq!(parse_reset("1s500ms"), Some(ms(1500)));
        assert_eq!(parse_reset("soon"), None);
        assert_eq!(parse_reset("5x"), None);
        assert_eq!(parse_reset(""), None);
        assert_eq!(parse_reset("-3"), None);
    }

    #[test]
    fn rate_limit_headers_become_a_snapshot() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "499"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "29000"),
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-reset-tokens", "2s"),
            ("x-request-id", "req_abc"),
        ]);
        let m = metadata_from_headers(&h);
        assert_eq!(m.request_id.as_deref(), Some("req_abc"));
        let rl = m.rate_limit.unwrap();
        assert_eq!(
            (rl.limit_requests, rl.remaining_requests),
            (Some(500), Some(499))
        );
        assert_eq!(
            (rl.limit_tokens, rl.remaining_tokens),
            (Some(30000), Some(29000))
        );
        assert_eq!(rl.reset_requests, Some(Duration::from_millis(120)));
        assert_eq!(rl.reset_tokens, Some(Duration::from_secs(2)));
        assert!(
            metadata_from_headers(&HeaderMap::new())
                .rate_limit
                .is_none()
        );
    }

    #[test]
    fn the_first_value_of_a_repeated_header_counts_and_others_are_ignored() {
        let mut h = headers(&[
            ("content-type", "application/json"),
            ("x-other", "1"),
            ("apim-request-id", " apim_1 "),
            ("x-ratelimit-remaining-tokens", "10"),
            ("x-ratelimit-limit-requests", "not a number"),
        ]);
        h.append("x-ratelimit-remaining-tokens", "99".parse().unwrap());
        let m = metadata_from_headers(&h);
        // No `x-request-id`: Azure's id, trimmed.
        assert_eq!(m.request_id.as_deref(), Some("apim_1"));
        let rl = m.rate_limit.unwrap();
        assert_eq!(rl.remaining_tokens, Some(10));
        assert_eq!(rl.limit_requests, None);
        assert_eq!(rl.limit_tokens, None);
        // Both ids: OpenAI's wins, whatever the order.
        h.append("x-request-id", "req_2".parse().unwrap());
        assert_eq!(
            metadata_from_headers(&h).request_id.as_deref(),
            Some("req_2")
        );
        // A value that is not text counts as absent.
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(metadata_from_headers(&h).request_id, None);
        assert!(metadata_from_headers(&h).rate_limit.is_none());
    }
}
