//! The `Middleware` trait and `Next`, the rest of the chain.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, CompletionRequest, ContentPart, LlmDriver, LlmError,
    Role,
};

use crate::call::{CallContext, Operation};

/// One layer of the provider: the plugin interface, implemented by the built-in features
/// (events, and later caching, rate limits, retry) and by users.
///
/// Each method gets the request, the call's [`CallContext`] and [`Next`], the rest of the
/// chain. A middleware may change the request before calling `next`, answer without calling
/// it (short-circuit), change or inspect what comes back, wrap the returned stream to observe
/// or transform it event by event, and handle errors (including calling `next` again: `Next`
/// is `Copy`). The defaults pass everything through, so a middleware overrides only what it
/// needs.
///
/// `prompt` and `structured` arrive as [`chat`](Self::chat), completions as `chat` and
/// `chat_stream` with [`CallContext::operation`] telling which method the caller used; the
/// provider turns them back at the bottom of the chain.
///
/// ```
/// use nova_llm_core::{async_trait, ChatRequest, ChatResponse, LlmDriver, LlmError};
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::{CallContext, Middleware, Next, Provider};
///
/// /// Upper-cases every reply.
/// #[derive(Debug)]
/// struct Shout;
///
/// #[async_trait]
/// impl Middleware for Shout {
///     fn name(&self) -> &str {
///         "shout"
///     }
///
///     async fn chat(
///         &self,
///         request: ChatRequest,
///         cx: &mut CallContext,
///         next: Next<'_>,
///     ) -> Result<ChatResponse, LlmError> {
///         let reply = next.chat(request, cx).await?;
///         Ok(ChatResponse::from_text(reply.text().to_uppercase()).with_usage(reply.usage))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), LlmError> {
/// let provider = Provider::builder(MockDriver::new()).layer(Shout).build();
/// assert_eq!(provider.prompt("hi").await?, "F(HI)");
/// # Ok(())
/// # }
/// ```
///
/// ## Transforming a stream event by event
///
/// Override [`chat_stream`](Self::chat_stream) and wrap the stream that `next` returns,
/// here with `StreamExt::map` from the `futures-util` crate (add `futures-util = "0.3"` to
/// your dependencies). Errors and the `Finish` event pass through untouched, so the
/// stream contract holds.
///
/// ```
/// use futures_util::StreamExt;
/// use nova_llm_core::{
///     async_trait, collect_stream, ChatRequest, ChatStream, Dialog, LlmDriver, LlmError,
///     StreamEvent,
/// };
/// use nova_llm_mock::MockDriver;
/// use nova_llm_provider::{CallContext, Middleware, Next, Provider};
///
/// /// Upper-cases every text delta as it arrives.
/// #[derive(Debug)]
/// struct ShoutLive;
///
/// #[async_trait]
/// impl Middleware for ShoutLive {
///     fn name(&self) -> &str {
///         "shout-live"
///     }
///
///     async fn chat_stream(
///         &self,
///         request: ChatRequest,
///         cx: &mut CallContext,
///         next: Next<'_>,
///     ) -> Result<ChatStream, LlmError> {
///         let stream = next.chat_stream(request, cx).await?;
///         Ok(Box::pin(stream.map(|item| {
///             item.map(|event| match event {
///                 StreamEvent::TextDelta { text } => StreamEvent::text(text.to_uppercase()),
///                 other => other,
///             })
///         })))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), LlmError> {
/// let provider = Provider::builder(MockDriver::new()).layer(ShoutLive).build();
/// let stream = provider.chat_stream(ChatRequest::new(Dialog::new().user("hi"))).await?;
/// assert_eq!(collect_stream(stream).await?.text(), "F(HI)");
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Middleware: Send + Sync + 'static {
    /// A short name, unique in a chain, used to remove or place layers (`"events"`,
    /// `"cache"`, ...).
    fn name(&self) -> &str;

    /// A call that returns the whole reply. Default: `next.chat(request, cx)`.
    ///
    /// # Errors
    /// Whatever the rest of the chain returns, or the middleware's own error.
    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        next.chat(request, cx).await
    }

    /// A streamed call. Default: `next.chat_stream(request, cx)`.
    ///
    /// To observe or transform events, wrap the stream `next` returns; it must keep the
    /// stream contract (one `Finish`, last; an error item ends the stream).
    ///
    /// # Errors
    /// Whatever the rest of the chain returns before any output.
    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        next.chat_stream(request, cx).await
    }
}

/// The rest of the chain below a middleware, ending at the driver.
#[derive(Clone, Copy)]
pub struct Next<'a> {
    chain: &'a Arc<[Arc<dyn Middleware>]>,
    pos: usize,
    driver: &'a Arc<dyn LlmDriver>,
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field(
                "layers",
                &self.rest().iter().map(|m| m.name()).collect::<Vec<_>>(),
            )
            .field("driver", &self.driver.name())
            .finish()
    }
}

