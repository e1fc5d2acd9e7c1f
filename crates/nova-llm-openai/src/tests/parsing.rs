//! Lenient parsing of plain responses, over HTTP and from bytes.

use std::time::Duration;

use nova_llm_core::{
    ChatRequest, Dialog, ErrorKind, FinishReason, LlmDriver, LlmDriverExt, Role, ToolCall, Usage,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::driver;
use crate::wire;

fn decode_chat(body: &[u8]) -> Result<nova_llm_core::ChatResponse, nova_llm_core::LlmError> {
    wire::decode_chat(body, nova_llm_core::ResponseMetadata::default())
}

fn decode_completion(
    body: &[u8],
) -> Result<nova_llm_core::CompletionResponse, nova_llm_core::LlmError> {
    wire::decode_completion(body, nova_llm_core::ResponseMetadata::default())
}

fn parse(v: Value) -> nova_llm_core::ChatResponse {
    decode_chat(v.to_string().as_bytes()).unwrap()
}

fn choice(message: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o", "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
}

#[tokio::test]
async fn a_plain_reply_is_parsed_with_usage_request_id_and_rate_limits() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-request-id", "req_42")
                .insert_header("x-ratelimit-remaining-requests", "9")
                .insert_header("x-ratelimit-reset-tokens", "1m30s")
                .set_body_json(json!({
                    "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
                    "system_fingerprint": "fp_1", "service_tier": "default", "brand_new_field": {"x": 1},
                    "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "Hello!", "annotations": []}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                              "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
                              "completion_tokens_details": {"reasoning_tokens": 1}}
                })),
        )
        .mount(&server)
        .await;
    let r = driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("hi")))
        .await
        .unwrap();
    assert_eq!(r.text(), "Hello!");
    assert_eq!(
        (r.id.as_str(), r.model.as_str()),
        ("chatcmpl-9", "gpt-4o-2024-08-06")
    );
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.raw_finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        r.usage,
        Usage::new(10, 3).with_cache_read(4).with_reasoning(1)
    );
    assert_eq!(r.metadata.request_id.as_deref(), Some("req_42"));
    assert_eq!(r.metadata.system_fingerprint.as_deref(), Some("fp_1"));
    let rl = r.metadata.rate_limit.unwrap();
    assert_eq!(rl.remaining_requests, Some(9));
    assert_eq!(rl.reset_tokens, Some(Duration::from_secs(90)));
}

#[test]
fn null_content_missing_fields_and_unknown_values_are_accepted() {
    let r = parse(json!({"choices": [{"message": {"content": null}, "finish_reason": "eos"}]}));
    assert_eq!(r.text(), "");
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.raw_finish_reason.as_deref(), Some("eos"));
    assert_eq!(r.usage, Usage::default());
    assert_eq!(r.id, "");

    let r = parse(choice(
        json!({"role": "bot", "content": "x"}),
        json!("weird_reason"),
    ));
    assert_eq!(r.message.role, Role::Other("bot".into()));
    assert_eq!(r.finish_reason, FinishReason::Other("weird_reason".into()));

    let r = parse(
        json!({"id": null, "model": null, "usage": null, "choices": [{"message": {"content": "x", "tool_calls": null}, "finish_reason": null}]}),
    );
    assert_eq!(r.text(), "x");
    // The service said nothing: not claimed to be a natural stop.
    assert_eq!(r.finish_reason, FinishReason::Unspecified);
    assert_eq!(r.raw_finish_reason, None);
}

#[test]
fn content_given_as_parts_is_joined() {
    let r = parse(choice(
        json!({"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
        json!("stop"),
    ));
    assert_eq!(r.text(), "ab");
}

#[test]
fn a_refusal_is_a_refusal_finish_with_the_refusal_text() {
    let r = parse(choice(
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
        json!("stop"),
    ));
    assert_eq!(r.text(), "I can't help with that.");
    assert_eq!(r.finish_reason, FinishReason::Refusal);
    assert_eq!(r.raw_finish_reason.as_deref(), Some("stop"));
    assert_eq!(r.message.metadata["refusal"], true);

    // Content beside the refusal is kept as the text; the refusal still marks the reply.
    let r = parse(choice(
        json!({"role": "assistant", "content": "Partly:", "refusal": "not the rest"}),
        json!("stop"),
    ));
    assert_eq!(r.text(), "Partly:");
    assert_eq!(r.finish_reason, FinishReason::Refusal);
}

#[test]
fn reasoning_comes_from_reasoning_content_or_reasoning() {
    let r = parse(choice(
        json!({"content": "4", "reasoning_content": "2+2"}),
        json!("stop"),
    ));
    assert_eq!(r.reasoning().as_deref(), Some("2+2"));
    let r = parse(choice(
        json!({"content": "4", "reasoning": "think"}),
        json!("stop"),
    ));
    assert_eq!(r.reasoning().as_deref(), Some("think"));
    let r = parse(choice(
        json!({"content": "4", "reasoning_content": ""}),
        json!("stop"),
    ));
    assert_eq!(r.reasoning(), None);
}

#[test]
fn tool_calls_and_legacy_function_calls_are_parsed() {
    let r = parse(choice(
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "ping", "arguments": {"n": 1}}}
        ]}),
        json!("tool_calls"),
    ));
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        r.tool_calls(),
        [
            ToolCall::new("call_1", "get_weather", "{\"city\":\"Paris\"}"),
            ToolCall::new("call_2", "ping", "{\"n\":1}"),
        ]
    );
    let r = parse(choice(
        json!({"content": null, "function_call": {"name": "f", "arguments": "{}"}}),
        json!("function_call"),
    ));
    assert_eq!(r.tool_calls(), [ToolCall::new("", "f", "{}")]);
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    // Tool calls without any finish reason still say so.
    let r = parse(
        json!({"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": "f"}}]}}]}),
    );
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
}

#[test]
fn malformed_bodies_are_decode_errors() {
    for body in [
        &b"{not json"[..],
        b"",
        b"[]",
        b"{\"choices\": \"nope\"}",
        b"{\"choices\": []}",
        b"\xff\xfe",
        // Well-formed JSON with a byte that is not UTF-8 inside a string.
        b"{\"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": \"a\xffb\"}}]}",
    ] {
        let err = decode_chat(body).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Decode,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let err = decode_completion(b"{\"choices\": []}").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    // Text beyond ASCII decodes whole, escaped or not.
    let r = decode_chat(
        "{\"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": \"h\u{e9}llo \\u00e9 \u{1f600}\"}}]}"
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.text(), "h\u{e9}llo \u{e9} \u{1f600}");
}

#[tokio::test]
async fn structured_output_and_tool_replies_work_through_the_driver() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(choice(
            json!({"role": "assistant", "content": "{\"city\": \"Paris\", \"celsius\": 21}"}),
            json!("stop"),
        )))
        .mount(&server)
        .await;
    #[derive(serde::Deserialize)]
    struct Weather {
        city: String,
        celsius: i32,
    }
    let w: Weather = driver(&server)
        .structured_as(
            ChatRequest::new(Dialog::new().user("weather"))
                .json_schema("w", json!({"type": "object"})),
        )
        .await
        .unwrap();
    assert_eq!((w.city.as_str(), w.celsius), ("Paris", 21));
}
