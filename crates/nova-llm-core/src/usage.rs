//! Token counts of a call.

use serde::{Deserialize, Serialize};

/// Token counts of one call, told apart from "not reported".
///
/// `input_tokens` counts every token of the prompt, whether the service read it from its
/// prompt cache, wrote it to the cache or neither; `output_tokens` counts every generated
/// token, reasoning included. The breakdowns are `None` when the service did not report
/// them, and `Some(0)` when it reported zero, so a cost or a dashboard never mistakes one
/// for the other. Services count differently and drivers normalize: Anthropic's
/// `input_tokens` (the uncached part) plus its cache reads and writes is `input_tokens`
/// here; Gemini's candidates plus thoughts is `output_tokens` here.
///
/// A usage equal to `Usage::default()` means the service reported none
/// ([`is_reported`](Usage::is_reported) is `false`).
///
/// ```
/// use nova_llm_core::Usage;
///
/// // 1,000 prompt tokens: 800 read from the cache, 150 written to it, 50 neither.
/// let u = Usage::new(1_000, 20).with_cache_read(800).with_cache_write(150);
/// assert_eq!(u.uncached_input_tokens(), 50);
/// assert_eq!(u.reasoning_tokens, None); // not reported, which is not zero
/// assert!(u.is_reported());
/// assert!(!Usage::default().is_reported());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens sent (the whole prompt, cache reads and writes included).
    pub input_tokens: u64,
    /// Tokens generated (reply and reasoning).
    pub output_tokens: u64,
    /// Input plus output, as the service reported it.
    pub total_tokens: u64,
    /// Input tokens read from the service's prompt cache (part of `input_tokens`); `None`
    /// when not reported.
    #[serde(
        default,
        alias = "cached_input_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to the service's prompt cache (part of `input_tokens`; services
    /// that charge for it charge more than for plain input); `None` when not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Output tokens spent on reasoning (part of `output_tokens`); `None` when not reported.
    #[serde(
        default,
        alias = "reasoning_output_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub reasoning_tokens: Option<u64>,
    /// Whether the counts are an estimate made here rather than the service's own report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
}

impl Usage {
    /// Usage with `input` and `output` tokens; the total is their sum.
    pub fn new(input: u64, output: u64) -> Self {
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input + output,
            ..Usage::default()
        }
    }

    /// Sets the input tokens read from the prompt cache. Default: not reported.
    pub fn with_cache_read(mut self, tokens: u64) -> Self {
        self.cache_read_tokens = Some(tokens);
        self
    }

    /// Sets the input tokens written to the prompt cache. Default: not reported.
    pub fn with_cache_write(mut self, tokens: u64) -> Self {
        self.cache_write_tokens = Some(tokens);
        self
    }

    /// Sets the output tokens spent on reasoning. Default: not reported.
    pub fn with_reasoning(mut self, tokens: u64) -> Self {
        self.reasoning_tokens = Some(tokens);
        self
    }

    /// Marks the counts as estimated. Default: `false`.
    pub fn with_estimated(mut self, estimated: bool) -> Self {
        self.estimated = estimated;
        self
    }

    /// Input tokens neither read from nor written to the prompt cache (what is billed at
    /// the plain input price).
    pub fn uncached_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_sub(self.cache_read_tokens.unwrap_or(0))
            .saturating_sub(self.cache_write_tokens.unwrap_or(0))
    }

    /// Whether the service reported any usage (a default usage means it reported none).
    pub fn is_reported(&self) -> bool {
        *self != Usage::default()
    }
}

/// The sum of two breakdowns: reported when either was.
fn add_reported(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;

    /// The sum of two usages (for example over the attempts of a call); a breakdown is
    /// reported when either reported it, and the sum is estimated when either is.
    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            total_tokens: self.total_tokens + other.total_tokens,
            cache_read_tokens: add_reported(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens: add_reported(self.cache_write_tokens, other.cache_write_tokens),
            reasoning_tokens: add_reported(self.reasoning_tokens, other.reasoning_tokens),
            estimated: self.estimated || other.estimated,
        }
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        *self = *self + other;
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;

    #[test]
    fn usage_adds_keeps_unreported_apart_from_zero_and_flags_estimates() {
        let a = Usage::new(10, 5).with_cache_read(4);
        let b = Usage::new(1, 2)
            .with_cache_read(1)
            .with_reasoning(0)
            .with_estimated(true);
        let sum = a + b;
        let mut acc = a;
        acc += b;
        assert_eq!(acc, sum);
        assert_eq!(
            (sum.input_tokens, sum.output_tokens, sum.total_tokens),
            (11, 7, 18)
        );
        assert_eq!(sum.cache_read_tokens, Some(5));
        // Reported by one of the two (as zero): reported.
        assert_eq!(sum.reasoning_tokens, Some(0));
        // Reported by neither: still not reported.
        assert_eq!(sum.cache_write_tokens, None);
        assert!(sum.estimated);
        assert!(!a.estimated);
    }

    #[test]
    fn uncached_input_is_what_is_left_after_cache_reads_and_writes() {
        let u = Usage::new(100, 1).with_cache_read(60).with_cache_write(30);
        assert_eq!(u.uncached_input_tokens(), 10);
        assert_eq!(Usage::new(100, 1).uncached_input_tokens(), 100);
        // A service's inconsistent figures never underflow.
        assert_eq!(
            Usage::new(10, 1)
                .with_cache_read(60)
                .uncached_input_tokens(),
            0
        );
    }

    #[test]
    fn breakdowns_are_omitted_when_unreported_and_old_names_are_read() {
        let json = serde_json::to_value(Usage::new(3, 4)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7})
        );
        let zero = serde_json::to_value(Usage::new(3, 4).with_cache_read(0)).unwrap();
        assert_eq!(zero["cache_read_tokens"], 0);
        // Replies stored by an earlier version (a shared cache) still read.
        let old: Usage = serde_json::from_value(serde_json::json!({
            "input_tokens": 3, "output_tokens": 4, "total_tokens": 7,
            "cached_input_tokens": 2, "reasoning_output_tokens": 1
        }))
        .unwrap();
        assert_eq!(
            (old.cache_read_tokens, old.reasoning_tokens),
            (Some(2), Some(1))
        );
    }
}
