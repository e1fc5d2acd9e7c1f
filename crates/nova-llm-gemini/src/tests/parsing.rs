//! Replies read off real HTTP: text and thought parts, function calls with and without
//! ids, finish reasons, usage, a blocked prompt.

use nova_llm_core::{
    ChatRequest, ChatResponse, ContentPart, Dialog, ErrorKind, FinishReason, LlmDriver,
    ReasoningPart, ToolCall, Usage,
};
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use super::support::{driver, response, server_replying};

async fn reply_to(body: Value) -> Result<ChatResponse, nova_llm_core::LlmError> {
    let server = server_replying(ResponseTemplate::new(200).set_body_json(body)).await;
    driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
}

#[tokio::test]
async fn thoughts_text_and_calls_become_ordered_parts_with_made_ids_where_none_came() {
    let mut body = response(
        json!([
            {"text": "Two cities.", "thought": true, "thoughtSignature": "sig-t"},
            {"text": "Checking "},
            {"text": "both."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-c"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            {"functionCall": {"id": "fc-9", "name": "now"}}
        ]),
        "STOP",
    );
    body["usageMetadata"] = json!({"promptTokenCount": 100, "cachedContentTokenCount": 60,
        "candidatesTokenCount": 20, "thoughtsTokenCount": 30, "toolUsePromptTokenCount": 5,
        "totalTokenCount": 155});
    let r = reply_to(body).await.unwrap();
    assert_eq!(
        (r.id.as_str(), r.model.as_str()),
        ("resp-1", "gemini-2.5-flash")
    );
    assert_eq!(
        r.message.content,
        [
            ContentPart::Reasoning(
                ReasoningPart::new("Two cities.").with_signature("sig-t", "gemini")
            ),
            ContentPart::text("Checking both."),
            ContentPart::Reasoning(ReasoningPart::default().with_signature("sig-c", "gemini")),
        ]
    );
    // Two calls of one function stay two calls; ids are made where the API sent none.
    assert_eq!(
        r.tool_calls(),
        [
            ToolCall::new("gemini-call-0", "get_weather", r#"{"city":"Paris"}"#),
            ToolCall::new("gemini-call-1", "get_weather", r#"{"city":"Rome"}"#),
            ToolCall::new("fc-9", "now", "{}"),
        ]
    );
    // The API says STOP for a turn of calls too: why it stopped is the calls.
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.raw_finish_reason.as_deref(), Some("STOP"));
    let mut want = Usage::new(105, 50).with_cache_read(60).with_reasoning(30);
    want.total_tokens = 155;
    assert_eq!(r.usage, want);
}

#[tokio::test]
async fn every_finish_reason_is_normalized_and_kept_raw() {
    for (raw, want) in [
        ("STOP", FinishReason::Stop),
        ("MAX_TOKENS", FinishReason::Length),
        ("SAFETY", FinishReason::ContentFilter),
        ("RECITATION", FinishReason::Recitation),
        ("BLOCKLIST", FinishReason::ContentFilter),
        ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
        ("SPII", FinishReason::ContentFilter),
        (
            "MALFORMED_FUNCTION_CALL",
            FinishReason::Other("MALFORMED_FUNCTION_CALL".into()),
        ),
        ("FINISH_REASON_UNSPECIFIED", FinishReason::Unspecified),
    ] {
        let r = reply_to(response(json!([{"text": "x"}]), raw))
            .await
            .unwrap();
        assert_eq!(r.finish_reason, want, "{raw}");
        assert_eq!(r.raw_finish_reason.as_deref(), Some(raw));
    }
    let mut none = response(json!([{"text": "x"}]), "STOP");
    none["candidates"][0]
        .as_object_mut()
        .unwrap()
        .remove("finishReason");
    let r = reply_to(none).await.unwrap();
    assert_eq!(
        (r.finish_reason, r.raw_finish_reason),
        (FinishReason::Unspecified, None)
    );
}

#[tokio::test]
async fn a_blocked_prompt_is_a_content_filter_error_never_an_empty_success() {
    let err = reply_to(json!({
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "blockReasonMessage": "The prompt was blocked."},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}
    }))
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContentFiltered);
    assert!(!err.is_retryable());
    assert_eq!(err.code(), Some("PROHIBITED_CONTENT"));
    assert!(err.message().contains("blocked"), "{err}");
    // No candidates and no reason: not a reply either.
    for body in [json!({}), json!({"candidates": []}), json!([1])] {
        let err = reply_to(body.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{body}");
    }
}
