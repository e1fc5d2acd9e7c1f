//! Twenty logical calls (text; tools with a result turn; reasoning; structured; streamed)
//! through a three-vendor chain, Gemini then Claude then an OpenAI-compatible server, each
//! a real driver over real HTTP to a loopback double, with faults injected at each vendor.
//! Every call ends recovered by the right vendor or with the right classified error, with
//! exactly one start and one terminal event, and the usage and cost of the vendor that
//! answered.

use std::collections::BTreeMap;
use std::sync::Arc;

use nova_llm_anthropic::AnthropicDriver;
use nova_llm_core::{
    ChatRequest, ChatResponse, Dialog, ErrorKind, LlmDriver, LlmError, Message, Reasoning,
    ReasoningPart, ToolCall, Usage, collect_stream,
};
use nova_llm_gemini::GeminiDriver;
use nova_llm_openai::OpenAiDriver;
use nova_llm_provider::fallback::FallbackLayer;
use nova_llm_provider::{EventKind, PriceTable, Provider};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Tools,
    Reasoning,
    Structured,
    Stream,
}

/// What one vendor does with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Answers.
    None,
    /// Overloaded (Gemini 503 UNAVAILABLE, Claude 529, OpenAI 503).
    Overloaded,
    /// Rate limited, with a wait.
    RateLimited,
    /// A server error.
    Server,
    /// Refuses the request (400): not retried, not passed on.
    Invalid,
    /// Streams: an error event before any content.
    StreamErrorFirst,
    /// Streams: content, then the connection ends without a finish.
    StreamCutAfterContent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Gemini,
    Claude,
    OpenAi,
}

const VENDORS: [Vendor; 3] = [Vendor::Gemini, Vendor::Claude, Vendor::OpenAi];

/// How a call must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    AnsweredBy(Vendor),
    Failed(ErrorKind),
}

struct Case {
    kind: Kind,
    faults: [Fault; 3],
    outcome: Outcome,
}

fn cases() -> Vec<Case> {
    use Fault::*;
    use Kind::*;
    use Outcome::*;
    use Vendor::*;
    let c = |kind, faults, outcome| Case {
        kind,
        faults,
        outcome,
    };
    vec![
        c(Text, [None, None, None], AnsweredBy(Gemini)),
        c(Text, [Overloaded, None, None], AnsweredBy(Claude)),
        c(Text, [RateLimited, Overloaded, None], AnsweredBy(OpenAi)),
        c(Text, [Server, Server, Server], Failed(ErrorKind::Server)),
        c(Tools, [None, None, None], AnsweredBy(Gemini)),
        c(Tools, [Overloaded, None, None], AnsweredBy(Claude)),
        c(Tools, [Overloaded, RateLimited, None], AnsweredBy(OpenAi)),
        c(
            Tools,
            [Invalid, None, None],
            Failed(ErrorKind::InvalidRequest),
        ),
        c(Reasoning, [None, None, None], AnsweredBy(Gemini)),
        c(Reasoning, [Server, None, None], AnsweredBy(Claude)),
        c(
            Reasoning,
            [Overloaded, Overloaded, None],
            AnsweredBy(OpenAi),
        ),
        c(
            Reasoning,
            [Overloaded, Invalid, None],
            Failed(ErrorKind::InvalidRequest),
        ),
        c(Structured, [None, None, None], AnsweredBy(Gemini)),
        c(Structured, [RateLimited, None, None], AnsweredBy(Claude)),
        c(Structured, [Overloaded, Server, None], AnsweredBy(OpenAi)),
        c(
            Structured,
            [Overloaded, Overloaded, RateLimited],
            Failed(ErrorKind::RateLimited),
        ),
        c(Stream, [None, None, None], AnsweredBy(Gemini)),
        c(Stream, [StreamErrorFirst, None, None], AnsweredBy(Claude)),
        c(
            Stream,
            [Overloaded, StreamErrorFirst, None],
            AnsweredBy(OpenAi),
        ),
        c(
            Stream,
            [StreamCutAfterContent, None, None],
            Failed(ErrorKind::StreamInterrupted),
        ),
    ]
}

