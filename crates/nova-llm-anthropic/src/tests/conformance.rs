//! The shared conformance kit, with a double of the Messages API: every scenario answered
//! as Anthropic answers it on the wire (named events, `message_stop`, `error` events,
//! error bodies with their types, 529 for overload).

use std::sync::Arc;

use nova_llm_conformance::{
    Arrange, DriverUnderTest, ErrorClass, Harness, RETRY_AFTER, Scenario, Setup, Step, WireReply,
};
use nova_llm_core::{ToolCall, Usage};
use serde_json::{Value, json};

use super::support::event;
use crate::AnthropicDriver;

struct AnthropicHarness;

fn usage(u: &Usage) -> Value {
    json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens})
}

fn message(content: Value, stop: &str, u: &Usage) -> WireReply {
    WireReply::json(
        200,
        &json!({
            "id": "msg_kit", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": content, "stop_reason": stop, "stop_sequence": null, "usage": usage(u)
        }),
    )
    .header("request-id", "req_kit")
}

fn tool_use(calls: &[ToolCall]) -> Vec<Value> {
    calls
        .iter()
        .map(|c| {
            let input: Value = serde_json::from_str(&c.arguments).unwrap_or(json!({}));
            json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input})
        })
        .collect()
}

fn start() -> String {
    event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": "msg_kit", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": [], "stop_reason": null, "usage": {"input_tokens": 11, "output_tokens": 1}}}),
    )
}

fn block_start(index: usize, block: &Value) -> String {
    event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn delta(index: usize, delta: &Value) -> String {
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn block_stop(index: usize) -> String {
    event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    )
}

/// The head of a text stream: the message, a text block, and `texts` as its deltas.
fn text_head(texts: &[String]) -> Vec<String> {
    let mut events = vec![
        start(),
        block_start(0, &json!({"type": "text", "text": ""})),
    ];
    events.extend(
        texts
            .iter()
            .map(|t| delta(0, &json!({"type": "text_delta", "text": t}))),
    );
    events
}

fn end(stop: &str, u: &Usage) -> Vec<String> {
    vec![
        event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                    "usage": {"output_tokens": u.output_tokens, "input_tokens": u.input_tokens}}),
        ),
        event("message_stop", &json!({"type": "message_stop"})),
    ]
}

fn sse(events: Vec<String>) -> WireReply {
    WireReply::stream("text/event-stream", events).header("request-id", "req_kit")
}

fn error_type(class: ErrorClass) -> (u16, &'static str) {
    match class {
        ErrorClass::InvalidRequest | ErrorClass::ContextLength => (400, "invalid_request_error"),
        ErrorClass::Authentication => (401, "authentication_error"),
        ErrorClass::PermissionDenied => (403, "permission_error"),
        ErrorClass::NotFound => (404, "not_found_error"),
        ErrorClass::RateLimited => (429, "rate_limit_error"),
        ErrorClass::QuotaExhausted => (400, "billing_error"),
        ErrorClass::Overloaded => (529, "overloaded_error"),
        _ => (500, "api_error"),
    }
}

/// What the Messages API sends for each class.
fn error(class: ErrorClass, message: &str) -> WireReply {
    let body = |status: u16, kind: &str, message: &str| {
        WireReply::json(
            status,
            &json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_kit"}),
        )
    };
    match class {
        ErrorClass::ContextLength => body(
            400,
            "invalid_request_error",
            &format!("prompt is too long: 210000 tokens > 200000 maximum ({message})"),
        ),
        ErrorClass::RateLimited => body(429, "rate_limit_error", message)
            .header("retry-after", RETRY_AFTER.as_secs().to_string()),
        ErrorClass::HtmlPage => WireReply::whole(
            502,
            "text/html",
            format!("<html><body><h1>502 Bad Gateway</h1>{message}</body></html>"),
        ),
        ErrorClass::NonJson => {
            WireReply::whole(500, "text/plain", format!("upstream failed: {message}"))
        }
        other => {
            let (status, kind) = error_type(other);
            body(status, kind, message)
        }
    }
}

impl Harness for AnthropicHarness {
    fn driver(&self, setup: &Setup) -> Arc<dyn DriverUnderTest> {
        let driver = AnthropicDriver::builder()
            .base_url(setup.base_url.clone())
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
                message(json!([{"type": "text", "text": text}]), "end_turn", usage)
            }
            Scenario::ToolCalls { calls, usage } => {
                message(Value::Array(tool_use(calls)), "tool_use", usage)
            }
            Scenario::Structured { value } => message(
                json!([{"type": "text", "text": value.to_string()}]),
                "end_turn",
                &Usage::new(1, 1),
            ),
            Scenario::Reasoning {
                reasoning,
                text,
                usage,
            } => message(
                json!([
                    {"type": "thinking", "thinking": reasoning, "signature": "EqQBkit=="},
                    {"type": "text", "text": text}
                ]),
                "end_turn",
                usage,
            ),
            Scenario::Stream { deltas, usage: u } => {
                let mut events = text_head(deltas);
                events.push(block_stop(0));
                events.extend(end("end_turn", u));
                sse(events)
            }
            Scenario::StreamToolCalls { calls } => {
                // One block per call, its input in two pieces (the API never interleaves
                // blocks).
                let mut events = vec![start()];
                for (i, c) in calls.iter().enumerate() {
                    let half = c.arguments.len() / 2;
                    events.push(block_start(
                        i,
                        &json!({"type": "tool_use", "id": c.id, "name": c.name, "input": {}}),
                    ));
                    for piece in [&c.arguments[..half], &c.arguments[half..]] {
                        events.push(delta(
                            i,
                            &json!({"type": "input_json_delta", "partial_json": piece}),
                        ));
                    }
                    events.push(block_stop(i));
                }
                events.extend(end("tool_use", &Usage::new(11, 7)));
                sse(events)
            }
            Scenario::Error {
                class: ErrorClass::ContentFilter,
                ..
            } => {
                // A refusal is a reply (`stop_reason: refusal`), not an error.
                return Arrange::Unsupported("the Messages API has no content-filter error");
            }
            Scenario::Error { class, message } => error(*class, message),
            Scenario::StreamCut { deltas, after } => {
                sse(text_head(&deltas[..*after])).then(Step::Cut)
            }
            Scenario::StreamError {
                deltas,
                after,
                class,
                message,
            } => {
                let mut events = text_head(&deltas[..*after]);
                let (_, kind) = error_type(*class);
                events.push(event(
                    "error",
                    &json!({"type": "error", "error": {"type": kind, "message": message}}),
                ));
                sse(events)
            }
            Scenario::StreamStall { deltas, after } => {
                sse(text_head(&deltas[..*after])).then(Step::Stall)
            }
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
    let report = nova_llm_conformance::run(&AnthropicHarness).await;
    report.assert_passed();
    // Everything applies but the one error class the API does not have.
    let skipped: Vec<_> = report
        .results()
        .iter()
        .filter(|r| r.outcome != nova_llm_conformance::Outcome::Passed)
        .collect();
    assert_eq!(skipped.len(), 1, "{report}");
}
