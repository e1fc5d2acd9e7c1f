//! From HTTP status and Google's error bodies (`{"error": {"code", "message", "status",
//! "details"}}`) to the core's classified [`LlmError`]; a blocked prompt too.

use std::time::{Duration, SystemTime};

use nova_llm_core::{ErrorKind, LlmError, ResponseMetadata};
use nova_llm_http::{one_line, retry_after};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::Value;

/// An error body: an object, or (from the streaming endpoint) a one-element array of one.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum WireErrorBody {
    One { error: WireError },
    Many(Vec<WireErrorBody>),
}

impl WireErrorBody {
    fn into_error(self) -> Option<WireError> {
        match self {
            WireErrorBody::One { error } => Some(error),
            WireErrorBody::Many(v) => v.into_iter().next()?.into_error(),
        }
    }
}

/// Google's error object.
#[derive(Deserialize, Default, Debug, Clone)]
pub(crate) struct WireError {
    #[serde(default)]
    pub(crate) code: Option<u16>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) details: Vec<Value>,
}

impl WireError {
    /// The details of type `google.rpc.<kind>`.
    fn details_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.details.iter().filter(move |d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(kind))
        })
    }

    /// `retryDelay` of the `RetryInfo` detail (`"37s"`, `"1.5s"`).
    fn retry_delay(&self) -> Option<Duration> {
        let delay = self
            .details_of("google.rpc.RetryInfo")
            .find_map(|d| d.get("retryDelay")?.as_str())?;
        let secs: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
        Duration::try_from_secs_f64(secs).ok()
    }

    /// Whether waiting does not help: a `QuotaFailure` naming a daily quota; or, with no
    /// quota named and no `RetryInfo`, a message about billing or credit. (Google words
    /// its per-minute limits "You exceeded your current quota, please check your plan and
    /// billing details" too, with a `RetryInfo`: those are rate limits.)
    fn is_quota(&self) -> bool {
        let names = |d: &Value| -> Vec<String> {
            d.get("violations")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .flat_map(|v| ["quotaId", "quotaMetric"].map(|k| v.get(k)))
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let quotas: Vec<String> = self
            .details_of("google.rpc.QuotaFailure")
            .flat_map(names)
            .collect();
        if !quotas.is_empty() {
            return quotas.iter().any(|q| q.contains("PerDay"));
        }
        let m = self.message.as_deref().unwrap_or("").to_ascii_lowercase();
        self.retry_delay().is_none()
            && ["billing", "prepayment", "credit"]
                .iter()
                .any(|w| m.contains(w))
    }

    /// The `reason` of the `ErrorInfo` detail (`API_KEY_INVALID`, ...).
    fn reason(&self) -> Option<&str> {
        self.details_of("google.rpc.ErrorInfo")
            .find_map(|d| d.get("reason")?.as_str())
    }
}

/// The request id and rate limits the service reported: the Gemini API sends neither in
/// headers, so this is empty (kept as a function for the call path all drivers share).
pub(crate) fn metadata_from_headers(_headers: &HeaderMap) -> ResponseMetadata {
    ResponseMetadata::new()
}

/// Classifies an error: by Google's status word first (it is all a stream has), then the
/// HTTP status. Quota versus rate limit is told apart by the details and the message; an
/// invalid key (400 `API_KEY_INVALID`) is an authentication error; a prompt that does not
/// fit is recognized by its message.
pub(crate) fn classify(status: Option<u16>, e: &WireError) -> ErrorKind {
    let m = e.message.as_deref().unwrap_or("").to_ascii_lowercase();
    if m.contains("exceeds the maximum number of tokens") || m.contains("context window") {
        return ErrorKind::ContextLengthExceeded;
    }
    if e.reason() == Some("API_KEY_INVALID") || m.contains("api key not valid") {
        return ErrorKind::Authentication;
    }
    match e.status.as_deref() {
        Some("RESOURCE_EXHAUSTED") if e.is_quota() => return ErrorKind::QuotaExceeded,
        Some("RESOURCE_EXHAUSTED") => return ErrorKind::RateLimited,
        Some("UNAVAILABLE") => return ErrorKind::Overloaded,
        Some("DEADLINE_EXCEEDED") => return ErrorKind::Timeout,
        Some("INTERNAL" | "UNKNOWN") => return ErrorKind::Server,
        Some("UNAUTHENTICATED") => return ErrorKind::Authentication,
        Some("PERMISSION_DENIED") => return ErrorKind::PermissionDenied,
        Some("NOT_FOUND") => return ErrorKind::NotFound,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            return ErrorKind::InvalidRequest;
        }
        _ => {}
    }
    match status.or(e.code) {
        Some(400 | 413 | 422) => ErrorKind::InvalidRequest,
        Some(401) => ErrorKind::Authentication,
        Some(403) => ErrorKind::PermissionDenied,
        Some(404) => ErrorKind::NotFound,
        Some(408 | 504) => ErrorKind::Timeout,
        Some(429) => ErrorKind::RateLimited,
        Some(503) => ErrorKind::Overloaded,
        Some(s) if s >= 500 => ErrorKind::Server,
        Some(_) => ErrorKind::Other,
        None => ErrorKind::Server,
    }
}

