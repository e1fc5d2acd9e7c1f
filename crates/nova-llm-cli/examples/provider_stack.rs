//! A provider with a cache, a rate limit, retries and a fallback over any driver, and the
//! events it emits. Runs on mocks (the primary one fails on purpose):
//! `cargo run -p nova-llm-cli --example provider_stack`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{ErrorKind, LlmDriver, LlmError};
use nova_llm_mock::MockDriver;
use nova_llm_provider::cache::CacheLayer;
use nova_llm_provider::fallback::FallbackLayer;
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_provider::retry::RetryLayer;
use nova_llm_provider::{EventKind, Provider};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let primary = MockDriver::builder().name("primary").build();
    let backup = MockDriver::builder().name("backup").build();
    // The primary fails twice: its retry fails too, so the backup answers.
    primary.push_error(LlmError::new(ErrorKind::Overloaded, "busy"));
    primary.push_error(LlmError::new(ErrorKind::Overloaded, "still busy"));

    let provider = Provider::builder(primary.clone())
        .cache(CacheLayer::in_memory(1_000, Some(Duration::from_secs(600))))
        .rate_limit(
            RateLimitLayer::new()
                .requests_per_minute(60)
                .max_in_flight(4),
        )
        .retry(
            RetryLayer::new()
                .max_attempts(2)
                .backoff(Duration::from_millis(10), Duration::from_millis(50)),
        )
        .fallback(FallbackLayer::new().then(Arc::new(backup.clone()), None))
        .build();
    println!("layers: {:?}", provider.layers());
    let mut events = provider.subscribe();

    println!("1st: {}", provider.prompt("What is 2 + 2?").await.unwrap());
    println!("2nd: {}", provider.prompt("What is 2 + 2?").await.unwrap()); // from the cache
    for e in events.drain() {
        match e.kind {
            EventKind::Completed(c) => println!(
                "  {} completed in {:?}, from cache: {}",
                e.request_id, c.latency, c.from_cache
            ),
            other => println!("  {} {other:?}", e.request_id),
        }
    }
    assert_eq!((primary.calls(), backup.calls()), (2, 1));
}
