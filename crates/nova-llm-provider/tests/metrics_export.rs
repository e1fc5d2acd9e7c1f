//! With the `metrics` feature, finished calls go to the installed `metrics` recorder under
//! the OpenTelemetry GenAI names. Runs with `--all-features` (as CI does).
#![cfg(feature = "metrics")]
// A test panics on what it does not expect, helpers included.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver, LlmError};
use nova_llm_mock::{MockDriver, Reply};
use nova_llm_provider::Provider;

/// Every value recorded, as (name, sorted labels, value).
type Log = Arc<Mutex<Vec<(String, Vec<(String, String)>, f64)>>>;

struct Sink {
    key: Key,
    log: Log,
}

impl Sink {
    fn push(&self, value: f64) {
        let mut labels: Vec<_> = self
            .key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        self.log
            .lock()
            .unwrap()
            .push((self.key.name().to_owned(), labels, value));
    }
}

impl HistogramFn for Sink {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl CounterFn for Sink {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }

    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

#[derive(Default)]
struct TestRecorder {
    log: Log,
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Sink {
            key: key.clone(),
            log: self.log.clone(),
        }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Sink {
            key: key.clone(),
            log: self.log.clone(),
        }))
    }
}

fn label<'a>(labels: &'a [(String, String)], key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn duration_tokens_and_cost_are_exported_with_gen_ai_names() {
    let recorder = TestRecorder::default();
    let log = recorder.log.clone();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let mock = MockDriver::new();
            let p = Provider::builder(mock.clone()).export_metrics(true).build();
            mock.push(Reply::default_after(Duration::from_millis(1500)));
            let req = ChatRequest::new(Dialog::new().user("hello world")).model("gpt-4o");
            p.chat(req.clone()).await.unwrap();
            mock.push_error(LlmError::new(ErrorKind::Timeout, "slow"));
            p.chat(req).await.unwrap_err();
        });
    });
    let log = log.lock().unwrap();
    let find = |name: &str, extra: Option<(&str, &str)>| {
        log.iter()
            .filter(|(n, labels, _)| {
                n == name && extra.is_none_or(|(k, v)| label(labels, k) == Some(v))
            })
            .collect::<Vec<_>>()
    };
    let durations = find("gen_ai.client.operation.duration", None);
    assert_eq!(durations.len(), 2, "{log:?}");
    let (_, ok_labels, secs) = durations[0];
    assert_eq!(*secs, 1.5);
    assert_eq!(label(ok_labels, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(label(ok_labels, "gen_ai.provider.name"), Some("mock"));
    assert_eq!(label(ok_labels, "gen_ai.request.model"), Some("gpt-4o"));
    // The mock answers under the requested name.
    assert_eq!(label(ok_labels, "gen_ai.response.model"), Some("gpt-4o"));
    assert_eq!(label(ok_labels, "error.type"), None);
    assert_eq!(label(&durations[1].1, "gen_ai.response.model"), None);
    assert_eq!(label(&durations[1].1, "error.type"), Some("timed out"));

    let input = find(
        "gen_ai.client.token.usage",
        Some(("gen_ai.token.type", "input")),
    );
    let output = find(
        "gen_ai.client.token.usage",
        Some(("gen_ai.token.type", "output")),
    );
    assert_eq!((input.len(), output.len()), (1, 1));
    assert_eq!((input[0].2, output[0].2), (2.0, 2.0));
    // gpt-4o: 2 x $2.50 + 2 x $10 per million = $0.000025 = 25 micro-dollars.
    let cost = find("nova_llm.cost_usd_micros", None);
    assert_eq!(cost[0].2, 25.0);
}
