//! The mock runs the kit without HTTP: its scripted replies are its double.

use std::sync::{Arc, Mutex};

use nova_llm_conformance::{
    Arrange, DriverUnderTest, ErrorClass, Harness, Outcome, RETRY_AFTER, Scenario, Setup, fragments,
};
use nova_llm_core::{ChatResponse, FinishReason, LlmError, ToolCallDelta};
use nova_llm_mock::{MockDriver, Reply, ScriptedStream};

/// The mock's harness; `wrap` puts a deliberately wrong layer around it (see `wrong.rs`).
pub(crate) struct MockHarness {
    mock: Mutex<MockDriver>,
    wrap: Wrap,
}

/// What a test puts around the mock.
type Wrap = Box<dyn Fn(MockDriver, &Setup) -> Arc<dyn DriverUnderTest> + Send + Sync>;

impl MockHarness {
    pub(crate) fn new() -> Self {
        Self::wrapped(|m, _| Arc::new(m) as Arc<dyn DriverUnderTest>)
    }

    pub(crate) fn wrapped(
        wrap: impl Fn(MockDriver, &Setup) -> Arc<dyn DriverUnderTest> + Send + Sync + 'static,
    ) -> Self {
        MockHarness {
            mock: Mutex::new(MockDriver::new()),
            wrap: Box::new(wrap),
        }
    }
}

/// The status a service would send for `class` (the mock keeps what it is given).
fn status(class: ErrorClass) -> u16 {
    match class {
        ErrorClass::InvalidRequest | ErrorClass::ContextLength | ErrorClass::ContentFilter => 400,
        ErrorClass::Authentication => 401,
        ErrorClass::PermissionDenied => 403,
        ErrorClass::NotFound => 404,
        ErrorClass::RateLimited | ErrorClass::QuotaExhausted => 429,
        ErrorClass::Overloaded => 529,
        ErrorClass::HtmlPage => 502,
        _ => 500,
    }
}

fn texts(deltas: &[String]) -> ScriptedStream {
    deltas
        .iter()
        .fold(ScriptedStream::new(), |s, d| s.text(d.clone()))
}

impl Harness for MockHarness {
    fn driver(&self, setup: &Setup) -> Arc<dyn DriverUnderTest> {
        let mock = MockDriver::new();
        *self.mock.lock().unwrap() = mock.clone();
        (self.wrap)(mock, setup)
    }

    fn arrange(&self, scenario: &Scenario) -> Arrange {
        let mock = self.mock.lock().unwrap().clone();
        let reply = match scenario {
            Scenario::Text { text, usage } => {
                Reply::response(ChatResponse::from_text(text.clone()).with_usage(*usage))
            }
            Scenario::ToolCalls { calls, usage } => {
                Reply::response(ChatResponse::from_tool_calls(calls.clone()).with_usage(*usage))
            }
            Scenario::Structured { value } => Reply::json(value.clone()),
            Scenario::Reasoning {
                reasoning,
                text,
                usage,
            } => Reply::response(
                ChatResponse::from_text(text.clone())
                    .with_reasoning(reasoning.clone())
                    .with_usage(*usage),
            ),
            Scenario::Stream { deltas, usage } => {
                Reply::stream(texts(deltas).usage(*usage).finish(FinishReason::Stop))
            }
            Scenario::StreamToolCalls { calls } => {
                // Interleaved, ids and names repeated in every fragment.
                let s =
                    fragments(calls)
                        .into_iter()
                        .fold(ScriptedStream::new(), |s, (i, c, piece)| {
                            s.tool_call_delta(
                                ToolCallDelta::new(i)
                                    .with_id(c.id.clone())
                                    .with_name(c.name.clone())
                                    .with_arguments(piece),
                            )
                        });
                Reply::stream(s.finish(FinishReason::ToolCalls))
            }
            Scenario::Error { class, .. } => {
                // The mock is its own service: it has no key to echo.
                let mut err = LlmError::new(class.kind(), format!("mock: {class:?}"))
                    .with_status(status(*class));
                if *class == ErrorClass::RateLimited {
                    err = err.with_retry_after(RETRY_AFTER);
                }
                Reply::error(err)
            }
            Scenario::StreamCut { deltas, after } => Reply::stream(texts(&deltas[..*after])),
            Scenario::StreamError {
                deltas,
                after,
                class,
                message,
            } => Reply::stream(
                texts(deltas)
                    .finish(FinishReason::Stop)
                    .fail_after(*after, LlmError::new(class.kind(), message.clone())),
            ),
            Scenario::StreamStall { .. } => {
                return Arrange::Unsupported("the mock has no idle timeout of its own");
            }
            Scenario::Oversize { .. } => return Arrange::Unsupported("the mock reads no body"),
            _ => return Arrange::Unsupported("a scenario this harness does not know"),
        };
        mock.push(reply);
        Arrange::Arranged
    }
}

#[tokio::test]
async fn the_mock_passes_the_kit() {
    let report = nova_llm_conformance::run(&MockHarness::new()).await;
    report.assert_passed();
    // Every check ran, but those that need I/O.
    for r in report.results() {
        let io = matches!(
            r.name.as_str(),
            "idle_timeout" | "oversize_body" | "dropped_call" | "dropped_stream"
        );
        assert_eq!(
            matches!(r.outcome, Outcome::Skipped(_)),
            io,
            "{}: {:?}",
            r.name,
            r.outcome
        );
    }
    assert!(report.results().len() >= 25, "{report}");
}
