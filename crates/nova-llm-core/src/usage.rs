//! Token counts of a call.

use serde::{Deserialize, Serialize};

/// Token counts of one call.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens sent (prompt).
    pub input_tokens: u64,
    /// Tokens generated (reply, reasoning included).
    pub output_tokens: u64,
    /// Input plus output, as the service reported it.
    pub total_tokens: u64,
    /// Input tokens served from the service's prompt cache (part of `input_tokens`).
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens spent on reasoning (part of `output_tokens`).
    #[serde(default)]
    pub reasoning_output_tokens: u64,
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

    /// Sets the cached input tokens. Default: 0.
    pub fn with_cached_input(mut self, tokens: u64) -> Self {
        self.cached_input_tokens = tokens;
        self
    }

    /// Sets the reasoning output tokens. Default: 0.
    pub fn with_reasoning_output(mut self, tokens: u64) -> Self {
        self.reasoning_output_tokens = tokens;
        self
    }

    /// Marks the counts as estimated. Default: `false`.
    pub fn with_estimated(mut self, estimated: bool) -> Self {
        self.estimated = estimated;
        self
    }
}

impl std::ops::Add for Usage {
    type Output = Usage;

    /// The sum of two usages (for example over the attempts of a call); estimated when
    /// either is.
    fn add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            total_tokens: self.total_tokens + other.total_tokens,
            cached_input_tokens: self.cached_input_tokens + other.cached_input_tokens,
            reasoning_output_tokens: self.reasoning_output_tokens + other.reasoning_output_tokens,
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
    fn usage_adds_and_flags_estimates() {
        let a = Usage::new(10, 5).with_cached_input(4);
        let b = Usage::new(1, 2)
            .with_cached_input(1)
            .with_reasoning_output(1)
            .with_estimated(true);
        let sum = a + b;
        let mut acc = a;
        acc += b;
        assert_eq!(acc, sum);
        assert_eq!(
            (sum.input_tokens, sum.output_tokens, sum.total_tokens),
            (11, 7, 18)
        );
        assert_eq!(
            (sum.cached_input_tokens, sum.reasoning_output_tokens),
            (5, 1)
        );
        assert!(sum.estimated);
        assert!(!a.estimated);
    }
}
