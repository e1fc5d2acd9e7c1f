//! The provider's added cost per call, measured side by side with the bare mock driver in
//! the same run: a plain chat and a streamed chat read to the end, through the bare mock,
//! through a provider with only an empty chain, with the default features (events and
//! metrics), and with a subscriber attached as well; then the difference measured directly,
//! bare and provider calls interleaved. Run with
//! `cargo bench -p nova-llm-provider`; figures and method are in BENCHMARKS.md.

// A benchmark panics on a broken fixture, like a test does.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nova_llm_core::{ChatRequest, Dialog, FinishReason, LlmDriver, collect_stream};
use nova_llm_mock::{MockDriver, ScriptedStream};
use nova_llm_provider::cache::{CacheKey, CacheLayer};
use nova_llm_provider::context::{Estimator, TokenCounter, TrimStrategy, trim, trim_counted};
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_provider::{Operation, Provider};
use tokio::runtime::Runtime;

fn request() -> ChatRequest {
    ChatRequest::new(
        Dialog::new()
            .system("You are a helpful assistant.")
            .user("What is the capital of France?"),
    )
    .model("gpt-4o-mini")
}

/// One compared setup: its label, the driver called, the mock at the bottom (reset after
/// every call so its request log stays small), and the provider to subscribe to, if any.
struct Setup {
    label: &'static str,
    driver: Arc<dyn LlmDriver>,
    mock: MockDriver,
    subscribe: Option<Provider>,
}

fn setups() -> Vec<Setup> {
    let m = [
        MockDriver::new(),
        MockDriver::new(),
        MockDriver::new(),
        MockDriver::new(),
    ];
    let chain_only = Provider::builder(m[1].clone())
        .without("events")
        .metrics(false)
        .build();
    let default = Provider::new(m[2].clone());
    let subscribed = Provider::new(m[3].clone());
    vec![
        Setup {
            label: "bare_mock",
            driver: Arc::new(m[0].clone()),
            mock: m[0].clone(),
            subscribe: None,
        },
        Setup {
            label: "provider_empty_chain",
            driver: Arc::new(chain_only),
            mock: m[1].clone(),
            subscribe: None,
        },
        Setup {
            label: "provider_events_metrics",
            driver: Arc::new(default),
            mock: m[2].clone(),
            subscribe: None,
        },
        Setup {
            label: "provider_events_metrics_subscriber",
            driver: Arc::new(subscribed.clone()),
            mock: m[3].clone(),
            subscribe: Some(subscribed),
        },
    ]
}

fn per_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let req = request();
    for (kind, stream) in [("chat", false), ("stream", true)] {
        let mut g = c.benchmark_group(format!("provider_overhead_{kind}"));
        for s in setups() {
            let mut rx = s.subscribe.as_ref().map(Provider::subscribe);
            g.bench_function(s.label, |b| {
                b.iter(|| {
                    call(&rt, &*s.driver, &req, stream);
                    if let Some(rx) = rx.as_mut() {
                        // A subscriber that keeps up: it reads what each call emitted.
                        black_box(rx.drain());
                    }
                    s.mock.reset();
                })
            });
        }
        g.finish();
    }
}

/// The added time per call measured directly: every iteration makes one call through the
/// bare mock and one through the provider, timed separately and interleaved, and reports
/// the provider's total minus the bare total. Interleaving cancels the slow drift of a
/// shared, virtualised machine, which separate benchmarks (run one after the other) do not.
fn added(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let req = request();
    let all = setups();
    let bare = &all[0];
    let mut g = c.benchmark_group("provider_added_per_call");
    for s in &all[1..] {
        let mut rx = s.subscribe.as_ref().map(Provider::subscribe);
        for (kind, stream) in [("chat", false), ("stream", true)] {
            g.bench_function(format!("{kind}/{}", s.label), |b| {
                b.iter_custom(|iters| {
                    let (mut base, mut with) = (Duration::ZERO, Duration::ZERO);
                    for _ in 0..iters {
                        let t0 = Instant::now();
                        call(&rt, &*bare.driver, &req, stream);
                        let t1 = Instant::now();
                        call(&rt, &*s.driver, &req, stream);
                        if let Some(rx) = rx.as_mut() {
                            black_box(rx.drain());
                        }
                        let t2 = Instant::now();
                        base += t1 - t0;
                        with += t2 - t1;
                        bare.mock.reset();
                        s.mock.reset();
                    }
                    with.saturating_sub(base)
                })
            });
        }
    }
    g.finish();
}

