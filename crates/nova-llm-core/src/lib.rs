//! # nova-llm-core
//!
//! The small, stable contract of nova-llm: the [`LlmDriver`] trait and its types. Every
//! driver (OpenAI, the mock, yours) implements it; every layer (the provider with its cache,
//! rate limits, retries and events) wraps it and implements it again, so layers compose.
//!
//! This crate knows no HTTP client, no async runtime and no logging.
//!
//! - [`Dialog`] and [`Message`]: the conversation, with hidden rows that stay in history but
//!   are never sent.
//! - [`ChatRequest`] (model, [`ModelParams`], [`ResponseFormat`], [`Tool`]s, a portable
//!   [`Reasoning`] control, extras) and [`CompletionRequest`]; prompt-caching breakpoints
//!   ([`CacheTtl`]) on rows and tools.
//! - [`ChatResponse`] with [`Usage`] (cache reads and writes, reasoning; unreported apart
//!   from zero), a normalized [`FinishReason`] and [`ResponseMetadata`]. Reasoning travels
//!   in the assistant row as [`ReasoningPart`]s, with the signatures a service wants back.
//! - [`StreamEvent`]s in a [`ChatStream`], and the [`StreamAccumulator`] that turns them back
//!   into a reply (see [the stream contract](stream)).
//! - [`LlmError`], one opaque classified error: ask it [`kind`](LlmError::kind),
//!   [`is_retryable`](LlmError::is_retryable), [`retry_after`](LlmError::retry_after).
//!
//! ## Making and reading values
//!
//! Every type's fields are public, to read and to match on. The types are
//! `#[non_exhaustive]`, so a value is made with a constructor (`ChatRequest::new`,
//! `Message::user`, `ChatResponse::from_text`, ...) and set with its setters, each of which
//! documents its default: the request setters (`.model(..)`, `.temperature(..)`, `.extra(..)`,
//! the same on [`ChatRequest`] and [`CompletionRequest`]) and `with_*` on the other types.
//! The setters are the one way to set a value; fields are read.
//!
//! ## A driver in a few lines
//!
//! Only [`LlmDriver::chat`] is required. Streaming, completion, `prompt` and structured
//! output come with it:
//!
//! ```
//! use async_trait::async_trait;
//! use nova_llm_core::{
//!     collect_stream, ChatRequest, ChatResponse, Dialog, LlmDriver, LlmError, Usage,
//! };
//!
//! /// Answers every dialog with its last visible row, upper-cased.
//! struct Shout;
//!
//! #[async_trait]
//! impl LlmDriver for Shout {
//!     fn name(&self) -> &str {
//!         "shout"
//!     }
//!
//!     async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
//!         request.validate()?;
//!         let last = request.dialog.last_visible().map(|m| m.text()).unwrap_or_default();
//!         Ok(ChatResponse::from_text(last.to_uppercase()).with_usage(Usage::new(1, 1)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LlmError> {
//! let driver: std::sync::Arc<dyn LlmDriver> = std::sync::Arc::new(Shout);
//! assert_eq!(driver.prompt("hello").await?, "HELLO");
//!
//! let stream = driver.chat_stream(ChatRequest::new(Dialog::new().user("hi"))).await?;
//! assert_eq!(collect_stream(stream).await?.text(), "HI");
//!
//! // Bad input is a classified error, never a panic.
//! let err = driver.chat(ChatRequest::new(Dialog::new())).await.unwrap_err();
//! assert_eq!(err.kind(), nova_llm_core::ErrorKind::InvalidRequest);
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

pub mod accumulate;
pub mod cache_hint;
mod content;
pub mod dialog;
pub mod driver;
pub mod error;
pub mod error_kind;
pub mod format;
pub mod media;
pub mod metadata;
pub mod model_json;
pub mod params;
pub mod partial;
pub mod reasoning;
pub mod request;
pub mod response;
pub mod secret;
pub mod stream;
pub mod tool;
pub mod tool_call;
pub mod usage;

pub use accumulate::{StreamAccumulator, collect_stream};
pub use cache_hint::CacheTtl;
pub use dialog::{ContentPart, Dialog, Message, Role, ToolCall};
pub use driver::{Capabilities, LlmDriver, LlmDriverExt, StructuredResponse};
pub use error::{ErrorKind, LlmError};
pub use media::DataUrl;
pub use model_json::parse_json_reply;
pub use reasoning::{Effort, Reasoning, ReasoningPart};
pub use request::{
    ChatRequest, CompletionRequest, JsonSchemaFormat, ModelParams, ResponseFormat, Tool, ToolChoice,
};
pub use response::{
    ChatResponse, CompletionResponse, FinishReason, RateLimitSnapshot, ResponseMetadata, Usage,
};
pub use secret::ApiKey;
pub use stream::{
    ChatStream, PartialOutput, StreamEvent, StreamStart, ToolCallDelta, next_event,
    stream_from_events, stream_from_items,
};

/// Re-exported so drivers implement the trait with the same macro version.
pub use async_trait::async_trait;
