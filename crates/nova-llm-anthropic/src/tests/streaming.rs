//! Streams over real HTTP, and the decoder on bytes alone: the named events, thinking and
//! its signature, tool input in pieces, the final usage, errors in the stream, streams cut
//! short.

use std::collections::VecDeque;

use nova_llm_core::{
    ChatRequest, ContentPart, Dialog, ErrorKind, FinishReason, LlmDriver, ResponseMetadata,
    StreamEvent, ToolCallDelta, Usage, collect_stream, next_event,
};
use serde_json::json;
use wiremock::ResponseTemplate;

use super::support::{
    driver, event, server_replying, sse_response, stream, thinking_text_tool_message,
    thinking_text_tool_stream,
};
use crate::decode::{EventDecoder, Item};

/// The items `decoder` makes of `chunks`, then of the end.
fn decode_chunks(chunks: &[&[u8]]) -> (Vec<Item>, EventDecoder) {
    let mut d = EventDecoder::new(ResponseMetadata::new().with_request_id("req_h"), 1 << 20);
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

fn sig(s: &str) -> StreamEvent {
    StreamEvent::ReasoningSignature {
        signature: s.into(),
        origin: "anthropic".into(),
    }
}

#[test]
fn a_realistic_stream_decodes_to_the_events_of_the_contract() {
    let body = stream(&thinking_text_tool_stream());
    let (items, d) = decode_chunks(&[body.as_bytes()]);
    assert!(d.is_complete());
    let events = events_of(items);
    let StreamEvent::Start(start) = &events[0] else {
        panic!("no start: {events:?}");
    };
    assert_eq!(
        (start.id.as_str(), start.model.as_str()),
        ("msg_s1", "claude-sonnet-4-6")
    );
    assert_eq!(start.metadata.request_id.as_deref(), Some("req_h"));
    let tool = |d: ToolCallDelta| StreamEvent::tool_call(d);
    assert_eq!(
        events[1..],
        [
            StreamEvent::reasoning("The user wants "),
            StreamEvent::reasoning("the weather."),
            sig("EqQBCkYIBxgCKkBsig=="),
            StreamEvent::text("Let me "),
            StreamEvent::text("check."),
            tool(
                ToolCallDelta::new(0)
                    .with_id("toolu_01")
                    .with_name("get_weather")
            ),
            tool(ToolCallDelta::new(0).with_arguments("{\"city\": \"Pa")),
            tool(ToolCallDelta::new(0).with_arguments("ris\"}")),
            StreamEvent::usage(
                Usage::new(1040, 89)
                    .with_cache_read(1000)
                    .with_cache_write(0)
                    .with_reasoning(30)
            ),
            StreamEvent::finish_raw("tool_use"),
        ]
    );
}

#[test]
fn any_split_of_the_bytes_gives_the_same_events_and_the_buffers_stay_small() {
    let body = stream(&thinking_text_tool_stream());
    let bytes = body.as_bytes();
    let (whole, _) = decode_chunks(&[bytes]);
    let whole = events_of(whole);
    for at in 1..bytes.len() {
        let (items, _) = decode_chunks(&[&bytes[..at], &bytes[at..]]);
        assert_eq!(events_of(items), whole, "split at {at}");
    }
    // A long stream of text deltas: the decoder holds one event at a time.
    let mut d = EventDecoder::new(ResponseMetadata::new(), 1 << 20);
    let mut out = VecDeque::new();
    let delta = super::support::event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word "}}),
    );
    d.feed(
        super::support::event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})).as_bytes(),
        &mut out,
    );
    let mut high = 0;
    for _ in 0..5_000 {
        d.feed(delta.as_bytes(), &mut out);
        out.clear();
        high = high.max(d.buffered_bytes());
    }
    assert!(high < 4096, "the decoder held {high} bytes");
}

