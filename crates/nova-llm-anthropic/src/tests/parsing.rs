//! Replies read off real HTTP: blocks, reasoning with signatures, usage with cache tokens,
//! stop reasons, the request id and rate-limit headers.

use std::time::Duration;

use nova_llm_core::{
    ChatRequest, ContentPart, Dialog, ErrorKind, FinishReason, LlmDriver, ReasoningPart, ToolCall,
    Usage,
};
use serde_json::json;
use wiremock::ResponseTemplate;

use super::support::{driver, message, server_replying, thinking_text_tool_message};

async fn reply_to(body: serde_json::Value) -> nova_llm_core::ChatResponse {
    let server = server_replying(ResponseTemplate::new(200).set_body_json(body)).await;
    driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap()
}

#[tokio::test]
async fn thinking_text_and_tool_use_blocks_become_ordered_parts_and_calls() {
    let server = server_replying(
        ResponseTemplate::new(200)
            .set_body_json(thinking_text_tool_message())
            .insert_header("request-id", "req_018")
            .insert_header("anthropic-ratelimit-requests-limit", "50")
            .insert_header("anthropic-ratelimit-requests-remaining", "49")
            .insert_header("anthropic-ratelimit-tokens-remaining", "70000")
            .insert_header("anthropic-ratelimit-tokens-reset", "2000-01-01T00:00:00Z"),
    )
    .await;
    let r = driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("Weather?")))
        .await
        .unwrap();
    assert_eq!(
        (r.id.as_str(), r.model.as_str()),
        ("msg_s1", "claude-sonnet-4-6")
    );
    assert_eq!(
        r.message.content,
        [
            ContentPart::Reasoning(
                ReasoningPart::new("The user wants the weather.")
                    .with_signature("EqQBCkYIBxgCKkBsig==", "anthropic")
            ),
            ContentPart::text("Let me check."),
        ]
    );
    assert_eq!(
        r.tool_calls(),
        [ToolCall::new(
            "toolu_01",
            "get_weather",
            r#"{"city":"Paris"}"#
        )]
    );
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.raw_finish_reason.as_deref(), Some("tool_use"));
    // 40 uncached + 1000 read from the cache + 0 written: 1040 in all.
    assert_eq!(
        r.usage,
        Usage::new(1040, 89)
            .with_cache_read(1000)
            .with_cache_write(0)
            .with_reasoning(30)
    );
    assert_eq!(r.metadata.request_id.as_deref(), Some("req_018"));
    let rl = r.metadata.rate_limit.unwrap();
    assert_eq!(
        (rl.limit_requests, rl.remaining_requests),
        (Some(50), Some(49))
    );
    assert_eq!(rl.remaining_tokens, Some(70000));
    assert_eq!(rl.reset_tokens, Some(Duration::ZERO));
}

#[tokio::test]
async fn redacted_thinking_unknown_blocks_and_adjacent_texts() {
    let r = reply_to(message(
        json!([
            {"type": "redacted_thinking", "data": "EmwKAhgB"},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
            {"type": "text", "text": "The answer is ", "citations": [{"type": "char_location"}]},
            {"type": "text", "text": "42."},
            {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}}
        ]),
        "end_turn",
    ))
    .await;
    assert_eq!(
        r.message.content,
        [
            ContentPart::Reasoning(ReasoningPart::redacted("EmwKAhgB", "anthropic")),
            // Adjacent text blocks read as one text, as when streamed.
            ContentPart::text("The answer is 42."),
        ]
    );
    assert_eq!(r.tool_calls(), [ToolCall::new("toolu_2", "noop", "{}")]);
    assert_eq!(r.reasoning(), None);
    // No cache figures reported: not reported, rather than zero.
    assert_eq!(r.usage, Usage::new(12, 6));
    assert_eq!(r.usage.cache_read_tokens, None);
}

#[tokio::test]
async fn every_stop_reason_is_normalized_and_kept_raw() {
    for (raw, want) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("tool_use", FinishReason::ToolCalls),
        ("refusal", FinishReason::Refusal),
        ("pause_turn", FinishReason::PauseTurn),
        ("model_context_window_exceeded", FinishReason::Length),
        ("something_new", FinishReason::Other("something_new".into())),
    ] {
        let r = reply_to(message(json!([{"type": "text", "text": "x"}]), raw)).await;
        assert_eq!(r.finish_reason, want, "{raw}");
        assert_eq!(r.raw_finish_reason.as_deref(), Some(raw));
    }
    let mut no_reason = message(json!([{"type": "text", "text": "x"}]), "end_turn");
    no_reason["stop_reason"] = json!(null);
    assert_eq!(
        reply_to(no_reason).await.finish_reason,
        FinishReason::Unspecified
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_message_is_a_decode_error_with_the_request_id() {
    for body in [
        r#"{"content": "#.to_owned(),
        r#"{"id": "msg"}"#.to_owned(),
        "[]".to_owned(),
    ] {
        let server = server_replying(
            ResponseTemplate::new(200)
                .set_body_raw(body.clone(), "application/json")
                .insert_header("request-id", "req_bad"),
        )
        .await;
        let err = driver(&server)
            .chat(ChatRequest::new(Dialog::new().user("q")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{body}");
        assert_eq!(err.request_id(), Some("req_bad"));
    }
}