fn message_of(e: &WireError, or: &str) -> String {
    e.message
        .as_deref()
        .map(one_line)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| or.to_owned())
}

/// The error for a non-success HTTP response.
pub(crate) fn from_status(status: u16, headers: &HeaderMap, body: &[u8]) -> LlmError {
    let parsed = serde_json::from_slice::<WireErrorBody>(body)
        .ok()
        .and_then(WireErrorBody::into_error);
    let (wire, message) = match parsed {
        Some(w) => {
            let m = message_of(&w, "the service gave no message");
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
    if let Some(s) = &wire.status {
        err = err.with_error_type(s.clone());
    }
    if let Some(r) = wire.reason() {
        err = err.with_code(r.to_owned());
    }
    let after = wire
        .retry_delay()
        .or_else(|| retry_after(headers, SystemTime::now()));
    if let Some(after) = after {
        err = err.with_retry_after(after);
    }
    err
}

/// The error of an `{"error": ...}` event inside a stream.
pub(crate) fn from_stream_error(wire: &WireError) -> LlmError {
    let kind = classify(None, wire);
    let message = format!(
        "the service reported an error mid-stream: {}",
        message_of(wire, "no message")
    );
    let mut err = LlmError::new(kind, message);
    if let Some(s) = &wire.status {
        err = err.with_error_type(s.clone());
    }
    if let Some(after) = wire.retry_delay() {
        err = err.with_retry_after(after);
    }
    err
}

/// The error of a prompt the service blocked: HTTP 200 with no candidates and a
/// `promptFeedback.blockReason`. Never an empty success.
pub(crate) fn blocked(reason: &str, message: Option<&str>) -> LlmError {
    let text = match message {
        Some(m) if !m.trim().is_empty() => {
            format!("the prompt was blocked ({reason}): {}", one_line(m))
        }
        _ => format!("the prompt was blocked ({reason})"),
    };
    LlmError::new(ErrorKind::ContentFiltered, text)
        .with_status(200)
        .with_code(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wire(v: Value) -> WireError {
        serde_json::from_value::<WireErrorBody>(v)
            .unwrap()
            .into_error()
            .unwrap()
    }

    #[test]
    fn statuses_details_and_messages_classify() {
        let quota_minute = wire(
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
                    {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                     "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
            ]}}),
        );
        // Google words a per-minute limit as a quota "check your billing": the details say
        // it is per minute, and when to come back.
        assert_eq!(classify(Some(429), &quota_minute), ErrorKind::RateLimited);
        assert_eq!(quota_minute.retry_delay(), Some(Duration::from_secs(37)));
        let rate = wire(
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Resource has been exhausted (e.g. check quota).",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}),
        );
        assert_eq!(classify(Some(429), &rate), ErrorKind::RateLimited);
        assert_eq!(rate.retry_delay(), Some(Duration::from_millis(1500)));
        let daily = wire(
            json!([{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded.",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                         "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}]}]}}]),
        );
        assert_eq!(classify(Some(429), &daily), ErrorKind::QuotaExceeded);
        let credit = wire(
            json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
            "message": "Your prepayment credits are depleted."}}),
        );
        assert_eq!(classify(Some(429), &credit), ErrorKind::QuotaExceeded);
        let bad_key = wire(json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "API key not valid. Please pass a valid API key.",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}));
        assert_eq!(classify(Some(400), &bad_key), ErrorKind::Authentication);
        let long = wire(json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}}));
        assert_eq!(classify(Some(400), &long), ErrorKind::ContextLengthExceeded);
        for (status, word, want) in [
            (500, "INTERNAL", ErrorKind::Server),
            (503, "UNAVAILABLE", ErrorKind::Overloaded),
            (504, "DEADLINE_EXCEEDED", ErrorKind::Timeout),
            (403, "PERMISSION_DENIED", ErrorKind::PermissionDenied),
            (404, "NOT_FOUND", ErrorKind::NotFound),
        ] {
            let e = wire(json!({"error": {"code": status, "status": word, "message": "x"}}));
            assert_eq!(classify(Some(status), &e), want, "{word}");
            assert_eq!(classify(None, &e), want, "{word} in a stream");
        }
        assert_eq!(classify(Some(418), &WireError::default()), ErrorKind::Other);
    }
}
