//! Retry, fallback, circuit breaking and timeouts, on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{
    ErrorKind, FinishReason, LlmDriver, LlmError, StreamEvent, Usage, collect_stream, next_event,
};
use nova_llm_mock::{MockDriver, Reply, ScriptedStream};
use tokio::time::Instant;

use super::req;
use crate::circuit::CircuitConfig;
use crate::fallback::FallbackLayer;
use crate::retry::{RetryBudget, RetryLayer};
use crate::timeout::TimeoutLayer;
use crate::{Event, EventKind, Provider};

fn err(kind: ErrorKind) -> LlmError {
    LlmError::new(kind, format!("{kind}"))
}

fn named(name: &str) -> MockDriver {
    MockDriver::builder().name(name).build()
}

fn retry() -> RetryLayer {
    RetryLayer::new()
        .max_attempts(3)
        .backoff(Duration::from_millis(100), Duration::from_secs(2))
        .jitter_seed(1)
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RetryScheduled { attempt, error, .. } => {
                Some(format!("retry#{attempt}:{error:?}"))
            }
            EventKind::Fallback { to, error } => Some(format!("fallback:{to}:{error:?}")),
            EventKind::CircuitOpened { driver } => Some(format!("open:{driver}")),
            EventKind::CircuitClosed { driver } => Some(format!("closed:{driver}")),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_server_error_then_success_is_retried() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone()).retry(retry()).build();
    let mut rx = p.subscribe();
    mock.push_error(err(ErrorKind::Server));
    mock.push_error(err(ErrorKind::Overloaded));
    let start = Instant::now();
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
    assert_eq!(mock.calls(), 3);
    // Full jitter: each wait is at most its exponential bound (100 ms, then 200 ms).
    assert!(start.elapsed() <= Duration::from_millis(300));
    assert_eq!(kinds(&rx.drain()), ["retry#2:Server", "retry#3:Overloaded"]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_exactly_and_too_long_a_one_ends_the_retries() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .retry(retry().max_retry_after(Duration::from_secs(10)))
        .build();
    mock.push_error(err(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(7)));
    let start = Instant::now();
    p.prompt("q").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(7));

    // The maximum itself is still honoured.
    mock.push_error(err(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(10)));
    let start = Instant::now();
    p.prompt("q").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(10));

    mock.push_error(err(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(30)));
    let e = p.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(
        mock.calls(),
        5,
        "not retried: 30 s is more than the 10 s allowed"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_that_cannot_succeed_later_are_never_retried() {
    for kind in [
        ErrorKind::QuotaExceeded,
        ErrorKind::InvalidRequest,
        ErrorKind::Authentication,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::ContentFiltered,
    ] {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone()).retry(retry()).build();
        mock.push_error(err(kind));
        assert_eq!(p.prompt("q").await.unwrap_err().kind(), kind);
        assert_eq!(mock.calls(), 1, "{kind:?} was retried");
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_and_the_deadline_bound_the_retries() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone()).retry(retry()).build();
    for _ in 0..5 {
        mock.push_error(err(ErrorKind::Server));
    }
    assert_eq!(p.prompt("q").await.unwrap_err().kind(), ErrorKind::Server);
    assert_eq!(mock.calls(), 3);

    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .retry(
            retry()
                .max_attempts(10)
                .backoff(Duration::from_secs(1), Duration::from_secs(1))
                .deadline(Duration::from_secs(5)),
        )
        .build();
    for _ in 0..10 {
        mock.push(Reply::error_kind(ErrorKind::Timeout, "slow").after(Duration::from_secs(2)));
    }
    let start = Instant::now();
    assert_eq!(p.prompt("q").await.unwrap_err().kind(), ErrorKind::Timeout);
    assert!(
        start.elapsed() <= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(mock.calls() <= 3);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_lets_every_attempt_start_that_can_start_before_it() {
    // Each attempt fails after 2 s and asks for 1 s: attempts start at 0, 3 and 6 s; the
    // fourth would start at 9 s, which is the deadline, so the call ends at 8 s with the
    // service's own error (not a timeout: no attempt was cut short).
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .retry(retry().max_attempts(10).deadline(Duration::from_secs(9)))
        .build();
    for _ in 0..10 {
        let refused = err(ErrorKind::RateLimited).with_retry_after(Duration::from_secs(1));
        mock.push(Reply::error(refused).after(Duration::from_secs(2)));
    }
    let start = Instant::now();
    assert_eq!(
        p.prompt("q").await.unwrap_err().kind(),
        ErrorKind::RateLimited
    );
    assert_eq!(mock.calls(), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn every_call_earns_a_share_of_a_retry() {
    // A quarter of a retry per call (exact in binary), a reserve of 3.
    let layer = retry()
        .max_attempts(5)
        .budget(RetryBudget::new(0.25, 3.0, 10.0));
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone()).retry(layer.clone()).build();
    for _ in 0..1000 {
        mock.push_error(err(ErrorKind::Server));
    }
    p.prompt("q").await.unwrap_err();
    // The first call had 3.25: three retries, a quarter left.
    assert_eq!(mock.calls(), 4);
    assert!((layer.current_budget().balance() - 0.25).abs() < 1e-9);
    for _ in 0..48 {
        p.prompt("q").await.unwrap_err();
    }
    // 48 more calls earn 12 retries, one every fourth call.
    assert_eq!(mock.calls() - 49, 3 + 12);
    assert!((layer.current_budget().balance() - 0.25).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn the_budget_stops_a_retry_storm() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .retry(
            retry()
                .max_attempts(5)
                .budget(RetryBudget::new(0.1, 3.0, 10.0)),
        )
        .build();
    for _ in 0..1000 {
        mock.push_error(err(ErrorKind::Server));
    }
    for _ in 0..50 {
        p.prompt("q").await.unwrap_err();
    }
    // 50 calls; retries at most the reserve (3) plus 10 % of the calls (5).
    let retries = mock.calls() - 50;
    assert!(retries <= 8, "{retries} retries");
    assert!(retries >= 3);
}

#[tokio::test(start_paused = true)]
async fn a_stream_is_retried_only_before_its_first_content() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone()).retry(retry()).build();
    // Fails before any content: retried, the caller sees a clean stream.
    mock.push_stream(ScriptedStream::new().fail_after(0, err(ErrorKind::Connection)));
    mock.push_error(err(ErrorKind::Overloaded));
    let s = p.chat_stream(req("q")).await.unwrap();
    assert_eq!(collect_stream(s).await.unwrap().text(), "f(q)");
    assert_eq!(mock.calls(), 3);

    // Fails after content: not retried; the error carries what arrived.
    mock.push_stream(
        ScriptedStream::new()
            .text("half ")
            .usage(Usage::new(3, 1))
            .text("done")
            .finish(FinishReason::Stop)
            .fail_after(2, err(ErrorKind::Connection)),
    );
    let s = p.chat_stream(req("q")).await.unwrap();
    let e = collect_stream(s).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StreamInterrupted);
    let partial = e.partial().unwrap();
    assert_eq!(partial.text, "half ");
    assert_eq!(partial.usage, Some(Usage::new(3, 1)));
    assert_eq!(mock.calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn fallback_goes_through_the_chain_in_order_after_the_retries() {
    let primary = named("primary");
    let second = named("second");
    let third = named("third");
    let p = Provider::builder(primary.clone())
        .fallback(
            FallbackLayer::new()
                .then(Arc::new(second.clone()), Some("m2"))
                .then(Arc::new(third.clone()), None),
        )
        .retry(retry().max_attempts(2))
        .build();
    assert_eq!(p.layers(), ["events", "fallback", "retry"]);
    let mut rx = p.subscribe();
    for _ in 0..2 {
        primary.push_error(err(ErrorKind::Server));
        second.push_error(err(ErrorKind::Overloaded));
    }
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
    assert_eq!((primary.calls(), second.calls(), third.calls()), (2, 2, 1));
    assert_eq!(
        second.last_chat_request().unwrap().model.as_deref(),
        Some("m2")
    );
    assert_eq!(
        kinds(&rx.drain()),
        [
            "retry#2:Server",
            "fallback:second/m2:Server",
            "retry#2:Overloaded",
            "fallback:third:Overloaded"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn error_specific_chains_and_non_retryable_errors() {
    let primary = named("primary");
    let general = named("general");
    let big = named("big");
    let lenient = named("lenient");
    let p = Provider::builder(primary.clone())
        .fallback(
            FallbackLayer::new()
                .then(Arc::new(general.clone()), None)
                .on_context_length(Arc::new(big.clone()), Some("gpt-4.1"))
                .on_content_filter(Arc::new(lenient.clone()), None),
        )
        .build();
    primary.push_error(err(ErrorKind::ContextLengthExceeded));
    p.prompt("q").await.unwrap();
    assert_eq!((general.calls(), big.calls()), (0, 1));
    primary.push_error(err(ErrorKind::ContentFiltered));
    p.prompt("q").await.unwrap();
    assert_eq!((general.calls(), lenient.calls()), (0, 1));
    // Not retryable and not configured: no fallback.
    primary.push_error(err(ErrorKind::Authentication));
    assert_eq!(
        p.prompt("q").await.unwrap_err().kind(),
        ErrorKind::Authentication
    );
    assert_eq!(general.calls(), 0);

    // Unless asked for.
    let p = Provider::builder(primary.clone())
        .fallback(
            FallbackLayer::new()
                .then(Arc::new(general.clone()), None)
                .also_on(ErrorKind::Authentication),
        )
        .build();
    primary.push_error(err(ErrorKind::Authentication));
    p.prompt("q").await.unwrap();
    assert_eq!(general.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_falls_back_before_its_first_content_and_not_after() {
    let primary = named("primary");
    let backup = named("backup");
    let p = Provider::builder(primary.clone())
        .fallback(FallbackLayer::new().then(Arc::new(backup.clone()), None))
        .build();
    primary.push_stream(ScriptedStream::new().fail_after(0, err(ErrorKind::Server)));
    let s = p.chat_stream(req("q")).await.unwrap();
    assert_eq!(collect_stream(s).await.unwrap().text(), "f(q)");
    assert_eq!(backup.calls(), 1);

    primary.push_stream(
        ScriptedStream::new()
            .text("partial answer")
            .text(" more")
            .finish(FinishReason::Stop)
            .fail_after(1, err(ErrorKind::Server)),
    );
    let mut s = p.chat_stream(req("q")).await.unwrap();
    assert!(matches!(
        next_event(&mut s).await,
        Some(Ok(StreamEvent::TextDelta { .. }))
    ));
    let e = next_event(&mut s).await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(e.partial().unwrap().text, "partial answer");
    assert!(next_event(&mut s).await.is_none());
    assert_eq!(backup.calls(), 1, "no switch after content");
}

#[tokio::test(start_paused = true)]
async fn a_context_length_chain_goes_on_to_its_next_larger_model() {
    let primary = named("primary");
    let big = named("big");
    let bigger = named("bigger");
    let p = Provider::builder(primary.clone())
        .fallback(
            FallbackLayer::new()
                .on_context_length(Arc::new(big.clone()), Some("gpt-4.1"))
                .on_context_length(Arc::new(bigger.clone()), Some("gemini-long")),
        )
        .build();
    let mut rx = p.subscribe();
    primary.push_error(err(ErrorKind::ContextLengthExceeded));
    big.push_error(err(ErrorKind::ContextLengthExceeded));
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
    assert_eq!((primary.calls(), big.calls(), bigger.calls()), (1, 1, 1));
    assert_eq!(
        kinds(&rx.drain()),
        [
            "fallback:big/gpt-4.1:ContextLengthExceeded",
            "fallback:bigger/gemini-long:ContextLengthExceeded"
        ]
    );

    // The last one overflows too: its error is the call's.
    for d in [&primary, &big, &bigger] {
        d.push_error(err(ErrorKind::ContextLengthExceeded));
    }
    assert_eq!(
        p.prompt("q").await.unwrap_err().kind(),
        ErrorKind::ContextLengthExceeded
    );
    assert_eq!((primary.calls(), big.calls(), bigger.calls()), (2, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn the_context_and_content_chains_are_each_entered_once_per_call() {
    // The larger model always filters, the lenient one always overflows: without a bound
    // the call would go back and forth between the two chains for ever.
    let primary = named("primary");
    let big = named("big");
    let lenient = named("lenient");
    let p = Provider::builder(primary.clone())
        .fallback(
            FallbackLayer::new()
                .on_context_length(Arc::new(big.clone()), None)
                .on_content_filter(Arc::new(lenient.clone()), None),
        )
        .build();
    primary.push_error(err(ErrorKind::ContextLengthExceeded));
    for _ in 0..50 {
        big.push_error(err(ErrorKind::ContentFiltered));
        lenient.push_error(err(ErrorKind::ContextLengthExceeded));
    }
    let e = tokio::time::timeout(Duration::from_secs(60), p.prompt("q"))
        .await
        .expect("the call ends")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    assert_eq!((primary.calls(), big.calls(), lenient.calls()), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_circuit_opens_probes_after_its_cooldown_and_closes() {
    let primary = named("primary");
    let backup = named("backup");
    let fallback = FallbackLayer::new()
        .then(Arc::new(backup.clone()), None)
        .circuit_breaker(
            CircuitConfig::default()
                .consecutive_failures(3)
                .cooldown(Duration::from_secs(10), Duration::from_secs(60)),
        );
    let p = Provider::builder(primary.clone())
        .fallback(fallback.clone())
        .build();
    let mut rx = p.subscribe();
    for _ in 0..3 {
        primary.push_error(err(ErrorKind::Server));
        p.prompt("q").await.unwrap();
    }
    assert!(fallback.breaker("primary").unwrap().is_open());
    // Open: the primary is skipped.
    p.prompt("q").await.unwrap();
    assert_eq!((primary.calls(), backup.calls()), (3, 4));
    // After the cooldown one probe goes; it fails: open again for twice as long.
    tokio::time::advance(Duration::from_secs(10)).await;
    primary.push_error(err(ErrorKind::Server));
    p.prompt("q").await.unwrap();
    assert_eq!(primary.calls(), 4);
    tokio::time::advance(Duration::from_secs(10)).await;
    p.prompt("q").await.unwrap();
    assert_eq!(
        primary.calls(),
        4,
        "still open: the cooldown doubled to 20 s"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    // This probe succeeds: closed.
    p.prompt("q").await.unwrap();
    assert_eq!(primary.calls(), 5);
    assert!(!fallback.breaker("primary").unwrap().is_open());
    p.prompt("q").await.unwrap();
    assert_eq!(primary.calls(), 6);
    let k = kinds(&rx.drain());
    assert_eq!(
        k.iter().filter(|e| e.starts_with("open:primary")).count(),
        2
    );
    assert_eq!(k.last().map(String::as_str), Some("closed:primary"));
}

/// A provider whose driver's circuit opens when half of the calls of the last 60 s failed
/// (once there are 4), never on failures in a row.
fn ratio_breaker() -> (MockDriver, FallbackLayer, Provider) {
    let primary = named("primary");
    let fallback = FallbackLayer::new().circuit_breaker(
        CircuitConfig::default()
            .consecutive_failures(100)
            .failure_ratio(0.5, Duration::from_secs(60), 4),
    );
    let p = Provider::builder(primary.clone())
        .fallback(fallback.clone())
        .build();
    (primary, fallback, p)
}

#[tokio::test(start_paused = true)]
async fn a_failure_ratio_opens_the_circuit_too() {
    let (primary, fallback, p) = ratio_breaker();
    // ok, fail, ok, fail: the 4th call fills the window, and 2 of 4 failed.
    for i in 0..4 {
        if i % 2 == 1 {
            primary.push_error(err(ErrorKind::Server));
        }
        let _ = p.prompt("q").await;
    }
    assert!(fallback.breaker("primary").unwrap().is_open());
}

#[tokio::test(start_paused = true)]
async fn a_failure_ratio_under_the_threshold_leaves_the_circuit_closed() {
    let (primary, fallback, p) = ratio_breaker();
    // ok, fail, ok, ok, ok, ok: never as many as half of the window failed.
    for i in 0..6 {
        if i == 1 {
            primary.push_error(err(ErrorKind::Server));
        }
        let _ = p.prompt("q").await;
        assert!(!fallback.breaker("primary").unwrap().is_open(), "call {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn outcomes_older_than_the_window_no_longer_count() {
    let (primary, fallback, p) = ratio_breaker();
    for _ in 0..2 {
        primary.push_error(err(ErrorKind::Server));
        p.prompt("q").await.unwrap_err();
    }
    tokio::time::advance(Duration::from_secs(61)).await;
    // Counting the two old failures this would be 3 of 6; in the window it is 1 of 4.
    for i in 0..4 {
        if i == 3 {
            primary.push_error(err(ErrorKind::Server));
        }
        let _ = p.prompt("q").await;
    }
    assert!(!fallback.breaker("primary").unwrap().is_open());
    // Two more failures: 2 of 5, still closed; then 3 of 6, half the window: open.
    primary.push_error(err(ErrorKind::Server));
    p.prompt("q").await.unwrap_err();
    assert!(!fallback.breaker("primary").unwrap().is_open());
    primary.push_error(err(ErrorKind::Server));
    p.prompt("q").await.unwrap_err();
    assert!(fallback.breaker("primary").unwrap().is_open());
}

#[tokio::test(start_paused = true)]
async fn while_a_probe_is_out_other_calls_wait_at_most_a_second() {
    use crate::circuit::{Admit, CircuitBreaker};

    let breaker = CircuitBreaker::new(
        CircuitConfig::default()
            .consecutive_failures(1)
            .cooldown(Duration::from_secs(5), Duration::from_secs(5)),
    );
    assert_eq!(breaker.admit(), Admit::Yes);
    breaker.record(false);
    assert_eq!(
        breaker.admit(),
        Admit::No {
            until: Instant::now() + Duration::from_secs(5)
        }
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(breaker.admit(), Admit::Probe);
    // The probe has not answered: the others are told to look again in a second (less
    // than the cooldown), not sent.
    assert_eq!(
        breaker.admit(),
        Admit::No {
            until: Instant::now() + Duration::from_secs(1)
        }
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_circuit_is_open_the_call_fails_fast_naming_them_or_waits() {
    let primary = named("primary");
    let backup = named("backup");
    let config = CircuitConfig::default()
        .consecutive_failures(1)
        .cooldown(Duration::from_secs(30), Duration::from_secs(60));
    let layer = || {
        FallbackLayer::new()
            .then(Arc::new(backup.clone()), None)
            .circuit_breaker(config)
    };
    let p = Provider::builder(primary.clone()).fallback(layer()).build();
    primary.push_error(err(ErrorKind::Server));
    backup.push_error(err(ErrorKind::Server));
    p.prompt("q").await.unwrap_err();
    let e = p.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert!(e.message().contains("primary (may recover in 30s)"), "{e}");
    assert!(e.message().contains("backup"), "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!((primary.calls(), backup.calls()), (1, 1));

    let p = Provider::builder(primary.clone())
        .fallback(layer().wait_when_all_open(true))
        .build();
    primary.push_error(err(ErrorKind::Server));
    backup.push_error(err(ErrorKind::Server));
    p.prompt("q").await.unwrap_err();
    let start = Instant::now();
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_lets_the_next_call_probe() {
    let primary = named("primary");
    let fallback = FallbackLayer::new().circuit_breaker(
        CircuitConfig::default()
            .consecutive_failures(1)
            .cooldown(Duration::from_secs(5), Duration::from_secs(5)),
    );
    let p = Provider::builder(primary.clone())
        .fallback(fallback)
        .build();
    primary.push_error(err(ErrorKind::Server));
    p.prompt("q").await.unwrap_err();
    tokio::time::advance(Duration::from_secs(5)).await;
    primary.push(Reply::default_after(Duration::from_secs(100)));
    let probe = tokio::time::timeout(Duration::from_secs(1), p.prompt("q")).await;
    assert!(probe.is_err(), "the probe was cancelled");
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
}

#[tokio::test(start_paused = true)]
async fn timeouts_per_attempt_first_chunk_and_gap() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .timeout(
            TimeoutLayer::new()
                .total(Duration::from_secs(10))
                .first_chunk(Duration::from_secs(2))
                .gap(Duration::from_secs(1)),
        )
        .retry(retry())
        .build();
    assert_eq!(p.layers(), ["events", "retry", "timeout"]);

    // A plain attempt past its total is a timeout, and retried.
    mock.push(Reply::default_after(Duration::from_secs(20)));
    let start = Instant::now();
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
    assert!(start.elapsed() >= Duration::from_secs(10));
    assert_eq!(mock.calls(), 2);

    // No first content within 2 s: the attempt times out and is retried.
    mock.push_stream(
        ScriptedStream::new()
            .text("late")
            .finish(FinishReason::Stop)
            .gap(Duration::from_secs(3)),
    );
    let s = p.chat_stream(req("q")).await.unwrap();
    assert_eq!(collect_stream(s).await.unwrap().text(), "f(q)");
    assert_eq!(mock.calls(), 4);

    // A stall after content: the stream ends with a timeout carrying the partial text.
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .event(StreamEvent::text("b"))
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(900)),
    );
    let s = p.chat_stream(req("q")).await.unwrap();
    assert_eq!(
        collect_stream(s).await.unwrap().text(),
        "ab",
        "900 ms gaps pass"
    );
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .text("b")
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(1500)),
    );
    let first_chunk_ok = p.chat_stream(req("q")).await.unwrap();
    let e = collect_stream(first_chunk_ok).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StreamInterrupted, "{e}");
    assert_eq!(e.cause_kind(), Some(ErrorKind::Timeout));
    assert_eq!(e.partial().unwrap().text, "a");
    assert!(cause(&e).contains("gap timeout"), "{e}");
}

/// The text of the error that interrupted a stream.
fn cause(e: &LlmError) -> String {
    std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
}

#[tokio::test(start_paused = true)]
async fn a_gap_or_a_total_limit_alone_still_watches_the_stream() {
    let slow = || {
        ScriptedStream::new()
            .text("a")
            .text("b")
            .text("c")
            .text("d")
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(1500))
    };

    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .timeout(TimeoutLayer::new().gap(Duration::from_secs(1)))
        .build();
    mock.push_stream(slow());
    let e = collect_stream(p.chat_stream(req("q")).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.cause_kind(), Some(ErrorKind::Timeout));
    assert!(cause(&e).contains("gap timeout"), "{e}");
    assert_eq!(e.partial().unwrap().text, "a");

    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .timeout(TimeoutLayer::new().total(Duration::from_secs(4)))
        .build();
    mock.push_stream(slow());
    let start = Instant::now();
    let e = collect_stream(p.chat_stream(req("q")).await.unwrap())
        .await
        .unwrap_err();
    assert!(cause(&e).contains("total time limit"), "{e}");
    // Events at 1.5, 3 and 4.5 s: two arrived in time.
    assert_eq!(e.partial().unwrap().text, "ab");
    assert_eq!(start.elapsed(), Duration::from_secs(4));
}
