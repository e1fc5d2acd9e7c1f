//! The time a request spends in its driver (waiting for the service), so the gateway can
//! tell its own added latency apart: the handler's time less this.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, CompletionRequest, CompletionResponse,
    LlmDriver, LlmError,
};
use tokio::time::Instant;

tokio::task_local! {
    /// The driver time of the request this task serves.
    static UPSTREAM: Cell<Duration>;
}

/// Runs `f` counting the driver time spent in it; returns its output and that time. Work
/// a request shares with others (a cache's single flight led by another request) counts
/// for the request that ran it.
pub(crate) async fn measure<F: Future>(f: F) -> (F::Output, Duration) {
    UPSTREAM
        .scope(Cell::new(Duration::ZERO), async move {
            let out = f.await;
            (out, UPSTREAM.with(Cell::get))
        })
        .await
}

fn add(d: Duration) {
    // Outside `measure` (a test calling a provider directly) there is nothing to count.
    let _ = UPSTREAM.try_with(|c| c.set(c.get() + d));
}

/// A driver whose calls count toward [`measure`]: a plain call until its reply, a stream
/// until it is open (the service's time to its first byte).
pub(crate) struct Timed {
    inner: Arc<dyn LlmDriver>,
}

impl std::fmt::Debug for Timed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timed")
            .field("driver", &self.inner.name())
            .finish()
    }
}

impl Timed {
    pub(crate) fn new(inner: Arc<dyn LlmDriver>) -> Self {
        Timed { inner }
    }
}

async fn timed<T>(f: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    add(start.elapsed());
    out
}

#[async_trait]
impl LlmDriver for Timed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        timed(self.inner.chat(request)).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        timed(self.inner.chat_stream(request)).await
    }

    async fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, LlmError> {
        timed(self.inner.complete(request)).await
    }

    async fn complete_stream(&self, request: CompletionRequest) -> Result<ChatStream, LlmError> {
        timed(self.inner.complete_stream(request)).await
    }
}
