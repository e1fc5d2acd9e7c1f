//! The error table: every status and body shape, each row a test, plus transport failures.

use std::time::Duration;

use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver, LlmError};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{End, KEY, Step, driver, driver_for, raw_server};
use crate::OpenAiDriver;

fn openai_error(message: &str, kind: &str, code: Value) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// The error for one response, for both a plain and a streamed call (which must agree:
/// errors before the first byte fail the stream call itself).
async fn error_for(template: ResponseTemplate) -> LlmError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(template)
        .mount(&server)
        .await;
    let d = driver(&server);
    let plain = d
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap_err();
    let streamed = d
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .err()
        .unwrap();
    assert_eq!(plain.kind(), streamed.kind());
    assert_eq!(plain.status(), streamed.status());
    plain
}

async fn status_error(status: u16, body: Value) -> LlmError {
    error_for(ResponseTemplate::new(status).set_body_json(body)).await
}

#[tokio::test]
async fn a_redirect_is_an_error_with_its_status_never_followed() {
    // Following it would resend the chat as a GET without its body.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(301).insert_header("location", format!("{}/moved", server.uri())),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let d = driver(&server);
    let plain = d
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap_err();
    assert_eq!(plain.status(), Some(301));
    let streamed = d
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .err()
        .unwrap();
    assert_eq!(streamed.status(), Some(301));
    // `expect` counts are checked when the server drops: one POST per call, no GET.
}

