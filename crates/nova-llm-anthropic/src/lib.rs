//! # nova-llm-anthropic
//!
//! An [`LlmDriver`] for Anthropic's Messages API (`POST /v1/messages`), plain and streamed.
//!
//! The driver speaks the wire protocol and nothing more: no retries, no caching, no logging
//! (wrap it in `nova-llm-provider` for those, and for fallback to another service). What
//! the Messages API does differently from the portable request is mapped here, once:
//!
//! - **Reasoning survives the round trip.** A reply's `thinking` blocks come back as
//!   [`ReasoningPart`](nova_llm_core::ReasoningPart)s with their signatures (and
//!   `redacted_thinking` as redacted parts); append the reply to the dialog and the next
//!   turn sends them back unchanged, as the API requires before a tool result. Reasoning
//!   from another service is never sent here.
//! - **Reasoning controls**: [`Reasoning::Off`](nova_llm_core::Reasoning::Off) is thinking
//!   `disabled`; a budget is thinking `enabled` with it (at least 1024, the API's minimum);
//!   an effort is `adaptive` thinking with `output_config.effort` (`minimal` as `low`).
//! - **Prompt caching**: a cache breakpoint on a row, the system prompt or a tool is
//!   `cache_control` on its last block (`"ttl": "1h"` for [`CacheTtl::Long`]); usage
//!   reports cache reads and writes apart, and the provider prices them apart.
//! - **Usage** is normalized: the core's `input_tokens` is the whole prompt (the API's
//!   uncached `input_tokens` plus cache reads and writes).
//! - **`max_tokens`** is required by the API: the request's, else
//!   [`DEFAULT_MAX_TOKENS`] (plus the reasoning budget).
//! - **Sampling parameters** (`temperature`, `top_p`, `seed`, penalties) are not sent: the
//!   Messages API of [`DEFAULT_API_VERSION`] takes none of them (its SDK has no such
//!   field). A request that sets them still works here, so that fallback from another
//!   service works; put one in the extras to send it to a version or gateway that takes it.
//! - **JSON**: a schema goes as `output_config.format`; JSON mode without a schema does
//!   not exist here and is refused before anything is sent.
//!
//! Every failure is a classified [`LlmError`]: `overloaded_error` (529) is retryable
//! overload, also mid-stream; a prompt that does not fit is `ContextLengthExceeded`; a
//! stream that ends without `message_stop` is a `StreamInterrupted` error carrying what
//! arrived. The key is sent as `x-api-key` and taken out of every error.
//!
//! [`CacheTtl::Long`]: nova_llm_core::CacheTtl::Long
//!
//! ```no_run
//! use nova_llm_anthropic::AnthropicDriver;
//! use nova_llm_core::{ChatRequest, Dialog, LlmDriver, Reasoning};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), nova_llm_core::LlmError> {
//! // Reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL.
//! let driver = AnthropicDriver::from_env()?;
//! let request = ChatRequest::new(Dialog::new().user("Why is the sky blue?"))
//!     .model("claude-sonnet-4-6")
//!     .reasoning(Reasoning::Budget(2048));
//! let reply = driver.chat(request).await?;
//! println!("thought: {:?}\nanswer: {}", reply.reasoning(), reply.text());
//! # Ok(())
//! # }
//! ```
//!
//! Application code takes any driver, so its tests run on `nova-llm-mock` and production
//! runs on this driver:
//!
//! ```
//! use std::sync::Arc;
//! use nova_llm_anthropic::AnthropicDriver;
//! use nova_llm_core::{ErrorKind, LlmDriver, LlmError};
//!
//! async fn ask(driver: Arc<dyn LlmDriver>) -> Result<String, LlmError> {
//!     driver.prompt("What is the capital of France?").await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LlmError> {
//! // In tests: the mock answers f(x).
//! let mock = Arc::new(nova_llm_mock::MockDriver::new());
//! assert_eq!(ask(mock).await?, "f(What is the capital of France?)");
//!
//! // Nothing listens on port 9 here, so the call fails with a classified, retryable error.
//! let claude = AnthropicDriver::builder()
//!     .base_url("http://127.0.0.1:9")
//!     .api_key("sk-ant-example")
//!     .build()?;
//! let err = ask(Arc::new(claude)).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Connection);
//! assert!(err.is_retryable());
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

mod config;
#[cfg_attr(
    not(feature = "internals"),
    allow(unreachable_pub, reason = "public only through `internals`")
)]
mod decode;
mod errors;
#[cfg(feature = "internals")]
pub mod internals;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt;
use std::sync::Arc;

use nova_llm_core::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, LlmDriver, LlmError, async_trait,
};
use nova_llm_http::Endpoint;
use reqwest::Url;

pub use config::{
    AnthropicBuilder, DEFAULT_API_VERSION, DEFAULT_BASE_URL, DEFAULT_MAX_TOKENS, DEFAULT_MODEL,
};
pub use nova_llm_core::ApiKey;

/// The `origin` of the reasoning this driver reads, and the only reasoning whose opaque
/// parts (signatures, redacted data) it sends back.
pub const ORIGIN: &str = "anthropic";

/// The driver. Cheap to clone (the HTTP client and settings are shared).
#[derive(Clone)]
pub struct AnthropicDriver {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// The client, the headers (`x-api-key` marked sensitive, `anthropic-version`, betas,
    /// extra headers), the timeouts and size limit, how errors read, and the key to take
    /// out of them.
    endpoint: Endpoint,
    messages_url: Url,
    default_model: String,
    default_max_tokens: u32,
}

impl fmt::Debug for AnthropicDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("AnthropicDriver")
            .field("name", &i.name)
            .field("messages_url", &i.messages_url.as_str())
            .field("default_model", &i.default_model)
            .field(
                "api_key",
                &if i.endpoint.api_key.is_some() {
                    "<redacted>"
                } else {
                    "<none>"
                },
            )
            .finish_non_exhaustive()
    }
}

impl AnthropicDriver {
    /// Settings for a driver.
    pub fn builder() -> AnthropicBuilder {
        AnthropicBuilder::default()
    }

    /// A driver configured from `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`.
    ///
    /// # Errors
    /// See [`AnthropicBuilder::from_env`] and [`AnthropicBuilder::build`].
    pub fn from_env() -> Result<Self, LlmError> {
        AnthropicBuilder::from_env()?.build()
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> &str {
        &self.inner.default_model
    }

    /// The request body for `request`, checked.
    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Vec<u8>, LlmError> {
        request.validate()?;
        let model = request
            .model
            .as_deref()
            .unwrap_or(&self.inner.default_model);
        wire::encode_messages(request, model, stream, self.inner.default_max_tokens)
    }
}

#[async_trait]
impl LlmDriver for AnthropicDriver {
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Streaming, tools, structured output and images are native; a plain completion is
    /// served as a one-turn chat (the Messages API has no completion endpoint).
    fn capabilities(&self) -> Capabilities {
        Capabilities::all().with_completions(false)
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.body(&request, false)?;
        let i = &self.inner;
        i.endpoint
            .call(
                &i.messages_url,
                body,
                errors::metadata_from_headers,
                wire::decode_message,
            )
            .await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let body = self.body(&request, true)?;
        let i = &self.inner;
        i.endpoint
            .stream(
                &i.messages_url,
                body,
                errors::metadata_from_headers,
                decode::EventDecoder::new,
            )
            .await
    }
}
