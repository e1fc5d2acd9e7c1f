//! `GET /metrics`: Prometheus text, with the OpenTelemetry GenAI names (dots as
//! underscores, the unit as a suffix, as the OpenTelemetry Prometheus exporter writes
//! them) and the gateway's own figures:
//!
//! - `gen_ai_client_operation_duration_seconds` (histogram): each call's duration, by
//!   operation, provider (driver), requested model, and response model or error type;
//! - `gen_ai_client_token_usage` (histogram): tokens per call, by the same labels and
//!   `gen_ai_token_type` (`input`, `output`);
//! - `nova_gateway_added_latency_seconds` (histogram): the gateway's own time per request
//!   (the whole request less the time in the driver), by route;
//! - `nova_gateway_requests_total` (counter): requests by route and HTTP status;
//! - `nova_gateway_cost_usd_total` (counter): spend by route.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nova_llm_provider::{Event, EventKind, EventListener};

/// OpenTelemetry's advice for `gen_ai.client.operation.duration` (seconds).
const DURATION_BOUNDS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// OpenTelemetry's advice for `gen_ai.client.token.usage`.
const TOKEN_BOUNDS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// The gateway's own latency: tens of microseconds to tens of milliseconds.
const ADDED_BOUNDS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), and one more for +Inf.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn record(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Families {
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    counters: BTreeMap<(&'static str, Labels), f64>,
}

/// Every figure the gateway exports.
#[derive(Debug, Default)]
pub(crate) struct GatewayMetrics {
    families: Mutex<Families>,
}

impl GatewayMetrics {
    fn with<T>(&self, f: impl FnOnce(&mut Families) -> T) -> T {
        f(&mut self.families.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn observe(&self, name: &'static str, bounds: &'static [f64], labels: Labels, v: f64) {
        self.with(|f| {
            f.histograms
                .entry((name, labels))
                .or_insert_with(|| Histogram::new(bounds))
                .record(v);
        });
    }

    fn add(&self, name: &'static str, labels: Labels, v: f64) {
        self.with(|f| *f.counters.entry((name, labels)).or_insert(0.0) += v);
    }

    /// One request answered: its route, HTTP status, and the gateway's own time in it.
    pub(crate) fn request(&self, route: &str, status: u16, added: Option<Duration>) {
        self.add(
            "nova_gateway_requests_total",
            vec![("route", route.to_owned()), ("status", status.to_string())],
            1.0,
        );
        if let Some(added) = added {
            self.observe(
                "nova_gateway_added_latency_seconds",
                ADDED_BOUNDS,
                vec![("route", route.to_owned())],
                added.as_secs_f64(),
            );
        }
    }

    fn call(&self, event: &Event) {
        let (op, latency, outcome, usage, cost) = match &event.kind {
            EventKind::Completed(c) => (
                c.operation,
                c.latency,
                ("gen_ai_response_model", c.response_model.clone()),
                Some(c.usage),
                c.cost_usd,
            ),
            EventKind::Failed(f) => (
                f.operation,
                f.latency,
                ("error_type", f.error.as_str().to_owned()),
                f.usage,
                f.cost_usd,
            ),
            _ => return,
        };
        let mut labels: Labels = vec![
            ("gen_ai_operation_name", op.gen_ai_name().to_owned()),
            ("gen_ai_provider_name", event.driver.to_string()),
            ("gen_ai_request_model", event.model.to_string()),
        ];
        if !outcome.1.is_empty() {
            labels.push(outcome);
        }
        self.observe(
            "gen_ai_client_operation_duration_seconds",
            DURATION_BOUNDS,
            labels.clone(),
            latency.as_secs_f64(),
        );
        if let Some(u) = usage {
            for (kind, n) in [("input", u.input_tokens), ("output", u.output_tokens)] {
                let mut l = labels.clone();
                l.push(("gen_ai_token_type", kind.to_owned()));
                self.observe("gen_ai_client_token_usage", TOKEN_BOUNDS, l, n as f64);
            }
        }
        if let Some(cost) = cost {
            self.add(
                "nova_gateway_cost_usd_total",
                vec![("gen_ai_request_model", event.model.to_string())],
                cost,
            );
        }
    }

    /// The Prometheus text exposition of every figure.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.with(|f| {
            let mut last = "";
            for ((name, labels), h) in &f.histograms {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} histogram");
                    last = name;
                }
                let mut cumulative = 0;
                for (i, count) in h.counts.iter().enumerate() {
                    cumulative += count;
                    let le = h.bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{}}} {cumulative}",
                        label_text(labels, Some(&le))
                    );
                }
                let _ = writeln!(out, "{name}_sum{{{}}} {}", label_text(labels, None), h.sum);
                let _ = writeln!(
                    out,
                    "{name}_count{{{}}} {cumulative}",
                    label_text(labels, None)
                );
            }
            let mut last = "";
            for ((name, labels), v) in &f.counters {
                if *name != last {
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last = name;
                }
                let _ = writeln!(out, "{name}{{{}}} {v}", label_text(labels, None));
            }
        });
        out
    }
}

/// `a="x",b="y"` with Prometheus's escapes, and `le` last when given.
fn label_text(labels: &Labels, le: Option<&str>) -> String {
    let mut out = String::new();
    for (k, v) in labels
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(le.map(|le| ("le", le)))
    {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// Feeds [`GatewayMetrics`] from each call's terminal event.
#[derive(Debug, Clone)]
pub(crate) struct MetricsListener(pub(crate) Arc<GatewayMetrics>);

impl EventListener for MetricsListener {
    fn terminal_only(&self) -> bool {
        true
    }

    fn on_event(&self, event: &Event) {
        self.0.call(event);
    }
}