/// The model each vendor is asked for, and the usage it reports (each priced in the table).
fn model(v: Vendor) -> &'static str {
    match v {
        Vendor::Gemini => "gemini-2.5-flash",
        Vendor::Claude => "claude-haiku-4-5",
        Vendor::OpenAi => "gpt-4o-mini",
    }
}

/// The driver's name of each vendor (metrics count calls under it).
fn driver_name(v: Vendor) -> &'static str {
    match v {
        Vendor::Gemini => "gemini",
        Vendor::Claude => "anthropic",
        Vendor::OpenAi => "openai",
    }
}

/// The usage each vendor's double reports, as the core counts it.
fn usage(v: Vendor) -> Usage {
    match v {
        // promptTokenCount 120 (80 cached), candidates 30 + thoughts 10.
        Vendor::Gemini => {
            let mut u = Usage::new(120, 40).with_cache_read(80).with_reasoning(10);
            u.total_tokens = 160;
            u
        }
        // 20 uncached + 60 read + 40 written.
        Vendor::Claude => Usage::new(120, 40).with_cache_read(60).with_cache_write(40),
        // 120 prompt (20 cached), 40 completion.
        Vendor::OpenAi => Usage::new(120, 40).with_cache_read(20),
    }
}

fn answer(v: Vendor, kind: Kind) -> String {
    match kind {
        Kind::Structured => format!(r#"{{"vendor":"{v:?}"}}"#),
        _ => format!("answer from {v:?}"),
    }
}

fn gemini_body(kind: Kind) -> Value {
    let text = answer(Vendor::Gemini, kind);
    let mut parts = vec![json!({"text": text})];
    if kind == Kind::Reasoning {
        parts.insert(
            0,
            json!({"text": "thinking", "thought": true, "thoughtSignature": "g-sig"}),
        );
    }
    json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 80,
                          "candidatesTokenCount": 30, "thoughtsTokenCount": 10, "totalTokenCount": 160},
        "modelVersion": "gemini-2.5-flash", "responseId": "resp-g"
    })
}

fn claude_body(kind: Kind) -> Value {
    let mut content = vec![json!({"type": "text", "text": answer(Vendor::Claude, kind)})];
    if kind == Kind::Reasoning {
        content.insert(
            0,
            json!({"type": "thinking", "thinking": "thinking", "signature": "c-sig"}),
        );
    }
    json!({
        "id": "msg_m", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": content, "stop_reason": "end_turn",
        "usage": {"input_tokens": 20, "cache_read_input_tokens": 60,
                  "cache_creation_input_tokens": 40, "output_tokens": 40}
    })
}

fn openai_body(kind: Kind) -> Value {
    let mut message = json!({"role": "assistant", "content": answer(Vendor::OpenAi, kind)});
    if kind == Kind::Reasoning {
        message["reasoning_content"] = json!("thinking");
    }
    json!({
        "id": "chatcmpl-m", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 40, "total_tokens": 160,
                  "prompt_tokens_details": {"cached_tokens": 20}}
    })
}

fn sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(body)
}

/// A vendor's stream of the answer, whole (`cut`: without its end).
fn stream(v: Vendor, cut: bool) -> ResponseTemplate {
    let text = answer(v, Kind::Stream);
    let (a, b) = text.split_at(7);
    match v {
        Vendor::Gemini => {
            let chunk = |t: &str, last: bool| {
                let mut c = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": t}]}}],
                                   "modelVersion": "gemini-2.5-flash", "responseId": "resp-g"});
                if last {
                    c["candidates"][0]["finishReason"] = json!("STOP");
                    c["usageMetadata"] = gemini_body(Kind::Stream)["usageMetadata"].clone();
                }
                format!("data: {c}\r\n\r\n")
            };
            let mut body = chunk(a, false);
            if !cut {
                body.push_str(&chunk(b, true));
            }
            sse(body)
        }
        Vendor::Claude => {
            let ev = |n: &str, d: Value| format!("event: {n}\ndata: {d}\n\n");
            let mut body = ev(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_m", "model": "claude-haiku-4-5",
                "usage": {"input_tokens": 20, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 40, "output_tokens": 1}}}),
            );
            body.push_str(&ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            for t in [a, b] {
                body.push_str(&ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})));
            }
            if !cut {
                body.push_str(&ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 40}})));
                body.push_str(&ev("message_stop", json!({"type": "message_stop"})));
            }
            sse(body)
        }
        Vendor::OpenAi => {
            let delta = |t: &str| json!({"id": "c", "model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "delta": {"content": t}}]});
            let mut body = format!("data: {}\n\ndata: {}\n\n", delta(a), delta(b));
            if !cut {
                body.push_str(&format!(
                    "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
                    json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                    json!({"id": "c", "choices": [], "usage": openai_body(Kind::Stream)["usage"].clone()})
                ));
            }
            sse(body)
        }
    }
}

