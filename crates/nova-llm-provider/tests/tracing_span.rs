//! The `tracing` span of each call carries the OpenTelemetry GenAI attributes, and the
//! driver runs inside it. Its own test binary: it installs a subscriber for the whole
//! process.
// A test panics on what it does not expect, helpers included.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures_util::StreamExt;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, Dialog, ErrorKind, LlmDriver, LlmError, collect_stream,
};
use nova_llm_mock::MockDriver;
use nova_llm_provider::Provider;
use nova_llm_provider::cache::CacheLayer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

type Fields = BTreeMap<String, String>;

/// Keeps every span's name and fields.
#[derive(Default)]
struct Capture {
    spans: Mutex<Vec<(String, Fields)>>,
    /// For each event, the span it happened in.
    events_in: Mutex<Vec<Option<u64>>>,
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields::new();
        span.record(&mut Collect(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push((span.metadata().name().to_owned(), fields));
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let i = usize::try_from(span.into_u64()).unwrap() - 1;
        values.record(&mut Collect(&mut spans[i].1));
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    /// Notes the innermost span entered on this thread when the event happened.
    fn event(&self, _: &Event<'_>) {
        let inside = ENTERED.with(|e| e.borrow().last().map(Id::into_u64));
        self.events_in.lock().unwrap().push(inside);
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.clone()));
    }

    fn exit(&self, span: &Id) {
        ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            if let Some(i) = e.iter().rposition(|s| s == span) {
                e.remove(i);
            }
        });
    }
}

thread_local! {
    /// The spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<Id>> = const { RefCell::new(Vec::new()) };
}

/// A driver that logs an event (the subscriber notes the span it happens in), then lets
/// the mock answer.
struct Probe {
    mock: MockDriver,
}

impl Probe {
    fn note(&self) {
        tracing::info!("probe");
    }
}

#[async_trait]
impl LlmDriver for Probe {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.note();
        self.mock.chat(request).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        self.note();
        let events = self.mock.chat_stream(request).await?;
        // And once per event read.
        Ok(Box::pin(events.inspect(|_| tracing::info!("probe event"))))
    }
}

#[test]
fn each_call_has_a_gen_ai_span_with_the_semantic_convention_attributes() {
    let capture = Arc::new(Capture::default());
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
    let probe = Arc::new(Probe {
        mock: MockDriver::new(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mock = MockDriver::new();
        let p = Provider::new(mock.clone());
        let req = ChatRequest::new(Dialog::new().user("hello world")).model("gpt-4o-mini");
        p.chat(req.clone()).await.unwrap();
        collect_stream(p.chat_stream(req).await.unwrap())
            .await
            .unwrap();
        mock.push_error(LlmError::new(ErrorKind::RateLimited, "slow"));
        p.prompt("x").await.unwrap_err();

        // The driver runs inside the call's span: plain, streamed, and a stream whose
        // upstream work the cache keeps and its callers poll.
        let p = Provider::builder_shared(probe.clone()).build();
        p.prompt("plain").await.unwrap();
        collect_stream(p.chat_stream(req_of("streamed")).await.unwrap())
            .await
            .unwrap();
        let p = Provider::builder_shared(probe.clone())
            .cache(CacheLayer::in_memory(10, None))
            .build();
        collect_stream(p.chat_stream(req_of("cached")).await.unwrap())
            .await
            .unwrap();
    });
    let spans = capture.spans.lock().unwrap();
    let ours: Vec<&Fields> = spans
        .iter()
        .filter(|(name, _)| name == "gen_ai")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(ours.len(), 6, "{spans:?}");
    for f in &ours[..2] {
        assert_eq!(f["gen_ai.operation.name"], "chat");
        assert_eq!(f["gen_ai.provider.name"], "mock");
        assert_eq!(f["gen_ai.request.model"], "gpt-4o-mini");
        assert_eq!(f["gen_ai.usage.input_tokens"], "2");
        assert_eq!(f["gen_ai.usage.output_tokens"], "2");
        assert_eq!(f["gen_ai.response.finish_reasons"], "stop");
        assert!(f.contains_key("gen_ai.response.model"));
        assert!(!f.contains_key("error.type"));
    }
    assert_eq!(ours[2]["error.type"], "rate limited");
    assert_eq!(ours[2]["gen_ai.request.model"], "default");
    assert!(!ours[2].contains_key("gen_ai.usage.input_tokens"));

    // The probe's three calls made spans 4 to 6 of `gen_ai` and ran inside each, their
    // streams' events included.
    let ids: Vec<Option<u64>> = spans
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| name == "gen_ai")
        .skip(3)
        .map(|(i, _)| Some(i as u64 + 1))
        .collect();
    let events_in = capture.events_in.lock().unwrap().clone();
    assert!(events_in.len() > 6, "{events_in:?}");
    let mut calls = events_in.clone();
    calls.dedup();
    assert_eq!(calls, ids, "{events_in:?}");
}

fn req_of(text: &str) -> ChatRequest {
    ChatRequest::new(Dialog::new().user(text))
}
