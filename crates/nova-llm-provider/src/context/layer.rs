//! The `context` middleware: trims any request that would not fit its model's window.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, Dialog, LlmDriver, LlmError, Message};

use super::counter::{Estimator, TokenCounter};
use super::trim::{TrimStrategy, Trimmed, trim};
use super::windows::ContextWindows;
use crate::events::EventKind;
use crate::plugin::{CallContext, Middleware, Next};

/// Tokens kept free for a summary row when summarizing.
const SUMMARY_ROOM: usize = 400;

/// The `context` middleware: a request over its model's context window (minus room for
/// the reply: its `max_tokens`, or a default) is trimmed with the strategy, and a
/// `ContextTrimmed` event says what was dropped. With a summarizer, the dropped turns are
/// replaced by a system row holding their summary. A model with no known window is left
/// alone.
///
/// ```
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::context::{ContextLayer, ContextWindows};
/// use nova_llm_provider::Provider;
///
/// let context = ContextLayer::new().windows(ContextWindows::builtin().with("llama3.2", 131_072));
/// let provider = Provider::builder(MockDriver::new()).context(context).build();
/// assert_eq!(provider.layers(), ["events", "context"]);
/// ```
#[derive(Clone)]
pub struct ContextLayer {
    windows: ContextWindows,
    counter: Arc<dyn TokenCounter>,
    strategy: TrimStrategy,
    reply_room: usize,
    summarizer: Option<Arc<dyn LlmDriver>>,
}

impl fmt::Debug for ContextLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextLayer")
            .field("strategy", &self.strategy)
            .field("reply_room", &self.reply_room)
            .field("summarizer", &self.summarizer.as_ref().map(|d| d.name()))
            .finish_non_exhaustive()
    }
}

impl Default for ContextLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "context";

    /// Built-in windows, the [`Estimator`], drop-oldest, 1024 tokens kept for a reply that
    /// sets no `max_tokens`, no summarizer.
    pub fn new() -> Self {
        ContextLayer {
            windows: ContextWindows::builtin(),
            counter: Arc::new(Estimator),
            strategy: TrimStrategy::DropOldest,
            reply_room: 1024,
            summarizer: None,
        }
    }

    /// The context windows. Default: [`ContextWindows::builtin`].
    pub fn windows(mut self, windows: ContextWindows) -> Self {
        self.windows = windows;
        self
    }

    /// The token counter. Default: [`Estimator`].
    pub fn counter(mut self, counter: impl TokenCounter) -> Self {
        self.counter = Arc::new(counter);
        self
    }

    /// The trimming strategy. Default: drop the oldest turns.
    pub fn strategy(mut self, strategy: TrimStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Tokens kept free for the reply when the request sets no `max_tokens`. Default: 1024.
    pub fn reply_room(mut self, tokens: usize) -> Self {
        self.reply_room = tokens;
        self
    }

    /// Replaces dropped turns by a summary that `driver` writes. Default: none (dropped
    /// turns are just gone). If the summary fails, the turns are dropped without one.
    pub fn summarize_with(mut self, driver: Arc<dyn LlmDriver>) -> Self {
        self.summarizer = Some(driver);
        self
    }

    /// Fits `request` to its model's window, if it has a known one.
    async fn fit(&self, request: &mut ChatRequest, cx: &CallContext) -> Result<(), LlmError> {
        let model = request.model.as_deref().unwrap_or(cx.model());
        let Some(window) = self.windows.get(model) else {
            return Ok(());
        };
        let room = request
            .params
            .max_tokens
            .map_or(self.reply_room, |m| m as usize);
        let budget = window.saturating_sub(room);
        let summarize = self.summarizer.is_some();
        let target = if summarize {
            budget.saturating_sub(SUMMARY_ROOM)
        } else {
            budget
        };
        let counter = &*self.counter;
        let full: usize = request
            .dialog
            .messages()
            .iter()
            .map(|m| counter.count_message(m))
            .sum();
        if full <= budget {
            return Ok(());
        }
        let trimmed = trim(&request.dialog, target, counter, self.strategy)?;
        let mut summarized = false;
        let dialog = match &self.summarizer {
            Some(driver) if !trimmed.dropped.is_empty() => {
                match summary(&**driver, &trimmed.dropped).await {
                    Ok(text) => {
                        summarized = true;
                        with_summary(&trimmed, text)
                    }
                    Err(_) => trimmed.dialog.clone(),
                }
            }
            _ => trimmed.dialog.clone(),
        };
        cx.emit(EventKind::ContextTrimmed {
            dropped_rows: trimmed.dropped.len(),
            dropped_tokens: trimmed.dropped_tokens,
            summarized,
        });
        request.dialog = dialog;
        Ok(())
    }
}

/// Asks `driver` for a summary of `rows`.
async fn summary(driver: &dyn LlmDriver, rows: &[Message]) -> Result<String, LlmError> {
    let transcript: String = rows
        .iter()
        .map(|m| format!("{}: {}\n", m.role.as_str(), m.text()))
        .collect();
    let request = ChatRequest::new(
        Dialog::new()
            .system(
                "Summarize the conversation below in a few sentences. Keep names, numbers, \
                 decisions and open questions.",
            )
            .user(transcript),
    )
    .max_tokens(300);
    Ok(driver.chat(request).await?.text())
}

/// The trimmed dialog with a summary row after its leading system rows.
fn with_summary(trimmed: &Trimmed, summary: String) -> Dialog {
    let rows = trimmed.dialog.messages();
    let at = rows
        .iter()
        .position(|m| m.role != nova_llm_core::Role::System)
        .unwrap_or(rows.len());
    let mut out: Vec<Message> = rows[..at].to_vec();
    out.push(Message::system(format!(
        "Summary of the earlier conversation: {summary}"
    )));
    out.extend_from_slice(&rows[at..]);
    out.into_iter().collect()
}

#[async_trait]
impl Middleware for ContextLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        mut request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        self.fit(&mut request, cx).await?;
        next.chat(request, cx).await
    }

    async fn chat_stream(
        &self,
        mut request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        self.fit(&mut request, cx).await?;
        next.chat_stream(request, cx).await
    }
}
