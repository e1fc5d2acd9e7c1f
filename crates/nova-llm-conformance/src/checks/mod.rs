//! The checks, one concern a file, and what they share: a fresh driver and an arranged
//! scenario per check, and a bound on each so that a hanging driver fails instead of
//! hanging the test.

mod errors;
mod replies;
mod safety;
mod streams;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nova_llm_core::{
    ApiKey, ChatRequest, ChatResponse, ChatStream, Dialog, LlmDriver, LlmError, StreamEvent,
    next_event,
};
use serde_json::Value;

use crate::harness::{Arrange, DriverUnderTest, Harness, Setup};
use crate::report::{Outcome, Report};
use crate::scenario::Scenario;
use crate::server::Server;

/// The key every driver is given: the kit checks it never shows.
pub(crate) const KEY: &str = "sk-conformance-SECRET-0123456789";

/// The longest a check may take before it fails (a driver that hangs).
const CHECK_LIMIT: Duration = Duration::from_secs(30);

/// The longest the kit waits for the double to see what a driver must do (a request, a
/// hang-up: on loopback, a matter of milliseconds).
pub(crate) const SEEN_LIMIT: Duration = Duration::from_secs(3);

/// What a check gives back: `Ok` when the driver behaved, else what was wrong; or a skip.
pub(crate) type Verdict = Result<Outcome, String>;

/// The kit's state for one run.
pub(crate) struct Kit<'h> {
    pub(crate) harness: &'h dyn Harness,
    pub(crate) server: Server,
    report: Mutex<Report>,
}

/// A driver made for one check, with its scenario arranged.
pub(crate) struct Prepared {
    pub(crate) driver: Arc<dyn DriverUnderTest>,
    /// Whether the loopback double answers (an HTTP driver), rather than the harness.
    pub(crate) wire: bool,
}

impl<'h> Kit<'h> {
    pub(crate) fn new(harness: &'h dyn Harness, server: Server) -> Self {
        Kit {
            harness,
            server,
            report: Mutex::default(),
        }
    }

    pub(crate) fn setup(&self) -> Setup {
        Setup {
            base_url: self.server.url().to_owned(),
            api_key: ApiKey::new(KEY),
            stream_idle_timeout: Duration::from_secs(1),
            max_response_bytes: 1 << 20,
        }
    }

    /// A fresh driver with `scenario` arranged for its next call; `Err(why)` when the
    /// harness cannot arrange it.
    pub(crate) fn prepare(&self, scenario: &Scenario) -> Result<Prepared, String> {
        let driver = self.harness.driver(&self.setup());
        let wire = match self.harness.arrange(scenario) {
            Arrange::Wire(reply) => {
                self.server.arrange(reply);
                true
            }
            Arrange::Arranged => false,
            Arrange::Unsupported(why) => return Err(why.to_owned()),
        };
        Ok(Prepared { driver, wire })
    }

    /// Runs one check under the time bound and notes its outcome.
    pub(crate) async fn check<F>(&self, name: &str, check: F)
    where
        F: Future<Output = Verdict>,
    {
        let outcome = match tokio::time::timeout(CHECK_LIMIT, check).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(why)) => Outcome::Failed(why),
            Err(_) => Outcome::Failed(format!("did not finish within {CHECK_LIMIT:?}")),
        };
        self.report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name, outcome);
    }

    pub(crate) async fn run_all(self) -> Report {
        replies::run(&self).await;
        streams::run(&self).await;
        errors::run(&self).await;
        safety::run(&self).await;
        self.report
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fresh driver with `$scenario` arranged, or the check returns its skip.
macro_rules! prepared {
    ($kit:expr, $scenario:expr) => {
        match $kit.prepare($scenario) {
            Ok(p) => p,
            Err(why) => return $crate::checks::skipped(why),
        }
    };
}
pub(crate) use prepared;

impl Prepared {
    /// A plain call of the simple request.
    pub(crate) async fn reply(&self) -> Result<ChatResponse, String> {
        self.driver
            .chat(request())
            .await
            .map_err(|e| format!("the call failed: {e}"))
    }

    /// A streamed call of the simple request.
    pub(crate) async fn stream(&self) -> Result<ChatStream, String> {
        self.driver
            .chat_stream(request())
            .await
            .map_err(|e| format!("the stream call failed: {e}"))
    }
}

/// A simple request, as every check sends one.
pub(crate) fn request() -> ChatRequest {
    ChatRequest::new(Dialog::new().user("What does the conformance kit check?"))
}

/// `Ok(Passed)` if `ok`, else the failure `why`.
pub(crate) fn expect(ok: bool, why: impl FnOnce() -> String) -> Verdict {
    if ok { Ok(Outcome::Passed) } else { Err(why()) }
}

/// A skip, for a scenario the harness cannot arrange.
pub(crate) fn skipped(why: String) -> Verdict {
    Ok(Outcome::Skipped(why))
}

/// Every item of `stream` until it ends or fails: the events, and the error if any.
pub(crate) async fn drain(mut stream: ChatStream) -> (Vec<StreamEvent>, Option<LlmError>) {
    let mut events = Vec::new();
    while let Some(item) = next_event(&mut stream).await {
        match item {
            Ok(event) => events.push(event),
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

/// The text of the text deltas among `events`.
pub(crate) fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Whether two JSON texts hold the same value (tool arguments may differ in spacing).
pub(crate) fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Whether `calls` are `want`: same ids, names and argument values, in order.
pub(crate) fn same_calls(
    calls: &[nova_llm_core::ToolCall],
    want: &[nova_llm_core::ToolCall],
) -> bool {
    calls.len() == want.len()
        && calls
            .iter()
            .zip(want)
            .all(|(c, w)| c.id == w.id && c.name == w.name && same_json(&c.arguments, &w.arguments))
}
