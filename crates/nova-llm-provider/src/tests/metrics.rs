//! Metrics and cost against hand-computed figures (tokio's paused clock makes latencies
//! exact), including streamed, estimated, cached, unpriced and dropped calls.

use std::collections::BTreeMap;
use std::time::Duration;

use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ContentPart, ErrorKind, FinishReason, LlmDriver,
    LlmError, StreamEvent, Usage, async_trait, collect_stream, next_event,
};
use nova_llm_mock::{MockDriver, Reply, ScriptedStream};

use super::req;
use crate::cache::CacheLayer;
use crate::{
    CallContext, Completion, Event, EventKind, Metrics, Middleware, Next, Price, PriceTable,
    Provider,
};

fn completions(events: Vec<Event>) -> Vec<Completion> {
    events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Completed(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Whether `d` is within the histogram's precision (3 significant digits) of `ms`.
fn about(d: Duration, ms: u64) -> bool {
    let want = ms as f64 / 1000.0;
    (d.as_secs_f64() - want).abs() <= want * 0.001 + 1e-6
}

#[tokio::test(start_paused = true)]
async fn latency_percentiles_tokens_errors_and_cost_match_hand_computed_values() {
    let mock = MockDriver::new();
    let p = Provider::new(mock.clone());
    let model = "gpt-4o-mini";
    // Ten calls taking 100 ms, 200 ms, ... 1000 ms; then one failure after 50 ms.
    for i in 1..=10 {
        mock.push(Reply::default_after(Duration::from_millis(100 * i)));
    }
    mock.push(
        Reply::error_kind(ErrorKind::RateLimited, "slow down").after(Duration::from_millis(50)),
    );
    for _ in 0..10 {
        // "hello world" is 2 words in, "f(hello world)" 2 words out (the mock's count).
        p.chat(req("hello world").model(model)).await.unwrap();
    }
    p.chat(req("hello world").model(model)).await.unwrap_err();

    let snap = p.metrics().unwrap().snapshot();
    let m = snap.get("mock", model).unwrap();
    assert_eq!((m.requests, m.errors), (11, 1));
    assert_eq!(m.errors_by_kind.get("rate limited"), Some(&1));
    assert_eq!((m.input_tokens, m.output_tokens), (20, 20));
    assert_eq!(m.latency.count, 11);
    // Sorted: 50, 100, ..., 1000 ms. p50 is the 6th value (500 ms), p90 the 10th (900 ms).
    assert!(about(m.latency.p50, 500), "{:?}", m.latency);
    assert!(about(m.latency.p90, 900), "{:?}", m.latency);
    assert!(about(m.latency.p99, 1000), "{:?}", m.latency);
    assert!(about(m.latency.max, 1000), "{:?}", m.latency);
    // gpt-4o-mini: $0.15 in, $0.60 out per million tokens.
    let want = (20.0 * 0.15 + 20.0 * 0.60) / 1e6;
    assert!(
        (m.cost_usd - want).abs() < 1e-15,
        "{} vs {want}",
        m.cost_usd
    );
    assert_eq!(m.unpriced, 0);
    assert_eq!(snap.total_requests(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_stream_gets_time_to_first_token_and_the_same_usage_and_cost_as_a_plain_call() {
    let mock = MockDriver::new();
    let p = Provider::new(mock.clone());
    let mut rx = p.subscribe();
    let request = req("say something nice").model("gpt-4o");
    let plain = p.chat(request.clone()).await.unwrap();

    let script = ScriptedStream::from_response(&plain, nova_llm_mock::Chunking::Words)
        .gap(Duration::from_millis(40));
    let events = script.len() as u64;
    mock.push_stream(script);
    let streamed = collect_stream(p.chat_stream(request).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed.text(), plain.text());

    let c = completions(rx.drain());
    assert_eq!(c[0].usage, c[1].usage);
    assert_eq!(c[0].cost_usd, c[1].cost_usd);
    assert!(c[0].cost_usd.unwrap() > 0.0);
    assert_eq!(c[0].time_to_first_token, None);
    // The Start event comes first (40 ms), the first text after another 40 ms.
    assert_eq!(c[1].time_to_first_token, Some(Duration::from_millis(80)));
    assert_eq!(c[1].latency, Duration::from_millis(40 * events));

    let m = p.metrics().unwrap().snapshot();
    let m = m.get("mock", "gpt-4o").unwrap();
    assert_eq!(m.time_to_first_token.count, 1);
    assert!(about(m.time_to_first_token.p50, 80));
    assert_eq!(m.input_tokens, 2 * plain.usage.input_tokens);
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_half_way_counts_as_one_cancelled_request_with_what_it_used() {
    let mock = MockDriver::new();
    let p = Provider::new(mock.clone());
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .text("b")
            .usage(Usage::new(5, 2))
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(10)),
    );
    let mut rx = p.subscribe();
    let mut s = p.chat_stream(req("x")).await.unwrap();
    next_event(&mut s).await.unwrap().unwrap();
    tokio::time::advance(Duration::from_millis(5)).await;
    drop(s);
    let snap = p.metrics().unwrap().snapshot();
    let m = snap.get("mock", "default").unwrap();
    assert_eq!((m.requests, m.errors), (1, 1));
    assert_eq!(m.errors_by_kind.get("cancelled"), Some(&1));
    // The service never said what it used: the text sent and received, estimated (one
    // token each), and flagged.
    assert_eq!((m.input_tokens, m.output_tokens), (1, 1));
    assert_eq!(m.estimated_usage, 1);
    let failed = rx
        .drain()
        .into_iter()
        .find_map(|e| match e.kind {
            crate::EventKind::Failed(f) => Some(f),
            _ => None,
        })
        .unwrap();
    assert_eq!(failed.usage, Some(Usage::new(1, 1).with_estimated(true)));
    // "default" has no price: unknown, never zero.
    assert_eq!(failed.cost_usd, None);
    assert!(about(m.latency.p50, 15), "{:?}", m.latency);
    assert_eq!(
        m.time_to_first_token.count, 0,
        "only completed streams count"
    );
}

/// Streams `script` through a provider over the mock, asked for gpt-4o with 12 characters
/// (no usage reported unless the script has some): the provider and the call's completion.
async fn streamed_completion(script: ScriptedStream) -> (Provider, Completion) {
    let mock = MockDriver::new();
    let p = Provider::new(mock.clone());
    let mut rx = p.subscribe();
    mock.push_stream(script);
    let s = p
        .chat_stream(req("twelve chars").model("gpt-4o"))
        .await
        .unwrap();
    collect_stream(s).await.unwrap();
    let c = completions(rx.drain()).remove(0);
    (p, c)
}

#[test]
fn usage_is_estimated_and_flagged_when_a_stream_reports_none() {
    super::run(async {
        // 12 characters sent, 9 received: 3 and 3 tokens at four characters a token.
        let (p, c) = streamed_completion(
            ScriptedStream::new()
                .text("abcd")
                .text("efghi")
                .finish(FinishReason::Stop),
        )
        .await;
        assert_eq!(c.usage, Usage::new(3, 3).with_estimated(true));
        let want = (3.0 * 2.50 + 3.0 * 10.0) / 1e6;
        assert!((c.cost_usd.unwrap() - want).abs() < 1e-15);
        let m = p.metrics().unwrap().snapshot();
        assert_eq!(m.get("mock", "gpt-4o").unwrap().estimated_usage, 1);
    });
}

#[test]
fn a_stream_is_priced_by_the_model_that_answered_and_its_reasoning_counts() {
    super::run(async {
        // Asked for gpt-4o, answered by gpt-4o-mini. 12 characters sent; 8 of reasoning
        // and 4 of text received: 3 and 3 tokens.
        let (_, c) = streamed_completion(
            ScriptedStream::new()
                .event(StreamEvent::start(nova_llm_core::StreamStart::new(
                    "r1",
                    "gpt-4o-mini",
                )))
                .reasoning("thinking")
                .text("abcd")
                .finish(FinishReason::Stop),
        )
        .await;
        assert_eq!(c.response_model, "gpt-4o-mini");
        assert_eq!(c.usage, Usage::new(3, 3).with_estimated(true));
        let want = (3.0 * 0.15 + 3.0 * 0.60) / 1e6;
        assert!((c.cost_usd.unwrap() - want).abs() < 1e-15);
    });
}

/// Answers every plain call with text, reasoning and a tool call, and no usage.
struct NoUsage;

#[async_trait]
impl LlmDriver for NoUsage {
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, LlmError> {
        let message = nova_llm_core::Message::assistant("twelve chars").with_tool_call(
            nova_llm_core::ToolCall::new("call_1", "lookup", "{\"q\":1}"),
        );
        Ok(ChatResponse::new(message).with_reasoning("nine more"))
    }

    async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, LlmError> {
        Err(LlmError::new(ErrorKind::Other, "plain only"))
    }
}

#[test]
fn a_plain_call_without_usage_is_estimated_from_the_text_of_every_part() {
    super::run(async {
        let p = Provider::new(NoUsage);
        let mut rx = p.subscribe();
        // Sent: "abcdefg" and "hijklmnop" joined by a newline, the image not counted:
        // 17 characters, 5 tokens. Received: 12 characters of text, 9 of reasoning and
        // 13 of the tool call's name and arguments: 34, 9 tokens.
        let row = nova_llm_core::Message::user_parts([
            ContentPart::text("abcdefg"),
            ContentPart::image_url("https://example.com/a.png"),
            ContentPart::text("hijklmnop"),
        ]);
        let request = ChatRequest::new(nova_llm_core::Dialog::new().message(row)).model("gpt-4o");
        p.chat(request).await.unwrap();
        let c = completions(rx.drain());
        assert_eq!(c[0].usage, Usage::new(5, 9).with_estimated(true));
    });
}

#[test]
fn an_unknown_model_has_unknown_cost_never_zero_and_prices_can_be_added() {
    super::run(async {
        let p = Provider::new(MockDriver::new());
        let mut rx = p.subscribe();
        p.chat(req("x").model("llama3.2")).await.unwrap();
        assert_eq!(completions(rx.drain())[0].cost_usd, None);
        let m = p.metrics().unwrap().snapshot();
        let m = m.get("mock", "llama3.2").unwrap();
        assert_eq!((m.unpriced, m.cost_usd), (1, 0.0));

        let prices = PriceTable::builtin().with("llama3.2", Price::per_million(1.0, 3.0));
        let p = Provider::builder(MockDriver::new()).prices(prices).build();
        let mut rx = p.subscribe();
        // 1 word in, 1 word out ("f(x)").
        p.chat(req("x").model("llama3.2")).await.unwrap();
        assert_eq!(completions(rx.drain())[0].cost_usd, Some(4.0 / 1e6));
    });
}

/// Serves every call from a pretend cache.
#[derive(Debug)]
struct FakeCache;

#[async_trait]
impl Middleware for FakeCache {
    fn name(&self) -> &str {
        "cache"
    }

    async fn chat(
        &self,
        _: ChatRequest,
        cx: &mut CallContext,
        _: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        cx.extensions_mut().insert(crate::cache::FromCache);
        cx.emit(EventKind::CacheHit);
        Ok(ChatResponse::from_text("cached").with_usage(Usage::new(100, 10)))
    }

    async fn chat_stream(
        &self,
        _: ChatRequest,
        cx: &mut CallContext,
        _: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        cx.extensions_mut().insert(crate::cache::FromCache);
        let reply = ChatResponse::from_text("cached").with_usage(Usage::new(100, 10));
        Ok(nova_llm_core::stream_from_events(reply.to_events()))
    }
}

#[test]
fn a_reply_served_from_a_cache_is_flagged_and_costs_nothing() {
    super::run(async {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone()).layer(FakeCache).build();
        let mut rx = p.subscribe();
        p.chat(req("x").model("gpt-4o")).await.unwrap();
        collect_stream(p.chat_stream(req("x").model("gpt-4o")).await.unwrap())
            .await
            .unwrap();
        let events = rx.drain();
        assert!(events.iter().any(|e| e.kind == EventKind::CacheHit));
        for c in completions(events) {
            assert!(c.from_cache);
            assert_eq!(c.cost_usd, Some(0.0));
            assert_eq!(c.usage, Usage::new(100, 10));
        }
        assert_eq!(mock.calls(), 0);
        let m = p.metrics().unwrap().snapshot();
        assert_eq!(m.get("mock", "gpt-4o").unwrap().from_cache, 2);
    });
}

#[test]
fn metrics_are_per_driver_and_model_and_can_be_shared_or_turned_off() {
    super::run(async {
        let shared = crate::Metrics::new();
        let a = Provider::builder(MockDriver::builder().name("a").build())
            .metrics_into(shared.clone())
            .build();
        let b = Provider::builder(MockDriver::builder().name("b").build())
            .metrics_into(shared.clone())
            .build();
        a.chat(req("x").model("m1")).await.unwrap();
        a.chat(req("x").model("m2")).await.unwrap();
        b.chat(req("x").model("m1")).await.unwrap();
        let snap = shared.snapshot();
        let keys: Vec<_> = snap
            .models
            .iter()
            .map(|m| (m.driver.as_str(), m.model.as_str(), m.requests))
            .collect();
        assert_eq!(keys, [("a", "m1", 1), ("a", "m2", 1), ("b", "m1", 1)]);
        shared.reset();
        assert_eq!(shared.snapshot().total_requests(), 0);

        let off = Provider::builder(MockDriver::new()).metrics(false).build();
        assert!(off.metrics().is_none());
        off.prompt("x").await.unwrap();
    });
}

/// A driver whose stream has a reasoning part and a tool call but no usage.
#[derive(Debug)]
struct Thinker;

#[async_trait]
impl LlmDriver for Thinker {
    async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, LlmError> {
        Err(LlmError::new(ErrorKind::Other, "stream only"))
    }

    async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, LlmError> {
        Ok(nova_llm_core::stream_from_events(vec![
            StreamEvent::reasoning("hmm"),
            StreamEvent::tool_call(
                nova_llm_core::ToolCallDelta::new(0)
                    .with_id("c1")
                    .with_name("get")
                    .with_arguments("{}"),
            ),
            StreamEvent::finish(FinishReason::ToolCalls),
        ]))
    }
}

#[test]
fn reasoning_and_tool_calls_count_as_first_content_and_output() {
    super::run(async {
        let p = Provider::new(Thinker);
        let mut rx = p.subscribe();
        let r = collect_stream(p.chat_stream(req("q")).await.unwrap())
            .await
            .unwrap();
        assert_eq!(r.tool_calls().len(), 1);
        let events = rx.drain();
        assert!(
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::FirstChunk { .. }))
        );
        let c = completions(events);
        // "hmm" + "get" + "{}" = 8 characters: 2 tokens.
        assert_eq!(c[0].usage.output_tokens, 2);
        assert_eq!(c[0].finish_reason, FinishReason::ToolCalls);
    });
}

/// A completed call of `latency` on driver `drv`, model `m`: 3 tokens in, 2 out, $0.001.
fn completed(latency: Duration) -> Event {
    Event {
        request_id: crate::RequestId::next(),
        driver: "drv".into(),
        model: "m".into(),
        at: std::time::SystemTime::now(),
        elapsed: latency,
        tags: Default::default(),
        kind: EventKind::Completed(Completion {
            operation: crate::Operation::Chat,
            latency,
            time_to_first_token: None,
            usage: Usage::new(3, 2),
            cost_usd: Some(0.001),
            finish_reason: FinishReason::Stop,
            response_model: "m".into(),
            served_by: "drv".into(),
            from_cache: false,
            reply: None,
        }),
    }
}

#[test]
fn what_many_threads_record_adds_up_in_one_snapshot() {
    // Each thread records into a stripe of its own; the snapshot must add them up,
    // histograms included.
    let metrics = crate::Metrics::new();
    std::thread::scope(|s| {
        for t in 0..8_u64 {
            let m = metrics.clone();
            s.spawn(move || {
                for i in 1..=100_u64 {
                    m.record(&completed(Duration::from_millis(t * 100 + i)));
                }
            });
        }
    });
    let snap = metrics.snapshot();
    assert_eq!(snap.models.len(), 1, "one entry per driver and model");
    let m = snap.get("drv", "m").unwrap();
    assert_eq!(m.requests, 800);
    assert_eq!(m.latency.count, 800);
    assert_eq!((m.input_tokens, m.output_tokens), (2400, 1600));
    assert!((m.cost_usd - 0.8).abs() < 1e-9, "{}", m.cost_usd);
    // The latencies are 1 ms ..= 800 ms, once each.
    assert!(about(m.latency.p50, 400), "{:?}", m.latency);
    assert!(about(m.latency.max, 800), "{:?}", m.latency);
    metrics.reset();
    assert_eq!(metrics.snapshot().total_requests(), 0);
}

/// One thread's calls into `metrics`: a priced reply with cached input, the same again from
/// the cache, an unpriced model, a failure, and a stream whose usage is estimated.
fn calls_on_this_thread(metrics: &Metrics, t: usize) {
    super::run(async {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone())
            .metrics_into(metrics.clone())
            .cache(CacheLayer::in_memory(100, None))
            .build();
        let mut priced = ChatResponse::from_text("a");
        priced.usage = Usage::new(10, 5).with_cache_read(4);
        mock.push(Reply::response(priced));
        for _ in 0..2 {
            p.chat(req(&format!("q{t}")).model("gpt-4o")).await.unwrap();
        }
        p.chat(req("u").model("my-local")).await.unwrap();
        mock.push_error(LlmError::new(ErrorKind::Server, "down"));
        p.chat(req(&format!("f{t}")).model("gpt-4o"))
            .await
            .unwrap_err();
        mock.push_stream(
            ScriptedStream::new()
                .text("abcd")
                .finish(FinishReason::Stop),
        );
        let s = p
            .chat_stream(req(&format!("s{t}")).model("gpt-4o"))
            .await
            .unwrap();
        collect_stream(s).await.unwrap();
    });
}

