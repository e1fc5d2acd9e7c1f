//! # nova-llm-conformance
//!
//! One conformance kit that every nova-llm driver passes: the mock, the OpenAI driver,
//! each native driver, and yours. The promise of the driver tier is that a new driver is a
//! few dozen lines and gets every provider feature for free; that holds only if every
//! driver keeps the same contract, and this kit checks it, the same way for all of them.
//!
//! ## What it checks
//!
//! - **Replies:** text and usage come back; tool calls (two in one reply) assemble with
//!   their ids, names and arguments; a structured call returns the JSON value; reasoning
//!   comes back beside the text.
//! - **Streams:** the stream contract (exactly one finish, last; the text in order; usage
//!   reported), streamed tool calls assemble, a stream cut after some deltas, one with an
//!   error event mid-way, and one that stalls each end with a `StreamInterrupted` error
//!   carrying exactly the text received (the error's cause kind and retryability kept; the
//!   stall through the driver's idle timeout).
//! - **Errors:** twelve classes (invalid request, authentication, permission, not found,
//!   rate limited with `Retry-After`, quota exhausted, context length, content filter,
//!   overloaded, server error, a proxy's HTML page, a non-JSON body), each classified with
//!   its kind, status, retryability and retry-after, for a plain call and a streamed one
//!   (which fails the `chat_stream` call itself).
//! - **Safety:** the key never shows in `Debug`, `Display` or any error, even when the
//!   service echoes it; requests any service would reject are refused before anything is
//!   sent; a body over the size limit is an error and is not read whole; a dropped call or
//!   stream lets go of its connection.
//!
//! ## Writing a driver and running the kit
//!
//! 1. Write the driver: one required method, [`LlmDriver::chat`](nova_llm_core::LlmDriver);
//!    override `chat_stream` when the service streams.
//! 2. Write its harness ([`Harness`]): [`driver`](Harness::driver) builds the driver the
//!    way [`Setup`] says (base URL of the kit's loopback double, the key, the idle timeout,
//!    the size limit); [`arrange`](Harness::arrange) answers each [`Scenario`] as your
//!    service does on the wire ([`WireReply`], with [`Step`]s to cut or stall), or says it
//!    cannot happen with your service ([`Arrange::Unsupported`]; those checks are
//!    skipped, and say why).
//! 3. Run it in a test: `run(&harness).await.assert_passed()`. The report lists every
//!    check; a failure says what the driver did instead. Run it on a current-thread runtime
//!    with the clock running (`#[tokio::test]`): the idle-timeout check pauses the clock.
//!
//! The smallest driver, the one of the core crate's page, passes the parts that apply to
//! it (it cannot be told what to answer, so the scenarios are skipped; what any driver
//! must do still holds):
//!
//! ```
//! use std::sync::Arc;
//! use nova_llm_conformance::{Arrange, DriverUnderTest, Harness, Outcome, Scenario, Setup};
//! use nova_llm_core::{async_trait, ChatRequest, ChatResponse, LlmDriver, LlmError, Usage};
//!
//! /// Answers every dialog with its last visible row, upper-cased.
//! #[derive(Debug)]
//! struct Shout;
//!
//! #[async_trait]
//! impl LlmDriver for Shout {
//!     fn name(&self) -> &str {
//!         "shout"
//!     }
//!
//!     async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
//!         request.validate()?;
//!         let last = request.dialog.last_visible().map(|m| m.text()).unwrap_or_default();
//!         Ok(ChatResponse::from_text(last.to_uppercase()).with_usage(Usage::new(1, 1)))
//!     }
//! }
//!
//! struct ShoutHarness;
//!
//! impl Harness for ShoutHarness {
//!     fn driver(&self, _setup: &Setup) -> Arc<dyn DriverUnderTest> {
//!         Arc::new(Shout)
//!     }
//!
//!     fn arrange(&self, _scenario: &Scenario) -> Arrange {
//!         Arrange::Unsupported("Shout always shouts the last row")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let report = nova_llm_conformance::run(&ShoutHarness).await;
//! report.assert_passed();
//! assert_eq!(report.outcome("stream_contract"), Some(&Outcome::Passed));
//! assert_eq!(report.outcome("refused_before_sending"), Some(&Outcome::Passed));
//! # }
//! ```
//!
//! An HTTP driver's harness answers on the wire; the OpenAI driver's
//! (`crates/nova-llm-openai/src/tests/conformance.rs`) is a complete example, and the mock's
//! (this crate's `tests/mock.rs`) one for an in-process driver.
#![doc(test(attr(deny(warnings))))]

mod checks;
mod harness;
mod report;
mod scenario;
mod server;
mod wire;

pub use harness::{Arrange, DriverUnderTest, Harness, Setup};
pub use report::{CheckResult, Outcome, Report};
pub use scenario::{ErrorClass, RETRY_AFTER, Scenario, fragments};
pub use wire::{Step, WireReply};

/// Runs every check against the driver `harness` makes, and reports each outcome.
///
/// If the loopback double cannot start (no loopback interface), every check fails saying
/// so.
pub async fn run(harness: &dyn Harness) -> Report {
    match server::Server::start().await {
        Ok(server) => checks::Kit::new(harness, server).run_all().await,
        Err(e) => {
            let mut report = Report::default();
            report.push(
                "loopback_double",
                Outcome::Failed(format!("could not listen on loopback: {e}")),
            );
            report
        }
    }
}
