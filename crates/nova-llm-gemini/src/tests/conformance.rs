//! The shared conformance kit, with a double of the Gemini API: every scenario answered as
//! Gemini answers it on the wire (whole responses as stream events, the finish on the last
//! one, Google's error bodies with their status words and details).

use std::sync::Arc;

use nova_llm_conformance::{
    Arrange, DriverUnderTest, ErrorClass, Harness, RETRY_AFTER, Scenario, Setup, Step, WireReply,
};
use nova_llm_core::{ToolCall, Usage};
use serde_json::{Value, json};

use crate::GeminiDriver;

struct GeminiHarness;

fn usage(u: &Usage) -> Value {
    json!({"promptTokenCount": u.input_tokens, "candidatesTokenCount": u.output_tokens,
           "totalTokenCount": u.input_tokens + u.output_tokens})
}

fn chunk(parts: Value, finish: Option<&str>, u: Option<&Usage>) -> Value {
    let mut c = json!({
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
        "modelVersion": "gemini-2.5-flash", "responseId": "resp-kit"
    });
    if let Some(f) = finish {
        c["candidates"][0]["finishReason"] = json!(f);
    }
    if let Some(u) = u {
        c["usageMetadata"] = usage(u);
    }
    c
}

fn whole(parts: Value, u: &Usage) -> WireReply {
    WireReply::json(200, &chunk(parts, Some("STOP"), Some(u)))
}

fn calls(calls: &[ToolCall]) -> Vec<Value> {
    calls
        .iter()
        .map(|c| {
            let args: Value = serde_json::from_str(&c.arguments).unwrap_or(json!({}));
            json!({"functionCall": {"id": c.id, "name": c.name, "args": args}})
        })
        .collect()
}

fn event(chunk: &Value) -> String {
    format!("data: {chunk}\r\n\r\n")
}

fn texts(deltas: &[String]) -> Vec<String> {
    deltas
        .iter()
        .map(|t| event(&chunk(json!([{"text": t}]), None, None)))
        .collect()
}

fn sse(events: Vec<String>) -> WireReply {
    WireReply::stream("text/event-stream", events)
}

fn google_error(code: u16, status: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}})
}

fn error_body(class: ErrorClass, message: &str) -> (u16, Value) {
    let e = |code, status, details| (code, google_error(code, status, message, details));
    match class {
        ErrorClass::InvalidRequest => e(400, "INVALID_ARGUMENT", json!([])),
        ErrorClass::Authentication => e(
            400,
            "INVALID_ARGUMENT",
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
        ),
        ErrorClass::PermissionDenied => e(403, "PERMISSION_DENIED", json!([])),
        ErrorClass::NotFound => e(404, "NOT_FOUND", json!([])),
        ErrorClass::RateLimited => e(
            429,
            "RESOURCE_EXHAUSTED",
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{}s", RETRY_AFTER.as_secs())}]),
        ),
        ErrorClass::QuotaExhausted => e(
            429,
            "RESOURCE_EXHAUSTED",
            json!([{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}]}]),
        ),
        ErrorClass::ContextLength => (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                &format!(
                    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576). {message}"
                ),
                json!([]),
            ),
        ),
        ErrorClass::Overloaded => e(503, "UNAVAILABLE", json!([])),
        _ => e(500, "INTERNAL", json!([])),
    }
}

impl Harness for GeminiHarness {
    fn driver(&self, setup: &Setup) -> Arc<dyn DriverUnderTest> {
        let driver = GeminiDriver::builder()
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
            Scenario::Text { text, usage } => whole(json!([{"text": text}]), usage),
            Scenario::ToolCalls { calls: c, usage } => whole(Value::Array(calls(c)), usage),
            Scenario::Structured { value } => {
                whole(json!([{"text": value.to_string()}]), &Usage::new(1, 1))
            }
            Scenario::Reasoning {
                reasoning,
                text,
                usage,
            } => whole(
                json!([
                    {"text": reasoning, "thought": true, "thoughtSignature": "sig-kit"},
                    {"text": text}
                ]),
                usage,
            ),
            Scenario::Stream { deltas, usage: u } => {
                let mut events = texts(deltas);
                events.push(event(&chunk(json!([]), Some("STOP"), Some(u))));
                sse(events)
            }
            Scenario::StreamToolCalls { calls: c } => {
                // Gemini sends each call whole, one chunk each; the finish on the last.
                let mut events: Vec<String> = calls(c)
                    .into_iter()
                    .map(|p| event(&chunk(json!([p]), None, None)))
                    .collect();
                events.push(event(&chunk(
                    json!([]),
                    Some("STOP"),
                    Some(&Usage::new(11, 7)),
                )));
                sse(events)
            }
            Scenario::Error {
                class: ErrorClass::ContentFilter,
                ..
            } => {
                // A blocked prompt is a 200 whose body (plain) or first event (stream) says
                // so; the double answers both calls alike, so the driver's own tests cover it.
                return Arrange::Unsupported(
                    "a blocked prompt is a 200 answered differently to plain and streamed calls",
                );
            }
            Scenario::Error { class, message } => match *class {
                ErrorClass::HtmlPage => WireReply::whole(
                    502,
                    "text/html",
                    format!("<html><body><h1>502 Bad Gateway</h1>{message}</body></html>"),
                ),
                ErrorClass::NonJson => {
                    WireReply::whole(500, "text/plain", format!("upstream failed: {message}"))
                }
                other => {
                    let (status, body) = error_body(other, message);
                    WireReply::json(status, &body)
                }
            },
            Scenario::StreamCut { deltas, after } => sse(texts(&deltas[..*after])).then(Step::Cut),
            Scenario::StreamError {
                deltas,
                after,
                class,
                message,
            } => {
                let mut events = texts(&deltas[..*after]);
                let (_, body) = error_body(*class, message);
                events.push(event(&body));
                sse(events)
            }
            Scenario::StreamStall { deltas, after } => {
                sse(texts(&deltas[..*after])).then(Step::Stall)
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
    let report = nova_llm_conformance::run(&GeminiHarness).await;
    report.assert_passed();
    let skipped: Vec<_> = report
        .results()
        .iter()
        .filter(|r| r.outcome != nova_llm_conformance::Outcome::Passed)
        .collect();
    assert_eq!(skipped.len(), 1, "{report}");
}
