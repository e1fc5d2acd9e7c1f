//! A conversation: the history, its token counts (each row counted once), and a budget.

use std::fmt;
use std::sync::Arc;

use nova_llm_core::{
    ChatRequest, ChatResponse, Dialog, LlmDriver, LlmError, Message, StreamAccumulator,
    StreamEvent, next_event,
};

use super::counter::{Estimator, TokenCounter};
use super::trim::{TrimStrategy, trim_counted};

/// A conversation with a token budget: [`send`](Self::send) appends the user row, sends the
/// history (trimmed to the budget, if needed) through the driver, appends the reply (tool
/// calls included) and returns it. The full history is kept; only what is sent is trimmed.
///
/// ```
/// use std::sync::Arc;
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::context::Conversation;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), nova_llm_core::LlmError> {
/// let mut chat = Conversation::new(Arc::new(MockDriver::new()), 4_000)
///     .system("You are terse.")
///     .model("gpt-4o-mini");
/// assert_eq!(chat.send("hello").await?.text(), "f(hello)");
/// assert_eq!(chat.send("again").await?.text(), "f(again)");
/// assert_eq!(chat.history().len(), 5); // system, 2 questions, 2 answers
/// # Ok(())
/// # }
/// ```
pub struct Conversation {
    driver: Arc<dyn LlmDriver>,
    template: ChatRequest,
    history: Dialog,
    counts: Vec<usize>,
    counter: Arc<dyn TokenCounter>,
    budget: usize,
    strategy: TrimStrategy,
}

impl fmt::Debug for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conversation")
            .field("driver", &self.driver.name())
            .field("rows", &self.history.len())
            .field("tokens", &self.tokens())
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Conversation {
    /// A conversation through `driver` whose requests stay within `budget` tokens (the
    /// prompt; leave room for the reply below the model's window).
    pub fn new(driver: Arc<dyn LlmDriver>, budget: usize) -> Self {
        Conversation {
            driver,
            template: ChatRequest::default(),
            history: Dialog::new(),
            counts: Vec::new(),
            counter: Arc::new(Estimator),
            budget,
            strategy: TrimStrategy::DropOldest,
        }
    }

    /// Adds a system row. Default: none.
    pub fn system(mut self, text: impl Into<String>) -> Self {
        self.push(Message::system(text));
        self
    }

    /// The model. Default: the driver's.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.template.model = Some(model.into());
        self
    }

    /// Everything but the dialog (model, parameters, tools, response format) is taken from
    /// `template`. Default: an empty request.
    pub fn template(mut self, template: ChatRequest) -> Self {
        self.template = template;
        self
    }

    /// The token counter. Default: [`Estimator`].
    pub fn counter(mut self, counter: impl TokenCounter) -> Self {
        self.counter = Arc::new(counter);
        self.counts = self
            .history
            .messages()
            .iter()
            .map(|m| self.counter.count_message(m))
            .collect();
        self
    }

    /// The trimming strategy. Default: drop the oldest turns.
    pub fn strategy(mut self, strategy: TrimStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Appends a row (counted once, now).
    pub fn push(&mut self, message: Message) {
        self.counts.push(self.counter.count_message(&message));
        self.history.push(message);
    }

    /// The whole history.
    pub fn history(&self) -> &Dialog {
        &self.history
    }

    /// Tokens of the whole history.
    pub fn tokens(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Replaces the system rows by one with `text` (at the start of the history).
    pub fn set_system(&mut self, text: impl Into<String>) {
        let row = Message::system(text);
        let count = self.counter.count_message(&row);
        let rest: Vec<(Message, usize)> = self
            .history
            .messages()
            .iter()
            .zip(&self.counts)
            .filter(|(m, _)| m.role != nova_llm_core::Role::System)
            .map(|(m, c)| (m.clone(), *c))
            .collect();
        self.history = std::iter::once(row)
            .chain(rest.iter().map(|(m, _)| m.clone()))
            .collect();
        self.counts = std::iter::once(count)
            .chain(rest.into_iter().map(|(_, c)| c))
            .collect();
    }

    /// Forgets every row but the system rows.
    pub fn reset(&mut self) {
        let keep: Vec<(Message, usize)> = self
            .history
            .messages()
            .iter()
            .zip(&self.counts)
            .filter(|(m, _)| m.role == nova_llm_core::Role::System)
            .map(|(m, c)| (m.clone(), *c))
            .collect();
        self.history = keep.iter().map(|(m, _)| m.clone()).collect();
        self.counts = keep.into_iter().map(|(_, c)| c).collect();
    }

    /// Sends `text` as the next user row and returns the reply, which joins the history.
    ///
    /// # Errors
    /// `ContextLengthExceeded` when the system rows and this turn alone are over the
    /// budget; anything the driver returns. On an error, or if the future is dropped, the
    /// history is as before.
    pub async fn send(&mut self, text: impl Into<String>) -> Result<ChatResponse, LlmError> {
        let user = Message::user(text);
        let request = self.request_with(&user)?;
        let reply = self.driver.chat(request).await?;
        self.push(user);
        self.push(reply.message.clone());
        Ok(reply)
    }

    /// [`send`](Self::send), streamed: `on_event` sees every event as it arrives (to print
    /// text deltas), and the accumulated reply joins the history once the stream finished.
    ///
    /// # Errors
    /// As [`send`](Self::send); a stream cut short is a `StreamInterrupted` error and the
    /// history stays as before (also if the future is dropped, for example on Ctrl-C).
    pub async fn send_streaming(
        &mut self,
        text: impl Into<String>,
        mut on_event: impl FnMut(&StreamEvent) + Send,
    ) -> Result<ChatResponse, LlmError> {
        let user = Message::user(text);
        let request = self.request_with(&user)?;
        let mut stream = self.driver.chat_stream(request).await?;
        let mut acc = StreamAccumulator::new();
        while let Some(item) = next_event(&mut stream).await {
            let event = item.map_err(|e| acc.interrupt(e))?;
            on_event(&event);
            acc.push(&event);
        }
        let reply = acc.finish()?;
        self.push(user);
        self.push(reply.message.clone());
        Ok(reply)
    }

    /// The request for the history plus `user`, trimmed to the budget.
    fn request_with(&self, user: &Message) -> Result<ChatRequest, LlmError> {
        let mut dialog = self.history.clone();
        dialog.push(user.clone());
        let mut counts = self.counts.clone();
        counts.push(self.counter.count_message(user));
        let trimmed = trim_counted(&dialog, &counts, self.budget, self.strategy)?;
        let mut request = self.template.clone();
        request.dialog = trimmed.dialog;
        Ok(request)
    }
}