impl<'a> Next<'a> {
    pub(crate) fn new(
        chain: &'a Arc<[Arc<dyn Middleware>]>,
        driver: &'a Arc<dyn LlmDriver>,
    ) -> Self {
        Next {
            chain,
            pos: 0,
            driver,
        }
    }

    fn rest(&self) -> &'a [Arc<dyn Middleware>] {
        self.chain.get(self.pos..).unwrap_or_default()
    }

    fn after(self) -> Self {
        Next {
            pos: self.pos + 1,
            ..self
        }
    }

    /// Passes the request to the next layer (or the driver) for the whole reply.
    ///
    /// Returns the next layer's own (boxed) future rather than wrapping it in another, so
    /// that a layer awaiting it holds a pointer, not the rest of the chain's state: a call
    /// through a deep chain moves and copies a few hundred bytes per layer, not kilobytes.
    ///
    /// # Errors
    /// Whatever the rest of the chain returns.
    pub fn chat<'b>(
        self,
        request: ChatRequest,
        cx: &'b mut CallContext,
    ) -> BoxFuture<'b, Result<ChatResponse, LlmError>>
    where
        'a: 'b,
    {
        match self.rest().first() {
            Some(layer) => layer.chat(request, cx, self.after()),
            None => bottom_chat(&**self.driver, request, cx.operation()),
        }
    }

    /// Passes the request to the next layer (or the driver) as a stream (the next layer's
    /// own future, as for [`chat`](Self::chat)).
    ///
    /// # Errors
    /// Whatever the rest of the chain returns before any output.
    pub fn chat_stream<'b>(
        self,
        request: ChatRequest,
        cx: &'b mut CallContext,
    ) -> BoxFuture<'b, Result<ChatStream, LlmError>>
    where
        'a: 'b,
    {
        match self.rest().first() {
            Some(layer) => layer.chat_stream(request, cx, self.after()),
            None => bottom_stream(&**self.driver, request, cx.operation()),
        }
    }

    /// The driver at the bottom of the chain.
    pub fn driver(&self) -> &'a dyn LlmDriver {
        &**self.driver
    }

    /// The same rest of the chain over another driver (what fallback does: the layers
    /// below it, retry and rate limits included, apply to every driver it tries).
    pub fn with_driver(self, driver: &'a Arc<dyn LlmDriver>) -> Next<'a> {
        Next { driver, ..self }
    }

    /// An owned handle on the same rest of the chain, for work that outlives the call (work
    /// shared by several callers, as the cache's single-flight stream, or a spawned task).
    pub fn to_owned(&self) -> OwnedNext {
        OwnedNext {
            chain: Arc::clone(self.chain),
            pos: self.pos,
            driver: Arc::clone(self.driver),
        }
    }
}

/// The rest of a chain, owned: `'static`, so it can outlive the call (or move into a task).
#[derive(Clone)]
pub struct OwnedNext {
    chain: Arc<[Arc<dyn Middleware>]>,
    pos: usize,
    driver: Arc<dyn LlmDriver>,
}

impl std::fmt::Debug for OwnedNext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_next().fmt(f)
    }
}

impl OwnedNext {
    /// Borrows it as a [`Next`] to call.
    pub fn as_next(&self) -> Next<'_> {
        Next {
            chain: &self.chain,
            pos: self.pos,
            driver: &self.driver,
        }
    }
}

/// The bottom of the chain: completions go to the driver's own completion methods (which
/// use a native endpoint where there is one) as long as the request is still one user row;
/// everything else is a chat.
fn bottom_chat(
    driver: &dyn LlmDriver,
    request: ChatRequest,
    op: Operation,
) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
    if op == Operation::Completion
        && let Some(completion) = as_completion(&request)
    {
        let reply = driver.complete(completion);
        return Box::pin(async move { reply.await.map(ChatResponse::from) });
    }
    driver.chat(request)
}

fn bottom_stream(
    driver: &dyn LlmDriver,
    request: ChatRequest,
    op: Operation,
) -> BoxFuture<'_, Result<ChatStream, LlmError>> {
    if op == Operation::CompletionStream
        && let Some(completion) = as_completion(&request)
    {
        return driver.complete_stream(completion);
    }
    driver.chat_stream(request)
}

/// The completion a chat request still stands for: one visible user row of plain text and
/// no chat-only options. `None` once a middleware made it a real dialog.
fn as_completion(request: &ChatRequest) -> Option<CompletionRequest> {
    let mut rows = request.dialog.visible();
    let only = rows.next()?;
    if rows.next().is_some()
        || only.role != Role::User
        || only.name.is_some()
        || only
            .content
            .iter()
            .any(|part| !matches!(part, ContentPart::Text { .. }))
        || !request.tools.is_empty()
        || request.response_format.is_json()
    {
        return None;
    }
    let mut completion = CompletionRequest::new(only.text()).params(request.params.clone());
    completion.model = request.model.clone();
    completion.extras = request.extras.clone();
    Some(completion)
}
