//! The price table and the cost of a call.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::FastMap;

use nova_llm_core::Usage;

/// The version of the built-in table: the date its prices were copied from OpenAI's
/// published standard-tier list (<https://openai.com/api/pricing>).
pub const PRICE_TABLE_VERSION: &str = "openai-standard-2025-08";

/// US dollars per million tokens: (model, input, cached input, output).
const BUILTIN: &[(&str, f64, Option<f64>, f64)] = &[
    ("gpt-5", 1.25, Some(0.125), 10.00),
    ("gpt-5-mini", 0.25, Some(0.025), 2.00),
    ("gpt-5-nano", 0.05, Some(0.005), 0.40),
    ("gpt-4.1", 2.00, Some(0.50), 8.00),
    ("gpt-4.1-mini", 0.40, Some(0.10), 1.60),
    ("gpt-4.1-nano", 0.10, Some(0.025), 0.40),
    ("gpt-4o", 2.50, Some(1.25), 10.00),
    ("gpt-4o-mini", 0.15, Some(0.075), 0.60),
    ("o1", 15.00, Some(7.50), 60.00),
    ("o1-mini", 1.10, Some(0.55), 4.40),
    ("o3", 2.00, Some(0.50), 8.00),
    ("o3-mini", 1.10, Some(0.55), 4.40),
    ("o4-mini", 1.10, Some(0.275), 4.40),
    ("gpt-4-turbo", 10.00, None, 30.00),
    ("gpt-4", 30.00, None, 60.00),
    ("gpt-3.5-turbo", 0.50, None, 1.50),
    ("gpt-3.5-turbo-instruct", 1.50, None, 2.00),
];

/// The price of one model, in US dollars per million tokens.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Input (prompt) tokens.
    pub input_per_million: f64,
    /// Input tokens served from the service's prompt cache.
    pub cached_input_per_million: f64,
    /// Output tokens (reasoning included).
    pub output_per_million: f64,
}

impl Price {
    /// A price with no prompt-cache discount.
    pub fn per_million(input: f64, output: f64) -> Self {
        Price {
            input_per_million: input,
            cached_input_per_million: input,
            output_per_million: output,
        }
    }

    /// Sets the cached-input price. Default: the input price.
    pub fn with_cached_input(mut self, per_million: f64) -> Self {
        self.cached_input_per_million = per_million;
        self
    }

    /// What `usage` costs at this price: uncached input, cached input and output tokens
    /// each at their rate.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        (uncached as f64 * self.input_per_million
            + cached as f64 * self.cached_input_per_million
            + usage.output_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

/// Model prices. The built-in table covers the common OpenAI models; add or override
/// entries for yours. A model not in the table has no cost (`None`), never zero.
///
/// Dated snapshots find their model: `gpt-4o-2024-08-06` and `gpt-4-0613` are priced as
/// `gpt-4o` and `gpt-4` (trailing all-digit segments are dropped until a name matches).
///
/// ```
/// use nova_llm_core::Usage;
/// use nova_llm_provider::{Price, PriceTable};
///
/// let prices = PriceTable::builtin().with("my-finetune", Price::per_million(1.0, 2.0));
/// // 1,000,000 input tokens of which 400,000 cached, 100,000 output, on gpt-4o-mini:
/// let usage = Usage::new(1_000_000, 100_000).with_cached_input(400_000);
/// let cost = prices.cost("gpt-4o-mini-2024-07-18", &usage).unwrap();
/// assert!((cost - (0.6 * 0.15 + 0.4 * 0.075 + 0.1 * 0.60)).abs() < 1e-12);
/// assert_eq!(prices.cost("my-finetune", &Usage::new(1_000_000, 0)), Some(1.0));
/// assert_eq!(prices.cost("some-local-model", &usage), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    prices: FastMap<String, Price>,
    version: String,
}

impl PriceTable {
    /// The built-in table ([`PRICE_TABLE_VERSION`]).
    pub fn builtin() -> Self {
        let prices = BUILTIN
            .iter()
            .map(|&(model, input, cached, output)| {
                let price = Price::per_million(input, output);
                let price = match cached {
                    Some(c) => price.with_cached_input(c),
                    None => price,
                };
                (model.to_owned(), price)
            })
            .collect();
        PriceTable {
            prices,
            version: PRICE_TABLE_VERSION.to_owned(),
        }
    }

    /// A table with no prices (every cost unknown) for you to fill.
    pub fn empty() -> Self {
        PriceTable {
            prices: FastMap::default(),
            version: "custom".to_owned(),
        }
    }

    /// Adds or replaces the price of `model`.
    pub fn with(mut self, model: impl Into<String>, price: Price) -> Self {
        self.insert(model, price);
        self
    }

    /// Adds or replaces the price of `model`.
    pub fn insert(&mut self, model: impl Into<String>, price: Price) {
        self.prices.insert(model.into(), price);
    }

    /// Sets the version label. Default: [`PRICE_TABLE_VERSION`] for the built-in table.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// The version label.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The price of `model`, or of the model a dated snapshot name belongs to.
    pub fn get(&self, model: &str) -> Option<Price> {
        lookup_model(&self.prices, model)
    }

    /// What `usage` cost on `model`; `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.get(model).map(|p| p.cost(usage))
    }
}

/// The value of `model` in `map`, or of the model a dated snapshot name belongs to: trailing
/// all-digit segments (`-2024-08-06`, `-0613`) are dropped until a name matches.
pub(crate) fn lookup_model<T: Copy, S: BuildHasher>(
    map: &HashMap<String, T, S>,
    model: &str,
) -> Option<T> {
    let mut name = model;
    loop {
        if let Some(v) = map.get(name) {
            return Some(*v);
        }
        let (head, last) = name.rsplit_once('-')?;
        if last.is_empty() || !last.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        name = head;
    }
}