/// A vendor's error of `fault` (HTTP, or in a stream before content).
fn error(v: Vendor, fault: Fault) -> ResponseTemplate {
    let (status, gemini_status, claude_type, openai_type) = match fault {
        Fault::Overloaded => (
            if v == Vendor::Claude { 529 } else { 503 },
            "UNAVAILABLE",
            "overloaded_error",
            "server_error",
        ),
        Fault::RateLimited => (429, "RESOURCE_EXHAUSTED", "rate_limit_error", "requests"),
        Fault::Server => (500, "INTERNAL", "api_error", "server_error"),
        Fault::Invalid => (
            400,
            "INVALID_ARGUMENT",
            "invalid_request_error",
            "invalid_request_error",
        ),
        _ => (500, "INTERNAL", "api_error", "server_error"),
    };
    let body = match v {
        Vendor::Gemini => {
            json!({"error": {"code": status, "status": gemini_status, "message": "injected",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.001s"}]}})
        }
        Vendor::Claude => {
            json!({"type": "error", "error": {"type": claude_type, "message": "injected"}})
        }
        Vendor::OpenAi => json!({"error": {"message": "injected", "type": openai_type}}),
    };
    ResponseTemplate::new(status)
        .set_body_json(body)
        .insert_header("retry-after-ms", "1")
}

fn stream_error_first(v: Vendor) -> ResponseTemplate {
    sse(match v {
        Vendor::Gemini => format!(
            "data: {}\r\n\r\n",
            json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "injected"}})
        ),
        Vendor::Claude => format!(
            "event: message_start\ndata: {}\n\nevent: error\ndata: {}\n\n",
            json!({"type": "message_start", "message": {"id": "m", "model": "claude-haiku-4-5", "usage": {"input_tokens": 1, "output_tokens": 1}}}),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "injected"}})
        ),
        Vendor::OpenAi => format!(
            "data: {}\n\n",
            json!({"error": {"message": "injected", "type": "server_error"}})
        ),
    })
}

fn reply(v: Vendor, kind: Kind, fault: Fault) -> ResponseTemplate {
    match (fault, kind) {
        (Fault::None, Kind::Stream) => stream(v, false),
        (Fault::None, _) => ResponseTemplate::new(200).set_body_json(match v {
            Vendor::Gemini => gemini_body(kind),
            Vendor::Claude => claude_body(kind),
            Vendor::OpenAi => openai_body(kind),
        }),
        (Fault::StreamErrorFirst, _) => stream_error_first(v),
        (Fault::StreamCutAfterContent, _) => stream(v, true),
        (other, _) => error(v, other),
    }
}

