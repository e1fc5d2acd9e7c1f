//! Streams over real HTTP: a wiremock server for whole bodies, a raw socket server for
//! streams that are cut, stall, or are dropped by the client.

use nova_llm_core::{
    ChatRequest, CompletionRequest, Dialog, ErrorKind, FinishReason, LlmDriver, StreamEvent, Usage,
    collect_stream, next_event,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{End, SSE_HEAD, Step, driver, raw_server, sse, text_chunk};
use crate::OpenAiDriver;

fn req() -> ChatRequest {
    ChatRequest::new(Dialog::new().user("q"))
}

#[tokio::test]
async fn a_streamed_reply_equals_the_events_and_carries_headers() {
    let server = MockServer::start().await;
    let body = sse(&[
        json!({"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
        text_chunk("Hello"),
        text_chunk(", world"),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-request-id", "req_s")
                .insert_header("x-ratelimit-remaining-tokens", "100")
                .set_body_raw(body, "text/event-stream"),
        )
        .mount(&server)
        .await;
    let r = collect_stream(driver(&server).chat_stream(req()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(r.text(), "Hello, world");
    assert_eq!(r.usage, Usage::new(3, 2));
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.metadata.request_id.as_deref(), Some("req_s"));
    assert_eq!(r.metadata.rate_limit.unwrap().remaining_tokens, Some(100));
}

#[tokio::test]
async fn a_streamed_completion_yields_text_deltas() {
    let server = MockServer::start().await;
    let body = sse(&[
        json!({"id": "x", "choices": [{"index": 0, "text": "Once"}]}),
        json!({"id": "x", "choices": [{"index": 0, "text": " upon", "finish_reason": "stop"}]}),
    ]);
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let s = driver(&server)
        .complete_stream(CompletionRequest::new("p"))
        .await
        .unwrap();
    assert_eq!(collect_stream(s).await.unwrap().text(), "Once upon");
}

#[tokio::test]
async fn a_connection_closed_without_finish_is_a_truncation_with_the_text_so_far() {
    let steps = vec![
        Step::Write(format!("data: {}\n\n", text_chunk("Hello, ")).into_bytes()),
        Step::Write(format!("data: {}\n\n", text_chunk("wor")).into_bytes()),
    ];
    let (base, _done) = raw_server(SSE_HEAD, steps, End::Close);
    let d = OpenAiDriver::builder().base_url(base).build().unwrap();
    let mut s = d.chat_stream(req()).await.unwrap();
    let mut items = Vec::new();
    while let Some(item) = next_event(&mut s).await {
        items.push(item);
    }
    let err = items.pop().unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert!(err.is_retryable());
    assert_eq!(err.partial().unwrap().text, "Hello, wor");
    assert!(
        items.iter().all(Result::is_ok),
        "the content before the cut arrived"
    );
    assert!(
        next_event(&mut s).await.is_none(),
        "nothing after the error"
    );
}

#[tokio::test]
async fn a_cut_inside_an_event_loses_nothing_that_was_complete() {
    let steps = vec![Step::Write(
        format!("data: {}\n\ndata: {{\"choi", text_chunk("kept")).into_bytes(),
    )];
    let (base, _done) = raw_server(SSE_HEAD, steps, End::Close);
    let d = OpenAiDriver::builder().base_url(base).build().unwrap();
    let err = collect_stream(d.chat_stream(req()).await.unwrap())
        .await
        .unwrap_err();
    // The half event is malformed JSON, after content: interrupted, with what arrived.
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted, "{err}");
    assert_eq!(err.cause_kind(), Some(ErrorKind::Decode));
    assert_eq!(err.partial().unwrap().text, "kept");
}

#[tokio::test]
async fn a_long_stream_is_consumed_event_by_event() {
    // 20,000 chunks through real HTTP; the consumer sees every delta in order.
    let n = 20_000;
    let mut body = String::new();
    for i in 0..n {
        body.push_str(&format!(
            "data: {}\n\n",
            text_chunk(&format!("{} ", i % 10))
        ));
    }
    body.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let mut s = driver(&server).chat_stream(req()).await.unwrap();
    let mut deltas = 0;
    let mut finished = false;
    while let Some(item) = next_event(&mut s).await {
        match item.unwrap() {
            StreamEvent::TextDelta { .. } => deltas += 1,
            StreamEvent::Finish { .. } => finished = true,
            _ => {}
        }
    }
    assert_eq!(deltas, n);
    assert!(finished);
}
