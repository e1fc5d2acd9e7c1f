//! The provider's promises across vendors, over real HTTP on loopback: fallback from the
//! Anthropic driver to an OpenAI-compatible one and back, for plain calls and for a stream
//! that fails with `overloaded_error` before its first content; a three-vendor chain
//! (Gemini, then Anthropic, then OpenAI-compatible); reasoning that stays with its own
//! service across the switch; cost priced from each service's own usage.

use std::sync::Arc;

use nova_llm_anthropic::AnthropicDriver;
use nova_llm_core::{
    ChatRequest, ContentPart, Dialog, FinishReason, LlmDriver, Usage, collect_stream,
};
use nova_llm_gemini::GeminiDriver;
use nova_llm_openai::OpenAiDriver;
use nova_llm_provider::fallback::FallbackLayer;
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_provider::{EventKind, Provider};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(route: &str, reply: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(reply)
        .mount(&server)
        .await;
    server
}

fn claude(server: &MockServer) -> Arc<dyn LlmDriver> {
    Arc::new(
        AnthropicDriver::builder()
            .base_url(server.uri())
            .api_key("sk-ant-test-0123456789")
            .build()
            .unwrap(),
    )
}

fn gpt(server: &MockServer) -> Arc<dyn LlmDriver> {
    Arc::new(
        OpenAiDriver::builder()
            .base_url(format!("{}/v1", server.uri()))
            .api_key("sk-test-0123456789")
            .build()
            .unwrap(),
    )
}

fn gemini(server: &MockServer) -> Arc<dyn LlmDriver> {
    Arc::new(
        GeminiDriver::builder()
            .base_url(server.uri())
            .api_key("AIza-test-0123456789")
            .build()
            .unwrap(),
    )
}

fn gemini_unavailable() -> serde_json::Value {
    json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}})
}

fn overloaded() -> ResponseTemplate {
    ResponseTemplate::new(529).set_body_json(
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
}

fn openai_reply(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                  "prompt_tokens_details": {"cached_tokens": 400}}
    }))
}

/// A reply from Claude with signed thinking, reading 6,000 prompt tokens from the cache
/// and writing 3,000 to it.
fn claude_reply() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [
            {"type": "thinking", "thinking": "Short answer.", "signature": "EqQBsig=="},
            {"type": "text", "text": "Hello from Claude."}
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1000, "cache_read_input_tokens": 6000,
                  "cache_creation_input_tokens": 3000, "output_tokens": 2000}
    }))
}

fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(body)
}

fn request() -> ChatRequest {
    ChatRequest::new(Dialog::new().system("Be brief.").user("Say hi"))
        .model("claude-sonnet-4-6")
        .temperature(0.3)
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn an_overloaded_claude_falls_back_to_an_openai_compatible_server_priced_as_it_answered() {
    let anthropic = serve("/v1/messages", overloaded()).await;
    let openai = serve("/v1/chat/completions", openai_reply("Hi from GPT.")).await;
    let p = Provider::builder_shared(claude(&anthropic))
        .fallback(FallbackLayer::new().then(gpt(&openai), Some("gpt-4o-mini")))
        .build();
    let mut rx = p.subscribe();
    let reply = p.chat(request()).await.unwrap();
    assert_eq!(reply.text(), "Hi from GPT.");
    // Each service got the request in its own shape: the system prompt on top for
    // Anthropic, without the temperature it no longer takes; a system row for OpenAI.
    let sent = bodies(&anthropic).await;
    assert_eq!(sent[0]["system"], "Be brief.");
    assert!(sent[0].get("temperature").is_none());
    let sent = bodies(&openai).await;
    assert_eq!(sent[0]["model"], "gpt-4o-mini");
    assert_eq!(
        sent[0]["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent[0]["temperature"], 0.3);
    let events = rx.drain();
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::Fallback { to, error } if to == "openai/gpt-4o-mini"
            && *error == nova_llm_core::ErrorKind::Overloaded
    )));
    let done = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Completed(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    // Priced as GPT-4o mini, which answered: 600 uncached, 400 cached, 100 out.
    assert_eq!(done.response_model, "gpt-4o-mini-2024-07-18");
    let want = (600.0 * 0.15 + 400.0 * 0.075 + 100.0 * 0.60) / 1e6;
    assert!((done.cost_usd.unwrap() - want).abs() < 1e-15);
}

#[tokio::test]
async fn and_back_an_openai_outage_is_served_by_claude_whose_thinking_stays_with_claude() {
    let openai = serve(
        "/v1/chat/completions",
        ResponseTemplate::new(503)
            .set_body_json(json!({"error": {"message": "busy", "type": "server_error"}})),
    )
    .await;
    let anthropic = serve("/v1/messages", claude_reply()).await;
    let p = Provider::builder_shared(gpt(&openai))
        .fallback(FallbackLayer::new().then(claude(&anthropic), Some("claude-sonnet-4-6")))
        .build();
    let mut rx = p.subscribe();
    let first = p
        .chat(ChatRequest::new(Dialog::new().user("Say hi")).model("gpt-4o-mini"))
        .await
        .unwrap();
    assert_eq!(first.text(), "Hello from Claude.");
    assert_eq!(first.reasoning().as_deref(), Some("Short answer."));
    // Claude's usage, normalized: 10,000 prompt tokens, of which 6,000 cache reads and
    // 3,000 cache writes; priced at Claude Sonnet 4.6's four rates.
    assert_eq!(
        first.usage,
        Usage::new(10_000, 2_000)
            .with_cache_read(6_000)
            .with_cache_write(3_000)
    );
    let cost = rx
        .drain()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Completed(c) => c.cost_usd,
            _ => None,
        })
        .unwrap();
    let want = (1_000.0 * 3.0 + 6_000.0 * 0.30 + 3_000.0 * 3.75 + 2_000.0 * 15.0) / 1e6;
    assert!((cost - want).abs() < 1e-12, "{cost} != {want}");

    // The next turn carries Claude's signed thinking. OpenAI (now up) never sees it;
    // Claude, when it serves the turn, gets it back unchanged.
    let mut dialog = Dialog::new().user("Say hi");
    dialog.push(first.into_message());
    dialog.push(nova_llm_core::Message::user("Again"));
    let openai_up = serve("/v1/chat/completions", openai_reply("Hi again.")).await;
    let p = Provider::builder_shared(gpt(&openai_up))
        .fallback(FallbackLayer::new().then(claude(&anthropic), Some("claude-sonnet-4-6")))
        .build();
    p.chat(ChatRequest::new(dialog.clone()).model("gpt-4o-mini"))
        .await
        .unwrap();
    let to_openai = bodies(&openai_up).await.remove(0);
    assert_eq!(
        to_openai["messages"][1],
        json!({"role": "assistant", "content": "Hello from Claude."})
    );
    assert!(!to_openai.to_string().contains("EqQBsig=="));
    let direct = claude(&anthropic);
    direct
        .chat(ChatRequest::new(dialog).model("claude-sonnet-4-6"))
        .await
        .unwrap();
    let to_claude = bodies(&anthropic).await.pop().unwrap();
    assert_eq!(
        to_claude["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "Short answer.", "signature": "EqQBsig=="})
    );
}