/// The request of call `i`: its marker in the last row, so each double knows the case.
fn request(i: usize, kind: Kind) -> ChatRequest {
    let marker = format!("case-{i}");
    let dialog = match kind {
        // A tool turn made earlier (with another vendor's call id and signed reasoning),
        // continued now.
        Kind::Tools => Dialog::new()
            .user("What time is it in Paris?")
            .message(
                Message::assistant("")
                    .with_reasoning(
                        ReasoningPart::new("look it up").with_signature("x-sig", "anthropic"),
                    )
                    .with_tool_call(ToolCall::new("toolu_01", "now", r#"{"city":"Paris"}"#)),
            )
            .tool_result("toolu_01", "14:05")
            .user(marker),
        _ => Dialog::new().system("Be brief.").user(marker),
    };
    let r = ChatRequest::new(dialog).model("gemini-2.5-flash");
    match kind {
        Kind::Reasoning => r.reasoning(Reasoning::Budget(2048)),
        Kind::Structured => r.json_schema(
            "vendor",
            json!({"type": "object", "properties": {"vendor": {"type": "string"}}, "required": ["vendor"]}),
        ),
        Kind::Tools => r.tool(nova_llm_core::Tool::new(
            "now",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        )),
        _ => r,
    }
}

/// The body `server` received for case `i`.
async fn body_of(server: &MockServer, i: usize) -> Value {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .find(|b| b.to_string().contains(&format!("case-{i}\"")))
        .unwrap()
}

async fn run(p: &Provider, i: usize, kind: Kind) -> Result<ChatResponse, LlmError> {
    let r = request(i, kind);
    if kind == Kind::Stream {
        collect_stream(p.chat_stream(r).await?).await
    } else {
        p.chat(r).await
    }
}

#[tokio::test]
async fn twenty_calls_through_three_vendors_with_faults_at_each() {
    let servers = [
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    ];
    let cases = cases();
    for (i, case) in cases.iter().enumerate() {
        for (v, server) in VENDORS.iter().zip(&servers) {
            Mock::given(method("POST"))
                .and(body_string_contains(format!("case-{i}\"")))
                .respond_with(reply(*v, case.kind, case.faults[*v as usize]))
                .mount(server)
                .await;
        }
    }
    let gemini: Arc<dyn LlmDriver> = Arc::new(
        GeminiDriver::builder()
            .base_url(servers[0].uri())
            .api_key("AIza-test-0123456789")
            .build()
            .unwrap(),
    );
    let claude = AnthropicDriver::builder()
        .base_url(servers[1].uri())
        .api_key("sk-ant-test-0123456789")
        .build()
        .unwrap();
    let openai = OpenAiDriver::builder()
        .base_url(format!("{}/v1", servers[2].uri()))
        .api_key("sk-test-0123456789")
        .build()
        .unwrap();
    let p = Provider::builder_shared(gemini)
        .fallback(
            FallbackLayer::new()
                .then(Arc::new(claude), Some(model(Vendor::Claude)))
                .then(Arc::new(openai), Some(model(Vendor::OpenAi))),
        )
        .build();
    let mut rx = p.subscribe();
    let prices = PriceTable::builtin();

    for (i, case) in cases.iter().enumerate() {
        let result = run(&p, i, case.kind).await;
        let events = rx.drain();
        let why = format!("case {i} ({:?}, {:?})", case.kind, case.faults);
        // Exactly one start and one terminal event, the terminal one last.
        let ids: BTreeMap<_, usize> = events.iter().fold(BTreeMap::new(), |mut m, e| {
            *m.entry(e.request_id).or_default() += 1;
            m
        });
        assert_eq!(ids.len(), 1, "{why}: one call, one request id");
        let starts = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Started { .. }))
            .count();
        let terminals = events.iter().filter(|e| e.is_terminal()).count();
        assert_eq!((starts, terminals), (1, 1), "{why}: {events:#?}");
        assert!(events.last().unwrap().is_terminal(), "{why}");
        match (case.outcome, result) {
            (Outcome::AnsweredBy(v), Ok(reply)) => {
                let want = answer(v, case.kind);
                assert_eq!(reply.text(), want, "{why}");
                assert_eq!(reply.usage, usage(v), "{why}");
                if case.kind == Kind::Reasoning {
                    assert_eq!(reply.reasoning().as_deref(), Some("thinking"), "{why}");
                }
                if case.kind == Kind::Structured {
                    let v: Value = serde_json::from_str(&reply.text()).unwrap();
                    assert!(v["vendor"].is_string(), "{why}");
                }
                let done = events
                    .iter()
                    .find_map(|e| match &e.kind {
                        EventKind::Completed(c) => Some(c.clone()),
                        _ => None,
                    })
                    .unwrap();
                assert_eq!(done.usage, usage(v), "{why}");
                assert_eq!(&*done.served_by, driver_name(v), "{why}");
                let cost = prices.cost(model(v), &usage(v)).unwrap();
                assert!(
                    (done.cost_usd.unwrap() - cost).abs() < 1e-15,
                    "{why}: {done:?}"
                );
                // The vendors before it were tried once each, those after it never.
                for (w, server) in VENDORS.iter().zip(&servers) {
                    let tried = server
                        .received_requests()
                        .await
                        .unwrap()
                        .iter()
                        .filter(|r| {
                            String::from_utf8_lossy(&r.body).contains(&format!("case-{i}\""))
                        })
                        .count();
                    let want = usize::from((*w as usize) <= (v as usize));
                    assert_eq!(tried, want, "{why}: {w:?} tried {tried} times");
                }
            }
            (Outcome::Failed(kind), Err(e)) => {
                assert_eq!(e.kind(), kind, "{why}: {e}");
                let failed = events
                    .iter()
                    .find_map(|e| match &e.kind {
                        EventKind::Failed(f) => Some(f.clone()),
                        _ => None,
                    })
                    .unwrap();
                assert_eq!(failed.error, kind, "{why}");
                if kind == ErrorKind::StreamInterrupted {
                    // Content was shown: no switch, and what it used is estimated.
                    assert_eq!(e.partial().unwrap().text, "answer ", "{why}");
                    assert!(
                        failed.usage.is_some_and(|u| u.estimated),
                        "{why}: {failed:?}"
                    );
                } else {
                    assert_eq!(failed.usage, None, "{why}: nothing was generated");
                }
            }
            (want, got) => panic!("{why}: wanted {want:?}, got {got:?}"),
        }
    }

    // Metrics count each answer under the vendor and model that gave it, with its cost.
    let snap = p.metrics().unwrap().snapshot();
    for v in VENDORS {
        let answered = cases
            .iter()
            .filter(|c| c.outcome == Outcome::AnsweredBy(v))
            .count() as u64;
        let response_model = match v {
            Vendor::OpenAi => "gpt-4o-mini-2024-07-18",
            other => model(other),
        };
        let m = snap.get(driver_name(v), response_model).unwrap();
        let cache_read = answered * usage(v).cache_read_tokens.unwrap();
        assert_eq!(m.cache_read_tokens, cache_read, "{v:?}");
        let cost = prices.cost(model(v), &usage(v)).unwrap() * answered as f64;
        if v == Vendor::Gemini {
            // The provider's own driver and the requested model also count the calls that
            // failed (one of them, cut after content, with an estimated usage and its cost).
            let failed = cases
                .iter()
                .filter(|c| matches!(c.outcome, Outcome::Failed(_)))
                .count() as u64;
            assert_eq!((m.requests, m.errors), (answered + failed, failed), "{v:?}");
            assert!(m.cost_usd > cost, "{v:?}");
            assert_eq!(m.estimated_usage, 1, "{v:?}");
        } else {
            assert_eq!((m.requests, m.errors), (answered, 0), "{v:?}");
            let diff = (m.cost_usd - cost).abs();
            assert!(diff < 1e-12, "{v:?}: {} != {cost}", m.cost_usd);
        }
    }

    // What each vendor was sent for the tool turn made elsewhere: Claude's signed reasoning
    // back to Claude only, the call and its result in each one's shape.
    let g = body_of(&servers[0], 6).await;
    assert_eq!(
        g["contents"][1]["parts"],
        json!([{"functionCall": {"id": "toolu_01", "name": "now", "args": {"city": "Paris"}}}])
    );
    assert_eq!(
        g["contents"][2]["parts"][0]["functionResponse"],
        json!({"id": "toolu_01", "name": "now", "response": {"output": "14:05"}})
    );
    let c = body_of(&servers[1], 6).await;
    assert_eq!(
        c["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "look it up", "signature": "x-sig"})
    );
    assert_eq!(c["messages"][2]["content"][0]["tool_use_id"], "toolu_01");
    let o = body_of(&servers[2], 6).await;
    assert_eq!(o["messages"][1]["tool_calls"][0]["id"], "toolu_01");
    assert_eq!(
        o["messages"][2],
        json!({"role": "tool", "content": "14:05", "tool_call_id": "toolu_01"})
    );
    assert!(!o.to_string().contains("x-sig") && !g.to_string().contains("x-sig"));
}
