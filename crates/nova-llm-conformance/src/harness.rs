//! What a driver author supplies: the driver, set up as the kit asks, and the double of
//! its service.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{ApiKey, LlmDriver};

use crate::scenario::Scenario;
use crate::wire::WireReply;

/// A driver the kit can test: any [`LlmDriver`] that can be shown with `Debug` (the kit
/// checks that its key never shows).
pub trait DriverUnderTest: LlmDriver + fmt::Debug {}

impl<T: LlmDriver + fmt::Debug> DriverUnderTest for T {}

/// How the kit wants the driver set up for a check.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Setup {
    /// The loopback double's address, `http://127.0.0.1:PORT` with no path: point the
    /// driver's base URL there (with the path prefix your service uses, such as `/v1`).
    pub base_url: String,
    /// The key to send. The kit checks it never shows in `Debug`, `Display` or errors.
    pub api_key: ApiKey,
    /// The longest silence between stream chunks before the stream fails (the driver's
    /// idle timeout).
    pub stream_idle_timeout: Duration,
    /// The largest response body the driver reads.
    pub max_response_bytes: usize,
}

/// How a scenario is arranged for the driver's next call.
#[non_exhaustive]
#[derive(Debug)]
pub enum Arrange {
    /// An HTTP driver: the loopback double sends this reply to the next request.
    Wire(WireReply),
    /// An in-process driver (a test double): the harness arranged it itself.
    Arranged,
    /// The scenario cannot happen with this service (reasoning on a service without it, a
    /// stall on a driver without I/O): the checks that need it are skipped, saying why.
    Unsupported(&'static str),
}

/// A driver under test and the double of its service.
///
/// For an HTTP driver, [`driver`](Harness::driver) points it at the kit's loopback double
/// and [`arrange`](Harness::arrange) says what the service sends on the wire for each
/// [`Scenario`]; the kit checks what the driver makes of it. For an in-process driver
/// (a mock), `arrange` scripts the driver itself and answers [`Arrange::Arranged`].
pub trait Harness: Send + Sync {
    /// The driver, set up as `setup` says. Called once for each check.
    fn driver(&self, setup: &Setup) -> Arc<dyn DriverUnderTest>;

    /// Arranges for the driver's next call to meet `scenario` (the driver last made by
    /// [`driver`](Harness::driver)).
    fn arrange(&self, scenario: &Scenario) -> Arrange;
}
