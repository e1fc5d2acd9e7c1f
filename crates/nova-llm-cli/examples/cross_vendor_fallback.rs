//! Fallback across vendors: Gemini first, then Claude, then an OpenAI-compatible server,
//! each a real driver speaking real HTTP to a local double of its service (no key, no
//! network). Gemini is overloaded and Claude is overloaded once, so the calls show the
//! chain at work: a plain call served by the third service, a stream served by the second,
//! and a tool-call turn begun with Gemini (its made-up call id) finished by Claude.
//! `cargo run -p nova-llm-cli --example cross_vendor_fallback`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;

use nova_llm_anthropic::AnthropicDriver;
use nova_llm_core::{ChatRequest, Dialog, LlmDriver, Message, collect_stream};
use nova_llm_gemini::GeminiDriver;
use nova_llm_openai::OpenAiDriver;
use nova_llm_provider::fallback::FallbackLayer;
use nova_llm_provider::{EventKind, Provider};
use serde_json::json;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A local double of a service answering every call with `reply`; the first `n` calls get
/// the other reply of `first` instead.
async fn double(reply: ResponseTemplate, first: Option<(u64, ResponseTemplate)>) -> MockServer {
    let server = MockServer::start().await;
    if let Some((n, r)) = first {
        Mock::given(method("POST"))
            .respond_with(r)
            .up_to_n_times(n)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(reply)
        .with_priority(3)
        .mount(&server)
        .await;
    server
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // Gemini: overloaded, every time.
    let gemini = double(
        ResponseTemplate::new(503).set_body_json(
            json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}}),
        ),
        None,
    )
    .await;
    // Claude: overloaded once, then a stream of thinking and text.
    let claude_stream = [
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-haiku-4-5", "usage": {"input_tokens": 20, "output_tokens": 1}}})),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Streamed by Claude."}})),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}})),
        ("message_stop", json!({"type": "message_stop"})),
    ]
    .iter()
    .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
    .collect::<String>();
    let claude = double(
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "It is five past two in Paris."}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 40, "output_tokens": 9}
        })),
        Some((
            1,
            ResponseTemplate::new(529).set_body_json(
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ),
        )),
    )
    .await;
    // Streamed calls get a stream.
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(claude_stream),
        )
        .with_priority(2)
        .mount(&claude)
        .await;
    // The OpenAI-compatible server: always up.
    let openai = double(
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Answered by the third."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 6, "total_tokens": 36}
        })),
        None,
    )
    .await;

    let gemini_driver = GeminiDriver::builder()
        .base_url(gemini.uri())
        .build()
        .unwrap();
    let claude_driver = AnthropicDriver::builder()
        .base_url(claude.uri())
        .build()
        .unwrap();
    let openai_driver = OpenAiDriver::builder()
        .base_url(format!("{}/v1", openai.uri()))
        .build()
        .unwrap();
    let provider = Provider::builder(gemini_driver)
        .fallback(
            FallbackLayer::new()
                .then(Arc::new(claude_driver), Some("claude-haiku-4-5"))
                .then(Arc::new(openai_driver), Some("gpt-4o-mini")),
        )
        .build();
    let mut events = provider.subscribe();
    let show = |events: &mut nova_llm_provider::EventReceiver| {
        for e in events.drain() {
            match &e.kind {
                EventKind::Fallback { to, error } => println!("  fell back to {to} ({error:?})"),
                EventKind::Completed(c) => println!(
                    "  answered by {}: {} tokens in, {} out, cost {:?}",
                    c.response_model, c.usage.input_tokens, c.usage.output_tokens, c.cost_usd
                ),
                EventKind::Failed(f) => println!("  failed: {:?} {}", f.error, f.message),
                _ => {}
            }
        }
    };

    println!("A plain call (Gemini and Claude overloaded):");
    let reply = provider
        .chat(ChatRequest::new(Dialog::new().user("Say hi")).model("gemini-2.5-flash"))
        .await
        .unwrap();
    println!("  {}", reply.text());
    show(&mut events);

    println!("A stream (Gemini overloaded, Claude up again):");
    let stream = provider
        .chat_stream(ChatRequest::new(Dialog::new().user("Say hi")).model("gemini-2.5-flash"))
        .await
        .unwrap();
    println!("  {}", collect_stream(stream).await.unwrap().text());
    show(&mut events);

    println!("A tool turn begun elsewhere, continued through the chain:");
    let dialog = Dialog::new()
        .user("What time is it in Paris?")
        .message(
            Message::assistant("").with_tool_call(nova_llm_core::ToolCall::new(
                "gemini-call-0",
                "now",
                r#"{"city":"Paris"}"#,
            )),
        )
        .tool_result("gemini-call-0", "14:05");
    let reply = provider
        .chat(ChatRequest::new(dialog).model("gemini-2.5-flash"))
        .await
        .unwrap();
    println!("  {}", reply.text());
    show(&mut events);
}
