//! The price table and the cost of a call.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::FastMap;

use nova_llm_core::Usage;

/// The version of the built-in table: the dates its prices were copied from the services'
/// published standard-tier lists: OpenAI's of 2025-08 (<https://openai.com/api/pricing>),
/// Anthropic's of 2026-06 (<https://www.anthropic.com/pricing>) and Google's of 2026-07
/// (<https://ai.google.dev/gemini-api/docs/pricing>, paid tier, text and image input).
pub const PRICE_TABLE_VERSION: &str = "openai-2025-08+anthropic-2026-06+gemini-2026-07";

/// One row of the built-in table, in US dollars per million tokens: (model, input, cache
/// read, cache write, output). A cache price the service does not list is the input price
/// (OpenAI charges nothing extra for writing its automatic cache).
type Row = (&'static str, f64, Option<f64>, Option<f64>, f64);

const BUILTIN: &[Row] = &[
    ("gpt-5", 1.25, Some(0.125), None, 10.00),
    ("gpt-5-mini", 0.25, Some(0.025), None, 2.00),
    ("gpt-5-nano", 0.05, Some(0.005), None, 0.40),
    ("gpt-4.1", 2.00, Some(0.50), None, 8.00),
    ("gpt-4.1-mini", 0.40, Some(0.10), None, 1.60),
    ("gpt-4.1-nano", 0.10, Some(0.025), None, 0.40),
    ("gpt-4o", 2.50, Some(1.25), None, 10.00),
    ("gpt-4o-mini", 0.15, Some(0.075), None, 0.60),
    ("o1", 15.00, Some(7.50), None, 60.00),
    ("o1-mini", 1.10, Some(0.55), None, 4.40),
    ("o3", 2.00, Some(0.50), None, 8.00),
    ("o3-mini", 1.10, Some(0.55), None, 4.40),
    ("o4-mini", 1.10, Some(0.275), None, 4.40),
    ("gpt-4-turbo", 10.00, None, None, 30.00),
    ("gpt-4", 30.00, None, None, 60.00),
    ("gpt-3.5-turbo", 0.50, None, None, 1.50),
    ("gpt-3.5-turbo-instruct", 1.50, None, None, 2.00),
    // Anthropic: cache reads at a tenth of the input price, cache writes (5-minute
    // lifetime) at 1.25 times it.
    ("claude-opus-4-8", 5.00, Some(0.50), Some(6.25), 25.00),
    ("claude-opus-4-7", 5.00, Some(0.50), Some(6.25), 25.00),
    ("claude-opus-4-6", 5.00, Some(0.50), Some(6.25), 25.00),
    ("claude-opus-4-5", 5.00, Some(0.50), Some(6.25), 25.00),
    ("claude-opus-4-1", 15.00, Some(1.50), Some(18.75), 75.00),
    ("claude-opus-4", 15.00, Some(1.50), Some(18.75), 75.00),
    ("claude-sonnet-4-6", 3.00, Some(0.30), Some(3.75), 15.00),
    ("claude-sonnet-4-5", 3.00, Some(0.30), Some(3.75), 15.00),
    ("claude-sonnet-4", 3.00, Some(0.30), Some(3.75), 15.00),
    ("claude-haiku-4-5", 1.00, Some(0.10), Some(1.25), 5.00),
    // Gemini: cached content at a tenth of the input price (its storage, billed by the
    // hour, is not a call's cost). The Pro models' prompts over 200,000 tokens cost more:
    // see LONG_PROMPTS.
    ("gemini-3-pro-preview", 2.00, Some(0.20), None, 12.00),
    ("gemini-3-flash-preview", 0.50, Some(0.05), None, 3.00),
    ("gemini-2.5-pro", 1.25, Some(0.125), None, 10.00),
    ("gemini-2.5-flash", 0.30, Some(0.03), None, 2.50),
    ("gemini-2.5-flash-lite", 0.10, Some(0.01), None, 0.40),
];

/// Prices of prompts over a length, in US dollars per million tokens: (model, over this
/// many input tokens, input, cache read, output). Google prices the whole call at these
/// rates when its prompt is longer.
const LONG_PROMPTS: &[(&str, u64, f64, f64, f64)] = &[
    ("gemini-3-pro-preview", 200_000, 4.00, 0.40, 18.00),
    ("gemini-2.5-pro", 200_000, 2.50, 0.25, 15.00),
];

/// The price of one model, in US dollars per million tokens.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Input (prompt) tokens neither read from nor written to the prompt cache.
    pub input_per_million: f64,
    /// Input tokens read from the service's prompt cache.
    pub cached_input_per_million: f64,
    /// Input tokens written to the service's prompt cache.
    pub cache_write_per_million: f64,
    /// Output tokens (reasoning included).
    pub output_per_million: f64,
    /// Other rates for a call whose prompt is longer than a threshold, for services that
    /// price long prompts higher. Default: none.
    pub long_prompt: Option<LongPrompt>,
}

/// The rates of a call whose prompt is over `above_input_tokens` tokens: every token of
/// such a call is priced at them, as Google prices its Pro models.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongPrompt {
    /// The prompt length (input tokens) above which these rates apply.
    pub above_input_tokens: u64,
    /// Input tokens.
    pub input_per_million: f64,
    /// Input tokens read from the prompt cache.
    pub cached_input_per_million: f64,
    /// Output tokens.
    pub output_per_million: f64,
}

