//! The error table over real HTTP: Google's error bodies as classified errors with the
//! status word kept, `retryDelay` as retry-after; the key never in an error.

use std::time::Duration;

use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver};
use serde_json::json;
use wiremock::ResponseTemplate;

use super::support::{KEY, driver, server_replying};

#[tokio::test]
async fn every_status_is_classified_with_the_body_kept() {
    let cases = [
        (
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
            ErrorKind::InvalidRequest,
        ),
        (
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers.",
            ErrorKind::PermissionDenied,
        ),
        (
            404,
            "NOT_FOUND",
            "models/gemini-9 is not found.",
            ErrorKind::NotFound,
        ),
        (
            500,
            "INTERNAL",
            "An internal error has occurred.",
            ErrorKind::Server,
        ),
        (
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
            ErrorKind::Overloaded,
        ),
        (
            504,
            "DEADLINE_EXCEEDED",
            "Deadline expired before operation could complete.",
            ErrorKind::Timeout,
        ),
    ];
    for (status, word, message, want) in cases {
        let server =
            server_replying(ResponseTemplate::new(status).set_body_json(
                json!({"error": {"code": status, "message": message, "status": word}}),
            ))
            .await;
        let err = driver(&server)
            .chat(ChatRequest::new(Dialog::new().user("q")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), want, "{status} {word}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.error_type(), Some(word));
        assert_eq!(err.message(), message);
    }
}

#[tokio::test]
async fn resource_exhausted_is_a_rate_limit_with_its_delay_or_a_quota() {
    let rate = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
    "message": "You exceeded your current quota, please check your plan and billing details.",
    "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
    ]}});
    let server = server_replying(ResponseTemplate::new(429).set_body_json(rate)).await;
    let err = driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    let daily = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded.",
        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                     "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}});
    let server = server_replying(ResponseTemplate::new(429).set_body_json(daily)).await;
    let err = driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn the_key_is_never_in_an_error_even_when_the_service_echoes_it() {
    let server = server_replying(ResponseTemplate::new(400).set_body_json(json!({"error": {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": format!("API key not valid: {KEY}. Please pass a valid API key."),
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    }})))
    .await;
    let d = driver(&server);
    for err in [
        d.chat(ChatRequest::new(Dialog::new().user("q")))
            .await
            .unwrap_err(),
        d.chat_stream(ChatRequest::new(Dialog::new().user("q")))
            .await
            .err()
            .unwrap(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert_eq!(err.code(), Some("API_KEY_INVALID"));
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(KEY), "{shown}");
    }
    assert!(!format!("{d:?}").contains(KEY));
}
