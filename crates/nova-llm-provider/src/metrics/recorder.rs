//! Per driver and model figures, built from the terminal events of each call.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use nova_llm_core::{ErrorKind, Usage};

use crate::FastMap;
use crate::call::{Event, EventKind, EventListener};

/// The metrics of a provider: request counts, errors by kind, latency and time to first
/// token with percentiles, tokens and cost, per driver and model.
///
/// A cheap clonable handle; the provider feeds it from its events (so every call counts
/// exactly once), and [`snapshot`](Self::snapshot) reads it. A completed call is grouped
/// under the model that answered (as it is priced); a failed call, or a reply that names
/// no model, under the requested one (`"default"` when the request left it to the driver).
#[derive(Clone)]
pub struct Metrics {
    /// Stripes, each thread recording into its own (so that two threads recording at once
    /// do not fight over one lock and one set of counters); a snapshot adds them up.
    stripes: Arc<[Mutex<Stripe>]>,
}

/// Driver, then model.
type Stripe = FastMap<Arc<str>, FastMap<Arc<str>, Stats>>;

const STRIPES: usize = 8;

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }
}

/// The stripe of the calling thread: threads take numbers in turn.
fn stripe_of_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    MINE.with(|n| *n) % STRIPES
}

fn lock(stripe: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    stripe.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Stats {
    requests: u64,
    errors: HashMap<ErrorKind, u64>,
    from_cache: u64,
    latency: Hist,
    ttft: Hist,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    estimated_usage: u64,
    cost_usd: f64,
    unpriced: u64,
}

/// A microsecond histogram, 3 significant digits, growing as needed.
#[derive(Clone)]
struct Hist(Option<Histogram<u64>>);

impl Hist {
    fn new() -> Self {
        // `Histogram::new` fails only for a precision above 5, so this is always `Some`.
        Hist(Histogram::new(3).ok())
    }

    fn record(&mut self, d: Duration) {
        if let Some(h) = &mut self.0 {
            let v = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            // `record` grows the histogram; it fails only past its largest trackable value.
            if h.record(v).is_err() {
                h.saturating_record(v);
            }
        }
    }

    fn add(&mut self, other: &Hist) {
        if let (Some(h), Some(o)) = (&mut self.0, &other.0) {
            // Both grow as needed, so adding cannot run out of range.
            let _ = h.add(o);
        }
    }
}

impl Stats {
    /// Counts a call's usage and cost.
    fn count(&mut self, usage: &Usage, cost_usd: Option<f64>) {
        self.input_tokens += usage.input_tokens;
        self.output_tokens += usage.output_tokens;
        self.cache_read_tokens += usage.cache_read_tokens.unwrap_or(0);
        self.cache_write_tokens += usage.cache_write_tokens.unwrap_or(0);
        self.reasoning_tokens += usage.reasoning_tokens.unwrap_or(0);
        self.estimated_usage += u64::from(usage.estimated);
        match cost_usd {
            Some(cost) => self.cost_usd += cost,
            None => self.unpriced += 1,
        }
    }

    fn add(&mut self, o: &Stats) {
        self.requests += o.requests;
        for (k, n) in &o.errors {
            *self.errors.entry(*k).or_default() += n;
        }
        self.from_cache += o.from_cache;
        self.latency.add(&o.latency);
        self.ttft.add(&o.ttft);
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cache_read_tokens += o.cache_read_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.estimated_usage += o.estimated_usage;
        self.cost_usd += o.cost_usd;
        self.unpriced += o.unpriced;
    }
}

/// The stats of `driver` and `model` in `stripe`; the names are copied only the first time.
fn stats_of<'a>(stripe: &'a mut Stripe, driver: &Arc<str>, model: &str) -> &'a mut Stats {
    if !stripe.contains_key(&**driver) {
        stripe.insert(Arc::clone(driver), FastMap::default());
    }
    let models = stripe
        .get_mut(&**driver)
        .unwrap_or_else(|| unreachable!("inserted above"));
    if !models.contains_key(model) {
        models.insert(Arc::from(model), Stats::default());
    }
    models
        .get_mut(model)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// The model a terminal event is counted under: the one that answered, else the requested.
fn model_of(event: &Event) -> &str {
    match &event.kind {
        EventKind::Completed(c) if !c.response_model.is_empty() => &c.response_model,
        _ => &event.model,
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: 0,
            errors: HashMap::new(),
            from_cache: 0,
            latency: Hist::new(),
            ttft: Hist::new(),
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            estimated_usage: 0,
            cost_usd: 0.0,
            unpriced: 0,
        }
    }
}

