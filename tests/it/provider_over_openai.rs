//! The provider over the real OpenAI driver over real HTTP on loopback (wiremock): events,
//! usage and cost from what the server sent, exactly-once events for streams, and a key
//! that never shows in events, errors or `Debug`.

use nova_llm_core::{
    ChatRequest, Dialog, ErrorKind, LlmDriver, StreamEvent, collect_stream, next_event,
};
use nova_llm_openai::OpenAiDriver;
use nova_llm_provider::{Event, EventKind, Provider};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-proj-THIS-KEY-MUST-NOT-LEAK-42";

fn provider(server: &MockServer) -> Provider {
    let driver = OpenAiDriver::builder()
        .base_url(format!("{}/v1", server.uri()))
        .api_key(KEY)
        .build()
        .unwrap();
    Provider::builder(driver).capture_content(true).build()
}

fn request() -> ChatRequest {
    ChatRequest::new(Dialog::new().user("Say hi")).model("gpt-4o-mini")
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Started { .. } => "started",
            EventKind::FirstChunk { .. } => "first_chunk",
            EventKind::StreamInterrupted { .. } => "interrupted",
            EventKind::Completed(_) => "completed",
            EventKind::Failed(_) => "failed",
            _ => "other",
        })
        .collect()
}

fn sse(chunks: &[serde_json::Value]) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

#[tokio::test]
async fn a_plain_call_reports_the_servers_usage_model_and_cost() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
                      "prompt_tokens_details": {"cached_tokens": 200}}
        })))
        .mount(&server)
        .await;
    let p = provider(&server);
    let mut rx = p.subscribe();
    assert_eq!(p.chat(request()).await.unwrap().text(), "Hi!");
    let events = rx.drain();
    assert_eq!(kinds(&events), ["started", "completed"]);
    let EventKind::Completed(c) = &events[1].kind else {
        unreachable!()
    };
    assert_eq!(c.response_model, "gpt-4o-mini-2024-07-18");
    assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (1000, 500));
    assert!(!c.usage.estimated);
    // 800 uncached x $0.15 + 200 cached x $0.075 + 500 x $0.60, per million.
    let want = (800.0 * 0.15 + 200.0 * 0.075 + 500.0 * 0.60) / 1e6;
    assert!((c.cost_usd.unwrap() - want).abs() < 1e-15);
    assert_eq!(c.reply.as_deref(), Some("Hi!"));
    let m = p.metrics().unwrap().snapshot();
    // Counted under the model that answered, as it was priced.
    assert!(m.get(p.get_ref().name(), "gpt-4o-mini").is_none());
    let m = m.get(p.get_ref().name(), "gpt-4o-mini-2024-07-18").unwrap();
    assert_eq!((m.requests, m.cache_read_tokens), (1, 200));
}

fn stream_body() -> String {
    let delta = |t: &str| json!({"id": "c", "model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "delta": {"content": t}}]});
    sse(&[
        delta("Hel"),
        delta("lo"),
        json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}}),
    ])
}

#[tokio::test]
async fn a_stream_over_http_reports_once_with_the_final_usage_chunk() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(stream_body()),
        )
        .mount(&server)
        .await;
    let p = provider(&server);
    let mut rx = p.subscribe();
    let reply = collect_stream(p.chat_stream(request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(reply.text(), "Hello");
    let events = rx.drain();
    assert_eq!(kinds(&events), ["started", "first_chunk", "completed"]);
    let EventKind::Completed(c) = &events[2].kind else {
        unreachable!()
    };
    assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (8, 2));
    assert!(c.time_to_first_token.is_some());
    assert_eq!(c.reply.as_deref(), Some("Hello"));

    // Dropped after the first text: one cancelled failure, never a completion.
    let mut s = p.chat_stream(request()).await.unwrap();
    while !matches!(
        next_event(&mut s).await,
        Some(Ok(StreamEvent::TextDelta { .. }))
    ) {}
    drop(s);
    let events = rx.drain();
    assert_eq!(
        kinds(&events),
        ["started", "first_chunk", "interrupted", "failed"]
    );
    let EventKind::Failed(f) = &events[3].kind else {
        unreachable!()
    };
    assert_eq!(f.error, ErrorKind::Cancelled);
}

#[tokio::test]
async fn the_key_never_appears_in_events_errors_or_debug() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": "Incorrect API key provided: sk-proj-****-42.", "type": "invalid_request_error", "code": "invalid_api_key"}
        })))
        .mount(&server)
        .await;
    let p = provider(&server);
    let mut rx = p.subscribe();
    let err = p.chat(request()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    let err2 = p.chat_stream(request()).await.err().unwrap();
    let events = rx.drain();
    assert_eq!(kinds(&events), ["started", "failed", "started", "failed"]);
    let everything = format!("{events:?} {err:?} {err} {err2:?} {p:?}");
    assert!(everything.contains("Incorrect API key"), "{everything}");
    assert!(!everything.contains(KEY), "the key leaked: {everything}");
    assert!(!everything.contains("MUST-NOT-LEAK"));
}
