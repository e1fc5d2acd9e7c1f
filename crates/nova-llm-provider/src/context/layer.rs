//! The `context` middleware: trims any request that would not fit its model's window.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, Dialog, LlmDriver, LlmError, Message};

use super::counter::{Estimator, TokenCounter};
use super::trim::{TrimStrategy, Trimmed, trim};
use super::windows::ContextWindows;
use crate::call::{CallContext, EventKind};
use crate::plugin::{Middleware, Next};

/// The most tokens kept free for a summary row: the room is a quarter of the prompt
/// budget, at most this.
const MAX_SUMMARY_ROOM: usize = 400;

/// The fewest tokens of summary text worth asking a summarizer for.
const MIN_SUMMARY_TOKENS: usize = 16;

/// The most tokens a summarizer is asked to write.
const MAX_SUMMARY_TOKENS: u32 = 300;

/// What the summary row says before the summary.
const SUMMARY_PREFIX: &str = "Summary of the earlier conversation: ";

/// The `context` middleware: a request over its model's context window (minus room for
/// the reply: its `max_tokens`, or a default) is trimmed with the strategy, and a
/// `ContextTrimmed` event says what was dropped. A model with no known window is left
/// alone.
///
/// With a summarizer, the dropped turns are replaced by a system row holding their
/// summary. What is sent, summary included, never exceeds the prompt budget (the window
/// minus the reply's room), counted with the layer's counter:
/// - the turns are trimmed to leave room for the summary: a quarter of the prompt budget,
///   at most 400 tokens; if the rows that must stay (system rows, the latest turn) leave no
///   such room, the turns are trimmed to the whole budget and no summary is written, so a
///   summarizer never makes a call fail that trimming alone handles;
/// - the summarizer is asked for at most the tokens left (and at most 300); a summary
///   that still does not fit (its service counts tokens differently) is cut at a word to
///   fit, and dropped if not even that fits;
/// - a summary that fails, or has no room, is skipped: the turns are dropped without one.
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
        let (trimmed, summary) = match &self.summarizer {
            None => (trim(&request.dialog, budget, counter, self.strategy)?, None),
            Some(driver) => {
                self.trim_and_summarize(&request.dialog, budget, &**driver)
                    .await?
            }
        };
        cx.emit(EventKind::ContextTrimmed {
            dropped_rows: trimmed.dropped.len(),
            dropped_tokens: trimmed.dropped_tokens,
            summarized: summary.is_some(),
        });
        request.dialog = match summary {
            Some(row) => with_summary(&trimmed, row),
            None => trimmed.dialog,
        };
        Ok(())
    }

    /// Trims `dialog` leaving room for a summary of what goes, and writes the summary row
    /// if it fits what is left of `budget` (see the type's docs).
    async fn trim_and_summarize(
        &self,
        dialog: &Dialog,
        budget: usize,
        driver: &dyn LlmDriver,
    ) -> Result<(Trimmed, Option<Message>), LlmError> {
        let counter = &*self.counter;
        let room = (budget / 4).min(MAX_SUMMARY_ROOM);
        let trimmed = match trim(dialog, budget - room, counter, self.strategy) {
            Ok(t) => t,
            // What must stay leaves no room for a summary: trim to the whole budget.
            Err(_) => trim(dialog, budget, counter, self.strategy)?,
        };
        let free = budget.saturating_sub(trimmed.tokens);
        let overhead = counter.count_message(&Message::system(SUMMARY_PREFIX));
        let text_room = free.saturating_sub(overhead);
        if trimmed.dropped.is_empty() || text_room < MIN_SUMMARY_TOKENS {
            return Ok((trimmed, None));
        }
        let asked =
            u32::try_from(text_room).map_or(MAX_SUMMARY_TOKENS, |n| n.min(MAX_SUMMARY_TOKENS));
        let row = match summary(driver, &trimmed.dropped, asked).await {
            Ok(text) => summary_row(&text, free, counter),
            Err(_) => None,
        };
        Ok((trimmed, row))
    }
}

/// Asks `driver` for a summary of `rows` of at most `max_tokens`.
async fn summary(
    driver: &dyn LlmDriver,
    rows: &[Message],
    max_tokens: u32,
) -> Result<String, LlmError> {
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
    .max_tokens(max_tokens);
    Ok(driver.chat(request).await?.text())
}

/// The summary row for `text` if it costs at most `free` tokens; else the row of the
/// longest start of `text`, cut after a word and marked with `…`, that does; else none.
fn summary_row(text: &str, free: usize, counter: &dyn TokenCounter) -> Option<Message> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let row = |t: &str| Message::system(format!("{SUMMARY_PREFIX}{t}"));
    let whole = row(text);
    if counter.count_message(&whole) <= free {
        return Some(whole);
    }
    // Where a cut may end: after each word. The cost grows with the length, so the longest
    // start that fits is found by bisection.
    let ends: Vec<usize> = text
        .char_indices()
        .filter(|(_, c)| c.is_whitespace())
        .map(|(i, _)| i)
        .collect();
    let fits = |end: usize| {
        let cut = format!("{}…", text[..end].trim_end());
        let r = row(&cut);
        (counter.count_message(&r) <= free).then_some(r)
    };
    let (mut lo, mut hi) = (0, ends.len());
    let mut best = None;
    while lo < hi {
        let mid = (lo + hi) / 2;
        match fits(ends[mid]) {
            Some(r) => {
                best = Some(r);
                lo = mid + 1;
            }
            None => hi = mid,
        }
    }
    best
}

/// The trimmed dialog with the summary row after its leading system rows.
fn with_summary(trimmed: &Trimmed, summary: Message) -> Dialog {
    let rows = trimmed.dialog.messages();
    let at = rows
        .iter()
        .position(|m| m.role != nova_llm_core::Role::System)
        .unwrap_or(rows.len());
    let mut out: Vec<Message> = rows[..at].to_vec();
    out.push(summary);
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
