//! Counting tokens: the trait, a fast estimator, and (feature `tiktoken`) OpenAI's
//! tokenizers.

use nova_llm_core::{ContentPart, Message};

/// Counts the tokens of text and of dialog rows.
pub trait TokenCounter: Send + Sync + 'static {
    /// Tokens of `text`.
    fn count_text(&self, text: &str) -> usize;

    /// Tokens a row costs when sent: its text and reasoning text, name (plus 1), tool calls
    /// (name and arguments, plus 3 each), plus a fixed overhead per row (4, as OpenAI's
    /// chat format adds), per image (85, a low-detail image) and per document (1,500, about
    /// a page of a PDF: its real cost depends on its pages, which are not read here).
    /// Hidden rows cost nothing: they are never sent.
    fn count_message(&self, m: &Message) -> usize {
        if m.hidden {
            return 0;
        }
        let mut n = 4;
        for part in &m.content {
            n += match part {
                ContentPart::Text { text } => self.count_text(text),
                ContentPart::Reasoning(r) => self.count_text(&r.text),
                ContentPart::Document { .. } => 1_500,
                _ => 85,
            };
        }
        if let Some(name) = &m.name {
            n += self.count_text(name) + 1;
        }
        for call in &m.tool_calls {
            n += self.count_text(&call.name) + self.count_text(&call.arguments) + 3;
        }
        n
    }
}

/// The default counter: four bytes of UTF-8 a token, rounded up. Fast (no tokenizer). How
/// close it is depends on the service's tokenizer, by the services' own rules of thumb for
/// English prose (not measured here):
///
/// | service | characters a token | this estimate |
/// |---|---|---|
/// | OpenAI (o200k, cl100k) | about 4 | close |
/// | Gemini | about 4 | close |
/// | Anthropic (Claude) | about 3.5 | about 12 % under: give Claude budgets that margin |
///
/// It over-counts most other scripts (several bytes a character), which errs on the safe
/// side of a budget. Use [`TiktokenCounter`](super::TiktokenCounter) (feature `tiktoken`)
/// for exact counts on OpenAI models, or a counter of your own (this trait) for another
/// tokenizer; every reply's usage says what the service counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Estimator;

impl TokenCounter for Estimator {
    fn count_text(&self, text: &str) -> usize {
        text.len().div_ceil(4)
    }
}

#[cfg(feature = "tiktoken")]
pub use tiktoken::TiktokenCounter;

#[cfg(feature = "tiktoken")]
mod tiktoken {
    use std::sync::{Arc, OnceLock};

    use nova_llm_core::LlmError;
    use tiktoken_rs::CoreBPE;

    use super::TokenCounter;

    static O200K: OnceLock<Option<Arc<CoreBPE>>> = OnceLock::new();
    static CL100K: OnceLock<Option<Arc<CoreBPE>>> = OnceLock::new();

    /// Exact token counts with OpenAI's tokenizers (`o200k_base` for the GPT-4o, 4.1, 5 and
    /// o-series models, `cl100k_base` for GPT-4 and GPT-3.5). Each tokenizer is loaded once
    /// per process, on first use, and shared.
    #[derive(Clone)]
    pub struct TiktokenCounter {
        bpe: Arc<CoreBPE>,
    }

    impl std::fmt::Debug for TiktokenCounter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TiktokenCounter").finish_non_exhaustive()
        }
    }

    impl TiktokenCounter {
        /// The tokenizer of `model`.
        ///
        /// # Errors
        /// `InvalidRequest` when the model has no known OpenAI tokenizer; `Other` if the
        /// embedded tokenizer data cannot be loaded.
        pub fn for_model(model: &str) -> Result<Self, LlmError> {
            let o200k = ["gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o"];
            let cl100k = ["gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada"];
            let (cell, load): (_, fn() -> Option<CoreBPE>) =
                if o200k.iter().any(|p| model.starts_with(p)) {
                    (&O200K, || tiktoken_rs::o200k_base().ok())
                } else if cl100k.iter().any(|p| model.starts_with(p)) {
                    (&CL100K, || tiktoken_rs::cl100k_base().ok())
                } else {
                    return Err(LlmError::invalid_request(format!(
                        "no OpenAI tokenizer is known for the model `{model}`"
                    )));
                };
            let bpe = cell.get_or_init(|| load().map(Arc::new)).clone();
            bpe.map(|bpe| TiktokenCounter { bpe }).ok_or_else(|| {
                LlmError::new(
                    nova_llm_core::ErrorKind::Other,
                    "the embedded tokenizer data could not be loaded",
                )
            })
        }
    }

    impl TokenCounter for TiktokenCounter {
        fn count_text(&self, text: &str) -> usize {
            self.bpe.count_ordinary(text)
        }
    }
}
