//! Every fault the test server injects, through the provider (events, cache, retry,
//! fallback, rate limit) over the OpenAI driver over real HTTP, plain and streamed: each
//! call recovers or fails with the right classified error, a stream cut after content
//! carries exactly the text received, every call has exactly one terminal event, and no
//! call slot or single-flight entry is left behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{
    ChatRequest, CompletionRequest, Dialog, ErrorKind, LlmDriver, LlmError, collect_stream,
};
use nova_llm_openai::OpenAiDriver;
use nova_llm_provider::cache::CacheLayer;
use nova_llm_provider::fallback::FallbackLayer;
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_provider::retry::RetryLayer;
use nova_llm_provider::{Event, EventKind, Provider, RequestId};
use nova_llm_tests::server::TestServer;
use serde_json::{Value, json};

/// How a call must end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// It succeeded (after recovering, if a fault hit it) with this text.
    Ok(&'static str),
    /// It failed with this kind.
    Err(ErrorKind),
    /// A stream failed after content: `StreamInterrupted` carrying exactly this text.
    Cut(&'static str),
}

use Outcome::{Cut, Err, Ok};

pub(crate) struct Stack {
    pub(crate) server: TestServer,
    pub(crate) provider: Provider,
    pub(crate) limits: RateLimitLayer,
    pub(crate) cache: CacheLayer,
}

/// The provider over the OpenAI driver on a fresh test server: retries (3 attempts), a
/// fallback to the model `backup`, a cache with single-flight, at most 8 calls in flight.
pub(crate) async fn stack() -> Stack {
    let server = TestServer::start().await.unwrap();
    let driver = OpenAiDriver::builder()
        .base_url(server.base_url())
        .default_model("primary")
        .stream_idle_timeout(Duration::from_millis(300))
        .request_timeout(Duration::from_secs(5))
        .max_response_bytes(64 * 1024)
        .build()
        .unwrap();
    let driver: Arc<dyn LlmDriver> = Arc::new(driver);
    let limits = RateLimitLayer::new().max_in_flight(8);
    let cache = CacheLayer::in_memory(10_000, None);
    let provider = Provider::builder_shared(Arc::clone(&driver))
        .cache(cache.clone())
        .fallback(FallbackLayer::new().then(driver, Some("backup")))
        .retry(
            RetryLayer::new()
                .max_attempts(3)
                .backoff(Duration::from_millis(1), Duration::from_millis(5))
                .max_retry_after(Duration::from_secs(1)),
        )
        .rate_limit(limits.clone())
        .event_capacity(100_000)
        .build();
    Stack {
        server,
        provider,
        limits,
        cache,
    }
}

/// A fresh test server and the OpenAI driver alone over it, with its defaults.
async fn bare_driver() -> (TestServer, OpenAiDriver) {
    let server = TestServer::start().await.unwrap();
    let driver = OpenAiDriver::builder()
        .base_url(server.base_url())
        .build()
        .unwrap();
    (server, driver)
}

/// A request carrying a scenario for the test server.
pub(crate) fn request(name: &str, scenario: Value) -> ChatRequest {
    let mut r = ChatRequest::new(Dialog::new().user(name)).model("primary");
    r.extras.insert("nova_test".into(), scenario);
    r
}

fn fault(f: Value, every: u64, key: &str) -> Value {
    json!({"fault": f, "every": every, "key": key, "chunks": 3, "only_model": "primary"})
}

/// Runs `request` plain or streamed, returning what happened.
pub(crate) async fn call(
    p: &Provider,
    request: ChatRequest,
    stream: bool,
) -> Result<String, LlmError> {
    if stream {
        let s = p.chat_stream(request).await?;
        collect_stream(s).await.map(|r| r.text())
    } else {
        p.chat(request).await.map(|r| r.text())
    }
}

pub(crate) fn check(outcome: &Result<String, LlmError>, want: &Outcome, what: &str) {
    match (outcome, want) {
        (Result::Ok(text), Ok(t)) => assert_eq!(text, t, "{what}"),
        (Result::Err(e), Err(kind)) => assert_eq!(e.kind(), *kind, "{what}: {e}"),
        (Result::Err(e), Cut(text)) => {
            assert_eq!(e.kind(), ErrorKind::StreamInterrupted, "{what}: {e}");
            assert_eq!(e.partial().map(|p| p.text.as_str()), Some(*text), "{what}");
        }
        (got, want) => panic!("{what}: got {got:?}, wanted {want:?}"),
    }
}

/// Every request id has one `Started` and one terminal event.
pub(crate) fn exactly_once(events: &[Event]) -> usize {
    let mut by_id: BTreeMap<RequestId, (usize, usize)> = BTreeMap::new();
    for e in events {
        let entry = by_id.entry(e.request_id).or_default();
        if matches!(e.kind, EventKind::Started { .. }) {
            entry.0 += 1;
        }
        if e.is_terminal() {
            entry.1 += 1;
        }
    }
    for (id, counts) in &by_id {
        assert_eq!(*counts, (1, 1), "request {id}");
    }
    by_id.len()
}

const OK3: &str = "tok tok tok ";

/// (name, fault, every, plain outcome, streamed outcome).
fn cases() -> Vec<(&'static str, Value, u64, Outcome, Outcome)> {
    let status = |code: u16| json!({"kind": "status", "status": code});
    let coded = |code: u16, c: &str| json!({"kind": "status", "status": code, "code": c});
    let stream_fault = |kind: &str, after: u64| json!({"kind": kind, "after": after});
    vec![
        (
            "400",
            status(400),
            1,
            Err(ErrorKind::InvalidRequest),
            Err(ErrorKind::InvalidRequest),
        ),
        (
            "400 context",
            coded(400, "context_length_exceeded"),
            1,
            Err(ErrorKind::ContextLengthExceeded),
            Err(ErrorKind::ContextLengthExceeded),
        ),
        (
            "400 filtered",
            coded(400, "content_filter"),
            1,
            Err(ErrorKind::ContentFiltered),
            Err(ErrorKind::ContentFiltered),
        ),
        (
            "401",
            status(401),
            1,
            Err(ErrorKind::Authentication),
            Err(ErrorKind::Authentication),
        ),
        (
            "403",
            status(403),
            1,
            Err(ErrorKind::PermissionDenied),
            Err(ErrorKind::PermissionDenied),
        ),
        (
            "404",
            status(404),
            1,
            Err(ErrorKind::NotFound),
            Err(ErrorKind::NotFound),
        ),
        (
            "413",
            status(413),
            1,
            Err(ErrorKind::InvalidRequest),
            Err(ErrorKind::InvalidRequest),
        ),
        (
            "422",
            status(422),
            1,
            Err(ErrorKind::InvalidRequest),
            Err(ErrorKind::InvalidRequest),
        ),
        (
            "429 quota",
            coded(429, "insufficient_quota"),
            1,
            Err(ErrorKind::QuotaExceeded),
            Err(ErrorKind::QuotaExceeded),
        ),
        // Retryable faults on every primary request: the fallback model answers.
        ("408 always", status(408), 1, Ok(OK3), Ok(OK3)),
        ("500 always", status(500), 1, Ok(OK3), Ok(OK3)),
        ("503 always", status(503), 1, Ok(OK3), Ok(OK3)),
        ("529 always", status(529), 1, Ok(OK3), Ok(OK3)),
        // Retryable faults on every other request: a retry recovers.
        (
            "429 retry-after",
            json!({"kind": "status", "status": 429, "retry_after": "0"}),
            2,
            Ok(OK3),
            Ok(OK3),
        ),
        ("500 once", status(500), 2, Ok(OK3), Ok(OK3)),
        ("502 once", status(502), 2, Ok(OK3), Ok(OK3)),
        ("504 once", status(504), 2, Ok(OK3), Ok(OK3)),
        (
            "html 502 once",
            json!({"kind": "non_json", "status": 502}),
            2,
            Ok(OK3),
            Ok(OK3),
        ),
        (
            "html 502 always",
            json!({"kind": "non_json", "status": 502}),
            1,
            Ok(OK3),
            Ok(OK3),
        ),
        ("reset once", json!({"kind": "reset"}), 2, Ok(OK3), Ok(OK3)),
        (
            "reset always",
            json!({"kind": "reset"}),
            1,
            Ok(OK3),
            Ok(OK3),
        ),
        // The connection breaks inside a plain reply's body (a stream is unaffected).
        (
            "body cut once",
            json!({"kind": "cut_body"}),
            2,
            Ok(OK3),
            Ok(OK3),
        ),
        (
            "body cut always",
            json!({"kind": "cut_body"}),
            1,
            Ok(OK3),
            Ok(OK3),
        ),
        (
            "slow first byte",
            json!({"kind": "slow_first_byte", "ms": 50}),
            1,
            Ok(OK3),
            Ok(OK3),
        ),
        // Bodies that cannot be read: not retryable.
        (
            "huge body",
            json!({"kind": "huge", "bytes": 100_000}),
            1,
            Err(ErrorKind::Decode),
            Err(ErrorKind::Decode),
        ),
        (
            "malformed json",
            json!({"kind": "malformed"}),
            1,
            Err(ErrorKind::Decode),
            Ok(OK3),
        ),
        // Stream faults (a plain call does not stream: unaffected).
        (
            "error event before content",
            stream_fault("error_event", 0),
            2,
            Ok(OK3),
            Ok(OK3),
        ),
        (
            "error event after content",
            stream_fault("error_event", 2),
            1,
            Ok(OK3),
            Cut("tok tok "),
        ),
        (
            "cut before content",
            stream_fault("cut", 0),
            2,
            Ok(OK3),
            Ok(OK3),
        ),
        (
            "cut after content",
            stream_fault("cut", 2),
            1,
            Ok(OK3),
            Cut("tok tok "),
        ),
        // `[DONE]` is the server saying the stream is complete: the driver takes its word
        // (some compatible servers send no finish reason), so this is a (short) success.
        (
            "cut with done",
            json!({"kind": "cut", "after": 2, "done": true}),
            1,
            Ok(OK3),
            Ok("tok tok "),
        ),
        (
            "stall before content",
            stream_fault("stall", 0),
            2,
            Ok(OK3),
            Ok(OK3),
        ),
        (
            "stall after content",
            stream_fault("stall", 1),
            1,
            Ok(OK3),
            Cut("tok "),
        ),
    ]
}

#[tokio::test]
async fn every_fault_recovers_or_fails_with_the_right_kind() {
    let s = stack().await;
    let mut rx = s.provider.subscribe();
    let mut calls = 0;
    for (name, f, every, plain, streamed) in cases() {
        for (stream, want) in [(false, &plain), (true, &streamed)] {
            let key = format!("{name}/{stream}");
            let out = call(
                &s.provider,
                request(&key, fault(f.clone(), every, &key)),
                stream,
            )
            .await;
            check(&out, want, &key);
            calls += 1;
        }
    }
    assert!(calls >= 60);
    assert!(
        s.server.requests() >= calls as u64,
        "retries and fallbacks sent more"
    );
    assert_eq!(exactly_once(&rx.drain()), calls);
    assert_eq!(
        s.limits.available_slots(),
        Some(8),
        "a call slot was left behind"
    );
    assert_eq!(
        s.cache.in_flight(),
        0,
        "a single-flight entry was left behind"
    );
}

#[tokio::test]
async fn a_reply_cut_inside_its_body_is_a_connection_error_that_a_retry_recovers() {
    // In the matrix a fallback hides which error it was; here there is none to hide it.
    let (_server, driver) = bare_driver().await;
    let cut = |key: &str, every: u64| {
        request(
            key,
            json!({"key": key, "every": every, "fault": {"kind": "cut_body"}}),
        )
    };
    let e = driver.chat(cut("bare", 1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.is_retryable());
    let provider = Provider::builder(driver)
        .retry(RetryLayer::new().backoff(Duration::from_millis(1), Duration::from_millis(5)))
        .build();
    let mut rx = provider.subscribe();
    let reply = provider.chat(cut("retried", 2)).await.unwrap();
    assert_eq!(reply.text(), OK3);
    assert!(
        rx.drain()
            .iter()
            .any(|e| matches!(e.kind, EventKind::RetryScheduled { .. }))
    );
}

#[tokio::test]
async fn shapes_the_server_can_send_all_arrive_whole() {
    let s = stack().await;
    let shapes = [
        json!({"chunks": 50, "chunk": "é😀 ", "writes": 7}),
        json!({"chunks": 1, "usage": false}),
        json!({"chunks": 200, "chunk": "x", "delay_ms": 0}),
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        let text = shape["chunk"]
            .as_str()
            .unwrap_or("tok ")
            .repeat(shape["chunks"].as_u64().unwrap() as usize);
        for stream in [false, true] {
            let out = call(
                &s.provider,
                request(&format!("shape {i} {stream}"), shape.clone()),
                stream,
            )
            .await;
            assert_eq!(out.unwrap(), text, "shape {i}");
        }
    }
    // Tool calls, plain and streamed.
    for stream in [false, true] {
        let r = request(
            &format!("tools {stream}"),
            json!({"tool_call": true, "chunks": 0}),
        );
        let reply = if stream {
            collect_stream(s.provider.chat_stream(r).await.unwrap())
                .await
                .unwrap()
        } else {
            s.provider.chat(r).await.unwrap()
        };
        assert_eq!(reply.tool_calls()[0].name, "lookup");
        assert_eq!(reply.tool_calls()[0].arguments, "{\"q\":\"x\"}");
    }
    // The legacy completions endpoint.
    let mut c = CompletionRequest::new("once upon").model("primary");
    c.extras.insert("nova_test".into(), json!({"chunks": 2}));
    assert_eq!(
        s.provider.complete(c.clone()).await.unwrap().text,
        "tok tok "
    );
    let streamed = collect_stream(s.provider.complete_stream(c).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed.text(), "tok tok ");
}

/// What the load benchmark relies on: a client that cannot send a scenario (async-openai)
/// chooses the chunk count, a service time and a pace through the model name.
#[tokio::test]
async fn a_model_name_chooses_the_chunks_the_service_time_and_the_pace() {
    let (_server, driver) = bare_driver().await;
    let ask = |model: &str| ChatRequest::new(Dialog::new().user("hi")).model(model);
    for stream in [false, true] {
        let started = std::time::Instant::now();
        let reply = if stream {
            collect_stream(driver.chat_stream(ask("chunks-4-wait-30")).await.unwrap())
                .await
                .unwrap()
        } else {
            driver.chat(ask("chunks-4-wait-30")).await.unwrap()
        };
        assert_eq!(reply.text(), "tok ".repeat(4), "stream: {stream}");
        // A lower bound only (the server sleeps at least that long before it answers),
        // which no slow machine can break.
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "the server answered before its service time (stream: {stream})"
        );
        let reply = driver.chat(ask("chunks-2")).await.unwrap();
        assert_eq!(reply.text(), "tok tok ");
    }
    // Paced: 20 ms before each chunk after the first.
    let started = std::time::Instant::now();
    let reply = collect_stream(driver.chat_stream(ask("chunks-3-pace-20")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(reply.text(), "tok ".repeat(3));
    assert!(started.elapsed() >= Duration::from_millis(40));
    // A name it cannot read is no scenario: the default three chunks.
    let reply = driver.chat(ask("chunks-5-soon-1")).await.unwrap();
    assert_eq!(reply.text(), "tok ".repeat(3));
}

/// One rule for a stream that fails after its content started, whatever reads it: the bare
/// driver, `Provider::new`, the whole stack (retry and fallback, which may not switch any
/// more), and a caller that joined the stream through the cache. Each sees
/// `StreamInterrupted` with exactly the text received, the original error as its source
/// and cause, and that error's retryability.
#[tokio::test]
async fn a_stream_failing_after_content_is_interrupted_through_every_layer_alike() {
    let faults = [
        (
            "error event",
            json!({"kind": "error_event", "after": 2}),
            ErrorKind::Server,
            "tok tok ",
        ),
        (
            "cut",
            json!({"kind": "cut", "after": 2}),
            ErrorKind::StreamInterrupted,
            "tok tok ",
        ),
        (
            "stall",
            json!({"kind": "stall", "after": 1}),
            ErrorKind::Timeout,
            "tok ",
        ),
    ];
    let s = stack().await;
    let bare = OpenAiDriver::builder()
        .base_url(s.server.base_url())
        .stream_idle_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let plain = Provider::new(bare.clone());
    let mut rx = s.provider.subscribe();
    let check_one = |e: &LlmError, cause: ErrorKind, text: &str, what: &str| {
        assert_eq!(e.kind(), ErrorKind::StreamInterrupted, "{what}: {e}");
        assert_eq!(e.partial().map(|p| p.text.as_str()), Some(text), "{what}");
        assert!(e.is_retryable(), "{what}");
        if cause == ErrorKind::StreamInterrupted {
            // Cut with no error at all: nothing else caused it.
            assert_eq!(e.cause_kind(), None, "{what}");
        } else {
            assert_eq!(e.cause_kind(), Some(cause), "{what}");
            let source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<LlmError>());
            assert_eq!(source.map(LlmError::kind), Some(cause), "{what}");
        }
    };
    for (name, f, cause, text) in faults {
        let r = |who: &str| {
            let key = format!("interrupted {name} {who}");
            request(&key, fault(f.clone(), 1, &key))
        };
        let through_driver = collect_stream(bare.chat_stream(r("driver")).await.unwrap()).await;
        check_one(
            &through_driver.unwrap_err(),
            cause,
            text,
            &format!("{name}: driver"),
        );
        let through_new = collect_stream(plain.chat_stream(r("new")).await.unwrap()).await;
        check_one(
            &through_new.unwrap_err(),
            cause,
            text,
            &format!("{name}: Provider::new"),
        );
        let through_stack = collect_stream(s.provider.chat_stream(r("stack")).await.unwrap()).await;
        check_one(
            &through_stack.unwrap_err(),
            cause,
            text,
            &format!("{name}: stack"),
        );
        // Two callers of one stream through the cache: the one that joined reads it from
        // the flight (a replay of what the first one read, then the rest).
        let (a, b) = tokio::join!(
            s.provider.chat_stream(r("shared")),
            s.provider.chat_stream(r("shared"))
        );
        for (who, stream) in [("leader", a), ("joiner", b)] {
            let e = collect_stream(stream.unwrap()).await.unwrap_err();
            check_one(&e, cause, text, &format!("{name}: cache {who}"));
        }
        let joined = rx
            .drain()
            .iter()
            .filter(|e| e.kind == EventKind::Coalesced)
            .count();
        assert_eq!(joined, 1, "{name}: the second caller joined the first");
    }
}