#[tokio::test]
async fn a_streamed_reply_reads_as_the_same_reply_not_streamed() {
    let server = server_replying(sse_response(stream(&thinking_text_tool_stream()))).await;
    let streamed = collect_stream(
        driver(&server)
            .chat_stream(ChatRequest::new(Dialog::new().user("q")))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let server =
        server_replying(ResponseTemplate::new(200).set_body_json(thinking_text_tool_message()))
            .await;
    let plain = driver(&server)
        .chat(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    assert_eq!(streamed.message.content, plain.message.content);
    assert_eq!(streamed.usage, plain.usage);
    assert_eq!(
        (&streamed.finish_reason, &streamed.raw_finish_reason),
        (&plain.finish_reason, &plain.raw_finish_reason)
    );
    assert_eq!((&streamed.id, &streamed.model), (&plain.id, &plain.model));
    // The arguments are the same JSON (the stream keeps the service's spacing).
    let args = |r: &nova_llm_core::ChatResponse| {
        serde_json::from_str::<serde_json::Value>(&r.tool_calls()[0].arguments).unwrap()
    };
    assert_eq!(args(&streamed), args(&plain));
    assert_eq!(streamed.metadata.request_id.as_deref(), Some("req_stream"));
    // Appended to the dialog, the reasoning goes back with its signature.
    assert!(matches!(
        &streamed.message.content[0],
        ContentPart::Reasoning(r) if r.signature.as_deref() == Some("EqQBCkYIBxgCKkBsig==")
    ));
}

#[test]
fn redacted_thinking_a_tool_without_input_and_events_without_names() {
    let events = [
        json!({"type": "message_start", "message": {"id": "m", "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "redacted_thinking", "data": "EmwK"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"q\": 1}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "t", "name": "now", "input": {}}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "some_future_event", "x": 1}),
        json!({"type": "message_stop"}),
    ];
    // A proxy that drops the event names: the type in the data says which is which.
    let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    let (items, _) = decode_chunks(&[body.as_bytes()]);
    let events = events_of(items);
    assert_eq!(
        events[1..],
        [
            StreamEvent::ReasoningRedacted {
                data: "EmwK".into(),
                origin: "anthropic".into()
            },
            StreamEvent::tool_call(ToolCallDelta::new(0).with_id("t").with_name("now")),
            // A call whose input never came has the empty object as arguments.
            StreamEvent::tool_call(ToolCallDelta::new(0).with_arguments("{}")),
            // No `message_delta`: the start's usage, before the finish.
            StreamEvent::usage(Usage::new(3, 1)),
            StreamEvent::finish(FinishReason::Unspecified),
        ]
    );
}

#[tokio::test]
async fn overloaded_before_content_is_the_error_itself_and_after_content_an_interruption() {
    let start = (
        "message_start",
        json!({"type": "message_start", "message": {"id": "m", "model": "claude", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
    );
    let overloaded = (
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    // Before content.
    let server = server_replying(sse_response(stream(&[start.clone(), overloaded.clone()]))).await;
    let mut s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut s).await,
        Some(Ok(StreamEvent::Start(_)))
    ));
    let err = next_event(&mut s).await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert!(err.is_retryable());
    assert_eq!(err.error_type(), Some("overloaded_error"));
    assert!(err.message().contains("Overloaded"), "{err}");
    assert!(next_event(&mut s).await.is_none());

    // After content: interrupted, carrying the text, the overload as its cause.
    let text = |t: &str| {
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}),
        )
    };
    let block = (
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    let server = server_replying(sse_response(stream(&[
        start,
        block,
        text("Hel"),
        text("lo"),
        overloaded,
    ])))
    .await;
    let s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    let err = collect_stream(s).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(err.cause_kind(), Some(ErrorKind::Overloaded));
    assert!(err.is_retryable());
    assert_eq!(err.partial().map(|p| p.text.as_str()), Some("Hello"));
}

#[tokio::test]
async fn a_stream_without_message_stop_is_cut_short_and_bad_json_is_a_decode_error() {
    let mut events = thinking_text_tool_stream();
    events.pop(); // no `message_stop`
    let server = server_replying(sse_response(stream(&events))).await;
    let s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    let err = collect_stream(s).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    let partial = err.partial().unwrap();
    assert_eq!(partial.text, "Let me check.");
    assert_eq!(partial.reasoning, "The user wants the weather.");
    assert_eq!(partial.tool_calls[0].arguments, "{\"city\": \"Paris\"}");

    let broken = format!(
        "{}event: content_block_delta\ndata: {{\"index\": 0, \"delta\": \n\n",
        event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "a"}})
        )
    );
    let (items, d) = decode_chunks(&[broken.as_bytes()]);
    assert!(d.is_closed() && !d.is_complete());
    let err = items.into_iter().find_map(Result::err).unwrap();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.message().contains("content_block_delta"), "{err}");
}
