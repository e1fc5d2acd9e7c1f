//! The error table over real HTTP: each status and error type the Messages API sends, as
//! a classified error keeping the service's type and message, its request id and
//! `retry-after`; the key never in an error, even when echoed.

use std::time::Duration;

use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver};
use serde_json::json;
use wiremock::ResponseTemplate;

use super::support::{KEY, driver, server_replying};

fn error_body(kind: &str, message: &str) -> serde_json::Value {
    json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_body"})
}

#[tokio::test]
async fn every_status_and_type_is_classified_with_the_body_kept() {
    let cases = [
        (
            400,
            "invalid_request_error",
            "messages: text content blocks must be non-empty",
            ErrorKind::InvalidRequest,
            false,
        ),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 215000 tokens > 200000 maximum",
            ErrorKind::ContextLengthExceeded,
            false,
        ),
        (
            401,
            "authentication_error",
            "invalid x-api-key",
            ErrorKind::Authentication,
            false,
        ),
        (
            402,
            "billing_error",
            "credit balance too low",
            ErrorKind::QuotaExceeded,
            false,
        ),
        (
            403,
            "permission_error",
            "not allowed",
            ErrorKind::PermissionDenied,
            false,
        ),
        (
            404,
            "not_found_error",
            "model: claude-9",
            ErrorKind::NotFound,
            false,
        ),
        (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
            ErrorKind::InvalidRequest,
            false,
        ),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            ErrorKind::RateLimited,
            true,
        ),
        (
            500,
            "api_error",
            "Internal server error",
            ErrorKind::Server,
            true,
        ),
        (
            504,
            "timeout_error",
            "Request timed out",
            ErrorKind::Timeout,
            true,
        ),
        (
            529,
            "overloaded_error",
            "Overloaded",
            ErrorKind::Overloaded,
            true,
        ),
    ];
    for (status, kind, message, want, retryable) in cases {
        let server =
            server_replying(ResponseTemplate::new(status).set_body_json(error_body(kind, message)))
                .await;
        let err = driver(&server)
            .chat(ChatRequest::new(Dialog::new().user("q")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), want, "{status} {kind}");
        assert_eq!(err.is_retryable(), retryable, "{status} {kind}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.error_type(), Some(kind));
        assert_eq!(err.message(), message);
        // No header: the body's request id.
        assert_eq!(err.request_id(), Some("req_body"));
    }
}

#[tokio::test]
async fn a_rate_limit_says_when_to_come_back_and_what_is_left() {
    let server = server_replying(
        ResponseTemplate::new(429)
            .set_body_json(error_body("rate_limit_error", "slow down"))
            .insert_header("retry-after", "7")
            .insert_header("request-id", "req_header")
            .insert_header("anthropic-ratelimit-requests-remaining", "0"),
    )
    .await;
    let err = driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    // The header's id wins over the body's.
    assert_eq!(err.request_id(), Some("req_header"));
    assert_eq!(err.rate_limit().and_then(|r| r.remaining_requests), Some(0));
}

#[tokio::test]
async fn bodies_that_are_not_the_apis_still_give_a_classified_error() {
    for (status, body, want) in [
        (
            502,
            "<html><h1>502 Bad Gateway</h1></html>",
            ErrorKind::Server,
        ),
        (529, "", ErrorKind::Overloaded),
        (400, "{\"error\": 3}", ErrorKind::InvalidRequest),
    ] {
        let server =
            server_replying(ResponseTemplate::new(status).set_body_raw(body, "text/html")).await;
        let err = driver(&server)
            .chat(ChatRequest::new(Dialog::new().user("q")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), want, "{status} {body}");
        assert_eq!(err.status(), Some(status));
    }
}

#[tokio::test]
async fn the_key_is_never_in_an_error_even_when_the_service_echoes_it() {
    let server = server_replying(ResponseTemplate::new(401).set_body_json(error_body(
        "authentication_error",
        &format!("invalid x-api-key: {KEY}"),
    )))
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
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(err.message().contains("<redacted>"), "{err}");
    }
    assert!(!format!("{d:?}").contains(KEY));
}