impl LongPrompt {
    /// Rates for prompts over `above_input_tokens`; cache reads at the input rate.
    pub fn new(above_input_tokens: u64, input: f64, output: f64) -> Self {
        LongPrompt {
            above_input_tokens,
            input_per_million: input,
            cached_input_per_million: input,
            output_per_million: output,
        }
    }

    /// Sets the rate of cache reads. Default: the input rate.
    pub fn with_cached_input(mut self, per_million: f64) -> Self {
        self.cached_input_per_million = per_million;
        self
    }
}

impl Price {
    /// A price with no prompt-cache discount or premium.
    pub fn per_million(input: f64, output: f64) -> Self {
        Price {
            input_per_million: input,
            cached_input_per_million: input,
            cache_write_per_million: input,
            output_per_million: output,
            long_prompt: None,
        }
    }

    /// Sets the rates of calls whose prompt is longer than a threshold. Default: none
    /// (one price whatever the length).
    pub fn with_long_prompt(mut self, rates: LongPrompt) -> Self {
        self.long_prompt = Some(rates);
        self
    }

    /// Sets the price of input read from the prompt cache. Default: the input price.
    pub fn with_cached_input(mut self, per_million: f64) -> Self {
        self.cached_input_per_million = per_million;
        self
    }

    /// Sets the price of input written to the prompt cache. Default: the input price.
    pub fn with_cache_write(mut self, per_million: f64) -> Self {
        self.cache_write_per_million = per_million;
        self
    }

    /// What `usage` costs at this price: uncached input, cache reads, cache writes and
    /// output, each at its rate (the long-prompt rates when the prompt is over their
    /// threshold). Breakdowns the service did not report count as plain input.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let rates = match self.long_prompt {
            Some(long) if usage.input_tokens > long.above_input_tokens => Price {
                input_per_million: long.input_per_million,
                cached_input_per_million: long.cached_input_per_million,
                cache_write_per_million: long.input_per_million,
                output_per_million: long.output_per_million,
                long_prompt: None,
            },
            _ => *self,
        };
        rates.flat_cost(usage)
    }

    /// [`cost`](Self::cost) at these rates, whatever the prompt's length.
    fn flat_cost(&self, usage: &Usage) -> f64 {
        let read = usage.cache_read_tokens.unwrap_or(0).min(usage.input_tokens);
        let write = usage
            .cache_write_tokens
            .unwrap_or(0)
            .min(usage.input_tokens - read);
        let uncached = usage.input_tokens - read - write;
        (uncached as f64 * self.input_per_million
            + read as f64 * self.cached_input_per_million
            + write as f64 * self.cache_write_per_million
            + usage.output_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

/// Model prices. The built-in table covers the common OpenAI, Anthropic and Gemini models;
/// add or override entries for yours. A model not in the table has no cost (`None`), never zero.
///
/// Dated snapshots find their model: `gpt-4o-2024-08-06`, `gpt-4-0613` and
/// `claude-haiku-4-5-20251001` are priced as `gpt-4o`, `gpt-4` and `claude-haiku-4-5` (a
/// trailing date, `-YYYY-MM-DD`, `-YYYYMMDD` or `-MMDD`, is dropped when the full name has
/// no price). A version number is never dropped: `claude-opus-4-9` is not `claude-opus-4`.
///
/// Anthropic's one-hour cache writes cost more than the five-minute ones the table lists;
/// give a model your own [`Price::with_cache_write`] if you use them. Gemini Pro prompts
/// over 200,000 tokens are priced at their higher rates ([`LongPrompt`]): the whole call,
/// as Google bills it. Gemini's audio input, priced higher than text, is not told apart
/// (usage does not say which tokens were audio).
///
/// ```
/// use nova_llm_core::Usage;
/// use nova_llm_provider::{Price, PriceTable};
///
/// let prices = PriceTable::builtin().with("my-finetune", Price::per_million(1.0, 2.0));
/// // 1,000,000 input tokens of which 400,000 cached, 100,000 output, on gpt-4o-mini:
/// let usage = Usage::new(1_000_000, 100_000).with_cache_read(400_000);
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
            .map(|&(model, input, read, write, output)| {
                let mut price = Price::per_million(input, output);
                if let Some(r) = read {
                    price = price.with_cached_input(r);
                }
                if let Some(w) = write {
                    price = price.with_cache_write(w);
                }
                if let Some(&(_, above, input, cached, output)) =
                    LONG_PROMPTS.iter().find(|(m, ..)| *m == model)
                {
                    price = price.with_long_prompt(
                        LongPrompt::new(above, input, output).with_cached_input(cached),
                    );
                }
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

/// The value of `model` in `map`, or of the model a dated snapshot name belongs to: a
/// trailing date (`-YYYY-MM-DD`, `-YYYYMMDD`, `-MMDD`) is dropped when the full name is not
/// in the map.
pub(crate) fn lookup_model<T: Copy, S: BuildHasher>(
    map: &HashMap<String, T, S>,
    model: &str,
) -> Option<T> {
    if let Some(v) = map.get(model) {
        return Some(*v);
    }
    map.get(without_date(model)?).copied()
}

/// `model` without its trailing date, if it has one.
fn without_date(model: &str) -> Option<&str> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let (head, last) = model.rsplit_once('-')?;
    if digits(last, 8) || digits(last, 4) {
        return Some(head);
    }
    // `-YYYY-MM-DD`
    let (head, month) = head.rsplit_once('-')?;
    let (head, year) = head.rsplit_once('-')?;
    (digits(last, 2) && digits(month, 2) && digits(year, 4)).then_some(head)
}
