//! The `tracing` span of each call carries the OpenTelemetry GenAI attributes. Its own test
//! binary: it installs a subscriber for the whole process.
// A test panics on what it does not expect, helpers included.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver, LlmError, collect_stream};
use nova_llm_mock::MockDriver;
use nova_llm_provider::Provider;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

type Fields = BTreeMap<String, String>;

/// Keeps every span's name and fields.
#[derive(Default)]
struct Capture {
    spans: Mutex<Vec<(String, Fields)>>,
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

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[test]
fn each_call_has_a_gen_ai_span_with_the_semantic_convention_attributes() {
    let capture = Arc::new(Capture::default());
    tracing::subscriber::set_global_default(capture.clone()).unwrap();
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
    });
    let spans = capture.spans.lock().unwrap();
    let ours: Vec<&Fields> = spans
        .iter()
        .filter(|(name, _)| name == "gen_ai")
        .map(|(_, f)| f)
        .collect();
    assert_eq!(ours.len(), 3, "{spans:?}");
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
}