#[tokio::test]
async fn a_claude_stream_overloaded_before_its_first_content_is_served_by_the_other() {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4-6", "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ];
    let body: String = events
        .iter()
        .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
        .collect();
    let anthropic = serve("/v1/messages", sse_response(body)).await;
    let chunk = |t: &str| json!({"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": t}}]});
    let openai_body = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk("Hi "),
        chunk("there."),
        json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    );
    let openai = serve("/v1/chat/completions", sse_response(openai_body)).await;
    let p = Provider::builder_shared(claude(&anthropic))
        .fallback(FallbackLayer::new().then(gpt(&openai), Some("gpt-4o-mini")))
        .build();
    let mut rx = p.subscribe();
    let reply = collect_stream(p.chat_stream(request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(reply.text(), "Hi there.");
    assert_eq!(reply.finish_reason, FinishReason::Stop);
    // Nothing of the overloaded stream reached the caller: no reasoning, no Claude id.
    assert!(
        reply
            .message
            .content
            .iter()
            .all(|p| !matches!(p, ContentPart::Reasoning(_)))
    );
    assert_ne!(reply.id, "msg_1");
    assert_eq!(bodies(&anthropic).await[0]["stream"], true);
    assert_eq!(bodies(&openai).await[0]["stream"], true);
    let events = rx.drain();
    assert!(
        events.iter().any(
            |e| matches!(&e.kind, EventKind::Fallback { to, .. } if to == "openai/gpt-4o-mini")
        )
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Completed(_)))
            .count(),
        1
    );
}

/// Gemini, then Claude, then an OpenAI-compatible server.
fn three_vendors(g: &MockServer, a: &MockServer, o: &MockServer) -> Provider {
    Provider::builder_shared(gemini(g))
        .fallback(
            FallbackLayer::new()
                .then(claude(a), Some("claude-sonnet-4-6"))
                .then(gpt(o), Some("gpt-4o-mini")),
        )
        .build()
}

