//! Streams over real HTTP, and the decoder on bytes alone: chunks as whole responses,
//! thoughts and their signatures, calls without ids, the cumulative usage reported once,
//! errors in the stream, streams cut short, a blocked prompt.

use std::collections::VecDeque;

use nova_llm_core::{
    ChatRequest, Dialog, ErrorKind, FinishReason, LlmDriver, ResponseMetadata, StreamEvent,
    ToolCallDelta, Usage, collect_stream,
};
use nova_llm_http::Decoder;
use serde_json::json;
use wiremock::ResponseTemplate;

use super::support::{driver, server_replying, sse_response, stream, thinking_text_calls_stream};
use crate::decode::{ChunkDecoder, Item};

fn decode_chunks(chunks: &[&[u8]]) -> (Vec<Item>, ChunkDecoder) {
    let mut d = ChunkDecoder::new(ResponseMetadata::new(), 1 << 20);
    let mut out = VecDeque::new();
    for c in chunks {
        d.feed(c, &mut out);
    }
    d.end(&mut out);
    (out.into_iter().collect(), d)
}

fn events_of(items: Vec<Item>) -> Vec<StreamEvent> {
    items.into_iter().map(Result::unwrap).collect()
}

#[test]
fn a_realistic_stream_decodes_with_the_usage_once_and_the_finish_last() {
    let body = stream(&thinking_text_calls_stream());
    let (items, d) = decode_chunks(&[body.as_bytes()]);
    assert!(d.is_complete());
    let events = events_of(items);
    let StreamEvent::Start(start) = &events[0] else {
        panic!("no start: {events:?}");
    };
    assert_eq!(
        (start.id.as_str(), start.model.as_str()),
        ("resp-s", "gemini-2.5-flash")
    );
    let sig = |s: &str| StreamEvent::ReasoningSignature {
        signature: s.into(),
        origin: "gemini".into(),
    };
    let mut usage = Usage::new(40, 35).with_cache_read(30).with_reasoning(15);
    usage.total_tokens = 75;
    assert_eq!(
        events[1..],
        [
            StreamEvent::reasoning("The user wants two cities."),
            StreamEvent::text("Checking "),
            StreamEvent::text("both."),
            sig("Cv4BsigA=="),
            StreamEvent::tool_call(
                ToolCallDelta::new(0)
                    .with_id("gemini-call-0")
                    .with_name("get_weather")
                    .with_arguments(r#"{"city":"Paris"}"#)
            ),
            StreamEvent::tool_call(
                ToolCallDelta::new(1)
                    .with_id("gemini-call-1")
                    .with_name("get_weather")
                    .with_arguments(r#"{"city":"Rome"}"#)
            ),
            // The last cumulative usage, once.
            StreamEvent::usage(usage),
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                raw: Some("STOP".into())
            },
        ]
    );
    // Any split of the bytes gives the same events.
    let bytes = body.as_bytes();
    for at in (1..bytes.len()).step_by(7) {
        let (items, _) = decode_chunks(&[&bytes[..at], &bytes[at..]]);
        assert_eq!(events_of(items), events, "split at {at}");
    }
}

#[tokio::test]
async fn a_streamed_reply_reads_as_the_same_reply_not_streamed() {
    let server = server_replying(sse_response(stream(&thinking_text_calls_stream()))).await;
    let streamed = collect_stream(
        driver(&server)
            .chat_stream(ChatRequest::new(Dialog::new().user("q")))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    // The same reply whole: the chunks' parts in one candidate, the last usage.
    let chunks = thinking_text_calls_stream();
    let parts: Vec<_> = chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    let mut whole = chunks[3].clone();
    whole["candidates"][0]["content"]["parts"] = json!(parts);
    let server = server_replying(ResponseTemplate::new(200).set_body_json(whole)).await;
    let plain = driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    assert_eq!(streamed.message, plain.message);
    assert_eq!(streamed.usage, plain.usage);
    assert_eq!(streamed.finish_reason, plain.finish_reason);
}

#[tokio::test]
async fn a_stream_without_a_finish_reason_is_cut_short() {
    let mut chunks = thinking_text_calls_stream();
    chunks.pop();
    let server = server_replying(sse_response(stream(&chunks))).await;
    let s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    let err = collect_stream(s).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    let p = err.partial().unwrap();
    assert_eq!(
        (p.text.as_str(), p.reasoning.as_str()),
        ("Checking both.", "The user wants two cities.")
    );
}

#[tokio::test]
async fn an_error_mid_stream_is_an_interruption_carrying_the_output_and_its_cause() {
    let mut chunks = thinking_text_calls_stream();
    chunks.truncate(2);
    chunks.push(json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}}));
    let server = server_replying(sse_response(stream(&chunks))).await;
    let s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    let err = collect_stream(s).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(err.cause_kind(), Some(ErrorKind::Overloaded));
    assert!(err.is_retryable());
    assert_eq!(err.partial().unwrap().text, "Checking ");
}

#[tokio::test]
async fn a_blocked_prompt_fails_the_stream_call_itself() {
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"},
                         "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4}});
    let server = server_replying(sse_response(stream(&[blocked]))).await;
    let err = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::ContentFiltered);
    assert_eq!(err.code(), Some("SAFETY"));
    // A chunk that is not JSON: a decode error.
    let (items, d) = decode_chunks(&[b"data: {\"candidates\": [\n\n"]);
    assert!(d.is_closed() && !d.is_complete());
    assert_eq!(items[0].as_ref().unwrap_err().kind(), ErrorKind::Decode);
}
