//! The kit fails a deliberately wrong driver on each rule: the mock with one flaw added
//! (the rules that hold without I/O), and a naive HTTP driver (the rules of I/O).

use std::sync::Arc;

use futures_util::StreamExt;
use nova_llm_conformance::{DriverUnderTest, Outcome, Report, Setup};
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ContentPart, ErrorKind, LlmDriver, LlmError,
    StreamEvent, Usage, async_trait,
};
use nova_llm_mock::MockDriver;

use super::mock::MockHarness;
use super::naive::NaiveHarness;

/// One way of being wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Replies without their usage.
    NoUsage,
    /// Loses the last tool call of a reply.
    LastCallLost,
    /// Wraps a JSON reply in prose.
    ProseAroundJson,
    /// Loses the reasoning.
    NoReasoning,
    /// Ends streams with two finishes.
    TwoFinishes,
    /// Puts every tool-call fragment under index 0.
    OneCallIndex,
    /// Finishes a stream that was cut.
    CutIsFinished,
    /// Hands a mid-stream error on as it came, not as an interrupted stream.
    RawMidStreamError,
    /// Interrupts every mid-stream error as retryable, whatever its cause.
    AlwaysRetryable,
    /// Takes a rate limit for a server error.
    RateLimitAsServer,
    /// Takes an exhausted quota for a rate limit (and retries it).
    QuotaAsRateLimit,
    /// Fails a stream with its first item instead of the call.
    ErrorAsFirstItem,
    /// Shows the key in `Debug`.
    KeyInDebug,
    /// Answers any request, valid or not.
    NoValidation,
}

/// The mock with one flaw.
struct Flawed {
    inner: MockDriver,
    flaw: Flaw,
    key: String,
}

impl std::fmt::Debug for Flawed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.flaw {
            Flaw::KeyInDebug => write!(f, "Flawed {{ key: {} }}", self.key),
            _ => write!(f, "Flawed {{ flaw: {:?} }}", self.flaw),
        }
    }
}

impl Flawed {
    fn reply(&self, mut r: ChatResponse) -> ChatResponse {
        match self.flaw {
            Flaw::NoUsage => r.usage = Usage::default(),
            Flaw::LastCallLost => {
                r.message.tool_calls.pop();
            }
            Flaw::ProseAroundJson => {
                r = ChatResponse::from_text(format!("Sure! Here it is: {}", r.text()));
            }
            Flaw::NoReasoning => r
                .message
                .content
                .retain(|p| !matches!(p, ContentPart::Reasoning(_))),
            _ => {}
        }
        r
    }

    fn error(&self, e: LlmError) -> LlmError {
        match (self.flaw, e.kind()) {
            (Flaw::RateLimitAsServer, ErrorKind::RateLimited) => {
                LlmError::new(ErrorKind::Server, e.message().to_owned()).with_status(500)
            }
            (Flaw::QuotaAsRateLimit, ErrorKind::QuotaExceeded) => {
                LlmError::new(ErrorKind::RateLimited, e.message().to_owned()).with_status(429)
            }
            _ => e,
        }
    }

    fn item(&self, item: Result<StreamEvent, LlmError>) -> Vec<Result<StreamEvent, LlmError>> {
        match (self.flaw, item) {
            (Flaw::TwoFinishes, Ok(finish @ StreamEvent::Finish { .. })) => {
                vec![Ok(finish.clone()), Ok(finish)]
            }
            (Flaw::OneCallIndex, Ok(StreamEvent::ToolCallDelta(mut d))) => {
                d.index = 0;
                vec![Ok(StreamEvent::ToolCallDelta(d))]
            }
            (Flaw::RawMidStreamError, Err(e)) if e.kind() == ErrorKind::StreamInterrupted => {
                let kind = e.cause_kind().unwrap_or(ErrorKind::Connection);
                vec![Err(LlmError::new(kind, "raw"))]
            }
            (Flaw::AlwaysRetryable, Err(e)) if e.kind() == ErrorKind::StreamInterrupted => {
                let partial = e.partial().cloned().unwrap_or_default();
                vec![Err(LlmError::stream_interrupted("cut", partial))]
            }
            (_, item) => vec![item],
        }
    }
}

