//! Test helpers: a driver pointed at a wiremock server, the bodies it received, and the
//! Messages API's replies and stream events.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::AnthropicDriver;

pub(crate) const KEY: &str = "sk-ant-test-SECRET-0123456789";

/// A driver for `server` with the test key.
pub(crate) fn driver(server: &MockServer) -> AnthropicDriver {
    AnthropicDriver::builder()
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

/// A `Message` reply with `content` blocks.
pub(crate) fn message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": content, "stop_reason": stop_reason, "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 6}
    })
}

/// A server answering every `POST /v1/messages` with `reply`.
pub(crate) async fn server_replying(reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(reply)
        .mount(&server)
        .await;
    server
}

/// A server answering with a short text message.
pub(crate) async fn server_with_text() -> MockServer {
    server_replying(
        ResponseTemplate::new(200)
            .set_body_json(message(json!([{"type": "text", "text": "ok"}]), "end_turn")),
    )
    .await
}

/// One named event of a stream.
pub(crate) fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A whole stream body from `(name, data)` events.
pub(crate) fn stream(events: &[(&str, Value)]) -> String {
    events.iter().map(|(n, d)| event(n, d)).collect()
}

/// A 200 event-stream response with `body`.
pub(crate) fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .insert_header("request-id", "req_stream")
        .set_body_string(body)
}

/// The events of a realistic streamed reply: thinking with its signature, text, and a tool
/// call whose input comes in pieces, with pings between, and the final usage.
pub(crate) fn thinking_text_tool_stream() -> Vec<(&'static str, Value)> {
    vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_s1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 1000, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "The user wants "}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "the weather."}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "signature_delta", "signature": "EqQBCkYIBxgCKkBsig=="}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "check."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{\"city\": \"Pa"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "ris\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 89, "output_tokens_details": {"thinking_tokens": 30}}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ]
}

/// The same reply, not streamed.
pub(crate) fn thinking_text_tool_message() -> Value {
    json!({
        "id": "msg_s1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [
            {"type": "thinking", "thinking": "The user wants the weather.", "signature": "EqQBCkYIBxgCKkBsig=="},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 40, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 1000, "output_tokens": 89,
                  "output_tokens_details": {"thinking_tokens": 30}}
    })
}