#[test]
fn what_several_threads_record_adds_up() {
    // Each thread records into a stripe of its own, and a snapshot adds them: the same
    // calls on four threads at once give four times the figures of one thread.
    let one = Metrics::new();
    calls_on_this_thread(&one, 0);
    let four = Metrics::new();
    std::thread::scope(|s| {
        for t in 0..4 {
            let four = &four;
            s.spawn(move || calls_on_this_thread(four, t));
        }
    });
    let (one, four) = (one.snapshot(), four.snapshot());
    let mine = one.get("mock", "gpt-4o").unwrap();
    assert!(mine.errors > 0 && mine.from_cache > 0 && mine.cache_read_tokens > 0);
    assert!(mine.estimated_usage > 0 && mine.cost_usd > 0.0);
    assert!(mine.time_to_first_token.count > 0);
    assert_eq!(one.get("mock", "my-local").unwrap().unpriced, 1);
    assert_eq!(four.get("mock", "my-local").unwrap().unpriced, 4);
    assert_eq!(one.models.len(), four.models.len());
    for (a, b) in one.models.iter().zip(&four.models) {
        assert_eq!((&b.driver, &b.model), (&a.driver, &a.model));
        let times4 = |n: u64| 4 * n;
        assert_eq!(b.requests, times4(a.requests));
        assert_eq!(b.errors, times4(a.errors));
        let by_kind: BTreeMap<_, _> = a.errors_by_kind.iter().map(|(k, n)| (*k, 4 * n)).collect();
        assert_eq!(b.errors_by_kind, by_kind);
        assert_eq!(b.from_cache, times4(a.from_cache));
        assert_eq!(b.input_tokens, times4(a.input_tokens));
        assert_eq!(b.output_tokens, times4(a.output_tokens));
        assert_eq!(b.cache_read_tokens, times4(a.cache_read_tokens));
        assert_eq!(b.estimated_usage, times4(a.estimated_usage));
        assert_eq!(b.unpriced, times4(a.unpriced));
        assert_eq!(b.latency.count, times4(a.latency.count));
        assert_eq!(
            b.time_to_first_token.count,
            times4(a.time_to_first_token.count)
        );
        assert!((b.cost_usd - 4.0 * a.cost_usd).abs() < 1e-12);
    }
    assert!((four.total_cost_usd() - 4.0 * one.total_cost_usd()).abs() < 1e-12);
    assert!(
        (one.total_cost_usd() - mine.cost_usd).abs() < 1e-15,
        "only gpt-4o is priced"
    );
}