/// One call through `driver`: a plain chat, or a stream read to its end.
fn call(rt: &Runtime, driver: &dyn LlmDriver, req: &ChatRequest, stream: bool) {
    let reply = if stream {
        rt.block_on(async { collect_stream(driver.chat_stream(req.clone()).await?).await })
    } else {
        rt.block_on(driver.chat(black_box(req.clone())))
    };
    black_box(reply.unwrap());
}

/// Cache and rate-limit figures: a hit on a small request, the key of a 1 MB dialog, and
/// what an unlimited-so-far rate limiter adds to a call (interleaved as above).
fn cache_and_limits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let req = request();

    let mut g = c.benchmark_group("cache_hit");
    let cache_only = Provider::builder(MockDriver::new())
        .without("events")
        .metrics(false)
        .cache(CacheLayer::in_memory(10_000, None))
        .build();
    let with_events = Provider::builder(MockDriver::new())
        .cache(CacheLayer::in_memory(10_000, None))
        .build();
    for (label, p) in [
        ("cache_only", cache_only),
        ("with_events_metrics", with_events),
    ] {
        rt.block_on(p.chat(req.clone())).unwrap();
        g.bench_function(format!("chat/{label}"), |b| {
            b.iter(|| rt.block_on(p.chat(black_box(req.clone()))).unwrap())
        });
        g.bench_function(format!("stream/{label}"), |b| {
            b.iter(|| call(&rt, &p, &req, true))
        });
    }
    g.finish();

    // 100 rows of 10,000 characters: 1 MB of text.
    let row = "The quick brown fox jumps over the lazy dog. ".repeat(223);
    let mut dialog = Dialog::new().system("You summarize long documents.");
    for i in 0..100 {
        dialog = if i % 2 == 0 {
            dialog.user(&row[..10_000])
        } else {
            dialog.assistant(&row[..10_000])
        };
    }
    let big = ChatRequest::new(dialog).model("gpt-4o-mini");
    let mut g = c.benchmark_group("cache_key");
    g.throughput(Throughput::Bytes(1_000_000));
    g.bench_function("dialog_1mb", |b| {
        b.iter(|| CacheKey::new("openai", Operation::Chat, black_box(&big)))
    });
    g.finish();

    let all = setups();
    let bare = &all[1]; // the provider with an empty chain
    let mock = MockDriver::new();
    let limited = Provider::builder(mock.clone())
        .without("events")
        .metrics(false)
        .rate_limit(
            // A request window, a limit on calls in flight and the adaptive checks, none of
            // them reached. (The window is short so that figures stay comparable with those
            // taken when the window kept one entry per request; grouped, a window holds at
            // most 65 entries whatever its length.)
            RateLimitLayer::new()
                .requests(1_000_000_000, Duration::from_millis(10))
                .max_in_flight(1_000),
        )
        .build();
    let mut g = c.benchmark_group("rate_limit_added_per_call");
    g.bench_function("chat/not_limited", |b| {
        b.iter_custom(|iters| {
            let (mut base, mut with) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..iters {
                let t0 = Instant::now();
                call(&rt, &*bare.driver, &req, false);
                let t1 = Instant::now();
                call(&rt, &limited, &req, false);
                let t2 = Instant::now();
                base += t1 - t0;
                with += t2 - t1;
                bare.mock.reset();
                mock.reset();
            }
            with.saturating_sub(base)
        })
    });
    g.finish();
}