fn fallbacks(events: &[nova_llm_provider::Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Fallback { to, .. } => Some(to.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_three_vendor_chain_serves_a_plain_call_from_the_first_that_answers() {
    let g = serve(
        "/v1/models/gemini-2.5-flash:generateContent",
        ResponseTemplate::new(503).set_body_json(gemini_unavailable()),
    )
    .await;
    let a = serve("/v1/messages", overloaded()).await;
    let o = serve("/v1/chat/completions", openai_reply("Third time lucky.")).await;
    let p = three_vendors(&g, &a, &o);
    let mut rx = p.subscribe();
    let reply = p
        .chat(
            ChatRequest::new(Dialog::new().system("Be brief.").user("Say hi"))
                .model("gemini-2.5-flash"),
        )
        .await
        .unwrap();
    assert_eq!(reply.text(), "Third time lucky.");
    assert_eq!(
        fallbacks(&rx.drain()),
        ["anthropic/claude-sonnet-4-6", "openai/gpt-4o-mini"]
    );
    // Each got the system prompt its own way.
    assert_eq!(
        bodies(&g).await[0]["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(bodies(&a).await[0]["system"], "Be brief.");
    assert_eq!(bodies(&o).await[0]["messages"][0]["role"], "system");

    // Gemini up again: it answers, with its thought signature kept for the next turn.
    let g_up = serve(
        "/v1/models/gemini-2.5-flash:generateContent",
        ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Hi!", "thoughtSignature": "gem-sig"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100}
        })),
    )
    .await;
    let p = three_vendors(&g_up, &a, &o);
    let mut rx = p.subscribe();
    let reply = p
        .chat(ChatRequest::new(Dialog::new().user("Say hi")).model("gemini-2.5-flash"))
        .await
        .unwrap();
    assert_eq!(reply.text(), "Hi!");
    let cost = rx
        .drain()
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Completed(c) => c.cost_usd,
            _ => None,
        })
        .unwrap();
    // Gemini 2.5 Flash: $0.30 in, $2.50 out.
    assert!((cost - (1000.0 * 0.30 + 100.0 * 2.50) / 1e6).abs() < 1e-15);
}

#[tokio::test]
async fn a_three_vendor_chain_serves_a_stream_whose_first_two_fail_before_content() {
    let g = serve(
        "/v1/models/gemini-2.5-flash:streamGenerateContent",
        sse_response(format!("data: {}\r\n\r\n", gemini_unavailable())),
    )
    .await;
    let a_events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-sonnet-4-6", "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ),
        (
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
    ];
    let a_body: String = a_events
        .iter()
        .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
        .collect();
    let a = serve("/v1/messages", sse_response(a_body)).await;
    let chunk = |t: &str| json!({"id": "c", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": t}}]});
    let o_body = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk("Streamed by the third."),
        json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    );
    let o = serve("/v1/chat/completions", sse_response(o_body)).await;
    let p = three_vendors(&g, &a, &o);
    let mut rx = p.subscribe();
    let reply = collect_stream(
        p.chat_stream(ChatRequest::new(Dialog::new().user("Say hi")).model("gemini-2.5-flash"))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(reply.text(), "Streamed by the third.");
    let events = rx.drain();
    assert_eq!(
        fallbacks(&events),
        ["anthropic/claude-sonnet-4-6", "openai/gpt-4o-mini"]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Completed(_)))
            .count(),
        1
    );
}

#[tokio::test]
async fn each_services_rate_limit_signals_hold_back_its_own_calls() {
    // Gemini says when to come back in a RetryInfo detail; Claude in its headers.
    let g = serve(
        "/v1/models/gemini-2.5-flash:generateContent",
        ResponseTemplate::new(429).set_body_json(json!({"error": {"code": 429,
            "status": "RESOURCE_EXHAUSTED", "message": "Resource has been exhausted.",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]}})),
    )
    .await;
    let in_a_minute = humantime::format_rfc3339(
        std::time::SystemTime::now() + std::time::Duration::from_secs(60),
    );
    let a = serve(
        "/v1/messages",
        claude_reply()
            .insert_header("anthropic-ratelimit-requests-limit", "50")
            .insert_header("anthropic-ratelimit-requests-remaining", "0")
            .insert_header(
                "anthropic-ratelimit-requests-reset",
                in_a_minute.to_string().as_str(),
            ),
    )
    .await;
    let limits = || RateLimitLayer::new().fail_fast();
    let gp = Provider::builder_shared(gemini(&g))
        .rate_limit(limits())
        .build();
    let first = gp
        .chat(ChatRequest::new(Dialog::new().user("q")).model("gemini-2.5-flash"))
        .await
        .unwrap_err();
    assert_eq!(
        first.retry_after(),
        Some(std::time::Duration::from_secs(30))
    );
    // Held back here, not sent: the service said 30 s.
    let second = gp
        .chat(ChatRequest::new(Dialog::new().user("q")).model("gemini-2.5-flash"))
        .await
        .unwrap_err();
    assert_eq!(second.kind(), nova_llm_core::ErrorKind::RateLimited);
    assert!(second.message().contains("local rate limit"), "{second}");
    assert_eq!(bodies(&g).await.len(), 1);

    let ap = Provider::builder_shared(claude(&a))
        .rate_limit(limits())
        .build();
    ap.chat(ChatRequest::new(Dialog::new().user("q")).model("claude-sonnet-4-6"))
        .await
        .unwrap();
    // No request left in the window until its reset: the next call waits (here: is refused
    // at once) instead of drawing a 429.
    let refused = ap
        .chat(ChatRequest::new(Dialog::new().user("q")).model("claude-sonnet-4-6"))
        .await
        .unwrap_err();
    assert!(refused.message().contains("local rate limit"), "{refused}");
    assert_eq!(bodies(&a).await.len(), 1);
}
