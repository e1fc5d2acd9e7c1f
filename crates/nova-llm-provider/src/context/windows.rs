//! How many tokens each model can take: a table of known context windows.

use std::collections::HashMap;

/// Context windows in tokens (prompt and reply together), from the services' model pages
/// (OpenAI, Anthropic without beta headers, Google).
const BUILTIN: &[(&str, usize)] = &[
    ("gpt-5", 400_000),
    ("gpt-5-mini", 400_000),
    ("gpt-5-nano", 400_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4.1-mini", 1_047_576),
    ("gpt-4.1-nano", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4o-mini", 128_000),
    ("o1", 200_000),
    ("o1-mini", 128_000),
    ("o3", 200_000),
    ("o3-mini", 200_000),
    ("o4-mini", 200_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
    ("claude-opus-4-8", 1_000_000),
    ("claude-opus-4-7", 1_000_000),
    ("claude-opus-4-6", 1_000_000),
    ("claude-sonnet-4-6", 1_000_000),
    ("claude-opus-4-5", 200_000),
    ("claude-sonnet-4-5", 200_000),
    ("claude-haiku-4-5", 200_000),
    ("claude-opus-4-1", 200_000),
    ("claude-opus-4", 200_000),
    ("claude-sonnet-4", 200_000),
    ("gemini-3-pro-preview", 1_048_576),
    ("gemini-3-flash-preview", 1_048_576),
    ("gemini-2.5-pro", 1_048_576),
    ("gemini-2.5-flash", 1_048_576),
    ("gemini-2.5-flash-lite", 1_048_576),
];

/// Model context windows: a built-in table of OpenAI, Anthropic and Gemini models,
/// overridable and extendable. Dated snapshots find their model (`gpt-4o-2024-08-06` is
/// `gpt-4o`, `claude-haiku-4-5-20251001` is `claude-haiku-4-5`). Claude models that take a
/// million tokens only with a beta header are listed at their default window.
///
/// ```
/// use nova_llm_provider::context::ContextWindows;
///
/// let w = ContextWindows::builtin().with("llama3.2", 131_072);
/// assert_eq!(w.get("gpt-4o-mini-2024-07-18"), Some(128_000));
/// assert_eq!(w.get("llama3.2"), Some(131_072));
/// assert_eq!(w.get("claude-haiku-4-5-20251001"), Some(200_000));
/// assert_eq!(w.get("gemini-2.5-flash"), Some(1_048_576));
/// assert_eq!(w.get("unknown"), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ContextWindows {
    windows: HashMap<String, usize>,
}

impl ContextWindows {
    /// The built-in table.
    pub fn builtin() -> Self {
        ContextWindows {
            windows: BUILTIN.iter().map(|&(m, w)| (m.to_owned(), w)).collect(),
        }
    }

    /// An empty table.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds or replaces the window of `model`.
    pub fn with(mut self, model: impl Into<String>, tokens: usize) -> Self {
        self.windows.insert(model.into(), tokens);
        self
    }

    /// The window of `model`, or of the model a dated snapshot name belongs to.
    pub fn get(&self, model: &str) -> Option<usize> {
        crate::cost::lookup_model(&self.windows, model)
    }
}
