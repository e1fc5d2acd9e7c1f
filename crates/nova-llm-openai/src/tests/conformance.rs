//! The shared conformance kit, with a double of the OpenAI chat completions API: every
//! scenario answered as OpenAI answers it on the wire.

use std::sync::Arc;

use nova_llm_conformance::{
    Arrange, DriverUnderTest, ErrorClass, Harness, RETRY_AFTER, Scenario, Setup, Step, WireReply,
    fragments,
};
use nova_llm_core::{ToolCall, Usage};
use serde_json::{Value, json};

use crate::OpenAiDriver;

struct OpenAiHarness;

fn usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens
    })
}

fn completion(message: Value, finish: &str, u: &Usage) -> WireReply {
    WireReply::json(
        200,
        &json!({
            "id": "chatcmpl-kit", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage(u)
        }),
    )
    .header("x-request-id", "req_kit")
}

fn calls_out(calls: &[ToolCall]) -> Vec<Value> {
    calls
        .iter()
        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
        .collect()
}

/// One `data:` event of a stream.
fn event(chunk: &Value) -> String {
    format!("data: {chunk}\n\n")
}

fn delta(content: &str) -> String {
    event(&json!({
        "id": "chatcmpl-kit", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    }))
}

fn deltas(texts: &[String]) -> Vec<String> {
    texts.iter().map(|t| delta(t)).collect()
}

fn sse(events: Vec<String>) -> WireReply {
    WireReply::stream("text/event-stream", events)
}

/// What OpenAI sends for each class: status, error type and code, and headers.
fn error(class: ErrorClass, message: &str) -> WireReply {
    let body = |status: u16, kind: &str, code: Value| {
        WireReply::json(
            status,
            &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        )
    };
    match class {
        ErrorClass::InvalidRequest => body(400, "invalid_request_error", Value::Null),
        ErrorClass::Authentication => body(401, "invalid_request_error", json!("invalid_api_key")),
        ErrorClass::PermissionDenied => body(403, "permission_error", Value::Null),
        ErrorClass::NotFound => body(404, "invalid_request_error", json!("model_not_found")),
        ErrorClass::RateLimited => body(429, "requests", json!("rate_limit_exceeded"))
            .header("retry-after", RETRY_AFTER.as_secs().to_string()),
        ErrorClass::QuotaExhausted => body(429, "insufficient_quota", json!("insufficient_quota")),
        ErrorClass::ContextLength => body(
            400,
            "invalid_request_error",
            json!("context_length_exceeded"),
        ),
        ErrorClass::ContentFilter => body(400, "invalid_request_error", json!("content_filter")),
        ErrorClass::Overloaded => body(503, "server_error", Value::Null),
        ErrorClass::HtmlPage => WireReply::whole(
            502,
            "text/html",
            format!("<html><body><h1>502 Bad Gateway</h1>{message}</body></html>"),
        ),
        ErrorClass::NonJson => {
            WireReply::whole(500, "text/plain", format!("upstream failed: {message}"))
        }
        _ => body(500, "server_error", Value::Null),
    }
}

/// An error inside a stream, as an `error` object in a `data:` event.
fn stream_error(class: ErrorClass, message: &str) -> String {
    let kind = match class {
        ErrorClass::Overloaded => "overloaded_error",
        ErrorClass::InvalidRequest => "invalid_request_error",
        ErrorClass::RateLimited => "rate_limit_error",
        _ => "server_error",
    };
    event(&json!({"error": {"message": message, "type": kind}}))
}

impl Harness for OpenAiHarness {
    fn driver(&self, setup: &Setup) -> Arc<dyn DriverUnderTest> {
        let driver = OpenAiDriver::builder()
            .base_url(format!("{}/v1", setup.base_url))
            .api_key(setup.api_key.clone())
            .stream_idle_timeout(setup.stream_idle_timeout)
            .max_response_bytes(setup.max_response_bytes)
            .build();
        match driver {
            Ok(d) => Arc::new(d),
            Err(e) => panic!("the driver could not be built: {e}"),
        }
    }

    fn arrange(&self, scenario: &Scenario) -> Arrange {
        Arrange::Wire(match scenario {
            Scenario::Text { text, usage } => {
                completion(json!({"role": "assistant", "content": text}), "stop", usage)
            }
            Scenario::ToolCalls { calls, usage } => completion(
                json!({"role": "assistant", "content": null, "tool_calls": calls_out(calls)}),
                "tool_calls",
                usage,
            ),
            Scenario::Structured { value } => completion(
                json!({"role": "assistant", "content": value.to_string()}),
                "stop",
                &Usage::new(1, 1),
            ),
            Scenario::Reasoning {
                reasoning,
                text,
                usage,
            } => completion(
                json!({"role": "assistant", "reasoning_content": reasoning, "content": text}),
                "stop",
                usage,
            ),
            Scenario::Stream {
                deltas: texts,
                usage: u,
            } => {
                let mut events = deltas(texts);
                events.push(event(
                    &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                ));
                events.push(event(&json!({"choices": [], "usage": usage(u)})));
                events.push("data: [DONE]\n\n".into());
                sse(events)
            }
            Scenario::StreamToolCalls { calls } => {
                // The calls' fragments interleaved; a compatible server repeats ids and
                // names in every fragment.
                let mut events: Vec<String> = fragments(calls)
                    .into_iter()
                    .map(|(i, c, piece)| {
                        event(&json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                            {"index": i, "id": c.id, "type": "function",
                             "function": {"name": c.name, "arguments": piece}}
                        ]}}]}))
                    })
                    .collect();
                events.push(event(
                    &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                ));
                events.push("data: [DONE]\n\n".into());
                sse(events)
            }
            Scenario::Error { class, message } => error(*class, message),
            Scenario::StreamCut {
                deltas: texts,
                after,
            } => sse(deltas(&texts[..*after])).then(Step::Cut),
            Scenario::StreamError {
                deltas: texts,
                after,
                class,
                message,
            } => {
                let mut events = deltas(&texts[..*after]);
                events.push(stream_error(*class, message));
                sse(events)
            }
            Scenario::StreamStall {
                deltas: texts,
                after,
            } => sse(deltas(&texts[..*after])).then(Step::Stall),
            Scenario::Oversize { bytes } => {
                let piece = vec![b' '; 1 << 20];
                WireReply::stream("application/json", vec![piece; bytes >> 20])
            }
            _ => return Arrange::Unsupported("a scenario this double does not know"),
        })
    }
}

#[tokio::test]
async fn the_driver_passes_the_conformance_kit() {
    let report = nova_llm_conformance::run(&OpenAiHarness).await;
    report.assert_passed();
    assert!(
        report
            .results()
            .iter()
            .all(|r| r.outcome == nova_llm_conformance::Outcome::Passed),
        "every check applies to an HTTP driver:\n{report}"
    );
}
