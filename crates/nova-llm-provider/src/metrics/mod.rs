//! Metrics per driver and model with percentiles, fed by the events; optional export
//! through the `metrics` facade (cargo feature `metrics`).

#[cfg(feature = "metrics")]
mod export;
mod recorder;

#[cfg(feature = "metrics")]
pub use export::MetricsExporter;
pub use recorder::{Metrics, MetricsSnapshot, ModelMetrics, Percentiles};