#[tokio::test]
async fn status_400_is_invalid_request_with_the_providers_message_and_param() {
    let e = status_error(
        400,
        json!({"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}}),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.param(), Some("temperature"));
    assert_eq!(e.code(), Some("invalid_value"));
    assert_eq!(e.error_type(), Some("invalid_request_error"));
    assert_eq!(
        e.to_string(),
        "invalid request (http 400): Invalid value for 'temperature'"
    );
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn status_400_context_length_exceeded_in_words_or_code_alone() {
    // OpenAI's own shape is in the conformance kit; compatible servers say it in words
    // only (vLLM, llama.cpp), or in a code only.
    for (message, code) in [
        (
            "This model's maximum context length is 4096 tokens. However, you requested 5000",
            Value::Null,
        ),
        ("request too long", json!("context_length_exceeded")),
    ] {
        let e = status_error(
            400,
            openai_error(message, "invalid_request_error", code.clone()),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded, "{message}");
    }
}

#[tokio::test]
async fn status_400_content_filter() {
    let e = status_error(
        400,
        openai_error(
            "flagged by our safety system",
            "invalid_request_error",
            json!("content_policy_violation"),
        ),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::ContentFiltered);
}

#[tokio::test]
async fn status_408_is_timeout() {
    let e = status_error(408, json!({"error": {"message": "timeout"}})).await;
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.is_retryable());
}

#[tokio::test]
async fn status_413_and_422_are_invalid_request() {
    assert_eq!(
        status_error(413, json!({"error": "too large"}))
            .await
            .kind(),
        ErrorKind::InvalidRequest
    );
    // FastAPI-style validation body (vLLM).
    let e = status_error(
        422,
        json!({"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.message().contains("field required"));
}

#[tokio::test]
async fn every_error_body_shape_of_compatible_servers_gives_its_message() {
    for (body, message) in [
        // Ollama, LiteLLM.
        (
            json!({"error": "model 'llama9' not found"}),
            "model 'llama9' not found",
        ),
        // FastAPI (vLLM's and many proxies' own errors).
        (json!({"detail": "Not authenticated"}), "Not authenticated"),
        (
            json!({"detail": [{"loc": ["body"], "msg": "field required"}]}),
            r#"[{"loc":["body"],"msg":"field required"}]"#,
        ),
        (json!({"message": "no such route"}), "no such route"),
        (
            json!({"error": {"code": "x"}}),
            "the service gave no message",
        ),
    ] {
        let e = status_error(404, body.clone()).await;
        assert_eq!(e.kind(), ErrorKind::NotFound, "{body}");
        assert_eq!(e.message(), message, "{body}");
    }
}

#[tokio::test]
async fn status_429_is_rate_limited_with_retry_after_seconds() {
    let e = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "20")
            .insert_header("x-ratelimit-remaining-requests", "0")
            .insert_header("x-request-id", "req_rl")
            .set_body_json(openai_error(
                "Rate limit reached for requests",
                "requests",
                json!("rate_limit_exceeded"),
            )),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(20)));
    assert_eq!(e.request_id(), Some("req_rl"));
    assert_eq!(e.rate_limit().unwrap().remaining_requests, Some(0));
}

#[tokio::test]
async fn status_429_retry_after_as_http_date_and_in_milliseconds() {
    let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
    let e = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after", later.as_str())
            .set_body_json(json!({})),
    )
    .await;
    let after = e.retry_after().unwrap();
    assert!(
        after > Duration::from_secs(100) && after <= Duration::from_secs(120),
        "{after:?}"
    );
    let e = error_for(
        ResponseTemplate::new(429)
            .insert_header("retry-after-ms", "250")
            .insert_header("retry-after", "1")
            .set_body_json(json!({})),
    )
    .await;
    assert_eq!(e.retry_after(), Some(Duration::from_millis(250)));
}

#[tokio::test]
async fn quota_and_content_filtering_are_recognised_by_type_or_code_alone() {
    for (status, kind, code, want) in [
        (
            429,
            "insufficient_quota",
            Value::Null,
            ErrorKind::QuotaExceeded,
        ),
        (
            429,
            "requests",
            json!("insufficient_quota"),
            ErrorKind::QuotaExceeded,
        ),
        (
            400,
            "content_filter",
            Value::Null,
            ErrorKind::ContentFiltered,
        ),
        (
            400,
            "invalid_request_error",
            json!("content_filter"),
            ErrorKind::ContentFiltered,
        ),
    ] {
        let e = status_error(status, openai_error("refused", kind, code.clone())).await;
        assert_eq!(e.kind(), want, "{kind} {code}");
        assert!(!e.is_retryable(), "{kind} {code}");
    }
}

#[tokio::test]
async fn an_unexpected_client_status_is_other_and_not_retried() {
    for status in [402, 409, 418] {
        let e = status_error(status, openai_error("odd", "odd_error", Value::Null)).await;
        assert_eq!(e.kind(), ErrorKind::Other, "{status}");
        assert!(!e.is_retryable(), "{status}");
        assert_eq!(e.status(), Some(status));
    }
}

#[tokio::test]
async fn server_errors_are_retryable_server_or_overloaded() {
    for (status, kind) in [
        (500, ErrorKind::Server),
        (502, ErrorKind::Server),
        (503, ErrorKind::Overloaded),
        (504, ErrorKind::Overloaded),
        (529, ErrorKind::Overloaded),
        (520, ErrorKind::Server),
    ] {
        let e = status_error(
            status,
            openai_error("The server had an error", "server_error", Value::Null),
        )
        .await;
        assert_eq!(e.kind(), kind, "{status}");
        assert!(e.is_retryable(), "{status}");
        assert_eq!(e.status(), Some(status));
    }
}

#[tokio::test]
async fn a_numeric_error_code_is_kept_as_text() {
    let e = status_error(400, json!({"error": {"message": "bad", "code": 1234}})).await;
    assert_eq!(e.code(), Some("1234"));
}

#[tokio::test]
async fn a_proxys_html_page_is_classified_by_status_with_a_short_message() {
    let html = format!(
        "<html><body><h1>502 Bad Gateway</h1>{}</body></html>",
        "x".repeat(5000)
    );
    let e = error_for(ResponseTemplate::new(502).set_body_raw(html, "text/html")).await;
    assert_eq!(e.kind(), ErrorKind::Server);
    assert!(
        e.message()
            .starts_with("non-JSON error body: <html><body><h1>502 Bad Gateway")
    );
    assert!(e.message().chars().count() < 600, "the page is cut short");
    let e = error_for(ResponseTemplate::new(503)).await;
    assert_eq!(e.message(), "empty response body");
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = driver_for(&format!("http://127.0.0.1:{port}/v1"));
    let e = d.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(e.message(), "the request could not connect");
    assert!(e.is_retryable());
    assert!(std::error::Error::source(&e).is_some());
    let e = d
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Connection);
}

#[tokio::test]
async fn a_server_that_hangs_up_without_answering_is_a_connection_error() {
    let (base, _closed) = raw_server("", Vec::new(), End::Close);
    let e = driver_for(&base).prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    // It connected: the request failed afterwards.
    assert_eq!(e.message(), "the request failed");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_connection_cut_inside_the_body_is_a_retryable_connection_error() {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n";
    let (base, _closed) = raw_server(
        head,
        vec![Step::Write(br#"{"choices": [{"message": "#.to_vec())],
        End::Close,
    );
    let e = driver_for(&base).prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert_eq!(
        e.message(),
        "the connection broke while the response was read"
    );
    assert!(e.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stops_coming_is_a_retryable_timeout() {
    // A server in this runtime, so that on the paused clock time moves only once both
    // sides wait: the head and part of the body arrive, then nothing more, and the
    // request's timeout ends the read of the body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        read_request_async(&mut sock).await;
        let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"choices\": [";
        sock.write_all(reply.as_bytes()).await.unwrap();
        // Then silence, until the client hangs up.
        let mut buf = [0u8; 256];
        while sock.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let d = OpenAiDriver::builder()
        .base_url(base)
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    let e = d.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(e.message(), "reading the response timed out");
    assert!(e.is_retryable());
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    // The driver let go of the connection.
    server.await.unwrap();
}

/// Reads one request (head and a body of its `content-length`) from `sock`.
async fn read_request_async(sock: &mut tokio::net::TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client closed before its request was complete");
        data.extend_from_slice(&buf[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if data.len() >= end + 4 + len {
            return;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_server_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3600)))
        .mount(&server)
        .await;
    let d = OpenAiDriver::builder()
        .base_url(format!("{}/v1", server.uri()))
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let e = d.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.message(), "the request timed out");
    let e = d
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn bodies_over_the_size_limit_are_decode_errors() {
    let server = MockServer::start().await;
    let big = json!({"choices": [{"message": {"content": "x".repeat(10_000)}}]});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(big))
        .mount(&server)
        .await;
    let d = limited(format!("{}/v1", server.uri()));
    let e = d.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(e.to_string().contains("4096-byte limit"), "{e}");
}

/// A driver for `base` that reads bodies of at most 4096 bytes.
fn limited(base: impl Into<String>) -> OpenAiDriver {
    OpenAiDriver::builder()
        .base_url(base)
        .max_response_bytes(4096)
        .build()
        .unwrap()
}

/// A chat body of exactly `len` bytes (JSON padded with spaces).
fn body_of(len: usize) -> Vec<u8> {
    let mut body = br#"{"choices": [{"message": {"content": "ok"}}]}"#.to_vec();
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read_with_or_without_a_declared_length() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body_of(4096), "application/json"))
        .mount(&server)
        .await;
    let declared = limited(format!("{}/v1", server.uri()));
    assert_eq!(declared.prompt("q").await.unwrap(), "ok");

    // No content-length: the body ends when the connection closes, read in two pieces.
    let body = body_of(4096);
    let (base, _closed) = raw_server(
        UNSIZED_HEAD,
        vec![
            Step::Write(body[..2048].to_vec()),
            Step::Pause(Duration::from_millis(20)),
            Step::Write(body[2048..].to_vec()),
        ],
        End::Close,
    );
    let unsized_ = limited(base);
    assert_eq!(unsized_.prompt("q").await.unwrap(), "ok");
}

/// A JSON response head without a length: the body ends when the connection closes.
const UNSIZED_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";

#[tokio::test]
async fn malformed_json_with_status_200_is_a_decode_error_with_the_request_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-request-id", "req_bad")
                .set_body_raw("{\"choices\": [", "application/json"),
        )
        .mount(&server)
        .await;
    let e = driver(&server).prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert_eq!(e.request_id(), Some("req_bad"));
}

/// The key in the driver's `Debug` and in errors is the conformance kit's check; what is
/// left here is the builder's `Debug` and a key that cannot be sent.
#[tokio::test]
async fn the_key_never_appears_in_the_builder_or_a_refusal_of_it() {
    let builder = OpenAiDriver::builder().api_key(KEY);
    let shown = format!("{builder:?}");
    assert!(!shown.contains("SECRET"), "key leaked: {shown}");
    assert_eq!(
        format!("{:?}", crate::ApiKey::new(KEY)),
        "ApiKey(<redacted>)"
    );
    // Hidden from output, but handed on whole to code that asks for it.
    assert_eq!(crate::ApiKey::from(KEY).expose(), KEY);
    // An unusable key is rejected without showing it.
    let err = OpenAiDriver::builder()
        .api_key("sk-bad\nSECRET")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(!err.to_string().contains("SECRET"));
}

/// Some compatible servers and proxies echo the key they were sent. An echo in a JSON error
/// before any output is the conformance kit's check; here, an echo in an error event after
/// the first chunk, and in a proxy's plain page on the completions endpoint.
#[tokio::test]
async fn a_key_the_service_echoes_mid_stream_or_in_a_page_is_redacted() {
    let echo = format!("Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(
                "data: {}\n\nevent: error\ndata: {}\n\n",
                super::support::text_chunk("hi"),
                json!({"error": {"message": echo, "type": "server_error"}})
            ),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/v1/completions"))
        .respond_with(ResponseTemplate::new(502).set_body_raw(
            format!("<html>bad gateway for Bearer {KEY}</html>"),
            "text/html",
        ))
        .mount(&server)
        .await;
    let d = driver(&server);
    let mut stream = d
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    let mut mid = None;
    while let Some(item) = nova_llm_core::next_event(&mut stream).await {
        if let Err(e) = item {
            mid = Some(e);
        }
    }
    let mid = mid.unwrap();
    let page = d
        .complete(nova_llm_core::CompletionRequest::new("p"))
        .await
        .unwrap_err();
    assert_eq!(page.kind(), ErrorKind::Server);
    for e in [mid, page] {
        let mut shown = vec![e.to_string(), format!("{e:?}")];
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            shown.push(s.to_string());
            source = s.source();
        }
        for text in shown {
            assert!(!text.contains("SECRET"), "key leaked: {text}");
        }
        assert!(format!("{e:?}").contains("<redacted>"), "{e:?}");
    }
}