#[async_trait]
impl LlmDriver for Flawed {
    fn name(&self) -> &str {
        "flawed"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        if self.flaw == Flaw::NoValidation {
            return Ok(ChatResponse::from_text("anything"));
        }
        match self.inner.chat(request).await {
            Ok(r) => Ok(self.reply(r)),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        if self.flaw == Flaw::NoValidation {
            return Ok(nova_llm_core::stream_from_events(
                ChatResponse::from_text("anything").to_events(),
            ));
        }
        let inner = match self.inner.chat_stream(request).await {
            Ok(s) => s,
            Err(e) if self.flaw == Flaw::ErrorAsFirstItem => {
                return Ok(nova_llm_core::stream_from_items(vec![Err(e)]));
            }
            Err(e) => return Err(self.error(e)),
        };
        let mut items: Vec<Result<StreamEvent, LlmError>> = inner.collect().await;
        let ends_unfinished = !matches!(items.last(), Some(Ok(StreamEvent::Finish { .. })))
            && !matches!(items.last(), Some(Err(_)));
        if self.flaw == Flaw::CutIsFinished && ends_unfinished {
            items.push(Ok(StreamEvent::finish(nova_llm_core::FinishReason::Stop)));
        }
        let items = items.into_iter().flat_map(|i| self.item(i)).collect();
        Ok(nova_llm_core::stream_from_items(items))
    }
}

async fn report_for(flaw: Flaw) -> Report {
    let harness = MockHarness::wrapped(move |mock: MockDriver, setup: &Setup| {
        Arc::new(Flawed {
            inner: mock,
            flaw,
            key: setup.api_key.expose().to_owned(),
        }) as Arc<dyn DriverUnderTest>
    });
    nova_llm_conformance::run(&harness).await
}

fn failed(report: &Report, check: &str) -> bool {
    matches!(report.outcome(check), Some(Outcome::Failed(_)))
}

#[tokio::test]
async fn each_flaw_of_a_driver_fails_its_rule() {
    let cases = [
        (Flaw::NoUsage, "text_and_usage"),
        (Flaw::LastCallLost, "tool_calls"),
        (Flaw::ProseAroundJson, "structured"),
        (Flaw::NoReasoning, "reasoning"),
        (Flaw::TwoFinishes, "stream_contract"),
        (Flaw::OneCallIndex, "streamed_tool_calls"),
        (Flaw::CutIsFinished, "cut_stream"),
        (Flaw::RawMidStreamError, "error_mid_stream/overloaded"),
        (Flaw::AlwaysRetryable, "error_mid_stream/invalid_request"),
        (Flaw::RateLimitAsServer, "error/rate_limited"),
        (Flaw::QuotaAsRateLimit, "error/quota_exhausted"),
        (Flaw::ErrorAsFirstItem, "error/authentication"),
        (Flaw::KeyInDebug, "key_never_shown"),
        (Flaw::NoValidation, "refused_before_sending"),
    ];
    for (flaw, check) in cases {
        let report = report_for(flaw).await;
        assert!(
            failed(&report, check),
            "{flaw:?} did not fail {check}:\n{report}"
        );
        assert!(!report.passed());
    }
}

/// The rules of I/O, on a naive HTTP driver that keeps none of them.
#[tokio::test]
async fn a_naive_http_driver_fails_the_rules_of_io() {
    let report = nova_llm_conformance::run(&NaiveHarness).await;
    for check in [
        "idle_timeout",
        "oversize_body",
        "dropped_call",
        "dropped_stream",
        "key_never_shown",
        "refused_before_sending",
    ] {
        assert!(failed(&report, check), "{check} did not fail:\n{report}");
    }
    // What it does right still passes: the kit does not fail everything.
    assert_eq!(
        report.outcome("text_and_usage"),
        Some(&Outcome::Passed),
        "{report}"
    );
}
