//! Unit tests of the provider, over the mock.

mod cache;
mod chain;
mod context;
mod events;
mod metrics;
mod prices;
mod rate_limit;
mod resilience;

use std::future::Future;

use nova_llm_core::{ChatRequest, Dialog};

/// A one-user-row request.
fn req(text: &str) -> ChatRequest {
    ChatRequest::new(Dialog::new().user(text))
}

/// Runs a future on a fresh current-thread runtime with timers.
fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}