/// A reply names the model that answered; the figures go under it (as its cost does), not
/// under the requested name or `"default"`. A failed call has no reply: it counts under the
/// requested name.
#[tokio::test]
async fn metrics_are_keyed_by_the_model_that_answered() {
    let mock = MockDriver::new();
    let p = Provider::new(mock.clone());
    mock.push(Reply::response(
        ChatResponse::from_text("hi").with_model("gpt-4o-mini-2024-07-18"),
    ));
    p.chat(req("a")).await.unwrap();
    mock.push(Reply::response(
        ChatResponse::from_text("hi").with_model("gpt-4o-mini-2024-07-18"),
    ));
    collect_stream(p.chat_stream(req("a").model("gpt-4o-mini")).await.unwrap())
        .await
        .unwrap();
    mock.push_error(LlmError::new(ErrorKind::Server, "boom"));
    p.chat(req("a")).await.unwrap_err();
    // A reply that names no model: the requested name.
    mock.push(Reply::response(ChatResponse::from_text("hi")));
    p.chat(req("a").model("named")).await.unwrap();

    let snap = p.metrics().unwrap().snapshot();
    let answered = snap.get("mock", "gpt-4o-mini-2024-07-18").unwrap();
    assert_eq!((answered.requests, answered.errors), (2, 0));
    let failed = snap.get("mock", "default").unwrap();
    assert_eq!((failed.requests, failed.errors), (1, 1));
    assert_eq!(snap.get("mock", "named").unwrap().requests, 1);
    assert!(snap.get("mock", "gpt-4o-mini").is_none());
}
