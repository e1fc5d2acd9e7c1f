//! Test helpers: a driver pointed at a wiremock server, the bodies it received, and the
//! Gemini API's responses and stream chunks.

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::GeminiDriver;

pub(crate) const KEY: &str = "AIzaSy-test-SECRET-0123456789";

/// A driver for `server` with the test key.
pub(crate) fn driver(server: &MockServer) -> GeminiDriver {
    GeminiDriver::builder()
        .base_url(server.uri())
        .api_key(KEY)
        .build()
        .unwrap()
}

/// The JSON bodies the server received, in order.
pub(crate) async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// A response with one candidate of `parts`.
pub(crate) fn response(parts: Value, finish: &str) -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 6, "totalTokenCount": 18},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1"
    })
}

/// A server answering every model method with `reply`.
pub(crate) async fn server_replying(reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/v1/models/[^/]+:(generateContent|streamGenerateContent)$",
        ))
        .respond_with(reply)
        .mount(&server)
        .await;
    server
}

/// A server answering with a short text.
pub(crate) async fn server_with_text() -> MockServer {
    server_replying(
        ResponseTemplate::new(200).set_body_json(response(json!([{"text": "ok"}]), "STOP")),
    )
    .await
}

/// A whole stream body from chunks.
pub(crate) fn stream(chunks: &[Value]) -> String {
    chunks
        .iter()
        .map(|c| format!("data: {c}\r\n\r\n"))
        .collect()
}

/// A 200 event-stream response with `body`.
pub(crate) fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(body)
}

/// The chunks of a realistic streamed reply: a thought (signed), text in two chunks,
/// then two calls of one function without ids, the first signed, with the usage repeated
/// cumulatively and the finish on the last chunk.
pub(crate) fn thinking_text_calls_stream() -> Vec<Value> {
    let chunk = |parts: Value, usage: Value| {
        json!({
            "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
            "usageMetadata": usage, "modelVersion": "gemini-2.5-flash", "responseId": "resp-s"
        })
    };
    let mut last = chunk(
        json!([
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "Cv4BsigA=="},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
        ]),
        json!({"promptTokenCount": 40, "cachedContentTokenCount": 30, "candidatesTokenCount": 20,
               "thoughtsTokenCount": 15, "totalTokenCount": 75}),
    );
    last["candidates"][0]["finishReason"] = json!("STOP");
    vec![
        chunk(
            json!([{"text": "The user wants two cities.", "thought": true}]),
            json!({"promptTokenCount": 40, "cachedContentTokenCount": 30, "thoughtsTokenCount": 15, "totalTokenCount": 55}),
        ),
        chunk(
            json!([{"text": "Checking "}]),
            json!({"promptTokenCount": 40, "cachedContentTokenCount": 30, "candidatesTokenCount": 2, "thoughtsTokenCount": 15, "totalTokenCount": 57}),
        ),
        chunk(
            json!([{"text": "both."}]),
            json!({"promptTokenCount": 40, "cachedContentTokenCount": 30, "candidatesTokenCount": 4, "thoughtsTokenCount": 15, "totalTokenCount": 59}),
        ),
        last,
    ]
}