/// The stack of the whole-stack load benchmark (`tests/load`) on one thread: events,
/// metrics, a rate limiter that never limits and a cache on its miss path (every prompt
/// differs, so every call is looked up, sent, stored and evicts an older entry), interleaved
/// with the bare mock answering the same prompts.
fn load_stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let bare = MockDriver::new();
    let mock = MockDriver::new();
    let stack = Provider::builder(mock.clone())
        .rate_limit(
            // Short window: see `rate_limit_added_per_call`.
            RateLimitLayer::new()
                .requests(1_000_000_000, Duration::from_millis(10))
                .max_in_flight(10_000),
        )
        .cache(CacheLayer::in_memory(1_000, None))
        .build();
    let mut n = 0_u64;
    let mut g = c.benchmark_group("load_stack_added_per_call");
    g.bench_function("chat/cache_miss", |b| {
        b.iter_custom(|iters| {
            let (mut base, mut with) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..iters {
                n += 1;
                let req = ChatRequest::new(Dialog::new().user(format!("request {n}")))
                    .model("gpt-4o-mini");
                let t0 = Instant::now();
                call(&rt, &bare, &req, false);
                let t1 = Instant::now();
                call(&rt, &stack, &req, false);
                let t2 = Instant::now();
                base += t1 - t0;
                with += t2 - t1;
                bare.reset();
                mock.reset();
            }
            with.saturating_sub(base)
        })
    });
    g.finish();
}

/// Trimming a 10,000-row dialog to half its tokens: counting every row (what the `context`
/// layer does per request) and with the counts already known (what a `Conversation` does).
fn trimming(c: &mut Criterion) {
    let mut dialog = Dialog::new().system("You are a helpful assistant.");
    for i in 0..5_000 {
        dialog = dialog
            .user(format!(
                "Question number {i}: what about the next step of the plan?"
            ))
            .assistant(format!(
                "Answer number {i}: the next step is to review the draft."
            ));
    }
    let counts: Vec<usize> = dialog
        .messages()
        .iter()
        .map(|m| Estimator.count_message(m))
        .collect();
    let budget = counts.iter().sum::<usize>() / 2;
    let mut g = c.benchmark_group("trim_10k_rows");
    g.throughput(Throughput::Elements(10_001));
    g.bench_function("count_and_trim", |b| {
        b.iter(|| {
            trim(
                black_box(&dialog),
                budget,
                &Estimator,
                TrimStrategy::DropOldest,
            )
            .unwrap()
        })
    });
    g.bench_function("trim_counted", |b| {
        b.iter(|| {
            trim_counted(
                black_box(&dialog),
                &counts,
                budget,
                TrimStrategy::DropOldest,
            )
            .unwrap()
        })
    });
    g.finish();
}

/// One streamed reply of 1,000 text deltas shared through the cache by four callers that
/// ask for it at once (one goes upstream, three join), each reading every event: events
/// delivered per second, over the whole run of a shared stream (the flight set up, the
/// upstream stream pumped, copies kept for the callers behind and for the store, the
/// reply stored). Each iteration asks a new question, so each is a miss.
fn shared_stream(c: &mut Criterion) {
    const EVENTS: usize = 1_000;
    const READERS: usize = 4;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .without("events")
        .metrics(false)
        .cache(CacheLayer::in_memory(100, None))
        .build();
    let script = (0..EVENTS)
        .fold(ScriptedStream::new(), |s, i| s.text(format!("w{i} ")))
        .finish(FinishReason::Stop);
    let mut n = 0_u64;
    let mut g = c.benchmark_group("cache_shared_stream");
    g.throughput(Throughput::Elements(((EVENTS + 1) * READERS) as u64));
    g.bench_function("4_readers_1000_events", |b| {
        b.iter(|| {
            n += 1;
            mock.reset();
            mock.push_stream(script.clone());
            let req = ChatRequest::new(Dialog::new().user(format!("q{n}")));
            rt.block_on(async {
                let reads = (0..READERS).map(|_| async {
                    let s = p.chat_stream(req.clone()).await.unwrap();
                    collect_stream(s).await.unwrap().text().len()
                });
                let lens = futures_util::future::join_all(reads).await;
                black_box(lens);
            });
            assert_eq!(mock.calls(), 1, "one upstream call per question");
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    per_call,
    added,
    cache_and_limits,
    shared_stream,
    load_stack,
    trimming
);
criterion_main!(benches);