impl Metrics {
    /// An empty set of metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one terminal event; other events are ignored.
    pub fn record(&self, event: &Event) {
        if !event.is_terminal() {
            return;
        }
        let mut stripe = lock(&self.stripes[stripe_of_thread()]);
        // A completed call counts under the driver that answered it (a fallback target's,
        // when one did), a failed one under the provider's.
        let driver = match &event.kind {
            EventKind::Completed(c) => &c.served_by,
            _ => &event.driver,
        };
        let s = stats_of(&mut stripe, driver, model_of(event));
        match &event.kind {
            EventKind::Completed(c) => {
                s.requests += 1;
                s.latency.record(c.latency);
                if let Some(t) = c.time_to_first_token {
                    s.ttft.record(t);
                }
                s.from_cache += u64::from(c.from_cache);
                s.count(&c.usage, c.cost_usd);
            }
            EventKind::Failed(f) => {
                s.requests += 1;
                s.latency.record(f.latency);
                *s.errors.entry(f.error).or_default() += 1;
                // A stream that broke or was dropped after output still used tokens.
                if let Some(u) = &f.usage {
                    s.count(u, f.cost_usd);
                }
            }
            _ => {}
        }
    }

    /// The figures now, one entry per driver and model, sorted by driver then model.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut merged: BTreeMap<(Arc<str>, Arc<str>), Stats> = BTreeMap::new();
        for stripe in self.stripes.iter() {
            for (driver, models) in lock(stripe).iter() {
                for (model, s) in models {
                    match merged.get_mut(&(Arc::clone(driver), Arc::clone(model))) {
                        Some(m) => m.add(s),
                        None => {
                            merged.insert((Arc::clone(driver), Arc::clone(model)), s.clone());
                        }
                    }
                }
            }
        }
        let mut models: Vec<ModelMetrics> = merged
            .iter()
            .map(|((driver, model), s)| ModelMetrics {
                driver: driver.to_string(),
                model: model.to_string(),
                requests: s.requests,
                errors: s.errors.values().sum(),
                errors_by_kind: s.errors.iter().map(|(k, n)| (k.as_str(), *n)).collect(),
                from_cache: s.from_cache,
                latency: Percentiles::of(&s.latency),
                time_to_first_token: Percentiles::of(&s.ttft),
                input_tokens: s.input_tokens,
                output_tokens: s.output_tokens,
                cache_read_tokens: s.cache_read_tokens,
                cache_write_tokens: s.cache_write_tokens,
                reasoning_tokens: s.reasoning_tokens,
                estimated_usage: s.estimated_usage,
                cost_usd: s.cost_usd,
                unpriced: s.unpriced,
            })
            .collect();
        models.sort_by(|a, b| (&a.driver, &a.model).cmp(&(&b.driver, &b.model)));
        MetricsSnapshot { models }
    }

    /// Forgets everything recorded.
    pub fn reset(&self) {
        for stripe in self.stripes.iter() {
            lock(stripe).clear();
        }
    }
}

impl EventListener for Metrics {
    fn on_event(&self, event: &Event) {
        if event.is_terminal() {
            self.record(event);
        }
    }

    fn terminal_only(&self) -> bool {
        true
    }
}

/// All metrics at one moment.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// One entry per driver and model.
    pub models: Vec<ModelMetrics>,
}

impl MetricsSnapshot {
    /// The entry of `driver` and `model`.
    pub fn get(&self, driver: &str, model: &str) -> Option<&ModelMetrics> {
        self.models
            .iter()
            .find(|m| m.driver == driver && m.model == model)
    }

    /// Requests over every driver and model.
    pub fn total_requests(&self) -> u64 {
        self.models.iter().map(|m| m.requests).sum()
    }

    /// Cost over every driver and model, in US dollars (priced calls only).
    pub fn total_cost_usd(&self) -> f64 {
        self.models.iter().map(|m| m.cost_usd).sum()
    }
}

/// The figures of one driver and model.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetrics {
    /// The driver.
    pub driver: String,
    /// The requested model.
    pub model: String,
    /// Calls that ended (completed or failed).
    pub requests: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Failed calls by error kind ([`ErrorKind::as_str`]).
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Completed calls a cache served.
    pub from_cache: u64,
    /// Time from start to end of every call (completed and failed).
    pub latency: Percentiles,
    /// Time to first token of completed streamed calls.
    pub time_to_first_token: Percentiles,
    /// Input tokens of completed calls, and of failed calls that used some (a stream that
    /// broke or was dropped after output).
    pub input_tokens: u64,
    /// Output tokens of the same calls.
    pub output_tokens: u64,
    /// Input tokens read from the service's prompt cache (part of `input_tokens`).
    pub cache_read_tokens: u64,
    /// Input tokens written to the service's prompt cache (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning (part of `output_tokens`).
    pub reasoning_tokens: u64,
    /// Calls whose usage was estimated (the driver reported none).
    pub estimated_usage: u64,
    /// Cost of the priced calls, in US dollars.
    pub cost_usd: f64,
    /// Calls with a usage whose model has no price (their cost is unknown, not zero).
    pub unpriced: u64,
}

/// Percentiles of a duration histogram (3 significant digits, microsecond resolution).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// How many values were recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest value.
    pub max: Duration,
}

impl Percentiles {
    fn of(h: &Hist) -> Self {
        let Some(h) = h.0.as_ref().filter(|h| !h.is_empty()) else {
            return Percentiles::default();
        };
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        Percentiles {
            count: h.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: Duration::from_micros(h.max()),
        }
    }
}
