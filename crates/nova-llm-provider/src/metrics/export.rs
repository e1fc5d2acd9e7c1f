//! Export through the `metrics` facade with the OpenTelemetry GenAI names (cargo feature
//! `metrics`).

use crate::call::{Event, EventKind, EventListener};

/// Records every finished call into whatever `metrics` recorder the application installed
/// (Prometheus, OpenTelemetry, StatsD...), with the OpenTelemetry GenAI names:
///
/// - histogram `gen_ai.client.operation.duration` (seconds), labels
///   `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, and
///   `gen_ai.response.model` (the model that answered, when the reply names one) on
///   completed calls or `error.type` on failures;
/// - histogram `gen_ai.client.token.usage` (tokens), the same labels plus
///   `gen_ai.token.type` = `input` or `output`;
/// - counter `nova_llm.cost_usd_micros` (priced calls, micro-dollars), and histogram
///   `gen_ai.server.time_to_first_token` (seconds) for streams.
///
/// Enabled with [`ProviderBuilder::export_metrics`](crate::ProviderBuilder::export_metrics).
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsExporter;

impl EventListener for MetricsExporter {
    fn terminal_only(&self) -> bool {
        true
    }

    fn on_event(&self, event: &Event) {
        let driver = event.driver.to_string();
        let model = event.model.to_string();
        match &event.kind {
            EventKind::Completed(c) => {
                let op = c.operation.gen_ai_name();
                let mut labels = vec![
                    ("gen_ai.operation.name", op.to_owned()),
                    ("gen_ai.provider.name", driver),
                    ("gen_ai.request.model", model),
                ];
                if !c.response_model.is_empty() {
                    labels.push(("gen_ai.response.model", c.response_model.clone()));
                }
                ::metrics::histogram!("gen_ai.client.operation.duration", &labels)
                    .record(c.latency.as_secs_f64());
                for (kind, n) in [
                    ("input", c.usage.input_tokens),
                    ("output", c.usage.output_tokens),
                ] {
                    let mut l = labels.clone();
                    l.push(("gen_ai.token.type", kind.to_owned()));
                    ::metrics::histogram!("gen_ai.client.token.usage", &l).record(n as f64);
                }
                if let Some(t) = c.time_to_first_token {
                    ::metrics::histogram!("gen_ai.server.time_to_first_token", &labels)
                        .record(t.as_secs_f64());
                }
                if let Some(cost) = c.cost_usd {
                    ::metrics::counter!("nova_llm.cost_usd_micros", &labels)
                        .increment((cost * 1_000_000.0).round() as u64);
                }
            }
            EventKind::Failed(f) => {
                let labels = [
                    (
                        "gen_ai.operation.name",
                        f.operation.gen_ai_name().to_owned(),
                    ),
                    ("gen_ai.provider.name", driver),
                    ("gen_ai.request.model", model),
                    ("error.type", f.error.as_str().to_owned()),
                ];
                ::metrics::histogram!("gen_ai.client.operation.duration", &labels)
                    .record(f.latency.as_secs_f64());
            }
            _ => {}
        }
    }
}
