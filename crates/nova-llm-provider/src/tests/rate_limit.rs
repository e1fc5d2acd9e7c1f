//! Rate limiting on tokio's paused clock: windows never exceeded under 1000 concurrent
//! tasks, FIFO order, fail-fast and maximum wait, token reconciliation, calls in flight,
//! cancellation without leaks, adaptive slowdown, per-model limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ErrorKind, FinishReason, LlmDriver, LlmError,
    RateLimitSnapshot, ResponseMetadata, StreamStart, Usage, async_trait, collect_stream,
    next_event, stream_from_events,
};
use nova_llm_mock::{MockDriver, Reply, ScriptedStream};
use tokio::time::Instant;

use super::req;
use crate::rate_limit::{
    Acquire, MemoryWindows, RateLimitBackend, RateLimitLayer, Ticket, WindowLimits,
};
use crate::{CallContext, EventKind, Provider};

/// A driver that notes when each call arrived and how many ran at once.
#[derive(Debug, Default)]
struct Clock {
    arrivals: Mutex<Vec<(Instant, String)>>,
    running: AtomicUsize,
    most: AtomicUsize,
    busy: Duration,
    usage: Option<Usage>,
}

#[async_trait]
impl LlmDriver for Clock {
    fn name(&self) -> &str {
        "clock"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let text = request
            .dialog
            .last_visible()
            .map(|m| m.text())
            .unwrap_or_default();
        self.arrivals.lock().unwrap().push((Instant::now(), text));
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.busy).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let reply = ChatResponse::from_text("ok");
        Ok(match self.usage {
            Some(u) => reply.with_usage(u),
            None => reply,
        })
    }
}

fn clock(busy: Duration, usage: Option<Usage>) -> Arc<Clock> {
    Arc::new(Clock {
        busy,
        usage,
        ..Clock::default()
    })
}

fn over(driver: &Arc<Clock>, limits: RateLimitLayer) -> Provider {
    Provider::builder_shared(driver.clone())
        .rate_limit(limits)
        .build()
}

#[tokio::test(start_paused = true)]
async fn no_window_ever_holds_more_than_the_limit_with_1000_concurrent_tasks() {
    let driver = clock(Duration::from_millis(3), None);
    let p = over(
        &driver,
        RateLimitLayer::new()
            .requests(10, Duration::from_secs(1))
            .max_wait(Duration::from_secs(1000)),
    );
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.chat(req(&i.to_string())).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let arrivals = driver.arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 1000);
    let times: Vec<Instant> = arrivals.iter().map(|a| a.0).collect();
    for w in times.windows(11) {
        assert!(
            w[10] - w[0] >= Duration::from_secs(1),
            "11 requests within {:?}",
            w[10] - w[0]
        );
    }
    // Fair: served in arrival order.
    let order: Vec<usize> = arrivals.iter().map(|a| a.1.parse().unwrap()).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "not first come first served"
    );
    // And not slower than the limit: 1000 requests at 10 per second take 99 s.
    assert!(times[999] - times[0] < Duration::from_secs(100));
}

#[tokio::test(start_paused = true)]
async fn fail_fast_refuses_a_call_over_the_in_flight_limit_at_once() {
    let driver = clock(Duration::from_secs(1), None);
    let p = over(&driver, RateLimitLayer::new().max_in_flight(1).fail_fast());
    let start = Instant::now();
    let (first, second) = tokio::join!(p.chat(req("a")), p.chat(req("b")));
    first.unwrap();
    let err = second.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(
        err.to_string().contains("too many calls in flight"),
        "{err}"
    );
    assert_eq!(driver.arrivals.lock().unwrap().len(), 1);
    assert_eq!(start.elapsed(), Duration::from_secs(1), "nobody waited");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_and_max_wait_reject_with_retry_after_and_an_event() {
    let driver = clock(Duration::ZERO, None);
    let p = over(
        &driver,
        RateLimitLayer::new().requests_per_minute(2).fail_fast(),
    );
    let mut rx = p.subscribe();
    p.chat(req("a")).await.unwrap();
    p.chat(req("b")).await.unwrap();
    let err = p.chat(req("c")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert!(err.to_string().contains("local rate limit"), "{err}");
    assert!(rx.drain().iter().any(|e| matches!(
        e.kind,
        EventKind::RateLimitRejected {
            retry_after: Some(_)
        }
    )));
    assert_eq!(driver.arrivals.lock().unwrap().len(), 2);

    let p = over(
        &driver,
        RateLimitLayer::new()
            .requests_per_minute(1)
            .max_wait(Duration::from_secs(30)),
    );
    p.chat(req("a")).await.unwrap();
    let err = p.chat(req("b")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
}

/// The lengths of the `RateLimitWait` events among `events`.
fn waits(events: Vec<crate::Event>) -> Vec<Duration> {
    events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::RateLimitWait { waited } => Some(waited),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn waits_are_reported_with_their_length() {
    let driver = clock(Duration::ZERO, None);
    let p = over(
        &driver,
        RateLimitLayer::new().requests(1, Duration::from_secs(2)),
    );
    let mut rx = p.subscribe();
    p.chat(req("a")).await.unwrap();
    p.chat(req("b")).await.unwrap();
    let waits = waits(rx.drain());
    assert_eq!(waits, [Duration::from_secs(2)]);
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute_are_estimated_then_corrected_with_real_usage() {
    let limits = || {
        RateLimitLayer::new()
            .tokens_per_minute(1000)
            .max_wait(Duration::from_secs(120))
    };
    // "q" is 1 token, plus 400 max output tokens: 401 estimated each.
    let request = || req("q").max_tokens(400);

    // The driver reports no usage: the estimates stay, the third call waits a minute.
    let driver = clock(Duration::ZERO, None);
    let p = over(&driver, limits());
    let start = Instant::now();
    for _ in 0..3 {
        p.chat(request()).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::from_secs(60));

    // Real usage of 20 tokens each replaces the estimates: no wait.
    let driver = clock(Duration::ZERO, Some(Usage::new(10, 10)));
    let p = over(&driver, limits());
    let start = Instant::now();
    for _ in 0..3 {
        p.chat(request()).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO);

    // A request larger than the limit could never pass: a clear error, no wait.
    let err = p.chat(req("q").max_tokens(5000)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.message().contains("tokens per minute"), "{err}");
    // One that needs the whole minute's tokens (1 + 999) can: it is the limit, not over it.
    let driver = clock(Duration::ZERO, Some(Usage::new(10, 10)));
    let p = over(&driver, limits());
    p.chat(req("q").max_tokens(999)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_together_each_correct_their_own_estimate() {
    let driver = clock(Duration::from_secs(1), Some(Usage::new(10, 10)));
    let p = over(
        &driver,
        RateLimitLayer::new()
            .tokens_per_minute(1000)
            .max_wait(Duration::from_secs(120)),
    );
    let request = || req("q").max_tokens(400);
    let start = Instant::now();
    let (a, b) = tokio::join!(p.chat(request()), p.chat(request()));
    a.unwrap();
    b.unwrap();
    // Both estimates (401 each) were replaced by the real 20: two more fit at once
    // (40 + 2 × 401 ≤ 1000), where one estimate left behind would make the last wait.
    let (c, d) = tokio::join!(p.chat(request()), p.chat(request()));
    c.unwrap();
    d.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn the_real_count_is_input_plus_output_tokens() {
    // Each reply reports 300 + 200 tokens, plain or streamed. A call estimated at 500
    // (1 + 499) fits beside the first reply exactly; then the minute holds 1,000 and the
    // smallest call waits for it to pass.
    for streamed in [false, true] {
        let driver = clock(Duration::ZERO, Some(Usage::new(300, 200)));
        let p = over(
            &driver,
            RateLimitLayer::new()
                .tokens_per_minute(1000)
                .max_wait(Duration::from_secs(120)),
        );
        let call = |max_tokens: u32| {
            let p = p.clone();
            async move {
                let r = req("q").max_tokens(max_tokens);
                if streamed {
                    collect_stream(p.chat_stream(r).await.unwrap())
                        .await
                        .unwrap();
                } else {
                    p.chat(r).await.unwrap();
                }
            }
        };
        let start = Instant::now();
        call(10).await;
        call(499).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "streamed: {streamed}");
        call(0).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(60),
            "streamed: {streamed}"
        );
    }
}

#[test]
fn a_request_without_a_maximum_is_counted_with_the_default_output() {
    // "q" is one token; the output is assumed to be 256 tokens unless told otherwise.
    assert_eq!(RateLimitLayer::new().estimate_tokens(&req("q")), 257);
    let layer = RateLimitLayer::new().default_output_tokens(10);
    assert_eq!(layer.estimate_tokens(&req("q")), 11);
    assert_eq!(layer.estimate_tokens(&req("q").max_tokens(40)), 41);
}

#[tokio::test(start_paused = true)]
async fn streams_correct_their_tokens_from_the_usage_event() {
    // The layer's own windows (asked directly) and windows given as a backend (asked
    // through the trait) alike.
    for given in [false, true] {
        let mock = MockDriver::new();
        let mut limits = RateLimitLayer::new().tokens_per_minute(1000);
        if given {
            limits = limits.backend(Arc::new(MemoryWindows::new()));
        }
        let p = Provider::builder(mock.clone()).rate_limit(limits).build();
        for _ in 0..3 {
            mock.push_stream(
                ScriptedStream::new()
                    .text("hi")
                    .usage(Usage::new(5, 5))
                    .finish(FinishReason::Stop),
            );
        }
        let start = Instant::now();
        for _ in 0..3 {
            let s = p.chat_stream(req("q").max_tokens(400)).await.unwrap();
            collect_stream(s).await.unwrap();
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "corrected to 10 tokens each (backend given: {given})"
        );
    }
}

/// A provider over `mock` allowing 1,000 tokens a minute, the service's signals ignored.
fn thousand_tokens_a_minute(mock: &MockDriver) -> Provider {
    Provider::builder(mock.clone())
        .rate_limit(
            RateLimitLayer::new()
                .tokens_per_minute(1000)
                .adaptive(false)
                .max_wait(Duration::from_secs(120)),
        )
        .build()
}

/// Two calls of about 401 tokens each at once, each answered after 1 s.
async fn two_together(p: &Provider, mock: &MockDriver) {
    for _ in 0..2 {
        mock.push(Reply::text("ok").after(Duration::from_secs(1)));
    }
    let (a, b) = tokio::join!(
        p.chat(req("q").max_tokens(400)),
        p.chat(req("q").max_tokens(400))
    );
    a.unwrap();
    b.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_call_the_service_refused_counts_no_tokens_plain_or_streamed() {
    // 1,000 tokens a minute, about 401 estimated a call: two refused calls (429, 400) must
    // give their estimates back, or the third would wait a minute. Adaptive behaviour off,
    // so the 429 itself holds nothing back.
    for streamed in [false, true] {
        let mock = MockDriver::new();
        let p = thousand_tokens_a_minute(&mock);
        mock.push_error(LlmError::new(ErrorKind::RateLimited, "slow down").with_status(429));
        mock.push_error(LlmError::new(ErrorKind::InvalidRequest, "bad").with_status(400));
        let start = Instant::now();
        for _ in 0..2 {
            let request = req("q").max_tokens(400);
            if streamed {
                assert!(p.chat_stream(request).await.is_err());
            } else {
                assert!(p.chat(request).await.is_err());
            }
        }
        // Both estimates given back: two more fit together (one left would make one wait).
        two_together(&p, &mock).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "streamed: {streamed}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_that_failed_otherwise_keeps_its_estimate() {
    // A server error may come after the model did the work: its 401 tokens stay counted,
    // so of two more calls together one waits for that estimate to leave the minute.
    let mock = MockDriver::new();
    let p = thousand_tokens_a_minute(&mock);
    mock.push_error(LlmError::new(ErrorKind::Server, "oops").with_status(500));
    let start = Instant::now();
    assert!(p.chat(req("q").max_tokens(400)).await.is_err());
    two_together(&p, &mock).await;
    // One went at once; the other at 60 s, when the estimate left the minute, and took 1 s.
    assert_eq!(start.elapsed(), Duration::from_secs(61));
}

/// A wait for a call slot is a wait too, even when the windows then let the call go at
/// once (as the layer's docs promise: `RateLimitWait` for every wait).
#[tokio::test(start_paused = true)]
async fn a_wait_for_a_call_slot_is_reported() {
    let driver = clock(Duration::from_secs(1), None);
    let p = over(&driver, RateLimitLayer::new().max_in_flight(1));
    let mut rx = p.subscribe();
    let (a, b) = tokio::join!(p.chat(req("a")), p.chat(req("b")));
    a.unwrap();
    b.unwrap();
    let waits = waits(rx.drain());
    assert_eq!(waits, [Duration::from_secs(1)]);
}

#[tokio::test(start_paused = true)]
async fn no_more_calls_in_flight_than_allowed() {
    let driver = clock(Duration::from_secs(1), None);
    let p = over(&driver, RateLimitLayer::new().max_in_flight(2));
    let start = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.chat(req(&i.to_string())).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(driver.most.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn cancelled_calls_leave_the_queue_and_give_back_their_slots() {
    let mock = MockDriver::new();
    let limits = RateLimitLayer::new()
        .max_in_flight(1)
        .requests(100, Duration::from_secs(1));
    let p = Provider::builder(mock.clone())
        .rate_limit(limits.clone())
        .build();

    // A running call cancelled gives its slot back.
    mock.push(Reply::default_after(Duration::from_secs(10)));
    let running = tokio::spawn({
        let p = p.clone();
        async move { p.chat(req("slow")).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(limits.available_slots(), Some(0));
    // A waiting call cancelled leaves the queue.
    let waiting = tokio::spawn({
        let p = p.clone();
        async move { p.chat(req("waits")).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    waiting.abort();
    running.abort();
    let _ = (waiting.await, running.await);
    assert_eq!(limits.available_slots(), Some(1));
    assert_eq!(p.chat(req("next")).await.unwrap().text(), "f(next)");

    // A stream dropped half way gives its slot back; one read to the end too.
    let mut s = p.chat_stream(req("s")).await.unwrap();
    next_event(&mut s).await.unwrap().unwrap();
    assert_eq!(limits.available_slots(), Some(0));
    drop(s);
    assert_eq!(limits.available_slots(), Some(1));
    let s = p.chat_stream(req("s")).await.unwrap();
    collect_stream(s).await.unwrap();
    assert_eq!(limits.available_slots(), Some(1));

    // Many cancellations in a row leak nothing.
    for _ in 0..50 {
        mock.push(Reply::default_after(Duration::from_secs(5)));
        let call = tokio::spawn({
            let p = p.clone();
            async move { p.chat(req("x")).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        call.abort();
        let _ = call.await;
    }
    mock.reset();
    assert_eq!(limits.available_slots(), Some(1));
}

fn with_headers(snapshot: RateLimitSnapshot) -> Reply {
    Reply::response(
        ChatResponse::from_text("ok")
            .with_metadata(ResponseMetadata::new().with_rate_limit(snapshot)),
    )
}

#[tokio::test(start_paused = true)]
async fn the_services_headers_and_retry_after_hold_calls_back() {
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .rate_limit(RateLimitLayer::new())
        .build();
    // No requests left until the window resets in 5 s.
    mock.push(with_headers(
        RateLimitSnapshot::new()
            .with_requests(Some(100), Some(0))
            .with_resets(Some(Duration::from_secs(5)), None),
    ));
    p.chat(req("a")).await.unwrap();
    let start = Instant::now();
    p.chat(req("b")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(5));

    // A 429 with Retry-After: 3 s.
    mock.push_error(
        LlmError::new(ErrorKind::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(Duration::from_secs(3)),
    );
    p.chat(req("c")).await.unwrap_err();
    let start = Instant::now();
    p.chat(req("d")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(3));

    // Few requests left (4 of 100, window resets in 50 s): calls are spaced 10 s apart.
    mock.push(with_headers(
        RateLimitSnapshot::new()
            .with_requests(Some(100), Some(4))
            .with_resets(Some(Duration::from_secs(50)), None),
    ));
    p.chat(req("e")).await.unwrap();
    // The next reply says plenty is left again: spacing stops after it.
    mock.push(with_headers(
        RateLimitSnapshot::new()
            .with_requests(Some(100), Some(90))
            .with_resets(Some(Duration::from_secs(50)), None),
    ));
    let start = Instant::now();
    p.chat(req("f")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    let start = Instant::now();
    p.chat(req("g")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);

    // Few left (1 of 100) for 4 s more: spaced 2 s apart, but only until the window ends.
    mock.push(with_headers(
        RateLimitSnapshot::new()
            .with_requests(Some(100), Some(1))
            .with_resets(Some(Duration::from_secs(4)), None),
    ));
    p.chat(req("h")).await.unwrap();
    let start = Instant::now();
    p.chat(req("i")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    tokio::time::advance(Duration::from_secs(3)).await;
    let start = Instant::now();
    p.chat(req("j")).await.unwrap();
    p.chat(req("k")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "the window ended");

    // A gap never runs past the window's end, where the service's count starts again:
    // "l" at T sets 2 s gaps until T + 4 s; "m" at T + 3.5 s goes at once; "n" would be due
    // at T + 5.5 s, but goes when the window ends, at T + 4 s.
    mock.push(with_headers(
        RateLimitSnapshot::new()
            .with_requests(Some(100), Some(1))
            .with_resets(Some(Duration::from_secs(4)), None),
    ));
    p.chat(req("l")).await.unwrap();
    tokio::time::advance(Duration::from_millis(3_500)).await;
    let start = Instant::now();
    p.chat(req("m")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    p.chat(req("n")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
}

/// A driver whose streams carry rate-limit headers on their `Start`.
#[derive(Debug)]
struct Exhausted;

#[async_trait]
impl LlmDriver for Exhausted {
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, LlmError> {
        Ok(ChatResponse::from_text("ok"))
    }

    async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, LlmError> {
        let snap = RateLimitSnapshot::new()
            .with_tokens(Some(1000), Some(0))
            .with_resets(None, Some(Duration::from_secs(7)));
        Ok(stream_from_events(vec![
            nova_llm_core::StreamEvent::start(
                StreamStart::new("s", "m")
                    .with_metadata(ResponseMetadata::new().with_rate_limit(snap)),
            ),
            nova_llm_core::StreamEvent::text("hi"),
            nova_llm_core::StreamEvent::finish(FinishReason::Stop),
        ]))
    }
}

#[tokio::test(start_paused = true)]
async fn stream_headers_are_learned_too() {
    let p = Provider::builder(Exhausted)
        .rate_limit(RateLimitLayer::new())
        .build();
    collect_stream(p.chat_stream(req("a")).await.unwrap())
        .await
        .unwrap();
    let start = Instant::now();
    p.chat(req("b")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn limits_can_be_per_model_and_adaptive_behaviour_off() {
    let driver = clock(Duration::ZERO, None);
    let p = over(
        &driver,
        RateLimitLayer::new().requests_per_minute(1).per_model(true),
    );
    let start = Instant::now();
    p.chat(req("a").model("m1")).await.unwrap();
    p.chat(req("b").model("m2")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    p.chat(req("c").model("m1")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(60));

    // Each model has its own waiting line: a call waiting for m1 holds up no call to m3.
    let start = Instant::now();
    let (waited, other) = tokio::join!(
        async {
            p.chat(req("d").model("m1")).await.unwrap();
            start.elapsed()
        },
        async {
            tokio::task::yield_now().await;
            p.chat(req("e").model("m3")).await.unwrap();
            start.elapsed()
        }
    );
    assert_eq!((waited, other), (Duration::from_secs(60), Duration::ZERO));

    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .rate_limit(RateLimitLayer::new().adaptive(false))
        .build();
    mock.push(with_headers(
        RateLimitSnapshot::new()
            .with_requests(Some(100), Some(0))
            .with_resets(Some(Duration::from_secs(5)), None),
    ));
    p.chat(req("a")).await.unwrap();
    let start = Instant::now();
    p.chat(req("b")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn the_layers_take_their_documented_places() {
    let p = Provider::builder(MockDriver::new())
        .rate_limit(RateLimitLayer::new())
        .cache(crate::cache::CacheLayer::in_memory(10, None))
        .build();
    assert_eq!(p.layers(), ["events", "cache", "rate_limit"]);
    let backend: Arc<dyn crate::rate_limit::RateLimitBackend> = Arc::new(MemoryWindows::new());
    let p = Provider::builder(MockDriver::new())
        .rate_limit(RateLimitLayer::new().backend(backend))
        .without("events")
        .cache(crate::cache::CacheLayer::in_memory(10, None))
        .build();
    assert_eq!(p.layers(), ["cache", "rate_limit"]);
}

#[tokio::test(start_paused = true)]
async fn a_request_window_keeps_at_most_65_entries_whatever_the_limit_and_rate() {
    let windows = Arc::new(MemoryWindows::new());
    let driver = clock(Duration::ZERO, None);
    let p = Provider::builder_shared(driver.clone())
        .rate_limit(
            RateLimitLayer::new()
                .requests(1_000_000_000, Duration::from_secs(1))
                .backend(windows.clone()),
        )
        .build();
    let start = Instant::now();
    let mut most = 0;
    for i in 0..5_000 {
        p.chat(req(&i.to_string())).await.unwrap();
        most = most.max(windows.request_entries(""));
        tokio::time::advance(Duration::from_millis(2)).await;
    }
    // 10 s of calls, 500 in each second: counted in groups of a 64th of the window.
    assert!(most <= 65, "{most} entries");
    assert!(most >= 60, "{most} entries: the window is not being used");
    // Nobody waited.
    assert_eq!(start.elapsed(), Duration::from_millis(2) * 5_000);
}

#[tokio::test(start_paused = true)]
async fn a_token_window_keeps_groups_and_only_the_estimates_not_yet_corrected() {
    let windows = Arc::new(MemoryWindows::new());
    let limits = || {
        RateLimitLayer::new()
            .tokens_per_minute(1_000_000_000)
            .backend(windows.clone())
    };
    // Every reply reports its usage: each estimate is corrected, then forgotten.
    let driver = clock(Duration::ZERO, Some(Usage::new(10, 10)));
    let p = over(&driver, limits());
    let mut most = (0, 0);
    for i in 0..5_000 {
        p.chat(req(&i.to_string())).await.unwrap();
        let (groups, estimates) = windows.token_entries("");
        most = (most.0.max(groups), most.1.max(estimates));
        tokio::time::advance(Duration::from_millis(20)).await;
    }
    assert!((60..=65).contains(&most.0), "{most:?}");
    assert_eq!(most.1, 0);

    // A call that never finishes keeps its estimate until it leaves the window.
    let slow = clock(Duration::from_secs(3600), None);
    let p = over(&slow, limits());
    let dropped = tokio::time::timeout(Duration::from_secs(1), p.chat(req("slow"))).await;
    assert!(dropped.is_err());
    assert_eq!(windows.token_entries("").1, 1);
    tokio::time::advance(Duration::from_secs(60)).await;
    let fast = clock(Duration::ZERO, Some(Usage::new(1, 1)));
    over(&fast, limits()).chat(req("next")).await.unwrap();
    assert_eq!(windows.token_entries("").1, 0);
}

/// When "c", sent after "a" and "b" under a limit of 2 per 64 s (slots of 1 s), reaches
/// the driver, counted from "a"; "b" comes `b_after` "a", "c" `c_after` "b".
async fn third_call_after(b_after: Duration, c_after: Duration) -> Duration {
    let driver = clock(Duration::ZERO, None);
    let p = over(
        &driver,
        RateLimitLayer::new()
            .requests(2, Duration::from_secs(64))
            .max_wait(Duration::from_secs(1000)),
    );
    p.chat(req("a")).await.unwrap();
    tokio::time::advance(b_after).await;
    p.chat(req("b")).await.unwrap();
    tokio::time::advance(c_after).await;
    p.chat(req("c")).await.unwrap();
    let arrivals = driver.arrivals.lock().unwrap();
    arrivals[2].0 - arrivals[0].0
}

#[tokio::test(start_paused = true)]
async fn requests_close_together_leave_the_window_together_never_early() {
    // Exactly, "c" could go when "a" leaves, at 64 s. Within a second of "a", "b" is
    // counted with it, and "c" goes when "b" leaves, at 64.5 s: later by less than a 64th
    // of the window, never earlier.
    assert_eq!(
        third_call_after(Duration::from_millis(500), Duration::from_millis(100)).await,
        Duration::from_millis(64_500)
    );
    // With a full slot between them, each request leaves on its own: exact.
    assert_eq!(
        third_call_after(Duration::from_millis(1_000), Duration::ZERO).await,
        Duration::from_secs(64)
    );
}

#[tokio::test(start_paused = true)]
async fn a_limit_of_zero_requests_is_a_clear_error() {
    let driver = clock(Duration::ZERO, None);
    let p = over(
        &driver,
        RateLimitLayer::new().requests(0, Duration::from_secs(1)),
    );
    let err = p.chat(req("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.message().contains("limit of 0 requests"), "{err}");
    assert!(driver.arrivals.lock().unwrap().is_empty());
}

/// A backend that takes `lag` to answer, as a shared store does: while one call awaits it,
/// others arrive. Counts the questions it was asked.
#[derive(Debug)]
struct Lagging {
    windows: MemoryWindows,
    lag: Duration,
    asked: AtomicUsize,
}

fn lagging(lag: Duration) -> Arc<Lagging> {
    Arc::new(Lagging {
        windows: MemoryWindows::new(),
        lag,
        asked: AtomicUsize::new(0),
    })
}

#[async_trait]
impl RateLimitBackend for Lagging {
    async fn try_acquire(
        &self,
        scope: &str,
        tokens: u64,
        limits: WindowLimits,
        cx: &CallContext,
    ) -> Result<Acquire, LlmError> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.lag).await;
        self.windows.try_acquire(scope, tokens, limits, cx).await
    }

    async fn reconcile(&self, scope: &str, ticket: Ticket, actual: u64) -> Result<(), LlmError> {
        tokio::time::sleep(self.lag).await;
        self.windows.reconcile(scope, ticket, actual).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_large_request_in_line_is_not_overtaken_by_a_small_one_that_would_fit() {
    // 1,000 tokens a minute. "a" (about 701) goes at once; "b" (about 601) must wait for
    // it to leave the minute; "c" (about 101) would fit beside "a" now, but "b" came
    // first: first come, first served, so "c" goes after "b". With a backend in memory
    // and with one that takes time to answer.
    for lag in [None, Some(Duration::from_millis(10))] {
        let driver = clock(Duration::from_secs(1), None);
        let mut limits = RateLimitLayer::new()
            .tokens_per_minute(1000)
            .adaptive(false)
            .max_wait(Duration::from_secs(120));
        if let Some(lag) = lag {
            limits = limits.backend(lagging(lag));
        }
        let p = over(&driver, limits);
        let start = Instant::now();
        let at = |after_ms: u64, text: &'static str, max_tokens: u32| {
            let p = p.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                p.chat(req(text).max_tokens(max_tokens)).await
            })
        };
        let calls = [at(0, "a", 700), at(100, "b", 600), at(200, "c", 100)];
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let arrivals = driver.arrivals.lock().unwrap();
        let order: Vec<&str> = arrivals.iter().map(|a| a.1.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"], "lag {lag:?}");
        // "b" and "c" both went once "a" left the minute.
        assert!(
            arrivals[2].0 - start >= Duration::from_secs(60),
            "lag {lag:?}: c went at {:?}",
            arrivals[2].0 - start
        );
    }
}

#[tokio::test(start_paused = true)]
async fn fail_fast_refuses_at_once_a_call_that_finds_another_in_line() {
    // A backend that takes 10 ms to answer, one request a minute, fail-fast. After "a",
    // "b" is refused by the backend's answer (twice asked: the fast path, then in line),
    // and "c", arriving while "b" is in line, is refused at once without asking.
    let backend = lagging(Duration::from_millis(10));
    let driver = clock(Duration::ZERO, None);
    let p = over(
        &driver,
        RateLimitLayer::new()
            .requests_per_minute(1)
            .fail_fast()
            .backend(backend.clone()),
    );
    p.chat(req("a")).await.unwrap();
    assert_eq!(backend.asked.load(Ordering::SeqCst), 1);
    let (b, c) = tokio::join!(p.chat(req("b")), async {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let start = Instant::now();
        let c = p.chat(req("c")).await;
        (c, start.elapsed())
    });
    let b = b.unwrap_err();
    assert!(b.message().contains("the limit is reached"), "{b}");
    // "a" leaves the minute 60 s after it was counted, 20 ms before "b" was refused.
    assert_eq!(b.retry_after(), Some(Duration::from_millis(59_980)));
    let (c, took) = c;
    let c = c.unwrap_err();
    assert_eq!(c.kind(), ErrorKind::RateLimited);
    assert!(c.message().contains("other calls are waiting"), "{c}");
    assert_eq!(took, Duration::ZERO, "refused at once");
    assert_eq!(backend.asked.load(Ordering::SeqCst), 3, "c asked nothing");
    assert_eq!(driver.arrivals.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fallback_target_keeps_limits_of_its_own() {
    // The first service says "come back in a minute"; the second is fine.
    let first = MockDriver::builder().name("first").build();
    let second = MockDriver::builder().name("second").build();
    let p = Provider::builder(first.clone())
        .fallback(crate::fallback::FallbackLayer::new().then(Arc::new(second.clone()), None))
        .rate_limit(RateLimitLayer::new().fail_fast())
        .build();
    first.push_error(
        LlmError::new(ErrorKind::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(Duration::from_secs(60)),
    );
    assert_eq!(p.prompt("a").await.unwrap(), "f(a)");
    assert_eq!((first.calls(), second.calls()), (1, 1));
    // The first service's hold-back does not hold the second back: the call is refused
    // locally for the first (no call made) and served by the second at once.
    let start = Instant::now();
    assert_eq!(p.prompt("b").await.unwrap(), "f(b)");
    assert_eq!((first.calls(), second.calls()), (1, 2));
    assert_eq!(start.elapsed(), Duration::ZERO);
    // A minute later the first is asked again.
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(p.prompt("c").await.unwrap(), "f(c)");
    assert_eq!((first.calls(), second.calls()), (2, 2));
}
